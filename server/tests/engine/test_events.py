"""The change log (events.py): one event per change, in commit order, durable, scoped, pruned."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from conftest import FakeEmbedder, make_config
from engram_server.engine.engine import Engine
from engram_server.engine.errors import OutOfRange
from engram_server.engine.models import (
    DuplicatePolicy,
    EventType,
    MemoryFilter,
    MemoryPatch,
    NewMemory,
)
from engram_server.engine.storage import CF_EVENTS

C, U, D, X = EventType.CREATED, EventType.UPDATED, EventType.DELETED, EventType.EXPIRED


def all_events(eng: Engine, after: int = 0, agent: str = "") -> list[tuple[EventType, str, str, int]]:
    out = []
    while True:
        page = eng.read_events(after, 100, agent)
        out += [(e.type, e.agent_id, e.memory_id, e.version) for e in page.events]
        if page.position == after:
            return out
        after = page.position


def test_every_change_is_one_event_in_order(engine: Engine) -> None:
    a, _ = engine.store(NewMemory("a", "first"))
    b, _ = engine.store(NewMemory("b", "other agent"))
    engine.update("a", a.id, MemoryPatch(content="first, edited"))
    dup, _ = engine.store(NewMemory("a", "First, edited.", duplicate_policy=DuplicatePolicy.EXACT))
    keyed, _ = engine.store(NewMemory("a", "v1", key="k"))
    engine.store(NewMemory("a", "v2", key="k"))
    engine.delete("a", keyed.id)
    engine.forget("a", MemoryFilter(ids=[a.id]))
    assert all_events(engine) == [
        (C, "a", a.id, 1),
        (C, "b", b.id, 1),
        (U, "a", a.id, 2),
        (U, "a", a.id, 3),
        (C, "a", keyed.id, 1),
        (U, "a", keyed.id, 2),
        (D, "a", keyed.id, 2),
        (D, "a", a.id, 3),
    ]
    assert dup.id == a.id
    assert all_events(engine, agent="b") == [(C, "b", b.id, 1)]
    created = engine.read_events(0, 1).events[0]
    assert created.memory is not None and created.memory.content == "first" and created.time > 0
    deleted = engine.read_events(0, 100, "a").events[-1]
    assert deleted.memory is None


def test_expiry_is_logged_when_the_memory_is_purged(engine: Engine) -> None:
    m, _ = engine.store(NewMemory("a", "short-lived", expires_at=time.time() + 0.2))
    time.sleep(0.3)
    engine.run_maintenance()
    assert all_events(engine)[-1] == (X, "a", m.id, 1)


def test_reads_filter_by_agent_and_move_past_others(engine: Engine) -> None:
    for i in range(5):
        engine.store(NewMemory("noisy", f"noise {i}"))
    mine, _ = engine.store(NewMemory("quiet", "mine"))
    page = engine.read_events(0, 10, "quiet")
    assert [e.memory_id for e in page.events] == [mine.id] and page.position == 6
    only = engine.read_events(0, 10, allow=lambda agent: agent == "quiet")
    assert [e.memory_id for e in only.events] == [mine.id]
    nothing = engine.read_events(6, 10, "quiet")
    assert nothing.events == [] and nothing.position == 6


def test_events_survive_a_restart_and_positions_keep_increasing(data_dir: Path) -> None:
    eng = Engine.open(make_config(data_dir), embedder=FakeEmbedder())
    eng.store(NewMemory("a", "before"))
    before = eng.event_position
    eng.close()
    eng = Engine.open(make_config(data_dir), embedder=FakeEmbedder())
    try:
        assert eng.event_position == before == 1
        m, _ = eng.store(NewMemory("a", "after"))
        assert all_events(eng, after=before) == [(C, "a", m.id, 1)] and eng.event_position == 2
    finally:
        eng.close()


def test_listeners_hear_of_durable_changes(engine: Engine) -> None:
    heard: list[int] = []
    done = threading.Event()

    def listener(position: int) -> None:
        heard.append(position)
        done.set()

    engine.add_event_listener(listener)
    engine.store(NewMemory("a", "x"))
    assert done.wait(5) and heard == [1]
    engine.remove_event_listener(listener)
    engine.store(NewMemory("a", "y"))
    assert heard == [1]


def test_retention_by_count_and_age_and_old_cursors_are_out_of_range(data_dir: Path) -> None:
    eng = Engine.open(make_config(data_dir, max_retained_events=3), embedder=FakeEmbedder())
    try:
        for i in range(5):
            eng.store(NewMemory("a", f"m{i}"))
        eng.run_maintenance()
        assert [e.position for e in eng.read_events(2, 10).events] == [3, 4, 5]
        with pytest.raises(OutOfRange):
            eng.read_events(1, 10)
        eng.check_event_cursor(2)
    finally:
        eng.close()
    eng = Engine.open(make_config(data_dir, event_retention_seconds=0.05), embedder=FakeEmbedder())
    try:
        time.sleep(0.1)
        eng.run_maintenance()
        assert eng.read_events(5, 10).events == []
        with pytest.raises(OutOfRange):
            eng.check_event_cursor(4)  # the pruned-through mark was persisted and advanced
    finally:
        eng.close()


def test_no_change_stream_logs_nothing(data_dir: Path) -> None:
    eng = Engine.open(make_config(data_dir, event_retention_seconds=0), embedder=FakeEmbedder())
    try:
        eng.store(NewMemory("a", "x"))
        assert not eng.events_enabled and eng.storage.scan_keys(CF_EVENTS, b"") == []
    finally:
        eng.close()


def test_deleting_an_agent_drops_its_changes_and_logs_its_deletions(engine: Engine) -> None:
    kept, _ = engine.store(NewMemory("keep", "stays"))
    gone = [engine.store(NewMemory("gone", f"secret {i}"))[0] for i in range(3)]
    engine.delete_agent("gone")
    evs = engine.read_events(0, 100).events
    assert [(e.type, e.agent_id) for e in evs] == [(C, "keep")] + [(D, "gone")] * 3
    assert sorted(e.memory_id for e in evs[1:]) == sorted(m.id for m in gone)
    assert all(e.memory is None for e in evs[1:])  # nothing of what it stored is left in the log
    assert evs[0].memory_id == kept.id
