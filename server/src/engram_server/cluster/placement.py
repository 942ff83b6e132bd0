"""Where an agent's memories live: its shard, the shard's owners, and how the map changes.

Pure functions (no I/O), so the controller's decisions can be tested exhaustively.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from typing import Any

SERVING = "serving"
CATCHING_UP = "catching_up"
SYSTEM_SHARD = -1  # the cluster-wide stream (API keys), applied by every node


def shard_of(agent_id: str, shards: int) -> int:
    """The agent's shard: a stable 64-bit hash of its id, modulo the shard count."""
    h = hashlib.blake2b(agent_id.encode(), digest_size=8, person=b"engram-shard").digest()
    return int.from_bytes(h, "big") % shards


def agent_key(agent_id: str) -> str:
    """A subject token for the agent that does not reveal its id (NATS subjects are plaintext)."""
    h = hashlib.sha256(b"engram-agent-key\0" + agent_id.encode()).digest()
    return base64.b32encode(h).decode().rstrip("=").lower()[:26]


def _score(shard: int, node: str) -> int:
    h = hashlib.blake2b(f"{shard}\0{node}".encode(), digest_size=8, person=b"engram-place").digest()
    return int.from_bytes(h, "big")


def rendezvous(shard: int, nodes: list[str], rf: int) -> list[str]:
    """The shard's owners: the rf live nodes that score highest for it (highest random weight).
    A node joining or leaving moves only the shards it wins or held."""
    return sorted(nodes, key=lambda n: _score(shard, n), reverse=True)[:rf]


@dataclass
class Owner:
    node: str
    incarnation: str  # the node's lease id when it was assigned; a re-registered node is new
    state: str  # serving | catching_up

    def to_json(self) -> dict[str, str]:
        return {"node": self.node, "inc": self.incarnation, "state": self.state}


@dataclass
class ShardMap:
    epoch: int
    shards: int
    replication: int
    owners: dict[int, list[Owner]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "shards": self.shards,
            "replication": self.replication,
            "owners": {str(s): [o.to_json() for o in os_] for s, os_ in sorted(self.owners.items())},
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ShardMap:
        return cls(
            epoch=int(d["epoch"]),
            shards=int(d["shards"]),
            replication=int(d["replication"]),
            owners={
                int(s): [Owner(o["node"], o["inc"], o["state"]) for o in lst] for s, lst in d.get("owners", {}).items()
            },
        )

    def serving(self, shard: int) -> list[Owner]:
        return [o for o in self.owners.get(shard, []) if o.state == SERVING]

    def shards_of(self, node: str, incarnation: str) -> dict[int, str]:
        """{shard: state} for this incarnation of the node."""
        out: dict[int, str] = {}
        for s, lst in self.owners.items():
            for o in lst:
                if o.node == node and o.incarnation == incarnation:
                    out[s] = o.state
        return out

    def healthy(self) -> bool:
        return all(self.serving(s) for s in range(self.shards))


def plan(
    current: ShardMap,
    live: dict[str, str],
    applied: dict[str, dict[int, int]],
    last_seq: dict[int, int],
    max_lag: int = 0,
    draining: frozenset[str] = frozenset(),
) -> ShardMap | None:
    """The next shard map, or None when nothing changes.

    live: {node: incarnation} of the registered nodes. applied: {node: {shard: applied seq}} as
    the nodes report it. last_seq: {shard: last sequence of its log}.

    Make-before-break: a new owner joins as catching_up and is promoted to serving once it has
    applied the log to within max_lag of its end; an owner that is no longer wanted is dropped
    only when the shard has its full count of serving wanted owners. An owner whose node is gone
    (or came back as a new incarnation) is dropped at once: it cannot serve. A draining node is
    wanted nowhere, so it keeps serving each shard only until the shard's new owner serves.
    """
    nodes = sorted(n for n in live if n not in draining) or sorted(live)
    rf = current.replication
    out: dict[int, list[Owner]] = {}
    for s in range(current.shards):
        target = rendezvous(s, nodes, rf)
        kept = [
            Owner(o.node, o.incarnation, o.state)
            for o in current.owners.get(s, [])
            if live.get(o.node) == o.incarnation and (o.node in target or o.state == SERVING)
        ]
        have = {o.node for o in kept}
        kept += [Owner(n, live[n], CATCHING_UP) for n in target if n not in have]
        fresh = last_seq.get(s, 0) == 0  # an empty log: nothing to copy
        for o in sorted(kept, key=lambda o: target.index(o.node) if o.node in target else rf):
            if o.state != CATCHING_UP or o.node not in target:
                continue
            if fresh or applied.get(o.node, {}).get(s, -1) >= last_seq.get(s, 0) - max_lag:
                o.state = SERVING
                serving = [x for x in kept if x.state == SERVING]
                if len(serving) > rf:  # never more than rf serving: the promoted one replaces one
                    kept.remove([x for x in serving if x.node not in target][-1])
        if all(o.state == SERVING for o in kept if o.node in target):
            kept = [o for o in kept if o.node in target]
        kept.sort(key=lambda o: (o.node not in target, target.index(o.node) if o.node in target else 0))
        out[s] = kept
    if out == current.owners:
        return None
    return ShardMap(current.epoch + 1, current.shards, current.replication, out)
