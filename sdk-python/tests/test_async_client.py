"""The AsyncClient against the real server, over both transports."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

import engram
from engram import errors

from .conftest import Server

pytestmark = [pytest.mark.server, pytest.mark.anyio]


async def _gen(memories: list[engram.Memory]) -> AsyncIterator[engram.Memory]:
    for m in memories:
        yield m


async def test_async_round_trip(server: Server, transport: str, agent_id: str) -> None:
    async with engram.AsyncClient(server.url(transport), api_key=server.api_key) as client:
        assert (await client.health()).status == "healthy"
        stored = await client.store(agent_id, "async clients are awaited", tags=["async"])
        assert stored.memory is not None
        await client.batch_store([{"agent_id": agent_id, "content": f"async {i}"} for i in range(4)])
        hits = await client.recall(agent_id, "awaited clients", top_k=1)
        assert hits.memories[0].id == stored.memory.id
        ids = [m.id async for m in client.iter_memories(agent_id, page_size=2)]
        assert len(ids) == 5
        exported = [m async for m in client.export(agent_id)]
        assert len(exported) == 5
        for m in exported:
            m.id = "b-" + m.id  # ids are unique per server
        r = await client.import_memories(_gen(exported), agent_id=agent_id + "-b")
        assert r.imported_count == 5
        agents = [a.agent_id async for a in client.iter_agents()]
        assert agent_id in agents and agent_id + "-b" in agents
        assert len((await client.embed(["x"]))[0]) == (await client.server_info()).embedding_dimensions
        with pytest.raises(errors.NotFound):
            await client.get("missing")
        await client.delete_agent(agent_id + "-b")
