"""The Connect protocol against the ASGI app, in process (HTTP/2 scope), over a real engine."""

from __future__ import annotations

import base64
import gzip
import json
import struct

import pytest
from engram._gen.engram import v1 as pb
from engram_server.errors import CODES, HTTP_STATUS
from engram_server.transport.connect import connect_code, parse_content_type

from .conftest import ROOT_KEY, asgi_call, grpc_frame, grpc_messages, make_app

pytestmark = pytest.mark.anyio

AUTH = {"authorization": f"Bearer {ROOT_KEY}"}
JSON = {**AUTH, "content-type": "application/json", "connect-protocol-version": "1"}
PROTO = {**AUTH, "content-type": "application/proto", "connect-protocol-version": "1"}
STREAM_JSON = {**AUTH, "content-type": "application/connect+json", "connect-protocol-version": "1"}
STREAM_PROTO = {**AUTH, "content-type": "application/connect+proto", "connect-protocol-version": "1"}
STORE = "/engram.v1.MemoryService/StoreMemory"
RECALL = "/engram.v1.MemoryService/Recall"
EXPORT = "/engram.v1.MemoryService/ExportMemories"
IMPORT = "/engram.v1.MemoryService/ImportMemories"


def jbody(obj) -> bytes:
    return json.dumps(obj).encode()


def envelopes(body: bytes) -> list[tuple[int, bytes]]:
    return grpc_messages(body)  # the same 5-byte prefix as gRPC's


async def call_json(app, path, obj, headers=JSON, **kw):
    out = await asgi_call(app, path, jbody(obj), headers, **kw)
    return out, json.loads(out["body"]) if out["body"] else None


# --- the Connect code table -----------------------------------------------------------------------
# https://connectrpc.com/docs/protocol#error-codes: code name and HTTP status.
CONNECT_TABLE = {
    "canceled": 499,
    "unknown": 500,
    "invalid_argument": 400,
    "deadline_exceeded": 504,
    "not_found": 404,
    "already_exists": 409,
    "permission_denied": 403,
    "resource_exhausted": 429,
    "failed_precondition": 400,
    "aborted": 409,
    "out_of_range": 400,
    "unimplemented": 501,
    "internal": 500,
    "unavailable": 503,
    "data_loss": 500,
    "unauthenticated": 401,
}


def test_code_names_and_statuses_follow_the_connect_spec():
    ours = {connect_code(name): HTTP_STATUS[name] for name in CODES if name != "OK"}
    assert ours == CONNECT_TABLE


def test_content_types():
    assert parse_content_type("application/json") == (False, False)
    assert parse_content_type("Application/JSON; charset=utf-8") == (False, False)
    assert parse_content_type("application/proto") == (False, True)
    assert parse_content_type("application/connect+json;charset=UTF-8") == (True, False)
    assert parse_content_type("application/connect+proto") == (True, True)
    for bad in ("", "text/plain", "application/json; charset=latin-1", "application/proto; charset=utf-8",
                "application/grpc", "application/x-ndjson", "application/connect+thrift"):
        assert parse_content_type(bad) is None, bad


# --- unary --------------------------------------------------------------------------------------
async def test_unary_json(app):
    out, body = await call_json(app, STORE, {"agentId": "a1", "content": "hello connect", "memoryType": "semantic"})
    assert out["status"] == 200, out
    assert out["headers"]["content-type"] == "application/json"
    assert int(out["headers"]["content-length"]) == len(out["body"])
    assert out["trailers"] == {}
    mem = body["memory"]
    assert mem["content"] == "hello connect" and mem["memory_type"] == "MEMORY_TYPE_SEMANTIC" and body["created"]
    out, body = await call_json(app, RECALL, {"agent_id": "a1", "query": "hello", "top_k": 1})
    assert out["status"] == 200 and body["memories"][0]["id"] == mem["id"]


async def test_unary_binary(app):
    req = bytes(pb.StoreMemoryRequest(agent_id="a1", content="binary connect"))
    out = await asgi_call(app, STORE, req, PROTO)
    assert out["status"] == 200 and out["headers"]["content-type"] == "application/proto"
    resp = pb.StoreMemoryResponse.parse(out["body"])
    assert resp.memory.content == "binary connect" and resp.created
    # An empty body is the empty message: Health takes nothing.
    out = await asgi_call(app, "/engram.v1.AdminService/Health", b"", PROTO)
    assert out["status"] == 200 and pb.HealthResponse.parse(out["body"]).status == "healthy"


async def test_error_with_field_violations(app):
    out, body = await call_json(app, STORE, {"agent_id": "a1", "content": ""})
    assert out["status"] == 400 and out["headers"]["content-type"] == "application/json"
    assert body["code"] == "invalid_argument" and "content" in body["message"]
    [detail] = body["details"]
    assert detail["type"] == "google.rpc.BadRequest"
    from google.rpc import error_details_pb2

    value = detail["value"]
    bad = error_details_pb2.BadRequest.FromString(base64.b64decode(value + "=" * (-len(value) % 4)))
    assert bad.field_violations[0].field == "content"
    assert detail["debug"]["fieldViolations"][0]["field"] == "content"
    # The same error over binary: errors are always JSON.
    out = await asgi_call(app, STORE, bytes(pb.StoreMemoryRequest(agent_id="a1", content="")), PROTO)
    assert out["status"] == 400 and out["headers"]["content-type"] == "application/json"
    assert json.loads(out["body"])["details"][0]["type"] == "google.rpc.BadRequest"


async def test_errors_without_details_and_auth(app):
    out, body = await call_json(app, "/engram.v1.MemoryService/GetMemory", {"id": "nope"})
    assert out["status"] == 404 and body["code"] == "not_found" and "details" not in body
    headers = {k: v for k, v in JSON.items() if k != "authorization"}
    out, body = await call_json(app, STORE, {"agent_id": "a1", "content": "x"}, headers)
    assert out["status"] == 401 and body["code"] == "unauthenticated"
    out, body = await call_json(app, STORE, {"agent_id": "a1", "content": "x"}, {**JSON, "authorization": "Bearer no"})
    assert out["status"] == 401


async def test_bad_requests(app):
    out = await asgi_call(app, STORE, b"{not json", JSON)
    assert out["status"] == 400 and json.loads(out["body"])["code"] == "invalid_argument"
    out = await asgi_call(app, STORE, b"[1, 2]", JSON)
    assert out["status"] == 400
    out, body = await call_json(app, STORE, {"agent_id": "a1", "content": "x", "bogus": 1})
    assert out["status"] == 400 and "bogus" in body["message"]
    out = await asgi_call(app, STORE, b"\xff\xff\xff", PROTO)
    assert out["status"] == 400 and json.loads(out["body"])["code"] == "invalid_argument"
    out, body = await call_json(app, STORE, {}, {**JSON, "connect-protocol-version": "2"})
    assert out["status"] == 400 and "connect-protocol-version" in body["message"]


async def test_curl_style_request_without_protocol_version(app):
    headers = {**AUTH, "content-type": "application/json"}
    out, body = await call_json(app, "/engram.v1.AdminService/GetServerInfo", {}, headers, http_version="1.1")
    assert out["status"] == 200 and body["api_version"] == "v1"


async def test_unknown_method(app):
    out, body = await call_json(app, "/engram.v1.MemoryService/Nope", {})
    assert out["status"] == 501 and body["code"] == "unimplemented" and "Nope" in body["message"]
    out, body = await call_json(app, "/other.v9.Service/Method", {})
    assert out["status"] == 501 and body["code"] == "unimplemented"
    # Streaming content type: the error is the end of the stream.
    out = await asgi_call(app, "/engram.v1.MemoryService/Nope", grpc_frame(b"{}"), STREAM_JSON)
    assert out["status"] == 200
    [(flag, data)] = envelopes(out["body"])
    assert flag == 0x02 and json.loads(data)["error"]["code"] == "unimplemented"


async def test_wrong_content_type(app):
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "application/xml"):
        headers = {**AUTH, "content-type": ctype}
        out = await asgi_call(app, STORE, b'{"agent_id": "a1", "content": "x"}', headers, http_version="1.1")
        assert out["status"] == 415, ctype
        assert "application/json" in out["headers"]["accept-post"]
        assert json.loads(out["body"])["code"] == "unimplemented"
    out = await asgi_call(app, STORE, b"{}", {**AUTH}, http_version="1.1")  # no content type at all
    assert out["status"] == 415
    # A unary type for a streaming method, and the reverse.
    out = await asgi_call(app, EXPORT, b'{"agent_id": "a1"}', JSON)
    assert out["status"] == 415 and "streaming" in json.loads(out["body"])["message"]
    out = await asgi_call(app, STORE, grpc_frame(b"{}"), STREAM_JSON)
    assert out["status"] == 415
    # Nothing was stored by any of it.
    out, body = await call_json(app, "/engram.v1.MemoryService/ListMemories", {"agent_id": "a1"})
    assert body["memories"] == []


async def test_get_is_not_served(app):
    out = await asgi_call(app, "/engram.v1.AdminService/Health", method="GET", http_version="1.1")
    assert out["status"] == 405 and out["headers"]["allow"] == "POST"
    assert json.loads(out["body"])["code"] == "unimplemented"


async def test_gzip(app):
    body = gzip.compress(jbody({"agent_id": "gz", "content": "compressed connect"}))
    out = await asgi_call(app, STORE, body, {**JSON, "content-encoding": "gzip"})
    assert out["status"] == 200 and json.loads(out["body"])["memory"]["content"] == "compressed connect"
    assert "content-encoding" not in out["headers"]  # responses are not compressed
    assert out["headers"]["accept-encoding"] == "gzip"
    out = await asgi_call(app, STORE, b"not gzip", {**JSON, "content-encoding": "gzip"})
    assert out["status"] == 500 and json.loads(out["body"])["code"] == "internal"
    out = await asgi_call(app, STORE, body[:-8], {**JSON, "content-encoding": "gzip"})
    assert out["status"] == 500 and "truncated" in json.loads(out["body"])["message"]
    out = await asgi_call(app, STORE, body, {**JSON, "content-encoding": "br"})
    assert out["status"] == 501 and json.loads(out["body"])["code"] == "unimplemented"


async def test_gzip_bomb_is_refused(engine):
    app = make_app(engine, max_request_bytes=64 * 1024)
    body = gzip.compress(b" " * (1024 * 1024))
    out = await asgi_call(app, STORE, body, {**JSON, "content-encoding": "gzip"})
    assert out["status"] == 429 and json.loads(out["body"])["code"] == "resource_exhausted"
    out = await asgi_call(app, STORE, b" " * (65 * 1024), JSON)
    assert out["status"] == 429


async def test_deadline_exceeded(app, embedder):
    embedder.slow = 0.5
    out, body = await call_json(app, RECALL, {"agent_id": "a1", "query": "x"}, {**JSON, "connect-timeout-ms": "50"})
    assert out["status"] == 504 and body["code"] == "deadline_exceeded"
    out, body = await call_json(app, RECALL, {"agent_id": "a1", "query": "x"}, {**JSON, "connect-timeout-ms": "0"})
    assert out["status"] == 504
    embedder.slow = 0
    out, body = await call_json(app, RECALL, {"agent_id": "a1", "query": "x"}, {**JSON, "connect-timeout-ms": "5000"})
    assert out["status"] == 200
    out, body = await call_json(app, RECALL, {"agent_id": "a1", "query": "x"}, {**JSON, "connect-timeout-ms": "1.5"})
    assert out["status"] == 400 and "connect-timeout-ms" in body["message"]
    out, body = await call_json(
        app, RECALL, {"agent_id": "a1", "query": "x"}, {**JSON, "connect-timeout-ms": "12345678901"}
    )
    assert out["status"] == 400


async def test_client_disconnect_cancels(app, embedder):
    from engram_server.transport.grpc import _CancelOnDisconnect

    embedder.slow = _CancelOnDisconnect.WATCH_AFTER + 0.4
    out = await asgi_call(app, RECALL, jbody({"agent_id": "a1", "query": "x"}), JSON, disconnect_after=0.05)
    assert out["status"] is None and out["body"] == b""


# --- streaming ----------------------------------------------------------------------------------
async def _store_three(app, agent):
    for i in range(3):
        out, _ = await call_json(app, STORE, {"agent_id": agent, "content": f"memory {i}"})
        assert out["status"] == 200


async def test_server_streaming_json_and_end_of_stream(app):
    await _store_three(app, "exp")
    out = await asgi_call(app, EXPORT, grpc_frame(jbody({"agent_id": "exp"})), STREAM_JSON)
    assert out["status"] == 200 and out["headers"]["content-type"] == "application/connect+json"
    frames = envelopes(out["body"])
    assert [f for f, _ in frames] == [0, 0, 0, 0x02]
    contents = sorted(json.loads(d)["memory"]["content"] for _, d in frames[:3])
    assert contents == ["memory 0", "memory 1", "memory 2"]
    assert json.loads(frames[-1][1]) == {}


async def test_server_streaming_binary_and_error_in_end_of_stream(app):
    await _store_three(app, "exp")
    req = bytes(pb.ExportMemoriesRequest(agent_id="exp"))
    out = await asgi_call(app, EXPORT, grpc_frame(req), STREAM_PROTO)
    assert out["headers"]["content-type"] == "application/connect+proto"
    frames = envelopes(out["body"])
    assert len(frames) == 4 and frames[-1][0] == 0x02 and json.loads(frames[-1][1]) == {}
    assert pb.ExportMemoriesResponse.parse(frames[0][1]).memory.agent_id == "exp"
    # An error is a 200 whose only envelope is the end of the stream.
    out = await asgi_call(app, EXPORT, grpc_frame(bytes(pb.ExportMemoriesRequest(agent_id=""))), STREAM_PROTO)
    assert out["status"] == 200
    [(flag, data)] = envelopes(out["body"])
    err = json.loads(data)["error"]
    assert flag == 0x02 and err["code"] == "invalid_argument" and err["details"][0]["type"] == "google.rpc.BadRequest"
    # Unauthenticated, likewise.
    headers = {k: v for k, v in STREAM_PROTO.items() if k != "authorization"}
    out = await asgi_call(app, EXPORT, grpc_frame(req), headers)
    assert json.loads(envelopes(out["body"])[-1][1])["error"]["code"] == "unauthenticated"


async def test_server_streaming_protocol_errors(app):
    def end_error(out):
        frames = envelopes(out["body"])
        assert out["status"] == 200 and frames[-1][0] == 0x02
        return json.loads(frames[-1][1])["error"]

    req = grpc_frame(jbody({"agent_id": "exp"}))
    assert end_error(await asgi_call(app, EXPORT, b"", STREAM_JSON))["code"] == "invalid_argument"
    assert end_error(await asgi_call(app, EXPORT, req * 2, STREAM_JSON))["code"] == "invalid_argument"
    assert end_error(await asgi_call(app, EXPORT, req[:-2], STREAM_JSON))["code"] == "internal"
    too_big = struct.pack(">BI", 0, 64 * 1024 * 1024)
    assert end_error(await asgi_call(app, EXPORT, too_big, STREAM_JSON))["code"] == "resource_exhausted"
    # Compressed envelopes follow connect-content-encoding.
    gz = grpc_frame(gzip.compress(jbody({"agent_id": "exp"})), flag=1)
    out = await asgi_call(app, EXPORT, gz, {**STREAM_JSON, "connect-content-encoding": "gzip"})
    assert json.loads(envelopes(out["body"])[-1][1]) == {}
    assert "connect-content-encoding" in end_error(await asgi_call(app, EXPORT, gz, STREAM_JSON))["message"]
    err = end_error(await asgi_call(app, EXPORT, gz, {**STREAM_JSON, "connect-content-encoding": "zstd"}))
    assert err["code"] == "unimplemented"


async def test_server_streaming_deadline(app):
    await _store_three(app, "exp")
    out = await asgi_call(
        app, EXPORT, grpc_frame(jbody({"agent_id": "exp"})), {**STREAM_JSON, "connect-timeout-ms": "0"}
    )
    [(flag, data)] = envelopes(out["body"])
    assert flag == 0x02 and json.loads(data)["error"]["code"] == "deadline_exceeded"


async def test_client_streaming_import(app):
    await _store_three(app, "exp")
    out = await asgi_call(app, EXPORT, grpc_frame(jbody({"agent_id": "exp"})), STREAM_JSON)
    memories = [json.loads(d)["memory"] for f, d in envelopes(out["body"]) if f == 0]
    body = b"".join(grpc_frame(jbody({"memory": m, "agent_id": "copy"})) for m in memories)
    # Split across chunks, as a client streams it.
    chunks = [body[:3], body[3:40], body[40:]]
    out = await asgi_call(app, IMPORT, headers=STREAM_JSON, chunks=chunks)
    assert out["status"] == 200 and out["headers"]["content-type"] == "application/connect+json"
    frames = envelopes(out["body"])
    assert [f for f, _ in frames] == [0, 0x02]
    resp = json.loads(frames[0][1])
    assert (resp["imported_count"], resp["skipped_count"]) == (3, 0)
    assert json.loads(frames[1][1]) == {}
    # Binary, again: every memory is already there.
    binary = b"".join(
        grpc_frame(bytes(pb.ImportMemoriesRequest(memory=pb.Memory().from_dict(m), agent_id="copy"))) for m in memories
    )
    out = await asgi_call(app, IMPORT, binary, STREAM_PROTO)
    frames = envelopes(out["body"])
    resp = pb.ImportMemoriesResponse.parse(frames[0][1])
    assert (resp.imported_count, resp.skipped_count) == (0, 3) and frames[1][0] == 0x02
    # A bad message ends the stream with its error.
    out = await asgi_call(app, IMPORT, grpc_frame(b"{oops"), STREAM_JSON)
    [(flag, data)] = envelopes(out["body"])
    assert flag == 0x02 and json.loads(data)["error"]["code"] == "invalid_argument"


# --- CORS and observation -----------------------------------------------------------------------
async def test_cors_and_preflight(app):
    origin = "https://app.example"
    out, _ = await call_json(app, "/engram.v1.AdminService/GetServerInfo", {}, {**JSON, "origin": origin})
    assert out["status"] == 200 and out["headers"]["access-control-allow-origin"] == origin
    assert "connect-accept-encoding" in out["headers"]["access-control-expose-headers"]
    out = await asgi_call(
        app,
        STORE,
        method="OPTIONS",
        headers={"origin": origin, "access-control-request-method": "POST"},
        http_version="1.1",
    )
    assert out["status"] == 204
    allowed = out["headers"]["access-control-allow-headers"]
    assert "connect-protocol-version" in allowed and "connect-timeout-ms" in allowed


async def test_metrics_count_connect_calls(app):
    await call_json(app, "/engram.v1.AdminService/GetServerInfo", {})
    await call_json(app, "/engram.v1.MemoryService/GetMemory", {"id": "nope"})
    text = app.metrics.render().decode()
    assert 'engram_requests_total{code="OK",method="AdminService/GetServerInfo",transport="connect"} 1.0' in text
    assert 'engram_requests_total{code="NOT_FOUND",method="MemoryService/GetMemory",transport="connect"} 1.0' in text
