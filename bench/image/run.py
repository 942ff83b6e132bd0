"""The container image: its size, its size by layer, and seconds from `podman run` to healthy.

    .venv/bin/python -m bench.image.run [--runs 5]

Builds the image as `make image` does (or reuses the one built from the same inputs), then starts
it `--runs` times on a new, empty named volume (a first start: the encryption key is generated
and the database created) and as many times on a volume that already holds data (a new
container of an upgrade or a restart), each published on a free loopback port. A start is timed
from the `podman run -d` call to the first 200 of `GET /health` through the published port; each
container is then stopped with SIGTERM (`podman stop`), timed too. Also measured: the image's
size (uncompressed, as `podman images` shows it), each layer's, and the OCI archive `make
image-save` writes (compressed layers: what a user downloads or copies).
"""

from __future__ import annotations

import argparse
import contextlib
import secrets
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from tools import image as img

from ..common import free_port, write_result

# What each layer of deploy/Containerfile holds, by a piece of the instruction that made it.
LAYERS = [
    ("ADD file:", f"Debian {img.SUITE} minbase + {', '.join(img.BASE_PACKAGES)} (mmdebstrap)"),
    ("groupadd", "the image's user"),
    ("in /opt/engram/bin/engram-server", "the engram-server command"),
    ("in /opt/engram", "Python packages of requirements/runtime.lock, with bytecode (/opt/engram)"),
    ("engram_server", "the server's package"),
    ("engram_memory_serv", "the server's package metadata"),
    ("in /var/cache/engram", "the bundled model's int8 graph, prepared"),
    ("engram-entrypoint", "the entrypoint"),
    ("healthcheck.py", "the health check"),
]


def describe(created_by: str) -> str:
    return next((what for key, what in LAYERS if key in created_by), created_by[:60])


def start_to_healthy(ref: str, volume: str, key: str, timeout: float = 120) -> dict[str, float]:
    name = f"engram-bench-{secrets.token_hex(3)}"
    port = free_port()
    env = {**img.podman_env(), "ENGRAM_API_KEY": key}
    started = time.perf_counter()
    subprocess.run(["podman", "run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:3300", "-v", f"{volume}:/data",
                    "-e", "ENGRAM_API_KEY", ref], env=env, check=True, capture_output=True, timeout=timeout)
    run_returned = time.perf_counter() - started
    try:
        with httpx.Client(timeout=1) as http:
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if http.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                        break
                if time.perf_counter() - started > timeout:
                    raise TimeoutError(f"not healthy after {timeout} s")
                time.sleep(0.005)
        healthy = time.perf_counter() - started
        t0 = time.perf_counter()
        img.podman("stop", "-t", "30", name)
        stop = time.perf_counter() - t0
        code = img.podman("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip()
        assert code == "0", f"exit code {code}"
    finally:
        img.podman("rm", "-f", "-t", "0", name, check=False)
    return {"run_returned_s": run_returned, "healthy_s": healthy, "stop_s": stop}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    started = time.perf_counter()
    ref = img.build()
    build_s = time.perf_counter() - started
    data = img.inspect(ref)
    layers = [{**layer, "what": describe(layer["created_by"])} for layer in img.layers(ref)]
    with tempfile.TemporaryDirectory(prefix="engram-image-") as tmp:
        archive = img.save(Path(tmp) / "engram-server.oci.tar")
        archive_bytes = archive.stat().st_size

    key = "bench-image-" + secrets.token_urlsafe(24)
    fresh, existing = [], []
    kept = f"engram-bench-{secrets.token_hex(3)}"
    img.podman("volume", "create", kept)
    try:
        for i in range(args.runs):
            volume = f"engram-bench-{secrets.token_hex(3)}"
            img.podman("volume", "create", volume)
            try:
                fresh.append(start_to_healthy(ref, volume, key))
            finally:
                img.podman("volume", "rm", "-f", volume, check=False)
            existing.append(start_to_healthy(ref, kept, key))
            print(f"run {i + 1}: healthy after {fresh[-1]['healthy_s']:.2f} s (new volume), "
                  f"{existing[-1]['healthy_s']:.2f} s (existing volume)", flush=True)
    finally:
        img.podman("volume", "rm", "-f", kept, check=False)

    def median(runs: list[dict[str, float]], k: str) -> float:
        return statistics.median(r[k] for r in runs)

    result: dict[str, Any] = {
        "image": ref,
        "image_id": data["Id"],
        "inputs": data["Config"]["Labels"].get(img.INPUTS_LABEL),
        "revision": data["Config"]["Labels"].get("org.opencontainers.image.revision"),
        "podman": img.podman("version", "--format", "{{.Client.Version}}").stdout.strip(),
        "build_or_reuse_s": build_s,
        "size_bytes": int(data["Size"]),
        "archive_bytes": archive_bytes,
        "layers": layers,
        "runs": {"new_volume": fresh, "existing_volume": existing},
        "healthy_new_volume_median_s": median(fresh, "healthy_s"),
        "healthy_existing_volume_median_s": median(existing, "healthy_s"),
        "stop_median_s": median(fresh + existing, "stop_s"),
    }
    print(f"{ref}: {result['size_bytes'] / 1e6:.0f} MB ({archive_bytes / 1e6:.0f} MB as an OCI archive); healthy "
          f"after {result['healthy_new_volume_median_s']:.2f} s (new volume), "
          f"{result['healthy_existing_volume_median_s']:.2f} s (existing), median of {args.runs}")
    write_result("image", result)


if __name__ == "__main__":
    main()
