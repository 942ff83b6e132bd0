"""API keys: who is calling and what they may touch.

Keys look like `engram_<id>_<secret>`: the id (12 hex characters) finds the stored record, whose
SHA-256 hash of the whole key is compared in constant time. The secret has 256 bits of entropy,
so a fast hash is enough (no password stretching needed). Only the hash is stored.

The root key (ENGRAM_API_KEY) is an admin key for every agent and is never stored. Without a root
key the server runs without authentication (and `Config.validate` only lets it bind loopback);
a key that is presented anyway is still checked and its scope applied.

Scope rule: a key pinned to agents (ids or an id prefix) that asks for another agent's memory
gets NOT_FOUND, not PERMISSION_DENIED, so it cannot probe which ids exist. Naming a forbidden
agent explicitly (agent_id in the request) gets PERMISSION_DENIED.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .engine import clock
from .engine.models import ApiKeyRecord

if TYPE_CHECKING:
    from .engine.engine import Engine

import asyncio
import base64
import contextlib
import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field

from .errors import RpcError

KEY_PREFIX = "engram_"
ROLES = ("admin", "read_write", "read_only")


@dataclass(frozen=True)
class Principal:
    key_id: str  # "root", "anonymous" or the scoped key's id
    role: str  # admin | read_write | read_only
    agent_ids: tuple[str, ...] = ()
    agent_prefix: str = ""

    @property
    def pinned(self) -> bool:
        return bool(self.agent_ids or self.agent_prefix)

    def may_access_agent(self, agent_id: str) -> bool:
        if not self.pinned:
            return True
        if agent_id in self.agent_ids:
            return True
        return bool(self.agent_prefix) and agent_id.startswith(self.agent_prefix)

    def require(self, access: str) -> None:
        """access: public | read | write | admin."""
        if access in ("public", "read"):
            return
        if access == "write" and self.role in ("admin", "read_write"):
            return
        if access == "admin" and self.role == "admin":
            return
        what = "an admin key" if access == "admin" else "a read-write or admin key"
        raise RpcError("PERMISSION_DENIED", f"this call needs {what}; the key is {self.role.replace('_', '-')}")

    def require_agent(self, agent_id: str) -> None:
        if agent_id and not self.may_access_agent(agent_id):
            raise RpcError("PERMISSION_DENIED", f"the key may not access agent {agent_id!r}")


ROOT = Principal("root", "admin")
ANONYMOUS = Principal("anonymous", "admin")


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


def new_key() -> tuple[str, str]:
    """(key_id, full key). A key created by a write replayed from a cluster log is the same on
    every node: it derives from the write's secret (clock.Replay), which the log holds encrypted."""
    replay = clock.current()
    if replay is not None and replay.secret:
        d = hashlib.blake2b(replay.secret, digest_size=38, person=b"engram-api-key").digest()
        token = base64.urlsafe_b64encode(d[6:]).rstrip(b"=").decode()
        return d[:6].hex(), f"{KEY_PREFIX}{d[:6].hex()}_{token}"
    key_id = secrets.token_hex(6)
    return key_id, f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"


def parse_key_id(key: str) -> str | None:
    if not key.startswith(KEY_PREFIX):
        return None
    rest = key[len(KEY_PREFIX) :]
    key_id, sep, secret = rest.partition("_")
    if not sep or len(key_id) != 12 or not secret:
        return None
    return key_id


def bearer(value: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header value (scheme case-insensitive)."""
    if not value:
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


@dataclass
class Authenticator:
    engine: Engine
    root_key: str = ""
    _root_hash: bytes = b""
    _cache: dict[str, ApiKeyRecord | None] = field(default_factory=dict)  # key id → record
    _last_used_written: dict[str, float] = field(default_factory=dict)
    key_lock: threading.Lock = field(default_factory=threading.Lock)  # serialises key record writes

    def __post_init__(self) -> None:
        self._root_hash = hash_key(self.root_key) if self.root_key else b""

    @property
    def required(self) -> bool:
        return bool(self.root_key)

    def invalidate(self, key_id: str) -> None:
        """Forget a cached key (after create / revoke): the next call reads the store again."""
        self._cache.pop(key_id, None)

    async def authenticate(self, authorization: str | None, access: str) -> Principal:
        """Resolve the caller. `access` "public" lets anyone through (Health): whatever key comes
        with such a call, even a revoked one, is not looked at."""
        if access == "public":
            return ANONYMOUS
        token = bearer(authorization)
        if token is None:
            if access == "public" or not self.required:
                return ANONYMOUS
            if authorization:
                raise RpcError("UNAUTHENTICATED", "malformed authorization: use 'Bearer <key>'")
            raise RpcError("UNAUTHENTICATED", "missing API key: send 'Authorization: Bearer <key>'")
        presented = hash_key(token)
        if self._root_hash and hmac.compare_digest(presented, self._root_hash):
            return ROOT
        key_id = parse_key_id(token)
        record = await self._lookup(key_id) if key_id else None
        if record is None or not hmac.compare_digest(presented, record.key_hash):
            if access == "public":
                return ANONYMOUS
            raise RpcError("UNAUTHENTICATED", "invalid API key")
        now = time.time()
        if record.revoked_at:
            raise RpcError("UNAUTHENTICATED", "the API key was revoked")
        if record.expires_at and record.expires_at <= now:
            raise RpcError("UNAUTHENTICATED", "the API key expired")
        self._touch(record, now)
        return Principal(record.id, record.role, tuple(record.agent_ids), record.agent_prefix)

    async def _lookup(self, key_id: str) -> ApiKeyRecord | None:
        if key_id in self._cache:
            return self._cache[key_id]
        loop = asyncio.get_running_loop()
        record = await loop.run_in_executor(self.engine.executor, self.engine.get_api_key, key_id)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key_id] = record
        return record

    def _touch(self, record: ApiKeyRecord, now: float) -> None:
        """Record last use, at most once a minute per key, off the request path."""
        if now - self._last_used_written.get(record.id, 0.0) < 60:
            return
        self._last_used_written[record.id] = now
        record.last_used_at = now

        def write() -> None:
            try:
                with self.key_lock:
                    current = self.engine.get_api_key(record.id)
                    if current is not None and not current.revoked_at:
                        current.last_used_at = now
                        self.engine.put_api_key(current)
            except Exception:
                pass

        with contextlib.suppress(RuntimeError):  # executor shut down
            self.engine.executor.submit(write)
