"""Recall scores lie in [0, 1] and their explanation parts add up to them (fusion.adjust)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import open_engine
from engram_server.engine.models import NewMemory, RecallMode, RecallQuery


@pytest.mark.parametrize("mode", list(RecallMode))
def test_recall_scores_are_bounded_and_explained(data_dir: Path, mode: RecallMode) -> None:
    eng = open_engine(data_dir)
    try:
        eng.store_batch(
            [
                NewMemory("a", "Alice: what is your favourite dessert", session_id="s", importance=1.0),
                NewMemory("a", "Bob: coconut ice cream", session_id="s", importance=0.0),
                NewMemory("a", "dessert recipes with coconut", importance=0.9),
                NewMemory("a", "the train was late", importance=0.2, event_time=1.0),
            ]
        )
        res = eng.recall(RecallQuery("a", "favourite dessert coconut", top_k=10, mode=mode, explain=True))
        assert res.memories
        for s in res.memories:
            e = s.explanation
            assert e is not None
            assert 0.0 <= s.score <= 1.0
            assert s.score == pytest.approx(e.fused_score + e.importance_boost + e.recency_boost, abs=1e-9)
            assert 0.0 <= e.context_boost <= e.fused_score + 1e-9
        assert [s.score for s in res.memories] == sorted((s.score for s in res.memories), reverse=True)
        # min_score reads on the same scale
        cut = res.memories[0].score
        kept = eng.recall(RecallQuery("a", "favourite dessert coconut", top_k=10, mode=mode, min_score=cut))
        assert [s.memory.id for s in kept.memories] == [res.memories[0].memory.id]
    finally:
        eng.close()
