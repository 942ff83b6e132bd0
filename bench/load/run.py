"""Latency and throughput: store and recall over gRPC and REST, 1 and 16 concurrent clients.

    .venv/bin/python -m bench.load.run --sizes 10000            # quick (make bench)
    .venv/bin/python -m bench.load.run --sizes 10000 100000     # full (make bench-full)
    .venv/bin/python -m bench.load.run --sizes 10000 --runs 3   # medians of 3 runs

For each corpus size: a fresh server, batched ingest of the seeded corpus (memories/s), then
store and recall latency (p50/p95/p99) and throughput (ops/s) per transport and concurrency;
recall runs `--rounds` windows (3) and reports the median window's throughput. With `--runs N`
the whole measurement runs N times, each on a fresh server, and every figure is the median of
the N runs (each run's own figures are kept under `runs`).
The load generator's own ceiling is measured against `Health` with the same threads and
clients, so a reader can see it was not the bottleneck.
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

from ..clients import GrpcClient, RestClient, make_client
from ..common import ROOT_KEY, ServerProcess, corpus, dir_size, percentiles, queries, running_server, write_result

AGENT = "bench-load"
BATCH = 256


def ingest(server: ServerProcess, n: int, agent: str = AGENT, seed: int = 42) -> dict[str, Any]:
    """Batched ingest over gRPC; returns the rate and the RSS/disk afterwards."""
    texts = corpus(n, seed=seed)
    client = GrpcClient(server.grpc_target)
    started = time.perf_counter()
    for i in range(0, n, BATCH):
        client.batch_store(agent, texts[i : i + BATCH])
    elapsed = time.perf_counter() - started
    client.close()
    return {
        "memories": n,
        "seconds": elapsed,
        "memories_per_s": n / elapsed,
        "rss_bytes": server.rss_bytes(),
        "disk_bytes": dir_size(server.data_dir),
    }


SEAL_THRESHOLD = 20_000  # the server's default: an agent's mutable (exact) segment seals past it


def wait_settled(server: ServerProcess, timeout_s: float = 900.0) -> float:
    """Wait until the background rounds have sealed every full segment into a loaded graph
    (`GET /v1/stats`: fewer exactly searched vectors than one segment, no build pending), so
    latency is measured on the index a server runs with nearly all its life. Returns seconds."""
    import httpx

    started = time.perf_counter()
    with httpx.Client(base_url=server.base_url, headers={"authorization": f"Bearer {ROOT_KEY}"}, timeout=30) as http:
        while time.perf_counter() - started < timeout_s:
            st = http.get("/v1/stats").json()
            if int(st.get("exact_vector_count", 0)) < SEAL_THRESHOLD and int(st.get("pending_index_builds", 0)) == 0:
                return time.perf_counter() - started
            time.sleep(1.0)
    raise TimeoutError(f"index did not settle in {timeout_s:.0f} s: {st}")


def run_concurrent(
    clients: int,
    duration_s: float,
    make: Callable[[], Any],
    op: Callable[[Any, int], None],
    server: ServerProcess | None = None,
    rounds: int = 1,
) -> dict[str, Any]:
    """`clients` threads, each with its own client, calling op in a loop for `rounds` windows of
    duration_s. Latency percentiles are over every call; throughput is the median window's, so
    that one window slowed by the machine (its steal time varies from minute to minute) does
    not decide the figure. With `server`, also the CPU the server used meanwhile: cores in use
    and milliseconds per call (a server short of two cores under 16 clients is waiting on
    something other than CPU)."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    barrier = threading.Barrier(clients + 1)
    window_end = threading.Barrier(clients + 1)
    stop_at = [0.0]

    def worker(idx: int) -> None:
        client = make()
        i = idx
        for _ in range(rounds):
            barrier.wait()
            while time.perf_counter() < stop_at[0]:
                t0 = time.perf_counter()
                try:
                    op(client, i)
                except Exception:  # noqa: BLE001 - a benchmark counts errors, it does not stop
                    errors[idx] += 1
                latencies[idx].append(time.perf_counter() - t0)
                i += clients
            window_end.wait()
        client.close()

    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(clients)]
    for t in threads:
        t.start()
    cpu0 = os.times()
    server_cpu0 = server.cpu_seconds() if server is not None else 0.0
    loop_cpu0 = server.loop_cpu_seconds() if server is not None else 0.0
    wall = 0.0
    per_window: list[float] = []
    for _ in range(rounds):
        before = sum(len(per) for per in latencies)
        stop_at[0] = time.perf_counter() + duration_s
        started = time.perf_counter()
        barrier.wait()
        window_end.wait()
        took = time.perf_counter() - started
        wall += took
        per_window.append((sum(len(per) for per in latencies) - before) / took)
    for t in threads:
        t.join()
    cpu1 = os.times()
    samples = [x for per in latencies for x in per]
    out = {
        **percentiles(samples),
        "ops_per_s": statistics.median(per_window),
        "ops_per_s_windows": per_window,
        "errors": sum(errors),
        "clients": clients,
        # Share of one core the load generator itself used: shows whether it was the bottleneck.
        "generator_cpu_cores": ((cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)) / wall,
    }
    if server is not None:
        used = server.cpu_seconds() - server_cpu0
        out["server_cpu_cores"] = used / wall
        out["server_cpu_ms_per_op"] = used / max(1, len(samples)) * 1000
        out["server_loop_cpu_ms_per_op"] = (server.loop_cpu_seconds() - loop_cpu0) / max(1, len(samples)) * 1000
    return out


def measure(server: ServerProcess, duration_s: float, concurrency: list[int], rounds: int = 1) -> dict[str, Any]:
    qs = queries(2000)
    store_texts = corpus(200_000, seed=99)
    out: dict[str, Any] = {}
    for transport in ("grpc", "rest"):
        def make(transport: str = transport) -> GrpcClient | RestClient:
            return make_client(transport, server.grpc_target, server.base_url)

        for c in concurrency:
            key = f"{transport}_c{c}"
            took: list[float] = []  # the server's own took_ms: engine time of the same calls

            def recall(cl: Any, i: int, took: list[float] = took) -> None:
                cl.recall(AGENT, qs[i % len(qs)], 10)
                took.append(cl.last_took_ms)

            out[f"recall_{key}"] = run_concurrent(c, duration_s, make, recall, server, rounds)
            rec = out[f"recall_{key}"]
            rec["server_took_p50_ms"] = statistics.median(took) if took else None
            # What the transport adds to the engine, from the same calls: client p50 minus the
            # server's own took_ms p50.
            rec["overhead_p50_ms"] = rec["p50_ms"] - rec["server_took_p50_ms"] if took else None
            out[f"store_{key}"] = run_concurrent(
                c,
                duration_s,
                make,
                lambda cl, i: cl.store(AGENT + "-writes", store_texts[i % len(store_texts)]),
                server,
            )
            out[f"generator_ceiling_{key}"] = run_concurrent(c, min(duration_s, 3.0), make, lambda cl, _i: cl.health())
            print(
                f"  {key:>8}: recall p50 {out[f'recall_{key}']['p50_ms']:.2f} ms "
                f"p99 {out[f'recall_{key}']['p99_ms']:.2f} ms {out[f'recall_{key}']['ops_per_s']:.0f}/s | "
                f"store p50 {out[f'store_{key}']['p50_ms']:.2f} ms {out[f'store_{key}']['ops_per_s']:.0f}/s | "
                f"generator ceiling {out[f'generator_ceiling_{key}']['ops_per_s']:.0f}/s",
                flush=True,
            )
    return out


def median_of_runs(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each number the median over the runs (nested dicts alike); window lists concatenated, so
    that every window of every run stays in view."""
    out: dict[str, Any] = {}
    for key, first in runs[0].items():
        values = [r[key] for r in runs if key in r]
        if isinstance(first, dict):
            out[key] = median_of_runs(values)
        elif isinstance(first, list):
            out[key] = [x for v in values for x in v]
        elif isinstance(first, int | float) and not isinstance(first, bool) and None not in values:
            out[key] = statistics.median(values)
        else:
            out[key] = first
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000])
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per measurement")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument(
        "--rounds", type=int, default=3, help="recall windows per transport and concurrency (median throughput)"
    )
    parser.add_argument("--runs", type=int, default=1, help="whole runs, each on a fresh server (medians)")
    args = parser.parse_args()
    results: dict[str, Any] = {"sizes": {}, "runs": args.runs}
    for n in args.sizes:
        runs = []
        for i in range(args.runs):
            print(f"load: {n} memories" + (f", run {i + 1} of {args.runs}" if args.runs > 1 else ""), flush=True)
            with running_server() as server:
                ing = ingest(server, n)
                ing["settle_seconds"] = wait_settled(server)
                print(
                    f"  ingest: {ing['memories_per_s']:.0f} memories/s, RSS {ing['rss_bytes'] / 2**20:.0f} MiB, "
                    f"index settled {ing['settle_seconds']:.0f} s later",
                    flush=True,
                )
                runs.append({"ingest": ing, **measure(server, args.duration, args.concurrency, args.rounds)})
        results["sizes"][str(n)] = median_of_runs(runs) if len(runs) > 1 else runs[0]
        if len(runs) > 1:
            results.setdefault("each_run", {})[str(n)] = runs
    write_result("load", results)


if __name__ == "__main__":
    main()
