"""Soak: a mixed workload (store, recall, list, update, delete) from several clients for a while;
zero errors, RSS growth under 10 % after warm-up, no growth in open file descriptors or threads.

The data set is held steady once warm: each client keeps at most WORKING_SET memories and
deletes its oldest before storing past that. The warm-up lasts until every client's working set
is full (and at least WARM_UP_S), so that RSS growth measures leaks, not a growing corpus, however
fast or slow the machine.

`make test` soaks for 20 s after the warm-up; `make stress` (ENGRAM_STRESS=1) for 5 minutes.
"""

from __future__ import annotations

import os
import random
import threading
import time
from pathlib import Path

import httpx

from bench.common import ROOT_KEY, ServerProcess, corpus, queries

from .conftest import STRESS

DURATION_S = 300 if STRESS else 20
CLIENTS = 6
WORKING_SET = 150  # memories per client once warm (900 in all)
WARM_UP_S = 60.0 if STRESS else 5.0
WARM_UP_MAX_S = 180.0


def _process_stats(pid: int) -> tuple[int, int, int, int]:
    """RSS, open descriptors other than RocksDB table files, table files open, threads.

    RocksDB keeps every live table (.sst) file open, so their count follows flushes and
    compactions up and down; a table file still open after its deletion would be a leak."""
    rss = threads = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) * 1024
        elif line.startswith("Threads:"):
            threads = int(line.split()[1])
    fds = tables = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:  # closed while we looked
            continue
        if target.endswith(".sst"):
            tables += 1
        else:
            fds += 1
            assert not target.endswith(".sst (deleted)"), f"a deleted table file is still open: {target}"
    return rss, fds, tables, threads


def test_soak_mixed_workload(server: ServerProcess) -> None:
    assert server.proc is not None
    pid = server.proc.pid
    texts, qs = corpus(50_000, seed=5), queries(500, seed=5)
    errors: list[str] = []
    counts = [0] * CLIENTS
    full = [threading.Event() for _ in range(CLIENTS)]
    stop_at = time.monotonic() + WARM_UP_MAX_S + DURATION_S  # set for real once warm

    def client(idx: int) -> None:
        rng = random.Random(idx)
        mine: list[str] = []
        with httpx.Client(base_url=server.base_url, timeout=30, headers={"authorization": f"Bearer {ROOT_KEY}"}) as http:
            while time.monotonic() < stop_at:
                op = rng.random()
                agent = f"soak-{idx % 3}"
                if op < 0.35 or not mine:
                    if len(mine) >= WORKING_SET:  # steady state: replace the oldest
                        r = http.delete(f"/v1/memories/{mine.pop(0)}")
                        if r.status_code != 200:
                            errors.append(f"DELETE: {r.status_code} {r.text[:200]}")
                    r = http.post("/v1/memories", json={"agent_id": agent, "content": rng.choice(texts)})
                    # A text the agent already holds is merged into that memory (the default
                    # duplicate policy): only a memory this client created is its to delete.
                    if r.status_code == 200 and r.json()["created"]:
                        mine.append(r.json()["memory"]["id"])
                        if len(mine) >= WORKING_SET:
                            full[idx].set()
                elif op < 0.80:
                    r = http.post("/v1/memories/recall", json={"agent_id": agent, "query": rng.choice(qs), "top_k": 10})
                elif op < 0.88:
                    r = http.get("/v1/memories", params={"agent_id": agent, "page_size": 20})
                elif op < 0.95:
                    r = http.patch(f"/v1/memories/{rng.choice(mine)}", json={"importance": rng.random()})
                else:
                    r = http.delete(f"/v1/memories/{mine.pop(rng.randrange(len(mine)))}")
                counts[idx] += 1
                if r.status_code != 200:
                    errors.append(f"{r.request.method} {r.request.url.path}: {r.status_code} {r.text[:200]}")

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    # Warm-up: model, indexes and caches settle, the working sets fill.
    warm_from = time.monotonic()
    time.sleep(WARM_UP_S)
    for event in full:
        assert event.wait(max(0.0, warm_from + WARM_UP_MAX_S - time.monotonic())), "working sets never filled"
    stop_at = time.monotonic() + DURATION_S
    rss0, fds0, tables0, threads0 = _process_stats(pid)
    samples = []
    while any(t.is_alive() for t in threads):
        time.sleep(1.0)
        samples.append(_process_stats(pid))
    for t in threads:
        t.join()
    time.sleep(2.0)  # let request handlers finish and idle connections close
    rss1, fds1, tables1, threads1 = _process_stats(pid)
    total = sum(counts)
    drift = (rss1 - rss0) / rss0
    peak = max(s[0] for s in samples) if samples else rss1
    print(f"soak {DURATION_S}s: {total} requests, {len(errors)} errors, RSS {rss0 >> 20}→{rss1 >> 20} MiB "
          f"({drift:+.1%}, peak {peak >> 20} MiB), fds {fds0}→{fds1} (+ RocksDB tables {tables0}→{tables1}), "
          f"threads {threads0}→{threads1}")
    assert not errors, f"{len(errors)} errors, first: {errors[:3]}"
    assert drift < 0.10, f"RSS grew {drift:.1%} after warm-up"
    assert fds1 <= fds0 + 2, f"open file descriptors grew {fds0} → {fds1}"
    assert threads1 <= threads0 + 2, f"threads grew {threads0} → {threads1}"
