"""MCP over the Streamable HTTP transport (``engram mcp --http``), for remote agents and hosted IDEs.

Built from the ``mcp`` package's pieces: its session manager serves the transport, its bearer
middleware refuses a request without a valid key (HTTP 401) before it reaches the MCP server,
and its transport security settings check ``Host`` and ``Origin`` against DNS rebinding.

**Keys.** This server holds no Engram key of its own. An MCP client sends its Engram API key as
``Authorization: Bearer <key>``; the key is checked against the Engram server (``GetServerInfo``,
which any valid key may call) and then every tool call of that client is sent to the Engram
server *with that same key*. Roles, agent pins, expiry and revocation therefore apply exactly as
they do for the SDKs and the CLI, and a leak of this process's memory or configuration yields no
key that was not presented to it. A successful check is remembered for
:data:`VERIFIED_TTL` seconds (per SHA-256 of the key, not the key); a tool call that the Engram
server answers ``UNAUTHENTICATED`` (a key revoked since) forgets it at once, so the next request
is refused with 401. MCP sessions are bound to the key that opened them (the session manager
compares the principal, here the key's SHA-256): another key cannot use a session id it learns.

**Binding.** Loopback (the default, ``127.0.0.1``) serves plain HTTP. Any other address needs
TLS (``--tls-cert``/``--tls-key``), since clients send their key with every request, or an
explicit ``--allow-plain-http`` for a TLS-terminating proxy in front; a wildcard address
(``0.0.0.0``) also needs the host names clients use (``--allowed-host``), because ``Host`` is
checked.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import ipaddress
import logging
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx

from engram._async.client import AsyncClient
from engram._config import TimeoutTypes, TransportName, parse_url
from engram.errors import EngramError, PermissionDenied, Unauthenticated

if TYPE_CHECKING:
    from mcp.server.auth.provider import AccessToken
    from mcp.server.transport_security import TransportSecuritySettings
    from starlette.applications import Starlette

logger = logging.getLogger("engram.mcp")

DEFAULT_PORT = 3301
DEFAULT_PATH = "/mcp"
VERIFIED_TTL = 30.0
"""Seconds a key found valid is not checked again (a revoked key's tool calls fail at once)."""
MAX_KEYS = 256
"""Distinct keys whose SDK clients are kept open; the least recently used beyond are closed."""

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARDS = frozenset({"0.0.0.0", "::", ""})


class BindRefused(ValueError):
    """The address may not be served with these options (the message says what to do)."""


@dataclass(frozen=True)
class HttpOptions:
    """Where and how ``engram mcp --http`` listens."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    path: str = DEFAULT_PATH
    tls_cert: str | None = None
    tls_key: str | None = None
    allowed_hosts: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    allow_plain_http: bool = False

    @property
    def tls(self) -> bool:
        return bool(self.tls_cert)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}{self.path}"


def is_loopback(host: str) -> bool:
    """``localhost``, ``::1`` or any ``127.0.0.0/8`` address."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_options(opts: HttpOptions) -> None:
    """Refuse what would expose keys or skip the Host check; :class:`BindRefused` says why."""
    if not opts.path.startswith("/"):
        raise BindRefused(f"--path must start with '/': {opts.path!r}")
    if bool(opts.tls_cert) != bool(opts.tls_key):
        raise BindRefused("--tls-cert and --tls-key go together: give both, or neither")
    if is_loopback(opts.host):
        return
    if not opts.tls and not opts.allow_plain_http:
        raise BindRefused(
            f"refusing to serve MCP on {opts.host} over plain HTTP: clients send their Engram API key "
            "with every request. Give --tls-cert and --tls-key, or keep --host 127.0.0.1 behind a "
            "TLS-terminating proxy (with --allowed-host <its host name>), or, only when such a proxy "
            "reaches this address over a private network, add --allow-plain-http"
        )
    if opts.host in WILDCARDS and not opts.allowed_hosts:
        raise BindRefused(
            f"--host {opts.host or repr('')} listens on every interface: name the host names clients "
            "connect to with --allowed-host (e.g. --allowed-host mcp.example.com:*), so that requests "
            "for other names (DNS rebinding) are refused"
        )


def security_settings(opts: HttpOptions) -> TransportSecuritySettings:
    """``Host`` and ``Origin`` allow-lists (the ``mcp`` package's DNS-rebinding protection, on).

    Loopback: the loopback names on any port. A specific address: that address on any port. Plus
    ``--allowed-host``/``--allowed-origin`` (``name:*`` for any port). A request without
    ``Origin`` (any non-browser client) passes the origin check; one with another origin gets 403,
    one with another ``Host`` 421.
    """
    from mcp.server.transport_security import TransportSecuritySettings

    hosts = list(opts.allowed_hosts)
    origins = list(opts.allowed_origins)
    schemes = ("https",) if opts.tls else ("http", "https")
    if is_loopback(opts.host):
        names = ["127.0.0.1", "localhost", "[::1]"]
    elif opts.host not in WILDCARDS:
        names = [f"[{opts.host}]" if ":" in opts.host else opts.host]
    else:
        names = []
    for name in names:
        hosts += [name, f"{name}:*"]
        origins += [f"{scheme}://{name}{suffix}" for scheme in schemes for suffix in ("", ":*")]
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins
    )


def key_digest(key: str) -> str:
    """The SHA-256 of a key, hex: how this server names a key (in memory, as session owner)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _auth_error(description: str) -> Exception:
    from starlette.authentication import AuthenticationError

    return AuthenticationError(description)


@dataclass
class _Entry:
    client: AsyncClient
    verified_at: float = float("-inf")
    leases: int = 0
    retired: bool = False


@dataclass
class KeyClients:
    """One SDK client per presented key, and the check of keys against the Engram server.

    Implements the ``mcp`` package's ``TokenVerifier`` protocol (:meth:`verify_token`).
    ``make_client(key)`` builds an :class:`AsyncClient` that sends ``key`` to the Engram server.
    At most ``max_keys`` clients stay open (least recently used closed first, never under a call).
    """

    make_client: Callable[[str], AsyncClient]
    ttl: float = VERIFIED_TTL
    max_keys: int = MAX_KEYS
    _entries: collections.OrderedDict[str, _Entry] = field(default_factory=collections.OrderedDict)

    async def _acquire(self, key: str) -> _Entry:
        digest = key_digest(key)
        entry = self._entries.get(digest)
        if entry is None:
            entry = self._entries[digest] = _Entry(self.make_client(key))
        self._entries.move_to_end(digest)
        while len(self._entries) > self.max_keys:
            _, old = self._entries.popitem(last=False)
            await self._retire(old)
        return entry

    @staticmethod
    async def _retire(entry: _Entry) -> None:
        entry.retired = True
        if not entry.leases:
            await entry.client.aclose()

    @contextlib.asynccontextmanager
    async def lease(self, key: str) -> AsyncIterator[AsyncClient]:
        """The client for ``key`` while a call uses it. A call answered ``UNAUTHENTICATED``
        (the key was revoked or expired since it was checked) forgets the key."""
        entry = await self._acquire(key)
        entry.leases += 1
        try:
            yield entry.client
        except Unauthenticated:
            if self._entries.get(key_digest(key)) is entry:
                del self._entries[key_digest(key)]
                entry.retired = True
            raise
        finally:
            entry.leases -= 1
            if entry.retired and not entry.leases:
                await entry.client.aclose()

    async def verify_token(self, token: str) -> AccessToken | None:
        """The key as an access token if the Engram server accepts it, else ``None`` (HTTP 401).

        Raises ``AuthenticationError`` (answered 503) when the Engram server cannot say.
        """
        from mcp.server.auth.provider import AccessToken

        now = time.monotonic()
        entry = await self._acquire(token)
        if now - entry.verified_at >= self.ttl:
            try:
                async with self.lease(token) as client:
                    await client.server_info()
            except Unauthenticated:
                logger.info("refused an MCP request: the Engram server does not accept its key")
                return None
            except PermissionDenied:
                pass  # authenticated; what the key may do is the Engram server's call, per RPC
            except EngramError as exc:
                logger.warning("cannot check an MCP client's key: %s: %s", exc.code, exc.message)
                raise _auth_error(f"the Engram server could not check the key ({exc.code})") from None
            entry.verified_at = now
        # client_id names the principal: the session manager binds each MCP session to it.
        return AccessToken(token=token, client_id=f"engram-key:{key_digest(token)}", scopes=[])

    async def aclose(self) -> None:
        entries = list(self._entries.values())
        self._entries.clear()
        for entry in entries:
            await self._retire(entry)


def _presented_key(ctx: Any) -> str:
    """The API key of the HTTP request that carried a tool call (set by the bearer middleware)."""
    from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser

    request = getattr(ctx, "request", None)
    user = request.scope.get("user") if request is not None else None
    if not isinstance(user, AuthenticatedUser):  # pragma: no cover - the route requires a user
        raise Unauthenticated("no API key on this request")
    token: str = user.access_token.token
    return token


def build_app(
    server: Any, keys: KeyClients, opts: HttpOptions, *, on_exit: Callable[[], Awaitable[None]] | None = None
) -> Starlette:
    """The ASGI app: the ``mcp`` session manager at ``opts.path`` behind bearer authentication.

    The same assembly as ``Server.streamable_http_app`` with a token verifier, except that a key
    the Engram server cannot check (it is down) is answered 503, not 401.
    """
    from mcp.server.auth.middleware.auth_context import AuthContextMiddleware
    from mcp.server.auth.middleware.bearer_auth import BearerAuthBackend, RequireAuthMiddleware
    from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.authentication import AuthenticationMiddleware
    from starlette.requests import HTTPConnection
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    manager = StreamableHTTPSessionManager(app=server, security_settings=security_settings(opts))

    def unavailable(conn: HTTPConnection, exc: Exception) -> Response:
        body = {"error": "temporarily_unavailable", "error_description": str(exc)}
        return JSONResponse(body, status_code=503, headers={"retry-after": "5"})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with manager.run():
            try:
                yield
            finally:
                await keys.aclose()
                if on_exit is not None:
                    await on_exit()

    endpoint = RequireAuthMiddleware(StreamableHTTPASGIApp(manager), required_scopes=[])
    return Starlette(
        routes=[Route(opts.path, endpoint=endpoint)],
        middleware=[
            Middleware(AuthenticationMiddleware, backend=BearerAuthBackend(keys), on_error=unavailable),
            Middleware(AuthContextMiddleware),
        ],
        lifespan=lifespan,
    )


class _SharedPool(httpx.AsyncBaseTransport):
    """One connection pool (and TLS context) under every key's REST client; closed once, at exit."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        """A key's client closing leaves the pool to the others."""


def create_http_app(
    engram_url: str | None = None,
    *,
    transport: TransportName | None = None,
    timeout: TimeoutTypes = 30.0,
    profile: str = "default",
    agent_id: str | None = None,
    opts: HttpOptions | None = None,
) -> Starlette:
    """The MCP server over Streamable HTTP as an ASGI app; each call goes to the Engram server at
    ``engram_url`` with the calling MCP client's key. Raises :class:`BindRefused`."""
    from engram.mcp_server import create_server

    opts = opts or HttpOptions()
    check_options(opts)
    pool = _SharedPool()
    endpoint = parse_url(engram_url, transport)

    def make_client(key: str) -> AsyncClient:
        http = pool if endpoint.transport == "rest" else None
        return AsyncClient(endpoint.url, api_key=key, transport=endpoint.transport, timeout=timeout,
                           http_transport=http)

    keys = KeyClients(make_client)

    def client_for(ctx: Any) -> contextlib.AbstractAsyncContextManager[AsyncClient]:
        return keys.lease(_presented_key(ctx))

    server = create_server(client_for, profile=profile, agent_id=agent_id)
    return build_app(server, keys, opts, on_exit=pool.inner.aclose)


async def serve_http(
    engram_url: str | None = None,
    *,
    transport: TransportName | None = None,
    timeout: TimeoutTypes = 30.0,
    profile: str = "default",
    agent_id: str | None = None,
    opts: HttpOptions | None = None,
) -> None:
    """Serve MCP over Streamable HTTP with uvicorn until interrupted. Raises :class:`BindRefused`."""
    import uvicorn

    opts = opts or HttpOptions()
    app = create_http_app(engram_url, transport=transport, timeout=timeout, profile=profile,
                          agent_id=agent_id, opts=opts)
    endpoint = parse_url(engram_url, transport)
    if not endpoint.tls and not is_loopback(endpoint.host):
        print(f"engram mcp: warning: the Engram server {endpoint.url} is reached without TLS, so the "
              "clients' keys cross the network in the clear; use https:// or grpcs://",
              file=sys.stderr, flush=True)
    config = uvicorn.Config(
        app,
        host=opts.host,
        port=opts.port,
        ssl_certfile=opts.tls_cert,
        ssl_keyfile=opts.tls_key,
        log_level="warning",
        server_header=False,
        # Host and scheme are the request's own: X-Forwarded-* are not trusted.
        proxy_headers=False,
        # Clients hold a GET stream open per session: do not wait for them to hang up.
        timeout_graceful_shutdown=5,
    )
    print(f"engram mcp: serving MCP (Streamable HTTP) at {opts.url} for the Engram server "
          f"{endpoint.url}; clients authenticate with their Engram API key (Authorization: Bearer <key>)",
          file=sys.stderr, flush=True)
    await uvicorn.Server(config).serve()
