"""The REST transport against httpx.MockTransport: routes, bodies, streams and errors."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

import engram
from engram import errors

Handler = Callable[[httpx.Request], httpx.Response]


def make(handler: Handler, **kwargs: object) -> engram.Client:
    return engram.Client("http://engram.test", api_key="secret-key", http_transport=httpx.MockTransport(handler),
                         retry=None, **kwargs)  # type: ignore[arg-type]


def test_store_posts_snake_case_json_with_bearer_key() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"memory": {"id": "m1", "content": "x", "memory_type": "MEMORY_TYPE_SEMANTIC",
                                                    "created_at": "2024-05-01T10:00:00Z", "unknown_new_field": 1},
                                         "created": True})

    r = make(handler).store("a", "x", memory_type="semantic", importance=0.0, tags=["t"], metadata={"k": [1, "v"]})
    req = seen[0]
    assert req.method == "POST" and req.url.path == "/v1/memories"
    assert req.headers["authorization"] == "Bearer secret-key"
    body = json.loads(req.content)
    assert body == {"agent_id": "a", "content": "x", "memory_type": "MEMORY_TYPE_SEMANTIC", "importance": 0.0,
                    "tags": ["t"], "metadata": {"k": [1, "v"]}}
    assert r.created and r.memory is not None and r.memory.memory_type == engram.MemoryType.SEMANTIC
    assert r.memory.created_at is not None and r.memory.created_at.year == 2024


def test_routes_and_query_parameters() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.raw_path.decode()}")
        return httpx.Response(200, json={})

    c = make(handler)
    c.get("m/1", agent_id="a")
    c.list("a", page_size=5, filter={"tags_any": ["x", "y"], "memory_types": ["semantic"]})
    c.unlink("a", "s", "t")
    c.update("m1", tags=[], importance=0.0)
    c.revoke_api_key("k1")
    c.health()
    assert seen[0] == "GET /v1/memories/m%2F1?agent_id=a"
    assert seen[1] == ("GET /v1/memories?agent_id=a&page_size=5&filter.memory_types=MEMORY_TYPE_SEMANTIC"
                       "&filter.tags_any=x&filter.tags_any=y")
    assert seen[2] == "DELETE /v1/memories/s/links/t?agent_id=a"
    assert seen[3] == "PATCH /v1/memories/m1?update_mask=importance%2Ctags"
    assert seen[4] == "DELETE /v1/keys/k1"
    assert seen[5] == "GET /v1/health"


def test_update_body_carries_masked_defaults() -> None:
    bodies: list[dict[str, object]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(200, json={"memory": {"id": "m1", "version": 2}})

    r = make(handler).update("m1", tags=[], importance=0.0, content="new")
    assert bodies[0] == {"id": "m1", "content": "new", "importance": 0.0, "tags": []}
    assert r.memory is not None and r.memory.version == 2


@pytest.mark.parametrize(("status", "body", "cls"), [
    (404, {"code": "NOT_FOUND", "message": "memory m1 not found", "details": []}, errors.NotFound),
    (400, {"code": "INVALID_ARGUMENT", "message": "content: required"}, errors.InvalidArgument),
    (401, {"code": "UNAUTHENTICATED", "message": "no key"}, errors.Unauthenticated),
    (503, None, errors.Unavailable),
])
def test_errors(status: int, body: object, cls: type) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=body) if body is not None else httpx.Response(status, text="down")

    with pytest.raises(cls) as info:
        make(handler).get("m1")
    if body is not None:
        assert info.value.message == body["message"]  # type: ignore[index]


def test_export_reads_ndjson_and_import_sends_ndjson() -> None:
    lines = [{"memory": {"id": f"m{i}", "agent_id": "a", "content": f"c{i}"}} for i in range(3)]
    uploaded: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/memories:export":
            assert json.loads(request.content) == {"agent_id": "a"}
            text = "\n".join(json.dumps(x) for x in lines) + "\n"
            return httpx.Response(200, text=text, headers={"content-type": "application/x-ndjson"})
        uploaded.append(request.read())
        assert request.headers["content-type"] == "application/x-ndjson"
        return httpx.Response(200, json={"imported_count": 3})

    c = make(handler)
    memories = list(c.export("a"))
    assert [m.id for m in memories] == ["m0", "m1", "m2"]
    r = c.import_memories(memories, agent_id="b")
    sent = [json.loads(line) for line in uploaded[0].decode().splitlines()]
    assert [s["memory"]["id"] for s in sent] == ["m0", "m1", "m2"] and sent[0]["agent_id"] == "b"
    assert r.imported_count == 3


def test_error_in_the_middle_of_an_export_stream() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        text = json.dumps({"memory": {"id": "m0"}}) + "\n" + json.dumps(
            {"code": "INTERNAL", "message": "disk"}) + "\n"
        return httpx.Response(200, text=text)

    got = []
    with pytest.raises(errors.Internal):
        for m in make(handler).export("a"):
            got.append(m.id)
    assert got == ["m0"]


def test_embed_decodes_packed_float32() -> None:
    vec = engram.encode_vector([0.5, -1.0, 2.0])

    def handler(request: httpx.Request) -> httpx.Response:
        import base64

        return httpx.Response(200, json={"embeddings": [{"vector": base64.b64encode(vec).decode()}],
                                         "model": "m", "dimensions": 3})

    assert make(handler).embed(["x"]) == [[0.5, -1.0, 2.0]]


def test_iter_memories_walks_pages() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        token = request.url.params.get("page_token", "")
        n = int(token or 0)
        nxt = str(n + 2) if n + 2 < 5 else ""
        mems = [{"id": f"m{i}"} for i in range(n, min(n + 2, 5))]
        return httpx.Response(200, json={"memories": mems, "next_page_token": nxt, "total_size": 5})

    ids = [m.id for m in make(handler).iter_memories("a", page_size=2)]
    assert ids == ["m0", "m1", "m2", "m3", "m4"]


def test_url_schemes_pick_the_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    from engram._config import parse_url

    assert parse_url("http://h:1").transport == "rest"
    assert parse_url("grpc://h:1").transport == "grpc"
    assert parse_url("grpcs://h").tls and parse_url("grpcs://h").port == 443
    assert parse_url("http://h:1", "grpc").transport == "grpc"
    assert parse_url("h:5").base_url == "http://h:5"
    monkeypatch.setenv("ENGRAM_URL", "grpc://env-host:9")
    assert parse_url(None).target == "env-host:9"
    with pytest.raises(ValueError):
        parse_url("ftp://x")
    c = engram.Client("grpc://localhost:1")
    assert c.transport == "grpc"
    c.close()


def test_api_key_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENGRAM_API_KEY", "env-key")
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization", ""))
        return httpx.Response(200, json={})

    engram.Client("http://x", http_transport=httpx.MockTransport(handler)).health()
    assert seen == ["Bearer env-key"]
