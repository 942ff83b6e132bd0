"""Quick retrieval-quality check on LoCoMo, without the server.

One agent per conversation, one memory per dialog turn ("Speaker: text" plus the photo caption),
each question of categories 1-4 recalled with the engine's own components (Embedder,
VectorIndex, KeywordIndex, fuse). Prints recall@5, recall@10 and nDCG@10 per category and
overall, next to a plain bm25s baseline over "Speaker: text".

    cd server && ../.venv/bin/python ../bench/retrieval/quick_locomo.py [--sweep]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from engram_server.engine.embedding import Embedder, default_model_spec
from engram_server.engine.fusion import CANDIDATE_DEPTH, DEFAULT_K_RRF, adjust, fuse
from engram_server.engine.index_worker import IndexBuilder
from engram_server.engine.keyword_index import KeywordIndex
from engram_server.engine.vector_index import DictSnapshotStore, VectorIndex
from locomo_data import DEFAULT_PATH, Conversation, load
from metrics import Scoreboard


def embed_cached(emb: Embedder, texts: list[str], kind: str, cache: Path) -> np.ndarray:
    key = hashlib.sha256(
        (emb.model_id + kind + str(emb.spec.onnx_path.name) + "\x00".join(texts)).encode()
    ).hexdigest()[:16]
    f = cache / f"emb-{key}.npy"
    if f.exists():
        return np.load(f)
    out = emb.embed(texts, kind="query" if kind == "query" else "document")
    cache.mkdir(parents=True, exist_ok=True)
    np.save(f, out)
    return out


def bm25s_baseline(convs: list[Conversation]) -> dict[str, Any]:
    import bm25s

    board = Scoreboard()
    for c in convs:
        corpus = [t.plain_text for t in c.turns]
        retriever = bm25s.BM25(backend="numpy")
        retriever.index(
            bm25s.tokenize(corpus, stopwords="en", show_progress=False),
            show_progress=False,
        )
        for q in c.questions:
            toks = bm25s.tokenize([q.question], stopwords="en", show_progress=False)
            k = min(10, len(corpus))
            docs, _ = retriever.retrieve(toks, k=k, show_progress=False, n_threads=1)
            board.add(str(q.category), [c.turns[i].id for i in docs[0]], q.evidence)
    return board.summary()


class Agent:
    def __init__(self, conv: Conversation, doc_vecs: np.ndarray, builder: IndexBuilder, seal: int) -> None:
        ids = [t.id for t in conv.turns]
        self.vi = VectorIndex(
            conv.sample_id,
            doc_vecs.shape[1],
            DictSnapshotStore(),
            builder,
            seal_threshold=seal,
        )
        self.vi.add(ids, doc_vecs)
        self.ki = KeywordIndex(conv.sample_id, DictSnapshotStore(), seal_threshold=seal)
        self.ki.add(ids, [t.memory_text for t in conv.turns])
        if seal < len(ids):
            self.vi.maintenance()
            self.ki.maintenance()
            self.vi.wait_ready()


def run(
    convs: list[Conversation],
    agents: list[Agent],
    qvecs: list[np.ndarray],
    *,
    mode: str = "hybrid",
    method: str = "rrf",
    k_rrf: float = DEFAULT_K_RRF,
    weights: tuple[float, float] = (1.0, 1.0),
    depth: int = CANDIDATE_DEPTH,
    timings: list[float] | None = None,
) -> dict[str, Any]:
    board = Scoreboard()
    for conv, agent, qv in zip(convs, agents, qvecs, strict=True):
        for q, vec in zip(conv.questions, qv, strict=True):
            t0 = time.perf_counter()
            vh = agent.vi.search(vec, depth) if mode != "keyword" else []
            kh = agent.ki.search(q.question, depth) if mode != "vector" else []
            fused = fuse(vh, kh, mode=mode, k_rrf=k_rrf, weights=weights, method=method)
            # Neutral importance and equal ages: adjust() must not change the ranking here.
            fused = adjust(fused[:10], {}, {}, 0.0)
            if timings is not None:
                timings.append((time.perf_counter() - t0) * 1000)
            board.add(str(q.category), [h.id for h in fused[:10]], q.evidence)
    return board.summary()


def fmt(name: str, s: dict[str, Any]) -> str:
    cats = " ".join(f"c{c}={s[c]['r@10']:5.1f}" for c in ("1", "2", "3", "4") if c in s)
    a = s["all"]
    return f"{name:<42} R@5={a['r@5']:5.1f} R@10={a['r@10']:5.1f} nDCG@10={a['ndcg@10']:5.1f} | R@10 {cats}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=DEFAULT_PATH)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/engram-bench-cache"))
    ap.add_argument(
        "--seal",
        type=int,
        default=1_000_000,
        help="seal threshold (small = graph segments)",
    )
    ap.add_argument("--sweep", action="store_true")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    convs = load(args.data)
    emb = Embedder(default_model_spec(args.cache / "models"), threads=2)
    t0 = time.perf_counter()
    doc_vecs = [embed_cached(emb, [t.memory_text for t in c.turns], "doc", args.cache) for c in convs]
    qvecs = [embed_cached(emb, [q.question for q in c.questions], "query", args.cache) for c in convs]
    print(f"embedded in {time.perf_counter() - t0:.1f}s ({emb.spec.onnx_path.name})")
    builder = IndexBuilder()
    agents = [Agent(c, v, builder, args.seal) for c, v in zip(convs, doc_vecs, strict=True)]

    results: dict[str, Any] = {"bm25s baseline": bm25s_baseline(convs)}
    timings: list[float] = []
    results["hybrid rrf k=10 depth=30 (default)"] = run(convs, agents, qvecs, timings=timings)
    results["vector only"] = run(convs, agents, qvecs, mode="vector")
    results["keyword only (engine BM25)"] = run(convs, agents, qvecs, mode="keyword")
    if args.sweep:
        for k in (5, 10, 30, 60):
            for w in ((1.0, 1.0), (1.5, 1.0), (1.0, 1.5)):
                for depth in (10, 20, 30, 50):
                    results[f"hybrid rrf k={k} w={w} depth={depth}"] = run(
                        convs, agents, qvecs, k_rrf=k, weights=w, depth=depth
                    )
        for w in ((0.5, 0.5), (0.6, 0.4), (0.4, 0.6)):
            for depth in (20, 30, 50):
                results[f"hybrid weighted w={w} depth={depth}"] = run(
                    convs, agents, qvecs, method="weighted", weights=w, depth=depth
                )
    for name, s in results.items():
        print(fmt(name, s))
    print(
        "per category, hybrid default:",
        json.dumps(results["hybrid rrf k=10 depth=30 (default)"]),
    )
    print("baseline per category:", json.dumps(results["bm25s baseline"]))
    timings.sort()
    print(f"recall latency (search+fuse, no embedding) p50 {timings[len(timings) // 2]:.2f} ms")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    builder.close()


if __name__ == "__main__":
    main()
