"""Embedding latency: single query p50/p95 and batch-32 throughput, int8 vs float32 graphs.

.venv/bin/python bench/retrieval/embed_latency.py [--threads 2] [--cache /tmp/engram-models]
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from engram_server.engine.embedding import Embedder, default_model_spec

SENTENCES = [
    "What did Caroline research last week?",
    "Melanie: I went camping with my kids at the lake and we roasted marshmallows.",
    "The deployment failed with error code E1234 because the disk was full.",
    "User prefers dark mode and vim keybindings in every editor they use.",
]


def bench(emb: Embedder, texts: list[str], n: int = 200) -> dict[str, float]:
    for t in SENTENCES * 5:
        emb.embed_query(t)
    lat = []
    for i in range(n):
        t0 = time.perf_counter()
        emb.embed_query(SENTENCES[i % len(SENTENCES)])
        lat.append((time.perf_counter() - t0) * 1000)
    lat.sort()
    batch = texts[:32]
    emb.embed_documents(batch)
    t0 = time.perf_counter()
    reps = 10
    for _ in range(reps):
        emb.embed_documents(batch)
    dt = time.perf_counter() - t0
    return {
        "single_p50_ms": statistics.median(lat),
        "single_p95_ms": lat[int(0.95 * len(lat))],
        "batch32_ms": dt / reps * 1000,
        "batch32_texts_per_s": 32 * reps / dt,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--arena", type=int, default=1)
    ap.add_argument("--cache", default="/tmp/engram-models")
    args = ap.parse_args()
    f32 = default_model_spec(Path(args.cache))
    int8 = default_model_spec(None)
    rng = np.random.default_rng(0)
    words = " ".join(SENTENCES).split()
    texts = [" ".join(rng.choice(words, size=int(rng.integers(8, 40)))) for _ in range(32)]
    res = {}
    for name, spec in (("int8", int8), ("float32", f32)):
        t0 = time.perf_counter()
        emb = Embedder(replace(spec), threads=args.threads, arena=bool(args.arena))
        load = (time.perf_counter() - t0) * 1000
        r = bench(emb, texts)
        r["load_ms"] = load
        res[name] = (emb, r)
        print(name, spec.onnx_path.name, {k: round(v, 2) for k, v in r.items()})
    a = res["int8"][0].embed_documents(texts + SENTENCES)
    b = res["float32"][0].embed_documents(texts + SENTENCES)
    cos = (a * b).sum(1)
    print(f"cosine int8 vs float32: min {cos.min():.4f} mean {cos.mean():.4f}")


if __name__ == "__main__":
    main()
