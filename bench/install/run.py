"""From a fresh clone to a healthy server: time and bytes of `make serve` on a new machine.

    .venv/bin/python -m bench.install.run                # packages from the local uv cache
    .venv/bin/python -m bench.install.run --cold-cache   # an empty uv cache: every wheel downloaded

Clones this repository's HEAD (committed work only) into a temporary directory and runs
`make serve` there with an empty data directory and an empty model cache, as a newcomer's first
start does: it creates `.venv-serve/` from `requirements/runtime.lock`, installs the server,
builds the bundled model's graphs and serves. Measured:

* seconds from `make serve` to the runtime environment being installed, and to `/health` healthy;
* a second `make serve` on the same clone (everything in place): seconds to healthy;
* bytes of the runtime environment after a store and a recall (Python writes bytecode as modules
  are first imported, so the size is that of a server that has served), of the model cache, and of
  this checkout's development environment (`.venv/`, what `make test` sets up for Python) for
  comparison.

The quick start's store and recall run against the new server before it stops.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from ..common import REPO, dir_size, free_port, write_result

SERVE_STAMP = ".venv-serve/.engram-serve"


def uv_cache_dir() -> str:
    """The uv cache this machine already has (the clone's uv would use it too, by default)."""
    uv = REPO / ".uv" / "bin" / "uv"
    return subprocess.run([uv, "cache", "dir"], check=True, capture_output=True, text=True).stdout.strip()


def make_serve(clone: Path, env: dict[str, str], port: int, timeout: float) -> dict[str, float]:
    """Run `make serve` until /health is healthy; store and recall; stop. Returns the timings."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        ["make", "serve"], cwd=clone, env=env, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    stamp = clone / SERVE_STAMP
    setup_s: float | None = 0.0 if stamp.exists() else None
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=5) as http:
            while True:
                elapsed = time.perf_counter() - started
                if elapsed > timeout:
                    raise TimeoutError(f"not healthy after {timeout:.0f} s")
                if proc.poll() is not None:
                    out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
                    raise RuntimeError(f"make serve exited with {proc.returncode}:\n{out[-4000:]}")
                if setup_s is None and stamp.exists():
                    setup_s = elapsed
                try:
                    if http.get("/health").status_code == 200:
                        healthy_s = elapsed
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.05)
            stored = http.post("/v1/memories", json={
                "agent_id": "assistant", "content": "The user prefers window seats on long flights", "importance": 0.8,
            })
            stored.raise_for_status()
            recalled = http.post("/v1/memories/recall",
                                 json={"agent_id": "assistant", "query": "seat preference", "top_k": 3})
            recalled.raise_for_status()
            assert recalled.json()["memories"], "the stored memory was not recalled"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return {"setup_s": setup_s if setup_s is not None else healthy_s, "healthy_s": healthy_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cold-cache", action="store_true", help="an empty uv cache: every package downloaded")
    parser.add_argument("--timeout", type=float, default=1800.0)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="engram-install-"))
    try:
        clone = work / "engram"
        subprocess.run(["git", "clone", "-q", "--no-hardlinks", str(REPO), str(clone)], check=True)
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=clone, check=True,
                                capture_output=True, text=True).stdout.strip()
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ENGRAM_", "VIRTUAL_ENV", "UV_"))}
        env.update({
            "ENGRAM_PORT": str(port), "ENGRAM_GRPC_PORT": "0", "ENGRAM_DATA_DIR": str(work / "data"),
            "XDG_CACHE_HOME": str(work / "cache"),  # an empty model cache: the graphs are built
            "UV_CACHE_DIR": str(work / "uv-cache") if args.cold_cache else uv_cache_dir(),
        })
        first = make_serve(clone, env, port, args.timeout)
        print(f"fresh clone ({commit}): runtime env installed after {first['setup_s']:.1f} s, "
              f"healthy after {first['healthy_s']:.1f} s", flush=True)
        second = make_serve(clone, env, port, args.timeout)
        print(f"second make serve: healthy after {second['healthy_s']:.1f} s", flush=True)
        runtime_bytes = dir_size(clone / ".venv-serve")
        dev_bytes = dir_size(REPO / ".venv") if (REPO / ".venv").exists() else None
        model_cache = dir_size(work / "cache" / "engram")
        print(f"runtime env {runtime_bytes / 2**20:.0f} MiB, model cache {model_cache / 2**20:.0f} MiB, "
              f"development env {dev_bytes / 2**20 if dev_bytes else 0:.0f} MiB", flush=True)
        write_result("install", {
            "commit": commit,
            "package_cache": "cold" if args.cold_cache else "warm",
            "fresh": first,
            "second_start_healthy_s": second["healthy_s"],
            "runtime_env_bytes": runtime_bytes,
            "model_cache_bytes": model_cache,
            "dev_env_bytes": dev_bytes,
        })
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
