"""MemoryService: store, recall and manage memories; consolidate them; watch their changes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator

from .. import pb
from ..engine import clock
from ..engine import models as m
from ..errors import RpcError, invalid
from . import convert as cv
from . import validation as v
from .base import CallContext, ServiceBase

UPDATABLE = ("content", "memory_type", "importance", "tags", "metadata", "session_id", "event_time", "expires_at")
EXPORT_CHUNK = 64
IMPORT_CHUNK = 128
WATCH_BATCH = 256  # most events in one WatchMemoriesResponse
WATCH_HEARTBEAT_SECONDS = 15.0  # a response (maybe empty) at least this often
WATCH_STOP_CHECK_SECONDS = 1.0  # how soon a watch ends once the server is stopping


class MemoryService(ServiceBase):
    # --- store ----------------------------------------------------------------------------
    def _new_memory(self, req: pb.StoreMemoryRequest, now: float) -> m.NewMemory:
        policy = m.DuplicatePolicy(self.config.duplicate_policy)
        return cv.new_memory_from_pb(req, now, policy, self.config.duplicate_threshold)

    async def store_memory(self, req: pb.StoreMemoryRequest, ctx: CallContext) -> pb.StoreMemoryResponse:
        now = clock.now()
        v.store_request(req, self.config, now)
        ctx.who.require_agent(req.agent_id)
        ctx.note_agent(req.agent_id)
        ((mem, outcome),) = await self.run(self.engine.store_batch, [self._new_memory(req, now)])
        self.metrics.stored(1)
        out = pb.StoreMemoryResponse(created=outcome is m.StoreOutcome.CREATED, outcome=cv.STORE_OUTCOME_TO_PB[outcome])
        cv.fill_memory(out.memory, mem)
        return out

    async def batch_store_memories(
        self, req: pb.BatchStoreMemoriesRequest, ctx: CallContext
    ) -> pb.BatchStoreMemoriesResponse:
        v.batch(req.requests, self.config, "requests")
        now = clock.now()
        first = req.requests[0].agent_id
        seen: set[str] = set()
        seen_keys: set[str] = set()
        for i, item in enumerate(req.requests):
            v.store_request(item, self.config, now, f"requests[{i}].")
            if item.agent_id != first:
                raise invalid(f"requests[{i}].agent_id", "every memory of a batch must have the same agent_id")
            if item.id:
                if item.id in seen:
                    raise invalid(f"requests[{i}].id", f"id {item.id} appears twice in the batch")
                seen.add(item.id)
            if item.key:
                if item.key in seen_keys:
                    raise invalid(f"requests[{i}].key", f"key {item.key!r} appears twice in the batch")
                seen_keys.add(item.key)
        ctx.who.require_agent(first)
        ctx.note_agent(first)
        results = await self.run(self.engine.store_batch, [self._new_memory(r, now) for r in req.requests])
        self.metrics.stored(len(results))
        out = pb.BatchStoreMemoriesResponse(
            created_count=sum(1 for _, outcome in results if outcome is m.StoreOutcome.CREATED)
        )
        for mem, outcome in results:
            cv.fill_memory(out.memories.add(), mem)
            out.outcomes.append(cv.STORE_OUTCOME_TO_PB[outcome])
        return out

    # --- by id ----------------------------------------------------------------------------
    async def get_memory(self, req: pb.GetMemoryRequest, ctx: CallContext) -> pb.GetMemoryResponse:
        v.memory_id(req.id)
        agent = await self.agent_of(ctx, req.id, req.agent_id)
        mem = await self.run(self.engine.get, agent, req.id)
        out = pb.GetMemoryResponse()
        cv.fill_memory(out.memory, mem)
        return out

    async def update_memory(self, req: pb.UpdateMemoryRequest, ctx: CallContext) -> pb.UpdateMemoryResponse:
        if not req.HasField("memory"):
            raise invalid("memory", "required")
        msg = req.memory
        v.memory_id(msg.id, "memory.id")
        now = clock.now()
        v.ttl_seconds(req.ttl_seconds, now)
        paths = self._mask(req)
        patch = m.MemoryPatch()
        for path in paths:
            if path == "content":
                v.content(msg.content, self.config, "memory.content")
                patch.content = msg.content
            elif path == "memory_type":
                v.enum_value(pb.MemoryType, msg.memory_type, "memory.memory_type")
                patch.memory_type = cv.MEMORY_TYPE_TO_ENGINE[msg.memory_type]
            elif path == "importance":
                patch.importance = v.unit_interval(msg.importance, "memory.importance")
            elif path == "tags":
                v.tags(msg.tags, self.config, "memory.tags")
                patch.tags = list(dict.fromkeys(msg.tags))
            elif path == "metadata":
                v.metadata(msg.metadata, self.config, "memory.metadata")
                patch.metadata = cv.struct_to_dict(msg.metadata)
            elif path == "session_id":
                v.session_id(msg.session_id, "memory.session_id")
                patch.session_id = msg.session_id
            elif path == "event_time":
                patch.event_time = v.optional_timestamp(msg, "event_time", "memory.event_time")
            elif path == "expires_at":
                # Unset clears the expiry; set, it must be a time the API can express.
                patch.expires_at = v.optional_timestamp(msg, "expires_at", "memory.expires_at") or 0.0
        if req.ttl_seconds:
            if "expires_at" in paths:
                raise invalid("ttl_seconds", "ttl_seconds and expires_at are exclusive")
            patch.expires_at = now + req.ttl_seconds
        if not paths and not req.ttl_seconds:
            raise invalid("update_mask", "nothing to update: set update_mask or a field of memory")
        agent = await self.agent_of(ctx, msg.id, req.agent_id)
        mem = await self.run(self.engine.update, agent, msg.id, patch)
        out = pb.UpdateMemoryResponse()
        cv.fill_memory(out.memory, mem)
        return out

    @staticmethod
    def _mask(req: pb.UpdateMemoryRequest) -> list[str]:
        if req.HasField("update_mask") and req.update_mask.paths:
            out: list[str] = []
            for p in req.update_mask.paths:
                name = p.removeprefix("memory.")
                if name not in UPDATABLE:
                    raise invalid("update_mask", f"{p!r} cannot be updated; updatable: {', '.join(UPDATABLE)}")
                if name not in out:
                    out.append(name)
            return out
        msg = req.memory
        present = {
            "content": bool(msg.content),
            "memory_type": msg.memory_type != pb.MEMORY_TYPE_UNSPECIFIED,
            "importance": msg.importance != 0,
            "tags": bool(msg.tags),
            "metadata": msg.HasField("metadata"),
            "session_id": bool(msg.session_id),
            "event_time": msg.HasField("event_time"),
            "expires_at": msg.HasField("expires_at"),
        }
        return [k for k in UPDATABLE if present[k]]

    async def delete_memory(self, req: pb.DeleteMemoryRequest, ctx: CallContext) -> pb.DeleteMemoryResponse:
        v.memory_id(req.id)
        agent = await self.agent_of(ctx, req.id, req.agent_id)
        mem = await self.run(self.engine.delete, agent, req.id)
        return pb.DeleteMemoryResponse(id=mem.id)

    async def get_memory_history(
        self, req: pb.GetMemoryHistoryRequest, ctx: CallContext
    ) -> pb.GetMemoryHistoryResponse:
        v.memory_id(req.id)
        agent = await self.agent_of(ctx, req.id, req.agent_id)
        versions = await self.run(self.engine.history, agent, req.id)
        out = pb.GetMemoryHistoryResponse()
        for x in versions:
            cv.fill_memory(out.versions.add(), x)
        return out

    # --- list, recall, forget -------------------------------------------------------------
    async def list_memories(self, req: pb.ListMemoriesRequest, ctx: CallContext) -> pb.ListMemoriesResponse:
        v.agent_id(req.agent_id)
        size = v.page_size(req.page_size, self.config)
        order = v.order_by(req.order_by)
        v.memory_filter(req.filter, self.config)
        ctx.who.require_agent(req.agent_id)
        ctx.note_agent(req.agent_id)
        page = await self.run(
            self.engine.list_memories, req.agent_id, cv.filter_from_pb(req.filter), size, req.page_token, order
        )
        out = pb.ListMemoriesResponse(next_page_token=page.next_page_token, total_size=page.total_size)
        for x in page.memories:
            cv.fill_memory(out.memories.add(), x)
        return out

    def _query(self, req: pb.RecallRequest, prefix: str, ctx: CallContext) -> m.RecallQuery:
        top_k = v.recall_request(req, self.config, prefix)
        ctx.who.require_agent(req.agent_id)
        return m.RecallQuery(
            agent_id=req.agent_id,
            query=req.query,
            top_k=top_k,
            filter=cv.filter_from_pb(req.filter),
            mode=cv.RECALL_MODE_TO_ENGINE[req.mode],
            explain=req.explain,
            include_associated=req.include_associated,
            min_score=req.min_score,
        )

    async def recall(self, req: pb.RecallRequest, ctx: CallContext) -> pb.RecallResponse:
        q = self._query(req, "", ctx)
        ctx.note_agent(req.agent_id)
        res = await self.run(self.engine.recall, q)
        self.metrics.recalled(1)
        return cv.recall_result_to_pb(res)

    async def batch_recall(self, req: pb.BatchRecallRequest, ctx: CallContext) -> pb.BatchRecallResponse:
        v.batch(req.requests, self.config, "requests")
        queries = [self._query(r, f"requests[{i}].", ctx) for i, r in enumerate(req.requests)]
        ctx.note_agent(req.requests[0].agent_id)
        results = await self.run(self.engine.recall_batch, queries)
        self.metrics.recalled(len(results))
        out = pb.BatchRecallResponse()
        for r in results:
            out.responses.append(cv.recall_result_to_pb(r))
        return out

    async def forget_memories(self, req: pb.ForgetMemoriesRequest, ctx: CallContext) -> pb.ForgetMemoriesResponse:
        v.agent_id(req.agent_id)
        v.memory_filter(req.filter, self.config)
        flt = cv.filter_from_pb(req.filter)
        if flt.is_empty():
            raise invalid("filter", "must not be empty (use AgentService.DeleteAgent to erase an agent)")
        ctx.who.require_agent(req.agent_id)
        ctx.note_agent(req.agent_id)
        res = await self.run(self.engine.forget, req.agent_id, flt, req.dry_run)
        return pb.ForgetMemoriesResponse(
            matched_count=res.matched, deleted_count=res.deleted, ids=res.ids, dry_run=req.dry_run
        )

    # --- graph ----------------------------------------------------------------------------
    def _link_ids(self, req: pb.LinkMemoriesRequest | pb.UnlinkMemoriesRequest, ctx: CallContext) -> None:
        v.agent_id(req.agent_id)
        v.memory_id(req.source_id, "source_id")
        v.memory_id(req.target_id, "target_id")
        ctx.who.require_agent(req.agent_id)
        ctx.note_agent(req.agent_id)

    async def link_memories(self, req: pb.LinkMemoriesRequest, ctx: CallContext) -> pb.LinkMemoriesResponse:
        self._link_ids(req, ctx)
        if req.source_id == req.target_id:
            raise invalid("target_id", "must differ from source_id")
        relation = v.relation(req.relation)
        weight = v.unit_interval(req.weight, "weight") if req.HasField("weight") else 1.0
        link = await self.run(self.engine.link, req.agent_id, req.source_id, req.target_id, relation, weight)
        out = pb.LinkMemoriesResponse()
        cv.fill_link(out.link, link)
        return out

    async def unlink_memories(self, req: pb.UnlinkMemoriesRequest, ctx: CallContext) -> pb.UnlinkMemoriesResponse:
        self._link_ids(req, ctx)
        relation = v.relation(req.relation) if req.relation else ""
        n = await self.run(self.engine.unlink, req.agent_id, req.source_id, req.target_id, relation)
        return pb.UnlinkMemoriesResponse(removed_count=n)

    async def get_memory_graph(self, req: pb.GetMemoryGraphRequest, ctx: CallContext) -> pb.GetMemoryGraphResponse:
        v.agent_id(req.agent_id)
        v.memory_id(req.id)
        if req.depth < 0:
            raise invalid("depth", "must not be negative")
        if req.depth > self.config.max_graph_depth:
            raise invalid("depth", f"is {req.depth}; the limit is {self.config.max_graph_depth}")
        max_nodes = v.page_size(req.max_nodes, self.config, "max_nodes", default=100)
        relations = [v.relation(r, f"relations[{i}]") for i, r in enumerate(req.relations)]
        ctx.who.require_agent(req.agent_id)
        ctx.note_agent(req.agent_id)
        g = await self.run(self.engine.graph, req.agent_id, req.id, req.depth or 1, relations or None, max_nodes)
        out = pb.GetMemoryGraphResponse()
        for x in g.nodes:
            cv.fill_memory(out.memories.add(), x)
        for link in g.links:
            cv.fill_link(out.links.add(), link)
        return out

    # --- duplicates -----------------------------------------------------------------------
    async def consolidate_memories(
        self, req: pb.ConsolidateMemoriesRequest, ctx: CallContext
    ) -> pb.ConsolidateMemoriesResponse:
        v.agent_id(req.agent_id)
        threshold = self.config.duplicate_threshold
        if req.HasField("similarity_threshold"):
            v.similarity_threshold(req.similarity_threshold, "similarity_threshold")
            threshold = req.similarity_threshold
        ctx.who.require_agent(req.agent_id)
        if not req.dry_run:
            ctx.who.require("write")  # a dry run only reads
        ctx.note_agent(req.agent_id)
        groups = await self.run(self.engine.consolidate, req.agent_id, threshold, req.dry_run)
        out = pb.ConsolidateMemoriesResponse(dry_run=req.dry_run)
        for g in groups:
            og = out.groups.add(keep_id=g.keep_id, min_similarity=g.similarity)
            og.duplicate_ids.extend(g.duplicate_ids)
        if not req.dry_run:
            out.merged_count = sum(len(g.duplicate_ids) for g in groups)
        return out

    # --- the change stream ------------------------------------------------------------------
    async def watch_memories(
        self, req: pb.WatchMemoriesRequest, ctx: CallContext
    ) -> AsyncIterator[pb.WatchMemoriesResponse]:
        """Changes after the request's cursor, in order, then each as it becomes durable; an empty
        response (a heartbeat with the cursor) first when there is nothing to send yet, then at
        least every WATCH_HEARTBEAT_SECONDS. Ends when the server stops (the client resumes from
        its cursor, on this server or another)."""
        if not self.engine.events_enabled:
            raise RpcError("FAILED_PRECONDITION", "the change stream is off on this server (event_retention = 0)")
        who = ctx.who
        allow: Callable[[str], bool] | None = None
        if req.agent_id:
            v.agent_id(req.agent_id)
            who.require_agent(req.agent_id)
            ctx.note_agent(req.agent_id)
        elif who.pinned:
            allow = who.may_access_agent  # only the agents the key may access
        now_position = self.engine.event_position
        if not req.start_after:
            after = now_position
        elif req.start_after == "0":  # every change retained, however many were dropped before
            after = self.engine.oldest_event_cursor
        else:
            if not req.start_after.isdigit() or len(req.start_after) > 19:
                raise invalid("start_after", "must be a cursor this server returned (digits)")
            after = int(req.start_after)
            if after > now_position:
                raise invalid("start_after", f"cursor {after} is ahead of this server's changes ({now_position})")
            await self.run(self.engine.check_event_cursor, after)

        loop = asyncio.get_running_loop()
        wake = asyncio.Event()

        def on_durable(_position: int) -> None:
            loop.call_soon_threadsafe(wake.set)

        engine = self.engine

        metrics = self.metrics

        async def stream() -> AsyncIterator[pb.WatchMemoriesResponse]:
            cursor = after
            engine.add_event_listener(on_durable)
            metrics.watchers.inc()
            try:
                # The first response goes out at once (a heartbeat when there is nothing yet), so
                # the client knows its call is open and from which cursor it runs.
                last_sent = float("-inf")
                while not self.state.stopping:
                    wake.clear()
                    page = await self.run(engine.read_events, cursor, WATCH_BATCH, req.agent_id, allow)
                    moved = page.position != cursor
                    cursor = page.position
                    if page.events:
                        out = pb.WatchMemoriesResponse(cursor=str(cursor))
                        for ev in page.events:
                            cv.fill_event(out.events.add(), ev)
                        metrics.events_sent.inc(len(page.events))
                        yield out
                        last_sent = loop.time()
                        continue
                    if moved:  # past other agents' changes: read on
                        continue
                    idle = loop.time() - last_sent
                    if idle >= WATCH_HEARTBEAT_SECONDS:
                        yield pb.WatchMemoriesResponse(cursor=str(cursor))
                        last_sent = loop.time()
                        continue
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(
                            wake.wait(), min(WATCH_HEARTBEAT_SECONDS - idle, WATCH_STOP_CHECK_SECONDS)
                        )
            finally:
                engine.remove_event_listener(on_durable)
                metrics.watchers.dec()

        return stream()

    # --- bulk -----------------------------------------------------------------------------
    async def export_memories(
        self, req: pb.ExportMemoriesRequest, ctx: CallContext
    ) -> AsyncIterator[pb.ExportMemoriesResponse]:
        v.agent_id(req.agent_id)
        v.memory_filter(req.filter, self.config)
        ctx.who.require_agent(req.agent_id)
        ctx.note_agent(req.agent_id)
        flt = cv.filter_from_pb(req.filter)
        it: Iterator[m.Memory] = await self.run(lambda: iter(self.engine.export(req.agent_id, flt)))

        def take() -> list[m.Memory]:
            out = []
            for mem in it:
                out.append(mem)
                if len(out) >= EXPORT_CHUNK:
                    break
            return out

        async def stream() -> AsyncIterator[pb.ExportMemoriesResponse]:
            try:
                while True:
                    chunk = await self.run(take)
                    if not chunk:
                        return
                    for mem in chunk:
                        out = pb.ExportMemoriesResponse()
                        cv.fill_memory(out.memory, mem)
                        yield out
            finally:
                close = getattr(it, "close", None)
                if close is not None:
                    close()

        return stream()

    async def import_memories(
        self, requests: AsyncIterator[pb.ImportMemoriesRequest], ctx: CallContext
    ) -> pb.ImportMemoriesResponse:
        imported = skipped = 0
        batch: dict[str, list[m.Memory]] = {}
        pending = 0
        index = 0
        model = self.engine.embedding_model

        async def flush() -> None:
            nonlocal imported, skipped, pending
            for agent, mems in batch.items():
                i, s = await self.run(self.engine.import_memories, agent, mems)
                imported += i
                skipped += s
            batch.clear()
            pending = 0

        async for req in requests:
            target = v.import_message(req, self.config, clock.now(), index)
            ctx.who.require_agent(target)
            ctx.note_agent(target)
            record = cv.memory_from_pb(req.memory, model)
            record.agent_id = target
            batch.setdefault(target, []).append(record)
            pending += 1
            index += 1
            if pending >= IMPORT_CHUNK:
                await flush()
        if pending:
            await flush()
        self.metrics.stored(imported)
        return pb.ImportMemoriesResponse(imported_count=imported, skipped_count=skipped)


__all__ = ["MemoryService", "RpcError"]
