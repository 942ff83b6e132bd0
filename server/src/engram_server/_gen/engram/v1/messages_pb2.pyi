import datetime

from . import enums_pb2 as _enums_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Memory(_message.Message):
    __slots__ = ("id", "agent_id", "content", "memory_type", "importance", "tags", "metadata", "session_id", "event_time", "created_at", "updated_at", "expires_at", "access_count", "last_accessed_at", "version", "embedding_model", "key")
    ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    MEMORY_TYPE_FIELD_NUMBER: _ClassVar[int]
    IMPORTANCE_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    ACCESS_COUNT_FIELD_NUMBER: _ClassVar[int]
    LAST_ACCESSED_AT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_MODEL_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    id: str
    agent_id: str
    content: str
    memory_type: _enums_pb2.MemoryType
    importance: float
    tags: _containers.RepeatedScalarFieldContainer[str]
    metadata: _struct_pb2.Struct
    session_id: str
    event_time: _timestamp_pb2.Timestamp
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    expires_at: _timestamp_pb2.Timestamp
    access_count: int
    last_accessed_at: _timestamp_pb2.Timestamp
    version: int
    embedding_model: str
    key: str
    def __init__(self, id: _Optional[str] = ..., agent_id: _Optional[str] = ..., content: _Optional[str] = ..., memory_type: _Optional[_Union[_enums_pb2.MemoryType, str]] = ..., importance: _Optional[float] = ..., tags: _Optional[_Iterable[str]] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., session_id: _Optional[str] = ..., event_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., access_count: _Optional[int] = ..., last_accessed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., version: _Optional[int] = ..., embedding_model: _Optional[str] = ..., key: _Optional[str] = ...) -> None: ...

class RecalledMemory(_message.Message):
    __slots__ = ("id", "agent_id", "content", "memory_type", "importance", "tags", "metadata", "session_id", "event_time", "created_at", "updated_at", "expires_at", "access_count", "last_accessed_at", "version", "embedding_model", "key", "score", "vector_score", "keyword_score", "explanation", "associated")
    ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    MEMORY_TYPE_FIELD_NUMBER: _ClassVar[int]
    IMPORTANCE_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    ACCESS_COUNT_FIELD_NUMBER: _ClassVar[int]
    LAST_ACCESSED_AT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_MODEL_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    VECTOR_SCORE_FIELD_NUMBER: _ClassVar[int]
    KEYWORD_SCORE_FIELD_NUMBER: _ClassVar[int]
    EXPLANATION_FIELD_NUMBER: _ClassVar[int]
    ASSOCIATED_FIELD_NUMBER: _ClassVar[int]
    id: str
    agent_id: str
    content: str
    memory_type: _enums_pb2.MemoryType
    importance: float
    tags: _containers.RepeatedScalarFieldContainer[str]
    metadata: _struct_pb2.Struct
    session_id: str
    event_time: _timestamp_pb2.Timestamp
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    expires_at: _timestamp_pb2.Timestamp
    access_count: int
    last_accessed_at: _timestamp_pb2.Timestamp
    version: int
    embedding_model: str
    key: str
    score: float
    vector_score: float
    keyword_score: float
    explanation: ScoreExplanation
    associated: bool
    def __init__(self, id: _Optional[str] = ..., agent_id: _Optional[str] = ..., content: _Optional[str] = ..., memory_type: _Optional[_Union[_enums_pb2.MemoryType, str]] = ..., importance: _Optional[float] = ..., tags: _Optional[_Iterable[str]] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., session_id: _Optional[str] = ..., event_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., access_count: _Optional[int] = ..., last_accessed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., version: _Optional[int] = ..., embedding_model: _Optional[str] = ..., key: _Optional[str] = ..., score: _Optional[float] = ..., vector_score: _Optional[float] = ..., keyword_score: _Optional[float] = ..., explanation: _Optional[_Union[ScoreExplanation, _Mapping]] = ..., associated: _Optional[bool] = ...) -> None: ...

class ScoreExplanation(_message.Message):
    __slots__ = ("vector_score", "keyword_score", "vector_rank", "keyword_rank", "fused_score", "importance_boost", "recency_boost", "context_boost")
    VECTOR_SCORE_FIELD_NUMBER: _ClassVar[int]
    KEYWORD_SCORE_FIELD_NUMBER: _ClassVar[int]
    VECTOR_RANK_FIELD_NUMBER: _ClassVar[int]
    KEYWORD_RANK_FIELD_NUMBER: _ClassVar[int]
    FUSED_SCORE_FIELD_NUMBER: _ClassVar[int]
    IMPORTANCE_BOOST_FIELD_NUMBER: _ClassVar[int]
    RECENCY_BOOST_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_BOOST_FIELD_NUMBER: _ClassVar[int]
    vector_score: float
    keyword_score: float
    vector_rank: int
    keyword_rank: int
    fused_score: float
    importance_boost: float
    recency_boost: float
    context_boost: float
    def __init__(self, vector_score: _Optional[float] = ..., keyword_score: _Optional[float] = ..., vector_rank: _Optional[int] = ..., keyword_rank: _Optional[int] = ..., fused_score: _Optional[float] = ..., importance_boost: _Optional[float] = ..., recency_boost: _Optional[float] = ..., context_boost: _Optional[float] = ...) -> None: ...

class TimeRange(_message.Message):
    __slots__ = ("start_time", "end_time")
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    def __init__(self, start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class MemoryFilter(_message.Message):
    __slots__ = ("memory_types", "tags_any", "tags_all", "session_id", "event_time", "created_time", "min_importance", "metadata_equals", "ids", "keys")
    MEMORY_TYPES_FIELD_NUMBER: _ClassVar[int]
    TAGS_ANY_FIELD_NUMBER: _ClassVar[int]
    TAGS_ALL_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_FIELD_NUMBER: _ClassVar[int]
    CREATED_TIME_FIELD_NUMBER: _ClassVar[int]
    MIN_IMPORTANCE_FIELD_NUMBER: _ClassVar[int]
    METADATA_EQUALS_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    memory_types: _containers.RepeatedScalarFieldContainer[_enums_pb2.MemoryType]
    tags_any: _containers.RepeatedScalarFieldContainer[str]
    tags_all: _containers.RepeatedScalarFieldContainer[str]
    session_id: str
    event_time: TimeRange
    created_time: TimeRange
    min_importance: float
    metadata_equals: _struct_pb2.Struct
    ids: _containers.RepeatedScalarFieldContainer[str]
    keys: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, memory_types: _Optional[_Iterable[_Union[_enums_pb2.MemoryType, str]]] = ..., tags_any: _Optional[_Iterable[str]] = ..., tags_all: _Optional[_Iterable[str]] = ..., session_id: _Optional[str] = ..., event_time: _Optional[_Union[TimeRange, _Mapping]] = ..., created_time: _Optional[_Union[TimeRange, _Mapping]] = ..., min_importance: _Optional[float] = ..., metadata_equals: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., ids: _Optional[_Iterable[str]] = ..., keys: _Optional[_Iterable[str]] = ...) -> None: ...

class MemoryLink(_message.Message):
    __slots__ = ("agent_id", "source_id", "target_id", "relation", "weight", "created_at")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_ID_FIELD_NUMBER: _ClassVar[int]
    TARGET_ID_FIELD_NUMBER: _ClassVar[int]
    RELATION_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    source_id: str
    target_id: str
    relation: str
    weight: float
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, agent_id: _Optional[str] = ..., source_id: _Optional[str] = ..., target_id: _Optional[str] = ..., relation: _Optional[str] = ..., weight: _Optional[float] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Agent(_message.Message):
    __slots__ = ("agent_id", "memory_count", "bytes_stored", "link_count", "created_at", "last_activity_at", "memory_type_counts")
    class MemoryTypeCountsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    MEMORY_COUNT_FIELD_NUMBER: _ClassVar[int]
    BYTES_STORED_FIELD_NUMBER: _ClassVar[int]
    LINK_COUNT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_ACTIVITY_AT_FIELD_NUMBER: _ClassVar[int]
    MEMORY_TYPE_COUNTS_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    memory_count: int
    bytes_stored: int
    link_count: int
    created_at: _timestamp_pb2.Timestamp
    last_activity_at: _timestamp_pb2.Timestamp
    memory_type_counts: _containers.ScalarMap[str, int]
    def __init__(self, agent_id: _Optional[str] = ..., memory_count: _Optional[int] = ..., bytes_stored: _Optional[int] = ..., link_count: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_activity_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., memory_type_counts: _Optional[_Mapping[str, int]] = ...) -> None: ...

class ApiKey(_message.Message):
    __slots__ = ("id", "name", "prefix", "role", "agent_ids", "agent_id_prefix", "created_at", "expires_at", "revoked_at", "last_used_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    AGENT_IDS_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_PREFIX_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    REVOKED_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_USED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    prefix: str
    role: _enums_pb2.ApiKeyRole
    agent_ids: _containers.RepeatedScalarFieldContainer[str]
    agent_id_prefix: str
    created_at: _timestamp_pb2.Timestamp
    expires_at: _timestamp_pb2.Timestamp
    revoked_at: _timestamp_pb2.Timestamp
    last_used_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., prefix: _Optional[str] = ..., role: _Optional[_Union[_enums_pb2.ApiKeyRole, str]] = ..., agent_ids: _Optional[_Iterable[str]] = ..., agent_id_prefix: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., revoked_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_used_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ServerLimits(_message.Message):
    __slots__ = ("max_request_bytes", "max_content_bytes", "max_metadata_bytes", "max_tags", "max_batch_size", "max_top_k", "max_page_size", "max_graph_depth", "max_concurrent_streams")
    MAX_REQUEST_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_CONTENT_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_METADATA_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_TAGS_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    MAX_TOP_K_FIELD_NUMBER: _ClassVar[int]
    MAX_PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    MAX_GRAPH_DEPTH_FIELD_NUMBER: _ClassVar[int]
    MAX_CONCURRENT_STREAMS_FIELD_NUMBER: _ClassVar[int]
    max_request_bytes: int
    max_content_bytes: int
    max_metadata_bytes: int
    max_tags: int
    max_batch_size: int
    max_top_k: int
    max_page_size: int
    max_graph_depth: int
    max_concurrent_streams: int
    def __init__(self, max_request_bytes: _Optional[int] = ..., max_content_bytes: _Optional[int] = ..., max_metadata_bytes: _Optional[int] = ..., max_tags: _Optional[int] = ..., max_batch_size: _Optional[int] = ..., max_top_k: _Optional[int] = ..., max_page_size: _Optional[int] = ..., max_graph_depth: _Optional[int] = ..., max_concurrent_streams: _Optional[int] = ...) -> None: ...

class ClusterNode(_message.Message):
    __slots__ = ("node_id", "address", "healthy", "role", "serving_shards", "catching_up_shards", "max_lag")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    HEALTHY_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    SERVING_SHARDS_FIELD_NUMBER: _ClassVar[int]
    CATCHING_UP_SHARDS_FIELD_NUMBER: _ClassVar[int]
    MAX_LAG_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    address: str
    healthy: bool
    role: str
    serving_shards: _containers.RepeatedScalarFieldContainer[int]
    catching_up_shards: _containers.RepeatedScalarFieldContainer[int]
    max_lag: int
    def __init__(self, node_id: _Optional[str] = ..., address: _Optional[str] = ..., healthy: _Optional[bool] = ..., role: _Optional[str] = ..., serving_shards: _Optional[_Iterable[int]] = ..., catching_up_shards: _Optional[_Iterable[int]] = ..., max_lag: _Optional[int] = ...) -> None: ...

class ClusterShard(_message.Message):
    __slots__ = ("shard", "last_sequence", "owners")
    SHARD_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    OWNERS_FIELD_NUMBER: _ClassVar[int]
    shard: int
    last_sequence: int
    owners: _containers.RepeatedCompositeFieldContainer[ClusterShardOwner]
    def __init__(self, shard: _Optional[int] = ..., last_sequence: _Optional[int] = ..., owners: _Optional[_Iterable[_Union[ClusterShardOwner, _Mapping]]] = ...) -> None: ...

class ClusterShardOwner(_message.Message):
    __slots__ = ("node_id", "state", "applied_sequence")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    APPLIED_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    state: str
    applied_sequence: int
    def __init__(self, node_id: _Optional[str] = ..., state: _Optional[str] = ..., applied_sequence: _Optional[int] = ...) -> None: ...

class ClusterEngine(_message.Message):
    __slots__ = ("engine", "members", "leader", "healthy")
    ENGINE_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    LEADER_FIELD_NUMBER: _ClassVar[int]
    HEALTHY_FIELD_NUMBER: _ClassVar[int]
    engine: str
    members: int
    leader: str
    healthy: bool
    def __init__(self, engine: _Optional[str] = ..., members: _Optional[int] = ..., leader: _Optional[str] = ..., healthy: _Optional[bool] = ...) -> None: ...

class Embedding(_message.Message):
    __slots__ = ("vector",)
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    vector: bytes
    def __init__(self, vector: _Optional[bytes] = ...) -> None: ...

class DuplicateGroup(_message.Message):
    __slots__ = ("keep_id", "duplicate_ids", "min_similarity")
    KEEP_ID_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_IDS_FIELD_NUMBER: _ClassVar[int]
    MIN_SIMILARITY_FIELD_NUMBER: _ClassVar[int]
    keep_id: str
    duplicate_ids: _containers.RepeatedScalarFieldContainer[str]
    min_similarity: float
    def __init__(self, keep_id: _Optional[str] = ..., duplicate_ids: _Optional[_Iterable[str]] = ..., min_similarity: _Optional[float] = ...) -> None: ...

class MemoryEvent(_message.Message):
    __slots__ = ("cursor", "type", "agent_id", "memory_id", "time", "version", "memory")
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    MEMORY_ID_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    cursor: str
    type: _enums_pb2.MemoryEventType
    agent_id: str
    memory_id: str
    time: _timestamp_pb2.Timestamp
    version: int
    memory: Memory
    def __init__(self, cursor: _Optional[str] = ..., type: _Optional[_Union[_enums_pb2.MemoryEventType, str]] = ..., agent_id: _Optional[str] = ..., memory_id: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., version: _Optional[int] = ..., memory: _Optional[_Union[Memory, _Mapping]] = ...) -> None: ...
