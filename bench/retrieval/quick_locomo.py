"""Quick retrieval-quality check on LoCoMo, without the server: for tuning fusion.

One agent per conversation, one memory per dialog turn ("Speaker: text" plus the photo caption,
its session and the session's date), each question of categories 1-4 recalled with the engine's
own parts (Embedder, the write path's vectors of context_embedding.py, VectorIndex, KeywordIndex
over `keyword_document`, `fuse`, `spread_session_context`, `adjust`). Technique ablations with the
Engine itself: `bench.retrieval.ablation`. Prints recall@5, recall@10 and nDCG@10 per category
and overall, next to the plain BM25 baseline. Embeddings are cached, so a sweep takes seconds. The figure of record
comes from `bench.retrieval.run` (through the server); this one must agree with it.

    .venv/bin/python -m bench.retrieval.quick_locomo [--sweep]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from engram_server.engine.context_embedding import (
    DEFAULT_CONTEXTUAL_EMBEDDING_WEIGHT,
    DEFAULT_SPEAKER_EMBEDDING_WEIGHT,
    contextual_vectors,
    mix,
    speaker_of,
)
from engram_server.engine.embedding import Embedder, default_model_spec
from engram_server.engine.fusion import (
    CANDIDATE_DEPTH,
    DEFAULT_K_RRF,
    DEFAULT_SESSION_CONTEXT_WEIGHT,
    adjust,
    fuse,
    spread_session_context,
)
from engram_server.engine.index_worker import IndexBuilder
from engram_server.engine.keyword_index import KeywordIndex, keyword_document
from engram_server.engine.segments import DictSnapshotStore
from engram_server.engine.vector_index import VectorIndex

from .locomo import DEFAULT_DATA, Conversation, Scoreboard, bm25_baseline, load


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


def write_path_vectors(emb: Embedder, conv: Conversation, cache: Path) -> np.ndarray:
    """The vectors the engine stores for the turns (context_embedding.py, default weights):
    the speaker's name mixed in, then each session's predecessor."""
    own = embed_cached(emb, [t.text for t in conv.turns], "doc", cache)
    labels = [speaker_of(t.text) for t in conv.turns]
    names = sorted({lb for lb in labels if lb})
    if names:
        name_vecs = dict(zip(names, embed_cached(emb, names, "doc", cache), strict=True))
        own = np.stack(
            [mix(v, name_vecs.get(lb), DEFAULT_SPEAKER_EMBEDDING_WEIGHT) for v, lb in zip(own, labels, strict=True)]
        )
    keys = [(t.event_time, 0.0, f"{i:08d}") for i, t in enumerate(conv.turns)]
    return contextual_vectors(
        keys,
        [t.session for t in conv.turns],
        own,
        DEFAULT_CONTEXTUAL_EMBEDDING_WEIGHT,
        lambda s, k: None,
        lambda m: None,
    )


class Agent:
    def __init__(self, conv: Conversation, doc_vecs: np.ndarray, builder: IndexBuilder, seal: int) -> None:
        ids = [t.dia_id for t in conv.turns]
        self.vi = VectorIndex(
            conv.sample_id,
            doc_vecs.shape[1],
            DictSnapshotStore(),
            builder,
            seal_threshold=seal,
        )
        self.vi.add(ids, doc_vecs)
        self.ki = KeywordIndex(conv.sample_id, DictSnapshotStore(), seal_threshold=seal)
        self.ki.add(ids, [keyword_document(t.text, t.event_time) for t in conv.turns])
        # The engine orders a session by event_time; the data lists turns in that order.
        self.near: dict[str, list[str]] = {}
        for i, t in enumerate(conv.turns):
            self.near[t.dia_id] = [
                u.dia_id
                for u in (conv.turns[i - 1] if i else None, conv.turns[i + 1] if i + 1 < len(conv.turns) else None)
                if u is not None and u.session == t.session
            ]
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
    context: float = DEFAULT_SESSION_CONTEXT_WEIGHT,
    timings: list[float] | None = None,
) -> dict[str, Any]:
    board = Scoreboard()
    for conv, agent, qv in zip(convs, agents, qvecs, strict=True):
        for q, vec in zip(conv.questions, qv, strict=True):
            t0 = time.perf_counter()
            vh = agent.vi.search(vec, depth) if mode != "keyword" else []
            kh = agent.ki.search(q.question, depth) if mode != "vector" else []
            fused = fuse(vh, kh, mode=mode, k_rrf=k_rrf, weights=weights, method=method)
            fused = spread_session_context(fused, lambda mid, a=agent: a.near.get(mid, []), context)
            # Neutral importance and equal ages: adjust() must not change the ranking here.
            fused = adjust(fused[:10], {}, {}, 0.0)
            if timings is not None:
                timings.append((time.perf_counter() - t0) * 1000)
            board.add(q.category, [h.id for h in fused[:10]], q.evidence)
    return board.summary()


def fmt(name: str, s: dict[str, Any]) -> str:
    cats = " ".join(f"{c}={s[c]['recall@10']:5.1f}" for c in ("multi-hop", "temporal", "open-domain", "single-hop"))
    o = s["overall"]
    return f"{name:<40} R@5={o['recall@5']:5.1f} R@10={o['recall@10']:5.1f} nDCG@10={o['ndcg@10']:5.1f} | R@10 {cats}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/engram-bench-cache"))
    ap.add_argument("--seal", type=int, default=1_000_000, help="seal threshold (small = graph segments)")
    ap.add_argument("--sweep", action="store_true", help="also try other fusion settings")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    convs = load(args.data)
    emb = Embedder(default_model_spec(args.cache / "models"), threads=2)
    t0 = time.perf_counter()
    doc_vecs = [write_path_vectors(emb, c, args.cache) for c in convs]
    qvecs = [embed_cached(emb, [q.question for q in c.questions], "query", args.cache) for c in convs]
    print(f"embedded in {time.perf_counter() - t0:.1f}s ({emb.spec.onnx_path.name})")
    builder = IndexBuilder()
    agents = [Agent(c, v, builder, args.seal) for c, v in zip(convs, doc_vecs, strict=True)]

    default = "hybrid (defaults)"
    results: dict[str, Any] = {"bm25 baseline": bm25_baseline(convs)}
    timings: list[float] = []
    results[default] = run(convs, agents, qvecs, timings=timings)
    results["hybrid, no session context"] = run(convs, agents, qvecs, context=0.0)
    results["vector only"] = run(convs, agents, qvecs, mode="vector", context=0.0)
    results["keyword only"] = run(convs, agents, qvecs, mode="keyword", context=0.0)
    if args.sweep:
        for k in (5, 10, 30):
            for depth in (20, 30, 50):
                for c in (0.2, 0.3, 0.4, 0.5):
                    results[f"rrf k={k} depth={depth} context={c}"] = run(
                        convs, agents, qvecs, k_rrf=k, depth=depth, context=c
                    )
        for w in ((0.5, 0.5), (0.4, 0.6)):
            results[f"weighted w={w}"] = run(convs, agents, qvecs, method="weighted", weights=w)
    for name, s in results.items():
        print(fmt(name, s))
    timings.sort()
    print(f"search + fuse p50 {timings[len(timings) // 2]:.2f} ms (no query embedding)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    builder.close()


if __name__ == "__main__":
    main()
