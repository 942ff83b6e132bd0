"""The ASGI application: one app for gRPC, gRPC-Web, Connect and REST, dispatched per request.

    content-type application/grpc[+proto]        → transport.grpc (HTTP/2 only)
    content-type application/grpc-web[-text][+proto] → transport.grpc (trailers in the body)
    OPTIONS with Origin                          → CORS preflight
    path /<package>.<Service>/<Method>, any other content type → transport.connect
    GET /metrics, GET /openapi.json              → operations
    anything else                                → transport.rest (routes from google.api.http)

`create_app(config, engine=None)`: with an engine, the app uses it as is (the caller closes it);
without, the ASGI lifespan opens the engine from `config` and closes it at shutdown. The app also
starts itself on the first request, so `httpx.ASGITransport` (which sends no lifespan) works.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import threading
import time
from typing import TYPE_CHECKING

from .asgi import Message, Receive, Scope, Send
from .config import Config, is_loopback
from .errors import RpcError
from .logs import event
from .state import ServerState

if TYPE_CHECKING:
    from .auth import Authenticator
    from .cluster.node import ClusterNode
    from .engine.engine import Engine
    from .service.base import CallContext
    from .service.registry import Registry
    from .transport.connect import ConnectTransport
    from .transport.grpc import GrpcTransport
    from .transport.rest import RestTransport

log = logging.getLogger("engram.server")

CORS_ALLOW_HEADERS = (
    "authorization, content-type, x-grpc-web, x-user-agent, grpc-timeout, "
    "grpc-accept-encoding, grpc-encoding, connect-protocol-version, connect-timeout-ms, "
    "connect-content-encoding, connect-accept-encoding, content-encoding, x-engram-token"
)
# Response headers a page may read: gRPC-Web's status, and the encodings Connect names.
CORS_EXPOSE_HEADERS = (
    b"grpc-status, grpc-message, grpc-status-details-bin, grpc-encoding, content-type, "
    b"content-encoding, accept-encoding, connect-content-encoding, connect-accept-encoding, x-engram-token"
)


class EngramApp:
    def __init__(self, config: Config, engine: Engine | None = None, close_engine: bool | None = None) -> None:
        self.config = config
        self.engine = engine
        self.close_engine = (engine is None) if close_engine is None else close_engine
        self.state = ServerState(engine)
        from .metrics import Metrics

        self.metrics = Metrics()
        from .logs import AccessLog

        self.access = AccessLog()
        self._started = False
        self._start_lock = asyncio.Lock()
        self.cors_any = "*" in config.cors_origins
        self.cors_origins = {o.rstrip("/") for o in config.cors_origins}
        self.hosts = HostAllowList.of(config)
        # Built by startup() (they need the engine), before the first request is dispatched.
        self.auth: Authenticator
        self.registry: Registry
        self.rest: RestTransport
        self.grpc: GrpcTransport
        self.connect: ConnectTransport
        self._warm_up_started = False
        self.cluster: ClusterNode | None = None  # cluster mode (--cluster-etcd/--cluster-nats)
        self.serving = threading.Event()  # set once startup() has built the transports
        # `serve` pauses the garbage collector while the process imports and starts (the
        # collections that all those allocations trigger cost a tenth of the start-up):
        # startup() then freezes what exists (it lives as long as the process, so later
        # collections need not scan it) and turns collection back on.
        self.resume_gc_on_start = False

    # --- lifecycle ------------------------------------------------------------------------
    async def startup(self) -> None:
        async with self._start_lock:
            if self._started:
                return
            loop = asyncio.get_running_loop()
            if self.engine is None:
                from .engine.engine import Engine

                self.engine = await loop.run_in_executor(None, Engine.open, self.config.engine_config())
                self.state.engine = self.engine
            from .auth import Authenticator
            from .descriptors import api
            from .service.registry import Registry
            from .transport.connect import ConnectTransport
            from .transport.grpc import GrpcTransport
            from .transport.rest import RestTransport

            assert self.engine is not None
            self.auth = Authenticator(self.engine, self.config.api_key)
            self.registry = Registry(api(), self.engine, self.config, self.auth, self.metrics, self.state)
            if self.config.cluster_enabled:
                try:
                    from .cluster.node import ClusterNode
                except ModuleNotFoundError as exc:
                    raise RuntimeError(
                        f"cluster mode needs the cluster extra ({exc.name} is not installed): "
                        "pip install 'engram-memory-server[cluster]'"
                    ) from None

                self.cluster = ClusterNode(self.config, self.engine, self.registry, self.metrics)
                await self.cluster.start()
                self.registry.route_through(self.cluster.wrap)
            self.rest = RestTransport(self)
            self.grpc = GrpcTransport(self)
            self.connect = ConnectTransport(self)
            self._started = True
            self.serving.set()
            if self.resume_gc_on_start:
                gc.freeze()
                gc.enable()
            self.begin_warm_up()

    def _engine_ready(self) -> bool:
        return self.engine is not None and self.engine.ready

    def begin_warm_up(self) -> None:
        """Load the embedding model in the background (once). `serve` calls it before Hypercorn
        starts, so the model loads while the server imports and binds: /health turns healthy
        sooner."""
        if self.engine is None or self._warm_up_started or self._engine_ready():
            return
        self._warm_up_started = True
        threading.Thread(target=self._warm_up, name="engram-warm-up", daemon=True).start()

    def _warm_up(self) -> None:
        t0 = time.perf_counter()
        engine = self.engine
        assert engine is not None
        try:
            engine.warm_up()
            event(log, "engine ready", warm_up_ms=round((time.perf_counter() - t0) * 1000, 1))
            # Preloading waits for the server to serve, so that it does not slow /health down.
            if not self.serving.wait(timeout=300):
                return
            t0 = time.perf_counter()
            agents = engine.preload_agents()
            if agents:
                event(log, "agents preloaded", agents=len(agents), ms=round((time.perf_counter() - t0) * 1000, 1))
        except Exception as exc:
            self.state.warm_up_error = type(exc).__name__
            log.exception("engine warm-up failed; /health stays 'starting'")

    async def shutdown(self) -> None:
        self.state.stopping = True
        self.access.flush()
        if self.cluster is not None:
            await self.cluster.stop()
            event(log, "left the cluster")
        if self.close_engine and self.engine is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.engine.close)
            event(log, "engine closed")

    # --- ASGI -----------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            if not self._started:
                await self.startup()
            await self.http(scope, receive, send)
        elif kind == "lifespan":
            await self.lifespan(receive, send)

    async def lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    log.exception("start-up failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                try:
                    await self.shutdown()
                finally:
                    await send({"type": "lifespan.shutdown.complete"})
                return

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        ct = b""
        origin = None
        host = None
        for k, v in scope["headers"]:
            if k == b"content-type":
                ct = v
            elif k == b"origin":
                origin = v
            elif k == b"host":
                host = v
        if host is not None and not self.hosts.allows(host):
            await self._refuse_host(send, host)
            return
        if self.state.stopping and scope.get("http_version") in ("1.0", "1.1"):
            send = _closing(send)
        if origin is not None:
            allowed = self._cors_origin(origin)
            if scope["method"] == "OPTIONS":
                await self._preflight(scope, send, allowed)
                return
            if allowed is not None:
                send = self._with_cors(send, allowed)
        ctype = ct.decode("latin-1").lower()
        if ctype.startswith("application/grpc"):
            await self.grpc(scope, receive, send, ctype)
            return
        path = scope["path"]
        if self.connect.handles(path):
            await self.connect(scope, receive, send)
            return
        if scope["method"] in ("GET", "HEAD"):
            if path == "/metrics":
                await self._metrics(scope, send)
                return
            if path == "/openapi.json":
                await self._openapi(send)
                return
        await self.rest(scope, receive, send)

    # --- CORS -----------------------------------------------------------------------------
    def _cors_origin(self, origin: bytes) -> bytes | None:
        o = origin.decode("latin-1").rstrip("/")
        if self.cors_any:
            return origin
        return origin if o in self.cors_origins else None

    async def _preflight(self, scope: Scope, send: Send, allowed: bytes | None) -> None:
        headers = [(b"content-length", b"0")]
        status = 204
        if allowed is None:
            status = 403
        else:
            req_headers = next((v for k, v in scope["headers"] if k == b"access-control-request-headers"), None)
            headers += [
                (b"access-control-allow-origin", allowed),
                (b"access-control-allow-methods", b"GET, POST, PUT, PATCH, DELETE, OPTIONS"),
                (b"access-control-allow-headers", req_headers or CORS_ALLOW_HEADERS.encode()),
                (b"access-control-expose-headers", CORS_EXPOSE_HEADERS),
                (b"access-control-max-age", b"86400"),
                (b"vary", b"origin"),
            ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    @staticmethod
    def _with_cors(send: Send, origin: bytes) -> Send:
        async def wrapped(msg: Message) -> None:
            if msg["type"] == "http.response.start":
                msg = dict(msg)
                msg["headers"] = [
                    *msg.get("headers", []),
                    (b"access-control-allow-origin", origin),
                    (b"access-control-expose-headers", CORS_EXPOSE_HEADERS),
                    (b"vary", b"origin"),
                ]
            await send(msg)

        return wrapped

    async def _refuse_host(self, send: Send, host: bytes) -> None:
        shown = host.decode("latin-1")[:100]
        err = RpcError(
            "PERMISSION_DENIED",
            f"this server does not answer for host {shown!r}: add it to --allowed-hosts (ENGRAM_ALLOWED_HOSTS)",
        )
        await self._json_error(send, err)

    async def _json_error(self, send: Send, err: RpcError) -> None:
        body = json.dumps(err.to_json()).encode()
        await send(
            {"type": "http.response.start", "status": err.status, "headers": [(b"content-type", b"application/json")]}
        )
        await send({"type": "http.response.body", "body": body})

    # --- operations -----------------------------------------------------------------------
    async def _metrics(self, scope: Scope, send: Send) -> None:
        # The engine's figures (agents, memories, disk) are GetStats's, an admin call: with
        # authentication on, /metrics wants an admin key too (Prometheus sends one as a bearer
        # token, `authorization` in its scrape config).
        if self.auth.required:
            try:
                who = await self.auth.authenticate(_header(scope, b"authorization"), "admin")
                who.require("admin")
            except RpcError as err:
                await self._json_error(send, err)
                return
        stats = None
        engine = self.engine
        if engine is not None and engine.ready:
            try:
                stats = await asyncio.get_running_loop().run_in_executor(engine.executor, engine.stats)
            except Exception:
                log.warning("engine stats unavailable for /metrics")
        self.metrics.update_from_stats(stats, self._engine_ready())
        body = self.metrics.render()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", self.metrics.content_type.encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _openapi(self, send: Send) -> None:
        from .descriptors import OPENAPI

        body = OPENAPI.read_bytes()  # generated by `make generate`, shipped in the package
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})

    # --- observation ----------------------------------------------------------------------
    def observe(self, method: str, transport: str, code: str, seconds: float, ctx: CallContext | None) -> None:
        self.metrics.observe(method, transport, code, seconds)
        if self.config.access_log:
            fields = {"method": method, "transport": transport, "code": code, "latency_ms": round(seconds * 1000, 3)}
            if ctx is not None:
                if ctx.agent_id and self.config.access_log_agent != "none":
                    fields["agent"] = self._logged_agent(ctx.agent_id)
                if ctx.principal is not None:
                    fields["key_id"] = ctx.principal.key_id
            self.access.write(fields)

    def _logged_agent(self, agent_id: str) -> str:
        if self.config.access_log_agent == "hash" and self.engine is not None:
            return self.engine.keyspace.token(b"log", agent_id)[:16]
        return agent_id

    def log_exception(self, msg: str) -> None:
        log.exception(msg)


class HostAllowList:
    """The Host header values a request may carry (DNS rebinding: a web page whose own name now
    resolves to 127.0.0.1 sends its own name as Host, never ours)."""

    LOOPBACK = ("localhost", "127.0.0.1", "::1", "[::1]")

    def __init__(self, names: set[str] | None) -> None:
        self.names = names  # None: any host

    @classmethod
    def of(cls, config: Config) -> HostAllowList:
        given = [h.strip().lower() for h in config.allowed_hosts if h.strip()]
        if "*" in given:
            return cls(None)
        if not given:
            if config.auth_required:
                return cls(None)  # a key protects every call; names do not add to it
            given = [*cls.LOOPBACK, config.host.lower()] if is_loopback(config.host) else list(cls.LOOPBACK)
        return cls(set(given))

    def allows(self, host: bytes) -> bool:
        if self.names is None:
            return True
        h = host.decode("latin-1").strip().lower().rstrip(".")
        if h in self.names:
            return True
        name = h.rsplit(":", 1)[0] if h.count(":") == 1 or h.startswith("[") else h  # drop a port
        return name in self.names or (name.endswith(".localhost") and "localhost" in self.names)


def _header(scope: Scope, name: bytes) -> str | None:
    for k, v in scope["headers"]:
        if k == name:
            return bytes(v).decode("latin-1")
    return None


def create_app(
    config: Config | None = None, engine: Engine | None = None, close_engine: bool | None = None
) -> EngramApp:
    """The ASGI app. With `engine`, it is used as is and closed only when close_engine=True."""
    return EngramApp(config or Config(), engine, close_engine)


def _closing(send: Send) -> Send:
    """While the server drains, HTTP/1.1 answers say `Connection: close`: a keep-alive client then
    reconnects (to another instance, or is refused here) instead of holding its connection open
    until the shutdown timeout. (HTTP/2 clients get GOAWAY from Hypercorn.)"""

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
        await send(message)

    return wrapped

