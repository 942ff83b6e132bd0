"""Conversion between the API's messages (`engram_server.pb`) and the engine's domain models.

Requests: every time a client sends is checked against what a Timestamp and the engine's float
seconds can hold (validation.py calls `timestamp`), so a conversion here never fails.
Responses: the engine's values are written into messages in place (`fill_memory`); a stored value
beyond what the wire can carry (a time past 9999, a count past int32, from data written before
these limits) is clamped to the wire's range rather than failing the whole response.
"""

from __future__ import annotations

import math
from typing import Any

from google.protobuf import json_format

from .. import pb
from ..engine import models as m

MEMORY_TYPE_TO_ENGINE = {
    pb.MEMORY_TYPE_UNSPECIFIED: m.MemoryType.EPISODIC,
    pb.MEMORY_TYPE_EPISODIC: m.MemoryType.EPISODIC,
    pb.MEMORY_TYPE_SEMANTIC: m.MemoryType.SEMANTIC,
    pb.MEMORY_TYPE_PROCEDURAL: m.MemoryType.PROCEDURAL,
    pb.MEMORY_TYPE_WORKING: m.MemoryType.WORKING,
}
MEMORY_TYPE_TO_PB = {
    m.MemoryType.EPISODIC: pb.MEMORY_TYPE_EPISODIC,
    m.MemoryType.SEMANTIC: pb.MEMORY_TYPE_SEMANTIC,
    m.MemoryType.PROCEDURAL: pb.MEMORY_TYPE_PROCEDURAL,
    m.MemoryType.WORKING: pb.MEMORY_TYPE_WORKING,
}
RECALL_MODE_TO_ENGINE = {
    pb.RECALL_MODE_UNSPECIFIED: m.RecallMode.HYBRID,
    pb.RECALL_MODE_HYBRID: m.RecallMode.HYBRID,
    pb.RECALL_MODE_VECTOR: m.RecallMode.VECTOR,
    pb.RECALL_MODE_KEYWORD: m.RecallMode.KEYWORD,
}
DUPLICATE_POLICY_TO_ENGINE = {
    pb.DUPLICATE_POLICY_OFF: m.DuplicatePolicy.OFF,
    pb.DUPLICATE_POLICY_EXACT: m.DuplicatePolicy.EXACT,
    pb.DUPLICATE_POLICY_NEAR: m.DuplicatePolicy.NEAR,
}
STORE_OUTCOME_TO_PB = {
    m.StoreOutcome.CREATED: pb.STORE_OUTCOME_CREATED,
    m.StoreOutcome.UNCHANGED: pb.STORE_OUTCOME_UNCHANGED,
    m.StoreOutcome.MERGED: pb.STORE_OUTCOME_MERGED,
    m.StoreOutcome.REPLACED: pb.STORE_OUTCOME_REPLACED,
}
EVENT_TYPE_TO_PB = {
    m.EventType.CREATED: pb.MEMORY_EVENT_TYPE_CREATED,
    m.EventType.UPDATED: pb.MEMORY_EVENT_TYPE_UPDATED,
    m.EventType.DELETED: pb.MEMORY_EVENT_TYPE_DELETED,
    m.EventType.EXPIRED: pb.MEMORY_EVENT_TYPE_EXPIRED,
}
ROLE_TO_ENGINE = {
    pb.API_KEY_ROLE_ADMIN: "admin",
    pb.API_KEY_ROLE_READ_WRITE: "read_write",
    pb.API_KEY_ROLE_READ_ONLY: "read_only",
}
ROLE_TO_PB = {v: k for k, v in ROLE_TO_ENGINE.items()}

# What a google.protobuf.Timestamp can hold: 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59Z.
TIMESTAMP_MIN_SECONDS = -62135596800
TIMESTAMP_MAX_SECONDS = 253402300799
INT32_MAX = 2**31 - 1


# --- times ------------------------------------------------------------------------------------
def ts_seconds(ts: pb.Timestamp) -> float:
    """Unix seconds of a Timestamp already checked by validation.timestamp."""
    return ts.seconds + ts.nanos / 1e9


def set_ts(ts: pb.Timestamp, value: float) -> None:
    """Write Unix seconds into a Timestamp: microsecond precision (what the engine keeps), and
    clamped to the Timestamp range."""
    if not math.isfinite(value):
        value = TIMESTAMP_MAX_SECONDS if value > 0 else TIMESTAMP_MIN_SECONDS
    micros = round(value * 1_000_000)
    seconds, rest = divmod(micros, 1_000_000)
    if seconds > TIMESTAMP_MAX_SECONDS:
        seconds, rest = TIMESTAMP_MAX_SECONDS, 999_999
    elif seconds < TIMESTAMP_MIN_SECONDS:
        seconds, rest = TIMESTAMP_MIN_SECONDS, 0
    ts.seconds = seconds
    ts.nanos = rest * 1000


def optional_ts(msg: Any, name: str) -> float | None:
    return ts_seconds(getattr(msg, name)) if msg.HasField(name) else None


def _int32(value: int) -> int:
    return max(-INT32_MAX - 1, min(INT32_MAX, int(value)))


# --- metadata ---------------------------------------------------------------------------------
def struct_to_dict(value: pb.Struct) -> dict[str, Any]:
    out: dict[str, Any] = json_format.MessageToDict(value)
    return out


# --- memories ---------------------------------------------------------------------------------
def fill_memory(out: pb.Memory | pb.RecalledMemory, mem: m.Memory) -> None:
    """Set a Memory's (or RecalledMemory's, which repeats the fields) fields from the engine's."""
    out.id = mem.id
    out.agent_id = mem.agent_id
    out.content = mem.content
    out.memory_type = MEMORY_TYPE_TO_PB.get(mem.memory_type, pb.MEMORY_TYPE_EPISODIC)
    out.importance = mem.importance
    if mem.tags:
        out.tags.extend(mem.tags)
    if mem.metadata:
        out.metadata.update(mem.metadata)
    out.session_id = mem.session_id
    set_ts(out.event_time, mem.event_time or mem.created_at)
    if mem.created_at:
        set_ts(out.created_at, mem.created_at)
    if mem.updated_at:
        set_ts(out.updated_at, mem.updated_at)
    if mem.expires_at:
        set_ts(out.expires_at, mem.expires_at)
    out.access_count = _int32(mem.access_count)
    if mem.last_accessed_at:
        set_ts(out.last_accessed_at, mem.last_accessed_at)
    out.version = _int32(mem.version)
    out.embedding_model = mem.embedding_model
    out.key = mem.key


def memory_to_pb(mem: m.Memory) -> pb.Memory:
    out = pb.Memory()
    fill_memory(out, mem)
    return out


def memory_from_pb(msg: pb.Memory, model_id: str) -> m.Memory:
    """A full record (ImportMemories), already validated. The embedding model is the server's:
    an import is embedded again with it."""
    return m.Memory(
        id=msg.id,
        agent_id=msg.agent_id,
        content=msg.content,
        memory_type=MEMORY_TYPE_TO_ENGINE[msg.memory_type],
        importance=msg.importance,
        tags=list(msg.tags),
        metadata=struct_to_dict(msg.metadata),
        session_id=msg.session_id,
        event_time=optional_ts(msg, "event_time") or 0.0,
        created_at=optional_ts(msg, "created_at") or 0.0,
        updated_at=optional_ts(msg, "updated_at") or 0.0,
        expires_at=optional_ts(msg, "expires_at"),
        access_count=msg.access_count,
        last_accessed_at=optional_ts(msg, "last_accessed_at"),
        version=msg.version or 1,
        embedding_model=model_id,
        key=msg.key,
    )


def new_memory_from_pb(
    req: pb.StoreMemoryRequest, now: float, default_policy: m.DuplicatePolicy, default_threshold: float
) -> m.NewMemory:
    """A validated StoreMemoryRequest as the engine's input; a TTL becomes an expiry time, and an
    unset duplicate policy or threshold the server's defaults."""
    expires = optional_ts(req, "expires_at")
    if req.ttl_seconds:
        expires = now + req.ttl_seconds
    return m.NewMemory(
        agent_id=req.agent_id,
        content=req.content,
        id=req.id,
        memory_type=MEMORY_TYPE_TO_ENGINE[req.memory_type],
        importance=req.importance if req.HasField("importance") else 0.5,
        tags=list(dict.fromkeys(req.tags)),
        metadata=struct_to_dict(req.metadata),
        session_id=req.session_id,
        event_time=optional_ts(req, "event_time"),
        expires_at=expires,
        key=req.key,
        duplicate_policy=DUPLICATE_POLICY_TO_ENGINE.get(req.duplicate_policy, default_policy),
        duplicate_threshold=req.duplicate_threshold if req.HasField("duplicate_threshold") else default_threshold,
    )


def fill_event(out: pb.MemoryEvent, ev: m.MemoryEvent) -> None:
    out.cursor = str(ev.position)
    out.type = EVENT_TYPE_TO_PB[ev.type]
    out.agent_id = ev.agent_id
    out.memory_id = ev.memory_id
    set_ts(out.time, ev.time)
    out.version = _int32(ev.version)
    if ev.memory is not None:
        fill_memory(out.memory, ev.memory)


def recall_result_to_pb(res: m.RecallResult) -> pb.RecallResponse:
    out = pb.RecallResponse(total_found=_int32(res.total_found), took_ms=res.took_ms)
    for sm in res.memories:
        hit = out.memories.add()
        fill_memory(hit, sm.memory)
        hit.score = sm.score
        hit.vector_score = sm.vector_score
        hit.keyword_score = sm.keyword_score
        hit.associated = sm.associated
        e = sm.explanation
        if e is not None:
            x = hit.explanation
            x.vector_score = e.vector_score
            x.keyword_score = e.keyword_score
            x.vector_rank = e.vector_rank
            x.keyword_rank = e.keyword_rank
            x.fused_score = e.fused_score
            x.importance_boost = e.importance_boost
            x.recency_boost = e.recency_boost
            x.context_boost = e.context_boost
    return out


# --- filters ----------------------------------------------------------------------------------
def time_range_from_pb(tr: pb.TimeRange) -> m.TimeRange | None:
    start, end = optional_ts(tr, "start_time"), optional_ts(tr, "end_time")
    if start is None and end is None:
        return None
    return m.TimeRange(start=start, end=end)


def filter_from_pb(f: pb.MemoryFilter) -> m.MemoryFilter:
    return m.MemoryFilter(
        memory_types=[MEMORY_TYPE_TO_ENGINE[t] for t in f.memory_types if t != pb.MEMORY_TYPE_UNSPECIFIED],
        tags_any=list(f.tags_any),
        tags_all=list(f.tags_all),
        session_id=f.session_id,
        event_time=time_range_from_pb(f.event_time) if f.HasField("event_time") else None,
        created_time=time_range_from_pb(f.created_time) if f.HasField("created_time") else None,
        min_importance=f.min_importance if f.HasField("min_importance") else None,
        metadata_equals=struct_to_dict(f.metadata_equals) if f.HasField("metadata_equals") else {},
        ids=list(f.ids),
        keys=list(f.keys),
    )


# --- graph, agents, keys ----------------------------------------------------------------------
def fill_link(out: pb.MemoryLink, link: m.Link) -> None:
    out.agent_id = link.agent_id
    out.source_id = link.source_id
    out.target_id = link.target_id
    out.relation = link.relation
    out.weight = link.weight
    if link.created_at:
        set_ts(out.created_at, link.created_at)


def fill_agent(out: pb.Agent, a: m.AgentInfo) -> None:
    out.agent_id = a.agent_id
    out.memory_count = _int32(a.memory_count)
    out.bytes_stored = a.bytes_stored
    out.link_count = _int32(a.link_count)
    if a.created_at:
        set_ts(out.created_at, a.created_at)
    if a.last_activity_at:
        set_ts(out.last_activity_at, a.last_activity_at)
    for k, v in a.memory_type_counts.items():
        out.memory_type_counts[k] = _int32(v)


def fill_api_key(out: pb.ApiKey, r: m.ApiKeyRecord) -> None:
    out.id = r.id
    out.name = r.name
    out.prefix = r.prefix
    out.role = ROLE_TO_PB.get(r.role, pb.API_KEY_ROLE_UNSPECIFIED)
    out.agent_ids.extend(r.agent_ids)
    out.agent_id_prefix = r.agent_prefix
    for name, value in (
        ("created_at", r.created_at),
        ("expires_at", r.expires_at),
        ("revoked_at", r.revoked_at),
        ("last_used_at", r.last_used_at),
    ):
        if value:
            set_ts(getattr(out, name), value)
