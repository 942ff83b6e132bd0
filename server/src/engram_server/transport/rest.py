"""REST/JSON, routed by the `google.api.http` rules of the descriptor set.

Routes are built at start-up from each method's bindings (additional_bindings included), so there
is no second route table to drift. A request becomes the method's request message:

* path variables (`{id}`, `{memory.id}`) set the named (nested) fields;
* `body: "*"`: the JSON body is the request; `body: "field"`: it is that field, and query
  parameters fill the rest; no body: query parameters fill the request. Parameters name fields
  by path (`filter.tags_any=a&filter.tags_any=b`), repeated parameters make repeated fields;
* JSON is proto3 JSON: snake_case or lowerCamelCase in, snake_case out; enums by full name, or
  by short lowercase alias on input (`semantic`, `vector`);
* a method with an `update_mask` and a body field gets, when no mask is given, the mask of the
  keys present in the body (PATCH semantics);
* server streaming answers NDJSON (one message per line; an error after the first line arrives as
  a last line `{"error": {...}}`); client streaming reads an NDJSON body, one request per line.

Errors: the HTTP status of the gRPC code and `{"code", "message", "details"}`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from ..asgi import Message, Receive, Scope, Send
from ..errors import RpcError, invalid
from ..service.base import CallContext
from . import json_codec

if TYPE_CHECKING:
    from google.protobuf.message import Message as ProtoMessage

    from ..service.registry import Method
    from .host import Host

JSON_CT = (b"content-type", b"application/json")
NDJSON_CT = (b"content-type", b"application/x-ndjson")
SSE_HEADERS = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),  # nginx: pass each event on at once
]
# A server stream's headers go out with its first message, or after this long without one (a
# watch may wait minutes for a change: the client learns at once that the call was accepted).
STREAM_HEADERS_AFTER = 0.2


@dataclass
class Route:
    verb: str
    template: str
    regex: re.Pattern[str]
    variables: list[str]
    body: str
    method: Method
    literal: int  # literal characters, to order routes specific-first


def compile_template(template: str) -> tuple[re.Pattern[str], list[str], int]:
    pattern, variables, literal, pos = "", [], 0, 0
    for m in re.finditer(r"\{([^}=]+)(?:=([^}]*))?\}", template):
        lit = template[pos : m.start()]
        pattern += re.escape(lit)
        literal += len(lit)
        variables.append(m.group(1))
        seg = m.group(2) or "*"
        # An empty segment still matches, so a missing id is the RPC's INVALID_ARGUMENT, not a 404.
        pattern += "(.*)" if "**" in seg else "([^/]*)"
        pos = m.end()
    lit = template[pos:]
    pattern += re.escape(lit)
    literal += len(lit)
    return re.compile("^" + pattern + "$"), variables, literal


def set_path(data: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    for p in parts[:-1]:
        nxt = data.get(p)
        if not isinstance(nxt, dict):
            nxt = data[p] = {}
        data = nxt
    data[parts[-1]] = value


class RestTransport:
    def __init__(self, app: Host) -> None:
        self.app = app
        self.json = json_codec.JsonWriter()
        self.routes: list[Route] = []
        for method in app.registry.methods.values():
            for b in method.info.bindings:
                rx, variables, literal = compile_template(b.path)
                self.routes.append(Route(b.method, b.path, rx, variables, b.body, method, literal))
        self.routes.sort(key=lambda r: -r.literal)

    def match(self, verb: str, path: str) -> tuple[Route | None, dict[str, str], list[str]]:
        allowed = []
        for r in self.routes:
            m = r.regex.match(path)
            if not m:
                continue
            if r.verb != verb:
                allowed.append(r.verb)
                continue
            return r, {v: unquote(g) for v, g in zip(r.variables, m.groups(), strict=True)}, allowed
        return None, {}, allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        raw = scope.get("raw_path") or scope["path"].encode()
        path = raw.decode("latin-1").split("?", 1)[0]
        verb = scope["method"].upper()
        route, params, allowed = self.match("GET" if verb == "HEAD" else verb, path)
        if route is None:
            if allowed:
                err = RpcError(
                    "UNIMPLEMENTED",
                    f"{verb} is not allowed on {path}; use {', '.join(sorted(set(allowed)))}",
                    http_status=405,
                )
                await self.error(send, err, extra=[(b"allow", ", ".join(sorted(set(allowed))).encode())])
            else:
                await self.error(send, RpcError("NOT_FOUND", f"no route for {verb} {path}"))
            self.app.observe(
                "unknown", "rest", "NOT_FOUND" if not allowed else "UNIMPLEMENTED", time.perf_counter() - started, None
            )
            return
        method = route.method
        info = method.info
        if verb in ("POST", "PUT", "PATCH") and not _json_body(scope):
            # A web page can send a cross-site POST without asking (a CORS "simple" request) only
            # with a form or text/plain type: requiring JSON refuses those before anything runs.
            err = RpcError(
                "INVALID_ARGUMENT",
                f"{verb} {path} needs a JSON body: send Content-Type: application/json "
                "(application/x-ndjson for streamed imports)",
                http_status=415,
            )
            await _TrackedReceive(receive).drain()
            await self.error(send, err)
            self.app.observe(info.full_name, "rest", err.code, time.perf_counter() - started, None)
            return
        receive = _TrackedReceive(receive)
        ctx = CallContext(
            method=info,
            transport="rest",
            authorization=_header(scope, b"authorization"),
            consistency_token=_header(scope, b"x-engram-token") or "",
        )
        code = "OK"
        try:
            await self.app.registry.authorize(method, ctx)
            if info.client_streaming:
                await self._client_stream(route, params, scope, receive, send, ctx)
                return
            data = await self._request_dict(route, params, scope, receive)
            sse = "text/event-stream" in (_header(scope, b"accept") or "")
            resume = _header(scope, b"last-event-id")
            if resume and "start_after" in json_codec.descriptor_of(method.request_cls).fields_by_name:
                # An EventSource reconnecting sends the id of the last event it received.
                data.setdefault("start_after", resume)
            req = json_codec.parse(method.request_cls, data)
            if info.server_streaming:
                await self._server_stream(method, req, ctx, send, receive, sse)
                return
            resp = await method.handler(req, ctx)
            status = 200
            if info.name == "Health" and resp.status != "healthy":
                status = 503
            body = self._json(resp)
            await send({"type": "http.response.start", "status": status, "headers": _with_token([JSON_CT], ctx)})
            await send({"type": "http.response.body", "body": body if verb != "HEAD" else b""})
        except RpcError as err:
            code = err.code
            await receive.drain()
            await self.error(send, err)
        except Exception:
            code = "INTERNAL"
            self.app.log_exception("unhandled error in REST call")
            await receive.drain()
            await self.error(send, RpcError("INTERNAL", "internal error"))
        finally:
            self.app.observe(info.full_name, "rest", code, time.perf_counter() - started, ctx)

    # --- building the request -------------------------------------------------------------
    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        limit = self.app.config.max_request_bytes
        cl = _header(scope, b"content-length")
        if cl and cl.isdigit() and int(cl) > limit:
            raise RpcError("RESOURCE_EXHAUSTED", f"request body is {cl} bytes; the limit is {limit}", http_status=413)
        chunks, size = [], 0
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                raise RpcError("CANCELLED", "client disconnected")
            chunk = msg.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise RpcError("RESOURCE_EXHAUSTED", f"request body is larger than {limit} bytes", http_status=413)
            chunks.append(chunk)
            if not msg.get("more_body", False):
                return b"".join(chunks)

    async def _request_dict(
        self, route: Route, params: dict[str, str], scope: Scope, receive: Receive
    ) -> dict[str, Any]:
        desc = json_codec.descriptor_of(route.method.request_cls)
        data: dict[str, Any] = {}
        if route.body:
            raw = await self._read_body(scope, receive)
            body = _parse_json(raw) if raw.strip() else {}
            if route.body == "*":
                if not isinstance(body, dict):
                    raise invalid("body", "must be a JSON object")
                data = body
            else:
                data = {}
                if body is not None:
                    data[route.body] = body
                self._query_into(desc, scope, data, exclude=route.body)
                fd = desc.fields_by_name.get("update_mask")
                if fd is not None and "update_mask" not in data and "updateMask" not in data and isinstance(body, dict):
                    sub = desc.fields_by_name[route.body].message_type
                    assert sub is not None, "an update's body field is a message"
                    names = []
                    for k in body:
                        f = sub.fields_by_name.get(k) or next((x for x in sub.fields if x.json_name == k), None)
                        if f is None:
                            raise invalid(f"{route.body}.{k}", f"unknown field {k!r} in {sub.name}")
                        if f.name != "id":
                            names.append(f.name)
                    data["update_mask"] = ",".join(_camel(n) for n in names)
        else:
            self._query_into(desc, scope, data)
        for var, value in params.items():
            set_path(data, var, value)
        return data

    def _query_into(self, desc: Descriptor, scope: Scope, data: dict[str, Any], exclude: str = "") -> None:
        qs = scope.get("query_string", b"").decode("latin-1")
        if not qs:
            return
        for key, value in parse_qsl(qs, keep_blank_values=True):
            parts = key.split(".")
            d, node = desc, data
            for i, part in enumerate(parts):
                fd = d.fields_by_name.get(part) or next((x for x in d.fields if x.json_name == part), None)
                if fd is None or (i == 0 and exclude and fd.name == exclude):
                    raise invalid(key, f"unknown query parameter {key!r}")
                last = i == len(parts) - 1
                if fd.message_type is not None and fd.message_type.full_name == "google.protobuf.Struct":
                    # Struct in a query string: JSON text (`filter.metadata_equals={"k":"v"}`) or one
                    # string value per key (`filter.metadata_equals.k=v`).
                    struct = node.setdefault(fd.name, {})
                    if last:
                        parsed = _parse_json(value.encode(), where=key)
                        if not isinstance(parsed, dict):
                            raise invalid(key, f"{key} must be a JSON object")
                        struct.update(parsed)
                    else:
                        struct[".".join(parts[i + 1 :])] = value
                    break
                if not last:
                    if fd.message_type is None or fd.is_repeated:
                        raise invalid(key, f"unknown query parameter {key!r}")
                    node = node.setdefault(fd.name, {})
                    d = fd.message_type
                    continue
                v = _scalar(fd, value, key)
                if fd.is_repeated:
                    node.setdefault(fd.name, []).append(v)
                else:
                    node[fd.name] = v

    # --- streaming ------------------------------------------------------------------------
    async def _server_stream(
        self, method: Method, req: ProtoMessage, ctx: CallContext, send: Send, receive: _TrackedReceive, sse: bool
    ) -> None:
        """NDJSON (one message per line), or Server-Sent Events when the client accepts
        text/event-stream (`id:` the message's cursor when it has one, `data:` the message; an
        error as `event: error`). An error before anything was sent is a plain HTTP error; after,
        it is the stream's last line or event. The call is cancelled when the client goes away."""
        stream = await method.handler(req, ctx)
        it = stream.__aiter__()
        headers = SSE_HEADERS if sse else [NDJSON_CT]
        started = False

        async def start() -> None:
            nonlocal started
            if not started:
                started = True
                await send({"type": "http.response.start", "status": 200, "headers": headers})

        def frame(item: ProtoMessage) -> bytes:
            body = self._json(item)
            if not sse:
                return body + b"\n"
            cursor = getattr(item, "cursor", "")
            return (b"id: " + cursor.encode() + b"\n" if cursor else b"") + b"data: " + body + b"\n\n"

        task = asyncio.current_task()
        gone = False

        async def watch_disconnect() -> None:
            nonlocal gone
            while True:
                msg = await receive()
                if msg["type"] == "http.disconnect":
                    gone = True
                    if task is not None:
                        task.cancel()
                    return

        watcher = asyncio.get_running_loop().create_task(watch_disconnect())
        try:
            first_task = asyncio.ensure_future(it.__anext__())
            done, _ = await asyncio.wait({first_task}, timeout=STREAM_HEADERS_AFTER)
            if not done:
                await start()
            try:
                first = await first_task
            except StopAsyncIteration:
                first = None
            await start()
            if first is not None:
                await send({"type": "http.response.body", "body": frame(first), "more_body": True})
                async for item in it:
                    await send({"type": "http.response.body", "body": frame(item), "more_body": True})
        except RpcError as err:
            if not started:
                raise
            if sse:
                line = b"event: error\ndata: " + json.dumps(err.to_json()).encode() + b"\n\n"
            else:
                line = json.dumps({"error": err.to_json()}).encode() + b"\n"
            await send({"type": "http.response.body", "body": line, "more_body": False})
            raise _Logged(err.code) from None
        except asyncio.CancelledError:
            if not gone:
                raise
            if task is not None:
                task.uncancel()
            raise _Logged("CANCELLED") from None  # nobody to answer
        finally:
            watcher.cancel()
            with contextlib.suppress(Exception):
                await it.aclose()
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    def _json(self, msg: ProtoMessage) -> bytes:
        return json.dumps(self.json.to_dict(msg), ensure_ascii=False).encode()

    async def _client_stream(
        self, route: Route, params: dict[str, str], scope: Scope, receive: Receive, send: Send, ctx: CallContext
    ) -> None:
        method = route.method
        limit = self.app.config.max_request_bytes

        async def lines() -> AsyncIterator[bytes]:
            buf = b""
            while True:
                msg = await receive()
                if msg["type"] == "http.disconnect":
                    raise RpcError("CANCELLED", "client disconnected")
                buf += msg.get("body", b"")
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if line.strip():
                        yield line
                if len(buf) > limit:
                    raise RpcError(
                        "RESOURCE_EXHAUSTED", f"an NDJSON line is larger than {limit} bytes", http_status=413
                    )
                if not msg.get("more_body", False):
                    if buf.strip():
                        yield buf
                    return

        async def messages() -> AsyncIterator[ProtoMessage]:
            n = 0
            async for line in lines():
                obj = _parse_json(line, f"line {n + 1}")
                items = obj if isinstance(obj, list) else [obj]  # a JSON array is accepted too
                for item in items:
                    if not isinstance(item, dict):
                        raise invalid(f"line {n + 1}", "must be a JSON object")
                    for var, value in params.items():
                        set_path(item, var, value)
                    yield json_codec.parse(method.request_cls, item)
                n += 1

        resp = await method.handler(messages(), ctx)
        body = self._json(resp)
        await send({"type": "http.response.start", "status": 200, "headers": _with_token([JSON_CT], ctx)})
        await send({"type": "http.response.body", "body": body})

    async def error(self, send: Send, err: RpcError, extra: list[Any] | None = None) -> None:
        body = json.dumps(err.to_json(), ensure_ascii=False).encode()
        try:
            await send({"type": "http.response.start", "status": err.status, "headers": [JSON_CT, *(extra or [])]})
            await send({"type": "http.response.body", "body": body})
        except Exception:
            pass


class _TrackedReceive:
    """Remembers whether the request body was read to its end, to drain it before an early
    error (see transport.grpc.FrameReader.drain: Hypercorn's HTTP/2 needs it)."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self.done = False

    async def __call__(self) -> Message:
        msg = await self._receive()
        if msg["type"] == "http.disconnect" or not msg.get("more_body", False):
            self.done = True
        return msg

    async def drain(self, max_bytes: int = 64 * 1024 * 1024) -> None:
        import asyncio

        async def run() -> None:
            seen = 0
            while not self.done and seen <= max_bytes:
                seen += len((await self()).get("body", b""))

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(run(), 5.0)


class _Logged(RpcError):
    def __init__(self, code: str) -> None:
        super().__init__(code, "already sent")


JSON_TYPES = ("application/json", "application/x-ndjson", "application/jsonl")


def _json_body(scope: Scope) -> bool:
    """Whether the request declares a JSON (or NDJSON) body."""
    ct = (_header(scope, b"content-type") or "").split(";", 1)[0].strip().lower()
    return ct in JSON_TYPES or (ct.startswith("application/") and ct.endswith("+json"))


# A \uD800-\uDFFF escape: JSON text may spell a lone surrogate, which no UTF-8 string holds.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _parse_json(raw: bytes, where: str = "body") -> Any:
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RpcError("INVALID_ARGUMENT", f"malformed JSON in {where}: {exc}") from None
    except RecursionError:
        raise RpcError("INVALID_ARGUMENT", f"malformed JSON in {where}: nested too deeply") from None
    if _SURROGATE_ESCAPE.search(raw) and not _valid_text(value):
        # Protobuf strings are UTF-8: refused here, before any key or value reaches protobuf
        # (upb fails on them with a SystemError, leaving an exception set: a 500).
        raise RpcError("INVALID_ARGUMENT", f"malformed JSON in {where}: a string holds a lone UTF-16 surrogate")
    return value


def _valid_text(value: Any) -> bool:
    """Whether every string of a parsed JSON value (keys included) is valid Unicode."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:
                return False
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return True


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


def _scalar(fd: FieldDescriptor, value: str, key: str) -> Any:
    t = fd.type
    try:
        if t == fd.TYPE_BOOL:
            low = value.lower()
            if low in ("true", "1", ""):
                return True
            if low in ("false", "0"):
                return False
            raise ValueError
        if t in (fd.TYPE_FLOAT, fd.TYPE_DOUBLE):
            return float(value)
        if t in (fd.TYPE_INT32, fd.TYPE_SINT32, fd.TYPE_SFIXED32, fd.TYPE_UINT32, fd.TYPE_FIXED32):
            return int(value)
        if t in (fd.TYPE_INT64, fd.TYPE_SINT64, fd.TYPE_SFIXED64, fd.TYPE_UINT64, fd.TYPE_FIXED64):
            int(value)
            return value
    except ValueError:
        raise invalid(key, f"{value!r} is not a valid value for this parameter") from None
    return value


def _header(scope: Scope, name: bytes) -> str | None:
    for k, v in scope["headers"]:
        if k == name:
            return bytes(v).decode("latin-1")
    return None


def _with_token(headers: list[Any], ctx: CallContext) -> list[Any]:
    """Cluster mode: a write's consistency token, for the reads that must see it."""
    if ctx.response_token:
        return [*headers, (b"x-engram-token", ctx.response_token.encode())]
    return headers
