"""The recall pipeline (docs/design/recall.md): candidates from the vector and keyword indexes,
fused by rank, lent session context, adjusted by importance and recency, cut to top_k."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from .access import AccessTracker
from .agent import AgentState
from .agent_store import AgentStore
from .catalogue import Entry, compile_filter
from .config import EngineConfig
from .fusion import CANDIDATE_DEPTH, FusedHit, adjust, fuse, spread_session_context
from .lazy_embedder import LazyEmbedder
from .models import RecallMode, RecallQuery, RecallResult, ScoredMemory, ScoreExplanation


class Recall:
    def __init__(self, agents: AgentStore, embedder: LazyEmbedder, access: AccessTracker, config: EngineConfig) -> None:
        self._agents = agents
        self._embedder = embedder
        self._access = access
        self._config = config

    def recall(self, query: RecallQuery) -> RecallResult:
        """Hybrid / vector / keyword recall with filters applied before top_k."""
        t0 = time.perf_counter()
        mode = query.mode
        pred = compile_filter(query.filter)
        # The query embeds on the embedder's thread while this one searches the keywords.
        qfut = self._embedder.get().submit_query(query.query) if mode is not RecallMode.KEYWORD else None
        st = self._agents.get(query.agent_id)
        now = time.time()
        entries = st.entries

        def allowed(mid: str) -> bool:
            e = entries.get(mid)
            return e is not None and e.live(now) and (pred is None or pred(e))

        depth = max(CANDIDATE_DEPTH, query.top_k)
        assert st.vindex is not None and st.kindex is not None
        # Without a filter and with nothing expired, every indexed memory may be returned: the
        # indexes then search without the per-candidate check (the graph is asked for half as
        # many candidates). Deletes are tombstoned in the indexes, and the check below still
        # drops what a concurrent write removed.
        expiring = st.min_expires and st.min_expires <= now
        search_filter = allowed if pred is not None or expiring else None
        khits = st.kindex.search(query.query, depth, search_filter) if mode is not RecallMode.VECTOR else []
        vhits = st.vindex.search(qfut.result(), depth, search_filter) if qfut is not None else []
        fused = fuse(vhits, khits, mode)
        fused = [h for h in fused if allowed(h.id)]  # a concurrent delete between search and here
        if self._config.session_context_weight > 0:
            fused = self._with_session_context(st, fused, allowed)
        hl_days = self._config.decay_half_life_days

        def half_life(mid: str) -> float:
            e = entries.get(mid)
            return hl_days.get(e.mtype if e else "episodic", 30.0) * 86400.0

        def importance(mid: str) -> float:
            e = entries.get(mid)
            return self._effective_importance(e, now) if e is not None else 0.5

        def age(mid: str) -> float:
            e = entries.get(mid)
            return max(now - e.event_time, 0.0) if e is not None else 0.0

        ranked = adjust(fused, importance, age, half_life)
        chosen = [h for h in ranked if h.score >= query.min_score][: query.top_k]
        with st.lock:
            recs = self._agents.read_many(st, [h.id for h in chosen])
        out: list[ScoredMemory] = []
        for h in chosen:
            m = recs.get(h.id)
            if m is None:
                continue
            expl = None
            if query.explain:
                expl = ScoreExplanation(
                    h.vector_score,
                    h.keyword_score,
                    h.vector_rank,
                    h.keyword_rank,
                    h.fused_score,
                    h.importance_boost,
                    h.recency_boost,
                    h.context_boost,
                )
            out.append(ScoredMemory(m, h.score, h.vector_score, h.keyword_score, expl))
        if query.include_associated and out:
            out.extend(self._associated(st, out, allowed))
        self._access.touch(st, [s.memory.id for s in out], now)
        return RecallResult(out, len(fused), (time.perf_counter() - t0) * 1000)

    def recall_batch(self, queries: list[RecallQuery]) -> list[RecallResult]:
        return [self.recall(q) for q in queries]

    def _with_session_context(
        self, st: AgentState, fused: list[FusedHit], allowed: Callable[[str], bool]
    ) -> list[FusedHit]:
        """Hits lend relevance to the memories next to them in their session (fusion.py)."""
        if not st.sessions:  # no memory of this agent has a session: skip the lock
            return fused
        entries = st.entries
        with st.lock:  # the session order changes with writes
            near: dict[str, list[str]] = {}
            for h in fused:
                e = entries.get(h.id)
                if e is not None and e.session:
                    near[h.id] = [n for n in st.sessions.neighbours(e, entries) if allowed(n)]
        if not near:
            return fused
        return spread_session_context(fused, lambda mid: near.get(mid, ()), self._config.session_context_weight)

    def _effective_importance(self, e: Entry, now: float) -> float:
        """Importance decays with time since the memory was last written or used (half-life
        per type); computed at recall time, never written back."""
        hl = self._config.decay_half_life_days.get(e.mtype, 0.0) * 86400.0
        if hl <= 0:
            return e.importance
        ref = max(e.updated_at, e.last_accessed_at)
        return e.importance * math.pow(2.0, -max(now - ref, 0.0) / hl)

    def _associated(
        self, st: AgentState, hits: list[ScoredMemory], allowed: Callable[[str], bool]
    ) -> list[ScoredMemory]:
        have = {s.memory.id for s in hits}
        extra: dict[str, float] = {}
        with st.lock:
            for s in hits:
                for link in st.links_of(s.memory.id):
                    other = link.target_id if link.source_id == s.memory.id else link.source_id
                    if other not in have and allowed(other):
                        # Scores stay in [0, 1] (fusion.adjust): a link weight above 1 caps there.
                        extra[other] = max(extra.get(other, 0.0), min(s.score * link.weight, 1.0))
            recs = self._agents.read_many(st, list(extra))
        return [
            ScoredMemory(recs[mid], sc, associated=True)
            for mid, sc in sorted(extra.items(), key=lambda t: -t[1])
            if mid in recs
        ]
