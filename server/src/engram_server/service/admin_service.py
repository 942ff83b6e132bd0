"""AdminService: health, server information, statistics, API keys, cluster status."""

from __future__ import annotations

import socket
import time

from .. import __version__, pb
from ..auth import ROLES, hash_key, new_key
from ..engine import clock
from ..engine.models import ApiKeyRecord
from ..errors import RpcError, invalid
from . import convert as cv
from . import validation as v
from .base import CallContext, ServiceBase


class AdminService(ServiceBase):
    def _require_unpinned_admin(self, ctx: CallContext) -> None:
        if ctx.who.pinned:
            raise RpcError("PERMISSION_DENIED", "this call needs an admin key that is not pinned to agents")

    async def health(self, req: pb.HealthRequest, ctx: CallContext) -> pb.HealthResponse:
        return pb.HealthResponse(status=self.state.status, version=__version__)

    async def get_server_info(self, req: pb.GetServerInfoRequest, ctx: CallContext) -> pb.GetServerInfoResponse:
        c = self.config
        model, dim = await self.run(lambda: (self.engine.embedding_model, self.engine.embedding_dim))
        return pb.GetServerInfoResponse(
            version=__version__,
            api_version="v1",
            embedding_model=model,
            embedding_dimensions=dim,
            limits=pb.ServerLimits(
                max_request_bytes=c.max_request_bytes,
                max_content_bytes=c.max_content_bytes,
                max_metadata_bytes=c.max_metadata_bytes,
                max_tags=c.max_tags,
                max_batch_size=c.max_batch_size,
                max_top_k=c.max_top_k,
                max_page_size=c.max_page_size,
                max_graph_depth=c.max_graph_depth,
                max_concurrent_streams=c.max_concurrent_streams,
            ),
            auth_required=c.auth_required,
        )

    async def get_stats(self, req: pb.GetStatsRequest, ctx: CallContext) -> pb.GetStatsResponse:
        self._require_unpinned_admin(ctx)
        s = await self.run(self.engine.stats)
        return pb.GetStatsResponse(
            agent_count=s.agents,
            memory_count=s.memories,
            link_count=s.links,
            disk_bytes=s.bytes_on_disk,
            exact_vector_count=s.vectors_exact,
            indexed_vector_count=s.vectors_indexed,
            pending_index_builds=s.index_builds_pending,
            uptime_seconds=time.monotonic() - self.state.started_monotonic,
            request_count=self.metrics.request_count(),
        )

    async def create_api_key(self, req: pb.CreateApiKeyRequest, ctx: CallContext) -> pb.CreateApiKeyResponse:
        self._require_unpinned_admin(ctx)
        v.name(req.name)
        role = cv.ROLE_TO_ENGINE.get(req.role)
        if role is None:
            raise invalid("role", f"must be one of {', '.join('API_KEY_ROLE_' + r.upper() for r in ROLES)}")
        for i, a in enumerate(req.agent_ids):
            v.agent_id(a, f"agent_ids[{i}]")
        if len(req.agent_ids) > self.config.max_page_size:
            raise invalid("agent_ids", f"has more than {self.config.max_page_size} agents")
        if req.agent_id_prefix and not v.AGENT_RE.match(req.agent_id_prefix):
            raise invalid("agent_id_prefix", "must be 1 to 128 characters of [A-Za-z0-9._:@-]")
        now = clock.now()
        v.ttl_seconds(req.ttl_seconds, now)
        key_id, key = new_key()
        record = ApiKeyRecord(
            id=key_id,
            name=req.name,
            key_hash=hash_key(key),
            prefix=key[: len("engram_") + 12 + 5],
            role=role,
            agent_ids=list(req.agent_ids),
            agent_prefix=req.agent_id_prefix,
            created_at=now,
            expires_at=now + req.ttl_seconds if req.ttl_seconds else None,
        )

        def put() -> None:
            with self.auth.key_lock:
                self.engine.put_api_key(record)

        await self.run(put)
        self.auth.invalidate(key_id)
        out = pb.CreateApiKeyResponse(key=key)
        cv.fill_api_key(out.api_key, record)
        return out

    async def list_api_keys(self, req: pb.ListApiKeysRequest, ctx: CallContext) -> pb.ListApiKeysResponse:
        self._require_unpinned_admin(ctx)
        records = await self.run(self.engine.list_api_keys)
        now = time.time()
        if not req.include_revoked:
            records = [r for r in records if not r.revoked_at and not (r.expires_at and r.expires_at <= now)]
        records.sort(key=lambda r: r.created_at, reverse=True)
        out = pb.ListApiKeysResponse()
        for r in records:
            cv.fill_api_key(out.api_keys.add(), r)
        return out

    async def revoke_api_key(self, req: pb.RevokeApiKeyRequest, ctx: CallContext) -> pb.RevokeApiKeyResponse:
        self._require_unpinned_admin(ctx)
        if not req.id:
            raise invalid("id", "required")

        def revoke() -> ApiKeyRecord | None:
            with self.auth.key_lock:
                record = self.engine.get_api_key(req.id)
                if record is None:
                    return None
                if not record.revoked_at:
                    record.revoked_at = clock.now()
                    self.engine.put_api_key(record)
                return record

        record = await self.run(revoke)
        self.auth.invalidate(req.id)
        if record is None:
            raise RpcError("NOT_FOUND", f"API key {req.id!r} not found")
        out = pb.RevokeApiKeyResponse()
        cv.fill_api_key(out.api_key, record)
        return out

    async def get_cluster_status(
        self, req: pb.GetClusterStatusRequest, ctx: CallContext
    ) -> pb.GetClusterStatusResponse:
        healthy = self.state.status == "healthy"
        return pb.GetClusterStatusResponse(
            node_count=1,
            healthy_node_count=1 if healthy else 0,
            replication_factor=1,
            mode="single",
            healthy=healthy,
            node_id=socket.gethostname(),
            nodes=[
                pb.ClusterNode(
                    node_id=socket.gethostname(),
                    address=f"{self.config.host}:{self.config.port}",
                    healthy=healthy,
                    role="leader",
                )
            ],
        )

    async def drain_cluster_node(
        self, req: pb.DrainClusterNodeRequest, ctx: CallContext
    ) -> pb.DrainClusterNodeResponse:
        raise RpcError(
            "FAILED_PRECONDITION",
            "this server runs as a single node: there is no cluster to drain a node from "
            "(cluster mode: --cluster-etcd and --cluster-nats)",
        )
