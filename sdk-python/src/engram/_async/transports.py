"""Async transports: gRPC (grpc.aio) and REST (httpx). Both speak the generated messages.

The sync twin in ``engram/_sync/transports.py`` is generated from this file by
``scripts/unasync.py``; edit this one.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

import betterproto2
import grpc
import grpc.aio
import httpx

from engram import _convert
from engram._config import Endpoint, Timeout, cannot_connect, grpc_connect_cause, os_error_cause
from engram._rpc import RpcSpec
from engram._utils import AsyncRequests, aiter_requests
from engram._version import USER_AGENT
from engram.errors import DeadlineExceeded, EngramError, Unavailable

_GRPC_OPTIONS = [
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.primary_user_agent", USER_AGENT),
]


class AsyncTransport:
    """What a client needs from a transport. Subclass it to plug in a fake for tests."""

    name = "custom"

    async def unary(
        self, spec: RpcSpec, request: betterproto2.Message, timeout: Timeout
    ) -> betterproto2.Message:
        """Send one request, return one response; raise :class:`engram.EngramError`."""
        raise NotImplementedError

    def server_stream(
        self, spec: RpcSpec, request: betterproto2.Message, timeout: Timeout
    ) -> AsyncIterator[betterproto2.Message]:
        """Send one request, yield the responses."""
        raise NotImplementedError

    async def client_stream(
        self, spec: RpcSpec, requests: AsyncRequests, timeout: Timeout
    ) -> betterproto2.Message:
        """Send a stream of requests, return one response."""
        raise NotImplementedError

    async def aclose(self) -> None:
        """Release connections."""


class AsyncGrpcTransport(AsyncTransport):
    """gRPC over HTTP/2 with grpcio; metadata ``authorization: Bearer <key>``."""

    name = "grpc"

    def __init__(
        self,
        endpoint: Endpoint,
        api_key: str | None,
        *,
        credentials: Any = None,
        options: Iterable[tuple[str, Any]] = (),
    ) -> None:
        opts = [*_GRPC_OPTIONS, *options]
        self._url = endpoint.url
        if endpoint.tls:
            creds = credentials or grpc.ssl_channel_credentials()
            self._channel = grpc.aio.secure_channel(endpoint.target, creds, options=opts)
        else:
            self._channel = grpc.aio.insecure_channel(endpoint.target, options=opts)
        self._metadata: tuple[tuple[str, str], ...] = (
            (("authorization", f"Bearer {api_key}"),) if api_key else ()
        )

    async def unary(
        self, spec: RpcSpec, request: betterproto2.Message, timeout: Timeout
    ) -> betterproto2.Message:
        call = self._channel.unary_unary(
            spec.grpc_path,
            request_serializer=_serialize,
            response_deserializer=spec.response_type.FromString,
        )
        try:
            response: betterproto2.Message = await call(
                request, timeout=timeout.timeout, metadata=self._metadata
            )
        except grpc.RpcError as exc:
            raise _grpc_error(exc, self._url, self._channel) from None
        return response

    async def server_stream(
        self, spec: RpcSpec, request: betterproto2.Message, timeout: Timeout
    ) -> AsyncIterator[betterproto2.Message]:
        call = self._channel.unary_stream(
            spec.grpc_path,
            request_serializer=_serialize,
            response_deserializer=spec.response_type.FromString,
        )
        responses = call(request, timeout=timeout.stream, metadata=self._metadata)
        try:
            async for response in responses:
                yield response
        except grpc.RpcError as exc:
            raise _grpc_error(exc, self._url, self._channel) from None
        finally:
            responses.cancel()  # closed early (a watch, a break): end the call now; else a no-op

    async def client_stream(
        self, spec: RpcSpec, requests: AsyncRequests, timeout: Timeout
    ) -> betterproto2.Message:
        call = self._channel.stream_unary(
            spec.grpc_path,
            request_serializer=_serialize,
            response_deserializer=spec.response_type.FromString,
        )
        try:
            response: betterproto2.Message = await call(
                aiter_requests(requests), timeout=timeout.stream, metadata=self._metadata
            )
        except grpc.RpcError as exc:
            raise _grpc_error(exc, self._url, self._channel) from None
        return response

    async def aclose(self) -> None:
        await self._channel.close()


def _serialize(message: betterproto2.Message) -> bytes:
    return bytes(message)


def _connecting(channel: Any) -> bool:
    """Whether the channel is still opening its connection (a deadline then is a connect timeout)."""
    try:
        get_state = getattr(channel, "get_state", None)
        if get_state is not None:  # grpc.aio
            return bool(get_state(False) == grpc.ChannelConnectivity.CONNECTING)
        # The sync API has no accessor of the state: ask grpcio's channel object (1: CONNECTING).
        return bool(channel._channel.check_connectivity_state(False) == 1)
    except Exception:  # noqa: BLE001 - unknown grpcio internals: not a connect timeout then
        return False


def _grpc_error(exc: Any, url: str, channel: Any) -> EngramError:
    code = exc.code()
    name = getattr(code, "name", "UNKNOWN")
    details = exc.details() or name
    trailing = list(exc.trailing_metadata() or ())
    debug = str(getattr(exc, "debug_error_string", lambda: "")() or "")
    local = name in ("UNAVAILABLE", "DEADLINE_EXCEEDED", "CANCELLED") and (
        not trailing or "connect" in debug.lower() or "connect" in details.lower()
    )
    if name == "UNAVAILABLE" and not trailing:
        cause = grpc_connect_cause(details)
        if cause is not None:
            return cannot_connect(url, cause)
    if name == "DEADLINE_EXCEEDED" and not trailing and _connecting(channel):
        return cannot_connect(url, "connection timed out")
    return _convert.grpc_error(name, details, trailing, local)


class AsyncRestTransport(AsyncTransport):
    """REST/JSON over HTTP/1.1 (or HTTP/2) with httpx, routes from the ``google.api.http`` rules."""

    name = "rest"

    def __init__(
        self,
        endpoint: Endpoint,
        api_key: str | None,
        *,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        verify: Any = True,
    ) -> None:
        all_headers = {"user-agent": USER_AGENT, "accept": "application/json"}
        if api_key:
            all_headers["authorization"] = f"Bearer {api_key}"
        all_headers.update(headers or {})
        self._url = endpoint.url
        self._http = httpx.AsyncClient(
            base_url=endpoint.base_url,
            headers=all_headers,
            transport=transport,
            verify=verify,
            timeout=httpx.Timeout(30.0),
        )

    def _build(
        self, spec: RpcSpec, request: betterproto2.Message, timeout: Timeout
    ) -> httpx.Request:
        data = _convert.to_json_dict(request)
        path = spec.expand_path(data)
        bound = {p.split(".", 1)[0] for p in spec.path_params if "." not in p}
        body: Any = None
        if spec.http_body == "*":
            body = data
            rest: dict[str, Any] = {}
        elif spec.http_body:
            body = data.get(spec.http_body, {})
            mask = data.get("update_mask", {}).get("paths", [])
            sub = getattr(request, spec.http_body, None)
            if mask and isinstance(sub, betterproto2.Message):
                # Send the masked fields even when they hold defaults (``tags=[]`` clears).
                full = sub.to_dict(casing=betterproto2.Casing.SNAKE, include_default_values=True)
                body.update({k: full[k] for k in mask if k in full})
            rest = {k: v for k, v in data.items() if k != spec.http_body and k not in bound}
        else:
            rest = {k: v for k, v in data.items() if k not in bound}
        params = _convert.query_params(rest)
        return self._http.build_request(
            spec.http_method,
            path,
            params=params or None,
            json=body if body is not None else None,
            timeout=_httpx_timeout(timeout, stream=False),
        )

    async def unary(
        self, spec: RpcSpec, request: betterproto2.Message, timeout: Timeout
    ) -> betterproto2.Message:
        req = self._build(spec, request, timeout)
        try:
            response = await self._http.send(req)
        except httpx.HTTPError as exc:
            raise _http_error(exc, self._url) from None
        if response.status_code >= 400:
            raise _convert.rest_error(response.status_code, response.content, response.headers)
        try:
            data = response.json() if response.content else {}
        except ValueError:
            raise Unavailable(
                f"the server sent a non-JSON answer (HTTP {response.status_code})", from_server=True
            ) from None
        return _convert.from_json_dict(spec.response_type, data)

    async def server_stream(
        self, spec: RpcSpec, request: betterproto2.Message, timeout: Timeout
    ) -> AsyncIterator[betterproto2.Message]:
        req = self._build(spec, request, timeout)
        req.extensions["timeout"] = _httpx_timeout(timeout, stream=True).as_dict()
        req.headers["accept"] = "application/x-ndjson"
        try:
            response = await self._http.send(req, stream=True)
        except httpx.HTTPError as exc:
            raise _http_error(exc, self._url) from None
        try:
            if response.status_code >= 400:
                body = await response.aread()
                raise _convert.rest_error(response.status_code, body, response.headers)
            async for line in response.aiter_lines():
                if line.strip():
                    yield _stream_item(spec, line)
        except httpx.HTTPError as exc:
            raise _http_error(exc, self._url) from None
        finally:
            await response.aclose()

    async def client_stream(
        self, spec: RpcSpec, requests: AsyncRequests, timeout: Timeout
    ) -> betterproto2.Message:
        path = spec.expand_path({})
        req = self._http.build_request(
            spec.http_method,
            path,
            content=_ndjson(requests),
            headers={"content-type": "application/x-ndjson"},
            timeout=_httpx_timeout(timeout, stream=True),
        )
        try:
            response = await self._http.send(req)
        except httpx.HTTPError as exc:
            raise _http_error(exc, self._url) from None
        if response.status_code >= 400:
            raise _convert.rest_error(response.status_code, response.content, response.headers)
        return _convert.from_json_dict(spec.response_type, response.json() if response.content else {})

    async def aclose(self) -> None:
        await self._http.aclose()


async def _ndjson(requests: AsyncRequests) -> AsyncIterator[bytes]:
    async for message in aiter_requests(requests):
        line = json.dumps(_convert.to_json_dict(message), separators=(",", ":"), ensure_ascii=False)
        yield line.encode() + b"\n"


def _stream_item(spec: RpcSpec, line: str) -> betterproto2.Message:
    try:
        data = json.loads(line)
    except ValueError:
        raise Unavailable(f"the server sent a malformed stream line: {line[:200]!r}") from None
    if isinstance(data, dict) and "result" in data and len(data) == 1:
        data = data["result"]
    if isinstance(data, dict) and ("error" in data or ("code" in data and "message" in data)):
        raise _convert.rest_error(500, line.encode(), {})
    return _convert.from_json_dict(spec.response_type, data)


def _httpx_timeout(timeout: Timeout, *, stream: bool) -> httpx.Timeout:
    total = timeout.timeout
    if stream and timeout.stream is not None:
        total = timeout.stream
    return httpx.Timeout(total, connect=timeout.connect)


def _http_error(exc: httpx.HTTPError, url: str) -> EngramError:
    if isinstance(exc, httpx.ConnectTimeout):
        return cannot_connect(url, "connection timed out")
    if isinstance(exc, httpx.ConnectError):
        return cannot_connect(url, os_error_cause(exc) or str(exc) or type(exc).__name__)
    if isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError, httpx.PoolTimeout)):
        return Unavailable(f"lost the connection to {url}: {exc}", from_server=False)
    if isinstance(exc, httpx.TimeoutException):
        return DeadlineExceeded(f"the call timed out: {exc}", from_server=False)
    return Unavailable(f"HTTP transport error talking to {url}: {exc}", from_server=False)
