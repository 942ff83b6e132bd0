"""What the recall techniques of issue #21 cost: store throughput and recall latency at 10k.

    .venv/bin/python -m bench.retrieval.technique_cost [--n 10000] [--samples 300] [--rounds 2]

The Engine in this process with the bundled model (query and document embedding included), on a
conversational corpus that exercises every technique: the seeded corpus of `bench.load` cut into
sessions of 20 turns, each turn "Speaker: text" with a session id and increasing event times,
stored in batches of 256. Each round stores the corpus twice, once with the techniques off
and once with the defaults, in alternating order (the machine is shared: alternating keeps drift
out of the comparison), then times `recall` on the settled index of each. Wall time and process CPU time are both
reported: on a shared machine the CPU time is the steadier of the two (the figures of each are
medians over the rounds).
"""

from __future__ import annotations

from engram_server import process_tuning

process_tuning.apply()  # the server's process settings (one BLAS thread...), before numpy loads

import argparse  # noqa: E402
import secrets  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from engram_server.engine.config import EngineConfig  # noqa: E402
from engram_server.engine.engine import Engine  # noqa: E402
from engram_server.engine.models import NewMemory, RecallQuery  # noqa: E402

from ..common import corpus, percentiles, queries, write_result  # noqa: E402

AGENT = "bench-cost"
OFF = {"contextual_embedding_weight": 0.0, "speaker_embedding_weight": 0.0}
SPEAKERS = ["Alice", "Bob", "Carmen", "Dmitri", "Elena", "Farid"]


def conversation(n: int) -> list[NewMemory]:
    out = []
    for i, text in enumerate(corpus(n)):
        session = i // 20
        speaker = SPEAKERS[(session * 2 + i % 2) % len(SPEAKERS)]  # two speakers per session
        out.append(
            NewMemory(
                agent_id=AGENT,
                content=f"{speaker}: {text}",
                session_id=f"s{session}",
                event_time=1_700_000_000.0 + 60.0 * i,
            )
        )
    return out


def measure(name: str, overrides: dict[str, Any], items: list[NewMemory], qs: list[str]) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="engram-cost-"))
    cfg = EngineConfig(data_dir=tmp / "data", encryption_key=bytes.fromhex(secrets.token_hex(32)), **overrides)
    engine = Engine.open(cfg)
    try:
        engine.warm_up()
        t0, c0 = time.perf_counter(), time.process_time()
        for i in range(0, len(items), 256):
            engine.store_batch(items[i : i + 256])
        ingest = len(items) / (time.perf_counter() - t0)
        ingest_cpu = len(items) / (time.process_time() - c0)  # per CPU second, all threads
        engine.run_maintenance()
        engine.wait_for_indexes(AGENT, 600)
        for q in qs[:20]:
            engine.recall(RecallQuery(agent_id=AGENT, query=q, top_k=10))
        lat, cpu = [], []
        for q in qs:
            t, c = time.perf_counter(), time.process_time()
            engine.recall(RecallQuery(agent_id=AGENT, query=q, top_k=10))
            lat.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
        r: dict[str, Any] = {
            "ingest_memories_per_s": ingest,
            "ingest_memories_per_cpu_s": ingest_cpu,
            "recall": percentiles(lat),
            "recall_cpu": percentiles(cpu),
        }
        print(
            f"  {name}: ingest {ingest:.0f} memories/s ({ingest_cpu:.0f} per CPU s), recall p50 "
            f"{r['recall']['p50_ms']:.2f} ms (CPU {r['recall_cpu']['p50_ms']:.2f} ms)",
            flush=True,
        )
        return r
    finally:
        engine.close()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--samples", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    items = conversation(args.n)
    qs = queries(args.samples)
    runs: dict[str, list[dict[str, Any]]] = {"off": [], "defaults": []}
    for r in range(args.rounds):
        order = [("off", OFF), ("defaults", {})]
        for name, over in order if r % 2 == 0 else reversed(order):
            runs[name].append(measure(name, over, items, qs))
    summary = {}
    for name, rs in runs.items():
        summary[name] = {
            "ingest_memories_per_s": statistics.median(x["ingest_memories_per_s"] for x in rs),
            "ingest_memories_per_cpu_s": statistics.median(x["ingest_memories_per_cpu_s"] for x in rs),
            "recall_p50_ms": statistics.median(x["recall"]["p50_ms"] for x in rs),
            "recall_cpu_p50_ms": statistics.median(x["recall_cpu"]["p50_ms"] for x in rs),
        }
    off, on = summary["off"], summary["defaults"]
    d_ms = on["recall_p50_ms"] - off["recall_p50_ms"]
    print(
        f"{args.n} memories: ingest {off['ingest_memories_per_s']:.0f} -> {on['ingest_memories_per_s']:.0f} memories/s "
        f"({100 * (on['ingest_memories_per_s'] / off['ingest_memories_per_s'] - 1):+.1f} %), recall p50 "
        f"{off['recall_p50_ms']:.2f} -> {on['recall_p50_ms']:.2f} ms ({d_ms:+.2f} ms)"
    )
    print(
        f"per CPU second: ingest {off['ingest_memories_per_cpu_s']:.0f} -> {on['ingest_memories_per_cpu_s']:.0f} "
        f"({100 * (on['ingest_memories_per_cpu_s'] / off['ingest_memories_per_cpu_s'] - 1):+.1f} %), recall CPU p50 "
        f"{off['recall_cpu_p50_ms']:.2f} -> {on['recall_cpu_p50_ms']:.2f} ms"
    )
    write_result("retrieval-technique-cost", {"memories": args.n, "runs": runs, "summary": summary})


if __name__ == "__main__":
    main()
