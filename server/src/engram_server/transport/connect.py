"""The Connect protocol (https://connectrpc.com/docs/protocol), as ASGI.

app.py sends here every request whose path is a method path, `/<package>.<Service>/<Method>`,
and whose content type is not gRPC's. What is served:

* **Unary**: `POST` with `Content-Type: application/json` (optionally `; charset=utf-8`) or
  `application/proto`. The body is the request message, whole (empty is the empty message);
  `Content-Encoding: gzip` compresses it. Success is `200` with the response in the same codec;
  an error is the HTTP status of its code (google.rpc.Code's mapping, which the Connect spec
  uses too) with `Content-Type: application/json` and `{"code", "message", "details"}`.
* **Streaming** (server, client, bidi): `POST` with `application/connect+json` or
  `application/connect+proto`. Each message is enveloped (flag byte, big-endian uint32 length;
  flag 0x01: compressed per `Connect-Content-Encoding`, gzip). The response is `200` whatever
  happens once the content type is accepted; its last envelope (flag 0x02) is the JSON
  end-of-stream message, `{}` or `{"error": {...}}`.
* `Connect-Protocol-Version` must be `1` when sent; a request without it is served (curl).
  `Connect-Timeout-Ms` is the call's deadline (`deadline_exceeded`).
* Not served: `GET` (no method of the API is declared free of side effects), compressed
  responses (requests may be gzip; responses never are).

Errors before the call (a method other than POST: 405; a content type that is not Connect's, or
a unary type for a streaming method and the reverse: 415 with `Accept-Post`) are plain HTTP
answers with a Connect JSON error body.

Each request is decoded once (upb for proto, json_codec for JSON) and each response encoded once;
the registry, authentication and handlers are those of the other transports. The Hypercorn rules
of grpc.py hold: an early answer drains the request body first, and a response goes start → body
(the last with more_body False), never trailers.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from google.protobuf.message import Message

from ..asgi import Receive, Scope, Send
from ..errors import HTTP_STATUS, RpcError
from ..service.base import CallContext
from . import json_codec
from .grpc import FrameReader, _CancelOnDisconnect, decode, decompress, frame, header

if TYPE_CHECKING:
    from ..service.registry import Method
    from .host import Host

# `/<package>.<Service>/<Method>`: the service name is qualified, so no REST route (`/v1/...`,
# `/health`, `/openapi.json`) looks like one.
METHOD_PATH = re.compile(r"^/[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+/[A-Za-z_][A-Za-z0-9_]*$")
UNARY_TYPES = {"application/json": False, "application/proto": True}  # media type → binary
STREAM_TYPES = {"application/connect+json": False, "application/connect+proto": True}
ACCEPT_POST = b"application/json, application/proto, application/connect+json, application/connect+proto"
ENCODINGS = ("identity", "gzip")
END_STREAM = 0x02
_TIMEOUT_RE = re.compile(r"^[0-9]{1,10}$")


def parse_content_type(value: str) -> tuple[bool, bool] | None:
    """(streaming, binary) of a Connect content type; None when it is not one. JSON may say
    `charset=utf-8` (the only charset proto3 JSON has)."""
    media, _, params = value.partition(";")
    media = media.strip().lower()
    if media in UNARY_TYPES:
        streaming, binary = False, UNARY_TYPES[media]
    elif media in STREAM_TYPES:
        streaming, binary = True, STREAM_TYPES[media]
    else:
        return None
    for param in filter(None, (p.strip() for p in params.split(";"))):
        name, _, val = param.partition("=")
        if binary or name.strip().lower() != "charset" or val.strip().strip('"').lower() not in ("utf-8", "utf8"):
            return None
    return streaming, binary


def parse_timeout(value: str | None) -> float | None:
    """Seconds from `Connect-Timeout-Ms` (at most 10 digits); None when absent."""
    if value is None:
        return None
    v = value.strip()
    if not _TIMEOUT_RE.match(v):
        raise RpcError("INVALID_ARGUMENT", f"connect-timeout-ms must be 1 to 10 digits, not {value[:20]!r}")
    return int(v) / 1000


def connect_code(code: str) -> str:
    """The Connect name of a gRPC code name (`NOT_FOUND` → `not_found`; `CANCELLED` → `canceled`)."""
    return "canceled" if code == "CANCELLED" else code.lower()


def error_json(err: RpcError) -> dict[str, Any]:
    """The Connect error object: code, message when there is one, details when there are any."""
    out: dict[str, Any] = {"code": connect_code(err.code)}
    if err.message:
        out["message"] = err.message
    details = error_details(err)
    if details:
        out["details"] = details
    return out


def error_details(err: RpcError) -> list[dict[str, Any]]:
    """The details of the google.rpc.Status gRPC sends (`grpc-status-details-bin`), each as
    Connect writes one: the message's full name, its bytes in base64 (no padding) and, for people,
    its proto3 JSON as `debug`."""
    raw = err.status_details_bin()
    if not raw:
        return []
    from google.protobuf import json_format
    from google.rpc import status_pb2

    out = []
    for detail in status_pb2.Status.FromString(raw).details:
        item: dict[str, Any] = {
            "type": detail.type_url.rsplit("/", 1)[-1],
            "value": base64.b64encode(detail.value).rstrip(b"=").decode("ascii"),
        }
        try:
            debug = json_format.MessageToDict(detail)
        except Exception:  # a type not in the pool: debug is optional
            debug = None
        if isinstance(debug, dict):
            debug.pop("@type", None)
            item["debug"] = debug
        out.append(item)
    return out


def _json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


class _Refusal(Exception):
    """A request refused before the call, answered as plain HTTP (405, 415) with a Connect
    error body whatever the content type."""

    def __init__(self, status: int, err: RpcError, headers: list[tuple[bytes, bytes]]) -> None:
        super().__init__(err.message)
        self.status = status
        self.err = err
        self.headers = headers


async def send_error(send: Send, status: int, err: RpcError, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    body = _json_bytes(error_json(err))
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *(extra or [])]
    try:
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})
    except (OSError, RuntimeError):
        pass  # the client is gone


class ConnectTransport:
    """Serves the Connect protocol for every method of the registry."""

    def __init__(self, app: Host) -> None:
        self.app = app
        self.json = json_codec.JsonWriter()

    @staticmethod
    def handles(path: str) -> bool:
        """Whether `path` is a method path (`/engram.v1.MemoryService/StoreMemory`)."""
        return METHOD_PATH.match(path) is not None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        kind = parse_content_type(header(scope, b"content-type") or "")
        streaming, binary = kind if kind is not None else (False, False)
        enc_name = "connect-content-encoding" if streaming else "content-encoding"
        encoding = (header(scope, enc_name.encode()) or "identity").strip().lower()
        reader = FrameReader(receive, self.app.config.max_request_bytes, encoding, encoding_header=enc_name)
        out: _StreamResponder | _UnaryResponder = (
            _StreamResponder(send, binary) if streaming else _UnaryResponder(send, binary)
        )
        method = None
        ctx = None
        code = "OK"
        try:
            if scope["method"] != "POST":
                raise _Refusal(
                    405,
                    RpcError("UNIMPLEMENTED", f"Connect calls use POST, not {scope['method']}"),
                    [(b"allow", b"POST")],
                )
            if kind is None:
                shown = (header(scope, b"content-type") or "none")[:100]
                raise _Refusal(
                    415,
                    RpcError(
                        "UNIMPLEMENTED",
                        f"content type {shown!r} is not a Connect content type: use application/json or "
                        "application/proto (unary), application/connect+json or application/connect+proto (streaming)",
                    ),
                    [(b"accept-post", ACCEPT_POST)],
                )
            method = self.app.registry.get(scope["path"])
            info = method.info
            if streaming != (info.client_streaming or info.server_streaming):
                if streaming:
                    what, want = "a unary", "application/json or application/proto"
                else:
                    what, want = "a streaming", "application/connect+json or application/connect+proto"
                raise _Refusal(
                    415,
                    RpcError("UNIMPLEMENTED", f"{info.full_name} is {what} method: send {want}"),
                    [(b"accept-post", ACCEPT_POST)],
                )
            version = header(scope, b"connect-protocol-version")
            if version is not None and version.strip() != "1":
                raise RpcError("INVALID_ARGUMENT", f"connect-protocol-version {version[:20]!r} is not supported; use 1")
            if encoding not in ENCODINGS:
                raise RpcError("UNIMPLEMENTED", f"{enc_name} {encoding[:40]!r} is not supported; use gzip or identity")
            ctx = CallContext(
                method=info,
                transport="connect",
                authorization=header(scope, b"authorization"),
                consistency_token=header(scope, b"x-engram-token") or "",
            )
            timeout = parse_timeout(header(scope, b"connect-timeout-ms"))
            if timeout is not None and timeout <= 0:
                raise RpcError("DEADLINE_EXCEEDED", "deadline exceeded")
            if timeout is None:
                await self._call(method, ctx, reader, out, scope)
            else:
                try:
                    async with asyncio.timeout(timeout):
                        await self._call(method, ctx, reader, out, scope)
                except TimeoutError:
                    raise RpcError("DEADLINE_EXCEEDED", "deadline exceeded") from None
            await reader.drain()
            await out.finish()
        except _Refusal as refusal:
            code = refusal.err.code
            await reader.drain()
            await send_error(send, refusal.status, refusal.err, refusal.headers)
        except RpcError as err:
            code = err.code
            if err.code == "CANCELLED" or reader.disconnected:  # the client went away: nobody to answer
                return
            await reader.drain()
            await out.finish(err)
        except asyncio.CancelledError:
            code = "CANCELLED"
            raise
        except Exception:
            code = "INTERNAL"
            self.app.log_exception("unhandled error in Connect call")
            await reader.drain()
            await out.finish(RpcError("INTERNAL", "internal error"))
        finally:
            name = method.info.full_name if method else "unknown"
            self.app.observe(name, "connect", code, time.perf_counter() - started, ctx)

    # --- the call ---------------------------------------------------------------------------
    async def _call(
        self,
        method: Method,
        ctx: CallContext,
        reader: FrameReader,
        out: _StreamResponder | _UnaryResponder,
        scope: Scope,
    ) -> None:
        info = method.info
        binary = out.binary
        await self.app.registry.authorize(method, ctx)

        def read(data: bytes) -> Message:
            return decode(method.request_cls, data) if binary else self._decode_json(method.request_cls, data)

        if info.client_streaming:

            async def messages() -> AsyncIterator[Message]:
                while True:
                    data = await reader.next()
                    if data is None:
                        return
                    yield read(data)

            if info.server_streaming:  # bidi
                stream = await method.handler(messages(), ctx)
                async for resp in stream:
                    await out.message(self._encode(resp, binary))
                return
            resp = await method.handler(messages(), ctx)
            await out.message(self._encode(resp, binary))
            return

        if info.server_streaming:
            data = await reader.next()
            if data is None:
                raise RpcError("INVALID_ARGUMENT", "missing request message")
            if await reader.next() is not None:
                raise RpcError("INVALID_ARGUMENT", "more than one request message for a server-streaming method")
        else:
            data = await self._read_unary(reader, scope)
        req = read(data)
        async with _CancelOnDisconnect(reader):
            if info.server_streaming:
                stream = await method.handler(req, ctx)
                async for resp in stream:
                    await out.message(self._encode(resp, binary))
            else:
                resp = await method.handler(req, ctx)
                await out.message(self._encode(resp, binary))

    async def _read_unary(self, reader: FrameReader, scope: Scope) -> bytes:
        limit = reader.max_bytes
        length = header(scope, b"content-length")
        if length and length.isdigit() and int(length) > limit:
            raise RpcError("RESOURCE_EXHAUSTED", f"request body is {length} bytes; the limit is {limit}")
        data = await reader.read_all()
        if reader.encoding == "gzip":
            data = decompress(data, "gzip", limit)
        return data

    @staticmethod
    def _decode_json(cls: type[Message], data: bytes) -> Message:
        if not data.strip():
            obj: Any = {}
        else:
            try:
                obj = json.loads(data)
            except (ValueError, UnicodeDecodeError) as exc:
                raise RpcError("INVALID_ARGUMENT", f"malformed JSON request: {exc}") from None
            except RecursionError:
                raise RpcError("INVALID_ARGUMENT", "malformed JSON request: nested too deeply") from None
        if not isinstance(obj, dict):
            raise RpcError("INVALID_ARGUMENT", "the request must be a JSON object")
        msg: Message = json_codec.parse(cls, obj)
        return msg

    def _encode(self, resp: Message, binary: bool) -> bytes:
        if binary:
            return resp.SerializeToString()
        return _json_bytes(self.json.to_dict(resp))


class _UnaryResponder:
    """A unary answer: the message, held until the call ends, or a JSON error with its status."""

    def __init__(self, send: Send, binary: bool) -> None:
        self.send = send
        self.binary = binary
        self.pending = b""
        self.closed = False

    async def message(self, data: bytes) -> None:
        self.pending = data

    async def finish(self, err: RpcError | None = None) -> None:
        if self.closed:
            return
        self.closed = True
        if err is not None:
            await send_error(self.send, HTTP_STATUS.get(err.code, 500), err, [(b"accept-encoding", b"gzip")])
            return
        body = self.pending
        headers = [
            (b"content-type", b"application/proto" if self.binary else b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"accept-encoding", b"gzip"),
        ]
        try:
            await self.send({"type": "http.response.start", "status": 200, "headers": headers})
            await self.send({"type": "http.response.body", "body": body, "more_body": False})
        except (OSError, RuntimeError):
            pass  # the client is gone


class _StreamResponder:
    """A streaming answer: 200, the enveloped messages as they come, the end-of-stream message."""

    def __init__(self, send: Send, binary: bool) -> None:
        self.send = send
        self.binary = binary
        self.started = False
        self.closed = False

    async def _start(self) -> None:
        if self.started:
            return
        self.started = True
        ctype = b"application/connect+proto" if self.binary else b"application/connect+json"
        headers = [(b"content-type", ctype), (b"connect-accept-encoding", b"gzip")]
        await self.send({"type": "http.response.start", "status": 200, "headers": headers})

    async def message(self, data: bytes) -> None:
        await self._start()
        await self.send({"type": "http.response.body", "body": frame(data), "more_body": True})

    async def finish(self, err: RpcError | None = None) -> None:
        if self.closed:
            return
        self.closed = True
        end = {} if err is None else {"error": error_json(err)}
        try:
            await self._start()
            await self.send(
                {"type": "http.response.body", "body": frame(_json_bytes(end), END_STREAM), "more_body": False}
            )
        except (OSError, RuntimeError):
            pass  # the client is gone
