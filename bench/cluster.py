"""Cluster mode against a single node, in one run on this machine.

    python -m bench.cluster [--writes 600] [--runs 3]

Starts a single server and a local three-node cluster (3 etcd, 3 NATS JetStream with
`sync_interval: always`, 3 Engram nodes, 8 shards, RF 2, lease 2 s: tools/cluster/local.py) and
measures, as medians over --runs rounds:

* write latency (1 client) and throughput (8 clients) of StoreMemory over REST, single node vs
  cluster (clients spread over the nodes);
* recall latency (1 client) on a node that serves the agent's shard vs a node that forwards it;
* failover: SIGKILL a node under recalls of its agents, time until every one of them succeeds
  again through the other nodes, and until the cluster reports healthy (its shards re-replicated);
* catch-up: a wiped node restarted, ops per second it applies until it serves again.

All on one 2-core VM: the cluster's nine processes share the cores the single node has alone, so
the ratios are a floor for what separate hosts give. Writes go to a quorum fsync (NATS
`sync_interval: always`) before they are acknowledged, the single node fsyncs its RocksDB WAL.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from engram_server.cluster.placement import shard_of

from bench.common import ROOT_KEY, corpus, percentiles, queries, running_server, write_result
from tools.cluster.local import LocalCluster

HEADERS = {"authorization": f"Bearer {ROOT_KEY}"}
AGENTS = [f"bench-agent-{i}" for i in range(16)]


def _stores(urls: list[str], texts: list[str], clients: int) -> tuple[list[float], float]:
    """Store every text, `clients` at a time, round-robin over urls: (latencies, ops/s)."""
    lat: list[float] = []

    def one(i: int) -> float:
        t0 = time.perf_counter()
        r = pool[i % clients].post(
            f"{urls[i % len(urls)]}/v1/memories", json={"agent_id": AGENTS[i % len(AGENTS)], "content": texts[i]}
        )
        r.raise_for_status()
        return time.perf_counter() - t0

    pool = [httpx.Client(headers=HEADERS, timeout=60) for _ in range(clients)]
    try:
        t0 = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(clients) as ex:
            lat = list(ex.map(one, range(len(texts))))
        wall = time.perf_counter() - t0
    finally:
        for c in pool:
            c.close()
    return lat, len(texts) / wall


def _recalls(url: str, agent: str, n: int) -> list[float]:
    out = []
    with httpx.Client(headers=HEADERS, timeout=60) as http:
        for q in queries(n, seed=3):
            t0 = time.perf_counter()
            r = http.post(f"{url}/v1/memories/recall", json={"agent_id": agent, "query": q, "top_k": 5})
            r.raise_for_status()
            out.append(time.perf_counter() - t0)
    return out


def _status(c: LocalCluster, i: int) -> dict[str, Any]:
    return httpx.get(f"{c.node_url(i)}/v1/cluster/status", headers=HEADERS, timeout=10).json()


def one_round(writes: int, seed: int) -> dict[str, Any]:
    texts = corpus(writes, seed=seed)
    out: dict[str, Any] = {}
    with running_server() as single:
        single_url = single.base_url
        _stores([single_url], corpus(32, seed=seed + 1000), 4)  # warm-up
        lat, _ = _stores([single_url], texts[: writes // 3], 1)
        out["single_write_p50_ms"] = percentiles(lat)["p50_ms"]
        _, tput = _stores([single_url], texts[writes // 3 :], 8)
        out["single_write_ops_s"] = tput
    base = Path(tempfile.mkdtemp(prefix="engram-bench-cluster-"))
    c = LocalCluster(base, nodes=3, shards=8, replication=2, lease_ttl=2.0, api_key=ROOT_KEY)
    try:
        c.start(timeout=120)
        urls = [c.node_url(i) for i in range(3)]
        _stores(urls, corpus(32, seed=seed + 1000), 4)
        lat, _ = _stores(urls, texts[: writes // 3], 1)
        out["cluster_write_p50_ms"] = percentiles(lat)["p50_ms"]
        _, tput = _stores(urls, texts[writes // 3 :], 8)
        out["cluster_write_ops_s"] = tput
        # Recall on an owner of the agent's shard vs through a node that is not one.
        st = _status(c, 0)
        agent = AGENTS[0]
        shard = shard_of(agent, st["shard_count"])
        owners = {o["node_id"] for sh in st["shards"] if sh["shard"] == shard for o in sh["owners"]}
        owner = next(i for i in range(3) if f"m{i + 1}" in owners)
        other = next(i for i in range(3) if f"m{i + 1}" not in owners)
        _recalls(urls[owner], agent, 10)
        out["recall_owner_p50_ms"] = percentiles(_recalls(urls[owner], agent, 60))["p50_ms"]
        out["recall_forwarded_p50_ms"] = percentiles(_recalls(urls[other], agent, 60))["p50_ms"]
        # Failover: kill an owner; time until every one of its agents' recalls succeeds again.
        victim = owner
        victim_agents = [
            a
            for a in AGENTS
            if f"m{victim + 1}"
            in {o["node_id"] for sh in st["shards"] if sh["shard"] == shard_of(a, 8) for o in sh["owners"]}
        ]
        survivor = next(i for i in range(3) if i != victim)
        t_kill = time.perf_counter()
        c.engram[victim].kill()
        pending = set(victim_agents)
        with httpx.Client(headers=HEADERS, timeout=10) as http:
            while pending and time.perf_counter() - t_kill < 30:
                for a in list(pending):
                    r = http.post(f"{urls[survivor]}/v1/memories/recall", json={"agent_id": a, "query": "weather"})
                    if r.status_code == 200:
                        pending.discard(a)
        out["failover_recalls_s"] = time.perf_counter() - t_kill
        out["failover_agents"] = len(victim_agents)
        gone = f"m{victim + 1}"
        while time.perf_counter() - t_kill < 60:
            s = _status(c, survivor)
            owners = [o for sh in s["shards"] for o in sh["owners"]]
            if (
                s["healthy"]
                and all(o["node_id"] != gone for o in owners)
                and all(
                    len(sh["owners"]) == 2 and all(o["state"] == "serving" for o in sh["owners"]) for sh in s["shards"]
                )
            ):
                break
            time.sleep(0.05)
        out["failover_rereplicated_s"] = time.perf_counter() - t_kill
        # Catch-up: the victim comes back with no data and replays its shards' logs.
        shutil.rmtree(base / f"node{victim + 1}" / "data")
        t0 = time.perf_counter()
        c.restart_node(victim)
        node = f"m{victim + 1}"
        applied, t_assigned = 0, 0.0
        while time.perf_counter() - t0 < 120:
            try:
                s = _status(c, survivor)
            except httpx.HTTPError:
                time.sleep(0.1)
                continue
            mine = [(sh, o) for sh in s["shards"] for o in sh["owners"] if o["node_id"] == node]
            if mine and not t_assigned:
                t_assigned = time.perf_counter()  # its shards are assigned: the replay starts
            done = all(
                o["state"] == "serving" and int(o["applied_sequence"]) >= int(sh["last_sequence"]) for sh, o in mine
            )
            if mine and done:
                applied = sum(int(o["applied_sequence"]) for _, o in mine)
                break
            time.sleep(0.02)
        t_done = time.perf_counter()
        out["catch_up_ops"] = applied
        out["catch_up_restart_to_serving_s"] = t_done - t0  # process start, model load, replay, promotion
        out["catch_up_replay_s"] = t_done - t_assigned
        out["catch_up_ops_s"] = applied / (t_done - t_assigned) if t_done > t_assigned else 0.0
    finally:
        c.stop()
        shutil.rmtree(base, ignore_errors=True)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--writes", type=int, default=600)
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args()
    rounds = []
    for r in range(args.runs):
        got = one_round(args.writes, seed=17 + r)
        print(json.dumps({k: round(v, 2) for k, v in got.items()}))
        rounds.append(got)
    med = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
    med["write_latency_ratio"] = med["cluster_write_p50_ms"] / med["single_write_p50_ms"]
    med["write_throughput_ratio"] = med["cluster_write_ops_s"] / med["single_write_ops_s"]
    med["forwarding_overhead_ms"] = med["recall_forwarded_p50_ms"] - med["recall_owner_p50_ms"]
    print("medians:", json.dumps({k: round(v, 2) for k, v in med.items()}, indent=1))
    write_result("cluster", {"runs": rounds, "median": med, "writes": args.writes})


if __name__ == "__main__":
    main()
