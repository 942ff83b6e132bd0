"""The real server as a subprocess on a free loopback port (docs/design/contracts.md): the seed's
calls verbatim, a grpcio client on every RPC, errors on both transports, 100 000 calls on one
channel, gRPC-Web and CORS over the wire, metrics, graceful SIGTERM drain."""

from __future__ import annotations

import base64
import os
import threading
import time

import grpc
import httpx
import pytest
from engram._gen.engram import v1 as pb

from .conftest import ROOT_KEY, GrpcStub, ServerProcess, authed, grpc_frame, grpc_messages

AUTH = {"authorization": f"Bearer {ROOT_KEY}"}


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server.base_url, headers=AUTH, timeout=60) as c:
        yield c


@pytest.fixture(scope="module")
def stubs(channel):
    ch = authed(channel)
    services = ("MemoryService", "AgentService", "AdminService", "EmbeddingService")
    return tuple(GrpcStub(ch, s) for s in services)


def test_started_and_healthy(server):
    print(f"\nstart -> healthy: {server.healthy_after:.2f}s")
    r = httpx.get(server.base_url + "/health")
    assert r.status_code == 200 and r.json()["status"] == "healthy" and r.json()["version"]


def test_seed_calls_verbatim(server):
    headers = {**AUTH, "Content-Type": "application/json"}
    r = httpx.post(
        server.base_url + "/v1/memories",
        headers=headers,
        timeout=60,
        content=b'{"agent_id":"test","content":"Rust is the right choice for memory servers","importance":0.95}',
    )
    assert r.status_code == 200, r.text
    mid = r.json()["memory"]["id"]
    r = httpx.post(
        server.base_url + "/v1/memories/recall",
        headers=headers,
        timeout=60,
        content=b'{"agent_id":"test","query":"language choice for infrastructure","top_k":5}',
    )
    assert r.status_code == 200
    first = r.json()["memories"][0]
    assert first["id"] == mid and first["content"].startswith("Rust") and first["score"] > 0
    assert httpx.get(server.base_url + "/health").json()["status"] == "healthy"


def test_aliases(http):
    mid = http.post("/v1/memory/store", json={"agent_id": "alias", "content": "aliases work"}).json()["memory"]["id"]
    assert http.get(f"/v1/memory/get/{mid}").json()["memory"]["id"] == mid
    assert (
        http.post("/v1/memory/recall", json={"agent_id": "alias", "query": "aliases"}).json()["memories"][0]["id"]
        == mid
    )
    assert http.put(f"/v1/memory/update/{mid}", json={"importance": 0.9}).json()["memory"]["version"] == 2
    assert (
        http.post("/v1/memory/forget", json={"agent_id": "alias", "filter": {"ids": [mid]}}).json()["deleted_count"]
        == 1
    )


def test_grpc_every_rpc(stubs):
    mem, agents, admin, emb = stubs
    a = "grpc-all"
    r = mem.store_memory(
        pb.StoreMemoryRequest(
            agent_id=a, content="Paris is the capital of France", memory_type=pb.MemoryType.SEMANTIC, tags=["geo"]
        )
    )
    assert r.created and r.memory.version == 1
    m1 = r.memory.id
    b = mem.batch_store_memories(
        pb.BatchStoreMemoriesRequest(
            requests=[
                pb.StoreMemoryRequest(agent_id=a, content="Berlin is the capital of Germany", tags=["geo"]),
                pb.StoreMemoryRequest(agent_id=a, content="The meeting moved to Tuesday"),
            ]
        )
    )
    assert b.created_count == 2
    m2 = b.memories[0].id
    assert mem.get_memory(pb.GetMemoryRequest(id=m1)).memory.content.startswith("Paris")
    u = mem.update_memory(pb.UpdateMemoryRequest(memory=pb.Memory(id=m1, importance=0.9)))
    assert u.memory.version == 2
    lst = mem.list_memories(pb.ListMemoriesRequest(agent_id=a, page_size=2))
    assert lst.total_size == 3 and len(lst.memories) == 2 and lst.next_page_token
    rec = mem.recall(pb.RecallRequest(agent_id=a, query="capital of France", top_k=2, explain=True))
    assert rec.memories[0].id == m1
    br = mem.batch_recall(pb.BatchRecallRequest(requests=[pb.RecallRequest(agent_id=a, query="Germany")]))
    assert len(br.responses) == 1
    assert len(mem.get_memory_history(pb.GetMemoryHistoryRequest(id=m1)).versions) == 2
    link = mem.link_memories(pb.LinkMemoriesRequest(agent_id=a, source_id=m1, target_id=m2, relation="related_to"))
    assert link.link.target_id == m2
    g = mem.get_memory_graph(pb.GetMemoryGraphRequest(agent_id=a, id=m1, depth=1))
    assert {x.id for x in g.memories} >= {m1, m2}
    assert mem.unlink_memories(pb.UnlinkMemoriesRequest(agent_id=a, source_id=m1, target_id=m2)).removed_count == 1
    exported = list(mem.export_memories(pb.ExportMemoriesRequest(agent_id=a)))
    assert len(exported) == 3
    imp = mem.import_memories(iter([pb.ImportMemoriesRequest(memory=e.memory, agent_id=a + "-copy") for e in exported]))
    assert imp.imported_count + imp.skipped_count == 3
    f = mem.forget_memories(
        pb.ForgetMemoriesRequest(agent_id=a, filter=pb.MemoryFilter(tags_any=["geo"]), dry_run=True)
    )
    assert f.matched_count == 2 and f.deleted_count == 0
    # the copy holds the same ids: a call by id alone must name the agent now
    ambiguous = _code(lambda: mem.delete_memory(pb.DeleteMemoryRequest(id=m2)))
    assert ambiguous == grpc.StatusCode.INVALID_ARGUMENT
    assert mem.delete_memory(pb.DeleteMemoryRequest(id=m2, agent_id=a)).id == m2
    assert any(x.agent_id == a for x in agents.list_agents(pb.ListAgentsRequest()).agents)
    assert agents.get_agent(pb.GetAgentRequest(agent_id=a)).agent.memory_count == 2
    assert admin.health().status == "healthy"
    info = admin.get_server_info()
    assert info.limits.max_top_k == 100 and info.auth_required and info.embedding_dimensions > 0
    assert admin.get_stats().memory_count >= 2
    key = admin.create_api_key(pb.CreateApiKeyRequest(name="ci", role=pb.ApiKeyRole.READ_ONLY))
    assert key.key.startswith("engram_")
    assert key.api_key.id in [k.id for k in admin.list_api_keys(pb.ListApiKeysRequest()).api_keys]
    assert admin.revoke_api_key(pb.RevokeApiKeyRequest(id=key.api_key.id)).api_key.revoked_at is not None
    cs = admin.get_cluster_status()
    assert (cs.node_count, cs.healthy_node_count, cs.replication_factor) == (1, 1, 1)
    e = emb.embed(pb.EmbedRequest(texts=["hello", "world"]))
    assert len(e.embeddings) == 2 and len(e.embeddings[0].vector) == 4 * e.dimensions
    assert agents.delete_agent(pb.DeleteAgentRequest(agent_id=a)).deleted_memory_count == 2


def _code(fn):
    with pytest.raises(grpc.RpcError) as exc:
        fn()
    return exc.value.code()


def test_grpc_errors(channel, stubs):
    mem, _, admin, _ = stubs
    assert _code(lambda: mem.get_memory(pb.GetMemoryRequest(id="missing"))) == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as exc:
        mem.store_memory(pb.StoreMemoryRequest(agent_id="e", content=""))
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "content" in exc.value.details()
    md = dict(exc.value.trailing_metadata())
    from google.rpc import error_details_pb2, status_pb2

    st = status_pb2.Status.FromString(md["grpc-status-details-bin"])
    bad = error_details_pb2.BadRequest()
    st.details[0].Unpack(bad)
    assert bad.field_violations[0].field == "content"
    assert (
        _code(lambda: mem.recall(pb.RecallRequest(agent_id="e", query="x", top_k=1000)))
        == grpc.StatusCode.INVALID_ARGUMENT
    )
    unauth = GrpcStub(channel, "MemoryService")
    assert _code(lambda: unauth.recall(pb.RecallRequest(agent_id="e", query="x"))) == grpc.StatusCode.UNAUTHENTICATED
    assert GrpcStub(channel, "AdminService").health().status == "healthy"  # no key needed
    ro = admin.create_api_key(pb.CreateApiKeyRequest(name="ro", role=pb.ApiKeyRole.READ_ONLY)).key
    ro_mem = GrpcStub(authed(channel, ro), "MemoryService")
    assert (
        _code(lambda: ro_mem.store_memory(pb.StoreMemoryRequest(agent_id="e", content="x")))
        == grpc.StatusCode.PERMISSION_DENIED
    )
    assert _code(lambda: GrpcStub(authed(channel, ro), "AdminService").get_stats()) == grpc.StatusCode.PERMISSION_DENIED
    pinned = admin.create_api_key(
        pb.CreateApiKeyRequest(name="p", role=pb.ApiKeyRole.READ_WRITE, agent_ids=["mine"])
    ).key
    other = mem.store_memory(pb.StoreMemoryRequest(agent_id="not-mine", content="secret")).memory.id
    p_mem = GrpcStub(authed(channel, pinned), "MemoryService")
    assert _code(lambda: p_mem.get_memory(pb.GetMemoryRequest(id=other))) == grpc.StatusCode.NOT_FOUND
    assert (
        _code(lambda: p_mem.recall(pb.RecallRequest(agent_id="not-mine", query="x")))
        == grpc.StatusCode.PERMISSION_DENIED
    )
    md_root = (("authorization", f"Bearer {ROOT_KEY}"),)
    nope = channel.unary_unary("/engram.v1.MemoryService/Nope", request_serializer=bytes, response_deserializer=bytes)
    assert _code(lambda: nope(b"", metadata=md_root)) == grpc.StatusCode.UNIMPLEMENTED
    raw = channel.unary_unary(
        "/engram.v1.MemoryService/StoreMemory", request_serializer=lambda x: x, response_deserializer=bytes
    )
    assert _code(lambda: raw(b"\xff\xff\xff", metadata=md_root)) == grpc.StatusCode.INVALID_ARGUMENT
    big = bytes(pb.StoreMemoryRequest(agent_id="e", content="x" * (5 * 1024 * 1024)))
    assert _code(lambda: raw(big, metadata=md_root)) == grpc.StatusCode.RESOURCE_EXHAUSTED
    recall = channel.unary_unary(
        "/engram.v1.MemoryService/BatchRecall", request_serializer=bytes, response_deserializer=bytes
    )
    many = pb.BatchRecallRequest(requests=[pb.RecallRequest(agent_id="e", query=f"q {i}") for i in range(200)])
    assert _code(lambda: recall(many, metadata=md_root, timeout=0.001)) == grpc.StatusCode.DEADLINE_EXCEEDED


def test_rest_errors_over_the_wire(http, server):
    assert httpx.post(server.base_url + "/v1/memories", json={"agent_id": "a", "content": "x"}).status_code == 401
    r = http.post("/v1/memories", json={"agent_id": "a", "content": ""})
    assert r.status_code == 400 and r.json()["details"][0]["field_violations"][0]["field"] == "content"
    assert http.get("/v1/memories/nope").status_code == 404
    r = http.post("/v1/memories", content=b"x" * (4 * 1024 * 1024 + 10), headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["code"] == "RESOURCE_EXHAUSTED"
    r = http.post(
        "/engram.v1.AdminService/Health", content=grpc_frame(b""), headers={"content-type": "application/grpc"}
    )
    assert r.status_code == 505  # gRPC over HTTP/1.1


def test_grpc_web_and_cors_over_http1(server):
    headers = {
        **AUTH,
        "content-type": "application/grpc-web+proto",
        "x-grpc-web": "1",
        "origin": "http://localhost:5173",
    }
    r = httpx.post(server.base_url + "/engram.v1.AdminService/GetServerInfo", content=grpc_frame(b""), headers=headers)
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "http://localhost:5173"
    frames = grpc_messages(r.content)
    assert pb.GetServerInfoResponse.parse(frames[0][1]).api_version == "v1"
    assert frames[-1][0] == 0x80 and b"grpc-status: 0" in frames[-1][1]
    r = httpx.options(
        server.base_url + "/engram.v1.MemoryService/Recall",
        headers={
            "origin": "http://localhost:5173",
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type,x-grpc-web,authorization",
        },
    )
    assert r.status_code == 204 and "grpc-status" in r.headers["access-control-expose-headers"]


def test_metrics_and_openapi(http):
    text = http.get("/metrics").text
    assert "engram_requests_total" in text and "engram_request_duration_seconds_bucket" in text
    assert 'transport="grpc"' in text and 'transport="rest"' in text and "engram_index_vectors" in text
    assert "/v1/memories/recall" in http.get("/openapi.json").text


def test_100k_calls_on_one_channel(channel):
    n = int(os.environ.get("ENGRAM_TEST_CALLS", "100000"))
    call = channel.unary_unary(
        "/engram.v1.AdminService/Health", request_serializer=bytes, response_deserializer=pb.HealthResponse.parse
    )
    window = threading.Semaphore(32)
    errors: list = []
    done = threading.Event()
    count = [0]
    lock = threading.Lock()

    def finished(f):
        if f.exception() is not None:
            errors.append(f.exception())
        window.release()
        with lock:
            count[0] += 1
            if count[0] == n:
                done.set()

    t0 = time.perf_counter()
    for _ in range(n):
        window.acquire()
        call.future(pb.HealthRequest()).add_done_callback(finished)
    assert done.wait(600)
    took = time.perf_counter() - t0
    print(f"\n{n} calls on one channel: {took:.1f}s, {n / took:.0f}/s, errors {len(errors)}")
    assert errors == []


def test_graceful_sigterm_drains_in_flight(tmp_path):
    s = ServerProcess(tmp_path)
    try:
        s.wait_healthy()
        result = {}

        def slow_body():
            yield b'{"memory": {"id": "drain-1", "agent_id": "d", "content": "first"}}\n'
            time.sleep(1.5)  # SIGTERM arrives while this request is in flight
            yield b'{"memory": {"id": "drain-2", "agent_id": "d", "content": "second"}}\n'

        def call():
            headers = {**AUTH, "content-type": "application/x-ndjson"}
            r = httpx.post(s.base_url + "/v1/memories:import", content=slow_body(), headers=headers, timeout=30)
            result["status"], result["body"] = r.status_code, r.json()

        t = threading.Thread(target=call)
        t.start()
        time.sleep(0.7)
        s.proc.send_signal(15)
        t.join(30)
        assert result["status"] == 200 and result["body"]["imported_count"] == 2
        assert s.proc.wait(15) == 0
        log = s.log_path.read_text()
        assert "draining" in log and "engine closed" in log
        assert ROOT_KEY not in log and "first" not in log  # no keys, no content in logs
    finally:
        s.stop()


def test_grpc_web_text_over_the_wire(server):
    headers = {**AUTH, "content-type": "application/grpc-web-text"}
    r = httpx.post(
        server.base_url + "/engram.v1.AdminService/Health", content=base64.b64encode(grpc_frame(b"")), headers=headers
    )
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/grpc-web-text")


def test_connect_with_curl_over_the_wire(server):
    """A Connect call as the docs show it: curl, a JSON body, no Connect-specific header."""
    import json
    import shutil
    import subprocess

    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl is not installed")

    def run(path: str, body: str, *extra: str) -> tuple[int, dict]:
        out = subprocess.run(
            [curl, "-sS", "-w", "\n%{http_code}", "-H", "Content-Type: application/json",
             "-H", f"Authorization: Bearer {ROOT_KEY}", *extra, "-d", body, server.base_url + path],
            capture_output=True, text=True, timeout=60, check=True,
        )
        text, _, status = out.stdout.rpartition("\n")
        return int(status), json.loads(text)

    status, body = run("/engram.v1.MemoryService/StoreMemory", '{"agent_id": "curl", "content": "Curl speaks Connect"}')
    assert status == 200 and body["memory"]["content"] == "Curl speaks Connect"
    status, body = run("/engram.v1.MemoryService/Recall", '{"agentId": "curl", "query": "who speaks Connect?"}')
    assert status == 200 and body["memories"][0]["content"] == "Curl speaks Connect"
    status, body = run("/engram.v1.MemoryService/StoreMemory", '{"agent_id": "curl", "content": ""}')
    assert status == 400 and body["code"] == "invalid_argument"
    assert body["details"][0]["type"] == "google.rpc.BadRequest"
    status, body = run("/engram.v1.MemoryService/GetMemory", '{"id": "nope"}', "--http2-prior-knowledge")
    assert status == 404 and body["code"] == "not_found"


def test_connect_streaming_over_http1(http):
    import json
    import struct

    http.post("/v1/memories", json={"agent_id": "cs", "content": "streamed over Connect"})
    req = json.dumps({"agent_id": "cs"}).encode()
    r = http.post(
        "/engram.v1.MemoryService/ExportMemories",
        content=struct.pack(">BI", 0, len(req)) + req,
        headers={"content-type": "application/connect+json", "connect-protocol-version": "1"},
    )
    assert r.status_code == 200 and r.headers["content-type"] == "application/connect+json"
    frames = grpc_messages(r.content)
    assert json.loads(frames[0][1])["memory"]["content"] == "streamed over Connect"
    assert frames[-1][0] == 0x02 and json.loads(frames[-1][1]) == {}


def test_a_port_in_use_is_named_and_nothing_starts(tmp_path):
    import socket
    import subprocess

    from .conftest import REPO

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cmd = [str(REPO / ".venv/bin/engram-server"), "serve", "--port", str(port), "--grpc-port", "0",
               "--data-dir", str(tmp_path / "data")]  # fmt: skip
        env = {**os.environ, "ENGRAM_ENCRYPTION_KEY": "11" * 32}
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])  # an error exit, not a crash or abort
    last = r.stderr.strip().splitlines()[-1]
    assert f"127.0.0.1:{port} is already in use" in last and "--port / ENGRAM_PORT" in last, last
    assert "Traceback" not in r.stderr and '"listening"' not in r.stderr
