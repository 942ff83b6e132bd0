"""Contextual embeddings (context_embedding.py): a reply's vector carries what it replies to."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import FakeEmbedder, open_engine
from engram_server.engine import codec
from engram_server.engine.context_embedding import contextual_vectors, mix
from engram_server.engine.engine import Engine
from engram_server.engine.models import NewMemory, RecallMode, RecallQuery
from engram_server.engine.storage import CF_VECTORS

EMB = FakeEmbedder(dim=512)  # wide enough that unrelated texts hardly collide


def _vec(eng: Engine, agent: str, mid: str) -> np.ndarray:
    """The vector stored for the memory (what the index holds too)."""
    raw = eng.storage.get(CF_VECTORS, eng.keyspace.agent(agent).record(mid))
    assert raw is not None
    return codec.vector_from_bytes(raw)[1]


def _dialogue(session: str = "s1") -> list[NewMemory]:
    return [
        NewMemory("a", "Alice: what is your favourite dessert", session_id=session, event_time=1000.0),
        NewMemory("a", "Bob: coconut ice cream, no contest", session_id=session, event_time=1001.0),
    ]


def _distractors() -> list[NewMemory]:
    return [
        NewMemory("a", "Carol: the train was late again this morning", session_id="s2", event_time=500.0),
        NewMemory("a", "Dave: my bike needs a new chain", session_id="s3", event_time=600.0),
        NewMemory("a", "Erin: we painted the fence blue", event_time=700.0),
    ]


@pytest.mark.parametrize("weight", [0.0, 0.5])
def test_a_reply_is_found_by_the_words_of_what_it_answers(data_dir: Path, weight: float) -> None:
    eng = open_engine(data_dir, embedder=EMB, contextual_embedding_weight=weight, session_context_weight=0.0)
    try:
        eng.store_batch(_distractors())
        question, reply = (m for m, _ in eng.store_batch(_dialogue()))
        res = eng.recall(RecallQuery("a", "favourite dessert", top_k=5, mode=RecallMode.VECTOR))
        ranked = [s.memory.id for s in res.memories]
        score = {s.memory.id: s.vector_score for s in res.memories}
        assert ranked[0] == question.id
        if weight > 0:
            # The reply shares no word with the query; its context does.
            assert ranked[1] == reply.id and score[reply.id] > 0.2
        else:
            assert score.get(reply.id, 0.0) < 0.1
        assert eng.get("a", reply.id).content == "Bob: coconut ice cream, no contest"  # content unchanged
    finally:
        eng.close()


def test_vector_is_own_embedding_mixed_with_the_predecessor(data_dir: Path) -> None:
    eng = open_engine(data_dir, embedder=EMB, contextual_embedding_weight=0.5, speaker_embedding_weight=0.0)
    try:
        (q, _), (r, _) = eng.store_batch(_dialogue())
        (solo, _) = eng.store(NewMemory("a", "Frank: no session here", event_time=1002.0))
        own_q = EMB.embed_documents([q.content])[0]
        own_r = EMB.embed_documents([r.content])[0]
        assert np.allclose(_vec(eng, "a", q.id), own_q, atol=1e-6)  # first of its session: itself
        expected = own_r + 0.5 * own_q
        assert np.allclose(_vec(eng, "a", r.id), expected / np.linalg.norm(expected), atol=1e-6)
        assert np.allclose(_vec(eng, "a", solo.id), EMB.embed_documents([solo.content])[0], atol=1e-6)
    finally:
        eng.close()


def test_batch_order_and_separate_stores_give_the_same_vectors(tmp_path: Path) -> None:
    turns = [*_dialogue(), NewMemory("a", "Alice: with sprinkles?", session_id="s1", event_time=1002.0)]
    one = open_engine(tmp_path / "one", embedder=EMB, speaker_embedding_weight=0.0)
    two = open_engine(tmp_path / "two", embedder=EMB, speaker_embedding_weight=0.0)
    try:
        batch = {m.content: _vec(one, "a", m.id) for m, _ in one.store_batch(list(reversed(turns)))}
        single = {}
        for t in turns:
            m, _ = two.store(t)
            single[m.content] = _vec(two, "a", m.id)
        for content, v in batch.items():
            assert np.allclose(v, single[content], atol=1e-6), content
    finally:
        one.close()
        two.close()


def test_a_late_arrival_takes_its_predecessor_in_time(data_dir: Path) -> None:
    eng = open_engine(data_dir, embedder=EMB, speaker_embedding_weight=0.0)
    try:
        (first, _) = eng.store(NewMemory("a", "Alice: the lake was frozen", session_id="s", event_time=10.0))
        eng.store(NewMemory("a", "Alice: then we went home", session_id="s", event_time=30.0))
        (late, _) = eng.store(NewMemory("a", "Bob: did you skate on it", session_id="s", event_time=20.0))
        own = EMB.embed_documents([late.content])[0]
        expected = own + 0.5 * _vec(eng, "a", first.id)
        assert np.allclose(_vec(eng, "a", late.id), expected / np.linalg.norm(expected), atol=1e-6)
    finally:
        eng.close()


def test_an_update_of_the_content_keeps_the_context(data_dir: Path) -> None:
    from engram_server.engine.models import MemoryPatch

    eng = open_engine(data_dir, embedder=EMB, speaker_embedding_weight=0.0)
    try:
        (q, _), (r, _) = eng.store_batch(_dialogue())
        eng.update("a", r.id, MemoryPatch(content="Bob: mango sorbet"))
        own = EMB.embed_documents(["Bob: mango sorbet"])[0]
        expected = own + 0.5 * _vec(eng, "a", q.id)
        assert np.allclose(_vec(eng, "a", r.id), expected / np.linalg.norm(expected), atol=1e-6)
    finally:
        eng.close()


def test_contextual_vectors_chain_within_a_batch_and_decay() -> None:
    e = np.eye(3, dtype=np.float32)
    keys = [(3.0, 0.0, "c"), (1.0, 0.0, "a"), (2.0, 0.0, "b")]
    out = contextual_vectors(keys, ["s", "s", "s"], e, 0.5, lambda s, k: None, lambda m: None)
    # a is first; b = norm(e1 + 0.5 a); c = norm(e0 + 0.5 b): a's share in c is smaller than b's.
    assert np.allclose(out[1], e[1])
    assert np.allclose(out[2], mix(e[2], e[1], 0.5))
    assert np.allclose(out[0], mix(e[0], out[2], 0.5))
    assert 0 < out[0][1] < out[0][2] < out[0][0]
    assert np.allclose(contextual_vectors(keys, ["s"] * 3, e, 0.0, lambda s, k: None, lambda m: None), e)


def test_reembedding_after_a_model_change_keeps_the_context(data_dir: Path) -> None:
    eng = open_engine(data_dir, embedder=EMB, speaker_embedding_weight=0.0)
    (q, _), (r, _) = eng.store_batch(_dialogue())
    eng.close()
    other = FakeEmbedder(256, model_id="other-model")
    eng = open_engine(data_dir, embedder=other, reembed_on_model_change=True, speaker_embedding_weight=0.0)
    try:
        own_q, own_r = other.embed_documents([q.content, r.content])
        expected = own_r + 0.5 * own_q
        assert np.allclose(_vec(eng, "a", q.id), own_q, atol=1e-6)
        assert np.allclose(_vec(eng, "a", r.id), expected / np.linalg.norm(expected), atol=1e-6)
    finally:
        eng.close()


@pytest.mark.parametrize(
    ("content", "label"),
    [
        ("Nate: I just got a dog", "Nate"),
        ("user: prefers dark mode", "user"),
        ("Dr Ann Lee: take two a day", "Dr Ann Lee"),
        ("see http://example.com: it is down", ""),  # a URL, not a label
        ("The plan: leave at six", "The plan"),  # a short heading counts too (harmless)
        ("I told him. Then: nothing", ""),  # sentence punctuation before the colon
        ("one two three four five: words", ""),  # more than four words
        ("no label at all", ""),
    ],
)
def test_speaker_of(content: str, label: str) -> None:
    from engram_server.engine.context_embedding import speaker_of

    assert speaker_of(content) == label


@pytest.mark.parametrize("weight", [0.0, 0.5])
def test_the_speaker_counts_in_what_a_turn_is_about(data_dir: Path, weight: float) -> None:
    eng = open_engine(
        data_dir,
        embedder=EMB,
        speaker_embedding_weight=weight,
        contextual_embedding_weight=0.0,
        session_context_weight=0.0,
    )
    try:
        (nate, _), (joanna, _) = eng.store_batch(
            [
                # Nate's turn says "I"; the other one names him but is about Joanna's own puppy.
                NewMemory("a", "Nate: I adopted a puppy and we run by the river every single morning now"),
                NewMemory("a", "Joanna: Nate, my puppy is lovely"),
            ]
        )
        res = eng.recall(RecallQuery("a", "Nate puppy", top_k=2, mode=RecallMode.VECTOR))
        ranked = [s.memory.id for s in res.memories]
        assert ranked == ([nate.id, joanna.id] if weight > 0 else [joanna.id, nate.id])
        own = EMB.embed_documents([nate.content, "Nate"])
        expected = own[0] + weight * own[1]
        assert np.allclose(_vec(eng, "a", nate.id), expected / np.linalg.norm(expected), atol=1e-6)
    finally:
        eng.close()


def test_other_context_weights_are_reembedded_in_the_background(tmp_path: Path) -> None:
    """Vectors made with other context weights (or before there were any) are made again by the
    background maintenance while the agent is served: afterwards they equal those of an engine
    that stored the memories with today's weights."""
    old = open_engine(tmp_path / "a", embedder=EMB, contextual_embedding_weight=0.0, speaker_embedding_weight=0.0)
    mems = [m for m, _ in old.store_batch(_dialogue() + _distractors())]
    old.close()
    eng = open_engine(tmp_path / "a", embedder=EMB, contextual_embedding_weight=0.5, speaker_embedding_weight=0.5)
    ref = open_engine(tmp_path / "b", embedder=EMB, contextual_embedding_weight=0.5, speaker_embedding_weight=0.5)
    try:
        assert eng.recall(RecallQuery("a", "favourite dessert", top_k=3)).memories  # served meanwhile
        eng.run_maintenance()
        ref_mems = [m for m, _ in ref.store_batch(_dialogue() + _distractors())]
        for m, r in zip(mems, ref_mems, strict=True):
            assert np.allclose(_vec(eng, "a", m.id), _vec(ref, "a", r.id), atol=1e-5), m.content
        before = _vec(eng, "a", mems[1].id)
        eng.run_maintenance()  # nothing left to do
        assert np.array_equal(_vec(eng, "a", mems[1].id), before)
    finally:
        eng.close()
        ref.close()
