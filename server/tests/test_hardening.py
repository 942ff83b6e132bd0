"""What a web page or a stranger can do to a server on loopback: nothing. Host allow-list (DNS
rebinding), JSON-only writes (cross-site "simple" requests), no CORS unless configured, /health
that ignores keys, /metrics behind an admin key, and the access log's agent identifiers."""

from __future__ import annotations

import io
import json

import httpx
import pytest

from .conftest import ROOT_KEY, make_app

pytestmark = pytest.mark.anyio


def client(app, key: str | None = None, host: str = "localhost:3300") -> httpx.AsyncClient:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=f"http://{host}", headers=headers)


async def test_without_a_key_only_loopback_host_names_are_answered(engine) -> None:
    app = make_app(engine, api_key="")
    for host in ("localhost:3300", "127.0.0.1:3300", "[::1]:3300", "localhost", "app.localhost:3300"):
        async with client(app, host=host) as c:
            assert (await c.get("/health")).status_code == 200, host
    for host in ("evil.example", "evil.example:3300", "192.168.1.5:3300", "127.0.0.1.evil.example"):
        async with client(app, host=host) as c:
            r = await c.post("/v1/memories", json={"agent_id": "a", "content": "planted"})
            assert r.status_code == 403 and "allowed-hosts" in r.json()["message"], host
    async with client(app) as c:
        assert (await c.get("/v1/memories", params={"agent_id": "a"})).json()["total_size"] == 0


async def test_allowed_hosts_and_keys_open_other_names(engine) -> None:
    async with client(make_app(engine, api_key=ROOT_KEY), ROOT_KEY, host="memory.internal:3300") as c:
        assert (await c.get("/health")).status_code == 200  # a key protects every call
    app = make_app(engine, api_key="", allowed_hosts=["memory.internal"])
    async with client(app, host="memory.internal:3300") as c:
        assert (await c.get("/health")).status_code == 200
    async with client(app, host="localhost:3300") as c:
        assert (await c.get("/health")).status_code == 403  # the list replaces the default


async def test_cross_site_simple_posts_are_refused_before_anything_runs(engine) -> None:
    app = make_app(engine, api_key="")
    body = json.dumps({"agent_id": "a", "content": "planted by a web page"})
    async with client(app) as c:
        for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None):
            headers = {"origin": "https://evil.example"} | ({"content-type": ctype} if ctype else {})
            r = await c.post("/v1/memories", content=body.encode(), headers=headers)
            assert r.status_code == 415 and "application/json" in r.json()["message"], ctype
            assert "access-control-allow-origin" not in r.headers
        forget = json.dumps({"agent_id": "a", "filter": {"tags_any": ["x"]}})
        r = await c.post("/v1/memories:forget", content=forget.encode(), headers={"content-type": "text/plain"})
        assert r.status_code == 415
        assert (await c.get("/v1/memories", params={"agent_id": "a"})).json()["total_size"] == 0
        r = await c.post(
            "/v1/memories", content=body.encode(), headers={"content-type": "application/json; charset=utf-8"}
        )
        assert r.status_code == 200
        preflight = await c.options(
            "/v1/memories",
            headers={"origin": "https://evil.example", "access-control-request-method": "POST"},
        )
        assert preflight.status_code == 403 and "access-control-allow-origin" not in preflight.headers


async def test_health_ignores_keys_even_revoked_ones(app) -> None:
    async with client(app, ROOT_KEY) as c:
        made = (await c.post("/v1/keys", json={"name": "k", "role": "API_KEY_ROLE_READ_ONLY"})).json()
        assert (await c.delete(f"/v1/keys/{made['api_key']['id']}")).status_code == 200
    async with client(app, made["key"]) as c:
        r = await c.get("/health")
        assert r.status_code == 200 and r.json()["status"] == "healthy"
        assert (await c.get("/v1/memories", params={"agent_id": "a"})).status_code == 401
    async with client(app, "not-even-a-key") as c:
        assert (await c.get("/health")).status_code == 200


async def test_metrics_need_an_admin_key_when_keys_are_on(app) -> None:
    async with client(app) as c:
        r = await c.get("/metrics")
        assert r.status_code == 401 and "engram_memories" not in r.text
    async with client(app, ROOT_KEY) as c:
        reader = (await c.post("/v1/keys", json={"name": "r", "role": "API_KEY_ROLE_READ_ONLY"})).json()["key"]
        r = await c.get("/metrics")
        assert r.status_code == 200 and "engram_requests" in r.text
    async with client(app, reader) as c:
        assert (await c.get("/metrics")).status_code == 403


@pytest.mark.parametrize(("mode", "shown"), [("id", "agent-x"), ("hash", None), ("none", None)])
async def test_access_log_names_agents_as_configured(engine, mode: str, shown: str | None) -> None:
    app = make_app(engine, access_log=True, access_log_agent=mode)
    out = io.StringIO()
    app.access.stream = out
    async with client(app, ROOT_KEY) as c:
        await c.post("/v1/memories", json={"agent_id": "agent-x", "content": "logged call"})
    app.access.flush()
    line = json.loads(out.getvalue().splitlines()[-1])
    if mode == "id":
        assert line["agent"] == shown
    elif mode == "hash":
        assert line["agent"] != "agent-x" and len(line["agent"]) == 16 and "agent-x" not in out.getvalue()
    else:
        assert "agent" not in line and "agent-x" not in out.getvalue()
