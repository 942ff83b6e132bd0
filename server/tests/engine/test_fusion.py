from __future__ import annotations

import pytest
from engram_server.engine.fusion import adjust, fuse, spread_session_context
from engram_server.engine.models import RecallMode


def test_rrf_parts_and_order() -> None:
    vec = [("a", 0.9), ("b", 0.8), ("c", 0.1)]
    kw = [("b", 12.0), ("d", 5.0)]
    out = fuse(vec, kw, k_rrf=10)
    assert [h.id for h in out] == ["b", "a", "d", "c"]
    b = out[0]
    assert (b.vector_rank, b.keyword_rank, b.vector_score, b.keyword_score) == (
        2,
        1,
        0.8,
        12.0,
    )
    assert b.fused_score == pytest.approx((1 / 12 + 1 / 11) / (2 / 11))
    assert out[1].keyword_rank == 0 and out[1].keyword_score == 0.0
    assert fuse([("x", 1.0)], [("x", 3.0)])[0].fused_score == pytest.approx(1.0)


def test_modes_and_weighted() -> None:
    vec = [("a", 0.9), ("b", -0.2)]
    kw = [("c", 4.0), ("a", 2.0)]
    v = fuse(vec, kw, mode=RecallMode.VECTOR)
    assert [(h.id, h.fused_score) for h in v] == [("a", 0.9), ("b", 0.0)]
    k = fuse(vec, kw, mode="keyword")
    assert [(h.id, h.fused_score) for h in k] == [("c", 1.0), ("a", 0.5)]
    w = fuse(vec, kw, method="weighted", weights=(0.5, 0.5))
    assert w[0].id == "a" and w[0].fused_score == pytest.approx(0.5 * 0.9 + 0.5 * 0.5)
    with pytest.raises(ValueError):
        fuse(vec, kw, method="nope")


def test_adjust_is_small_and_reorders_ties_only() -> None:
    fused = fuse([("a", 0.9), ("b", 0.5)], [], mode="vector")
    out = adjust(fused, {"a": 0.0, "b": 1.0}, {"a": 1e9, "b": 0.0}, 86400.0)
    assert [h.id for h in out] == ["a", "b"]  # relevance dominates
    a, b = {h.id: h for h in out}["a"], {h.id: h for h in out}["b"]
    # Amounts of score, in units of 1 / (1 + 0.05 + 0.05): importance 0 and a great age add nothing.
    assert a.importance_boost == pytest.approx(0.0) and a.recency_boost == pytest.approx(0.0)
    assert a.score == pytest.approx(0.9 * 0.95 / 1.1)
    assert b.importance_boost == pytest.approx(0.5 * 0.1 / 1.1) and b.recency_boost == pytest.approx(0.5 * 0.05 / 1.1)
    assert b.score == pytest.approx(0.5)  # a half-relevant memory at full importance and fresh
    tie = fuse([("a", 0.5), ("b", 0.5)], [], mode="vector")
    assert adjust(tie, {"a": 0.2, "b": 0.9}, lambda _: 0.0, 0.0)[0].id == "b"


def test_scores_lie_in_0_1_and_their_parts_add_up() -> None:
    vec = [("a", 0.9), ("b", 0.8), ("c", 0.1)]
    kw = [("a", 7.0), ("d", 3.0)]
    fused = spread_session_context(fuse(vec, kw), lambda mid: {"a": ["n"], "d": ["b"]}.get(mid, []), 0.4)
    imp = {"a": 1.0, "b": 0.0, "c": 0.5, "d": 0.7, "n": 0.3}
    out = adjust(fused, imp, {"a": 0.0, "b": 3e6, "c": 1e5}, 86400.0)
    for h in out:
        assert 0.0 <= h.score <= 1.0
        assert h.score == pytest.approx(h.fused_score + h.importance_boost + h.recency_boost)
        assert min(h.fused_score, h.importance_boost, h.recency_boost, h.context_boost) >= 0.0
        assert h.context_boost <= h.fused_score + 1e-12
    top = {h.id: h for h in out}["a"]  # first in both lists, importance 1, age 0: the maximum
    assert top.score == pytest.approx(1.0)


def test_adjust_keeps_the_order_of_the_relative_boosts() -> None:
    """The [0, 1] scores rank exactly as fused * (1 + a * (2 * importance - 1) + r * recency)."""
    import random

    rnd = random.Random(7)
    ids = [f"m{i}" for i in range(200)]
    fused = fuse([(i, rnd.random()) for i in ids], [], mode="vector")
    imp = {i: rnd.random() for i in ids}
    age = {i: rnd.random() * 1e7 for i in ids}
    hl = 30 * 86400.0
    out = adjust(fused, imp, age, hl)
    old = sorted(fused, key=lambda h: -h.fused_score * (1 + 0.05 * (2 * imp[h.id] - 1) + 0.05 * 2 ** (-age[h.id] / hl)))
    assert [h.id for h in out] == [h.id for h in old]
