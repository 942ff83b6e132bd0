"""Client settings: where the server is, how long to wait, when to retry."""

from __future__ import annotations

import enum
import errno
import os
import random
import re
import socket
from dataclasses import dataclass, field
from typing import Final, Literal
from urllib.parse import urlsplit

from engram.errors import EngramError, Unavailable

DEFAULT_URL: Final = "http://127.0.0.1:3300"
"""The URL used when none is given and ``ENGRAM_URL`` is unset: a local server on its default port."""

DEFAULT_PORT: Final = 3300
"""The port of an address that names none (443 for ``https://`` and ``grpcs://``)."""

TransportName = Literal["rest", "grpc"]


class UseClientDefault(enum.Enum):
    """Type of :data:`USE_CLIENT_DEFAULT`: "not passed", as opposed to an explicit ``None``."""

    USE_CLIENT_DEFAULT = "USE_CLIENT_DEFAULT"

    def __repr__(self) -> str:
        return "USE_CLIENT_DEFAULT"


USE_CLIENT_DEFAULT: Final = UseClientDefault.USE_CLIENT_DEFAULT
"""Per-call default: take the client's setting (``timeout=None`` means "no timeout")."""


@dataclass(frozen=True)
class Timeout:
    """How long calls may take, in seconds; ``None`` means no limit.

    Attributes:
        timeout: Deadline of a unary call (default 30 s); retries do not start after it.
        connect: Time to open a connection (default 5 s; REST only, gRPC connects lazily
            within ``timeout``). Running out of it raises ``Unavailable``, as does a gRPC call
            whose ``timeout`` passes while its connection is still being opened.
        stream: Deadline of a whole streaming call (export, import); default ``None``, since
            an export of a large agent can take long. Over REST ``timeout`` still bounds each
            wait for the next line.
    """

    timeout: float | None = 30.0
    connect: float | None = 5.0
    stream: float | None = None

    @classmethod
    def coerce(cls, value: float | Timeout | None) -> Timeout:
        """``5`` → ``Timeout(5, connect=5)``; ``None`` → no limits; a ``Timeout`` as is."""
        if isinstance(value, Timeout):
            return value
        if value is None:
            return cls(None, connect=None, stream=None)
        return cls(float(value), connect=min(float(value), 5.0))


DEFAULT_TIMEOUT: Final = Timeout()

TimeoutTypes = float | Timeout | None


@dataclass(frozen=True)
class Retry:
    """When and how calls are retried.

    Only idempotent calls are retried (reads, recalls, a store with a client-supplied ``id``,
    a batch store whose items all have ids) and only on ``UNAVAILABLE`` (which includes
    connection failures). The delay before retry ``n`` (0-based) is
    ``min(max_backoff, backoff * 2**n)`` scaled by a random factor in ``[1 - jitter, 1]``,
    or the server's ``retry_after`` when that is longer.

    Attributes:
        attempts: Total tries, the first included (default 3; 1 disables retries).
        backoff: First delay in seconds (default 0.1).
        max_backoff: Largest delay in seconds (default 2).
        jitter: Fraction of the delay that is randomised (default 1: full jitter).
        codes: Error codes that are retried (default ``{"UNAVAILABLE"}``).
    """

    attempts: int = 3
    backoff: float = 0.1
    max_backoff: float = 2.0
    jitter: float = 1.0
    codes: frozenset[str] = field(default_factory=lambda: frozenset({"UNAVAILABLE"}))

    @classmethod
    def coerce(cls, value: Retry | int | None) -> Retry:
        """``None`` or ``0`` → no retries; an ``int`` → that many attempts."""
        if isinstance(value, Retry):
            return value
        if not value:
            return cls(attempts=1)
        return cls(attempts=int(value))

    def delay(self, error: EngramError, attempt: int) -> float | None:
        """Seconds to wait before retrying after ``error`` on try ``attempt`` (0-based), or None."""
        if error.code not in self.codes or attempt + 1 >= self.attempts:
            return None
        return self.backoff_delay(attempt, error.retry_after)

    def backoff_delay(self, attempt: int, retry_after: float | None = None) -> float:
        """The wait before retry ``attempt`` (0-based), whatever ``attempts`` allows: the jittered
        exponential backoff, or the server's ``retry_after`` when longer (capped at four times
        ``max_backoff``). A resuming watch waits this long between its reconnections."""
        base = min(self.max_backoff, self.backoff * (2 ** min(attempt, 62)))
        wait = base * (1.0 - self.jitter * random.random())
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.max_backoff * 4))
        return float(wait)


DEFAULT_RETRY: Final = Retry()


@dataclass(frozen=True)
class Endpoint:
    """A parsed server URL."""

    transport: TransportName
    host: str
    port: int
    tls: bool

    @property
    def base_url(self) -> str:
        """``http(s)://host:port``: the REST base URL."""
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{self._host}:{self.port}"

    @property
    def url(self) -> str:
        """The normalised address, as error messages name it: the REST base URL, or
        ``grpc(s)://host:port`` for gRPC."""
        if self.transport == "rest":
            return self.base_url
        return f"{'grpcs' if self.tls else 'grpc'}://{self.target}"

    @property
    def target(self) -> str:
        return f"{self._host}:{self.port}"

    @property
    def _host(self) -> str:
        return f"[{self.host}]" if ":" in self.host else self.host


def parse_url(url: str | None, transport: TransportName | None = None) -> Endpoint:
    """Resolve the URL (argument, else ``ENGRAM_URL``, else ``http://127.0.0.1:3300``).

    Accepted forms, with or without a trailing slash: ``host:port``, ``http://host:port``,
    ``https://host:port``, ``grpc://host:port``, ``grpcs://host:port``; IPv6 hosts in brackets
    (``[::1]:3300``). ``http://`` and ``https://`` pick REST, ``grpc://`` (plain h2c) and
    ``grpcs://`` (TLS) pick gRPC; ``transport=`` overrides the scheme's choice (the same port
    serves both). A URL without a scheme is taken as ``http://``. Without a port: 3300, or 443
    for ``https://`` and ``grpcs://``.
    """
    raw = (url or "").strip() or os.environ.get("ENGRAM_URL", "").strip() or DEFAULT_URL
    if "://" not in raw:
        raw = "http://" + raw
    parts = urlsplit(raw)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https", "grpc", "grpcs"):
        raise ValueError(f"unsupported URL scheme {parts.scheme!r} in {raw!r}: use http, https, grpc or grpcs")
    chosen: TransportName = transport or ("grpc" if scheme.startswith("grpc") else "rest")
    if chosen not in ("rest", "grpc"):
        raise ValueError(f"transport must be 'rest' or 'grpc', not {chosen!r}")
    tls = scheme in ("https", "grpcs")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"invalid port in server URL {raw!r}") from None
    if not parts.hostname:
        raise ValueError(f"no host in server URL {raw!r}")
    return Endpoint(chosen, parts.hostname, port or (443 if tls else DEFAULT_PORT), tls)


def resolve_api_key(api_key: str | None) -> str | None:
    """The API key: the argument, else ``ENGRAM_API_KEY``, else none."""
    return api_key if api_key is not None else (os.environ.get("ENGRAM_API_KEY") or None)


START_HINT: Final = "is the Engram server running? Start it with `make serve` or `engram-server serve`"
"""The advice every SDK appends to a failed connection."""


def cannot_connect(url: str, cause: str) -> Unavailable:
    """The error of a connection that could not be opened (refused, unreachable, DNS, timeout).

    ``cannot connect to http://127.0.0.1:3300 (connection refused): is the Engram server
    running? ...``: the same wording in every Engram SDK. ``UNAVAILABLE``, so it is retried.
    """
    return Unavailable(f"cannot connect to {url} ({cause}): {START_HINT}", from_server=False)


_ERRNO_CAUSES: dict[int, str] = {
    errno.ECONNREFUSED: "connection refused",
    errno.ETIMEDOUT: "connection timed out",
    errno.ENETUNREACH: "network unreachable",
    errno.EHOSTUNREACH: "host unreachable",
    errno.EADDRNOTAVAIL: "address not available",
}


def os_error_cause(exc: BaseException) -> str | None:
    """The cause of a failed connection, from the first ``OSError`` in the exception's chain
    (``__cause__`` / ``__context__``): ``connection refused``, ``DNS lookup failed: ...``,
    ``connection timed out``...; None when the chain has no ``OSError``."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, socket.gaierror):
            return f"DNS lookup failed: {current.strerror or current}"
        if isinstance(current, ConnectionRefusedError):
            return "connection refused"
        if isinstance(current, TimeoutError):
            return "connection timed out"
        if isinstance(current, OSError) and current.errno in _ERRNO_CAUSES:
            return _ERRNO_CAUSES[current.errno]
        if isinstance(current, OSError) and current.strerror:
            return current.strerror[:1].lower() + current.strerror[1:]
        current = current.__cause__ or current.__context__
    return None


# What grpcio (gRPC core) says when it could not open a connection, and the cause to report.
_GRPC_CAUSES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"connection refused", re.I), "connection refused"),
    (re.compile(r"DNS resolution failed|errors resolving|lookup failed|name resolution|"
                r"domain name not found|could not resolve", re.I), "DNS lookup failed"),
    (re.compile(r"network is unreachable", re.I), "network unreachable"),
    (re.compile(r"no route to host|host is unreachable", re.I), "host unreachable"),
    (re.compile(r"timed out|timeout occurred|connect(ion)? timeout", re.I), "connection timed out"),
]
_GRPC_CONNECT_FAILURE = re.compile(r"failed to connect|resolv|DNS|connection refused|unreachable|no route", re.I)


def grpc_connect_cause(details: str) -> str | None:
    """The cause of a failed gRPC connection from grpcio's status message, or None when the
    message does not describe a failed connection (e.g. a connection lost mid-call)."""
    if not _GRPC_CONNECT_FAILURE.search(details):
        return None
    for pattern, cause in _GRPC_CAUSES:
        if pattern.search(details):
            if cause == "DNS lookup failed":
                found = re.search(r"(Domain name not found|Name or service not known|"
                                  r"Temporary failure in name resolution|No address associated with hostname)",
                                  details, re.I)
                return f"{cause}: {found.group(1)}" if found else cause
            return cause
    # "failed to connect to all addresses; last error: UNKNOWN: ipv4:...: <why>": keep <why>.
    return details.rsplit(": ", 1)[-1].strip() or details
