"""gRPC and REST return identical results for the same calls (qdrant-style congruence test)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import betterproto2
import pytest

import engram
from engram import errors

from .conftest import Server

pytestmark = pytest.mark.server

# Fields that legitimately change between two reads (recall bumps access counts; timing).
VOLATILE = {"took_ms", "access_count", "last_accessed_at", "last_activity_at", "uptime_seconds",
            "request_count", "disk_bytes", "last_used_at"}


def scrub(value: Any) -> Any:
    if isinstance(value, betterproto2.Message):
        value = value.to_dict(casing=betterproto2.Casing.SNAKE)
    if isinstance(value, dict):
        return {k: scrub(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    return value


@pytest.fixture
def both(server: Server) -> Iterator[tuple[engram.Client, engram.Client]]:
    with engram.Client(server.http_url, api_key=server.api_key) as rest, \
            engram.Client(server.grpc_url, api_key=server.api_key) as grpc:
        yield rest, grpc


def test_same_answers(both: tuple[engram.Client, engram.Client], agent_id: str) -> None:
    rest, grpc = both
    stored = rest.batch_store([
        {"agent_id": agent_id, "content": f"congruent memory {i} about {topic}", "tags": [topic],
         "metadata": {"i": i, "nested": {"ok": True}}, "memory_type": "semantic", "importance": 0.1 * i}
        for i, topic in enumerate(["cats", "dogs", "birds", "fish"])
    ])
    ids = [m.id for m in stored.memories]
    grpc.link(agent_id, ids[0], ids[1], relation="related_to")
    rest.update(ids[2], content="congruent memory 2 about parrots", tags=["birds", "parrots"])

    calls: list[Callable[[engram.Client], Any]] = [
        lambda c: c.get(ids[0]),
        lambda c: c.list(agent_id, page_size=2),
        lambda c: c.list(agent_id, filter={"tags_any": ["birds"]}),
        lambda c: list(c.iter_memories(agent_id, page_size=3)),
        lambda c: c.recall(agent_id, "parrots", top_k=3, explain=True),
        lambda c: c.recall(agent_id, "dogs", mode="keyword"),
        lambda c: c.batch_recall([{"agent_id": agent_id, "query": "fish"}]),
        lambda c: c.history(ids[2]),
        lambda c: c.graph(agent_id, ids[0]),
        lambda c: list(c.export(agent_id)),
        lambda c: c.forget(agent_id, filter={"tags_any": ["cats"]}, dry_run=True),
        lambda c: c.get_agent(agent_id),
        lambda c: c.server_info(),
        lambda c: c.cluster_status(),
        lambda c: c.health(),
        lambda c: c.embed(["congruence"]),
    ]
    for i, call in enumerate(calls):
        a, b = scrub(call(rest)), scrub(call(grpc))
        assert json.dumps(a, indent=1, sort_keys=True) == json.dumps(b, indent=1, sort_keys=True), f"call #{i}"


def test_same_errors(both: tuple[engram.Client, engram.Client]) -> None:
    rest, grpc = both
    failing: list[Callable[[engram.Client], Any]] = [
        lambda c: c.get("missing-id"),
        lambda c: c.store("", "x"),
        lambda c: c.recall("a", ""),
        lambda c: c.forget("a", filter=None),
        lambda c: c.create_api_key("", "admin"),
        lambda c: c.revoke_api_key("missing"),
        lambda c: c.get_agent("no-such-agent-xyz"),
        lambda c: c.drain_cluster_node("no-such-node"),
    ]
    for i, call in enumerate(failing):
        caught = []
        for c in (rest, grpc):
            with pytest.raises(errors.EngramError) as info:
                call(c)
            caught.append(info.value)
        assert type(caught[0]) is type(caught[1]), f"call #{i}: {caught}"
        assert caught[0].code == caught[1].code
        assert caught[0].message == caught[1].message
