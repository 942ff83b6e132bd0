"""The control plane on etcd: node leases, the elected controller, the shard map.

Keys, under /engram/v1/:

* nodes/<id>: {url, inc, version}, on the node's lease. `inc` (the lease id) names this
  incarnation: a node whose lease lapsed (paused, partitioned) comes back as a new one and owns
  nothing until the controller assigns it shards again.
* controller: the node id of the controller, on its lease, created only when absent. Its
  create_revision is the fencing token: the map is written only by a transaction that checks it.
* shardmap: the ShardMap as JSON, written by compare-and-set on its mod_revision.
* progress/<id>: {shard: applied sequence} of the node, on its lease.

Every loop here polls with a bounded period instead of holding watches: a poll survives an etcd
leader change or a reconnect without any resume logic, and the load (a few reads a second per
node) is small for etcd.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import aetcd
import grpc
from aetcd import rpc

from .placement import ShardMap, plan

if TYPE_CHECKING:
    from ..config import Config

log = logging.getLogger("engram.cluster")
PREFIX = b"/engram/v1/"
MAP_POLL_SECONDS = 0.2
CONTROLLER_PERIOD_SECONDS = 0.5
PROMOTE_MAX_LAG = 16  # a catching-up owner within this many ops of the log's end may serve


class _EtcdClient(aetcd.Client):  # type: ignore[misc]
    """aetcd's client with TLS: aetcd 1.0 opens only insecure channels."""

    def __init__(self, *args: Any, credentials: grpc.ChannelCredentials | None = None, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._credentials = credentials

    async def connect(self) -> None:
        if self._credentials is None:
            await super().connect()
            return
        if self._connected.is_set():
            return
        self.channel = grpc.aio.secure_channel(
            f"{self._host}:{self._port}", self._credentials, options=list(self._options.items())
        )
        if self._username is not None:
            self.auth_stub = rpc.AuthStub(self.channel)
            resp = await self.auth_stub.Authenticate(
                rpc.AuthenticateRequest(name=self._username, password=self._password), timeout=self._timeout
            )
            self.metadata = (("token", resp.token),)
        self.kvstub = rpc.KVStub(self.channel)
        self.clusterstub = rpc.ClusterStub(self.channel)
        self.leasestub = rpc.LeaseStub(self.channel)
        self.maintenancestub = rpc.MaintenanceStub(self.channel)
        self._watcher = aetcd.watcher.Watcher(
            rpc.WatchStub(self.channel), timeout=self._timeout, metadata=self.metadata
        )
        self._connected.set()


class EtcdPool:
    """One client per etcd endpoint; a call goes to the endpoint that answered last and, when it
    does not answer within ATTEMPT_SECONDS, to the next. A single gRPC channel over all members
    keeps sending to a member that a partition cut off (its TCP connection never fails), so the
    failover is ours, per call."""

    ATTEMPT_SECONDS = 1.5

    def __init__(self, clients: list[aetcd.Client]) -> None:
        self.clients = clients
        self.transactions = clients[0].transactions
        self._current = 0

    async def call(self, fn: Callable[[aetcd.Client], Awaitable[Any]]) -> Any:
        last: BaseException | None = None
        for k in range(len(self.clients)):
            i = (self._current + k) % len(self.clients)
            try:
                result = await asyncio.wait_for(fn(self.clients[i]), self.ATTEMPT_SECONDS)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                last = exc
                continue
            self._current = i
            return result
        assert last is not None
        raise last

    async def lease(self, ttl: int) -> int:
        lease = await self.call(lambda c: c.lease(ttl))
        return int(lease.id)

    async def refresh(self, lease_id: int) -> Any:
        return await self.call(lambda c: c.refresh_lease(lease_id))

    async def revoke(self, lease_id: int) -> None:
        await self.call(lambda c: c.revoke_lease(lease_id))

    async def get(self, key: bytes) -> Any:
        return await self.call(lambda c: c.get(key))

    async def get_prefix(self, prefix: bytes) -> Any:
        return await self.call(lambda c: c.get_prefix(prefix))

    async def put(self, key: bytes, value: bytes, lease: int = 0) -> Any:
        return await self.call(lambda c: c.put(key, value, lease=lease))

    async def transaction(self, compare: list[Any], success: list[Any], failure: list[Any]) -> Any:
        return await self.call(lambda c: c.transaction(compare=compare, success=success, failure=failure))

    async def status(self) -> tuple[Any, list[Any]]:
        async def ask(c: aetcd.Client) -> tuple[Any, list[Any]]:
            return await c.status(), [m async for m in c.members()]

        return await self.call(ask)  # type: ignore[no-any-return]

    async def close(self) -> None:
        for c in self.clients:
            with contextlib.suppress(Exception):
                await c.close()


def etcd_pool(config: Config) -> EtcdPool:
    creds = None
    options: dict[str, Any] = {}
    if config.cluster_tls_ca or any(e.startswith("https://") for e in config.cluster_etcd):
        ca = config.cluster_tls_ca.read_bytes() if config.cluster_tls_ca else None
        cert = config.cluster_tls_cert.read_bytes() if config.cluster_tls_cert else None
        key = config.cluster_tls_key.read_bytes() if config.cluster_tls_key else None
        creds = grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)
    clients = []
    for endpoint in config.cluster_etcd:
        host, _, port = endpoint.split("://", 1)[-1].rpartition(":")
        clients.append(
            _EtcdClient(
                host=host,
                port=int(port),
                username=config.cluster_etcd_user or None,
                password=config.cluster_etcd_password or None,
                timeout=5,
                options=options,
                credentials=creds,
            )
        )
    return EtcdPool(clients)


def tls_context(config: Config) -> ssl.SSLContext | None:
    """TLS for NATS (the CA, and a client certificate when given)."""
    if not config.cluster_tls_ca and not any(s.startswith("tls://") for s in config.cluster_nats):
        return None
    ctx = ssl.create_default_context(cafile=str(config.cluster_tls_ca) if config.cluster_tls_ca else None)
    if config.cluster_tls_cert and config.cluster_tls_key:
        ctx.load_cert_chain(str(config.cluster_tls_cert), str(config.cluster_tls_key))
    return ctx


def _report_loop_end(task: asyncio.Task[None]) -> None:
    """The control loops run for the node's life: one that ends otherwise is a bug to see."""
    if not task.cancelled() and task.exception() is not None:
        log.critical("cluster loop %s stopped", task.get_name(), exc_info=task.exception())


class ControlPlane:
    """This node's view of, and part in, the control plane."""

    def __init__(
        self,
        config: Config,
        on_map: Callable[[ShardMap], None],
        on_lease_lost: Callable[[], None],
        last_seqs: Callable[[int], Awaitable[dict[int, int]]],
        progress: Callable[[], dict[int, int]],
    ) -> None:
        self.config = config
        self.node_id = config.cluster_node_id
        self.ttl = max(1, math.ceil(config.cluster_lease_ttl))
        self.client = etcd_pool(config)
        self._on_map = on_map
        self._on_lease_lost = on_lease_lost
        self._last_seqs = last_seqs
        self._progress = progress
        self.lease = 0  # this incarnation's lease id; 0: none
        self.incarnation = ""
        self._lease_valid_until = 0.0  # monotonic; past it this node must not serve
        self.map: ShardMap | None = None
        self.map_revision = 0
        self.controller_revision = 0  # create_revision of our controller key; 0: not controller
        self.controller_id = ""
        self.healthy = False  # etcd answered lately
        self.leaving = False
        self._tasks: list[asyncio.Task[None]] = []
        self._last_progress: dict[int, int] | None = None

    # --- lifecycle ---------------------------------------------------------------------------
    async def start(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        await self._register(deadline)
        for fn in (self._keepalive_loop, self._map_loop, self._controller_loop):
            task = asyncio.create_task(fn(), name=f"engram-cluster-{fn.__name__}")
            task.add_done_callback(_report_loop_end)
            self._tasks.append(task)

    async def stop(self, leave: bool = True) -> None:
        self.leaving = True
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if leave and self.lease:
            try:  # leave at once: our keys (node, progress, controller) go with the lease
                await asyncio.wait_for(self.client.revoke(self.lease), 3)
            except Exception as exc:
                log.warning("could not revoke the cluster lease: %s", exc)
        self._lease_valid_until = 0.0
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.client.close(), 3)

    def lease_fresh(self) -> bool:
        """Whether this incarnation's lease is certainly still alive (by our own clock)."""
        return not self.leaving and time.monotonic() < self._lease_valid_until

    # --- membership ----------------------------------------------------------------------------
    async def _register(self, deadline: float) -> None:
        """A new lease and our node key; waits while a previous incarnation's key still lives."""
        key = PREFIX + b"nodes/" + self.node_id.encode()
        while True:
            t0 = time.monotonic()
            lease = await self.client.lease(self.ttl)
            record = {"url": self.config.cluster_url, "inc": str(lease), "started": time.time()}
            tx = self.client.transactions
            ok, _ = await self.client.transaction(
                compare=[tx.version(key) == 0],
                success=[tx.put(key, json.dumps(record).encode(), lease=lease)],
                failure=[],
            )
            if ok:
                self.lease, self.incarnation = lease, str(lease)
                self._lease_valid_until = t0 + self.ttl
                self._last_progress = None
                log.info("joined the cluster as %s (incarnation %s)", self.node_id, self.incarnation)
                return
            await self.client.revoke(lease)
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"cluster node id {self.node_id!r} is registered by a live node; "
                    "each node needs its own --cluster-node-id"
                )
            await asyncio.sleep(0.5)  # a restarted node: its old lease runs out within the TTL

    async def _keepalive_loop(self) -> None:
        while True:
            await asyncio.sleep(self.ttl / 4)
            t0 = time.monotonic()
            try:
                reply = await asyncio.wait_for(
                    self.client.refresh(self.lease), max(self.ttl / 2, 2 * EtcdPool.ATTEMPT_SECONDS)
                )
                alive = reply is not None and reply.TTL > 0
            except Exception as exc:
                log.debug("lease keepalive failed: %s", exc)
                self.healthy = False
                continue
            self.healthy = True
            if alive:
                self._lease_valid_until = t0 + reply.TTL
                await self.report_progress_now()  # never raises: this loop must not end
                continue
            # The lease expired (we were paused or cut off): stop serving, join again as new.
            log.warning("cluster lease of %s expired: serving nothing until re-admitted", self.node_id)
            self._lease_valid_until = 0.0
            self.controller_revision = 0
            self.incarnation = ""  # the map's entries for the old incarnation are no longer ours
            self._on_lease_lost()
            try:
                await self._register(time.monotonic() + 60)
            except Exception as exc:
                log.warning("could not rejoin the cluster: %s", exc)

    async def _report_progress(self) -> None:
        progress = self._progress()
        if progress == self._last_progress:
            return
        body = json.dumps({str(s): seq for s, seq in progress.items()}).encode()
        await self.client.put(PREFIX + b"progress/" + self.node_id.encode(), body, lease=self.lease)
        self._last_progress = dict(progress)

    async def report_progress_now(self) -> None:
        try:
            await self._report_progress()
        except Exception as exc:
            log.debug("progress report failed: %s", exc)

    # --- the shard map -------------------------------------------------------------------------
    async def _map_loop(self) -> None:
        while True:
            try:
                got = await self.client.get(PREFIX + b"shardmap")
                self.healthy = True
                if got is not None and got.mod_revision != self.map_revision:
                    self.map = ShardMap.from_json(json.loads(got.value))
                    self.map_revision = got.mod_revision
                    self._on_map(self.map)
            except Exception as exc:
                self.healthy = False
                log.debug("shard map poll failed: %s", exc)
            await asyncio.sleep(MAP_POLL_SECONDS)

    async def nodes(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for kv in await self.client.get_prefix(PREFIX + b"nodes/"):
            out[kv.key[len(PREFIX) + 6 :].decode()] = json.loads(kv.value)
        return out

    async def all_progress(self) -> dict[str, dict[int, int]]:
        out: dict[str, dict[int, int]] = {}
        for kv in await self.client.get_prefix(PREFIX + b"progress/"):
            out[kv.key[len(PREFIX) + 9 :].decode()] = {int(s): int(q) for s, q in json.loads(kv.value).items()}
        return out

    async def draining(self) -> set[str]:
        return {kv.key[len(PREFIX) + 6 :].decode() for kv in await self.client.get_prefix(PREFIX + b"drain/")}

    async def drain(self, node_id: str) -> dict[str, Any] | None:
        """Mark a node draining, on that node's own lease: the mark goes when the node does (a
        restarted node is a new member, not draining). None: no such live node."""
        got = await self.client.get(PREFIX + b"nodes/" + node_id.encode())
        if got is None:
            return None
        record: dict[str, Any] = json.loads(got.value)
        await self.client.put(PREFIX + b"drain/" + node_id.encode(), b"1", lease=got.lease)
        return record

    # --- the controller ------------------------------------------------------------------------
    async def _controller_loop(self) -> None:
        while True:
            await asyncio.sleep(CONTROLLER_PERIOD_SECONDS)
            if not self.lease_fresh():
                continue
            try:
                await self._campaign()
                if self.controller_revision:
                    await self._reconcile()
            except Exception as exc:
                log.debug("controller round failed: %s", exc)

    async def _campaign(self) -> None:
        key = PREFIX + b"controller"
        tx = self.client.transactions
        ok, _ = await self.client.transaction(
            compare=[tx.version(key) == 0],
            success=[tx.put(key, self.node_id.encode(), lease=self.lease)],
            failure=[],
        )
        got = await self.client.get(key)
        if got is None:
            self.controller_revision, self.controller_id = 0, ""
            return
        self.controller_id = got.value.decode()
        mine = got.lease == self.lease
        if ok or mine:
            if not self.controller_revision:
                log.info("%s is the cluster controller (fencing token %d)", self.node_id, got.create_revision)
            self.controller_revision = got.create_revision
        else:
            self.controller_revision = 0

    async def _reconcile(self) -> None:
        """One round of the controller: the next map from the live nodes and their progress."""
        got = await self.client.get(PREFIX + b"shardmap")
        if got is None:
            current = ShardMap(0, self.config.cluster_shards, self.config.cluster_replication)
            read_rev = 0
        else:
            current = ShardMap.from_json(json.loads(got.value))
            read_rev = got.mod_revision
        live = {n: r["inc"] for n, r in (await self.nodes()).items()}
        if not live:
            return
        progress = await self.all_progress()
        last = await self._last_seqs(current.shards)
        draining = frozenset(await self.draining())
        nxt = plan(current, live, progress, last, PROMOTE_MAX_LAG, draining)
        if nxt is None:
            return
        await self.write_map(nxt, read_rev)

    async def write_map(self, new: ShardMap, read_rev: int) -> bool:
        """Compare-and-set, fenced: only while we hold the controller key we won."""
        tx = self.client.transactions
        key = PREFIX + b"shardmap"
        compare = [tx.create(PREFIX + b"controller") == self.controller_revision]
        compare.append(tx.version(key) == 0 if read_rev == 0 else tx.mod(key) == read_rev)
        ok, _ = await self.client.transaction(
            compare=compare, success=[tx.put(key, json.dumps(new.to_json()).encode())], failure=[]
        )
        if ok:
            log.info("shard map epoch %d written by %s", new.epoch, self.node_id)
        return bool(ok)

    async def status(self) -> dict[str, Any]:
        """etcd's own view: members, leader, whether it answers."""
        try:
            st, members = await self.client.status()
            leader = next((m.name for m in members if m.id == st.leader.id), "") if st.leader else ""
            return {"engine": "etcd", "members": len(members), "leader": leader, "healthy": bool(leader)}
        except Exception as exc:
            return {"engine": "etcd", "members": 0, "leader": "", "healthy": False, "error": type(exc).__name__}
