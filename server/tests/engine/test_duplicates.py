"""Duplicates and upserts on the write path (writes.py), and consolidation (bulk.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import FakeEmbedder, make_config
from engram_server.engine.catalogue import normalise_content
from engram_server.engine.engine import Engine
from engram_server.engine.errors import Aborted
from engram_server.engine.models import (
    DuplicatePolicy,
    MemoryFilter,
    NewMemory,
    StoreOutcome,
)

EXACT, NEAR, OFF = DuplicatePolicy.EXACT, DuplicatePolicy.NEAR, DuplicatePolicy.OFF


def new(content: str, policy: DuplicatePolicy = EXACT, **kw: object) -> NewMemory:
    return NewMemory("a", content, duplicate_policy=policy, **kw)  # type: ignore[arg-type]


def test_normalised_text_ignores_case_width_whitespace_and_trailing_punctuation() -> None:
    fullwidth = "\uff34\uff48\uff45 user prefers tea\n"
    same = ["The user prefers tea.", "the user  prefers TEA", "The user prefers tea!!", fullwidth]
    assert len({normalise_content(t) for t in same}) == 1
    differ = ["The user prefers tea", "The user prefers coffee", "The user prefers tea, not coffee", "tea. user"]
    assert len({normalise_content(t) for t in differ}) == len(differ)


def test_the_same_fact_stored_three_times_is_one_memory(engine: Engine) -> None:
    first, o1 = engine.store(new("The user prefers window seats", importance=0.4, tags=["travel"]))
    second, o2 = engine.store(new("the user prefers window seats.", importance=0.9, tags=["seats"], metadata={"k": 1}))
    third, o3 = engine.store(new("The user prefers window seats", session_id="s3"))
    assert (o1, o2, o3) == (StoreOutcome.CREATED, StoreOutcome.MERGED, StoreOutcome.MERGED)
    assert first.id == second.id == third.id
    got = engine.get("a", first.id)
    assert got.version == 3 and got.importance == 0.9 and got.tags == ["travel", "seats"]
    assert got.metadata == {"k": 1} and got.access_count == 2 and got.session_id == ""
    assert got.content == "The user prefers window seats"  # the newest text
    assert [m.version for m in engine.history("a", first.id)] == [1, 2, 3]
    assert engine.list_memories("a").total_size == 1


def test_policy_off_and_client_ids_never_merge(engine: Engine) -> None:
    engine.store(new("Deploys happen on Fridays"))
    _, o = engine.store(new("Deploys happen on Fridays", OFF))
    assert o is StoreOutcome.CREATED
    _, o = engine.store(new("Deploys happen on Fridays", id="mine"))  # the caller named it
    assert o is StoreOutcome.CREATED
    assert engine.list_memories("a").total_size == 3


def test_a_duplicate_in_the_same_batch_merges_into_the_first(engine: Engine) -> None:
    res = engine.store_batch([new("One fact"), new("one fact."), new("Another fact")])
    assert [o for _, o in res] == [StoreOutcome.CREATED, StoreOutcome.MERGED, StoreOutcome.CREATED]
    assert res[0][0].id == res[1][0].id and res[1][0].version == 2
    assert engine.list_memories("a").total_size == 2


def test_expired_and_deleted_memories_are_not_merged_into(engine: Engine) -> None:
    gone, _ = engine.store(new("A passing remark"))
    engine.delete("a", gone.id)
    again, o = engine.store(new("A passing remark"))
    assert o is StoreOutcome.CREATED and again.id != gone.id


def test_near_duplicates_merge_within_the_threshold_only(engine: Engine) -> None:
    # The fake embedder is a bag of words: the same words in another order are cosine 1.
    first, _ = engine.store(new("window seats the user prefers"))
    same_words, o = engine.store(new("the user prefers window seats", NEAR))
    assert o is StoreOutcome.MERGED and same_words.id == first.id
    other, o = engine.store(new("the user prefers aisle seats on trains", NEAR, duplicate_threshold=0.99))
    assert o is StoreOutcome.CREATED and other.id != first.id
    # EXACT does not look at vectors
    _, o = engine.store(new("seats window prefers user the", EXACT))
    assert o is StoreOutcome.CREATED


def test_upsert_by_key_replaces_keeps_identity_and_history(engine: Engine) -> None:
    a, o = engine.store(new("profile v1", key="user/profile", tags=["x"], importance=0.7))
    assert o is StoreOutcome.CREATED and a.key == "user/profile"
    b, o = engine.store(new("profile v2", key="user/profile"))
    assert o is StoreOutcome.REPLACED and b.id == a.id and b.version == 2
    got = engine.get("a", a.id)
    assert got.content == "profile v2" and got.tags == [] and got.importance == 0.5 and got.created_at == a.created_at
    assert [m.content for m in engine.history("a", a.id)] == ["profile v1", "profile v2"]
    # keys filter, per agent
    page = engine.list_memories("a", MemoryFilter(keys=["user/profile"]))
    assert [m.id for m in page.memories] == [a.id]
    other, o = engine.store(NewMemory("b", "profile of b", key="user/profile"))
    assert o is StoreOutcome.CREATED and other.id != a.id
    # a keyed store is never merged as a duplicate of another memory
    c, o = engine.store(new("profile v2", key="second"))
    assert o is StoreOutcome.CREATED and c.id != a.id


def test_deleting_a_keyed_memory_frees_its_key(engine: Engine) -> None:
    a, _ = engine.store(new("v1", key="k"))
    engine.delete("a", a.id)
    b, o = engine.store(new("v2", key="k"))
    assert o is StoreOutcome.CREATED and b.id != a.id


def test_a_key_being_stored_concurrently_is_aborted_not_duplicated(engine: Engine) -> None:
    st = engine._agents.get("a")
    st.claimed_keys.add("busy")  # another store of this key is under way
    with pytest.raises(Aborted):
        engine.store(new("x", key="busy"))


def test_keys_and_duplicates_survive_a_restart_and_a_rebuilt_catalogue(data_dir: Path) -> None:
    eng = Engine.open(make_config(data_dir), embedder=FakeEmbedder())
    keyed, _ = eng.store(new("keyed", key="k1"))
    plain, _ = eng.store(new("A plain fact"))
    eng.close()  # writes the catalogue snapshot
    for from_records in (False, True):
        eng = Engine.open(make_config(data_dir), embedder=FakeEmbedder())
        try:
            if from_records:  # as after an upgrade from a version-2 snapshot: rebuilt from the records
                eng._agents.snapshots.delete(eng.keyspace.agent("a").catalogue_snapshot)
            assert eng._agents.get("a").by_key == {"k1": keyed.id}
            again, o = eng.store(new(f"keyed again {from_records}", key="k1"))
            assert o is StoreOutcome.REPLACED and again.id == keyed.id
            dup, o = eng.store(new("a plain fact"))
            assert o is StoreOutcome.MERGED and dup.id == plain.id
        finally:
            eng.close()


def test_consolidation_groups_by_own_vectors_and_merges_keeping_history(engine: Engine) -> None:
    ids = [engine.store(new(t, OFF))[0].id for t in ("tea the user likes", "the user likes tea", "The user likes tea.")]
    unrelated, _ = engine.store(new("the deploy runs on fridays", OFF))
    engine.link("a", unrelated.id, ids[2], "related_to")
    groups = engine.consolidate("a", 0.95, dry_run=True)
    assert len(groups) == 1 and sorted([groups[0].keep_id, *groups[0].duplicate_ids]) == sorted(ids)
    assert engine.list_memories("a").total_size == 4  # a dry run changes nothing
    merged = engine.consolidate("a", 0.95, dry_run=False)
    keep = merged[0].keep_id
    assert engine.list_memories("a").total_size == 2
    assert engine.get("a", keep).version == 2
    assert [link.target_id for link in engine.graph("a", unrelated.id).links] == [keep]  # links moved
