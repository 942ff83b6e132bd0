"""MemoryService: store, recall and manage memories."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator

from engram._gen.engram import v1 as pb

from ..engine import models as m
from ..errors import RpcError, invalid
from . import convert as cv
from . import validation as v
from .base import CallContext, ServiceBase

UPDATABLE = ("content", "memory_type", "importance", "tags", "metadata", "session_id", "event_time", "expires_at")
EXPORT_CHUNK = 64
IMPORT_CHUNK = 128


class MemoryService(ServiceBase):
    # --- store ----------------------------------------------------------------------------
    async def store_memory(self, req: pb.StoreMemoryRequest, ctx: CallContext) -> pb.StoreMemoryResponse:
        v.store_request(req, self.config)
        ctx.who.require_agent(req.agent_id)
        ctx.note_agent(req.agent_id)
        mem, created = await self.run(self.engine.store, cv.new_memory_from_pb(req))
        self.metrics.stored(1)
        return pb.StoreMemoryResponse(memory=cv.memory_to_pb(mem), created=created)

    async def batch_store_memories(
        self, req: pb.BatchStoreMemoriesRequest, ctx: CallContext
    ) -> pb.BatchStoreMemoriesResponse:
        v.batch(req.requests, self.config, "requests")
        for i, item in enumerate(req.requests):
            v.store_request(item, self.config, f"requests[{i}].")
            ctx.who.require_agent(item.agent_id)
        ctx.note_agent(req.requests[0].agent_id)
        results = await self.run(self.engine.store_batch, [cv.new_memory_from_pb(r) for r in req.requests])
        self.metrics.stored(len(results))
        return pb.BatchStoreMemoriesResponse(
            memories=[cv.memory_to_pb(mem) for mem, _ in results],
            created_count=sum(1 for _, created in results if created),
        )

    # --- by id ----------------------------------------------------------------------------
    async def get_memory(self, req: pb.GetMemoryRequest, ctx: CallContext) -> pb.GetMemoryResponse:
        v.memory_id(req.id)
        v.agent_id(req.agent_id, required=False)
        agent = await self.owned_agent(ctx, req.id, req.agent_id)
        mem = await self.run(self.engine.get, req.id, agent)
        ctx.note_agent(mem.agent_id)
        return pb.GetMemoryResponse(memory=cv.memory_to_pb(mem))

    async def update_memory(self, req: pb.UpdateMemoryRequest, ctx: CallContext) -> pb.UpdateMemoryResponse:
        if req.memory is None:
            raise invalid("memory", "required")
        msg = req.memory
        v.memory_id(msg.id, "memory.id")
        v.agent_id(req.agent_id, required=False)
        if req.ttl_seconds < 0:
            raise invalid("ttl_seconds", "must not be negative")
        paths = self._mask(req)
        patch = m.MemoryPatch()
        for path in paths:
            if path == "content":
                v.content(msg.content, self.config, "memory.content")
                patch.content = msg.content
            elif path == "memory_type":
                v.enum_value(pb.MemoryType, msg.memory_type, "memory.memory_type")
                patch.memory_type = cv.memory_type_to_engine(msg.memory_type)
            elif path == "importance":
                v.importance(msg.importance, "memory.importance")
                patch.importance = float(msg.importance)
            elif path == "tags":
                v.tags(msg.tags, self.config, "memory.tags")
                patch.tags = list(msg.tags)
            elif path == "metadata":
                v.metadata(msg.metadata, self.config, "memory.metadata")
                patch.metadata = cv.struct_to_dict(msg.metadata)
            elif path == "session_id":
                v.session_id(msg.session_id, "memory.session_id")
                patch.session_id = msg.session_id
            elif path == "event_time":
                patch.event_time = cv.ts_to_float(msg.event_time)
            elif path == "expires_at":
                if msg.expires_at is None:
                    patch.ttl_seconds = 0  # clears the expiry
                else:
                    patch.expires_at = cv.ts_to_float(msg.expires_at)
        if req.ttl_seconds:
            if "expires_at" in paths:
                raise invalid("ttl_seconds", "ttl_seconds and expires_at are exclusive")
            patch.ttl_seconds = float(req.ttl_seconds)
        if not paths and not req.ttl_seconds:
            raise invalid("update_mask", "nothing to update: set update_mask or a field of memory")
        agent = await self.owned_agent(ctx, msg.id, req.agent_id)
        mem = await self.run(self.engine.update, msg.id, patch, agent)
        ctx.note_agent(mem.agent_id)
        return pb.UpdateMemoryResponse(memory=cv.memory_to_pb(mem))

    @staticmethod
    def _mask(req: pb.UpdateMemoryRequest) -> list[str]:
        mask = list(req.update_mask.paths) if req.update_mask is not None else []
        if mask:
            out = []
            for p in mask:
                name = p.removeprefix("memory.")
                if name not in UPDATABLE:
                    raise invalid("update_mask", f"{p!r} cannot be updated; updatable: {', '.join(UPDATABLE)}")
                if name not in out:
                    out.append(name)
            return out
        msg = req.memory
        if msg is None:
            return []
        present = {
            "content": bool(msg.content),
            "memory_type": msg.memory_type != pb.MemoryType.UNSPECIFIED,
            "importance": msg.importance != 0,
            "tags": bool(msg.tags),
            "metadata": msg.metadata is not None,
            "session_id": bool(msg.session_id),
            "event_time": msg.event_time is not None,
            "expires_at": msg.expires_at is not None,
        }
        return [k for k in UPDATABLE if present[k]]

    async def delete_memory(self, req: pb.DeleteMemoryRequest, ctx: CallContext) -> pb.DeleteMemoryResponse:
        v.memory_id(req.id)
        v.agent_id(req.agent_id, required=False)
        agent = await self.owned_agent(ctx, req.id, req.agent_id)
        mem = await self.run(self.engine.delete, req.id, agent)
        ctx.note_agent(mem.agent_id)
        return pb.DeleteMemoryResponse(id=mem.id)

    async def get_memory_history(
        self, req: pb.GetMemoryHistoryRequest, ctx: CallContext
    ) -> pb.GetMemoryHistoryResponse:
        v.memory_id(req.id)
        v.agent_id(req.agent_id, required=False)
        agent = await self.owned_agent(ctx, req.id, req.agent_id)
        versions = await self.run(self.engine.history, req.id, agent)
        return pb.GetMemoryHistoryResponse(versions=[cv.memory_to_pb(x) for x in versions])

    # --- list, recall, forget -------------------------------------------------------------
    async def list_memories(self, req: pb.ListMemoriesRequest, ctx: CallContext) -> pb.ListMemoriesResponse:
        v.agent_id(req.agent_id)
        size = v.page_size(req.page_size, self.config)
        order = v.order_by(req.order_by)
        v.memory_filter(req.filter, self.config)
        ctx.who.require_agent(req.agent_id)
        ctx.note_agent(req.agent_id)
        page = await self.run(
            self.engine.list, req.agent_id, cv.filter_from_pb(req.filter), size, req.page_token, order
        )
        return pb.ListMemoriesResponse(
            memories=[cv.memory_to_pb(x) for x in page.memories],
            next_page_token=page.next_page_token,
            total_size=page.total_size,
        )

    def _query(self, req: pb.RecallRequest, prefix: str, ctx: CallContext) -> m.RecallQuery:
        top_k = v.recall_request(req, self.config, prefix)
        ctx.who.require_agent(req.agent_id)
        return m.RecallQuery(
            agent_id=req.agent_id,
            query=req.query,
            top_k=top_k,
            filter=cv.filter_from_pb(req.filter),
            mode=cv.RECALL_MODE_TO_ENGINE[pb.RecallMode(req.mode)],
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
        return pb.BatchRecallResponse(responses=[cv.recall_result_to_pb(r) for r in results])

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
            matched_count=res.matched, deleted_count=res.deleted, ids=list(res.ids), dry_run=req.dry_run
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
        weight = 1.0 if req.weight is None else float(req.weight)
        if math.isnan(weight) or not 0.0 <= weight <= 1.0:
            raise invalid("weight", "must be between 0 and 1")
        link = await self.run(self.engine.link, req.agent_id, req.source_id, req.target_id, relation, weight)
        return pb.LinkMemoriesResponse(link=cv.link_to_pb(link))

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
        if req.max_nodes < 0:
            raise invalid("max_nodes", "must not be negative")
        if req.max_nodes > self.config.max_page_size:
            raise invalid("max_nodes", f"is {req.max_nodes}; the limit is {self.config.max_page_size}")
        relations = [v.relation(r, f"relations[{i}]") for i, r in enumerate(req.relations)]
        ctx.who.require_agent(req.agent_id)
        ctx.note_agent(req.agent_id)
        g = await self.run(
            self.engine.graph, req.agent_id, req.id, req.depth or 1, relations or None, req.max_nodes or 100
        )
        return pb.GetMemoryGraphResponse(
            memories=[cv.memory_to_pb(x) for x in g.nodes], links=[cv.link_to_pb(x) for x in g.links]
        )

    # --- bulk -----------------------------------------------------------------------------
    async def export_memories(
        self, req: pb.ExportMemoriesRequest, ctx: CallContext
    ) -> AsyncIterator[pb.ExportMemoriesResponse]:
        v.agent_id(req.agent_id)
        v.memory_filter(req.filter, self.config)
        ctx.who.require_agent(req.agent_id)
        ctx.note_agent(req.agent_id)
        flt = cv.filter_from_pb(req.filter)
        it = await self.run(lambda: iter(self.engine.export(req.agent_id, flt)))

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
                        yield pb.ExportMemoriesResponse(memory=cv.memory_to_pb(mem))
            finally:
                close = getattr(it, "close", None)
                if close is not None:
                    close()

        return stream()

    async def import_memories(
        self, requests: AsyncIterator[pb.ImportMemoriesRequest], ctx: CallContext
    ) -> pb.ImportMemoriesResponse:
        imported = skipped = 0
        batch: list[tuple[m.Memory, str]] = []
        index = 0

        async def flush() -> None:
            nonlocal imported, skipped
            by_override: dict[str, list[m.Memory]] = {}
            for mem, override in batch:
                by_override.setdefault(override, []).append(mem)
            for override, mems in by_override.items():
                i, s = await self.run(self.engine.import_memories, mems, override)
                imported += i
                skipped += s
            batch.clear()

        async for req in requests:
            if req.memory is None:
                raise invalid(f"requests[{index}].memory", "required")
            mem = req.memory
            target = req.agent_id or mem.agent_id
            v.agent_id(req.agent_id, f"requests[{index}].agent_id", required=False)
            v.agent_id(target, f"requests[{index}].memory.agent_id")
            v.memory_id(mem.id, f"requests[{index}].memory.id")
            v.content(mem.content, self.config, f"requests[{index}].memory.content")
            v.enum_value(pb.MemoryType, mem.memory_type, f"requests[{index}].memory.memory_type")
            v.importance(mem.importance, f"requests[{index}].memory.importance")
            v.tags(mem.tags, self.config, f"requests[{index}].memory.tags")
            v.metadata(mem.metadata, self.config, f"requests[{index}].memory.metadata")
            ctx.who.require_agent(target)
            ctx.note_agent(target)
            batch.append((cv.memory_from_pb(mem), req.agent_id))
            index += 1
            if len(batch) >= IMPORT_CHUNK:
                await flush()
        if batch:
            await flush()
        self.metrics.stored(imported)
        return pb.ImportMemoriesResponse(imported_count=imported, skipped_count=skipped)


__all__ = ["MemoryService", "RpcError"]
