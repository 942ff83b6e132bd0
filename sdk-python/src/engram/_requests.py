"""Request builders and argument types shared by both clients."""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import Any

from engram import _convert
from engram._config import TimeoutTypes, UseClientDefault
from engram._gen.engram import v1 as pb

FilterTypes = pb.MemoryFilter | Mapping[str, Any] | None
"""A ``MemoryFilter`` or a dict of its fields (``{"tags_any": ["x"], "memory_types": ["semantic"]}``)."""

Metadata = Mapping[str, Any] | None
"""JSON metadata as a plain mapping."""

Time = datetime.datetime | str | None
"""A timestamp: an aware (or UTC naive) datetime, or an RFC 3339 string."""

PerCallTimeout = TimeoutTypes | UseClientDefault
"""A per-call timeout; ``USE_CLIENT_DEFAULT`` (the default) takes the client's."""


def store_request(
    agent_id: str,
    content: str,
    *,
    memory_type: pb.MemoryType | str | None = None,
    importance: float | None = None,
    tags: Sequence[str] = (),
    metadata: Metadata = None,
    session_id: str = "",
    event_time: Time = None,
    ttl_seconds: int = 0,
    expires_at: Time = None,
    id: str = "",
    key: str = "",
    duplicate_policy: pb.DuplicatePolicy | str | None = None,
    duplicate_threshold: float | None = None,
) -> pb.StoreMemoryRequest:
    """A ``StoreMemoryRequest`` from ``Client.store``'s arguments."""
    return pb.StoreMemoryRequest(
        agent_id=agent_id,
        content=content,
        memory_type=_convert.enum_value(pb.MemoryType, memory_type),
        importance=None if importance is None else float(importance),
        tags=[*tags],
        metadata=_convert.struct_of(metadata),
        session_id=session_id,
        event_time=_convert.timestamp_of(event_time),
        ttl_seconds=ttl_seconds,
        expires_at=_convert.timestamp_of(expires_at),
        id=id,
        key=key,
        duplicate_policy=_convert.enum_value(pb.DuplicatePolicy, duplicate_policy),
        duplicate_threshold=None if duplicate_threshold is None else float(duplicate_threshold),
    )


def recall_request(
    agent_id: str,
    query: str,
    *,
    top_k: int = 10,
    filter: FilterTypes = None,
    mode: pb.RecallMode | str | None = None,
    explain: bool = False,
    include_associated: bool = False,
    min_score: float = 0.0,
) -> pb.RecallRequest:
    """A ``RecallRequest`` from ``Client.recall``'s arguments."""
    return pb.RecallRequest(
        agent_id=agent_id, query=query, top_k=top_k, filter=_convert.filter_of(filter),
        mode=_convert.enum_value(pb.RecallMode, mode), explain=explain,
        include_associated=include_associated, min_score=min_score,
    )


def import_request(item: Any, agent_id: str) -> pb.ImportMemoriesRequest:
    """An ``ImportMemoriesRequest`` from a ``Memory``, its proto3 JSON dict, or a request."""
    if isinstance(item, pb.ImportMemoriesRequest):
        request: pb.ImportMemoriesRequest = item
        if agent_id and not request.agent_id:
            request = pb.ImportMemoriesRequest(memory=request.memory, agent_id=agent_id)
        return request
    memory: pb.Memory | None = (
        item if isinstance(item, pb.Memory) else _convert.message_of(pb.Memory, item)
    )
    return pb.ImportMemoriesRequest(memory=memory, agent_id=agent_id)

