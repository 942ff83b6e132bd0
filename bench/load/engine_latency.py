"""Engine-level recall latency (no transport): the floor the server's figures are compared with.

    .venv/bin/python -m bench.load.engine_latency --sizes 10000 [100000]

Opens the Engine in this process on a fresh data directory, ingests the same seeded corpus as
`bench.load.run` with `store_batch`, lets the index settle (one maintenance round: full segments
sealed into graphs by the worker process, graphs loaded), and times `recall` (query embedding
included) on one thread.
"""

from __future__ import annotations

from engram_server import process_tuning

process_tuning.apply()  # the server's process settings (one BLAS thread...), before numpy loads

import argparse  # noqa: E402
import os
import secrets
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from engram_server.engine.config import EngineConfig
from engram_server.engine.engine import Engine
from engram_server.engine.models import NewMemory, RecallQuery

from ..common import corpus, percentiles, queries, rss_of, write_result

AGENT = "bench-engine"


def measure(n: int, samples: int) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="engram-engine-"))
    engine = Engine.open(EngineConfig(data_dir=tmp / "data", encryption_key=bytes.fromhex(secrets.token_hex(32))))
    try:
        engine.warm_up()
        texts = corpus(n)
        started = time.perf_counter()
        for i in range(0, n, 256):
            engine.store_batch([NewMemory(agent_id=AGENT, content=t) for t in texts[i : i + 256]])
        ingest_s = time.perf_counter() - started
        # Recall is measured on a settled index, as a server spends nearly all its life: the
        # background round that seals full segments into graphs (in the worker process) has run
        # and the graphs are loaded. How long settling took is reported next to it.
        started = time.perf_counter()
        engine.run_maintenance()
        settled = engine.wait_for_indexes(AGENT, 600)
        settle_s = time.perf_counter() - started
        qs = queries(samples)
        for q in qs[:20]:  # warm caches and lazy loads
            engine.recall(RecallQuery(agent_id=AGENT, query=q, top_k=10))
        lat: list[float] = []
        for q in qs:
            t0 = time.perf_counter()
            engine.recall(RecallQuery(agent_id=AGENT, query=q, top_k=10))
            lat.append(time.perf_counter() - t0)
        embed: list[float] = []
        for q in qs[:200]:
            t0 = time.perf_counter()
            engine.embed([q])
            embed.append(time.perf_counter() - t0)
        return {
            "memories": n,
            "ingest_memories_per_s": n / ingest_s,
            "index_settle_s": settle_s,
            "index_settled": settled,
            "recall": percentiles(lat),
            "query_embedding": percentiles(embed),
            "rss_bytes": rss_of(os.getpid()),
        }
    finally:
        engine.close()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000])
    parser.add_argument("--samples", type=int, default=500)
    args = parser.parse_args()
    results: dict[str, Any] = {"sizes": {}}
    for n in args.sizes:
        r = measure(n, args.samples)
        results["sizes"][str(n)] = r
        print(
            f"engine {n}: recall p50 {r['recall']['p50_ms']:.2f} ms p99 {r['recall']['p99_ms']:.2f} ms, "
            f"query embedding p50 {r['query_embedding']['p50_ms']:.2f} ms, ingest {r['ingest_memories_per_s']:.0f}/s "
            f"(index settled {r['index_settle_s']:.0f} s later), "
            f"RSS {r['rss_bytes'] / 2**20:.0f} MiB",
            flush=True,
        )
    write_result("engine", results)


if __name__ == "__main__":
    main()
