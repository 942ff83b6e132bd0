"""Cold start: process start → /health healthy, and → first successful recall, over a data dir
with N memories persisted (made by `bench.scale.run --keep-dir`, or built here).

    .venv/bin/python -m bench.coldstart.run --data-dir bench/results/.data --runs 5
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from ..common import ROOT_KEY, ServerProcess, write_result
from ..load.run import ingest

AGENT = "bench-scale"
LOADED_AFTER_S = 10.0


def one_start(data_dir: Path, key: str) -> dict[str, float]:
    server = ServerProcess(data_dir=data_dir, encryption_key=key)
    try:
        healthy = server.start(wait=True)
        body = {"agent_id": AGENT, "query": "who is moving to Lisbon", "top_k": 10}
        with httpx.Client(timeout=60, headers={"authorization": f"Bearer {ROOT_KEY}"}) as http:
            while True:
                resp = http.post(f"{server.base_url}/v1/memories/recall", json=body)
                if resp.status_code == 200 and resp.json().get("memories"):
                    break
                time.sleep(0.005)
        first_recall = time.perf_counter() - server.started_at
        # The first recall loads the agent; its graphs follow in the background. RSS once they
        # have: what a freshly started server holds with these memories (no ingest residue).
        time.sleep(LOADED_AFTER_S)
        rss_loaded = server.rss_bytes()
    finally:
        server.stop()
    return {"to_healthy_s": healthy, "to_first_recall_s": first_recall, "rss_loaded_bytes": rss_loaded}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=None, help="dir kept by bench.scale.run --keep-dir")
    parser.add_argument("--size", type=int, default=10_000, help="memories to load when no --data-dir")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    tmp: Path | None = None
    if args.data_dir is not None and (args.data_dir / "key").exists():
        data_dir, key = args.data_dir / "data", (args.data_dir / "key").read_text().strip()
        size = int((args.data_dir / "size").read_text())
    else:
        tmp = Path(tempfile.mkdtemp(prefix="engram-cold-"))
        data_dir, key, size = tmp / "data", secrets.token_hex(32), args.size
        server = ServerProcess(data_dir=data_dir, encryption_key=key)
        server.start()
        ingest(server, size, agent=AGENT)
        server.stop()
    runs = [one_start(data_dir, key) for _ in range(args.runs)]
    result: dict[str, Any] = {
        "memories": size,
        "runs": runs,
        "to_healthy_median_s": statistics.median(r["to_healthy_s"] for r in runs),
        "to_first_recall_median_s": statistics.median(r["to_first_recall_s"] for r in runs),
        "rss_loaded_median_bytes": statistics.median(r["rss_loaded_bytes"] for r in runs),
    }
    print(
        f"coldstart {size}: healthy {result['to_healthy_median_s']:.2f} s, "
        f"first recall {result['to_first_recall_median_s']:.2f} s (median of {args.runs}), "
        f"RSS {LOADED_AFTER_S:.0f} s after it {result['rss_loaded_median_bytes'] / 2**20:.0f} MiB",
        flush=True,
    )
    write_result("coldstart", result)
    if tmp is not None:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
