import datetime

from . import enums_pb2 as _enums_pb2
from . import messages_pb2 as _messages_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StoreMemoryRequest(_message.Message):
    __slots__ = ("agent_id", "content", "memory_type", "importance", "tags", "metadata", "session_id", "event_time", "ttl_seconds", "expires_at", "id", "key", "duplicate_policy", "duplicate_threshold")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    MEMORY_TYPE_FIELD_NUMBER: _ClassVar[int]
    IMPORTANCE_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_FIELD_NUMBER: _ClassVar[int]
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_POLICY_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    content: str
    memory_type: _enums_pb2.MemoryType
    importance: float
    tags: _containers.RepeatedScalarFieldContainer[str]
    metadata: _struct_pb2.Struct
    session_id: str
    event_time: _timestamp_pb2.Timestamp
    ttl_seconds: int
    expires_at: _timestamp_pb2.Timestamp
    id: str
    key: str
    duplicate_policy: _enums_pb2.DuplicatePolicy
    duplicate_threshold: float
    def __init__(self, agent_id: _Optional[str] = ..., content: _Optional[str] = ..., memory_type: _Optional[_Union[_enums_pb2.MemoryType, str]] = ..., importance: _Optional[float] = ..., tags: _Optional[_Iterable[str]] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., session_id: _Optional[str] = ..., event_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ttl_seconds: _Optional[int] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., id: _Optional[str] = ..., key: _Optional[str] = ..., duplicate_policy: _Optional[_Union[_enums_pb2.DuplicatePolicy, str]] = ..., duplicate_threshold: _Optional[float] = ...) -> None: ...

class StoreMemoryResponse(_message.Message):
    __slots__ = ("memory", "created", "outcome")
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    memory: _messages_pb2.Memory
    created: bool
    outcome: _enums_pb2.StoreOutcome
    def __init__(self, memory: _Optional[_Union[_messages_pb2.Memory, _Mapping]] = ..., created: _Optional[bool] = ..., outcome: _Optional[_Union[_enums_pb2.StoreOutcome, str]] = ...) -> None: ...

class BatchStoreMemoriesRequest(_message.Message):
    __slots__ = ("requests",)
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[StoreMemoryRequest]
    def __init__(self, requests: _Optional[_Iterable[_Union[StoreMemoryRequest, _Mapping]]] = ...) -> None: ...

class BatchStoreMemoriesResponse(_message.Message):
    __slots__ = ("memories", "created_count", "outcomes")
    MEMORIES_FIELD_NUMBER: _ClassVar[int]
    CREATED_COUNT_FIELD_NUMBER: _ClassVar[int]
    OUTCOMES_FIELD_NUMBER: _ClassVar[int]
    memories: _containers.RepeatedCompositeFieldContainer[_messages_pb2.Memory]
    created_count: int
    outcomes: _containers.RepeatedScalarFieldContainer[_enums_pb2.StoreOutcome]
    def __init__(self, memories: _Optional[_Iterable[_Union[_messages_pb2.Memory, _Mapping]]] = ..., created_count: _Optional[int] = ..., outcomes: _Optional[_Iterable[_Union[_enums_pb2.StoreOutcome, str]]] = ...) -> None: ...

class GetMemoryRequest(_message.Message):
    __slots__ = ("id", "agent_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    agent_id: str
    def __init__(self, id: _Optional[str] = ..., agent_id: _Optional[str] = ...) -> None: ...

class GetMemoryResponse(_message.Message):
    __slots__ = ("memory",)
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    memory: _messages_pb2.Memory
    def __init__(self, memory: _Optional[_Union[_messages_pb2.Memory, _Mapping]] = ...) -> None: ...

class UpdateMemoryRequest(_message.Message):
    __slots__ = ("memory", "update_mask", "agent_id", "ttl_seconds")
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    memory: _messages_pb2.Memory
    update_mask: _field_mask_pb2.FieldMask
    agent_id: str
    ttl_seconds: int
    def __init__(self, memory: _Optional[_Union[_messages_pb2.Memory, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ..., agent_id: _Optional[str] = ..., ttl_seconds: _Optional[int] = ...) -> None: ...

class UpdateMemoryResponse(_message.Message):
    __slots__ = ("memory",)
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    memory: _messages_pb2.Memory
    def __init__(self, memory: _Optional[_Union[_messages_pb2.Memory, _Mapping]] = ...) -> None: ...

class DeleteMemoryRequest(_message.Message):
    __slots__ = ("id", "agent_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    agent_id: str
    def __init__(self, id: _Optional[str] = ..., agent_id: _Optional[str] = ...) -> None: ...

class DeleteMemoryResponse(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ListMemoriesRequest(_message.Message):
    __slots__ = ("agent_id", "page_size", "page_token", "filter", "order_by")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    ORDER_BY_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    page_size: int
    page_token: str
    filter: _messages_pb2.MemoryFilter
    order_by: str
    def __init__(self, agent_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., filter: _Optional[_Union[_messages_pb2.MemoryFilter, _Mapping]] = ..., order_by: _Optional[str] = ...) -> None: ...

class ListMemoriesResponse(_message.Message):
    __slots__ = ("memories", "next_page_token", "total_size")
    MEMORIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    memories: _containers.RepeatedCompositeFieldContainer[_messages_pb2.Memory]
    next_page_token: str
    total_size: int
    def __init__(self, memories: _Optional[_Iterable[_Union[_messages_pb2.Memory, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total_size: _Optional[int] = ...) -> None: ...

class RecallRequest(_message.Message):
    __slots__ = ("agent_id", "query", "top_k", "filter", "mode", "explain", "include_associated", "min_score")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    EXPLAIN_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_ASSOCIATED_FIELD_NUMBER: _ClassVar[int]
    MIN_SCORE_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    query: str
    top_k: int
    filter: _messages_pb2.MemoryFilter
    mode: _enums_pb2.RecallMode
    explain: bool
    include_associated: bool
    min_score: float
    def __init__(self, agent_id: _Optional[str] = ..., query: _Optional[str] = ..., top_k: _Optional[int] = ..., filter: _Optional[_Union[_messages_pb2.MemoryFilter, _Mapping]] = ..., mode: _Optional[_Union[_enums_pb2.RecallMode, str]] = ..., explain: _Optional[bool] = ..., include_associated: _Optional[bool] = ..., min_score: _Optional[float] = ...) -> None: ...

class RecallResponse(_message.Message):
    __slots__ = ("memories", "total_found", "took_ms")
    MEMORIES_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FOUND_FIELD_NUMBER: _ClassVar[int]
    TOOK_MS_FIELD_NUMBER: _ClassVar[int]
    memories: _containers.RepeatedCompositeFieldContainer[_messages_pb2.RecalledMemory]
    total_found: int
    took_ms: float
    def __init__(self, memories: _Optional[_Iterable[_Union[_messages_pb2.RecalledMemory, _Mapping]]] = ..., total_found: _Optional[int] = ..., took_ms: _Optional[float] = ...) -> None: ...

class BatchRecallRequest(_message.Message):
    __slots__ = ("requests",)
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[RecallRequest]
    def __init__(self, requests: _Optional[_Iterable[_Union[RecallRequest, _Mapping]]] = ...) -> None: ...

class BatchRecallResponse(_message.Message):
    __slots__ = ("responses",)
    RESPONSES_FIELD_NUMBER: _ClassVar[int]
    responses: _containers.RepeatedCompositeFieldContainer[RecallResponse]
    def __init__(self, responses: _Optional[_Iterable[_Union[RecallResponse, _Mapping]]] = ...) -> None: ...

class ForgetMemoriesRequest(_message.Message):
    __slots__ = ("agent_id", "filter", "dry_run")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    filter: _messages_pb2.MemoryFilter
    dry_run: bool
    def __init__(self, agent_id: _Optional[str] = ..., filter: _Optional[_Union[_messages_pb2.MemoryFilter, _Mapping]] = ..., dry_run: _Optional[bool] = ...) -> None: ...

class ForgetMemoriesResponse(_message.Message):
    __slots__ = ("matched_count", "deleted_count", "ids", "dry_run")
    MATCHED_COUNT_FIELD_NUMBER: _ClassVar[int]
    DELETED_COUNT_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    matched_count: int
    deleted_count: int
    ids: _containers.RepeatedScalarFieldContainer[str]
    dry_run: bool
    def __init__(self, matched_count: _Optional[int] = ..., deleted_count: _Optional[int] = ..., ids: _Optional[_Iterable[str]] = ..., dry_run: _Optional[bool] = ...) -> None: ...

class ConsolidateMemoriesRequest(_message.Message):
    __slots__ = ("agent_id", "dry_run", "similarity_threshold")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    SIMILARITY_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    dry_run: bool
    similarity_threshold: float
    def __init__(self, agent_id: _Optional[str] = ..., dry_run: _Optional[bool] = ..., similarity_threshold: _Optional[float] = ...) -> None: ...

class ConsolidateMemoriesResponse(_message.Message):
    __slots__ = ("groups", "merged_count", "dry_run")
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    MERGED_COUNT_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    groups: _containers.RepeatedCompositeFieldContainer[_messages_pb2.DuplicateGroup]
    merged_count: int
    dry_run: bool
    def __init__(self, groups: _Optional[_Iterable[_Union[_messages_pb2.DuplicateGroup, _Mapping]]] = ..., merged_count: _Optional[int] = ..., dry_run: _Optional[bool] = ...) -> None: ...

class WatchMemoriesRequest(_message.Message):
    __slots__ = ("agent_id", "start_after")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    START_AFTER_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    start_after: str
    def __init__(self, agent_id: _Optional[str] = ..., start_after: _Optional[str] = ...) -> None: ...

class WatchMemoriesResponse(_message.Message):
    __slots__ = ("events", "cursor")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[_messages_pb2.MemoryEvent]
    cursor: str
    def __init__(self, events: _Optional[_Iterable[_Union[_messages_pb2.MemoryEvent, _Mapping]]] = ..., cursor: _Optional[str] = ...) -> None: ...

class GetMemoryHistoryRequest(_message.Message):
    __slots__ = ("id", "agent_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    agent_id: str
    def __init__(self, id: _Optional[str] = ..., agent_id: _Optional[str] = ...) -> None: ...

class GetMemoryHistoryResponse(_message.Message):
    __slots__ = ("versions",)
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    versions: _containers.RepeatedCompositeFieldContainer[_messages_pb2.Memory]
    def __init__(self, versions: _Optional[_Iterable[_Union[_messages_pb2.Memory, _Mapping]]] = ...) -> None: ...

class LinkMemoriesRequest(_message.Message):
    __slots__ = ("agent_id", "source_id", "target_id", "relation", "weight")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_ID_FIELD_NUMBER: _ClassVar[int]
    TARGET_ID_FIELD_NUMBER: _ClassVar[int]
    RELATION_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    source_id: str
    target_id: str
    relation: str
    weight: float
    def __init__(self, agent_id: _Optional[str] = ..., source_id: _Optional[str] = ..., target_id: _Optional[str] = ..., relation: _Optional[str] = ..., weight: _Optional[float] = ...) -> None: ...

class LinkMemoriesResponse(_message.Message):
    __slots__ = ("link",)
    LINK_FIELD_NUMBER: _ClassVar[int]
    link: _messages_pb2.MemoryLink
    def __init__(self, link: _Optional[_Union[_messages_pb2.MemoryLink, _Mapping]] = ...) -> None: ...

class UnlinkMemoriesRequest(_message.Message):
    __slots__ = ("agent_id", "source_id", "target_id", "relation")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_ID_FIELD_NUMBER: _ClassVar[int]
    TARGET_ID_FIELD_NUMBER: _ClassVar[int]
    RELATION_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    source_id: str
    target_id: str
    relation: str
    def __init__(self, agent_id: _Optional[str] = ..., source_id: _Optional[str] = ..., target_id: _Optional[str] = ..., relation: _Optional[str] = ...) -> None: ...

class UnlinkMemoriesResponse(_message.Message):
    __slots__ = ("removed_count",)
    REMOVED_COUNT_FIELD_NUMBER: _ClassVar[int]
    removed_count: int
    def __init__(self, removed_count: _Optional[int] = ...) -> None: ...

class GetMemoryGraphRequest(_message.Message):
    __slots__ = ("agent_id", "id", "depth", "relations", "max_nodes")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    DEPTH_FIELD_NUMBER: _ClassVar[int]
    RELATIONS_FIELD_NUMBER: _ClassVar[int]
    MAX_NODES_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    id: str
    depth: int
    relations: _containers.RepeatedScalarFieldContainer[str]
    max_nodes: int
    def __init__(self, agent_id: _Optional[str] = ..., id: _Optional[str] = ..., depth: _Optional[int] = ..., relations: _Optional[_Iterable[str]] = ..., max_nodes: _Optional[int] = ...) -> None: ...

class GetMemoryGraphResponse(_message.Message):
    __slots__ = ("memories", "links")
    MEMORIES_FIELD_NUMBER: _ClassVar[int]
    LINKS_FIELD_NUMBER: _ClassVar[int]
    memories: _containers.RepeatedCompositeFieldContainer[_messages_pb2.Memory]
    links: _containers.RepeatedCompositeFieldContainer[_messages_pb2.MemoryLink]
    def __init__(self, memories: _Optional[_Iterable[_Union[_messages_pb2.Memory, _Mapping]]] = ..., links: _Optional[_Iterable[_Union[_messages_pb2.MemoryLink, _Mapping]]] = ...) -> None: ...

class ExportMemoriesRequest(_message.Message):
    __slots__ = ("agent_id", "filter")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    filter: _messages_pb2.MemoryFilter
    def __init__(self, agent_id: _Optional[str] = ..., filter: _Optional[_Union[_messages_pb2.MemoryFilter, _Mapping]] = ...) -> None: ...

class ExportMemoriesResponse(_message.Message):
    __slots__ = ("memory",)
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    memory: _messages_pb2.Memory
    def __init__(self, memory: _Optional[_Union[_messages_pb2.Memory, _Mapping]] = ...) -> None: ...

class ImportMemoriesRequest(_message.Message):
    __slots__ = ("memory", "agent_id")
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    memory: _messages_pb2.Memory
    agent_id: str
    def __init__(self, memory: _Optional[_Union[_messages_pb2.Memory, _Mapping]] = ..., agent_id: _Optional[str] = ...) -> None: ...

class ImportMemoriesResponse(_message.Message):
    __slots__ = ("imported_count", "skipped_count")
    IMPORTED_COUNT_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_COUNT_FIELD_NUMBER: _ClassVar[int]
    imported_count: int
    skipped_count: int
    def __init__(self, imported_count: _Optional[int] = ..., skipped_count: _Optional[int] = ...) -> None: ...

class ListAgentsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListAgentsResponse(_message.Message):
    __slots__ = ("agents", "next_page_token", "total_size")
    AGENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    agents: _containers.RepeatedCompositeFieldContainer[_messages_pb2.Agent]
    next_page_token: str
    total_size: int
    def __init__(self, agents: _Optional[_Iterable[_Union[_messages_pb2.Agent, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total_size: _Optional[int] = ...) -> None: ...

class GetAgentRequest(_message.Message):
    __slots__ = ("agent_id",)
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    def __init__(self, agent_id: _Optional[str] = ...) -> None: ...

class GetAgentResponse(_message.Message):
    __slots__ = ("agent",)
    AGENT_FIELD_NUMBER: _ClassVar[int]
    agent: _messages_pb2.Agent
    def __init__(self, agent: _Optional[_Union[_messages_pb2.Agent, _Mapping]] = ...) -> None: ...

class DeleteAgentRequest(_message.Message):
    __slots__ = ("agent_id",)
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    def __init__(self, agent_id: _Optional[str] = ...) -> None: ...

class DeleteAgentResponse(_message.Message):
    __slots__ = ("deleted_memory_count",)
    DELETED_MEMORY_COUNT_FIELD_NUMBER: _ClassVar[int]
    deleted_memory_count: int
    def __init__(self, deleted_memory_count: _Optional[int] = ...) -> None: ...

class HealthRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class HealthResponse(_message.Message):
    __slots__ = ("status", "version")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    status: str
    version: str
    def __init__(self, status: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class GetServerInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetServerInfoResponse(_message.Message):
    __slots__ = ("version", "api_version", "embedding_model", "embedding_dimensions", "limits", "auth_required")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    API_VERSION_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_MODEL_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_DIMENSIONS_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    AUTH_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    version: str
    api_version: str
    embedding_model: str
    embedding_dimensions: int
    limits: _messages_pb2.ServerLimits
    auth_required: bool
    def __init__(self, version: _Optional[str] = ..., api_version: _Optional[str] = ..., embedding_model: _Optional[str] = ..., embedding_dimensions: _Optional[int] = ..., limits: _Optional[_Union[_messages_pb2.ServerLimits, _Mapping]] = ..., auth_required: _Optional[bool] = ...) -> None: ...

class GetStatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetStatsResponse(_message.Message):
    __slots__ = ("agent_count", "memory_count", "link_count", "disk_bytes", "exact_vector_count", "indexed_vector_count", "pending_index_builds", "uptime_seconds", "request_count")
    AGENT_COUNT_FIELD_NUMBER: _ClassVar[int]
    MEMORY_COUNT_FIELD_NUMBER: _ClassVar[int]
    LINK_COUNT_FIELD_NUMBER: _ClassVar[int]
    DISK_BYTES_FIELD_NUMBER: _ClassVar[int]
    EXACT_VECTOR_COUNT_FIELD_NUMBER: _ClassVar[int]
    INDEXED_VECTOR_COUNT_FIELD_NUMBER: _ClassVar[int]
    PENDING_INDEX_BUILDS_FIELD_NUMBER: _ClassVar[int]
    UPTIME_SECONDS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_COUNT_FIELD_NUMBER: _ClassVar[int]
    agent_count: int
    memory_count: int
    link_count: int
    disk_bytes: int
    exact_vector_count: int
    indexed_vector_count: int
    pending_index_builds: int
    uptime_seconds: float
    request_count: int
    def __init__(self, agent_count: _Optional[int] = ..., memory_count: _Optional[int] = ..., link_count: _Optional[int] = ..., disk_bytes: _Optional[int] = ..., exact_vector_count: _Optional[int] = ..., indexed_vector_count: _Optional[int] = ..., pending_index_builds: _Optional[int] = ..., uptime_seconds: _Optional[float] = ..., request_count: _Optional[int] = ...) -> None: ...

class CreateApiKeyRequest(_message.Message):
    __slots__ = ("name", "role", "agent_ids", "agent_id_prefix", "ttl_seconds")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    AGENT_IDS_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_PREFIX_FIELD_NUMBER: _ClassVar[int]
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    name: str
    role: _enums_pb2.ApiKeyRole
    agent_ids: _containers.RepeatedScalarFieldContainer[str]
    agent_id_prefix: str
    ttl_seconds: int
    def __init__(self, name: _Optional[str] = ..., role: _Optional[_Union[_enums_pb2.ApiKeyRole, str]] = ..., agent_ids: _Optional[_Iterable[str]] = ..., agent_id_prefix: _Optional[str] = ..., ttl_seconds: _Optional[int] = ...) -> None: ...

class CreateApiKeyResponse(_message.Message):
    __slots__ = ("api_key", "key")
    API_KEY_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    api_key: _messages_pb2.ApiKey
    key: str
    def __init__(self, api_key: _Optional[_Union[_messages_pb2.ApiKey, _Mapping]] = ..., key: _Optional[str] = ...) -> None: ...

class ListApiKeysRequest(_message.Message):
    __slots__ = ("include_revoked",)
    INCLUDE_REVOKED_FIELD_NUMBER: _ClassVar[int]
    include_revoked: bool
    def __init__(self, include_revoked: _Optional[bool] = ...) -> None: ...

class ListApiKeysResponse(_message.Message):
    __slots__ = ("api_keys",)
    API_KEYS_FIELD_NUMBER: _ClassVar[int]
    api_keys: _containers.RepeatedCompositeFieldContainer[_messages_pb2.ApiKey]
    def __init__(self, api_keys: _Optional[_Iterable[_Union[_messages_pb2.ApiKey, _Mapping]]] = ...) -> None: ...

class RevokeApiKeyRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class RevokeApiKeyResponse(_message.Message):
    __slots__ = ("api_key",)
    API_KEY_FIELD_NUMBER: _ClassVar[int]
    api_key: _messages_pb2.ApiKey
    def __init__(self, api_key: _Optional[_Union[_messages_pb2.ApiKey, _Mapping]] = ...) -> None: ...

class GetClusterStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetClusterStatusResponse(_message.Message):
    __slots__ = ("node_count", "healthy_node_count", "replication_factor", "nodes", "mode", "healthy", "node_id", "shard_count", "shard_map_epoch", "shards", "log", "control")
    NODE_COUNT_FIELD_NUMBER: _ClassVar[int]
    HEALTHY_NODE_COUNT_FIELD_NUMBER: _ClassVar[int]
    REPLICATION_FACTOR_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    HEALTHY_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    SHARD_COUNT_FIELD_NUMBER: _ClassVar[int]
    SHARD_MAP_EPOCH_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    LOG_FIELD_NUMBER: _ClassVar[int]
    CONTROL_FIELD_NUMBER: _ClassVar[int]
    node_count: int
    healthy_node_count: int
    replication_factor: int
    nodes: _containers.RepeatedCompositeFieldContainer[_messages_pb2.ClusterNode]
    mode: str
    healthy: bool
    node_id: str
    shard_count: int
    shard_map_epoch: int
    shards: _containers.RepeatedCompositeFieldContainer[_messages_pb2.ClusterShard]
    log: _messages_pb2.ClusterEngine
    control: _messages_pb2.ClusterEngine
    def __init__(self, node_count: _Optional[int] = ..., healthy_node_count: _Optional[int] = ..., replication_factor: _Optional[int] = ..., nodes: _Optional[_Iterable[_Union[_messages_pb2.ClusterNode, _Mapping]]] = ..., mode: _Optional[str] = ..., healthy: _Optional[bool] = ..., node_id: _Optional[str] = ..., shard_count: _Optional[int] = ..., shard_map_epoch: _Optional[int] = ..., shards: _Optional[_Iterable[_Union[_messages_pb2.ClusterShard, _Mapping]]] = ..., log: _Optional[_Union[_messages_pb2.ClusterEngine, _Mapping]] = ..., control: _Optional[_Union[_messages_pb2.ClusterEngine, _Mapping]] = ...) -> None: ...

class DrainClusterNodeRequest(_message.Message):
    __slots__ = ("node_id",)
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    def __init__(self, node_id: _Optional[str] = ...) -> None: ...

class DrainClusterNodeResponse(_message.Message):
    __slots__ = ("node",)
    NODE_FIELD_NUMBER: _ClassVar[int]
    node: _messages_pb2.ClusterNode
    def __init__(self, node: _Optional[_Union[_messages_pb2.ClusterNode, _Mapping]] = ...) -> None: ...

class EmbedRequest(_message.Message):
    __slots__ = ("texts", "input_type")
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    INPUT_TYPE_FIELD_NUMBER: _ClassVar[int]
    texts: _containers.RepeatedScalarFieldContainer[str]
    input_type: _enums_pb2.EmbeddingInputType
    def __init__(self, texts: _Optional[_Iterable[str]] = ..., input_type: _Optional[_Union[_enums_pb2.EmbeddingInputType, str]] = ...) -> None: ...

class EmbedResponse(_message.Message):
    __slots__ = ("embeddings", "model", "dimensions")
    EMBEDDINGS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    DIMENSIONS_FIELD_NUMBER: _ClassVar[int]
    embeddings: _containers.RepeatedCompositeFieldContainer[_messages_pb2.Embedding]
    model: str
    dimensions: int
    def __init__(self, embeddings: _Optional[_Iterable[_Union[_messages_pb2.Embedding, _Mapping]]] = ..., model: _Optional[str] = ..., dimensions: _Optional[int] = ...) -> None: ...
