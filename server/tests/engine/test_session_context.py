"""Session context in recall: the session order index, the spreading formula, and the engine
end to end (a turn next to a matching turn is recalled; filters and deletes are honoured), plus
the event date the keyword index holds."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import open_engine
from engram_server.engine.catalogue import Entry
from engram_server.engine.engine import Engine
from engram_server.engine.fusion import FusedHit, fuse, spread_session_context
from engram_server.engine.keyword_index import keyword_document
from engram_server.engine.models import MemoryFilter, MemoryPatch, NewMemory, RecallMode, RecallQuery
from engram_server.engine.sessions import SessionIndex


def _entry(id_: str, session: str, event_time: float, created_at: float = 0.0) -> Entry:
    return Entry(id_, created_at, created_at, event_time, 0.5, "episodic", 0.0, (), session, frozenset(), 1, 0, 0.0, 1)


def test_session_index_orders_by_event_time_and_follows_changes() -> None:
    idx = SessionIndex()
    entries: dict[str, Entry] = {}

    def put(e: Entry) -> None:
        idx.put(e, entries.get(e.id))
        entries[e.id] = e

    for i, t in enumerate([30.0, 10.0, 20.0, 40.0]):
        put(_entry(f"m{i}", "s1", t))
    put(_entry("other", "s2", 25.0))
    put(_entry("loose", "", 25.0))
    # order in s1: m1(10) m2(20) m0(30) m3(40)
    assert idx.neighbours(entries["m2"], entries) == ["m1", "m0"]
    assert idx.neighbours(entries["m1"], entries) == ["m2"]
    assert idx.neighbours(entries["m3"], entries, radius=2) == ["m0", "m2"]
    assert idx.neighbours(entries["other"], entries) == []
    assert idx.neighbours(entries["loose"], entries) == []
    # a change of event_time moves it; a change of session moves it out
    put(_entry("m3", "s1", 15.0))
    assert idx.neighbours(entries["m3"], entries) == ["m1", "m2"]
    put(_entry("m2", "s2", 26.0))
    assert idx.neighbours(entries["m3"], entries) == ["m1", "m0"]
    assert idx.neighbours(entries["m2"], entries) == ["other"]
    idx.remove(entries.pop("m3"))
    assert idx.neighbours(entries["m1"], entries) == ["m0"]
    # ties on event_time keep creation order
    for i in range(3):
        put(_entry(f"t{i}", "s3", 5.0, created_at=float(i)))
    assert idx.neighbours(entries["t1"], entries) == ["t0", "t2"]


def test_spread_session_context_formula() -> None:
    fused = fuse([("a", 0.9), ("b", 0.5)], [("a", 3.0)])
    near = {"a": ["n1", "b"], "b": ["a"]}
    out = {h.id: h for h in spread_session_context(fused, lambda m: near.get(m, []), 0.4)}
    a0 = next(h for h in fused if h.id == "a")
    b0 = next(h for h in fused if h.id == "b")
    assert out["a"].fused_score == pytest.approx(a0.fused_score + (1 - a0.fused_score) * 0.4 * b0.fused_score)
    assert out["b"].context_boost == pytest.approx((1 - b0.fused_score) * 0.4 * a0.fused_score)
    assert out["n1"].fused_score == pytest.approx(0.4 * a0.fused_score)  # not a candidate before
    assert out["n1"].vector_rank == 0 and out["n1"].keyword_rank == 0
    assert all(0.0 <= h.fused_score <= 1.0 for h in out.values())
    ranked = spread_session_context(fused, lambda m: near.get(m, []), 0.4)
    assert [h.fused_score for h in ranked] == sorted((h.fused_score for h in ranked), reverse=True)
    # weight 0 or no neighbours: unchanged
    assert spread_session_context(fused, lambda m: near.get(m, []), 0.0) == fused
    assert spread_session_context(fused, lambda m: [], 0.4) == fused
    assert spread_session_context([FusedHit("z", 0.0)], lambda m: ["y"], 0.4) == [FusedHit("z", 0.0)]


def _conversation(engine: Engine, agent: str = "a") -> list[str]:
    turns = [
        "Nate: what is your favourite dessert these days?",
        "Joanna: coconut milk ice cream, no doubt",
        "Nate: nice, I also like chocolate mousse",
        "Joanna: the weather turned cold this week",
    ]
    base = datetime(2023, 5, 8, 13, 56, tzinfo=UTC).timestamp()
    out = engine.store_batch(
        [NewMemory(agent, t, session_id="s1", event_time=base + i) for i, t in enumerate(turns)]
        + [NewMemory(agent, "Joanna: unrelated note about gardening", session_id="s2", event_time=base)]
    )
    return [m.id for m, _ in out]


def test_recall_brings_the_answer_next_to_the_question(engine: Engine) -> None:
    ids = _conversation(engine)
    q = RecallQuery("a", "favourite dessert", top_k=3, mode=RecallMode.KEYWORD, explain=True)
    res = engine.recall(q)
    got = [s.memory.id for s in res.memories]
    assert got[0] == ids[0]
    assert ids[1] in got  # no shared word with the query: it came through its session neighbour
    hit = next(s for s in res.memories if s.memory.id == ids[1])
    assert hit.explanation is not None and hit.explanation.context_boost > 0
    assert hit.explanation.keyword_rank == 0
    assert ids[4] not in got  # another session lends nothing


def test_session_context_respects_filters_deletes_and_config(engine: Engine, data_dir: Path) -> None:
    ids = _conversation(engine)
    q = RecallQuery("a", "favourite dessert", top_k=5, mode=RecallMode.KEYWORD)
    flt = MemoryFilter(ids=[ids[0], ids[2], ids[3]])  # the neighbour is filtered out
    got = [s.memory.id for s in engine.recall(replace(q, filter=flt)).memories]
    assert ids[1] not in got and got[0] == ids[0]
    engine.delete("a", ids[1])
    got = [s.memory.id for s in engine.recall(q).memories]
    assert ids[1] not in got and ids[2] in got  # the next turn is now the neighbour
    engine.close()
    off = open_engine(data_dir, session_context_weight=0.0)
    try:
        got = [s.memory.id for s in off.recall(q).memories]
        assert got == [ids[0]]  # only the keyword match
    finally:
        off.close()


def test_keyword_index_holds_the_event_date(engine: Engine) -> None:
    day = datetime(2022, 11, 9, 18, 0, tzinfo=UTC).timestamp()
    assert keyword_document("made ice cream", day) == "made ice cream\n9 November 2022"
    assert keyword_document("x", 0.0) == "x"
    m, _ = engine.store(NewMemory("a", "tried a new recipe", event_time=day))
    engine.store(NewMemory("a", "tried a new recipe", event_time=day + 86400 * 40))
    res = engine.recall(RecallQuery("a", "what did I cook on 9 November, 2022?", mode=RecallMode.KEYWORD))
    assert res.memories[0].memory.id == m.id
    # moving the event re-indexes it
    engine.update("a", m.id, MemoryPatch(event_time=day - 86400 * 400))
    res = engine.recall(RecallQuery("a", "9 November 2022", mode=RecallMode.KEYWORD))
    assert m.id not in [s.memory.id for s in res.memories]
