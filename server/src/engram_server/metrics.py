"""Prometheus metrics (prometheus-client), one registry per app."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

if TYPE_CHECKING:
    from .engine.models import EngineStats

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "engram_requests", "RPCs served, by method, transport and code", ["method", "transport", "code"], registry=r
        )
        self.latency = Histogram(
            "engram_request_duration_seconds",
            "RPC latency, by method and transport",
            ["method", "transport"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge("engram_requests_in_flight", "RPCs being served", registry=r)
        self.memories_stored = Counter("engram_memories_stored", "Memories stored (store, batch, import)", registry=r)
        self.recalls = Counter("engram_recalls", "Recall queries answered", registry=r)
        self.embedding = Histogram(
            "engram_embedding_duration_seconds", "Embed call latency in the engine", buckets=LATENCY_BUCKETS, registry=r
        )
        self.memories = Gauge("engram_memories", "Live memories across all agents", registry=r)
        self.agents = Gauge("engram_agents", "Agents with at least one memory", registry=r)
        self.links = Gauge("engram_links", "Graph links", registry=r)
        self.index_vectors = Gauge("engram_index_vectors", "Vectors per index kind", ["kind"], registry=r)
        self.index_builds = Gauge("engram_index_builds_pending", "Index builds waiting or running", registry=r)
        self.disk_bytes = Gauge("engram_disk_bytes", "Bytes of the data directory", registry=r)
        self.ready = Gauge("engram_ready", "1 once the server can serve recalls", registry=r)
        self.watchers = Gauge("engram_watchers", "WatchMemories streams open", registry=r)
        self.events_sent = Counter("engram_watch_events_sent", "Changes delivered to watchers", registry=r)
        self.cluster: ClusterMetrics | None = None
        self._count = 0
        self._children: dict[tuple[str, ...], tuple[Any, ...]] = {}

    def observe(self, method: str, transport: str, code: str, seconds: float) -> None:
        self._count += 1
        key = (method, transport, code)
        pair = self._children.get(key)
        if pair is None:  # label lookups are slow: cache the children
            pair = self._children[key] = (
                self.requests.labels(method, transport, code),
                self.latency.labels(method, transport),
            )
        pair[0].inc()
        pair[1].observe(seconds)

    def request_count(self) -> int:
        return self._count

    def stored(self, n: int) -> None:
        if n:
            self.memories_stored.inc(n)

    def recalled(self, n: int) -> None:
        self.recalls.inc(n)

    def embedding_seconds(self, seconds: float) -> None:
        self.embedding.observe(seconds)

    def update_from_stats(self, stats: EngineStats | None, ready: bool) -> None:
        self.ready.set(1 if ready else 0)
        if stats is None:
            return
        self.memories.set(stats.memories)
        self.agents.set(stats.agents)
        self.links.set(stats.links)
        self.index_vectors.labels("exact").set(stats.vectors_exact)
        self.index_vectors.labels("graph").set(stats.vectors_indexed)
        self.index_builds.set(stats.index_builds_pending)
        self.disk_bytes.set(stats.bytes_on_disk)

    def enable_cluster(self) -> ClusterMetrics:
        self.cluster = ClusterMetrics(self.registry)
        return self.cluster

    def render(self) -> bytes:
        return generate_latest(self.registry)


class ClusterMetrics:
    """Cluster mode (cluster/node.py): replication lag, apply rate, routing, the log's latency."""

    def __init__(self, r: CollectorRegistry) -> None:
        self.applied = Counter("engram_cluster_ops_applied", "Log ops applied by this node", ["shard"], registry=r)
        self.applied_sequence = Gauge(
            "engram_cluster_applied_sequence", "Last log sequence applied, per shard", ["shard"], registry=r
        )
        self.lag = Gauge(
            "engram_cluster_lag_ops", "Ops in the shard's log not yet applied here (at the last op seen)", ["shard"],
            registry=r,
        )
        self.routed = Counter(
            "engram_cluster_calls", "Calls by how they were served: local, forwarded or logged", ["route"], registry=r
        )
        self.publish = Histogram(
            "engram_cluster_publish_seconds", "Time for the log to acknowledge a write (quorum on disk)", registry=r,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.serving = Gauge("engram_cluster_serving_shards", "Shards this node serves", registry=r)
        self.epoch = Gauge("engram_cluster_shard_map_epoch", "Epoch of the shard map this node follows", registry=r)
        self.lease = Gauge("engram_cluster_lease_fresh", "1 while this node's lease is certainly alive", registry=r)
