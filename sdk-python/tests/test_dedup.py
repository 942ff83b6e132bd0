"""Duplicates, upserts by key and consolidation against a real engram-server, REST and gRPC."""

from __future__ import annotations

import math

import pytest

import engram
from engram import errors
from engram.models import StoreOutcome

from .conftest import Server

pytestmark = pytest.mark.server


def test_store_outcomes(client: engram.Client, agent_id: str) -> None:
    first = client.store(agent_id, "The user prefers window seats", importance=0.4, tags=["travel"])
    assert first.outcome == StoreOutcome.CREATED and first.created
    m = first.memory
    assert m is not None

    # The default policy (exact) merges the same text, ignoring case and trailing punctuation.
    merged = client.store(agent_id, "the user prefers window seats.", importance=0.9, tags=["seats"])
    assert merged.outcome == StoreOutcome.MERGED and not merged.created
    assert merged.memory is not None and merged.memory.id == m.id and merged.memory.version == 2
    assert merged.memory.tags == ["travel", "seats"] and math.isclose(merged.memory.importance, 0.9, rel_tol=1e-6)

    copy = client.store(agent_id, "The user prefers window seats", duplicate_policy="off")
    assert copy.outcome == StoreOutcome.CREATED and copy.memory is not None and copy.memory.id != m.id

    retried = client.store(agent_id, "Stored with an id", id="fixed-id")
    again = client.store(agent_id, "Stored with an id", id="fixed-id")
    assert (retried.outcome, again.outcome) == (StoreOutcome.CREATED, StoreOutcome.UNCHANGED)

    near = client.store(agent_id, "The meeting was moved to Thursday")
    rephrased = client.store(agent_id, "The meeting has been moved to Thursday",
                             duplicate_policy=engram.models.DuplicatePolicy.NEAR, duplicate_threshold=0.9)
    assert rephrased.outcome == StoreOutcome.MERGED
    assert near.memory is not None and rephrased.memory is not None and rephrased.memory.id == near.memory.id


def test_upsert_by_key(client: engram.Client, agent_id: str) -> None:
    first = client.store(agent_id, "theme: light", key="prefs/theme", tags=["ui"])
    assert first.outcome == StoreOutcome.CREATED and first.memory is not None
    assert first.memory.key == "prefs/theme"
    second = client.store(agent_id, "theme: dark", key="prefs/theme")
    assert second.outcome == StoreOutcome.REPLACED and second.memory is not None
    assert (second.memory.id, second.memory.version, second.memory.content) == (first.memory.id, 2, "theme: dark")
    assert second.memory.tags == []  # replaced, not merged
    page = client.list(agent_id, filter={"keys": ["prefs/theme"]})
    assert page.total_size == 1 and page.memories[0].content == "theme: dark"
    with pytest.raises(errors.InvalidArgument):
        client.store(agent_id, "x", key="k", id="i")


def test_batch_store_items_take_key_and_policy(client: engram.Client, agent_id: str) -> None:
    r = client.batch_store([
        {"agent_id": agent_id, "content": "Batch fact"},
        {"agent_id": agent_id, "content": "batch fact."},
        {"agent_id": agent_id, "content": "batch fact.", "duplicate_policy": "off"},
        {"agent_id": agent_id, "content": "keyed", "key": "k1"},
    ])
    assert r.outcomes == [StoreOutcome.CREATED, StoreOutcome.MERGED, StoreOutcome.CREATED, StoreOutcome.CREATED]
    assert r.created_count == 3 and r.memories[3].key == "k1"
    again = client.batch_store([{"agent_id": agent_id, "content": "keyed again", "key": "k1"}])
    assert again.outcomes == [StoreOutcome.REPLACED]


def test_bad_duplicate_arguments_are_clear_errors(client: engram.Client, agent_id: str) -> None:
    with pytest.raises(ValueError, match="expected one of off, exact, near"):
        client.store(agent_id, "x", duplicate_policy="fuzzy")
    with pytest.raises(errors.InvalidArgument):
        client.store(agent_id, "x", duplicate_policy="near", duplicate_threshold=1.5)
    with pytest.raises(TypeError, match="StoreMemoryRequest messages or dicts"):
        client.batch_store(["just a string"])  # type: ignore[list-item]


def test_consolidate(client: engram.Client, agent_id: str) -> None:
    stored = client.batch_store([
        {"agent_id": agent_id, "content": "The user is allergic to peanuts", "importance": 0.9,
         "duplicate_policy": "off"},
        {"agent_id": agent_id, "content": "the user is allergic to peanuts!", "duplicate_policy": "off",
         "tags": ["health"]},
        {"agent_id": agent_id, "content": "Deploys run on Fridays", "duplicate_policy": "off"},
    ])
    keep, dup = stored.memories[0].id, stored.memories[1].id

    preview = client.consolidate(agent_id, dry_run=True)
    assert preview.dry_run and preview.merged_count == 0
    assert [(g.keep_id, g.duplicate_ids) for g in preview.groups] == [(keep, [dup])]
    assert 0.95 <= preview.groups[0].min_similarity <= 1.0001
    assert client.list(agent_id).total_size == 3  # nothing changed

    done = client.consolidate(agent_id, similarity_threshold=0.95)
    assert not done.dry_run and done.merged_count == 1 and done.groups[0].keep_id == keep
    kept = client.get(keep, agent_id=agent_id).memory
    assert kept is not None and kept.version == 2 and "health" in kept.tags
    with pytest.raises(errors.NotFound):
        client.get(dup, agent_id=agent_id)
    assert client.consolidate(agent_id, dry_run=True).groups == []

    with pytest.raises(errors.InvalidArgument):
        client.consolidate(agent_id, similarity_threshold=0.2)


@pytest.mark.anyio
async def test_async_consolidate_and_outcome(server: Server, transport: str, agent_id: str) -> None:
    async with engram.AsyncClient(server.url(transport), api_key=server.api_key) as client:
        first = await client.store(agent_id, "Async duplicate", duplicate_policy="off")
        await client.store(agent_id, "async duplicate", duplicate_policy="off")
        assert first.outcome == StoreOutcome.CREATED
        r = await client.consolidate(agent_id, dry_run=True)
        assert len(r.groups) == 1 and first.memory is not None and r.groups[0].keep_id == first.memory.id
