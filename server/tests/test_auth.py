"""Keys: root, scoped roles, agent pinning, revocation, on REST and gRPC."""

from __future__ import annotations

import httpx
import pytest
from engram._gen.engram import v1 as pb

from .conftest import ROOT_KEY, asgi_call, grpc_frame, make_app

pytestmark = pytest.mark.anyio


def client(app, key=None):
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://localhost", headers=headers)


async def make_key(app, **body):
    async with client(app, ROOT_KEY) as c:
        r = await c.post("/v1/keys", json={"name": "k", **body})
        assert r.status_code == 200, r.text
        return r.json()


async def test_missing_and_wrong_keys(app):
    async with client(app) as c:
        r = await c.post("/v1/memories", json={"agent_id": "a", "content": "x"})
        assert r.status_code == 401 and r.json()["code"] == "UNAUTHENTICATED"
        assert (await c.get("/health")).status_code == 200
    async with client(app, "wrong-key") as c:
        assert (await c.get("/v1/memories", params={"agent_id": "a"})).status_code == 401
    async with client(app, "engram_000000000000_nope") as c:
        assert (await c.get("/v1/memories", params={"agent_id": "a"})).status_code == 401
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app), base_url="http://t", headers={"authorization": f"Basic {ROOT_KEY}"}
    ) as c:
        assert (await c.get("/v1/memories", params={"agent_id": "a"})).status_code == 401


async def test_key_created_listed_hashed_and_secret_shown_once(app, engine):
    made = await make_key(app, role="read_write")
    key = made["key"]
    assert key.startswith("engram_") and made["api_key"]["role"] == "API_KEY_ROLE_READ_WRITE"
    stored = engine.get_api_key(made["api_key"]["id"])
    assert key.encode() not in stored.key_hash and len(stored.key_hash) == 32
    async with client(app, ROOT_KEY) as c:
        listed = (await c.get("/v1/keys")).json()["api_keys"]
        assert [k["id"] for k in listed] == [made["api_key"]["id"]]
        assert key not in str(listed)


async def test_read_only_cannot_write(app):
    key = (await make_key(app, role="API_KEY_ROLE_READ_ONLY"))["key"]
    async with client(app, key) as c:
        r = await c.post("/v1/memories", json={"agent_id": "a", "content": "x"})
        assert r.status_code == 403 and r.json()["code"] == "PERMISSION_DENIED"
        assert (await c.get("/v1/memories", params={"agent_id": "a"})).status_code == 200
        assert (await c.post("/v1/memories/recall", json={"agent_id": "a", "query": "x"})).status_code == 200


async def test_non_admin_cannot_admin(app):
    key = (await make_key(app, role="read_write"))["key"]
    async with client(app, key) as c:
        for verb, path in (("GET", "/v1/stats"), ("GET", "/v1/keys"), ("DELETE", "/v1/keys/abc")):
            r = await c.request(verb, path)
            assert r.status_code == 403, path
        r = await c.post("/v1/keys", json={"name": "x", "role": "admin"})
        assert r.status_code == 403


async def test_pinned_key_sees_only_its_agents(app):
    async with client(app, ROOT_KEY) as c:
        mine = (await c.post("/v1/memories", json={"agent_id": "team-a-1", "content": "mine"})).json()["memory"]
        theirs = (await c.post("/v1/memories", json={"agent_id": "other", "content": "theirs"})).json()["memory"]
    key = (await make_key(app, role="read_write", agent_id_prefix="team-a-"))["key"]
    async with client(app, key) as c:
        assert (await c.get(f"/v1/memories/{mine['id']}")).status_code == 200
        r = await c.get(f"/v1/memories/{theirs['id']}")
        assert r.status_code == 404  # not 403: existence is not revealed
        assert (await c.delete(f"/v1/memories/{theirs['id']}")).status_code == 404
        assert (await c.patch(f"/v1/memories/{theirs['id']}", json={"content": "x"})).status_code == 404
        r = await c.post("/v1/memories", json={"agent_id": "other", "content": "x"})
        assert r.status_code == 403
        r = await c.post("/v1/memories/recall", json={"agent_id": "other", "query": "theirs"})
        assert r.status_code == 403
        agents = (await c.get("/v1/agents")).json()["agents"]
        assert [a["agent_id"] for a in agents] == ["team-a-1"]
    key2 = (await make_key(app, role="admin", agent_ids=["team-a-1"]))["key"]
    async with client(app, key2) as c:  # a pinned admin cannot manage keys
        assert (await c.get("/v1/keys")).status_code == 403


async def test_revocation_is_immediate(app):
    made = await make_key(app, role="read_write")
    async with client(app, made["key"]) as c:
        assert (await c.get("/v1/memories", params={"agent_id": "a"})).status_code == 200
        async with client(app, ROOT_KEY) as admin:
            r = await admin.delete(f"/v1/keys/{made['api_key']['id']}")
            assert r.status_code == 200 and r.json()["api_key"]["revoked_at"]
            assert (await admin.delete("/v1/keys/nope")).status_code == 404
            assert (await admin.get("/v1/keys")).json()["api_keys"] == []
            assert len((await admin.get("/v1/keys", params={"include_revoked": "true"})).json()["api_keys"]) == 1
        r = await c.get("/v1/memories", params={"agent_id": "a"})
        assert r.status_code == 401 and "revoked" in r.json()["message"]


async def test_expired_key(app, engine):
    made = await make_key(app, role="read_write", ttl_seconds=1)
    rec = engine.get_api_key(made["api_key"]["id"])
    rec.expires_at = 1.0
    engine.put_api_key(rec)
    app.auth.invalidate(rec.id)
    async with client(app, made["key"]) as c:
        assert (await c.get("/v1/memories", params={"agent_id": "a"})).status_code == 401


async def test_grpc_auth_codes(app):
    ro = (await make_key(app, role="read_only"))["key"]
    base = {"content-type": "application/grpc", "te": "trailers"}
    req = grpc_frame(bytes(pb.StoreMemoryRequest(agent_id="a", content="x")))
    out = await asgi_call(app, "/engram.v1.MemoryService/StoreMemory", req, base)
    assert out["trailers"]["grpc-status"] == "16"
    out = await asgi_call(app, "/engram.v1.MemoryService/StoreMemory", req, {**base, "authorization": f"Bearer {ro}"})
    assert out["trailers"]["grpc-status"] == "7"
    out = await asgi_call(
        app, "/engram.v1.AdminService/GetStats", grpc_frame(b""), {**base, "authorization": f"Bearer {ro}"}
    )
    assert out["trailers"]["grpc-status"] == "7"


async def test_no_root_key_means_open_on_loopback(engine):
    app = make_app(engine, api_key="")
    async with client(app) as c:
        assert (await c.post("/v1/memories", json={"agent_id": "a", "content": "x"})).status_code == 200
        assert (await c.get("/v1/info")).json()["auth_required"] is False
