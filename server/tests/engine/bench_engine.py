"""Engine figures (not a test): group commit, store/recall latency, cold open at scale, RSS.

cd server && ../.venv/bin/python tests/engine/bench_engine.py [--n 100000]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import threading
import time
from pathlib import Path

from conftest import FakeEmbedder, open_engine
from engram_server.engine.models import NewMemory, RecallQuery
from engram_server.engine.storage import CF_RECORDS


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def group_commit(tmp: Path) -> None:
    eng = open_engine(tmp / "gc")
    st = eng.storage
    payload = b"x" * 300

    def writes(n: int, tag: str) -> None:
        for i in range(n):
            b = st.batch()
            b.put(CF_RECORDS, f"bench\x00{tag}-{i}".encode(), payload)
            st.write(b)

    n = 200
    t0 = time.perf_counter()
    writes(n, "serial")
    serial = n / (time.perf_counter() - t0)
    g0, b0 = st.commit_stats
    threads = [threading.Thread(target=writes, args=(n, f"t{t}")) for t in range(16)]
    t0 = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    conc = 16 * n / (time.perf_counter() - t0)
    g1, b1 = st.commit_stats
    print(
        f"group commit: 1 writer {serial:.0f} synced writes/s; 16 writers {conc:.0f} writes/s "
        f"({conc / serial:.1f}x), {(b1 - b0) / max(1, g1 - g0):.1f} batches per fsync"
    )
    lat = []
    for i in range(200):
        t = time.perf_counter()
        eng.store(NewMemory("lat", f"latency probe number {i} with some words"))
        lat.append((time.perf_counter() - t) * 1000)
    rl = []
    for i in range(200):
        t = time.perf_counter()
        eng.recall(RecallQuery("lat", f"probe {i} words", top_k=10))
        rl.append((time.perf_counter() - t) * 1000)
    q = statistics.quantiles
    print(
        f"store (fake embedder) p50 {q(lat, n=100)[49]:.2f} ms p99 {q(lat, n=100)[98]:.2f} ms; "
        f"recall p50 {q(rl, n=100)[49]:.2f} ms p99 {q(rl, n=100)[98]:.2f} ms (200 memories)"
    )
    eng.close()


def cold_open(tmp: Path, n: int) -> None:
    d = tmp / "cold"
    emb = FakeEmbedder(384)
    eng = open_engine(d, embedder=emb)
    t0 = time.perf_counter()
    words = [f"w{i}" for i in range(5000)]
    for start in range(0, n, 500):
        eng.store_batch(
            [
                NewMemory(
                    "big",
                    " ".join(words[(j * 7 + k * 13) % 5000] for k in range(12)) + f" item{j}",
                    tags=[f"t{j % 10}"],
                )
                for j in range(start, min(n, start + 500))
            ]
        )
    print(f"stored {n} memories in {time.perf_counter() - t0:.1f}s; RSS {rss_mb():.0f} MB")
    t0 = time.perf_counter()
    eng.run_maintenance()  # seals the indexes' full segments as the background would
    print(f"maintenance {time.perf_counter() - t0:.1f}s")
    eng.close()
    rss_before = rss_mb()
    t0 = time.perf_counter()
    eng = open_engine(d, embedder=emb)
    t_open = time.perf_counter() - t0
    t1 = time.perf_counter()
    res = eng.recall(RecallQuery("big", "w10 w20 item5", top_k=10))
    t_first = time.perf_counter() - t1
    t2 = time.perf_counter()
    for _ in range(20):
        eng.recall(RecallQuery("big", "w11 w29 item77", top_k=10))
    warm = (time.perf_counter() - t2) / 20 * 1000
    print(
        f"cold open {t_open * 1000:.0f} ms; first recall (loads the agent) {t_first * 1000:.0f} ms; "
        f"warm recall {warm:.1f} ms; {len(res.memories)} results; RSS {rss_mb():.0f} MB "
        f"(+{rss_mb() - rss_before:.0f} MB for the loaded agent); "
        f"max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB"
    )
    eng.close()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--skip-cold", action="store_true")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as t:
        group_commit(Path(t))
        if not a.skip_cold:
            cold_open(Path(t), a.n)
