"""The write-ahead log on NATS JetStream: one replicated stream per shard, every op encrypted.

A write is an *op*: the call (method and request), who made it, when, and the secret it may mint
(API keys), encrypted with a key derived from the cluster's data key before it is published, so
NATS's disks and the network hold only ciphertext. The subject carries the shard and a hash of
the agent id, never the id itself. `Nats-Msg-Id` (the op id) makes a retried publish a no-op
within the stream's duplicate window. The publish acknowledgement means the stream's replicas
have the op on disk (the servers run with `sync_interval: always`).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import os
import ssl
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import nats
import orjson
from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig, DeliverPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError, NotFoundError

from ..engine.crypto import Cipher
from .control import tls_context
from .placement import SYSTEM_SHARD

if TYPE_CHECKING:
    from nats.aio.client import Client as NatsClient
    from nats.aio.subscription import Subscription
    from nats.js import JetStreamContext

    from ..config import Config

log = logging.getLogger("engram.cluster")
DUPLICATE_WINDOW_SECONDS = 120.0
PUBLISH_TIMEOUT_SECONDS = 2.0
PUBLISH_DEADLINE_SECONDS = 15.0  # retries (same op id) over a stream leader election
CONNECT_TIMEOUT_SECONDS = 30.0
MAX_OP_BYTES = 6 * 1024 * 1024  # below the servers' max_payload (8 MB in the documented config)


def _refusal(exc: BaseException) -> bool:
    """A connection error that retrying will not cure: bad credentials, an untrusted certificate
    (during the handshake nats-py reports the server's -ERR as a plain Error with its text)."""
    return isinstance(exc, (nats.errors.AuthorizationError, ssl.SSLCertVerificationError)) or (
        "authorization violation" in str(exc).lower()
    )


def stream_name(shard: int) -> str:
    return "ENGRAM_SYS" if shard == SYSTEM_SHARD else f"ENGRAM_{shard:04d}"


def subject_prefix(shard: int) -> str:
    return "engram.log.sys" if shard == SYSTEM_SHARD else f"engram.log.{shard:04d}"


def log_key(data_key: bytes) -> bytes:
    """The log's own key (HKDF-style expansion of the data key): a different key per purpose."""
    return hmac.new(data_key, b"engram cluster log v1", hashlib.sha256).digest()


@dataclass
class Op:
    """One logged call."""

    op_id: str
    method: str  # the RPC path, /engram.v1.MemoryService/StoreMemory
    requests: list[bytes]  # one request (several for a client stream)
    principal: dict[str, Any]
    ts: float
    secret: bytes
    agent_id: str = ""

    @classmethod
    def new(cls, method: str, requests: list[bytes], principal: dict[str, Any], ts: float, agent_id: str) -> Op:
        return cls(str(uuid.uuid4()), method, requests, principal, ts, os.urandom(32), agent_id)

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "v": 1,
                "id": self.op_id,
                "m": self.method,
                "r": [base64.b64encode(r).decode() for r in self.requests],
                "p": self.principal,
                "ts": self.ts,
                "s": base64.b64encode(self.secret).decode(),
                "a": self.agent_id,
            }
        )

    @classmethod
    def decode(cls, raw: bytes) -> Op:
        d = orjson.loads(raw)
        if d.get("v") != 1:
            raise ValueError(f"unknown op version {d.get('v')!r}")
        return cls(
            d["id"],
            d["m"],
            [base64.b64decode(r) for r in d["r"]],
            d["p"],
            float(d["ts"]),
            base64.b64decode(d["s"]),
            d["a"],
        )


class OpLog:
    def __init__(self, config: Config, data_key: bytes) -> None:
        self.config = config
        self.cipher = Cipher(log_key(data_key))
        self.nc: NatsClient | None = None
        self.js: JetStreamContext | None = None
        self.replicas = min(3, max(1, config.cluster_log_replicas))
        self.connected = False
        self.last_error: Exception | None = None

    async def connect(self) -> None:
        async def disconnected() -> None:
            self.connected = False

        async def reconnected() -> None:
            self.connected = True

        refused = asyncio.Event()

        async def error(exc: Exception) -> None:
            # A refusal (wrong user or password, a certificate we do not trust) is what the
            # operator must see, not the broken pipe that follows it; retrying will not change it.
            if _refusal(exc):
                refused.set()
            if self.last_error is None or not _refusal(self.last_error):
                self.last_error = exc
            log.debug("nats: %s", exc)

        opts: dict[str, Any] = {
            "servers": self.config.cluster_nats,
            "name": f"engram-{self.config.cluster_node_id}",
            "max_reconnect_attempts": -1,
            "reconnect_time_wait": 0.5,
            # The servers in the order given (the node's own host's first), and a server that stops
            # answering (a partition: its TCP connection never fails) noticed within ~6 s.
            "dont_randomize": True,
            "ping_interval": 2,
            "max_outstanding_pings": 2,
            "disconnected_cb": disconnected,
            "reconnected_cb": reconnected,
            "error_cb": error,
            "pending_size": 64 * 1024 * 1024,
        }
        if self.config.cluster_nats_user:
            opts["user"] = self.config.cluster_nats_user
            opts["password"] = self.config.cluster_nats_password
        tls = tls_context(self.config)
        if tls is not None:
            opts["tls"] = tls
        connecting = asyncio.ensure_future(nats.connect(**opts))
        gave_up = asyncio.ensure_future(refused.wait())
        try:
            done, _ = await asyncio.wait(
                {connecting, gave_up}, timeout=CONNECT_TIMEOUT_SECONDS, return_when=asyncio.FIRST_COMPLETED
            )
            if connecting not in done:
                connecting.cancel()
                raise TimeoutError("no connection")
            self.nc = connecting.result()
        except Exception as exc:
            why = self.last_error or exc
            raise RuntimeError(
                f"cannot connect to NATS at {', '.join(self.config.cluster_nats)} within "
                f"{CONNECT_TIMEOUT_SECONDS:.0f} s: {type(why).__name__}: {why}"
            ) from None
        finally:
            gave_up.cancel()
        self.js = self.nc.jetstream(timeout=PUBLISH_TIMEOUT_SECONDS)
        self.connected = True

    async def close(self) -> None:
        if self.nc is not None:
            try:
                await asyncio.wait_for(self.nc.drain(), 3)
            except Exception:
                await self.nc.close()

    async def ensure_streams(self, shards: int, deadline: float) -> None:
        """One stream per shard and the system stream; waits for JetStream's meta leader."""
        assert self.js is not None
        for shard in [SYSTEM_SHARD, *range(shards)]:
            cfg = StreamConfig(
                name=stream_name(shard),
                subjects=[subject_prefix(shard) + ".>"],
                num_replicas=self.replicas,
                storage=StorageType.FILE,
                duplicate_window=DUPLICATE_WINDOW_SECONDS,
            )
            while True:
                try:
                    await self.js.add_stream(cfg)
                    break
                except BadRequestError as exc:
                    if "already in use" in str(exc):
                        break
                    # "no suitable peers for placement": the JetStream cluster is still forming.
                    if asyncio.get_running_loop().time() > deadline:
                        raise
                    await asyncio.sleep(0.2)
                except Exception:  # no meta leader yet: wait for one
                    if asyncio.get_running_loop().time() > deadline:
                        raise
                    await asyncio.sleep(0.2)

    def seal(self, shard: int, op: Op) -> bytes:
        return self.cipher.seal("cluster-log", stream_name(shard).encode(), op.encode())

    def open(self, shard: int, blob: bytes) -> Op:
        return Op.decode(self.cipher.open("cluster-log", stream_name(shard).encode(), blob))

    async def publish(self, shard: int, token: str, kind: str, op: Op) -> int:
        """Publish; return the op's sequence once a quorum has it on disk. Retries with the same
        op id (deduplicated by the stream) until PUBLISH_DEADLINE_SECONDS."""
        assert self.js is not None
        blob = self.seal(shard, op)
        if len(blob) > MAX_OP_BYTES:
            from ..errors import RpcError

            raise RpcError(
                "RESOURCE_EXHAUSTED",
                f"the write is {len(blob)} bytes encoded; the cluster log takes at most {MAX_OP_BYTES}",
            )
        subject = f"{subject_prefix(shard)}.{token}.{kind}"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + PUBLISH_DEADLINE_SECONDS
        delay = 0.05
        while True:
            try:
                ack = await self.js.publish(
                    subject, blob, headers={"Nats-Msg-Id": op.op_id}, timeout=PUBLISH_TIMEOUT_SECONDS
                )
                return int(ack.seq)
            except Exception as exc:
                if loop.time() + delay > deadline:
                    from ..errors import RpcError

                    raise RpcError(
                        "UNAVAILABLE", f"the cluster log did not acknowledge the write ({type(exc).__name__}); retry it"
                    ) from exc
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)

    async def last_seqs(self, shards: int) -> dict[int, int]:
        assert self.js is not None

        async def one(s: int) -> tuple[int, int]:
            info = await self.js.stream_info(stream_name(s))  # type: ignore[union-attr]
            return s, int(info.state.last_seq)

        got = await asyncio.gather(*(one(s) for s in range(shards)))
        return dict(got)

    async def stream_info(self, shard: int) -> Any:
        assert self.js is not None
        return await self.js.stream_info(stream_name(shard))

    async def follow(self, shard: int, after: int, cb: Callable[[Msg], Awaitable[None]]) -> Subscription:
        """An ordered consumer from sequence after+1: the callback sees every op once, in order
        (the consumer is recreated by the client on a gap or a server change)."""
        assert self.js is not None
        config = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=after + 1)
        if after == 0:
            config = ConsumerConfig(deliver_policy=DeliverPolicy.ALL)
        return await self.js.subscribe(
            subject_prefix(shard) + ".>",
            stream=stream_name(shard),
            cb=cb,
            ordered_consumer=True,
            config=config,
            # Heartbeats every second: a consumer lost with its server is recreated within ~2 s
            # (the client's default, 5 s, left a shard unapplied for 10 s or more).
            idle_heartbeat=1.0,
            pending_msgs_limit=100_000,
            pending_bytes_limit=256 * 1024 * 1024,
        )


__all__ = ["NotFoundError", "Op", "OpLog", "stream_name"]
