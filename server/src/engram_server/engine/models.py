"""The engine's domain model: plain dataclasses, independent of the wire format.

The service layer converts between these and the generated protobuf messages. Times are UTC
unix seconds as floats (microsecond precision is plenty); 0.0 / None mean "unset".
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class MemoryType(enum.StrEnum):
    EPISODIC = "episodic"
    SEMANTIC = "semantic"
    PROCEDURAL = "procedural"
    WORKING = "working"


class DuplicatePolicy(enum.StrEnum):
    """What a store does when the agent already holds the same memory (writes.py)."""

    OFF = "off"
    EXACT = "exact"  # the same text, normalised (catalogue.content_hash)
    NEAR = "near"  # or an embedding within the threshold


class StoreOutcome(enum.StrEnum):
    CREATED = "created"
    UNCHANGED = "unchanged"  # a client-supplied id already held the same content (a retry)
    MERGED = "merged"  # a duplicate: the existing memory was updated instead
    REPLACED = "replaced"  # the agent's memory with the same key was replaced


class RecallMode(enum.StrEnum):
    HYBRID = "hybrid"
    VECTOR = "vector"
    KEYWORD = "keyword"


@dataclass
class Memory:
    id: str
    agent_id: str
    content: str
    memory_type: MemoryType = MemoryType.EPISODIC
    importance: float = 0.5
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)  # JSON-compatible values only
    session_id: str = ""
    event_time: float = 0.0  # when it happened; defaults to created_at
    created_at: float = 0.0
    updated_at: float = 0.0
    expires_at: float | None = None
    access_count: int = 0
    last_accessed_at: float | None = None
    version: int = 1
    embedding_model: str = ""
    key: str = ""  # client upsert key, unique within the agent; "" = none


@dataclass
class NewMemory:
    """Input of store / batch store. `id` empty means the engine assigns one; a given id makes
    the store idempotent (same id + same content → the existing memory is returned)."""

    agent_id: str
    content: str
    id: str = ""
    memory_type: MemoryType = MemoryType.EPISODIC
    importance: float = 0.5
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    session_id: str = ""
    event_time: float | None = None  # None: the time of the store
    expires_at: float | None = None
    key: str = ""  # upsert: replaces the agent's memory with this key (exclusive with id)
    duplicate_policy: DuplicatePolicy = DuplicatePolicy.OFF
    duplicate_threshold: float = 0.95  # cosine, for DuplicatePolicy.NEAR


@dataclass
class MemoryPatch:
    """Partial update: only fields that are not None change. A content change re-embeds."""

    content: str | None = None
    memory_type: MemoryType | None = None
    importance: float | None = None
    tags: list[str] | None = None
    metadata: dict[str, Any] | None = None
    session_id: str | None = None
    event_time: float | None = None
    expires_at: float | None = None  # 0 clears the expiry


@dataclass
class TimeRange:
    start: float | None = None  # inclusive
    end: float | None = None  # exclusive


@dataclass
class MemoryFilter:
    """Conjunction of conditions; an empty filter matches every memory of the agent."""

    memory_types: list[MemoryType] = field(default_factory=list)
    tags_any: list[str] = field(default_factory=list)
    tags_all: list[str] = field(default_factory=list)
    session_id: str = ""
    event_time: TimeRange | None = None
    created_time: TimeRange | None = None
    min_importance: float | None = None
    metadata_equals: dict[str, Any] = field(default_factory=dict)
    ids: list[str] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)

    def is_empty(self) -> bool:
        return not (
            self.memory_types
            or self.tags_any
            or self.tags_all
            or self.session_id
            or self.event_time
            or self.created_time
            or self.min_importance is not None
            or self.metadata_equals
            or self.ids
            or self.keys
        )


@dataclass
class RecallQuery:
    agent_id: str
    query: str
    top_k: int = 10
    filter: MemoryFilter = field(default_factory=MemoryFilter)
    mode: RecallMode = RecallMode.HYBRID
    explain: bool = False
    include_associated: bool = False
    min_score: float = 0.0


@dataclass
class ScoreExplanation:
    vector_score: float = 0.0  # cosine similarity, 0 when not a vector candidate
    keyword_score: float = 0.0  # raw BM25, 0 when not a keyword candidate
    vector_rank: int = 0  # 1-based, 0 = not ranked
    keyword_rank: int = 0
    # Amounts of score (fusion.adjust): score = fused_score + importance_boost + recency_boost,
    # each >= 0, score in [0, 1].
    fused_score: float = 0.0  # relevance's share, before importance / recency
    importance_boost: float = 0.0
    recency_boost: float = 0.0
    context_boost: float = 0.0  # lent by session neighbours (part of fused_score)


@dataclass
class ScoredMemory:
    memory: Memory
    score: float
    vector_score: float = 0.0
    keyword_score: float = 0.0
    explanation: ScoreExplanation | None = None
    associated: bool = False  # reached through a graph link, not by the query


@dataclass
class RecallResult:
    memories: list[ScoredMemory]
    total_found: int  # candidates that matched the filter before top_k was applied
    took_ms: float = 0.0


@dataclass
class Link:
    agent_id: str
    source_id: str
    target_id: str
    relation: str = "related_to"
    weight: float = 1.0
    created_at: float = 0.0


@dataclass
class MemoryGraph:
    nodes: list[Memory]
    links: list[Link]


@dataclass
class ListPage:
    memories: list[Memory]
    next_page_token: str
    total_size: int


@dataclass
class AgentInfo:
    agent_id: str
    memory_count: int = 0
    bytes_stored: int = 0
    link_count: int = 0
    created_at: float = 0.0
    last_activity_at: float = 0.0
    memory_type_counts: dict[str, int] = field(default_factory=dict)


@dataclass
class ForgetResult:
    matched: int
    deleted: int
    ids: list[str]  # at most the first 1000 ids, for dry runs to show


@dataclass
class ApiKeyRecord:
    """An API key as stored: never the key itself, only its hash."""

    id: str
    name: str
    key_hash: bytes
    prefix: str  # first characters of the key, shown in listings
    role: str  # "admin" | "read_write" | "read_only"
    agent_ids: list[str] = field(default_factory=list)
    agent_prefix: str = ""
    created_at: float = 0.0
    expires_at: float | None = None
    revoked_at: float | None = None
    last_used_at: float | None = None


@dataclass
class EngineStats:
    agents: int = 0
    memories: int = 0
    links: int = 0
    bytes_on_disk: int = 0
    vectors_exact: int = 0  # in mutable segments
    vectors_indexed: int = 0  # in sealed graph segments
    index_builds_pending: int = 0
    embedding_model: str = ""
    embedding_dim: int = 0
    uptime_seconds: float = 0.0


@dataclass
class DuplicateGroup:
    keep_id: str
    duplicate_ids: list[str]
    similarity: float


class EventType(enum.StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    DELETED = "deleted"
    EXPIRED = "expired"


@dataclass
class MemoryEvent:
    """One change in the change log (events.py)."""

    position: int
    type: EventType
    agent_id: str
    memory_id: str
    time: float
    version: int
    memory: Memory | None = None  # for CREATED and UPDATED


@dataclass
class EventPage:
    """What a read of the change log found: the events a watcher may see, and the position up to
    which the log was read (past events of other agents too)."""

    events: list[MemoryEvent]
    position: int
