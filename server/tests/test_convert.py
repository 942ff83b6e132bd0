"""Conversions between the engine's models and the API messages."""

from __future__ import annotations

import dataclasses

import pytest
from engram_server import pb
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
    res = cv.recall_result_to_pb(m.RecallResult([m.ScoredMemory(mem, 0.5, 0.4, 0.3)], 1))
    recalled = res.memories[0]
    for field in pb.Memory.DESCRIPTOR.fields:
        assert getattr(recalled, field.name) == getattr(plain, field.name), field.name
        assert recalled.HasField(field.name) == plain.HasField(field.name) if field.message_type else True
    assert (recalled.score, recalled.vector_score, recalled.keyword_score) == pytest.approx((0.5, 0.4, 0.3))


def test_event_time_defaults_to_created_at() -> None:
    mem = dataclasses.replace(_memory(), event_time=0.0)
    out = cv.memory_to_pb(mem)
    assert out.event_time == out.created_at


def test_times_keep_microseconds_and_clamp_to_the_timestamp_range() -> None:
    ts = pb.Timestamp()
    cv.set_ts(ts, 1_700_000_000.123456)
    assert (ts.seconds, ts.nanos) == (1_700_000_000, 123_456_000)
    cv.set_ts(ts, -0.5)
    assert (ts.seconds, ts.nanos) == (-1, 500_000_000)
    cv.set_ts(ts, 1e13)  # written before there were limits: clamped, never a failed response
    assert (ts.seconds, ts.nanos) == (cv.TIMESTAMP_MAX_SECONDS, 999_999_000)
    cv.set_ts(ts, -1e13)
    assert (ts.seconds, ts.nanos) == (cv.TIMESTAMP_MIN_SECONDS, 0)
    cv.set_ts(ts, float("inf"))
    assert ts.seconds == cv.TIMESTAMP_MAX_SECONDS


def test_counts_beyond_int32_are_clamped() -> None:
    mem = dataclasses.replace(_memory(), access_count=2**40, version=2**33)
    out = cv.memory_to_pb(mem)
    assert out.access_count == 2**31 - 1 and out.version == 2**31 - 1
