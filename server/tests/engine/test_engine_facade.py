"""Every Engine facade method against a real data dir (fake embedder for speed)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from conftest import FakeEmbedder, open_engine
from engram_server.engine import codec
from engram_server.engine.engine import Engine
from engram_server.engine.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from engram_server.engine.models import (
    ApiKeyRecord,
    MemoryFilter,
    MemoryPatch,
    MemoryType,
    NewMemory,
    RecallMode,
    RecallQuery,
    StoreOutcome,
    TimeRange,
)
from engram_server.engine.storage import CF_RECORDS, COLUMN_FAMILIES


def test_store_get_idempotent_ids(engine: Engine) -> None:
    m, created = engine.store(NewMemory("a", "hello world", id="client-1", tags=["t"], metadata={"x": [1, 2]}))
    assert created is StoreOutcome.CREATED and m.id == "client-1" and m.embedding_model == "fake-bow-64"
    again, created = engine.store(NewMemory("a", "hello world", id="client-1"))
    assert created is StoreOutcome.UNCHANGED and again.id == "client-1"
    with pytest.raises(AlreadyExists):
        engine.store(NewMemory("a", "different", id="client-1"))
    other, created = engine.store(NewMemory("b", "another agent's own", id="client-1"))  # ids are per agent
    assert created is StoreOutcome.CREATED and other.agent_id == "b"
    got = engine.get("a", "client-1")
    assert got.metadata == {"x": [1, 2]} and got.tags == ["t"] and got.event_time == got.created_at
    assert engine.owners("client-1") == ["a", "b"] and engine.owners("nope") == []
    with pytest.raises(NotFound):
        engine.get("c", "client-1")
    with pytest.raises(NotFound):
        engine.get("a", "nope")
    auto, _ = engine.store(NewMemory("a", "later"))
    assert len(auto.id) == 32 and auto.id > engine.store(NewMemory("a", "x"))[0].id[:0]


def test_ids_are_time_ordered(engine: Engine) -> None:
    ids = [engine.store(NewMemory("a", f"m {i}"))[0].id for i in range(20)]
    assert ids == sorted(ids)


def test_store_batch_all_or_nothing(engine: Engine) -> None:
    out = engine.store_batch([NewMemory("a", f"batch {i}") for i in range(5)])
    assert len(out) == 5 and all(c for _, c in out)
    with pytest.raises(AlreadyExists):  # the second fails: neither is stored
        engine.store_batch([NewMemory("a", "ok", id="fresh"), NewMemory("a", "other", id=out[0][0].id)])
    assert engine.list_memories("a").total_size == 5 and engine.owners("fresh") == []


def test_update_history_delete(engine: Engine) -> None:
    m, _ = engine.store(NewMemory("a", "version one about rockets"))
    u = engine.update("a", m.id, MemoryPatch(content="version two about boats", importance=0.9, tags=["v2"]))
    assert u.version == 2 and u.importance == 0.9 and u.created_at == m.created_at
    engine.update("a", m.id, MemoryPatch(metadata={"k": "v"}))
    hist = engine.history("a", m.id)
    assert [h.version for h in hist] == [1, 2, 3]
    assert hist[0].content == "version one about rockets" and hist[-1].metadata == {"k": "v"}
    res = engine.recall(RecallQuery("a", "boats", mode=RecallMode.KEYWORD))
    assert [s.memory.id for s in res.memories] == [m.id]
    assert engine.recall(RecallQuery("a", "rockets", mode=RecallMode.KEYWORD)).memories == []
    gone = engine.delete("a", m.id)
    assert gone.version == 3
    with pytest.raises(NotFound):
        engine.get("a", m.id)
    with pytest.raises(NotFound):
        engine.history("a", m.id)
    with pytest.raises(NotFound):
        engine.delete("a", m.id)


def test_list_pagination_filters_and_totals(engine: Engine) -> None:
    for i in range(23):
        engine.store(
            NewMemory(
                "a",
                f"item {i}",
                importance=i / 25,
                tags=["even" if i % 2 == 0 else "odd"],
                memory_type=MemoryType.SEMANTIC if i % 3 == 0 else MemoryType.EPISODIC,
                metadata={"n": i % 5},
                session_id="s1" if i < 10 else "s2",
                event_time=1000.0 + i,
            )
        )
    seen: list[str] = []
    token = ""
    while True:
        page = engine.list_memories("a", page_size=7, page_token=token)
        assert page.total_size == 23
        seen += [m.id for m in page.memories]
        token = page.next_page_token
        if not token:
            break
    assert len(seen) == 23 and len(set(seen)) == 23 and seen == sorted(seen, reverse=True)
    asc = engine.list_memories("a", page_size=100, order_by="importance asc").memories
    assert [m.importance for m in asc] == sorted(m.importance for m in asc)
    f = MemoryFilter(tags_any=["even"], memory_types=[MemoryType.SEMANTIC])
    page = engine.list_memories("a", f, page_size=2)
    assert page.total_size == 4  # i in 0, 6, 12, 18
    with pytest.raises(InvalidArgument) as err:
        engine.list_memories("a", MemoryFilter(tags_any=["odd"]), page_token=page.next_page_token)
    assert err.value.field == "page_token"
    with pytest.raises(InvalidArgument):
        engine.list_memories("a", page_token="garbage!")
    assert engine.list_memories("a", MemoryFilter(metadata_equals={"n": 0})).total_size == 5
    assert engine.list_memories("a", MemoryFilter(session_id="s1")).total_size == 10
    assert engine.list_memories("a", MemoryFilter(event_time=TimeRange(1005.0, 1010.0))).total_size == 5
    assert engine.list_memories("a", MemoryFilter(min_importance=0.8)).total_size == 3
    assert engine.list_memories("a", MemoryFilter(tags_all=["odd", "even"])).total_size == 0


def test_filtered_recall_never_returns_fewer_than_exist(engine: Engine) -> None:
    for i in range(200):
        engine.store(NewMemory("a", f"common words shared by all {i}", tags=["rare"] if i % 50 == 0 else []))
    rare = MemoryFilter(tags_any=["rare"])
    res = engine.recall(RecallQuery("a", "completely unrelated query", top_k=10, filter=rare))
    assert len(res.memories) == 4 and all("rare" in s.memory.tags for s in res.memories)
    res = engine.recall(RecallQuery("a", "common words", top_k=10, explain=True))
    assert len(res.memories) == 10 and res.total_found >= 10
    e = res.memories[0].explanation
    assert e is not None and e.vector_rank >= 1 and e.fused_score > 0
    assert engine.recall(RecallQuery("a", "common", min_score=10.0)).memories == []
    assert engine.recall(RecallQuery("unknown-agent", "x")).memories == []


def test_read_your_writes_and_access_counts(engine: Engine) -> None:
    for i in range(50):
        m, _ = engine.store(NewMemory("a", f"fact code{i}x about zeppelins"))
        res = engine.recall(RecallQuery("a", f"fact code{i}x about zeppelins", top_k=1))
        assert res.memories[0].memory.id == m.id
    assert engine.get("a", m.id).access_count == 1
    engine.run_maintenance()  # flushes access counts into the records
    assert engine.get("a", m.id).access_count == 1


def test_ttl_expiry_and_purge(engine: Engine) -> None:
    short, _ = engine.store(NewMemory("a", "fleeting thought", expires_at=time.time() + 0.3))
    keep, _ = engine.store(NewMemory("a", "lasting thought"))
    assert engine.get("a", short.id).expires_at is not None
    time.sleep(0.4)
    with pytest.raises(NotFound):
        engine.get("a", short.id)
    assert [s.memory.id for s in engine.recall(RecallQuery("a", "thought")).memories] == [keep.id]
    assert engine.list_memories("a").total_size == 1
    engine.run_maintenance()
    assert engine.owners(short.id) == []
    upd = engine.update("a", keep.id, MemoryPatch(expires_at=time.time() + 100))
    assert upd.expires_at and upd.expires_at > time.time()
    assert engine.update("a", keep.id, MemoryPatch(expires_at=0.0)).expires_at is None


def test_forget(engine: Engine) -> None:
    for i in range(10):
        engine.store(NewMemory("a", f"m {i}", session_id="s1" if i < 4 else "s2"))
    dry = engine.forget("a", MemoryFilter(session_id="s1"), dry_run=True)
    assert dry.matched == 4 and dry.deleted == 0 and len(dry.ids) == 4
    assert engine.list_memories("a").total_size == 10
    done = engine.forget("a", MemoryFilter(session_id="s1"))
    assert done.deleted == 4 and engine.list_memories("a").total_size == 6


def test_links_graph_and_associated(engine: Engine) -> None:
    ids = [
        engine.store(NewMemory("a", text))[0].id
        for text in ("paris is in france", "the eiffel tower", "iron lattice", "unrelated banana")
    ]
    other, _ = engine.store(NewMemory("b", "other agent"))
    with pytest.raises(NotFound):
        engine.link("a", ids[0], other.id)
    engine.link("a", ids[0], ids[1], "located_in")
    engine.link("a", ids[1], ids[2], "made_of", weight=0.5)
    again = engine.link("a", ids[0], ids[1], "located_in", weight=0.7)
    assert again.weight == 0.7
    g = engine.graph("a", ids[2], depth=2)
    assert {m.id for m in g.nodes} == set(ids[:3]) and len(g.links) == 2
    assert {m.id for m in engine.graph("a", ids[2], depth=1).nodes} == {ids[1], ids[2]}
    assert {m.id for m in engine.graph("a", ids[0], depth=2, relations=["located_in"]).nodes} == {ids[0], ids[1]}
    res = engine.recall(RecallQuery("a", "paris france", top_k=1, mode=RecallMode.KEYWORD, include_associated=True))
    assert res.memories[0].memory.id == ids[0] and not res.memories[0].associated
    assert [s.memory.id for s in res.memories[1:]] == [ids[1]] and res.memories[1].associated
    assert engine.unlink("a", ids[0], ids[1]) == 1
    engine.delete("a", ids[1])
    assert engine.get_agent("a").link_count == 0
    assert len(engine.graph("a", ids[2], depth=3).nodes) == 1


def test_export_import_round_trip(engine: Engine, tmp_path: Path) -> None:
    src = [engine.store(NewMemory("a", f"exported {i}", tags=[f"t{i}"], importance=0.1 * i))[0] for i in range(7)]
    engine.update("a", src[0].id, MemoryPatch(content="exported zero v2"))
    dumped = list(engine.export("a"))
    assert [m.id for m in dumped] == sorted(m.id for m in src)
    other = open_engine(tmp_path / "other")
    try:
        assert other.import_memories("a", dumped) == (7, 0)
        assert other.import_memories("a", dumped) == (0, 7)
        for m in dumped:
            got = other.get("a", m.id)
            assert (got.content, got.created_at, got.updated_at, got.version, got.tags) == (
                m.content,
                m.created_at,
                m.updated_at,
                m.version,
                m.tags,
            )
        assert other.import_memories("copy", dumped[:2]) == (2, 0)  # ids are per agent
        assert other.recall(RecallQuery("a", "exported zero v2", top_k=1)).memories[0].memory.id == src[0].id
    finally:
        other.close()


def test_consolidate(engine: Engine) -> None:
    a, _ = engine.store(NewMemory("a", "the user likes green tea", importance=0.9, tags=["x"]))
    b, _ = engine.store(NewMemory("a", "the user likes green tea", importance=0.2, tags=["y"]))
    c, _ = engine.store(NewMemory("a", "something else entirely"))
    d, _ = engine.store(NewMemory("a", "linked elsewhere"))
    engine.link("a", b.id, d.id)
    groups = engine.consolidate("a", 0.95, dry_run=True)
    assert len(groups) == 1 and groups[0].keep_id == a.id and groups[0].duplicate_ids == [b.id]
    assert engine.list_memories("a").total_size == 4
    engine.consolidate("a", 0.95, dry_run=False)
    with pytest.raises(NotFound):
        engine.get("a", b.id)
    kept = engine.get("a", a.id)
    assert kept.version == 2 and set(kept.tags) == {"x", "y"}
    assert b.id in {m.id for m in engine.history("a", a.id)}
    assert {m.id for m in engine.graph("a", a.id).nodes} == {a.id, d.id}
    assert engine.get("a", c.id)


def test_agents_and_delete_agent_leaves_nothing(engine: Engine) -> None:
    for i in range(5):
        m, _ = engine.store(NewMemory("doomed", f"memory {i}"))
    engine.update("doomed", m.id, MemoryPatch(content="changed"))
    engine.link("doomed", m.id, engine.list_memories("doomed").memories[-1].id)
    engine.store(NewMemory("survivor", "stays"))
    engine.run_maintenance()
    agents, token, total = engine.list_agents(page_size=1)
    assert total == 2 and agents[0].agent_id == "doomed" and token
    agents2, token2, _ = engine.list_agents(page_size=1, page_token=token)
    assert agents2[0].agent_id == "survivor" and token2 == ""
    info = engine.get_agent("doomed")
    assert info.memory_count == 5 and info.link_count == 1 and info.bytes_stored > 0
    assert engine.delete_agent("doomed") == 5
    with pytest.raises(NotFound):
        engine.get_agent("doomed")
    with pytest.raises(NotFound):
        engine.get("doomed", m.id)
    engine.storage.flush_and_compact()
    for cf in COLUMN_FAMILIES:
        for k, _ in engine.storage.scan_raw(cf, b""):
            assert b"doomed" not in k, (cf, k)
            assert m.id.encode() not in k
    assert engine.list_memories("survivor").total_size == 1
    assert engine.stats().agents == 1


def test_api_keys(engine: Engine) -> None:
    r = ApiKeyRecord("k1", "ci", b"\x01" * 32, "eng_ab", "read_only", agent_ids=["a"], created_at=1.0)
    engine.put_api_key(r)
    assert engine.get_api_key("k1") == r
    assert engine.get_api_key("missing") is None
    assert engine.list_api_keys() == [r]


def test_restart_keeps_everything(data_dir: Path) -> None:
    eng = open_engine(data_dir)
    ids = [eng.store(NewMemory("a", f"persisted fact {i}"))[0].id for i in range(30)]
    eng.update("a", ids[0], MemoryPatch(content="rewritten first fact"))
    eng.delete("a", ids[1])
    eng.link("a", ids[2], ids[3])
    eng.run_maintenance()
    eng.delete("a", ids[4])  # after the catalogue snapshot: comes back through the journal
    eng.store(NewMemory("a", "stored after maintenance"))
    eng.close()
    eng = open_engine(data_dir)
    try:
        assert eng.list_memories("a").total_size == 29
        assert eng.get("a", ids[0]).content == "rewritten first fact"
        r = eng.recall(RecallQuery("a", "rewritten first fact", top_k=1, mode=RecallMode.KEYWORD))
        assert r.memories[0].memory.id == ids[0]
        top = eng.recall(RecallQuery("a", "stored after maintenance", top_k=1)).memories[0]
        assert top.memory.content == "stored after maintenance"
        assert len(eng.graph("a", ids[2]).links) == 1
        with pytest.raises(NotFound):
            eng.get("a", ids[4])
    finally:
        eng.close()


def _stored_access_count(eng: Engine, agent_id: str, memory_id: str) -> int:
    """The access count in the record in RocksDB, not the live counter that reads return."""
    raw = eng.storage.get(CF_RECORDS, eng.keyspace.agent(agent_id).record(memory_id))
    assert raw is not None
    return codec.memory_from_bytes(raw).access_count


def test_access_counts_are_flushed_periodically_and_at_close(data_dir: Path) -> None:
    eng = open_engine(data_dir, access_flush_seconds=0.1)
    m, _ = eng.store(NewMemory("a", "counted fact about zeppelins"))
    eng.recall(RecallQuery("a", "zeppelins", top_k=1))
    deadline = time.monotonic() + 10
    while _stored_access_count(eng, "a", m.id) != 1:
        assert time.monotonic() < deadline, "the access count never reached the record"
        time.sleep(0.05)
    eng.close()
    eng = open_engine(data_dir, access_flush_seconds=3600.0)
    try:
        eng.recall(RecallQuery("a", "zeppelins", top_k=1))
        time.sleep(0.3)
        assert _stored_access_count(eng, "a", m.id) == 1  # not yet written: the flush is an hour away
        eng.close()  # ...but it goes out at close
        eng = open_engine(data_dir)
        got = eng.get("a", m.id)
        assert got.access_count == 2 and got.last_accessed_at is not None
    finally:
        eng.close()


def test_model_change_is_refused_then_reembedded(data_dir: Path) -> None:
    eng = open_engine(data_dir)
    m, _ = eng.store(NewMemory("a", "needs a new vector"))
    eng.close()
    with pytest.raises(FailedPrecondition, match="fake-bow-64"):
        open_engine(data_dir, embedder=FakeEmbedder(32, model_id="other-model"))
    eng = open_engine(data_dir, embedder=FakeEmbedder(32, model_id="other-model"), reembed_on_model_change=True)
    try:
        assert eng.embedding_dim == 32
        assert eng.recall(RecallQuery("a", "needs a new vector", top_k=1)).memories[0].memory.id == m.id
    finally:
        eng.close()
    eng = open_engine(data_dir, embedder=FakeEmbedder(32, model_id="other-model"))
    eng.close()


def test_preload_agents_loads_the_most_recently_active(data_dir: Path) -> None:
    eng = open_engine(data_dir)
    for agent in ("old", "middle", "recent"):
        eng.store(NewMemory(agent, f"a memory of {agent}"))
        time.sleep(0.01)  # distinct last-activity times
    eng.close()
    eng = open_engine(data_dir, preload_agents=2)
    try:
        assert eng.preload_agents() == ["recent", "middle"]
        assert set(eng.loaded_agent_ids()) == {"recent", "middle"}
        assert eng.preload_agents(0) == []
        hits = eng.recall(RecallQuery("recent", "memory of recent")).memories
        assert hits and hits[0].memory.content == "a memory of recent"
    finally:
        eng.close()
