"""The client an adapter makes for itself: one per event loop, closed with its loop."""

from __future__ import annotations

import asyncio

import pytest

import engram
from engram.integrations._connection import Connection

from ..conftest import Server

pytestmark = [pytest.mark.server]


def _closed(client: engram.AsyncClient) -> bool:
    closed: bool = client._transport._http.is_closed  # type: ignore[attr-defined]
    return closed


def test_a_client_per_loop_closed_when_its_loop_ends(server: Server) -> None:
    """What LlamaIndex's sync methods do: every call in a new loop (asyncio.run)."""
    connection = Connection(None, server.http_url, server.api_key, None)
    made: list[engram.AsyncClient] = []

    async def call() -> None:
        client = await connection.client()
        assert client is await connection.client()  # one per loop
        made.append(client)
        assert (await client.health()).status == "healthy"

    asyncio.run(call())
    asyncio.run(call())
    assert made[0] is not made[1]
    assert _closed(made[0]) and _closed(made[1])


def test_aclose_closes_the_own_client(server: Server) -> None:
    async def main() -> None:
        connection = Connection(None, server.http_url, server.api_key, None)
        client = await connection.client()
        await connection.aclose()
        assert _closed(client)
        assert await connection.client() is not client  # usable again: a new client
        await connection.aclose()

    asyncio.run(main())


def test_a_passed_client_is_used_as_it_is(server: Server) -> None:
    async def main() -> None:
        async with engram.AsyncClient(server.http_url, api_key=server.api_key) as mine:
            connection = Connection(mine, None, None, None)
            assert connection.url == mine.url
            assert await connection.client() is mine
            await connection.aclose()
            assert not _closed(mine)

    asyncio.run(main())
    with pytest.raises(TypeError, match=r"engram\.AsyncClient"):
        Connection(engram.Client(server.http_url), None, None, None)  # type: ignore[arg-type]
