"""gRPC over HTTP/2 and gRPC-Web, as ASGI.

Framing: each message is a 5-byte prefix (flag byte, big-endian uint32 length) and the bytes.
Flag bit 0 means compressed (gzip/deflate per `grpc-encoding`); in gRPC-Web bit 7 marks the
trailers frame, which the server sends last, in the body.

Hypercorn rules kept here (see docs/design/transport.md): the response always goes start →
body (the last one with more_body False, empty when there is no message) → `http.response.trailers`.
Hypercorn's trailers-only path (trailers without a start) is never used. A client that did not
send `te: trailers` gets grpc-status in the headers instead, since Hypercorn drops trailers then.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
import struct
import time
import zlib
from collections.abc import AsyncIterator
from types import TracebackType
from typing import TYPE_CHECKING, Any

from google.protobuf.message import DecodeError, Message

from ..asgi import Receive, Scope, Send
from ..errors import RpcError
from ..service.base import CallContext

if TYPE_CHECKING:
    from ..service.registry import Method
    from .host import Host

_TIMEOUT_RE = re.compile(r"^(\d{1,8})([HMSmun])$")
_TIMEOUT_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}
OK_TRAILERS = [(b"grpc-status", b"0"), (b"grpc-message", b"")]


def parse_timeout(value: str | None) -> float | None:
    """Seconds from a `grpc-timeout` header; None when absent or malformed (treated as absent)."""
    if not value:
        return None
    m = _TIMEOUT_RE.match(value.strip())
    if not m:
        return None
    return int(m.group(1)) * _TIMEOUT_UNITS[m.group(2)]


def frame(data: bytes, flag: int = 0) -> bytes:
    return struct.pack(">BI", flag, len(data)) + data


def web_trailer_frame(trailers: list[tuple[bytes, bytes]]) -> bytes:
    block = b"".join(k + b": " + v + b"\r\n" for k, v in trailers)
    return frame(block, 0x80)


class FrameReader:
    """Reads length-prefixed messages from the ASGI receive channel."""

    def __init__(
        self,
        receive: Receive,
        max_bytes: int,
        encoding: str,
        text: bool = False,
        encoding_header: str = "grpc-encoding",
    ) -> None:
        self.receive = receive
        self.max_bytes = max_bytes
        self.encoding = encoding
        self.encoding_header = encoding_header  # named in errors (Connect: connect-content-encoding)
        self.text = text  # grpc-web-text: the body is base64
        self.buf = bytearray()
        self.b64_rest = b""
        self.done = False
        self.disconnected = False

    async def _fill(self) -> bool:
        if self.done:
            return False
        msg = await self.receive()
        if msg["type"] == "http.disconnect":
            self.disconnected = True
            self.done = True
            raise RpcError("CANCELLED", "client disconnected")
        data = msg.get("body", b"")
        if self.text and data:
            data = self._b64(data)
        self.buf += data
        if not msg.get("more_body", False):
            self.done = True
            if self.text and self.b64_rest.strip():
                raise RpcError("INTERNAL", "truncated base64 body")
        return True

    def _b64(self, data: bytes) -> bytes:
        data = self.b64_rest + re.sub(rb"\s+", b"", data)
        out = bytearray()
        # Chunks may each carry their own padding: decode padded groups one by one.
        while data:
            pad = data.find(b"=")
            if pad == -1:
                cut = len(data) - len(data) % 4
                chunk, data = data[:cut], data[cut:]
                out += base64.b64decode(chunk) if chunk else b""
                break
            end = pad
            while end < len(data) and data[end : end + 1] == b"=":
                end += 1
            try:
                out += base64.b64decode(data[:end])
            except ValueError:
                raise RpcError("INTERNAL", "invalid base64 body") from None
            data = data[end:]
        self.b64_rest = data
        return bytes(out)

    async def drain(self, max_bytes: int = 64 * 1024 * 1024, seconds: float = 5.0) -> None:
        """Read and discard the rest of the request before answering. Hypercorn (0.18) kills the
        whole HTTP/2 connection (every call on the channel) when request data arrives for a
        stream whose response already completed, so an early error must not leave data unread."""
        if self.done:
            return
        seen = 0

        async def run() -> None:
            nonlocal seen
            while not self.done and seen <= max_bytes:
                msg = await self.receive()
                if msg["type"] == "http.disconnect":
                    self.done = self.disconnected = True
                    return
                seen += len(msg.get("body", b""))
                if not msg.get("more_body", False):
                    self.done = True
            self.buf.clear()

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(run(), seconds)

    async def read_all(self) -> bytes:
        """The whole request body (Connect unary: one message, not framed), at most max_bytes."""
        while await self._fill():
            if len(self.buf) > self.max_bytes:
                raise RpcError("RESOURCE_EXHAUSTED", f"request body is larger than {self.max_bytes} bytes")
        data = bytes(self.buf)
        self.buf.clear()
        return data

    async def next(self) -> bytes | None:
        """The next message, or None at the end of the request."""
        while len(self.buf) < 5:
            if not await self._fill():
                if self.buf:
                    raise RpcError("INTERNAL", "request ended inside a message frame header")
                return None
        flag, length = struct.unpack_from(">BI", self.buf)
        if flag & ~0x01:
            raise RpcError("INTERNAL", f"invalid message frame flag {flag:#04x}")
        if length > self.max_bytes:
            raise RpcError(
                "RESOURCE_EXHAUSTED",
                f"request message is {length} bytes; the limit is {self.max_bytes}",
            )
        while len(self.buf) < 5 + length:
            if not await self._fill():
                raise RpcError("INTERNAL", f"request ended inside a message: {len(self.buf) - 5} of {length} bytes")
        data = bytes(self.buf[5 : 5 + length])
        del self.buf[: 5 + length]
        if flag & 0x01:
            data = self._decompress(data)
        return data

    def _decompress(self, data: bytes) -> bytes:
        enc = self.encoding
        if not enc or enc == "identity":
            raise RpcError("INTERNAL", f"compressed message without {self.encoding_header}")
        if enc not in ("gzip", "deflate"):
            raise RpcError(
                "UNIMPLEMENTED", f"{self.encoding_header} {enc!r} is not supported; use gzip, deflate or identity"
            )
        return decompress(data, enc, self.max_bytes)


def decompress(data: bytes, encoding: str, max_bytes: int) -> bytes:
    """`data` inflated (gzip or deflate), refused past max_bytes without inflating further."""
    d = zlib.decompressobj(31 if encoding == "gzip" else 15)
    try:
        out = d.decompress(data, max_bytes + 1)
    except zlib.error:
        raise RpcError("INTERNAL", f"could not decompress the {encoding} message") from None
    if len(out) > max_bytes or d.unconsumed_tail:
        raise RpcError("RESOURCE_EXHAUSTED", f"decompressed request is larger than {max_bytes} bytes")
    if not d.eof:
        raise RpcError("INTERNAL", f"the {encoding} message is truncated")
    return out


def decode(cls: type[Message], data: bytes) -> Message:
    """One request message from its bytes (upb: malformed wire data, invalid UTF-8 in a string
    and nesting beyond its recursion limit are refused)."""
    try:
        return cls.FromString(data)
    except DecodeError:
        raise RpcError("INVALID_ARGUMENT", f"request is not a valid {cls.DESCRIPTOR.full_name} message") from None


def header(scope: Scope, name: bytes) -> str | None:
    for k, v in scope["headers"]:
        if k == name:
            return bytes(v).decode("latin-1")
    return None


class GrpcTransport:
    """Serves `application/grpc*` (native) and `application/grpc-web*` requests."""

    def __init__(self, app: Host) -> None:
        self.app = app
        self.streams: dict[Any, int] = {}  # connection → calls in flight

    async def __call__(self, scope: Scope, receive: Receive, send: Send, content_type: str) -> None:
        web = content_type.startswith("application/grpc-web")
        text = content_type.startswith("application/grpc-web-text")
        transport = "grpc-web" if web else "grpc"
        if web:
            resp_ct = "application/grpc-web-text+proto" if text else "application/grpc-web+proto"
        else:
            resp_ct = "application/grpc+proto" if "+" in content_type else "application/grpc"
        base_headers = [(b"content-type", resp_ct.encode()), (b"grpc-accept-encoding", b"identity,gzip,deflate")]
        te_trailers = web or any(k == b"te" and b"trailers" in v for k, v in scope["headers"])
        out = _Responder(send, base_headers, web=web, text=text, te_trailers=te_trailers)

        path = scope["path"]
        method = None
        ctx = None
        code = "OK"
        started = time.perf_counter()
        conn = (scope.get("client"), scope.get("server"))
        reader = FrameReader(
            receive,
            self.app.config.max_request_bytes,
            (header(scope, b"grpc-encoding") or "identity").lower(),
            text=text,
        )
        try:
            if not web and scope.get("http_version") not in ("2", "3"):
                await self._http1_refusal(send)
                code = "INTERNAL"
                return
            if scope["method"] != "POST":
                raise RpcError("UNIMPLEMENTED", f"gRPC calls use POST, not {scope['method']}")
            subtype = content_type.split(";")[0].strip().split("+", 1)
            if len(subtype) == 2 and subtype[1] != "proto":
                raise RpcError("UNIMPLEMENTED", f"codec {subtype[1]!r} is not supported; use proto")
            method = self.app.registry.get(path)
            if self.streams.get(conn, 0) >= self.app.config.max_concurrent_streams:
                raise RpcError(
                    "RESOURCE_EXHAUSTED",
                    f"more than {self.app.config.max_concurrent_streams} concurrent calls on this connection",
                )
            self.streams[conn] = self.streams.get(conn, 0) + 1
            try:
                ctx = CallContext(
                    method=method.info,
                    transport=transport,
                    authorization=header(scope, b"authorization"),
                    consistency_token=header(scope, b"x-engram-token") or "",
                )
                timeout = parse_timeout(header(scope, b"grpc-timeout"))
                if timeout is not None and timeout <= 0:
                    raise RpcError("DEADLINE_EXCEEDED", "deadline exceeded")
                if timeout is None:
                    await self._call(method, ctx, reader, out)
                else:
                    try:
                        async with asyncio.timeout(timeout):
                            await self._call(method, ctx, reader, out)
                    except TimeoutError:
                        raise RpcError("DEADLINE_EXCEEDED", "deadline exceeded") from None
            finally:
                n = self.streams.get(conn, 1) - 1
                if n:
                    self.streams[conn] = n
                else:
                    self.streams.pop(conn, None)
            await reader.drain()
            if ctx.response_token:  # cluster mode: the write's consistency token
                await out.finish([*OK_TRAILERS, (b"x-engram-token", ctx.response_token.encode())])
            else:
                await out.finish(OK_TRAILERS)
        except RpcError as err:
            code = err.code
            if err.code == "CANCELLED" or reader.disconnected:  # the client went away: nobody to answer
                return
            await reader.drain()
            await out.finish(err.grpc_trailers())
        except asyncio.CancelledError:
            code = "CANCELLED"
            raise
        except Exception:
            code = "INTERNAL"
            self.app.log_exception("unhandled error in gRPC call")
            await reader.drain()
            await out.finish(RpcError("INTERNAL", "internal error").grpc_trailers())
        finally:
            name = method.info.full_name if method else "unknown"
            self.app.observe(name, transport, code, time.perf_counter() - started, ctx)

    async def _http1_refusal(self, send: Send) -> None:
        msg = b"gRPC requires HTTP/2 (h2c with prior knowledge); use gRPC-Web or REST over HTTP/1.1\n"
        await send(
            {
                "type": "http.response.start",
                "status": 505,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"grpc-status", b"13"),
                    (b"grpc-message", b"gRPC requires HTTP/2"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": msg, "more_body": False})

    async def _call(self, method: Method, ctx: CallContext, reader: FrameReader, out: _Responder) -> None:
        info = method.info
        await self.app.registry.authorize(method, ctx)

        def encode(resp: Message) -> bytes:
            return resp.SerializeToString()

        async def messages() -> AsyncIterator[Message]:
            while True:
                data = await reader.next()
                if data is None:
                    return
                yield decode(method.request_cls, data)

        if info.client_streaming:
            if info.server_streaming:  # bidi
                stream = await method.handler(messages(), ctx)
                async for resp in stream:
                    await out.message(encode(resp))
                return
            resp = await method.handler(messages(), ctx)
            await out.message(encode(resp), last=True)
            return

        data = await reader.next()
        if data is None:
            raise RpcError("INTERNAL", "missing request message")
        if await reader.next() is not None:
            raise RpcError("INTERNAL", "more than one request message for a unary method")
        req = decode(method.request_cls, data)
        async with _CancelOnDisconnect(reader):
            if info.server_streaming:
                stream = await method.handler(req, ctx)
                async for resp in stream:
                    await out.message(encode(resp))
            else:
                resp = await method.handler(req, ctx)
                await out.message(encode(resp), last=True)


class _CancelOnDisconnect:
    """Cancels the running call when the client goes away (http.disconnect).

    The watcher task starts only when the call is still running after WATCH_AFTER seconds, so
    the many fast calls pay for a timer, not for a task. A quarter second: under 16 concurrent
    clients a recall's queueing alone passed the earlier 20 ms, and every call started a
    watcher; cancelling a call that ends within a quarter second saves nothing worth a task.
    """

    WATCH_AFTER = 0.25

    def __init__(self, reader: FrameReader) -> None:
        self.reader = reader
        self.task: asyncio.Task[Any] | None = None
        self.watch: asyncio.Task[Any] | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.fired = False

    async def _watch(self) -> None:
        while True:
            msg = await self.reader.receive()
            if msg["type"] == "http.disconnect":
                self.fired = True
                if self.task is not None:
                    self.task.cancel()
                return

    def _start_watch(self) -> None:
        self.watch = asyncio.get_running_loop().create_task(self._watch())

    async def __aenter__(self) -> _CancelOnDisconnect:
        self.task = asyncio.current_task()
        self.timer = asyncio.get_running_loop().call_later(self.WATCH_AFTER, self._start_watch)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        if self.timer is not None:
            self.timer.cancel()
        if self.watch is not None:
            self.watch.cancel()
        if self.fired and exc_type is asyncio.CancelledError:
            if self.task is not None:
                self.task.uncancel()
            raise RpcError("CANCELLED", "client disconnected")
        return False


class _Responder:
    """Writes the response in the one order Hypercorn handles well."""

    def __init__(
        self, send: Send, headers: list[tuple[bytes, bytes]], *, web: bool, text: bool, te_trailers: bool
    ) -> None:
        self.send = send
        self.headers = headers
        self.web = web
        self.text = text
        self.te_trailers = te_trailers
        self.started = False
        self.pending: bytes | None = None  # the unary response, held to go out with the end
        self.closed = False

    def _enc(self, data: bytes) -> bytes:
        return base64.b64encode(data) if self.text else data

    async def _start(self, extra: list[tuple[bytes, bytes]] | None = None) -> None:
        if self.started:
            return
        self.started = True
        trailers = not self.web and self.te_trailers and extra is None
        await self.send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": self.headers + (extra or []),
                "trailers": trailers,
            }
        )

    async def message(self, data: bytes, last: bool = False) -> None:
        if last:
            self.pending = data
            return
        await self._start()
        await self.send({"type": "http.response.body", "body": self._enc(frame(data)), "more_body": True})

    async def finish(self, trailers: list[tuple[bytes, bytes]]) -> None:
        if self.closed:
            return
        self.closed = True
        body = b"" if self.pending is None else frame(self.pending)
        if trailers[0][1] != b"0":
            body = b""  # an error replaces any held message
        try:
            if self.web:
                await self._start()
                await self.send(
                    {
                        "type": "http.response.body",
                        "body": self._enc(body) + self._enc(web_trailer_frame(trailers)),
                        "more_body": False,
                    }
                )
            elif not self.te_trailers and not self.started:
                # No `te: trailers`: Hypercorn would drop trailers, so the status goes in the headers.
                await self._start(trailers)
                await self.send({"type": "http.response.body", "body": body, "more_body": False})
            elif self.te_trailers:
                await self._start()
                await self.send({"type": "http.response.body", "body": body, "more_body": False})
                await self.send({"type": "http.response.trailers", "headers": trailers, "more_trailers": False})
            else:  # streamed without `te: trailers`: the status cannot be delivered
                await self.send({"type": "http.response.body", "body": body, "more_body": False})
        except (OSError, RuntimeError):
            pass  # the client is gone
