"""The REST client in process: httpx.ASGITransport calls the server's ASGI app, no sockets.

``httpx.ASGITransport`` is async, so these tests use :class:`engram.AsyncClient`.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

import engram
from engram import errors

app_module = pytest.importorskip("engram_server.app")
config_module = pytest.importorskip("engram_server.config")

pytestmark = pytest.mark.anyio
API_KEY = "asgi-root-key-" + secrets.token_hex(8)


@pytest.fixture
async def asgi_app(tmp_path: Path) -> AsyncIterator[Any]:
    config = config_module.Config(data_dir=tmp_path / "data", api_key=API_KEY,
                                  encryption_key=secrets.token_hex(32), grpc_port=0)
    app = app_module.create_app(config)
    probe = engram.AsyncClient("http://engram.asgi", http_transport=httpx.ASGITransport(app=app), retry=None)
    # The app opens the engine on the first request and loads the model in the background:
    # /health answers UNAVAILABLE ("starting") until it can serve.
    deadline = time.monotonic() + 120
    while True:
        try:
            if (await probe.health()).status == "healthy":
                break
        except errors.Unavailable:
            pass
        if time.monotonic() > deadline:
            pytest.fail("the in-process app did not become healthy in 120 s")
        await anyio.sleep(0.1)
    yield app
    close = getattr(app, "aclose", None) or getattr(app, "close", None)
    if close is not None:
        result = close()
        if hasattr(result, "__await__"):
            await result


async def test_in_process_round_trip(asgi_app: Any) -> None:
    transport = httpx.ASGITransport(app=asgi_app)
    async with engram.AsyncClient("http://engram.asgi", api_key=API_KEY, http_transport=transport,
                                  retry=None) as client:
        stored = (await client.store("asgi-agent", "ASGI transport needs no sockets", tags=["asgi"])).memory
        assert stored is not None
        assert (await client.get(stored.id)).memory == stored
        hits = await client.recall("asgi-agent", "sockets", top_k=1)
        assert hits.memories[0].id == stored.id
        assert [m.id async for m in client.export("asgi-agent")] == [stored.id]
        with pytest.raises(errors.NotFound):
            await client.get("missing")
        with pytest.raises(errors.InvalidArgument):
            await client.store("asgi-agent", "")


async def test_seed_compatible_rest_calls(asgi_app: Any) -> None:
    """The seed-compatible JSON calls work verbatim (docs/design/contracts.md)."""
    transport = httpx.ASGITransport(app=asgi_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://engram.asgi",
                                 headers={"authorization": f"Bearer {API_KEY}"}) as http:
        r = await http.post("/v1/memories", json={"agent_id": "seed", "content": "seed memory", "importance": 0.5})
        assert r.status_code == 200, r.text
        r = await http.post("/v1/memories/recall", json={"agent_id": "seed", "query": "seed", "top_k": 1})
        assert r.json()["memories"][0]["content"] == "seed memory"
