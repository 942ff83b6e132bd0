"""Conversion between the generated betterproto2 messages and the engine's domain models."""

from __future__ import annotations

import datetime as dt
from typing import Any

from engram._gen.engram import v1 as pb
from engram._gen.google import protobuf as gpb

from ..engine import models as m

_UTC = dt.UTC

MEMORY_TYPE_TO_ENGINE = {
    pb.MemoryType.UNSPECIFIED: m.MemoryType.EPISODIC,
    pb.MemoryType.EPISODIC: m.MemoryType.EPISODIC,
    pb.MemoryType.SEMANTIC: m.MemoryType.SEMANTIC,
    pb.MemoryType.PROCEDURAL: m.MemoryType.PROCEDURAL,
    pb.MemoryType.WORKING: m.MemoryType.WORKING,
}
MEMORY_TYPE_TO_PB = {
    m.MemoryType.EPISODIC: pb.MemoryType.EPISODIC,
    m.MemoryType.SEMANTIC: pb.MemoryType.SEMANTIC,
    m.MemoryType.PROCEDURAL: pb.MemoryType.PROCEDURAL,
    m.MemoryType.WORKING: pb.MemoryType.WORKING,
}
RECALL_MODE_TO_ENGINE = {
    pb.RecallMode.UNSPECIFIED: m.RecallMode.HYBRID,
    pb.RecallMode.HYBRID: m.RecallMode.HYBRID,
    pb.RecallMode.VECTOR: m.RecallMode.VECTOR,
    pb.RecallMode.KEYWORD: m.RecallMode.KEYWORD,
}
ROLE_TO_ENGINE = {
    pb.ApiKeyRole.ADMIN: "admin",
    pb.ApiKeyRole.READ_WRITE: "read_write",
    pb.ApiKeyRole.READ_ONLY: "read_only",
}
ROLE_TO_PB = {v: k for k, v in ROLE_TO_ENGINE.items()}


# --- scalars ----------------------------------------------------------------------------------
def ts_to_float(value: dt.datetime | None) -> float | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=_UTC)
    return value.timestamp()


def float_to_ts(value: float | None) -> dt.datetime | None:
    if value is None or value == 0:
        return None
    return dt.datetime.fromtimestamp(value, tz=_UTC)


def struct_to_dict(value: gpb.Struct | None) -> dict[str, Any]:
    if value is None:
        return {}
    return value.to_dict()


def dict_to_struct(value: dict[str, Any] | None) -> gpb.Struct | None:
    if not value:
        return None
    return gpb.Struct.from_dict(value)


def memory_type_to_engine(value: Any) -> m.MemoryType:
    return MEMORY_TYPE_TO_ENGINE[pb.MemoryType(value)]


# --- memories ---------------------------------------------------------------------------------
def _memory_fields(mem: m.Memory) -> dict[str, Any]:
    """The Memory message's fields, for pb.Memory and for pb.RecalledMemory (which repeats them
    and adds the scores): one list, and a recall hit builds one message, not two."""
    return {
        "id": mem.id,
        "agent_id": mem.agent_id,
        "content": mem.content,
        "memory_type": MEMORY_TYPE_TO_PB.get(mem.memory_type, pb.MemoryType.EPISODIC),
        "importance": mem.importance,
        "tags": list(mem.tags),
        "metadata": dict_to_struct(mem.metadata),
        "session_id": mem.session_id,
        "event_time": float_to_ts(mem.event_time or mem.created_at),
        "created_at": float_to_ts(mem.created_at),
        "updated_at": float_to_ts(mem.updated_at),
        "expires_at": float_to_ts(mem.expires_at),
        "access_count": mem.access_count,
        "last_accessed_at": float_to_ts(mem.last_accessed_at),
        "version": mem.version,
        "embedding_model": mem.embedding_model,
    }


def memory_to_pb(mem: m.Memory) -> pb.Memory:
    return pb.Memory(**_memory_fields(mem))


def memory_from_pb(msg: pb.Memory) -> m.Memory:
    """A full record (ImportMemories)."""
    return m.Memory(
        id=msg.id,
        agent_id=msg.agent_id,
        content=msg.content,
        memory_type=memory_type_to_engine(msg.memory_type),
        importance=msg.importance,
        tags=list(msg.tags),
        metadata=struct_to_dict(msg.metadata),
        session_id=msg.session_id,
        event_time=ts_to_float(msg.event_time) or 0.0,
        created_at=ts_to_float(msg.created_at) or 0.0,
        updated_at=ts_to_float(msg.updated_at) or 0.0,
        expires_at=ts_to_float(msg.expires_at),
        access_count=msg.access_count,
        last_accessed_at=ts_to_float(msg.last_accessed_at),
        version=msg.version or 1,
        embedding_model=msg.embedding_model,
    )


def new_memory_from_pb(req: pb.StoreMemoryRequest) -> m.NewMemory:
    return m.NewMemory(
        agent_id=req.agent_id,
        content=req.content,
        id=req.id,
        memory_type=memory_type_to_engine(req.memory_type),
        importance=0.5 if req.importance is None else float(req.importance),
        tags=list(req.tags),
        metadata=struct_to_dict(req.metadata),
        session_id=req.session_id,
        event_time=ts_to_float(req.event_time),
        ttl_seconds=float(req.ttl_seconds) if req.ttl_seconds else None,
        expires_at=ts_to_float(req.expires_at),
    )


def recalled_to_pb(sm: m.ScoredMemory) -> pb.RecalledMemory:
    out = pb.RecalledMemory(
        **_memory_fields(sm.memory),
        score=sm.score,
        vector_score=sm.vector_score,
        keyword_score=sm.keyword_score,
        associated=sm.associated,
    )
    if sm.explanation is not None:
        e = sm.explanation
        out.explanation = pb.ScoreExplanation(
            vector_score=e.vector_score,
            keyword_score=e.keyword_score,
            vector_rank=e.vector_rank,
            keyword_rank=e.keyword_rank,
            fused_score=e.fused_score,
            importance_boost=e.importance_boost,
            recency_boost=e.recency_boost,
            context_boost=e.context_boost,
        )
    return out


def recall_result_to_pb(res: m.RecallResult) -> pb.RecallResponse:
    return pb.RecallResponse(
        memories=[recalled_to_pb(s) for s in res.memories],
        total_found=res.total_found,
        took_ms=res.took_ms,
    )


# --- filters ----------------------------------------------------------------------------------
def time_range_from_pb(tr: pb.TimeRange | None) -> m.TimeRange | None:
    if tr is None or (tr.start_time is None and tr.end_time is None):
        return None
    return m.TimeRange(start=ts_to_float(tr.start_time), end=ts_to_float(tr.end_time))


def filter_from_pb(f: pb.MemoryFilter | None) -> m.MemoryFilter:
    if f is None:
        return m.MemoryFilter()
    return m.MemoryFilter(
        memory_types=[memory_type_to_engine(t) for t in f.memory_types if t != pb.MemoryType.UNSPECIFIED],
        tags_any=list(f.tags_any),
        tags_all=list(f.tags_all),
        session_id=f.session_id,
        event_time=time_range_from_pb(f.event_time),
        created_time=time_range_from_pb(f.created_time),
        min_importance=f.min_importance,
        metadata_equals=struct_to_dict(f.metadata_equals),
        ids=list(f.ids),
    )


# --- graph, agents, keys ----------------------------------------------------------------------
def link_to_pb(link: m.Link) -> pb.MemoryLink:
    return pb.MemoryLink(
        agent_id=link.agent_id,
        source_id=link.source_id,
        target_id=link.target_id,
        relation=link.relation,
        weight=link.weight,
        created_at=float_to_ts(link.created_at),
    )


def agent_to_pb(a: m.AgentInfo) -> pb.Agent:
    return pb.Agent(
        agent_id=a.agent_id,
        memory_count=a.memory_count,
        bytes_stored=a.bytes_stored,
        link_count=a.link_count,
        created_at=float_to_ts(a.created_at),
        last_activity_at=float_to_ts(a.last_activity_at),
        memory_type_counts=dict(a.memory_type_counts),
    )


def api_key_to_pb(r: m.ApiKeyRecord) -> pb.ApiKey:
    return pb.ApiKey(
        id=r.id,
        name=r.name,
        prefix=r.prefix,
        role=ROLE_TO_PB.get(r.role, pb.ApiKeyRole.UNSPECIFIED),
        agent_ids=list(r.agent_ids),
        agent_id_prefix=r.agent_prefix,
        created_at=float_to_ts(r.created_at),
        expires_at=float_to_ts(r.expires_at),
        revoked_at=float_to_ts(r.revoked_at),
        last_used_at=float_to_ts(r.last_used_at),
    )
