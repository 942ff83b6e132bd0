"""Graph search settings vs recall@10 and latency on a 100k segmented index.

cd server && ../.venv/bin/python ../bench/retrieval/vector_tune.py [--vectors real.npy]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from engram_server.engine.index_worker import IndexBuilder
from engram_server.engine.segments import DictSnapshotStore
from engram_server.engine.vector_index import VectorIndex
from vector_latency import clustered


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--seal", type=int, default=20_000)
    ap.add_argument("--vectors")
    args = ap.parse_args()
    n = args.n
    if args.vectors:
        base = np.load(args.vectors)
        rng = np.random.default_rng(1)
        x = base[rng.integers(0, len(base), n)] + 0.02 * rng.standard_normal((n, base.shape[1])).astype(np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
    else:
        x = clustered(n, 384)
    ids = [f"m{i}" for i in range(n)]
    rng = np.random.default_rng(7)
    qs = x[rng.choice(n, 300, replace=False)] + 0.05 * rng.standard_normal((300, x.shape[1])).astype(np.float32)
    qs /= np.linalg.norm(qs, axis=1, keepdims=True)
    sims = qs @ x.T
    truth = [set(np.argsort(-s)[:10]) for s in sims]
    builder = IndexBuilder()
    vi = VectorIndex("g", x.shape[1], DictSnapshotStore(), builder, seal_threshold=args.seal)
    for s in range(0, n, args.seal):
        vi.add(ids[s : s + args.seal], x[s : s + args.seal])
        vi.maintenance()
    vi.wait_ready()
    print([(s["recall"], s["build_seconds"]) for s in vi.stats()["segments"]])
    for eps in (0.1, 0.2, 0.3):
        for fac in (1.0, 2.0, 3.0):
            vi.search_epsilon, vi.search_k_factor = eps, fac
            lat, hit = [], 0
            for q, t in zip(qs, truth, strict=True):
                t0 = time.perf_counter()
                got = vi.search(q, 10)
                lat.append((time.perf_counter() - t0) * 1000)
                hit += len({int(g[0][1:]) for g in got} & t)
            lat.sort()
            print(
                f"eps={eps} k_factor={fac}: recall@10 {hit / (10 * len(qs)):.3f} "
                f"p50 {statistics.median(lat):.3f} ms p95 {lat[int(0.95 * len(lat))]:.3f} ms",
                flush=True,
            )
    builder.close()


if __name__ == "__main__":
    main()
