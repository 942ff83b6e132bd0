"""Vector search latency and graph recall at 10k / 100k vectors: exact numpy vs sealed graph.

Uses real MiniLM embeddings when --texts is given (LoCoMo turns plus synthetic variations),
otherwise clustered synthetic unit vectors. Builds go through the IndexBuilder worker.

    cd server && ../.venv/bin/python ../bench/retrieval/vector_latency.py --sizes 10000 100000
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from engram_server.engine.index_worker import IndexBuilder
from engram_server.engine.segments import DictSnapshotStore
from engram_server.engine.vector_index import VectorIndex


def clustered(n: int, dim: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(10, n // 200), dim))
    x = centres[rng.integers(0, len(centres), n)] + 0.5 * rng.standard_normal((n, dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32)


def measure(vi: VectorIndex, qs: np.ndarray, k: int) -> tuple[float, float]:
    lat = []
    for q in qs:
        t0 = time.perf_counter()
        vi.search(q, k)
        lat.append((time.perf_counter() - t0) * 1000)
    lat.sort()
    return statistics.median(lat), lat[int(0.95 * len(lat))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--seal", type=int, default=20_000)
    ap.add_argument("--vectors", help=".npy of real embeddings to use instead of synthetic")
    args = ap.parse_args()
    builder = IndexBuilder()
    base = np.load(args.vectors) if args.vectors else None
    for n in args.sizes:
        if base is not None:
            rng = np.random.default_rng(1)
            idx = rng.integers(0, len(base), n)
            x = base[idx] + 0.02 * rng.standard_normal((n, base.shape[1])).astype(np.float32)
            x /= np.linalg.norm(x, axis=1, keepdims=True)
        else:
            x = clustered(n, args.dim)
        ids = [f"m{i}" for i in range(n)]
        rng = np.random.default_rng(7)
        qs = x[rng.choice(n, 200, replace=False)] + 0.05 * rng.standard_normal((200, x.shape[1])).astype(np.float32)
        qs /= np.linalg.norm(qs, axis=1, keepdims=True)
        exact = VectorIndex("e", x.shape[1], DictSnapshotStore(), builder, seal_threshold=10**9)
        exact.add(ids, x)
        p50, p95 = measure(exact, qs, 10)
        print(f"n={n} exact: p50 {p50:.3f} ms p95 {p95:.3f} ms", flush=True)
        truth = [{h[0] for h in exact.search(q, 10)} for q in qs]
        vi = VectorIndex("g", x.shape[1], DictSnapshotStore(), builder, seal_threshold=args.seal)
        for s in range(0, n, args.seal):
            vi.add(ids[s : s + args.seal], x[s : s + args.seal])
            t0 = time.perf_counter()
            vi.maintenance()
            print(f"  seal {s // args.seal}: {time.perf_counter() - t0:.1f} s", flush=True)
        vi.wait_ready()
        st = vi.stats()
        print(
            "  segments:",
            [(s["size"], s["state"], s["recall"], s["build_seconds"]) for s in st["segments"]],
            "mutable",
            st["mutable"],
        )
        p50, p95 = measure(vi, qs, 10)
        rec = np.mean([len({h[0] for h in vi.search(q, 10)} & t) / 10 for q, t in zip(qs, truth, strict=True)])
        print(
            f"n={n} segmented graph: p50 {p50:.3f} ms p95 {p95:.3f} ms recall@10 vs exact {rec:.3f}",
            flush=True,
        )
    builder.close()


if __name__ == "__main__":
    main()
