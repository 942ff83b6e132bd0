"""One Engram node of a cluster: it applies the log of the shards it owns and routes every call.

Calls, by kind (ROUTES):

* writes (store, update, delete, forget, link, import, delete agent, a consolidation that
  merges) are published to the log of the agent's shard. Once a quorum of NATS servers has the op,
  an owner of the shard applies it (every owner does, in log order) and the caller gets the result
  of that application, with a consistency token `<shard>:<sequence>`.
* reads of one agent are served by this node when it serves the agent's shard, else forwarded over
  NATS request/reply to the shard's queue group, whose members are exactly the shard's serving
  owners. A read that carries a token waits until its owner has applied the log that far.
* API key changes go to the system log, which every node applies; key reads are local.
* ListAgents asks every shard; Health, server info, stats and Embed answer locally.

An op is applied by calling the same service method as a single node would, under the op's own
clock and id seed (engine/clock.py), so every owner computes the same state; the shard's applied
sequence is committed in the same RocksDB batches as the op's changes.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import re
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from google.protobuf.message import Message

from .. import pb
from ..auth import Principal
from ..engine import clock, crypto
from ..engine.storage import CF_META
from ..errors import RpcError, invalid
from ..service import validation as v
from ..service.base import CallContext
from .control import ControlPlane
from .oplog import Op, OpLog
from .placement import CATCHING_UP, SERVING, SYSTEM_SHARD, ShardMap, agent_key, shard_of

if TYPE_CHECKING:
    from nats.aio.msg import Msg
    from nats.aio.subscription import Subscription

    from ..config import Config
    from ..engine.engine import Engine
    from ..metrics import Metrics
    from ..service.registry import Method, Registry

log = logging.getLogger("engram.cluster")

WRITE, READ, LOCAL, SYSTEM_WRITE, FAN_OUT = "write", "read", "local", "system-write", "fan-out"
ROUTES: dict[str, str] = {
    "StoreMemory": WRITE,
    "BatchStoreMemories": WRITE,
    "UpdateMemory": WRITE,
    "DeleteMemory": WRITE,
    "ForgetMemories": WRITE,
    "LinkMemories": WRITE,
    "UnlinkMemories": WRITE,
    "ImportMemories": WRITE,
    "DeleteAgent": WRITE,
    "ConsolidateMemories": WRITE,  # a dry run is a read (route())
    "GetMemory": READ,
    "ListMemories": READ,
    "Recall": READ,
    "BatchRecall": READ,
    "GetMemoryHistory": READ,
    "GetMemoryGraph": READ,
    "ExportMemories": READ,
    "GetAgent": READ,
    "WatchMemories": READ,
    "ListAgents": FAN_OUT,
    "CreateApiKey": SYSTEM_WRITE,
    "RevokeApiKey": SYSTEM_WRITE,
}
RESULTS_KEPT = 4096  # per shard: results of recent ops, for the callers waiting on them
# Longest a write waits for an owner to apply it once the log has it. The write is durable by
# then, so waiting (a replica busy replaying, a loaded machine) beats an UNAVAILABLE that
# invites a retry, which stores again unless the memory is named (id or key).
APPLY_WAIT_SECONDS = 30.0
FORWARD_TIMEOUT_SECONDS = 5.0  # one attempt; a request in flight to a node that dies times out
IMPORT_OP_BYTES = 2 * 1024 * 1024  # an import is logged in ops of at most about this size
OWNER_WAIT_SECONDS = 4.0  # an owner's wait for its log on a forwarded call, below one attempt
NOT_SERVING = "this node does not serve shard {shard} now; retry"
NOT_APPLIED = "shard {shard} has not applied sequence {seq} within {timeout:.0f} s; retry"
STATUS_SECONDS = 2.0  # longest the status waits for any one part of the cluster
APPLIED_KEY = b"cluster/applied/"
WAIT_FOR = "x-engram-token"


def applied_key(shard: int) -> bytes:
    return APPLIED_KEY + (b"sys" if shard == SYSTEM_SHARD else str(shard).encode())


def principal_json(p: Principal) -> dict[str, Any]:
    return {"k": p.key_id, "r": p.role, "a": list(p.agent_ids), "x": p.agent_prefix}


def principal_of(d: dict[str, Any]) -> Principal:
    return Principal(key_id=d["k"], role=d["r"], agent_ids=tuple(d["a"]), agent_prefix=d["x"])


def error_json(exc: RpcError) -> dict[str, Any]:
    return {
        "code": exc.code,
        "message": exc.message,
        "fv": [[f.field, f.description] for f in exc.field_violations],
        "http": exc.http_status,
    }


def error_of(d: dict[str, Any]) -> RpcError:
    from ..errors import FieldViolation

    return RpcError(d["code"], d["message"], [FieldViolation(f, desc) for f, desc in d.get("fv", [])], d.get("http"))


@dataclass
class ShardReplica:
    """This node's copy of one shard: the applier of its log."""

    shard: int
    applied: int
    state: str = CATCHING_UP
    sub: Subscription | None = None
    results: OrderedDict[int, dict[str, Any]] = field(default_factory=OrderedDict)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    ops_applied: int = 0
    halted: bool = False  # an op failed to apply: this copy stops (ClusterNode._apply)

    async def wait(self, seq: int, timeout: float) -> None:
        if self.applied >= seq:
            return
        async with self.changed:
            try:
                await asyncio.wait_for(self.changed.wait_for(lambda: self.applied >= seq), timeout)
            except TimeoutError:
                raise RpcError("UNAVAILABLE", NOT_APPLIED.format(shard=self.shard, seq=seq, timeout=timeout)) from None


class ClusterNode:
    def __init__(self, config: Config, engine: Engine, registry: Registry, metrics: Metrics) -> None:
        self.config = config
        self.engine = engine
        self.registry = registry
        self.node_id = config.cluster_node_id
        key = crypto.resolve_key(config.encryption_key_bytes(), config.encryption_key_file, create=False)
        self.log = OpLog(config, key)
        self.control = ControlPlane(config, self._on_map, self._on_lease_lost, self.log.last_seqs, self.progress)
        self.replicas: dict[int, ShardReplica] = {}
        self.system: ShardReplica | None = None
        self._rpc_subs: dict[int, Subscription] = {}
        self._map_lock = asyncio.Lock()
        self._pending_map: ShardMap | None = None
        self._map_task: asyncio.Task[None] | None = None
        self.shards = config.cluster_shards
        self._answering: set[asyncio.Task[None]] = set()
        # The last op of each shard acknowledged through this node: its reads wait for it, so a
        # client that keeps to one node reads its writes even without sending tokens back.
        self.acknowledged: dict[int, int] = {}
        self.metrics = metrics.enable_cluster()
        self.started = False
        self.draining = False

    # --- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        await self.log.connect()
        await self.log.ensure_streams(self.shards, loop.time() + 30)
        self.system = await self._open_replica(SYSTEM_SHARD)
        self.system.state = SERVING
        try:
            await asyncio.wait_for(self.control.start(), 30)
        except Exception as exc:
            raise RuntimeError(
                f"cannot join the cluster through etcd at {', '.join(self.config.cluster_etcd)}: "
                f"{type(exc).__name__}: {exc}"
            ) from None
        self.started = True

    async def stop(self) -> None:
        """Leave the cluster: revoke the lease (the controller moves our shards at once)."""
        self.draining = True
        await self.control.stop(leave=True)
        for sub in list(self._rpc_subs.values()):
            await _unsubscribe(sub)
        for r in [*self.replicas.values(), *([self.system] if self.system else [])]:
            if r.sub is not None:
                await _unsubscribe(r.sub)
        await self.log.close()

    def progress(self) -> dict[int, int]:
        self.metrics.lease.set(1 if self.control.lease_fresh() else 0)
        return {s: r.applied for s, r in self.replicas.items()}

    def serving(self, shard: int) -> bool:
        r = self.replicas.get(shard)
        return r is not None and r.state == SERVING and self.control.lease_fresh()

    # --- following the map ---------------------------------------------------------------------
    def _on_map(self, m: ShardMap) -> None:
        self.shards = m.shards
        self._pending_map = m
        if self._map_task is None or self._map_task.done():
            self._map_task = asyncio.create_task(self._apply_maps())

    def _on_lease_lost(self) -> None:
        for r in self.replicas.values():  # serve nothing under the lost incarnation
            if r.state == SERVING:
                r.state = CATCHING_UP
        # With no incarnation the map gives this node no shard: adopting it drops them all (their
        # data stays; a shard given back resumes from its applied mark).
        self._pending_map = self.control.map
        if self._map_task is None or self._map_task.done():
            self._map_task = asyncio.create_task(self._apply_maps())

    async def _apply_maps(self) -> None:
        delay = 0.2
        while self._pending_map is not None:
            m, self._pending_map = self._pending_map, None
            try:
                await self._adopt(m)
                delay = 0.2
            except Exception as exc:
                # JetStream or etcd briefly unavailable (a leader election, a healed partition):
                # adopt again, the newest map if one came meanwhile, until it takes.
                log.warning("could not adopt shard map epoch %d yet (%s); retrying", m.epoch, exc)
                if self.draining:
                    return
                self._pending_map = self._pending_map or m
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def _adopt(self, m: ShardMap) -> None:
        mine = m.shards_of(self.node_id, self.control.incarnation) if self.control.incarnation else {}
        for s, state in mine.items():
            r = self.replicas.get(s)
            if r is None:
                r = self.replicas[s] = await self._open_replica(s)
            r.state = CATCHING_UP if r.halted else state
            if r.state == SERVING and s not in self._rpc_subs:
                self._rpc_subs[s] = await self._serve_subject(s)
            elif r.state != SERVING and s in self._rpc_subs:
                await _unsubscribe(self._rpc_subs.pop(s))
        for s in [s for s in self.replicas if s not in mine]:
            r = self.replicas.pop(s)
            if s in self._rpc_subs:
                await _unsubscribe(self._rpc_subs.pop(s))
            if r.sub is not None:
                await _unsubscribe(r.sub)
        self.metrics.serving.set(sum(1 for r in self.replicas.values() if r.state == SERVING))
        self.metrics.epoch.set(m.epoch)
        await self.control.report_progress_now()

    # --- applying the log ----------------------------------------------------------------------
    async def _open_replica(self, shard: int) -> ShardReplica:
        raw = await asyncio.get_running_loop().run_in_executor(
            self.engine.executor, self.engine.storage.get, CF_META, applied_key(shard)
        )
        r = ShardReplica(shard, int(raw) if raw else 0)

        async def on_msg(msg: Msg) -> None:
            await self._apply(r, msg)

        r.sub = await self.log.follow(shard, r.applied, on_msg)
        return r

    async def _apply(self, r: ShardReplica, msg: Msg) -> None:
        seq = int(msg.metadata.sequence.stream)
        if seq <= r.applied or r.halted:
            return  # already in RocksDB (a redelivery after a reconnect), or stopped
        mark = (applied_key(r.shard), str(seq).encode())
        try:
            op = self.log.open(r.shard, msg.data)
            result = await self._execute(op, mark)
            # Ops that changed nothing (an error, a no-op) still move the applied mark.
            await asyncio.get_running_loop().run_in_executor(self.engine.executor, self._write_mark, mark)
        except Exception:
            # An op this node cannot read (another encryption key, damage) or apply: stop this
            # shard here rather than skip it; the shard's other owners go on, and this copy
            # neither serves nor reports progress past the op until an operator looks.
            log.critical(
                "shard %d: op %d cannot be applied on node %s (is every node on the same encryption key?); "
                "this node stops applying the shard",
                r.shard,
                seq,
                self.node_id,
                exc_info=True,
            )
            r.halted = True
            r.state = CATCHING_UP
            return
        r.results[seq] = {"op": op.op_id, **result}
        while len(r.results) > RESULTS_KEPT:
            r.results.popitem(last=False)
        async with r.changed:
            r.applied = seq
            r.ops_applied += 1
            r.changed.notify_all()
        label = "sys" if r.shard == SYSTEM_SHARD else str(r.shard)
        self.metrics.applied.labels(label).inc()
        self.metrics.applied_sequence.labels(label).set(seq)
        self.metrics.lag.labels(label).set(int(msg.metadata.num_pending or 0))

    def _write_mark(self, mark: tuple[bytes, bytes]) -> None:
        b = self.engine.storage.batch()
        b.put(CF_META, *mark)
        self.engine.storage.write(b)

    async def _execute(self, op: Op, mark: tuple[bytes, bytes]) -> dict[str, Any]:
        """Run the op's method as a single node would, under the op's clock and ids."""
        method = self.registry.get(op.method)
        ctx = CallContext(method=method.info, transport="cluster", principal=principal_of(op.principal))
        requests = [method.request_cls.FromString(b) for b in op.requests]
        with clock.replaying(clock.Replay(ts=op.ts, seed=op.op_id.encode(), mark=mark, secret=op.secret)):
            try:
                if method.info.client_streaming:

                    async def stream() -> AsyncIterator[Message]:
                        for q in requests:
                            yield q

                    resp = await method.local(stream(), ctx)
                else:
                    resp = await method.local(requests[0], ctx)
                return {"ok": base64.b64encode(resp.SerializeToString()).decode()}
            except RpcError as exc:
                return {"err": error_json(exc)}

    async def result(self, shard: int, seq: int, op_id: str, method: Method) -> Message:
        """The result of the op at seq, from this node's replica or from a serving owner."""
        # From this node's copy when it serves the shard (or the key log, which every node applies);
        # a copy still catching up may be far behind: a serving owner answers instead.
        r = self.system if shard == SYSTEM_SHARD else (self.replicas.get(shard) if self.serving(shard) else None)
        if r is not None:
            await r.wait(seq, APPLY_WAIT_SECONDS)
            got = r.results.get(seq)
            if got is None or got["op"] != op_id:
                raise RpcError("UNAVAILABLE", f"the result of shard {shard} op {seq} is no longer kept; read to check")
        else:
            got = await self._forward(shard, {"kind": "result", "seq": seq, "op": op_id})
        return _decode_result(got, method)

    # --- routing -------------------------------------------------------------------------------
    def wrap(self, method: Method) -> Callable[..., Any]:
        handler = method.local
        kind = ROUTES.get(method.info.name, LOCAL)
        if method.info.name == "GetClusterStatus":

            async def status(req: Message, ctx: CallContext) -> Message:
                return await self.status()

            return status
        if method.info.name == "DrainClusterNode":
            return self.drain
        if kind == LOCAL:
            return handler

        async def routed(req: Any, ctx: CallContext) -> Any:
            return await self.call(method, req, ctx)

        return routed

    async def call(self, method: Method, req: Any, ctx: CallContext) -> Any:
        name = method.info.name
        kind = ROUTES[name]
        if name == "ConsolidateMemories" and req.dry_run:
            kind = READ
        if kind == SYSTEM_WRITE:
            return await self._write(method, SYSTEM_SHARD, "", [req], ctx)
        if kind == FAN_OUT:
            return await self._list_agents(method, req, ctx)
        if method.info.client_streaming:
            return await self._import(method, req, ctx)
        if name == "BatchRecall":
            return await self._batch_recall(method, req, ctx)
        agent = await self._agent(name, req, ctx)
        ctx.who.require_agent(agent)  # before routing: the same answer whichever node is asked
        ctx.note_agent(agent)
        shard = shard_of(agent, self.shards)
        if name == "StoreMemory":
            v.store_request(req, self.config, clock.now())
            _refuse_near_duplicates(req)
        elif name == "BatchStoreMemories":
            now = clock.now()
            for i, item in enumerate(req.requests):
                v.store_request(item, self.config, now, f"requests[{i}].")
            _refuse_near_duplicates(req)
        if kind == WRITE:
            return await self._write(method, shard, agent, [req], ctx)
        return await self._read(method, shard, req, ctx)

    async def _agent(self, name: str, req: Any, ctx: CallContext) -> str:
        """The agent a call acts on; for a by-id call without one, the agent that has the id."""
        if name == "BatchStoreMemories":
            v.batch(req.requests, self.config, "requests")
            agent = req.requests[0].agent_id
        else:
            agent = req.agent_id
        if agent:
            v.agent_id(agent)
            return str(agent)
        memory_id = req.memory.id if name == "UpdateMemory" else getattr(req, "id", "")
        if not memory_id:
            raise invalid("agent_id", "required")
        v.memory_id(memory_id)
        owners: set[str] = set()
        replies = await asyncio.gather(
            *(
                self._forward(s, {"kind": "owners", "id": memory_id, "wait": self.acknowledged.get(s, 0)})
                for s in range(self.shards)
            ),
            return_exceptions=True,
        )
        for got in replies:
            if isinstance(got, BaseException):
                raise got if isinstance(got, RpcError) else RpcError("UNAVAILABLE", "a shard did not answer; retry")
            owners.update(a for a in got["agents"] if ctx.who.may_access_agent(a))
        if not owners:
            raise RpcError("NOT_FOUND", f"memory {memory_id} not found")
        if len(owners) > 1:
            raise invalid("agent_id", f"memory id {memory_id} exists in {len(owners)} agents; name the agent")
        agent = owners.pop()
        req.agent_id = agent
        return agent

    async def _write(self, method: Method, shard: int, agent: str, reqs: list[Message], ctx: CallContext) -> Message:
        # Authorization and the checks that need no state run here, before anything is logged.
        if agent:
            ctx.who.require_agent(agent)
            ctx.note_agent(agent)
        op = Op.new(
            method.info.path, [q.SerializeToString() for q in reqs], principal_json(ctx.who), clock.now(), agent
        )
        token = agent_key(agent) if agent else "keys"
        t0 = time.perf_counter()
        seq = await self.log.publish(shard, token, "op", op)
        self.metrics.publish.observe(time.perf_counter() - t0)
        self.metrics.routed.labels("logged").inc()
        ctx.response_token = merge_token(
            ctx.response_token or ctx.consistency_token, "sys" if shard == SYSTEM_SHARD else str(shard), seq
        )
        self.acknowledged[shard] = max(self.acknowledged.get(shard, 0), seq)
        return await self.result(shard, seq, op.op_id, method)

    async def _import(self, method: Method, stream: AsyncIterator[Any], ctx: CallContext) -> Message:
        """An import stream may name several agents: it is checked whole first (nothing is logged
        from a stream with a bad message), then logged as one op per shard and bounded size."""
        per_shard: dict[int, list[list[Any]]] = {}
        sizes: dict[int, int] = {}
        now = clock.now()
        index = 0
        async for msg in stream:
            target = v.import_message(msg, self.config, now, index)
            ctx.who.require_agent(target)
            ctx.note_agent(target)
            s = shard_of(target, self.shards)
            chunks = per_shard.setdefault(s, [[]])
            size = msg.ByteSize()
            if chunks[-1] and sizes.get(s, 0) + size > IMPORT_OP_BYTES:
                chunks.append([])
                sizes[s] = 0
            chunks[-1].append(msg)
            sizes[s] = sizes.get(s, 0) + size
            index += 1

        async def shard_ops(s: int, chunks: list[list[Any]]) -> list[Any]:
            out: list[Any] = []
            for chunk in chunks:  # in order: an agent's memories keep the stream's order
                agent = chunk[0].agent_id or chunk[0].memory.agent_id
                out.append(await self._write(method, s, agent, chunk, ctx))
            return out

        results = await asyncio.gather(*(shard_ops(s, c) for s, c in per_shard.items()))
        total = pb.ImportMemoriesResponse()
        for replies in results:
            for r in replies:
                total.imported_count += r.imported_count
                total.skipped_count += r.skipped_count
        return total

    async def _read(self, method: Method, shard: int, req: Any, ctx: CallContext) -> Any:
        wait = max(_token_seq(ctx.consistency_token, shard), self.acknowledged.get(shard, 0))
        self.metrics.routed.labels("local" if self.serving(shard) else "forwarded").inc()
        if self.serving(shard):
            await self.replicas[shard].wait(wait, APPLY_WAIT_SECONDS)
            return await method.local(req, ctx)
        if method.info.name == "WatchMemories":
            owners = [o.node for o in (self.control.map.serving(shard) if self.control.map else [])]
            raise RpcError(
                "FAILED_PRECONDITION",
                "in cluster mode WatchMemories is served by the owners of the agent's shard "
                f"({', '.join(owners) or 'none now'}); send it to one of them "
                "(GET /v1/cluster/status lists their addresses)",
            )
        body = {
            "kind": "call",
            "m": method.info.path,
            "r": base64.b64encode(req.SerializeToString()).decode(),
            "p": principal_json(ctx.who),
            "wait": wait,
        }
        got = await self._forward(shard, body)
        if method.info.server_streaming:
            msgs = [_decode_result({"ok": b}, method) for b in got["stream"]]

            async def replay() -> AsyncIterator[Message]:
                for m in msgs:
                    yield m

            return replay()
        return _decode_result(got, method)

    async def _batch_recall(self, method: Method, req: Any, ctx: CallContext) -> Any:
        v.batch(req.requests, self.config, "requests")
        recall = self.registry.get("/engram.v1.MemoryService/Recall")
        out = pb.BatchRecallResponse()
        for i, q in enumerate(req.requests):
            v.agent_id(q.agent_id, f"requests[{i}].agent_id")
        answers = await asyncio.gather(
            *(self._read(recall, shard_of(q.agent_id, self.shards), q, ctx) for q in req.requests)
        )
        for a in answers:
            out.responses.add().CopyFrom(a)
        return out

    async def _list_agents(self, method: Method, req: Any, ctx: CallContext) -> Any:
        """Every shard's agents, merged in id order; the page token is the last id returned."""
        size = req.page_size or 50
        if not 0 < size <= self.config.max_page_size:
            raise invalid("page_size", f"must be 1 to {self.config.max_page_size}")
        after = ""
        if req.page_token:
            try:
                after = base64.urlsafe_b64decode(req.page_token.encode()).decode()
            except ValueError:
                raise invalid("page_token", "is not a token this server returned") from None
        replies = await asyncio.gather(
            *(
                self._forward(
                    s,
                    {
                        "kind": "agents",
                        "p": principal_json(ctx.who),
                        "wait": max(_token_seq(ctx.consistency_token, s), self.acknowledged.get(s, 0)),
                    },
                )
                for s in range(self.shards)
            )
        )
        agents: list[pb.Agent] = []
        for got in replies:
            agents.extend(pb.Agent.FromString(base64.b64decode(a)) for a in got["agents"])
        agents.sort(key=lambda a: a.agent_id)
        out = pb.ListAgentsResponse(total_size=len(agents))
        page = [a for a in agents if a.agent_id > after][:size]
        out.agents.extend(page)
        if page and page[-1].agent_id != agents[-1].agent_id:
            out.next_page_token = base64.urlsafe_b64encode(page[-1].agent_id.encode()).decode()
        return out

    # --- between nodes ---------------------------------------------------------------------------
    async def _forward(self, shard: int, body: dict[str, Any]) -> dict[str, Any]:
        """Ask a serving owner of the shard (NATS picks one of the queue group)."""
        assert self.log.nc is not None
        loop = asyncio.get_running_loop()
        # While owners change (a node died, the map moves) a shard may have no serving owner for
        # about a lease's time: retry within that bound, then answer UNAVAILABLE.
        deadline = loop.time() + self.config.cluster_lease_ttl + 2 * FORWARD_TIMEOUT_SECONDS
        if body["kind"] == "result":
            deadline = max(deadline, loop.time() + APPLY_WAIT_SECONDS)
        delay = 0.05
        while True:
            if self.serving(shard):
                return await self._answer(shard, body)
            try:
                msg = await self.log.nc.request(
                    f"engram.rpc.{shard:04d}", orjson.dumps(body), timeout=FORWARD_TIMEOUT_SECONDS
                )
                got: dict[str, Any] = orjson.loads(msg.data)
                err = got.get("err")
                if err is None:
                    return got
                if not err.get("retry"):
                    raise error_of(err)
                failure = err["message"]
            except RpcError:
                raise
            except Exception as exc:
                failure = type(exc).__name__
            if loop.time() + delay > deadline:
                raise RpcError("UNAVAILABLE", f"no serving owner of shard {shard} answered ({failure}); retry")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)

    async def _serve_subject(self, shard: int) -> Subscription:
        assert self.log.nc is not None

        async def on_request(msg: Msg) -> None:
            try:
                reply = await self._answer(shard, orjson.loads(msg.data))
            except RpcError as exc:
                # Not serving (any more) or not caught up yet: the caller may ask again.
                retry = exc.code == "UNAVAILABLE"
                reply = {"err": {**error_json(exc), "retry": retry}}
            except Exception:
                log.exception("forwarded call failed")
                reply = {"err": error_json(RpcError("INTERNAL", "the owner node failed to answer"))}
            await msg.respond(orjson.dumps(reply))

        # Each request is answered in its own task: a slow call must not hold up the others.
        async def dispatch(msg: Msg) -> None:
            task = asyncio.create_task(on_request(msg))
            self._answering.add(task)
            task.add_done_callback(self._answering.discard)

        return await self.log.nc.subscribe(f"engram.rpc.{shard:04d}", queue=f"q{shard:04d}", cb=dispatch)

    async def _answer(self, shard: int, body: dict[str, Any]) -> dict[str, Any]:
        kind = body["kind"]
        r = self.replicas.get(shard)
        if r is None or not self.serving(shard):
            raise RpcError("UNAVAILABLE", NOT_SERVING.format(shard=shard))
        if kind == "result":
            await r.wait(int(body["seq"]), OWNER_WAIT_SECONDS)
            got = r.results.get(int(body["seq"]))
            if got is None or got["op"] != body["op"]:
                raise RpcError("UNAVAILABLE", f"the result of shard {shard} op {body['seq']} is no longer kept")
            return got
        if kind == "owners":
            await r.wait(int(body.get("wait", 0)), OWNER_WAIT_SECONDS)
            owners = await asyncio.get_running_loop().run_in_executor(
                self.engine.executor, self.engine.owners, body["id"]
            )
            return {"agents": [a for a in owners if shard_of(a, self.shards) == shard]}
        if kind == "agents":
            await r.wait(int(body.get("wait", 0)), OWNER_WAIT_SECONDS)
            p = principal_of(body["p"])
            agents = await asyncio.get_running_loop().run_in_executor(self.engine.executor, self._agents_of, shard, p)
            return {"agents": agents}
        # "call": a read of one agent
        await r.wait(int(body.get("wait", 0)), OWNER_WAIT_SECONDS)
        method = self.registry.get(body["m"])
        ctx = CallContext(method=method.info, transport="cluster", principal=principal_of(body["p"]))
        req = method.request_cls.FromString(base64.b64decode(body["r"]))
        resp = await method.local(req, ctx)
        if method.info.server_streaming:
            return {"stream": [base64.b64encode(m.SerializeToString()).decode() async for m in resp]}
        return {"ok": base64.b64encode(resp.SerializeToString()).decode()}

    def _agents_of(self, shard: int, p: Principal) -> list[str]:
        from ..service import convert as cv

        out: list[str] = []
        token = ""
        while True:
            infos, token, _ = self.engine.list_agents(1000, token)
            for info in infos:
                if shard_of(info.agent_id, self.shards) == shard and p.may_access_agent(info.agent_id):
                    a = pb.Agent()
                    cv.fill_agent(a, info)
                    out.append(base64.b64encode(a.SerializeToString()).decode())
            if not token:
                return out

    async def drain(self, req: pb.DrainClusterNodeRequest, ctx: CallContext) -> pb.DrainClusterNodeResponse:
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", req.node_id):
            raise invalid("node_id", "must be a node id: 1 to 64 characters of [A-Za-z0-9_-]")
        if await self.control.drain(req.node_id) is None:
            raise RpcError("NOT_FOUND", f"no live cluster node {req.node_id!r}")
        st = await self.status()
        out = pb.DrainClusterNodeResponse()
        for n in st.nodes:
            if n.node_id == req.node_id:
                out.node.CopyFrom(n)
                out.node.role = "draining"
        return out

    # --- status ----------------------------------------------------------------------------------
    async def status(self) -> pb.GetClusterStatusResponse:
        c = self.control
        m = c.map
        out = pb.GetClusterStatusResponse(
            mode="cluster",
            node_id=self.node_id,
            replication_factor=self.config.cluster_replication if m is None else m.replication,
            shard_count=self.shards,
            shard_map_epoch=m.epoch if m else 0,
        )
        # Every question at once, each bounded: the status answers within STATUS_SECONDS even
        # while a part of the cluster does not (a partition, a stream without a leader).
        got = await asyncio.gather(
            asyncio.wait_for(c.nodes(), STATUS_SECONDS),
            asyncio.wait_for(c.all_progress(), STATUS_SECONDS),
            asyncio.wait_for(self.log.last_seqs(self.shards), STATUS_SECONDS),
            asyncio.wait_for(c.status(), STATUS_SECONDS),
            asyncio.wait_for(self.log.stream_info(SYSTEM_SHARD), STATUS_SECONDS),
            return_exceptions=True,
        )
        nodes, progress, last, control, info = (None if isinstance(g, BaseException) else g for g in got)
        control = control or {"members": 0, "leader": "", "healthy": False}
        out.control.engine, out.control.members, out.control.leader = "etcd", control["members"], control["leader"]
        out.control.healthy = bool(control["healthy"]) and nodes is not None
        out.log.engine = "nats-jetstream"
        out.log.healthy = last is not None and info is not None and self.log.connected
        if info is not None and info.cluster:
            out.log.leader = info.cluster.leader or ""
            out.log.members = 1 + len(info.cluster.replicas or [])
        nodes, progress, last = nodes or {}, progress or {}, last or {}
        ids = sorted(set(nodes) | {o.node for lst in (m.owners.values() if m else []) for o in lst})
        for nid in ids:
            n = out.nodes.add(node_id=nid, address=nodes.get(nid, {}).get("url", ""))
            n.healthy = nid in nodes
            n.role = "controller" if nid == c.controller_id else "member"
            lag = 0
            for s, lst in sorted((m.owners if m else {}).items()):
                for o in lst:
                    if o.node != nid:
                        continue
                    (n.serving_shards if o.state == SERVING else n.catching_up_shards).append(s)
                    lag = max(lag, last.get(s, 0) - progress.get(nid, {}).get(s, 0))
            n.max_lag = max(lag, 0)
        for s in range(self.shards):
            sh = out.shards.add(shard=s, last_sequence=last.get(s, 0))
            for o in m.owners.get(s, []) if m else []:
                sh.owners.add(node_id=o.node, state=o.state, applied_sequence=progress.get(o.node, {}).get(s, 0))
        out.node_count = len(ids)
        out.healthy_node_count = sum(1 for n in out.nodes if n.healthy)
        out.healthy = bool(
            m is not None and m.healthy() and out.log.healthy and out.control.healthy and self.control.lease_fresh()
        )
        return out


MAX_TOKEN_CHARS = 8192


def _refuse_near_duplicates(req: Any) -> None:
    """Near-duplicate detection looks candidates up in the approximate vector index, whose graphs
    each owner builds on its own schedule: two owners could decide one write differently. Until
    that search is exact on replay, cluster mode refuses it rather than let owners diverge."""
    items = req.requests if hasattr(req, "requests") else [req]
    for i, item in enumerate(items):
        if item.duplicate_policy == pb.DUPLICATE_POLICY_NEAR:
            where = f"requests[{i}].duplicate_policy" if hasattr(req, "requests") else "duplicate_policy"
            raise RpcError(
                "FAILED_PRECONDITION",
                f"{where}: DUPLICATE_POLICY_NEAR is not available in cluster mode (owners must decide every "
                "write alike); use DUPLICATE_POLICY_EXACT, or ConsolidateMemories to merge near duplicates",
            )


def parse_token(token: str) -> dict[str, int]:
    """A consistency token: `<shard>:<sequence>` entries joined by commas (`sys` is the key log).
    Anything else in it is ignored: a token is a hint to wait, never an input that can fail a call."""
    out: dict[str, int] = {}
    for part in token[:MAX_TOKEN_CHARS].split(","):
        s, _, seq = part.strip().partition(":")
        if seq.isdigit() and len(seq) <= 19 and (s.isdigit() or s == "sys"):
            out[s] = max(out.get(s, 0), int(seq))
    return out


def merge_token(token: str, shard: str, seq: int) -> str:
    """The caller's token with this write added: a client that sends back the last token it got
    reads its own writes on every shard it wrote to."""
    entries = parse_token(token)
    entries[shard] = max(entries.get(shard, 0), seq)
    return ",".join(f"{s}:{q}" for s, q in sorted(entries.items(), key=lambda e: (e[0] == "sys", e[0].zfill(8))))


def _token_seq(token: str, shard: int) -> int:
    """The sequence a read of the shard must wait for."""
    return parse_token(token).get(str(shard), 0) if token else 0


def _decode_result(got: dict[str, Any], method: Method) -> Message:
    if "err" in got:
        raise error_of(got["err"])
    return method.response_cls.FromString(base64.b64decode(got["ok"]))


async def _unsubscribe(sub: Subscription) -> None:
    with contextlib.suppress(Exception):
        await sub.unsubscribe()
