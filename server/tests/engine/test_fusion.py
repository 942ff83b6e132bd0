from __future__ import annotations

import pytest
from engram_server.engine.fusion import adjust, fuse
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
    assert a.importance_boost == pytest.approx(-0.05) and a.recency_boost == pytest.approx(0.0)
    assert b.importance_boost == pytest.approx(0.05) and b.recency_boost == pytest.approx(0.05)
    assert b.score == pytest.approx(0.5 * 1.1)
    tie = fuse([("a", 0.5), ("b", 0.5)], [], mode="vector")
    assert adjust(tie, {"a": 0.2, "b": 0.9}, lambda _: 0.0, 0.0)[0].id == "b"
