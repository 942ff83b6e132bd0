"""REST/JSON over httpx.ASGITransport (no sockets) with a real engine and the test embedder."""

from __future__ import annotations

import json

import pytest

from .conftest import ROOT_KEY, make_app

pytestmark = pytest.mark.anyio

SEED = {"agent_id": "test", "content": "Rust is the right choice for memory servers", "importance": 0.95}


async def store(rest, **kw):
    body = {"agent_id": "a1", "content": "hello", **kw}
    r = await rest.post("/v1/memories", json=body)
    assert r.status_code == 200, r.text
    return r.json()["memory"]


async def test_seed_calls(rest):
    r = await rest.post("/v1/memories", json=SEED)
    assert r.status_code == 200
    mem = r.json()["memory"]
    assert mem["content"] == SEED["content"] and mem["importance"] == pytest.approx(0.95)
    assert mem["memory_type"] == "MEMORY_TYPE_EPISODIC" and mem["version"] == 1
    r = await rest.post(
        "/v1/memories/recall", json={"agent_id": "test", "query": "language choice for infrastructure", "top_k": 5}
    )
    assert r.status_code == 200
    first = r.json()["memories"][0]
    assert first["id"] == mem["id"] and "score" in first and first["content"] == SEED["content"]
    r = await rest.get("/health")
    assert r.json() == {"status": "healthy", "version": "0.1.0"}


async def test_seed_aliases(rest):
    r = await rest.post("/v1/memory/store", json={"agent_id": "al", "content": "alias store"})
    mid = r.json()["memory"]["id"]
    assert (await rest.get(f"/v1/memory/get/{mid}")).json()["memory"]["id"] == mid
    r = await rest.post("/v1/memory/recall", json={"agent_id": "al", "query": "alias"})
    assert r.json()["memories"][0]["id"] == mid
    r = await rest.put(f"/v1/memory/update/{mid}", json={"content": "alias updated"})
    assert r.json()["memory"]["content"] == "alias updated"
    r = await rest.post("/v1/memory/forget", json={"agent_id": "al", "filter": {"ids": [mid]}})
    assert r.json()["deleted_count"] == 1


async def test_camel_case_in_snake_case_out_and_enum_aliases(rest):
    r = await rest.post(
        "/v1/memories",
        json={"agentId": "c1", "content": "x", "memoryType": "semantic", "sessionId": "s", "ttlSeconds": "60"},
    )
    mem = r.json()["memory"]
    assert mem["memory_type"] == "MEMORY_TYPE_SEMANTIC" and mem["session_id"] == "s" and "expires_at" in mem
    r = await rest.post("/v1/memories/recall", json={"agent_id": "c1", "query": "x", "mode": "keyword"})
    assert r.status_code == 200
    r = await rest.post("/v1/memories", json={"agent_id": "c1", "content": "x", "memory_type": "nonsense"})
    assert r.status_code == 400 and r.json()["details"][0]["field_violations"][0]["field"] == "memory_type"


async def test_update_mask_from_body_keys(rest):
    mem = await store(rest, tags=["keep"], importance=0.7)
    r = await rest.patch(f"/v1/memories/{mem['id']}", json={"content": "changed"})
    out = r.json()["memory"]
    assert out["content"] == "changed" and out["tags"] == ["keep"] and out["importance"] == pytest.approx(0.7)
    assert out["version"] == 2
    r = await rest.patch(f"/v1/memories/{mem['id']}", json={"importance": 0})  # 0 is applied: it is in the body
    assert r.json()["memory"]["importance"] == 0
    r = await rest.patch(
        f"/v1/memories/{mem['id']}", params={"update_mask": "tags"}, json={"tags": [], "content": "no"}
    )
    assert r.json()["memory"]["tags"] == [] and r.json()["memory"]["content"] == "changed"
    r = await rest.patch(f"/v1/memories/{mem['id']}", json={"version": 9})
    assert r.status_code == 400
    hist = (await rest.get(f"/v1/memories/{mem['id']}/history")).json()["versions"]
    assert [v["version"] for v in hist] == [1, 2, 3, 4]


async def test_query_params_nested_and_repeated(rest):
    await store(rest, agent_id="q1", content="a", tags=["x"])
    await store(rest, agent_id="q1", content="b", tags=["y"])
    await store(rest, agent_id="q1", content="c", tags=["z"])
    r = await rest.get(
        "/v1/memories",
        params=[("agent_id", "q1"), ("filter.tags_any", "x"), ("filter.tags_any", "y"), ("page_size", "1")],
    )
    body = r.json()
    assert body["total_size"] == 2 and len(body["memories"]) == 1 and body["next_page_token"]
    r = await rest.get("/v1/agents/q1/memories", params={"filter.tagsAny": "z"})
    assert r.json()["total_size"] == 1
    r = await rest.get("/v1/memories", params={"agent_id": "q1", "bogus": "1"})
    assert r.status_code == 400 and "bogus" in r.json()["message"]
    r = await rest.get("/v1/memories", params={"agent_id": "q1", "page_size": "many"})
    assert r.status_code == 400


@pytest.mark.parametrize(
    "body,field",
    [
        ({"content": "x"}, "agent_id"),
        ({"agent_id": "a", "content": ""}, "content"),
        ({"agent_id": "a", "content": "   "}, "content"),
        ({"agent_id": "bad agent/id", "content": "x"}, "agent_id"),
        ({"agent_id": "a", "content": "x" * 32769}, "content"),
        ({"agent_id": "a", "content": "é" * 16385}, "content"),
        ({"agent_id": "a", "content": "x", "importance": 1.5}, "importance"),
        ({"agent_id": "a", "content": "x", "tags": [f"t{i}" for i in range(65)]}, "tags"),
        ({"agent_id": "a", "content": "x", "tags": ["t" * 129]}, "tags[0]"),
        ({"agent_id": "a", "content": "x", "tags": [""]}, "tags[0]"),
        ({"agent_id": "a", "content": "x", "metadata": {"blob": "m" * 16400}}, "metadata"),
        ({"agent_id": "a", "content": "x", "ttl_seconds": -5}, "ttl_seconds"),
        ({"agent_id": "a", "content": "x", "ttl_seconds": 60, "expires_at": "2099-01-01T00:00:00Z"}, "expires_at"),
        ({"agent_id": "a", "content": "x", "expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
        ({"agent_id": "a", "content": "x", "id": "has space/slash"}, "id"),
        ({"agent_id": "a", "content": "x", "unknown_field": 1}, "unknown_field"),
    ],
)
async def test_store_validation_names_the_field(rest, body, field):
    r = await rest.post("/v1/memories", json=body)
    assert r.status_code == 400, r.text
    err = r.json()
    assert err["code"] == "INVALID_ARGUMENT"
    assert err["details"][0]["field_violations"][0]["field"] == field


@pytest.mark.parametrize(
    "path,body,field",
    [
        ("/v1/memories/recall", {"agent_id": "a", "query": ""}, "query"),
        ("/v1/memories/recall", {"agent_id": "a", "query": "x", "top_k": 101}, "top_k"),
        ("/v1/memories/recall", {"agent_id": "a", "query": "x", "top_k": -1}, "top_k"),
        ("/v1/memories:batchStore", {"requests": []}, "requests"),
        ("/v1/memories:batchStore", {"requests": [{"agent_id": "a", "content": "x"}] * 257}, "requests"),
        (
            "/v1/memories:batchStore",
            {"requests": [{"agent_id": "a", "content": "x"}, {"agent_id": "a"}]},
            "requests[1].content",
        ),
        ("/v1/memories:forget", {"agent_id": "a"}, "filter"),
        ("/v1/embeddings", {"texts": []}, "texts"),
        ("/v1/keys", {"name": "k"}, "role"),
    ],
)
async def test_other_validation(rest, path, body, field):
    r = await rest.post(path, json=body)
    assert r.status_code == 400, r.text
    assert r.json()["details"][0]["field_violations"][0]["field"] == field


async def test_list_and_graph_limits(rest):
    assert (await rest.get("/v1/memories", params={"agent_id": "a", "page_size": 1001})).status_code == 400
    assert (await rest.get("/v1/memories", params={"agent_id": "a", "page_size": 1000})).status_code == 200
    assert (await rest.get("/v1/memories", params={"agent_id": "a", "order_by": "content sideways"})).status_code == 400
    assert (await rest.get("/v1/memories", params={"page_size": 10})).status_code == 400
    mem = await store(rest)
    r = await rest.get(f"/v1/memories/{mem['id']}/graph", params={"agent_id": "a1", "depth": 6})
    assert r.status_code == 400 and r.json()["details"][0]["field_violations"][0]["field"] == "depth"


async def test_errors_map_to_http(rest):
    r = await rest.get("/v1/memories/missing-id")
    assert r.status_code == 404 and r.json()["code"] == "NOT_FOUND"
    await store(rest, id="dup-1", content="first")
    r = await rest.post("/v1/memories", json={"agent_id": "a1", "content": "second", "id": "dup-1"})
    assert r.status_code == 409 and r.json()["code"] == "ALREADY_EXISTS"
    r = await rest.post("/v1/memories", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and "malformed JSON" in r.json()["message"]
    r = await rest.post("/v1/memories", content=b"[1,2]", headers={"content-type": "application/json"})
    assert r.status_code == 400
    r = await rest.get("/v1/nowhere")
    assert r.status_code == 404 and r.json()["code"] == "NOT_FOUND"
    r = await rest.delete("/v1/memories/recall")  # path exists for POST only... and as {id}: DELETE by id
    assert r.status_code in (404, 405)
    r = await rest.put("/v1/memories")
    assert r.status_code == 405 and "allow" in r.headers


async def test_body_too_large_is_413(engine):
    import httpx

    app = make_app(engine, max_request_bytes=1000)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app), base_url="http://t", headers={"authorization": f"Bearer {ROOT_KEY}"}
    ) as c:
        r = await c.post("/v1/memories", json={"agent_id": "a", "content": "x" * 2000})
        assert r.status_code == 413 and r.json()["code"] == "RESOURCE_EXHAUSTED"


async def test_export_ndjson_and_import_ndjson(rest):
    for i in range(3):
        await store(rest, agent_id="ex", content=f"memory {i}")
    r = await rest.post("/v1/memories:export", json={"agent_id": "ex"})
    assert r.headers["content-type"] == "application/x-ndjson"
    lines = [json.loads(x) for x in r.text.splitlines()]
    assert len(lines) == 3 and all("memory" in x for x in lines)
    body = "\n".join(
        json.dumps({"memory": {**x["memory"], "id": x["memory"]["id"] + "-c"}, "agent_id": "ex2"}) for x in lines
    )
    r = await rest.post("/v1/memories:import", content=body.encode(), headers={"content-type": "application/x-ndjson"})
    assert r.status_code == 200 and r.json()["imported_count"] == 3
    r = await rest.post("/v1/memories:import", content=body.encode(), headers={"content-type": "application/json"})
    assert r.json()["skipped_count"] == 3 and r.json()["imported_count"] == 0
    bad = b'{"memory": {"id": "x"}}\n{bad'
    r = await rest.post("/v1/memories:import", content=bad, headers={"content-type": "application/x-ndjson"})
    assert r.status_code == 400
    r = await rest.post("/v1/memories:export", json={"agent_id": "nobody"})
    assert r.status_code == 200 and r.text == ""


async def test_health_starting_is_503(tmp_path):
    import httpx
    from engram_server.engine.engine import Engine

    from .support import make_config

    engine = Engine.open(make_config(tmp_path / "data"))  # the ONNX model, not loaded yet
    engine.warm_up = lambda: None  # type: ignore[method-assign]  # stays starting
    app = make_app(engine)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as c:
        r = await c.get("/health")
        assert r.status_code == 503 and r.json()["status"] == "starting"
    engine.close()


async def test_openapi_and_metrics(rest):
    r = await rest.get("/openapi.json")
    assert r.status_code == 200 and "/v1/memories" in r.json()["paths"]
    await store(rest)
    await rest.post("/v1/memories/recall", json={"agent_id": "a1", "query": "hello"})
    r = await rest.get("/metrics")
    text = r.text
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    assert 'engram_requests_total{code="OK",method="MemoryService/StoreMemory",transport="rest"}' in text
    assert "engram_request_duration_seconds_bucket" in text
    assert "engram_memories_stored_total 1.0" in text and "engram_recalls_total 1.0" in text
    assert 'engram_index_vectors{kind="exact"}' in text and "engram_memories 1.0" in text


async def test_every_rest_route_answers(rest):
    mem = await store(rest, agent_id="r1", content="one")
    other = await store(rest, agent_id="r1", content="two")
    calls = [
        ("GET", f"/v1/memories/{mem['id']}", None),
        ("POST", f"/v1/memories/{mem['id']}/links", {"agent_id": "r1", "target_id": other["id"]}),
        ("GET", f"/v1/memories/{mem['id']}/graph?agent_id=r1&depth=2", None),
        ("DELETE", f"/v1/memories/{mem['id']}/links/{other['id']}?agent_id=r1", None),
        ("POST", "/v1/memories:batchRecall", {"requests": [{"agent_id": "r1", "query": "one"}]}),
        ("POST", "/v1/memories:batchStore", {"requests": [{"agent_id": "r1", "content": "three"}]}),
        ("GET", "/v1/agents", None),
        ("GET", "/v1/agents/r1", None),
        ("GET", "/v1/info", None),
        ("GET", "/v1/stats", None),
        ("GET", "/v1/cluster/status", None),
        ("POST", "/v1/embeddings", {"texts": ["a", "b"]}),
        ("GET", "/v1/keys", None),
        ("GET", "/v1/health", None),
        ("DELETE", f"/v1/memories/{other['id']}", None),
        ("DELETE", "/v1/agents/r1", None),
    ]
    for verb, path, body in calls:
        r = await rest.request(verb, path, json=body)
        assert r.status_code == 200, (verb, path, r.text)
    r = await rest.post("/v1/embeddings", json={"texts": ["a"]})
    import base64

    import numpy as np

    vec = np.frombuffer(base64.b64decode(r.json()["embeddings"][0]["vector"]), dtype="<f4")
    assert vec.shape == (64,) and abs(float(np.linalg.norm(vec)) - 1) < 1e-5
    r = await rest.get("/v1/cluster/status")
    assert r.json()["node_count"] == 1 and r.json()["replication_factor"] == 1 and r.json()["healthy_node_count"] == 1
    assert r.json()["mode"] == "single" and r.json()["healthy"] is True
    r = await rest.post("/v1/cluster/nodes/n1:drain", json={})
    assert r.status_code == 400 and r.json()["code"] == "FAILED_PRECONDITION" and "single node" in r.json()["message"]
