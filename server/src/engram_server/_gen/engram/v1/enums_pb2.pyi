from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from typing import ClassVar as _ClassVar

DESCRIPTOR: _descriptor.FileDescriptor

class MemoryType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MEMORY_TYPE_UNSPECIFIED: _ClassVar[MemoryType]
    MEMORY_TYPE_EPISODIC: _ClassVar[MemoryType]
    MEMORY_TYPE_SEMANTIC: _ClassVar[MemoryType]
    MEMORY_TYPE_PROCEDURAL: _ClassVar[MemoryType]
    MEMORY_TYPE_WORKING: _ClassVar[MemoryType]

class RecallMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RECALL_MODE_UNSPECIFIED: _ClassVar[RecallMode]
    RECALL_MODE_HYBRID: _ClassVar[RecallMode]
    RECALL_MODE_VECTOR: _ClassVar[RecallMode]
    RECALL_MODE_KEYWORD: _ClassVar[RecallMode]

class ApiKeyRole(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    API_KEY_ROLE_UNSPECIFIED: _ClassVar[ApiKeyRole]
    API_KEY_ROLE_ADMIN: _ClassVar[ApiKeyRole]
    API_KEY_ROLE_READ_WRITE: _ClassVar[ApiKeyRole]
    API_KEY_ROLE_READ_ONLY: _ClassVar[ApiKeyRole]

class EmbeddingInputType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EMBEDDING_INPUT_TYPE_UNSPECIFIED: _ClassVar[EmbeddingInputType]
    EMBEDDING_INPUT_TYPE_DOCUMENT: _ClassVar[EmbeddingInputType]
    EMBEDDING_INPUT_TYPE_QUERY: _ClassVar[EmbeddingInputType]

class DuplicatePolicy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DUPLICATE_POLICY_UNSPECIFIED: _ClassVar[DuplicatePolicy]
    DUPLICATE_POLICY_OFF: _ClassVar[DuplicatePolicy]
    DUPLICATE_POLICY_EXACT: _ClassVar[DuplicatePolicy]
    DUPLICATE_POLICY_NEAR: _ClassVar[DuplicatePolicy]

class StoreOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STORE_OUTCOME_UNSPECIFIED: _ClassVar[StoreOutcome]
    STORE_OUTCOME_CREATED: _ClassVar[StoreOutcome]
    STORE_OUTCOME_UNCHANGED: _ClassVar[StoreOutcome]
    STORE_OUTCOME_MERGED: _ClassVar[StoreOutcome]
    STORE_OUTCOME_REPLACED: _ClassVar[StoreOutcome]

class MemoryEventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MEMORY_EVENT_TYPE_UNSPECIFIED: _ClassVar[MemoryEventType]
    MEMORY_EVENT_TYPE_CREATED: _ClassVar[MemoryEventType]
    MEMORY_EVENT_TYPE_UPDATED: _ClassVar[MemoryEventType]
    MEMORY_EVENT_TYPE_DELETED: _ClassVar[MemoryEventType]
    MEMORY_EVENT_TYPE_EXPIRED: _ClassVar[MemoryEventType]
MEMORY_TYPE_UNSPECIFIED: MemoryType
MEMORY_TYPE_EPISODIC: MemoryType
MEMORY_TYPE_SEMANTIC: MemoryType
MEMORY_TYPE_PROCEDURAL: MemoryType
MEMORY_TYPE_WORKING: MemoryType
RECALL_MODE_UNSPECIFIED: RecallMode
RECALL_MODE_HYBRID: RecallMode
RECALL_MODE_VECTOR: RecallMode
RECALL_MODE_KEYWORD: RecallMode
API_KEY_ROLE_UNSPECIFIED: ApiKeyRole
API_KEY_ROLE_ADMIN: ApiKeyRole
API_KEY_ROLE_READ_WRITE: ApiKeyRole
API_KEY_ROLE_READ_ONLY: ApiKeyRole
EMBEDDING_INPUT_TYPE_UNSPECIFIED: EmbeddingInputType
EMBEDDING_INPUT_TYPE_DOCUMENT: EmbeddingInputType
EMBEDDING_INPUT_TYPE_QUERY: EmbeddingInputType
DUPLICATE_POLICY_UNSPECIFIED: DuplicatePolicy
DUPLICATE_POLICY_OFF: DuplicatePolicy
DUPLICATE_POLICY_EXACT: DuplicatePolicy
DUPLICATE_POLICY_NEAR: DuplicatePolicy
STORE_OUTCOME_UNSPECIFIED: StoreOutcome
STORE_OUTCOME_CREATED: StoreOutcome
STORE_OUTCOME_UNCHANGED: StoreOutcome
STORE_OUTCOME_MERGED: StoreOutcome
STORE_OUTCOME_REPLACED: StoreOutcome
MEMORY_EVENT_TYPE_UNSPECIFIED: MemoryEventType
MEMORY_EVENT_TYPE_CREATED: MemoryEventType
MEMORY_EVENT_TYPE_UPDATED: MemoryEventType
MEMORY_EVENT_TYPE_DELETED: MemoryEventType
MEMORY_EVENT_TYPE_EXPIRED: MemoryEventType
