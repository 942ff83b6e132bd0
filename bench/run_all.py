"""Runs every harness in order and writes docs/benchmarks.md.

    .venv/bin/python -m bench.run_all           # quick: 10k memories (make bench, ≤ 10 min on 2 cores)
    .venv/bin/python -m bench.run_all --full    # 10k and 100k (make bench-full)

Each harness is its own process so one's memory and threads do not skew the next.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from .common import REPO, RESULTS_DIR

PEERS_PYTHON = REPO / "bench" / ".peers-venv" / "bin" / "python"


def run(module: str, *args: str, python: str = sys.executable) -> None:
    print(f"\n== {module} {' '.join(args)}", flush=True)
    started = time.perf_counter()
    subprocess.run([python, "-m", module, *args], cwd=REPO, check=True)
    print(f"== {module} done in {time.perf_counter() - started:.0f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true")
    args = parser.parse_args()
    sizes = ["10000", "100000"] if args.full else ["10000"]
    keep = str(RESULTS_DIR / ".data")
    run("bench.retrieval.run")
    run("bench.load.engine_latency", "--sizes", *sizes)
    run("bench.load.run", "--sizes", *sizes, "--duration", "10" if args.full else "5")
    run("bench.scale.run", "--sizes", *sizes, "--keep-dir", keep)
    run("bench.coldstart.run", "--data-dir", keep, "--runs", "5" if args.full else "3")
    run("bench.load.write_path")
    run("bench.install.run")
    if PEERS_PYTHON.exists():
        run("bench.peers.run", "--size", "10000", python=str(PEERS_PYTHON))
    else:
        print(f"\n== bench.peers skipped: {PEERS_PYTHON} missing (make bench installs it)", flush=True)
    run("bench.report")


if __name__ == "__main__":
    main()
