"""gRPC and gRPC-Web framing against the ASGI app, in process (HTTP/2 scope, trailers visible)."""

from __future__ import annotations

import base64
import gzip
import struct
from urllib.parse import unquote

import pytest
from engram._gen.engram import v1 as pb
from engram_server.transport.grpc import _CancelOnDisconnect

from .conftest import ROOT_KEY, asgi_call, grpc_frame, grpc_messages

pytestmark = pytest.mark.anyio

GRPC = {"content-type": "application/grpc", "te": "trailers", "authorization": f"Bearer {ROOT_KEY}"}
STORE = "/engram.v1.MemoryService/StoreMemory"


def store_req(content="hello world", agent="a1"):
    return bytes(pb.StoreMemoryRequest(agent_id=agent, content=content))


async def test_unary_ok_sends_start_body_then_trailers(app):
    out = await asgi_call(app, STORE, grpc_frame(store_req()), GRPC)
    assert out["status"] == 200
    assert out["headers"]["content-type"] == "application/grpc"
    assert "grpc-status" not in out["headers"]
    assert out["trailers"]["grpc-status"] == "0"
    [(flag, data)] = grpc_messages(out["body"])
    assert flag == 0
    resp = pb.StoreMemoryResponse.parse(data)
    assert resp.memory.content == "hello world" and resp.created


async def test_error_is_headers_empty_body_trailers_with_details(app):
    out = await asgi_call(app, STORE, grpc_frame(store_req(content="")), GRPC)
    assert out["status"] == 200 and out["body"] == b""
    t = out["trailers"]
    assert t["grpc-status"] == "3"
    assert "content" in unquote(t["grpc-message"])
    from google.rpc import error_details_pb2, status_pb2

    raw = t["grpc-status-details-bin"]
    st = status_pb2.Status.FromString(base64.b64decode(raw + "=" * (-len(raw) % 4)))
    assert st.code == 3
    bad = error_details_pb2.BadRequest()
    assert st.details[0].Unpack(bad)
    assert bad.field_violations[0].field == "content"


async def test_grpc_message_is_percent_encoded(app):
    out = await asgi_call(app, STORE, grpc_frame(store_req(agent="bad agent/é")), GRPC)
    assert out["trailers"]["grpc-status"] == "3"
    msg = out["trailers"]["grpc-message"]
    assert msg.isascii() and unquote(msg).startswith("agent_id")


async def test_unknown_method_is_unimplemented(app):
    out = await asgi_call(app, "/engram.v1.MemoryService/Nope", grpc_frame(b""), GRPC)
    assert out["trailers"]["grpc-status"] == "12"


async def test_invalid_protobuf(app):
    out = await asgi_call(app, STORE, grpc_frame(b"\xff\xff\xff"), GRPC)
    assert out["trailers"]["grpc-status"] == "3"
    assert "valid" in unquote(out["trailers"]["grpc-message"])


async def test_bad_utf8_is_refused(app):
    out = await asgi_call(app, STORE, grpc_frame(b"\x0a\x02\xff\xfe"), GRPC)
    assert out["trailers"]["grpc-status"] == "3"


async def test_truncated_frame_is_internal(app):
    body = grpc_frame(store_req())[:-3]
    out = await asgi_call(app, STORE, body, GRPC)
    assert out["trailers"]["grpc-status"] == "13"


async def test_bad_flag(app):
    out = await asgi_call(app, STORE, grpc_frame(store_req(), flag=0x42), GRPC)
    assert out["trailers"]["grpc-status"] == "13"


async def test_oversized_message_is_resource_exhausted_before_reading(app):
    header = struct.pack(">BI", 0, 64 * 1024 * 1024)
    out = await asgi_call(app, STORE, header, GRPC)
    assert out["trailers"]["grpc-status"] == "8"


async def test_compressed_without_encoding_is_internal(app):
    out = await asgi_call(app, STORE, grpc_frame(gzip.compress(store_req()), flag=1), GRPC)
    assert out["trailers"]["grpc-status"] == "13"


async def test_gzip_request_is_accepted(app):
    out = await asgi_call(app, STORE, grpc_frame(gzip.compress(store_req()), flag=1), {**GRPC, "grpc-encoding": "gzip"})
    assert out["trailers"]["grpc-status"] == "0"


async def test_unsupported_encoding_is_unimplemented(app):
    out = await asgi_call(app, STORE, grpc_frame(b"xx", flag=1), {**GRPC, "grpc-encoding": "snappy"})
    assert out["trailers"]["grpc-status"] == "12"


async def test_split_frames_across_chunks(app):
    body = grpc_frame(store_req())
    out = await asgi_call(app, STORE, headers=GRPC, chunks=[body[:2], body[2:7], body[7:]])
    assert out["trailers"]["grpc-status"] == "0"


async def test_two_messages_for_unary_is_internal(app):
    out = await asgi_call(app, STORE, grpc_frame(store_req()) * 2, GRPC)
    assert out["trailers"]["grpc-status"] == "13"


async def test_json_codec_is_unimplemented(app):
    out = await asgi_call(app, STORE, grpc_frame(b"{}"), {**GRPC, "content-type": "application/grpc+json"})
    assert out["trailers"]["grpc-status"] == "12"


async def test_http1_grpc_is_refused_cleanly(app):
    out = await asgi_call(app, STORE, grpc_frame(store_req()), GRPC, http_version="1.1")
    assert out["status"] == 505
    assert out["headers"]["grpc-status"] == "13"


async def test_get_is_unimplemented(app):
    out = await asgi_call(app, STORE, b"", GRPC, method="GET")
    assert out["trailers"]["grpc-status"] == "12"


async def test_unauthenticated_and_health_without_key(app):
    headers = {k: v for k, v in GRPC.items() if k != "authorization"}
    out = await asgi_call(app, STORE, grpc_frame(store_req()), headers)
    assert out["trailers"]["grpc-status"] == "16"
    out = await asgi_call(app, "/engram.v1.AdminService/Health", grpc_frame(b""), headers)
    assert out["trailers"]["grpc-status"] == "0"
    assert pb.HealthResponse.parse(grpc_messages(out["body"])[0][1]).status == "healthy"


async def test_deadline_exceeded(app, embedder):
    embedder.slow = 0.5
    req = bytes(pb.RecallRequest(agent_id="a1", query="x"))
    out = await asgi_call(app, "/engram.v1.MemoryService/Recall", grpc_frame(req), {**GRPC, "grpc-timeout": "50m"})
    assert out["trailers"]["grpc-status"] == "4"
    out = await asgi_call(app, "/engram.v1.MemoryService/Recall", grpc_frame(req), {**GRPC, "grpc-timeout": "0n"})
    assert out["trailers"]["grpc-status"] == "4"


async def test_client_disconnect_cancels(app, embedder):
    # longer than the watcher's start (WATCH_AFTER) plus the fake client's disconnect delay
    embedder.slow = _CancelOnDisconnect.WATCH_AFTER + 0.4
    req = bytes(pb.RecallRequest(agent_id="a1", query="x"))
    out = await asgi_call(app, "/engram.v1.MemoryService/Recall", grpc_frame(req), GRPC, disconnect_after=0.05)
    assert out["trailers"] == {} and out["body"] == b""


async def test_no_te_trailers_puts_status_in_headers(app):
    headers = {k: v for k, v in GRPC.items() if k != "te"}
    out = await asgi_call(app, STORE, grpc_frame(store_req(content="")), headers)
    assert out["headers"]["grpc-status"] == "3" and out["trailers"] == {}


async def test_server_streaming_and_client_streaming(app):
    for i in range(3):
        await asgi_call(app, STORE, grpc_frame(store_req(content=f"m{i}", agent="exp")), GRPC)
    out = await asgi_call(
        app,
        "/engram.v1.MemoryService/ExportMemories",
        grpc_frame(bytes(pb.ExportMemoriesRequest(agent_id="exp"))),
        GRPC,
    )
    msgs = [pb.ExportMemoriesResponse.parse(d) for _, d in grpc_messages(out["body"])]
    assert [m.memory.content for m in msgs] == sorted(m.memory.content for m in msgs) or len(msgs) == 3
    assert len(msgs) == 3 and out["trailers"]["grpc-status"] == "0"
    body = b"".join(grpc_frame(bytes(pb.ImportMemoriesRequest(memory=m.memory, agent_id="copy"))) for m in msgs)
    out = await asgi_call(app, "/engram.v1.MemoryService/ImportMemories", body, GRPC)
    resp = pb.ImportMemoriesResponse.parse(grpc_messages(out["body"])[0][1])
    assert (resp.imported_count, resp.skipped_count) == (3, 0)  # ids are per agent: copied
    out = await asgi_call(app, "/engram.v1.MemoryService/ImportMemories", body, GRPC)
    resp = pb.ImportMemoriesResponse.parse(grpc_messages(out["body"])[0][1])
    assert (resp.imported_count, resp.skipped_count) == (0, 3)  # again: idempotent skip


async def test_grpc_web_trailers_frame(app):
    headers = {
        "content-type": "application/grpc-web+proto",
        "authorization": f"Bearer {ROOT_KEY}",
        "origin": "https://app.example",
    }
    out = await asgi_call(app, STORE, grpc_frame(store_req()), headers, http_version="1.1")
    assert out["status"] == 200 and out["trailers"] == {}
    assert out["headers"]["content-type"] == "application/grpc-web+proto"
    assert out["headers"]["access-control-allow-origin"] == "https://app.example"
    assert "grpc-status" in out["headers"]["access-control-expose-headers"]
    frames = grpc_messages(out["body"])
    assert frames[0][0] == 0 and pb.StoreMemoryResponse.parse(frames[0][1]).created
    assert frames[-1][0] == 0x80
    assert b"grpc-status: 0" in frames[-1][1]
    out = await asgi_call(app, STORE, grpc_frame(store_req(content="")), headers, http_version="1.1")
    frames = grpc_messages(out["body"])
    assert len(frames) == 1 and frames[0][0] == 0x80 and b"grpc-status: 3" in frames[0][1]


async def test_grpc_web_text(app):
    headers = {"content-type": "application/grpc-web-text", "authorization": f"Bearer {ROOT_KEY}"}
    out = await asgi_call(app, STORE, base64.b64encode(grpc_frame(store_req())), headers, http_version="1.1")
    assert out["headers"]["content-type"] == "application/grpc-web-text+proto"
    raw = b""
    body = out["body"]
    while body:  # concatenated padded base64 chunks
        end = body.find(b"=")
        end = len(body) if end == -1 else end
        while end < len(body) and body[end : end + 1] == b"=":
            end += 1
        raw += base64.b64decode(body[:end])
        body = body[end:]
    frames = grpc_messages(raw)
    assert frames[-1][0] == 0x80 and b"grpc-status: 0" in frames[-1][1]


async def test_cors_preflight(app):
    out = await asgi_call(
        app,
        STORE,
        b"",
        {
            "origin": "https://app.example",
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type,x-grpc-web",
        },
        method="OPTIONS",
        http_version="1.1",
    )
    assert out["status"] == 204
    assert out["headers"]["access-control-allow-origin"] == "https://app.example"
    assert "POST" in out["headers"]["access-control-allow-methods"]
    assert out["headers"]["access-control-allow-headers"] == "content-type,x-grpc-web"
    out = await asgi_call(
        app,
        STORE,
        b"",
        {"origin": "https://evil.example", "access-control-request-method": "POST"},
        method="OPTIONS",
        http_version="1.1",
    )
    assert out["status"] == 403 and "access-control-allow-origin" not in out["headers"]


async def test_concurrent_stream_limit(engine, embedder):
    from .conftest import make_app

    app = make_app(engine, max_concurrent_streams=1)
    app_started = await asgi_call(app, "/engram.v1.AdminService/Health", grpc_frame(b""), GRPC)
    assert app_started["trailers"]["grpc-status"] == "0"
    import asyncio

    embedder.slow = 0.3
    req = grpc_frame(bytes(pb.RecallRequest(agent_id="a1", query="x")))
    a, b = await asyncio.gather(
        asgi_call(app, "/engram.v1.MemoryService/Recall", req, GRPC),
        asgi_call(app, "/engram.v1.MemoryService/Recall", req, GRPC),
    )
    assert sorted([a["trailers"]["grpc-status"], b["trailers"]["grpc-status"]]) == ["0", "8"]
