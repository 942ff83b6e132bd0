"""The GIL switch interval's effect on the server: CPython's 5 ms against shorter ones (the
server keeps 5 ms; docs/design/transport.md has the ablations and why).

    .venv/bin/python -m bench.load.gil_switch [--rounds 5] [--intervals 0.005 0.001]

Each round starts one fresh server per interval (interleaved, so machine noise falls on all
alike), ingests the 10k corpus of `bench.load.run` and runs its measurement (1 and 16 clients,
gRPC and REST). The server runs as `engram-server serve` does, except that the interval is set
after `process_tuning.apply()`. Prints each round, then the medians and in how many rounds each
interval was the better one.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from ..common import ServerProcess, write_result
from .run import ingest, measure, wait_settled

# The server, with the interval set after the server's own process settings.
_LAUNCHER = """\
import sys
from engram_server import process_tuning
process_tuning.apply()
sys.setswitchinterval(float(sys.argv.pop(1)))
from engram_server.cli import main
sys.exit(main(sys.argv[1:]))
"""

FIGURES = {  # name: (key in measure()'s result, field, higher is better)
    "grpc_c1_p50_ms": ("recall_grpc_c1", "p50_ms", False),
    "grpc_c1_overhead_ms": ("recall_grpc_c1", "overhead_p50_ms", False),
    "grpc_c16_per_s": ("recall_grpc_c16", "ops_per_s", True),
    "grpc_c16_p99_ms": ("recall_grpc_c16", "p99_ms", False),
    "rest_c1_per_s": ("recall_rest_c1", "ops_per_s", True),
    "rest_c16_per_s": ("recall_rest_c16", "ops_per_s", True),
}


def one_run(interval: str, workdir: Path, memories: int, duration: float) -> dict[str, float]:
    launcher = workdir / "launcher.py"
    launcher.write_text(_LAUNCHER)
    wrapper = workdir / f"engram-server-{interval}"
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} {launcher} {interval} "$@"\n')
    wrapper.chmod(0o755)
    data = Path(tempfile.mkdtemp(dir=workdir)) / "data"
    server = ServerProcess(data_dir=data, encryption_key=secrets.token_hex(32), server_bin=wrapper)
    server.start()
    try:
        ingest(server, memories)
        wait_settled(server)
        result: dict[str, Any] = measure(server, duration, [1, 16])
    finally:
        server.stop()
    return {name: float(result[key][fld]) for name, (key, fld, _) in FIGURES.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--intervals", nargs="+", default=["0.005", "0.001"], help="seconds; the first is the baseline")
    parser.add_argument("--memories", type=int, default=10_000)
    parser.add_argument("--duration", type=float, default=6.0, help="seconds per measurement")
    args = parser.parse_args()
    rows: dict[str, list[dict[str, float]]] = {i: [] for i in args.intervals}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for interval in args.intervals:
                row = one_run(interval, Path(tmp), args.memories, args.duration)
                rows[interval].append(row)
                print(f"round {r + 1} interval {interval}: " + ", ".join(f"{k} {v:.2f}" for k, v in row.items()), flush=True)
    base = args.intervals[0]
    summary: dict[str, Any] = {}
    print(f"\n{'figure':<22}" + "".join(f"{i:>12}" for i in args.intervals) + "   rounds better than " + base)
    for name, (_, _, higher) in FIGURES.items():
        medians = {i: statistics.median(x[name] for x in rows[i]) for i in args.intervals}
        better = {
            i: sum((a[name] > b[name]) == higher and a[name] != b[name] for a, b in zip(rows[i], rows[base], strict=True))
            for i in args.intervals[1:]
        }
        summary[name] = {"medians": medians, "rounds_better": better}
        print(
            f"{name:<22}" + "".join(f"{medians[i]:>12.2f}" for i in args.intervals) + "   "
            + ", ".join(f"{i}: {n} of {args.rounds}" for i, n in better.items())
        )
    write_result("gil_switch", {"rounds": args.rounds, "intervals": args.intervals, "runs": rows, "summary": summary})


if __name__ == "__main__":
    main()
