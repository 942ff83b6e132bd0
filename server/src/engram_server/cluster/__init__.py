"""Cluster mode: shard by agent, replicate through a durable log, route to a live owner.

Opt-in (`--cluster-etcd` and `--cluster-nats`); single-node mode never imports this package.

* placement.py: shard of an agent, rendezvous owners, the shard map and how it changes.
* control.py: etcd, the control plane: node leases, the elected (fenced) controller, the map.
* oplog.py: NATS JetStream, the write-ahead log: one replicated stream per shard, ops encrypted.
* node.py: one Engram node: applies the log of the shards it owns, routes calls, reports status.

docs/design/cluster.md describes the design and its guarantees.
"""
