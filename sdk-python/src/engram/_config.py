"""Client settings: where the server is, how long to wait, when to retry."""

from __future__ import annotations

import enum
import os
import random
from dataclasses import dataclass, field
from typing import Final, Literal
from urllib.parse import urlsplit

from engram.errors import EngramError

DEFAULT_URL: Final = "http://localhost:3300"
"""The URL used when none is given and ``ENGRAM_URL`` is unset."""

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
        timeout: Deadline of a unary call (default 30 s).
        connect: Time to open a connection (default 5 s; REST only, gRPC connects lazily
            within ``timeout``).
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
        base = min(self.max_backoff, self.backoff * (2**attempt))
        wait = base * (1.0 - self.jitter * random.random())
        if error.retry_after is not None:
            wait = max(wait, min(error.retry_after, self.max_backoff * 4))
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
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{self._host}:{self.port}"

    @property
    def target(self) -> str:
        return f"{self._host}:{self.port}"

    @property
    def _host(self) -> str:
        return f"[{self.host}]" if ":" in self.host else self.host


def parse_url(url: str | None, transport: TransportName | None = None) -> Endpoint:
    """Resolve the URL (argument, else ``ENGRAM_URL``, else ``http://localhost:3300``).

    ``http://`` and ``https://`` pick REST, ``grpc://`` (plain h2c) and ``grpcs://`` (TLS) pick
    gRPC; ``transport=`` overrides the scheme's choice (the same port serves both). A URL without
    a scheme is taken as ``http://``. The default port is 3300.
    """
    raw = url or os.environ.get("ENGRAM_URL") or DEFAULT_URL
    if "://" not in raw:
        raw = "http://" + raw
    parts = urlsplit(raw)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https", "grpc", "grpcs"):
        raise ValueError(f"unsupported URL scheme {parts.scheme!r}: use http, https, grpc or grpcs")
    chosen: TransportName = transport or ("grpc" if scheme.startswith("grpc") else "rest")
    if chosen not in ("rest", "grpc"):
        raise ValueError(f"transport must be 'rest' or 'grpc', not {chosen!r}")
    tls = scheme in ("https", "grpcs")
    return Endpoint(chosen, parts.hostname or "localhost", parts.port or (443 if tls else 3300), tls)


def resolve_api_key(api_key: str | None) -> str | None:
    """The API key: the argument, else ``ENGRAM_API_KEY``, else none."""
    return api_key if api_key is not None else (os.environ.get("ENGRAM_API_KEY") or None)
