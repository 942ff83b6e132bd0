"""Conversions between the engine's models and the API messages."""

from __future__ import annotations

import dataclasses

from engram._gen.engram import v1 as pb
from engram_server.engine import models as m
from engram_server.service import convert as cv


def _memory() -> m.Memory:
    return m.Memory(
        id="01JTESTMEMORY00000000000000",
        agent_id="agent-1",
        content="Rust is the right choice for memory servers",
        memory_type=m.MemoryType.SEMANTIC,
        importance=0.9,
        tags=["lang", "infra"],
        metadata={"source": "chat", "n": 2, "nested": {"ok": True}},
        session_id="s-1",
        event_time=1_700_000_000.25,
        created_at=1_700_000_001.5,
        updated_at=1_700_000_002.75,
        expires_at=1_800_000_000.0,
        access_count=7,
        last_accessed_at=1_700_000_003.125,
        version=3,
        embedding_model="minilm-int8",
    )


def test_recalled_memory_carries_every_memory_field_as_memory_to_pb_does() -> None:
    """RecalledMemory repeats Memory's fields: every one of them must reach a recall hit as it
    reaches a plain Memory (a field added to Memory must not be missing from recall)."""
    mem = _memory()
    plain = cv.memory_to_pb(mem)
    recalled = cv.recalled_to_pb(m.ScoredMemory(memory=mem, score=0.5, vector_score=0.4, keyword_score=0.3))
    for field in dataclasses.fields(pb.Memory):
        assert getattr(recalled, field.name) == getattr(plain, field.name), field.name
    assert (recalled.score, recalled.vector_score, recalled.keyword_score) == (0.5, 0.4, 0.3)


def test_event_time_defaults_to_created_at() -> None:
    mem = dataclasses.replace(_memory(), event_time=0.0)
    recalled = cv.recalled_to_pb(m.ScoredMemory(memory=mem, score=1.0))
    assert recalled.event_time == cv.float_to_ts(mem.created_at) == cv.memory_to_pb(mem).event_time
