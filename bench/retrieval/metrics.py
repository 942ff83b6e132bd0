"""Retrieval metrics shared by the quick LoCoMo check and the full bench harness."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence


def recall_at_k(ranked: Sequence[str], gold: Iterable[str], k: int) -> float:
    """|gold in top k| / |gold| (0 when there is no gold)."""
    g = set(gold)
    if not g:
        return 0.0
    return len(g.intersection(ranked[:k])) / len(g)


def ndcg_at_k(ranked: Sequence[str], gold: Iterable[str], k: int) -> float:
    """Binary-relevance nDCG@k."""
    g = set(gold)
    if not g:
        return 0.0
    dcg = sum(1.0 / math.log2(i + 2) for i, x in enumerate(ranked[:k]) if x in g)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(len(g), k)))
    return dcg / ideal


def mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs) if xs else 0.0


class Scoreboard:
    """Accumulates recall@5, recall@10, nDCG@10 per category and overall."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, list[float]]] = {}

    def add(self, category: str, ranked: Sequence[str], gold: Iterable[str]) -> None:
        g = list(gold)
        for cat in (category, "all"):
            r = self.rows.setdefault(cat, {"r@5": [], "r@10": [], "ndcg@10": []})
            r["r@5"].append(recall_at_k(ranked, g, 5))
            r["r@10"].append(recall_at_k(ranked, g, 10))
            r["ndcg@10"].append(ndcg_at_k(ranked, g, 10))

    def summary(self) -> dict[str, dict[str, float]]:
        return {
            cat: {m: round(100 * mean(v), 1) for m, v in r.items()} | {"n": len(r["r@10"])}
            for cat, r in sorted(self.rows.items())
        }
