"""What the cluster tests share: REST calls to one node, the ledger of acknowledged writes, a load
that keeps writing and reading, and the invariants checked after every scenario."""

from __future__ import annotations

import json
import os
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tools.cluster.local import BIN, LocalCluster


def running_cluster(base: Path, **options: Any) -> Iterator[LocalCluster]:
    """A started LocalCluster, stopped afterwards. `make test` builds the engines and sets
    ENGRAM_REQUIRE_CLUSTER=1: there a missing binary fails; a bare pytest skips."""
    if not (BIN / "etcd").exists() or not (BIN / "nats-server").exists():
        if os.environ.get("ENGRAM_REQUIRE_CLUSTER") == "1":
            pytest.fail(f"{BIN}/etcd or nats-server is missing: `make cluster-tools` builds them")
        pytest.skip("cluster binaries missing: run `make cluster-tools`")
    c = LocalCluster(base, api_key=ROOT_KEY, lease_ttl=2.0, **options)
    try:
        c.start(timeout=90)
        yield c
    finally:
        c.stop()


ROOT_KEY = "cluster-test-root-key-0123456789"
STRESS = os.environ.get("ENGRAM_STRESS") == "1"


def http(
    c: LocalCluster,
    i: int,
    method: str,
    path: str,
    body: Any = None,
    token: str = "",
    key: str = ROOT_KEY,
    timeout: float = 20.0,
) -> tuple[int, dict[str, Any], str]:
    """(status, JSON body, x-engram-token) of one REST call to node i; status 0: no connection."""
    req = urllib.request.Request(
        c.node_url(i) + path, method=method, data=json.dumps(body).encode() if body is not None else None
    )
    req.add_header("content-type", "application/json")
    if key:
        req.add_header("authorization", f"Bearer {key}")
    if token:
        req.add_header("x-engram-token", token)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"{}"), r.headers.get("x-engram-token") or ""
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw or b"{}"), ""
        except ValueError:
            return e.code, {"raw": raw.decode(errors="replace")}, ""
    except (OSError, urllib.error.URLError) as e:
        return 0, {"error": str(e)}, ""


@dataclass
class Ledger:
    """Every write the cluster acknowledged: agent → {memory id: (content, token)}."""

    acked: dict[str, dict[str, tuple[str, str]]] = field(default_factory=dict)
    failed: int = 0
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, agent: str, mid: str, content: str, token: str) -> None:
        with self.lock:
            self.acked.setdefault(agent, {})[mid] = (content, token)

    def count(self) -> int:
        return sum(len(v) for v in self.acked.values())


class Load:
    """Writers (and readers) spread over the live nodes until stopped."""

    def __init__(self, c: LocalCluster, ledger: Ledger, agents: int = 12, threads: int = 3, reads: bool = True) -> None:
        self.c, self.ledger, self.agents = c, ledger, agents
        self.stop_event = threading.Event()
        self.read_failures: list[str] = []
        self.reads_ok = 0
        self.threads = [threading.Thread(target=self._write, args=(t,), daemon=True) for t in range(threads)]
        if reads:
            self.threads.append(threading.Thread(target=self._read, daemon=True))
        self.seq = 0
        self.in_flight: dict[int, int] = {}  # writes under way, per node
        self.lock = threading.Lock()

    def idle(self, node: int) -> bool:
        with self.lock:
            return self.in_flight.get(node, 0) == 0

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_event.set()
        for t in self.threads:
            t.join(30)

    def live_nodes(self, exclude: set[int] | None = None) -> list[int]:
        return [i for i, p in enumerate(self.c.engram) if p.alive() and i not in (exclude or set())]

    def _write(self, t: int) -> None:
        rng = random.Random(t)
        while not self.stop_event.is_set():
            nodes = self.live_nodes(self.exclude_writes)
            if not nodes:
                time.sleep(0.1)
                continue
            i = rng.choice(nodes)
            agent = f"agent-{rng.randrange(self.agents)}"
            self.seq += 1
            content = f"memory {t}-{self.seq} of {agent}: the weather on day {rng.randrange(10_000)}"
            with self.lock:
                self.in_flight[i] = self.in_flight.get(i, 0) + 1
            try:
                status, body, token = http(
                    self.c, i, "POST", "/v1/memories", {"agent_id": agent, "content": content}, timeout=30
                )
            finally:
                with self.lock:
                    self.in_flight[i] -= 1
            if status == 200:
                self.ledger.add(agent, body["memory"]["id"], content, token)
            else:
                self.ledger.failed += 1  # not acknowledged: may or may not exist
                self.ledger.failures.append(f"node{i + 1}: {status} {str(body)[:160]}")

    def _read(self) -> None:
        rng = random.Random(99)
        while not self.stop_event.is_set():
            nodes = self.live_nodes(self.exclude_reads)
            with self.ledger.lock:
                items = [(a, m, tok) for a, ms in self.ledger.acked.items() for m, (_, tok) in list(ms.items())[-3:]]
            if not nodes or not items:
                time.sleep(0.05)
                continue
            agent, mid, token = rng.choice(items)
            i = rng.choice(nodes)
            status, body, _ = http(self.c, i, "GET", f"/v1/memories/{mid}?agent_id={agent}", token=token)
            if status == 200:
                self.reads_ok += 1
            elif self.c.engram[i].alive():
                self.read_failures.append(f"node{i + 1}: {status} {str(body)[:160]}")
            time.sleep(0.01)

    exclude_reads: set[int] = set()  # noqa: RUF012 - set per scenario
    exclude_writes: set[int] = set()  # noqa: RUF012 - set per scenario


def wait_converged(c: LocalCluster, timeout: float = 15.0) -> tuple[dict[str, Any], float]:
    """Healthy, and every owner of every shard has applied its log to the end."""
    t0 = time.monotonic()
    deadline = t0 + timeout
    last: Any = None
    while time.monotonic() < deadline:
        for i, p in enumerate(c.engram):
            if not p.alive():
                continue
            status, st, _ = http(c, i, "GET", "/v1/cluster/status", timeout=5)
            last = st
            if (
                status == 200
                and st.get("healthy")
                and all(
                    o.get("state") == "serving" and int(o.get("applied_sequence", 0)) >= int(sh.get("last_sequence", 0))
                    for sh in st["shards"]
                    for o in sh.get("owners", [])
                )
            ):
                return st, time.monotonic() - t0
            break
        time.sleep(0.2)
    raise AssertionError(f"cluster did not converge within {timeout:.0f} s; last status: {json.dumps(last)[:3000]}")


def check_ledger(c: LocalCluster, ledger: Ledger, epochs: list[int]) -> dict[str, Any]:
    """Every acknowledged memory is readable from every serving owner of its shard, once."""
    from engram_server.cluster.placement import shard_of

    st, settle = wait_converged(c)
    epochs.append(int(st["shard_map_epoch"]))
    assert epochs == sorted(epochs), f"shard map epochs went back: {epochs}"
    index = {n["node_id"]: int(n["node_id"][1:]) - 1 for n in st["nodes"]}
    owners = {int(sh.get("shard", 0)): [o["node_id"] for o in sh.get("owners", [])] for sh in st["shards"]}
    for agent, mems in ledger.acked.items():
        s = shard_of(agent, int(st["shard_count"]))
        assert len(owners[s]) == 2, f"shard {s} has owners {owners[s]}"
        listings = []
        for node in owners[s]:
            i = index[node]
            status, body, _ = http(c, i, "GET", f"/v1/memories?agent_id={agent}&page_size=1000")
            assert status == 200, body
            ids = [m["id"] for m in body.get("memories", [])]
            assert len(ids) == len(set(ids)), f"{node} lists a memory twice for {agent}"
            missing = set(mems) - set(ids)
            assert not missing, f"{node} (owner of shard {s}) lacks {len(missing)} acknowledged memories of {agent}"
            listings.append(sorted(ids))
        assert listings[0] == listings[1], f"the owners of shard {s} disagree about {agent}"
    return {"settle_s": round(settle, 2), "epoch": st["shard_map_epoch"], "acked": ledger.count()}


def status_of(c: LocalCluster, i: int) -> dict[str, Any]:
    status, st, _ = http(c, i, "GET", "/v1/cluster/status", timeout=10)
    assert status == 200, st
    return st


def wait_until(pred: Any, timeout: float, what: str) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if pred():
            return time.monotonic() - t0
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout:.0f} s")
