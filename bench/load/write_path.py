"""What the change stream and duplicate detection cost on the write path (engine, no transport).

    .venv/bin/python -m bench.load.write_path [--memories 2048] [--rounds 3]

Stores the seeded corpus of `bench.load.run` into a fresh data directory under four settings,
interleaved round by round (so machine noise falls on all alike), with the bundled model:

* `baseline`: no change stream (`event_retention_seconds = 0`), duplicate policy off;
* `events`: the change stream on (the default), policy off;
* `events+exact`: the server's default (a store that names no policy);
* `events+near`: near-duplicate detection on every store.

Each in batches of 64 and as single stores (one memory per call, the agent turn's case), then a
ConsolidateMemories dry run over the batch-stored agent. Figures: median memories/s over the
rounds, each setting's ratio to the baseline, and the dry run's median seconds.
"""

# ruff: noqa: E402 - process_tuning must run before numpy is imported
from __future__ import annotations

from engram_server import process_tuning

process_tuning.apply()

import argparse
import secrets
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from engram_server.engine.config import EngineConfig
from engram_server.engine.engine import Engine
from engram_server.engine.models import DuplicatePolicy, NewMemory, StoreOutcome

from ..common import corpus, write_result

SETTINGS: dict[str, tuple[float, DuplicatePolicy]] = {
    "baseline": (0.0, DuplicatePolicy.OFF),
    "events": (7 * 86400.0, DuplicatePolicy.OFF),
    "events+exact": (7 * 86400.0, DuplicatePolicy.EXACT),
    "events+near": (7 * 86400.0, DuplicatePolicy.NEAR),
}
AGENT = "bench-writes"


def run_once(retention: float, policy: DuplicatePolicy, texts: list[str], singles: int) -> dict[str, float]:
    tmp = Path(tempfile.mkdtemp(prefix="engram-writes-"))
    cfg = EngineConfig(
        data_dir=tmp / "data",
        encryption_key=bytes.fromhex(secrets.token_hex(32)),
        event_retention_seconds=retention,
    )
    engine = Engine.open(cfg, background=False)
    try:
        engine.warm_up()
        merged = 0
        t0 = time.perf_counter()
        for i in range(0, len(texts), 64):
            res = engine.store_batch([NewMemory(AGENT, t, duplicate_policy=policy) for t in texts[i : i + 64]])
            merged += sum(1 for _, o in res if o is StoreOutcome.MERGED)
        batch_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        for t in texts[:singles]:
            engine.store(NewMemory(AGENT + "-single", t, duplicate_policy=policy))
        single_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        groups = engine.consolidate(AGENT, 0.95, dry_run=True)
        consolidate_s = time.perf_counter() - t0
        return {
            "batch_per_s": len(texts) / batch_s,
            "single_per_s": singles / single_s,
            "merged": merged,
            "consolidate_dry_run_s": consolidate_s,
            "groups": len(groups),
        }
    finally:
        engine.close()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--memories", type=int, default=2048)
    parser.add_argument("--singles", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    texts = corpus(args.memories)
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in SETTINGS}
    for r in range(args.rounds):
        for name, (retention, policy) in SETTINGS.items():
            runs[name].append(run_once(retention, policy, texts, args.singles))
            last = runs[name][-1]
            print(f"round {r + 1} {name}: batch {last['batch_per_s']:.0f}/s, single {last['single_per_s']:.0f}/s")
    out: dict[str, Any] = {"memories": args.memories, "singles": args.singles, "rounds": args.rounds, "settings": {}}
    base = {k: statistics.median(x[k] for x in runs["baseline"]) for k in ("batch_per_s", "single_per_s")}
    for name, rs in runs.items():
        med = {k: statistics.median(x[k] for x in rs) for k in ("batch_per_s", "single_per_s")}
        out["settings"][name] = {
            **med,
            "batch_ratio": med["batch_per_s"] / base["batch_per_s"],
            "single_ratio": med["single_per_s"] / base["single_per_s"],
            "merged": rs[-1]["merged"],
            "consolidate_dry_run_s": statistics.median(x["consolidate_dry_run_s"] for x in rs),
            "groups": rs[-1]["groups"],
        }
        s = out["settings"][name]
        print(
            f"{name:14s} batch {s['batch_per_s']:6.0f}/s ({s['batch_ratio']:.2f}x)  "
            f"single {s['single_per_s']:6.0f}/s ({s['single_ratio']:.2f}x)  merged {s['merged']}",
            flush=True,
        )
    write_result("write_path", out)


if __name__ == "__main__":
    main()
