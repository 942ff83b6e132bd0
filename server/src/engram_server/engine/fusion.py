"""Fusing vector and keyword candidates, then small importance / recency adjustments.

Formulas (docs/design/recall.md explains the choices and the LoCoMo numbers behind them):

* RRF (default): fused = sum_i w_i / (k_rrf + rank_i) / sum_i w_i / (k_rrf + 1), over the lists
  that ranked the item; 1.0 means ranked first by every list.
* weighted: fused = (w_v * cos' + w_k * bm25') / (w_v + w_k), where cos' = max(cos, 0) and
  bm25' = bm25 / max bm25 of the candidate list.
* vector mode: fused = max(cos, 0); keyword mode: fused = bm25 / max bm25.
* session context: fused' = fused + (1 - fused) * w_c * max(fused of its session neighbours),
  the memories just before and after it in the same session (w_c = 0.4 by default). A turn that
  answers the question a matching turn asked rises with it; fused' stays in [0, 1] and a memory
  without a session is unchanged.
* adjust: score = fused * ((1 - a) + 2a * importance + r * 2^(-age / half_life)) / (1 + a + r),
  with a = 0.05 and r = 0.05 by default: importance and recency move a score by at most +-5 % and
  +5 % of its relevance (they reorder near-ties, relevance dominates), and the division keeps the
  score in [0, 1]: 1 is a memory ranked first by every list, of importance 1, that just happened.
  The explanation's parts are amounts of score that add up to it:
  score = fused_score + importance_boost + recency_boost, with
  fused_score = fused * (1 - a) / (1 + a + r) (context_boost, what session neighbours lent, is
  part of it, in the same unit), importance_boost = fused * 2a * importance / (1 + a + r) and
  recency_boost = fused * r * 2^(-age / half_life) / (1 + a + r), all >= 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from .models import RecallMode

# Tuned on LoCoMo (docs/design/recall.md): a small k lets a first place in one list count,
# and 30 candidates per list is where recall@10 stops improving.
DEFAULT_K_RRF = 10.0
CANDIDATE_DEPTH = 30
# LoCoMo recall@10 +4 to +5 points at 0.3-0.5 (docs/design/recall.md); 0 turns it off.
DEFAULT_SESSION_CONTEXT_WEIGHT = 0.4

Hits = Sequence[tuple[str, float]]


@dataclass(slots=True)
class FusedHit:  # built about 100 times per recall: slots, and not frozen (its __init__ is 3x slower)
    id: str
    fused_score: float  # relevance only, in [0, 1] (after adjust(): its share of the score)
    vector_score: float = 0.0  # cosine similarity; 0 when not a vector candidate
    keyword_score: float = 0.0  # raw BM25; 0 when not a keyword candidate
    vector_rank: int = 0  # 1-based; 0 = not ranked
    keyword_rank: int = 0
    # After adjust() every part below is an amount of score (see the module docstring):
    # score = fused_score + importance_boost + recency_boost, context_boost part of fused_score.
    importance_boost: float = 0.0
    recency_boost: float = 0.0
    context_boost: float = 0.0  # what session neighbours added to fused_score
    score: float = 0.0  # final: fused_score adjusted (== fused_score before adjust())


def fuse(
    vector_hits: Hits,
    keyword_hits: Hits,
    mode: RecallMode | str = RecallMode.HYBRID,
    k_rrf: float = DEFAULT_K_RRF,
    weights: tuple[float, float] = (1.0, 1.0),
    method: str = "rrf",
) -> list[FusedHit]:
    """Merge ranked (id, score) lists (best first) into FusedHits sorted by fused_score."""
    mode = RecallMode(mode)
    w_v, w_k = weights
    vec = {id_: (r, s) for r, (id_, s) in enumerate(vector_hits, start=1)}
    kw = {id_: (r, s) for r, (id_, s) in enumerate(keyword_hits, start=1)}
    if mode is RecallMode.VECTOR:
        kw, w_k = {}, 0.0
    elif mode is RecallMode.KEYWORD:
        vec, w_v = {}, 0.0
    max_kw = max((s for _, s in kw.values()), default=0.0)

    def kw_norm(s: float) -> float:
        return s / max_kw if max_kw > 0 else 0.0

    out: list[FusedHit] = []
    for id_ in dict.fromkeys([*vec, *kw]):
        vr, vs = vec.get(id_, (0, 0.0))
        kr, ks = kw.get(id_, (0, 0.0))
        if mode is RecallMode.VECTOR:
            fused = max(vs, 0.0)
        elif mode is RecallMode.KEYWORD:
            fused = kw_norm(ks)
        elif method == "weighted":
            total = w_v + w_k
            fused = (w_v * max(vs, 0.0) + w_k * kw_norm(ks)) / total if total > 0 else 0.0
        elif method == "rrf":
            num = (w_v / (k_rrf + vr) if vr else 0.0) + (w_k / (k_rrf + kr) if kr else 0.0)
            best = (w_v + w_k) / (k_rrf + 1)
            fused = num / best if best > 0 else 0.0
        else:
            raise ValueError(f"unknown fusion method {method!r}")
        out.append(FusedHit(id_, fused, vs, ks, vr, kr, score=fused))
    # Ties (common in RRF) go to the better vector rank, then the better keyword rank.
    out.sort(
        key=lambda h: (
            -h.fused_score,
            h.vector_rank or math.inf,
            h.keyword_rank or math.inf,
        )
    )
    return out


def spread_session_context(
    fused: Sequence[FusedHit],
    neighbours: Callable[[str], Sequence[str]],
    weight: float = DEFAULT_SESSION_CONTEXT_WEIGHT,
) -> list[FusedHit]:
    """Let each hit lend relevance to its session neighbours (which may not be candidates yet).

    `neighbours(id)` returns the ids next to `id` in its session that the query may return
    (filters already applied). Sorted like fuse().
    """
    if weight <= 0 or not fused:
        return list(fused)
    lent: dict[str, float] = {}
    for h in fused:
        if h.fused_score <= 0:
            continue
        for n in neighbours(h.id):
            if h.fused_score > lent.get(n, 0.0):
                lent[n] = h.fused_score
    if not lent:
        return list(fused)
    out: list[FusedHit] = []
    seen: set[str] = set()
    for h in fused:
        seen.add(h.id)
        got = lent.get(h.id, 0.0)
        if got <= 0:
            out.append(h)
            continue
        boost = (1.0 - h.fused_score) * weight * got
        f = h.fused_score + boost
        out.append(
            FusedHit(
                h.id, f, h.vector_score, h.keyword_score, h.vector_rank, h.keyword_rank, context_boost=boost, score=f
            )
        )
    for id_, got in lent.items():
        if id_ not in seen:
            boost = weight * got
            out.append(FusedHit(id_, boost, context_boost=boost, score=boost))
    out.sort(key=lambda h: (-h.fused_score, h.vector_rank or math.inf, h.keyword_rank or math.inf))
    return out


def adjust(
    fused: Sequence[FusedHit],
    importance: Mapping[str, float] | Callable[[str], float],
    age_seconds: Mapping[str, float] | Callable[[str], float],
    half_life: float | Mapping[str, float] | Callable[[str], float],
    importance_weight: float = 0.05,
    recency_weight: float = 0.05,
) -> list[FusedHit]:
    """Final scores in [0, 1] from relevance, importance and recency; re-sorted by score.

    importance in [0, 1] (0.5 neutral); age_seconds >= 0 since the memory's event time;
    half_life in seconds, per hit (e.g. per memory type) or global; <= 0 disables recency.
    score = fused * ((1 - a) + 2a * importance + r * 2^(-age / half_life)) / (1 + a + r): the
    order is that of fused * (1 + a * (2 * importance - 1) + r * recency), the relative boosts of
    before, divided by their largest value so that the score stays within [0, 1]. The parts of
    the returned hits are in score units and add up: score = fused_score + importance_boost +
    recency_boost (context_boost is part of fused_score).
    """

    imp_of = _getter(importance, 0.5)
    age_of = _getter(age_seconds, 0.0)
    hl_of = _getter(half_life, 0.0)
    a = max(importance_weight, 0.0)
    r = max(recency_weight, 0.0)
    unit = 1.0 / (1.0 + a + r)  # the largest factor, which maps to a score of 1
    share = (1.0 - a) * unit  # relevance's part of the score
    out: list[FusedHit] = []
    for h in fused:
        imp = min(max(imp_of(h.id), 0.0), 1.0)
        age = max(age_of(h.id), 0.0)
        hl = hl_of(h.id)
        f = h.fused_score
        base = f * share
        ib = f * 2.0 * a * imp * unit
        rb = f * r * math.pow(2.0, -age / hl) * unit if hl > 0 else 0.0
        out.append(
            FusedHit(
                h.id,
                base,
                h.vector_score,
                h.keyword_score,
                h.vector_rank,
                h.keyword_rank,
                ib,
                rb,
                h.context_boost * share,
                base + ib + rb,
            )
        )
    out.sort(key=lambda h: -h.score)
    return out


def _getter(src: Mapping[str, float] | Callable[[str], float] | float, default: float) -> Callable[[str], float]:
    """One lookup function per source, chosen once per call (not per hit)."""
    if isinstance(src, (int, float)):
        value = float(src)
        return lambda _id: value
    if callable(src):
        return src
    return lambda id_: float(src.get(id_, default))
