"""Writes docs/benchmarks.md and its PNG plots from the JSON under bench/results/.

    .venv/bin/python -m bench.report
"""

from __future__ import annotations

import json
from typing import Any

from .common import REPO, RESULTS_DIR

DOC = REPO / "docs" / "benchmarks.md"
IMG = REPO / "docs" / "img"
CATS = ["single-hop", "multi-hop", "temporal", "open-domain", "overall"]


def _read(name: str) -> dict[str, Any] | None:
    path = RESULTS_DIR / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _measured(result: dict[str, Any]) -> str:
    """Each section says when it was measured: `make bench` may refresh only some results."""
    return f"*Measured {result.get('machine', {}).get('date', '?')}.*"


def _seconds(value: float | None) -> str:
    return f"{value:.0f} s" if value is not None else "n/a"


def _mib(n: float) -> str:
    return f"{n / 2**20:.0f} MiB"


def _mb(n: float) -> str:
    """Decimal megabytes, as container tools show image sizes."""
    return f"{n / 1e6:.0f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"


def plot_retrieval(ret: dict[str, Any]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = {"BM25 baseline": ret["bm25_baseline"], **{f"Engram {m}": r for m, r in ret["engram"].items()}}
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / len(series)
    for i, (name, summary) in enumerate(series.items()):
        ax.bar([c + i * width for c in range(len(CATS))], [summary[c]["recall@10"] for c in CATS], width, label=name)
    ax.set_xticks([c + width * (len(series) - 1) / 2 for c in range(len(CATS))], CATS)
    ax.set_ylabel("recall@10 (%)")
    ax.set_title("LoCoMo dev: recall@10 per category")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = IMG / "bench-retrieval.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def plot_latency(load: dict[str, Any]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names: list[str] = []
    for size, run in load["sizes"].items():
        keys = sorted(k for k in run if k.startswith(("recall_", "store_")))
        fig, ax = plt.subplots(figsize=(9, 4))
        for j, pct in enumerate(("p50_ms", "p95_ms", "p99_ms")):
            ax.bar([i + j * 0.27 for i in range(len(keys))], [run[k][pct] for k in keys], 0.27, label=pct.replace("_ms", ""))
        ax.set_xticks([i + 0.27 for i in range(len(keys))], [k.replace("_", "\n") for k in keys], fontsize=7)
        ax.set_ylabel("latency (ms)")
        ax.set_yscale("log")
        ax.set_title(f"Latency at {int(size):,} memories")
        ax.legend()
        fig.tight_layout()
        path = IMG / f"bench-latency-{size}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        names.append(path.name)
    fig, ax = plt.subplots(figsize=(6, 4))
    for size, run in load["sizes"].items():
        for op in ("recall", "store"):
            for transport in ("grpc", "rest"):
                pts = sorted((v["clients"], v["ops_per_s"]) for k, v in run.items() if k.startswith(f"{op}_{transport}_c"))
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"{op} {transport} @{int(size) // 1000}k")
    ax.set_xlabel("concurrent clients")
    ax.set_ylabel("operations / s")
    ax.set_title("Throughput vs clients")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = IMG / "bench-throughput.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    names.append(path.name)
    return names


def render() -> str:
    IMG.mkdir(parents=True, exist_ok=True)
    names = ("retrieval", "load", "scale", "coldstart", "peers", "engine", "install", "write_path", "image", "cluster")
    ret, load, scale, cold, peers, engine, install, writes, image, cluster = (_read(n) for n in names)
    machine = next((r["machine"] for r in (load, ret, scale, cold, peers) if r), {})
    out = [
        "# Benchmarks",
        "",
        "Figures from the harnesses under `bench/`, run through Engram's public API against a real",
        "server on loopback. Reproduce them with `make bench` (10k memories, about 10 minutes on 2 cores)",
        "or `make bench-full` (adds 100k). Each harness writes JSON to `bench/results/`; this page is",
        "generated from it by `python -m bench.report`. Medians and percentiles; the machines are noisy.",
        "",
        f"**Machine:** {machine.get('cpu', '?')}, {machine.get('cores', '?')} cores, "
        f"{machine.get('memory_bytes', 0) / 2**30:.0f} GiB, Python {machine.get('python', '?')}. Each section",
        "gives the date it was measured; instances of this machine type differ by up to 2x in single-core",
        "speed (query embedding p50 measured 3.7-8 ms on different days), so compare figures of one date.",
        "",
    ]
    if ret:
        out += [
            "## Retrieval quality (LoCoMo dev split)",
            "",
            _measured(ret),
            "",
            "One memory per dialog turn, one agent per conversation, recall with each question of",
            "categories 1-4 (`python -m bench.retrieval.run`). The baseline is plain BM25 (bm25s, English",
            "stopwords, Snowball stemmer) over the same turns, computed in the same run.",
            "",
            "| system | category | questions | recall@5 | recall@10 | nDCG@10 |",
            "|---|---|---:|---:|---:|---:|",
        ]
        for name, summary in [("BM25 baseline", ret["bm25_baseline"])] + [(f"Engram {m}", r) for m, r in ret["engram"].items()]:
            for cat in CATS:
                s = summary[cat]
                out.append(f"| {name} | {cat} | {s['questions']} | {s['recall@5']:.1f} | {s['recall@10']:.1f} | {s['ndcg@10']:.1f} |")
        out += ["", f"![recall per category]({'img/' + plot_retrieval(ret)})", ""]
    if load:
        out += [
            "## Latency and throughput",
            "",
            _measured(load),
            "",
            "`python -m bench.load.run`: a seeded synthetic corpus (`bench/common.py`: first-person facts,",
            "events, preferences and procedures from templates) ingested in batches of 256 over gRPC; once the",
            "index has settled (`GET /v1/stats`: full segments sealed into loaded graphs), each operation in a",
            "closed loop by 1 and 16 client threads, each with its own channel or",
            "HTTP client. The *generator ceiling* is the same loop against `Health`: the most the load",
            "generator can issue, so an operation far below it was limited by the server.",
            "",
            "*Server CPU*: the CPU the server process used during the run, per operation and in cores (of 2);",
            "a server using well under its cores is waiting on something else (the GIL, a lock, the network).",
            "*Loop CPU*: the part of it spent on the main thread, the event loop that runs every request's",
            "protocol, decoding and encoding (the engine works on other threads).",
            "Recall runs several windows (`--rounds`); its ops/s is the median window's, and *windows* lists",
            "each window's, so the spread the machine adds is in view.",
            *(
                [
                    f"Every figure is the median of {load['runs']} runs, each on a fresh server (`--runs {load['runs']}`);",
                    "*windows* lists the windows of all of them.",
                ]
                if load.get("runs", 1) > 1
                else []
            ),
            "",
            "| memories | operation | transport | clients | p50 ms | p95 ms | p99 ms | ops/s | windows ops/s | errors | server CPU ms/op | loop CPU ms/op | server cores | generator ceiling ops/s |",
            "|---:|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|",
        ]
        for size, run in load["sizes"].items():
            for key in sorted(k for k in run if k.startswith(("recall_", "store_"))):
                op, transport, c = key.split("_")
                r = run[key]
                ceiling = run.get(f"generator_ceiling_{transport}_{c}", {}).get("ops_per_s", 0)
                cpu_op = f"{r['server_cpu_ms_per_op']:.2f}" if "server_cpu_ms_per_op" in r else "n/a"
                cores = f"{r['server_cpu_cores']:.2f}" if "server_cpu_cores" in r else "n/a"
                loop_op = f"{r['server_loop_cpu_ms_per_op']:.2f}" if "server_loop_cpu_ms_per_op" in r else "n/a"
                windows = r.get("ops_per_s_windows") or []
                spread = " / ".join(f"{w:.0f}" for w in windows) if len(windows) > 1 else ""
                out.append(
                    f"| {int(size):,} | {op} | {transport} | {r['clients']} | {r['p50_ms']:.2f} | {r['p95_ms']:.2f} | "
                    f"{r['p99_ms']:.2f} | {r['ops_per_s']:.0f} | {spread} | {r['errors']} | {cpu_op} | {loop_op} | {cores} | "
                    f"{ceiling:.0f} |"
                )
        out += ["", "| memories | batched ingest (memories/s) | index settled after |", "|---:|---:|---:|"]
        for size, run in load["sizes"].items():
            settle = _seconds(run["ingest"].get("settle_seconds"))
            out.append(f"| {int(size):,} | {run['ingest']['memories_per_s']:.0f} | {settle} |")
        out += [""] + [f"![latency]({'img/' + n})" for n in plot_latency(load)] + [""]
    if engine:
        out += [
            "## Engine-level recall",
            "",
            _measured(engine),
            "",
            "`python -m bench.load.engine_latency`: the Engine in-process, no transport, one thread; query",
            "embedding included; measured once the index has settled (full segments sealed into graphs by the",
            "worker process, graphs loaded; the time that took after the ingest is its own column). RSS is this",
            "process's after the ingest. The process runs under the server's own settings (`process_tuning`: one BLAS",
            "thread, two malloc arenas). *gRPC overhead* is what the gRPC hop adds: the server's recall p50 with 1 client",
            "minus this engine p50. Those are two runs, in two processes; *same run* subtracts instead the server's own",
            "`took_ms` (its engine time) of the very calls the client timed, which machine noise between runs cannot move.",
            "",
            "| memories | recall p50 ms | recall p99 ms | query embedding p50 ms | ingest memories/s | index settled after | RSS | gRPC overhead p50 ms | same run |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for size, e in engine["sizes"].items():
            server = (load or {}).get("sizes", {}).get(size, {}).get("recall_grpc_c1")
            overhead = f"{server['p50_ms'] - e['recall']['p50_ms']:.2f}" if server else "n/a"
            took = (server or {}).get("server_took_p50_ms")
            same = (server or {}).get("overhead_p50_ms")  # median over runs of each run's difference
            if same is None and server and took is not None:
                same = server["p50_ms"] - took
            same_run = f"{same:.2f}" if same is not None else "n/a"
            out.append(
                f"| {int(size):,} | {e['recall']['p50_ms']:.2f} | {e['recall']['p99_ms']:.2f} | "
                f"{e['query_embedding']['p50_ms']:.2f} | {e['ingest_memories_per_s']:.0f} | "
                f"{_seconds(e.get('index_settle_s'))} | {_mib(e['rss_bytes'])} | {overhead} | {same_run} |"
            )
        out.append("")
    if writes:
        out += [
            "## Write path",
            "",
            _measured(writes),
            "",
            "`python -m bench.load.write_path`: the Engine in-process with the bundled model, "
            f"{writes['memories']:,} memories of the seeded",
            f"corpus in batches of 64, then {writes['singles']} single stores, under four settings interleaved over "
            f"{writes['rounds']} rounds (medians):",
            "no change stream and no duplicate detection (the baseline), the change stream on, the server's default",
            "(change stream and exact duplicates), near duplicates. *Merged*: stores the policy merged into an existing",
            "memory. *Consolidate*: a ConsolidateMemories dry run over the batch-stored agent.",
            "([Duplicates and the change stream](design/changes.md).)",
            "",
            "| setting | batch memories/s | vs baseline | single stores/s | vs baseline | merged | consolidate dry run |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for name, w in writes["settings"].items():
            out.append(
                f"| {name} | {w['batch_per_s']:.0f} | {w['batch_ratio']:.2f} | {w['single_per_s']:.0f} | "
                f"{w['single_ratio']:.2f} | {w['merged']} | {w['consolidate_dry_run_s']:.2f} s |"
            )
        out.append("")
    if scale:
        out += [
            "## Scale and footprint",
            "",
            _measured(scale),
            "",
            "`python -m bench.scale.run`: RSS of the server process that ingested the memories, after one",
            "recall (ingest leaves allocator residue: a freshly started server's RSS with the same memories is",
            "under *Cold start*); bytes of the data directory (RocksDB, WAL, index snapshots) per memory.",
            "",
            "| memories | RSS idle | RSS loaded | disk per memory |",
            "|---:|---:|---:|---:|",
        ]
        for size, s in scale["sizes"].items():
            out.append(f"| {int(size):,} | {_mib(s['rss_idle_bytes'])} | {_mib(s['rss_loaded_bytes'])} | {s['disk_bytes_per_memory']:.0f} B |")
        out += ["", "Install sizes: see *Install* below.", ""]
    if cold:
        out += [
            "## Cold start",
            "",
            _measured(cold),
            "",
            f"`python -m bench.coldstart.run`: process start → `/health` healthy and → first successful recall,"
            f" with {cold['memories']:,} memories persisted (median of {len(cold['runs'])} starts). *RSS loaded*:",
            " the server's RSS 10 s after that first recall, once the agent's graphs have loaded in the background.",
            " The recall is sent as soon as `/health` answers; the agent is loaded by then or being preloaded",
            " (`preload_agents`, default on), and the first recall waits for that load to finish",
            " ([loading an agent](design/vector-index.md#loading-an-agent)).",
            "",
            "| to healthy | to first recall | RSS loaded |",
            "|---:|---:|---:|",
            f"| {cold['to_healthy_median_s']:.2f} s | {cold['to_first_recall_median_s']:.2f} s | "
            f"{_mib(cold['rss_loaded_median_bytes']) if 'rss_loaded_median_bytes' in cold else 'n/a'} |",
            "",
        ]
    if install:
        fresh = install["fresh"]
        dev = install.get("dev_env_bytes")
        out += [
            "## Install",
            "",
            _measured(install),
            "",
            "`python -m bench.install.run`: a fresh clone of the repository (commit "
            f"`{install['commit']}`), then `make serve` with an empty data directory and an empty model cache,",
            "as a newcomer's first start: it creates the runtime environment `.venv-serve/` from",
            "`requirements/runtime.lock`, installs the server, builds the model's graphs and serves. Package",
            f"cache: {install['package_cache']} (`--cold-cache` downloads every wheel). Sizes after a store and a",
            "recall; the development environment is this checkout's `.venv/` (what `make test` adds for Python,",
            "besides Node, Go and Rust dependencies). [Install](operations/install.md) lists every runtime package.",
            "",
            "| runtime env installed | healthy (first start) | healthy (second `make serve`) | runtime env | model cache | development env |",
            "|---:|---:|---:|---:|---:|---:|",
            f"| {fresh['setup_s']:.1f} s | {fresh['healthy_s']:.1f} s | {install['second_start_healthy_s']:.1f} s | "
            f"{_mib(install['runtime_env_bytes'])} | {_mib(install['model_cache_bytes'])} | "
            f"{_mib(dev) if dev else 'n/a'} |",
            "",
        ]
    if image:
        runs = image["runs"]
        out += [
            "## Container image",
            "",
            _measured(image),
            "",
            f"`python -m bench.image.run`: the image `make image` builds (podman {image['podman']}, commit",
            f"`{image['revision'][:7]}`): a Debian minbase made from Debian's packages, the runtime lock's packages",
            "and the server, the model's int8 graph prepared at build time",
            "([Container image](operations/container.md)).",
            f"Started {len(runs['new_volume'])} times on a new, empty volume (the first start: the encryption key is",
            f"generated, the database created) and {len(runs['existing_volume'])} times on a volume that holds data",
            "(a new container of an upgrade); *healthy* is from the `podman run -d` call to the first `200` of",
            "`/health` through the published port, *stop* from `podman stop` (SIGTERM) to the exit. Medians. Sizes",
            "are uncompressed (MB = 10^6 bytes, as `podman images` shows them); the archive is the compressed OCI",
            "archive of `make image-save`. Goals: image ≤ 900 MB, healthy ≤ 3 s.",
            "",
            "| image | OCI archive | healthy (new volume) | healthy (existing volume) | stop |",
            "|---:|---:|---:|---:|---:|",
            f"| {_mb(image['size_bytes'])} | {_mb(image['archive_bytes'])} | "
            f"{image['healthy_new_volume_median_s']:.2f} s | {image['healthy_existing_volume_median_s']:.2f} s | "
            f"{image['stop_median_s']:.2f} s |",
            "",
            "| layer | size |",
            "|---|---:|",
        ]
        out += [f"| {layer['what']} | {_mb(layer['size_bytes'])} |" for layer in image["layers"]]
        out.append("")
    if cluster:
        med = cluster["median"]
        out += [
            "## Cluster mode",
            "",
            _measured(cluster),
            "",
            f"`python -m bench.cluster --writes {cluster['writes']} --runs {len(cluster['runs'])}`: a single server and a local",
            "three-node cluster (3 etcd, 3 NATS JetStream with `sync_interval: always`, 3 Engram nodes; 8 shards,",
            "RF 2, lease 2 s) in the same run, medians over the runs. The cluster's nine processes share the two",
            "cores the single server has alone: the ratios are a floor for separate hosts. A cluster write is",
            "acknowledged once two of three NATS servers have fsynced it and an owner has applied it; a single-node",
            "write once RocksDB has fsynced it ([Cluster mode](design/cluster.md)). A replica catches up by",
            "applying each op as the write it was (embedding each memory again, one synced batch per op); there",
            "are no snapshots yet.",
            "",
            "| figure | single node | cluster | cluster / single |",
            "|---|---:|---:|---:|",
            f"| store p50, 1 client (ms) | {med['single_write_p50_ms']:.1f} | {med['cluster_write_p50_ms']:.1f} | "
            f"{med['write_latency_ratio']:.2f} |",
            f"| stores/s, 8 clients | {med['single_write_ops_s']:.0f} | {med['cluster_write_ops_s']:.0f} | "
            f"{med['write_throughput_ratio']:.2f} |",
            "",
            "| figure | median |",
            "|---|---:|",
            f"| recall p50 on an owner of the agent's shard | {med['recall_owner_p50_ms']:.2f} ms |",
            f"| recall p50 through a node that forwards it (NATS request/reply) | {med['recall_forwarded_p50_ms']:.2f} ms |",
            f"| failover: an owner SIGKILLed → every one of its agents' recalls succeeds through a survivor | "
            f"{med['failover_recalls_s']:.2f} s |",
            f"| failover: SIGKILL → the dead node out of the map, every shard with 2 serving owners again | "
            f"{med['failover_rereplicated_s']:.2f} s |",
            f"| catch-up of a wiped node: ops of its shards' logs replayed per second | {med['catch_up_ops_s']:.0f} ops/s |",
            f"| catch-up: restart of the wiped node → serving all its shards | {med['catch_up_restart_to_serving_s']:.1f} s |",
            "",
        ]
    if peers:
        ch = peers["chroma"]
        out += [
            "## Side by side: ChromaDB",
            "",
            _measured(peers),
            "",
            f"`python -m bench.peers.run` (ChromaDB {ch['version']}, embedded `PersistentClient`, given Engram's own",
            "ONNX embedding function). Chroma runs in-process; Engram's figures include the gRPC hop.",
            "",
            "| figure | Chroma | Engram / Chroma |",
            "|---|---:|---:|",
        ]
        ratios = peers["ratios_engram_over_chroma"]
        out.append(f"| LoCoMo recall@10 | {ch['retrieval']['overall']['recall@10']:.1f} | {ratios.get('recall@10', 0):.2f} |")
        out.append(f"| recall p50 at {peers['size']:,} (ms) | {ch['recall']['p50_ms']:.2f} | {ratios.get('recall_p50_latency', 0):.2f} |")
        out.append(f"| batched ingest (memories/s) | {ch['ingest_memories_per_s']:.0f} | {ratios.get('ingest_rate', 0):.2f} |")
        out.append("")
    return "\n".join(out)


def main() -> None:
    DOC.write_text(render())
    print(f"wrote {DOC.relative_to(REPO)}")


if __name__ == "__main__":
    main()
