"""Side by side: the same retrieval and latency workload on ChromaDB, as ratios Engram / Chroma.

    bench/.peers-venv/bin/python -m bench.peers.run --size 10000

Chroma runs embedded (`PersistentClient`) in this process, given Engram's own ONNX embedding
function (same model, tokenizer, pooling), so the comparison isolates storage, indexing and
serving. Engram's side is read from `bench/results/{load,retrieval}.json`, measured in the same
`make bench` run over its public gRPC/REST API; Chroma gets no network hop, which favours it.
Runs in its own virtualenv (`make bench` creates it) so Chroma's dependencies never mix with
the server's pins.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..common import RESULTS_DIR, corpus, dir_size, percentiles, queries, write_result
from ..retrieval.locomo import DEFAULT_DATA, Scoreboard, load


class EngramEmbeddingFunction:
    """Chroma embedding function backed by Engram's embedder."""

    def __init__(self) -> None:
        from engram_server.engine.embedding import Embedder

        # The server's default: all-MiniLM-L6-v2 as dynamic int8, built once in a cache directory.
        self._embedder = Embedder.from_config(None, Path(tempfile.gettempdir()) / "engram-bench-model")

    def __call__(self, input: list[str]) -> list[np.ndarray]:  # noqa: A002 - Chroma's protocol name
        return list(self._embedder.embed_documents(list(input)))

    def embed_query(self, input: list[str]) -> list[np.ndarray]:  # noqa: A002
        return [self._embedder.embed_query(text) for text in input]

    @staticmethod
    def name() -> str:
        return "engram-onnx"

    def is_legacy(self) -> bool:
        return False

    def get_config(self) -> dict[str, Any]:
        return {}


def chroma_retrieval(client: Any, ef: EngramEmbeddingFunction, data: Path) -> dict[str, Any]:
    board = Scoreboard()
    for conv in load(data):
        col = client.create_collection(f"locomo-{conv.sample_id}", embedding_function=ef, metadata={"hnsw:space": "cosine"})
        for i in range(0, len(conv.turns), 256):
            chunk = conv.turns[i : i + 256]
            col.add(ids=[t.dia_id for t in chunk], documents=[t.text for t in chunk])
        for q in conv.questions:
            res = col.query(query_embeddings=ef.embed_query([q.question]), n_results=10)
            board.add(q.category, list(res["ids"][0]), q.evidence)
    return board.summary()


def chroma_latency(client: Any, ef: EngramEmbeddingFunction, size: int) -> dict[str, Any]:
    col = client.create_collection("bench-load", embedding_function=ef, metadata={"hnsw:space": "cosine"})
    texts = corpus(size)
    started = time.perf_counter()
    for i in range(0, size, 256):
        col.add(ids=[str(j) for j in range(i, min(i + 256, size))], documents=texts[i : i + 256])
    ingest_s = time.perf_counter() - started
    samples: list[float] = []
    for q in queries(300):
        t0 = time.perf_counter()
        col.query(query_embeddings=ef.embed_query([q]), n_results=10)
        samples.append(time.perf_counter() - t0)
    return {"ingest_memories_per_s": size / ingest_s, "recall": percentiles(samples)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()
    import chromadb
    from chromadb.config import Settings

    ef = EngramEmbeddingFunction()
    tmp = Path(tempfile.mkdtemp(prefix="chroma-bench-"))
    try:
        client = chromadb.PersistentClient(path=str(tmp), settings=Settings(anonymized_telemetry=False))
        retrieval = chroma_retrieval(client, ef, args.data)
        latency = chroma_latency(client, ef, args.size)
        disk = dir_size(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    chroma = {"version": chromadb.__version__, "retrieval": retrieval, **latency, "disk_bytes": disk}
    ratios: dict[str, float] = {}
    engram_retrieval = _read("retrieval")
    engram_load = _read("load")
    if engram_retrieval:
        ratios["recall@10"] = engram_retrieval["engram"]["hybrid"]["overall"]["recall@10"] / retrieval["overall"]["recall@10"]
    size_key = str(args.size)
    if engram_load and size_key in engram_load.get("sizes", {}):
        run = engram_load["sizes"][size_key]
        ratios["recall_p50_latency"] = run["recall_grpc_c1"]["p50_ms"] / latency["recall"]["p50_ms"]
        ratios["ingest_rate"] = run["ingest"]["memories_per_s"] / latency["ingest_memories_per_s"]
    print(f"chroma {chroma['version']}: recall@10 {retrieval['overall']['recall@10']:.1f}, "
          f"recall p50 {latency['recall']['p50_ms']:.2f} ms, ingest {latency['ingest_memories_per_s']:.0f}/s")
    print("ratios engram/chroma: " + ", ".join(f"{k} {v:.2f}" for k, v in ratios.items()))
    write_result("peers", {"size": args.size, "chroma": chroma, "ratios_engram_over_chroma": ratios})


def _read(name: str) -> dict[str, Any] | None:
    path = RESULTS_DIR / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


if __name__ == "__main__":
    main()
