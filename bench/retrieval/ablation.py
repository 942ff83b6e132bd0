"""Ablation of the recall techniques on LoCoMo: each technique on and off, in one run.

    .venv/bin/python -m bench.retrieval.ablation [--data PATH] [--only NAME ...] [--cache DIR]

Runs the Engine in process, the way `bench.retrieval.run` drives the server: one agent per
conversation, one memory per dialog turn stored in batches of 256 ("Speaker: text" plus the
photo caption, the turn's session as `session_id`, the session's date as `event_time`), then one
hybrid recall (top 10) per question of categories 1-4. Each row is the engine with the default
configuration except the overrides it names, so "-X" rows show what technique X is worth and
"+Y" rows what a technique that is off by default would bring. The plain BM25 baseline is
computed in the same run.

Columns: recall@5, recall@10, nDCG@10 (overall), recall@10 per category, and the p50 recall
latency the engine reports (`took_ms`) with the change against the default row. Embeddings
(documents and queries) come from an on-disk cache keyed by model and text, so a run embeds only
what it has never seen and latencies exclude the model (the query embedding costs the same for
every row; no technique here embeds anything extra). The figure of record for the defaults stays
`bench.retrieval.run` (through the REST API); this harness must agree with it within a point.

Results go to bench/results/retrieval-ablation.json.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sqlite3
import statistics
import tempfile
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
from engram_server.engine.config import EngineConfig
from engram_server.engine.embedding import Embedder, default_model_spec
from engram_server.engine.engine import Engine
from engram_server.engine.models import NewMemory, RecallMode, RecallQuery

from ..common import write_result
from .locomo import CATEGORIES, DEFAULT_DATA, Conversation, Scoreboard, bm25_baseline, load

KEY = bytes(range(32))


class CachedEmbedder:
    """The bundled embedder behind an on-disk cache (sqlite, keyed by model, kind and text).

    Vectors are the model's own; only a text never seen before is embedded. (The int8 model
    quantises activations per batch, so a cached vector can differ from the server's in the
    last digits: the server run is the figure of record.)"""

    def __init__(self, cache_dir: Path, threads: int = 2) -> None:
        self._emb = Embedder(default_model_spec(cache_dir / "models"), threads=threads)
        self.model_id = self._emb.model_id
        self.dim = self._emb.dim
        cache_dir.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(cache_dir / "vectors.sqlite"), check_same_thread=False)
        self._db.execute("create table if not exists v (k blob primary key, vec blob)")
        self._lock = threading.Lock()
        self.embedded = 0  # texts that missed the cache

    def _key(self, kind: str, text: str) -> bytes:
        return hashlib.sha256(f"{self.model_id}\x00{kind}\x00{text}".encode()).digest()

    def _embed(self, texts: list[str], kind: str) -> np.ndarray:
        keys = [self._key(kind, t) for t in texts]
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        missing: list[int] = []
        with self._lock:
            for i, k in enumerate(keys):
                row = self._db.execute("select vec from v where k = ?", (k,)).fetchone()
                if row is None:
                    missing.append(i)
                else:
                    out[i] = np.frombuffer(row[0], dtype=np.float32)
        if missing:
            vecs = self._emb.embed([texts[i] for i in missing], kind="query" if kind == "query" else "document")
            with self._lock:
                for i, v in zip(missing, vecs, strict=True):
                    out[i] = v
                    self._db.execute(
                        "insert or replace into v values (?, ?)", (keys[i], v.astype(np.float32).tobytes())
                    )
                self._db.commit()
                self.embedded += len(missing)
        return out

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        return self._embed(list(texts), "document")

    def embed_query(self, text: str) -> np.ndarray:
        out: np.ndarray = self._embed([text], "query")[0]
        return out

    def submit_query(self, text: str) -> Future[np.ndarray]:
        done: Future[np.ndarray] = Future()
        done.set_result(self.embed_query(text))
        return done

    def close(self) -> None:
        """Engine.close() calls this: the cache outlives each engine (shutdown() ends it)."""

    def shutdown(self) -> None:
        self._emb.close()
        self._db.close()


@dataclass(frozen=True)
class Variant:
    name: str
    overrides: dict[str, Any] = field(default_factory=dict)  # EngineConfig fields
    mode: RecallMode = RecallMode.HYBRID
    note: str = ""


# Every technique of issue #21 that the engine implements, switched off (the starting point).
NEW_OFF: dict[str, Any] = {"contextual_embedding_weight": 0.0, "speaker_embedding_weight": 0.0}

VARIANTS = [
    Variant("defaults"),
    Variant("- contextual embedding (predecessor)", {"contextual_embedding_weight": 0.0}),
    Variant("  predecessor w=0.3", {"contextual_embedding_weight": 0.3}, note="flatness"),
    Variant("  predecessor w=0.7", {"contextual_embedding_weight": 0.7}, note="flatness"),
    Variant("- speaker embedding", {"speaker_embedding_weight": 0.0}),
    Variant("  speaker w=0.3", {"speaker_embedding_weight": 0.3}, note="flatness"),
    Variant("  speaker w=0.7", {"speaker_embedding_weight": 0.7}, note="flatness"),
    Variant("  speaker w=1.0", {"speaker_embedding_weight": 1.0}, note="flatness"),
    Variant("- session context", {"session_context_weight": 0.0}),
    Variant("before issue #21 (new techniques off)", NEW_OFF),
    Variant("vector only", mode=RecallMode.VECTOR),
    Variant("keyword only", mode=RecallMode.KEYWORD),
    Variant("vector only, before issue #21", NEW_OFF, mode=RecallMode.VECTOR),
]


def store_all(eng: Engine, convs: list[Conversation]) -> tuple[dict[str, str], float]:
    """Store every turn (batches of 256, as bench.retrieval.run); returns id -> dia_id, seconds."""
    ids: dict[str, str] = {}
    t0 = time.perf_counter()
    for conv in convs:
        agent = f"locomo-{conv.sample_id}"
        for i in range(0, len(conv.turns), 256):
            chunk = conv.turns[i : i + 256]
            items = [
                NewMemory(
                    agent_id=agent,
                    content=t.text,
                    session_id=t.session,
                    event_time=float(int(t.event_time)) if t.event_time else None,
                    metadata={"dia_id": t.dia_id},
                )
                for t in chunk
            ]
            for t, (mem, _) in zip(chunk, eng.store_batch(items), strict=True):
                ids[mem.id] = t.dia_id
    return ids, time.perf_counter() - t0


def recall_all(eng: Engine, convs: list[Conversation], ids: dict[str, str], mode: RecallMode) -> dict[str, Any]:
    board = Scoreboard()
    took: list[float] = []
    for conv in convs:
        agent = f"locomo-{conv.sample_id}"
        for q in conv.questions:
            res = eng.recall(RecallQuery(agent_id=agent, query=q.question, top_k=10, mode=mode))
            took.append(res.took_ms)
            board.add(q.category, [ids[m.memory.id] for m in res.memories], q.evidence)
    out: dict[str, Any] = board.summary()
    out["p50_ms"] = statistics.median(took)
    return out


def fmt_row(name: str, s: dict[str, Any], base_p50: float | None) -> str:
    o = s["overall"]
    cats = "".join(f"{s[c]['recall@10']:>7.1f}" for c in CATEGORIES.values())
    p50 = f"{s['p50_ms']:>7.2f}" if "p50_ms" in s else f"{'':>7}"
    delta = f"{s['p50_ms'] - base_p50:>+7.2f}" if "p50_ms" in s and base_p50 is not None else f"{'':>7}"
    return f"{name:<40}{o['recall@5']:>6.1f}{o['recall@10']:>6.1f}{o['ndcg@10']:>6.1f}{cats}{p50}{delta}"


def header() -> str:
    cats = "".join(f"{c[:6]:>7}" for c in CATEGORIES.values())
    return f"{'variant':<40}{'R@5':>6}{'R@10':>6}{'nDCG':>6}{cats}{'p50ms':>7}{'dp50':>7}\n" + "-" * 107


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/engram-bench-cache"))
    ap.add_argument("--only", nargs="*", help="variant names to run (substring match); defaults always run")
    ap.add_argument("--no-write", action="store_true", help="do not write bench/results/retrieval-ablation.json")
    args = ap.parse_args()

    convs = load(args.data)
    variants = [v for v in VARIANTS if not args.only or v.name == "defaults" or any(o in v.name for o in args.only)]
    emb = CachedEmbedder(args.cache)
    known = {f.name for f in fields(EngineConfig)}
    for v in variants:
        unknown = set(v.overrides) - known
        if unknown:
            raise SystemExit(f"variant {v.name!r}: unknown EngineConfig fields {sorted(unknown)}")
    results: dict[str, Any] = {"bm25 baseline (bm25s)": bm25_baseline(convs)}
    stores: dict[str, float] = {}
    tmp = Path(tempfile.mkdtemp(prefix="engram-ablation-"))
    try:
        # A fresh engine per row: recall itself changes state (access counts feed the effective
        # importance, which breaks RRF's exact ties), so rows must not share one.
        for n, v in enumerate(variants):
            cfg = EngineConfig(
                data_dir=tmp / f"d{n}", encryption_key=KEY, background_interval_seconds=3600.0, **v.overrides
            )
            eng = Engine.open(cfg, embedder=emb)
            try:
                ids, stores[v.name] = store_all(eng, convs)
                results[v.name] = recall_all(eng, convs, ids, v.mode)
                print(f"  {v.name}: R@10 {results[v.name]['overall']['recall@10']:.1f}", flush=True)
            finally:
                eng.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        emb.shutdown()

    base_p50 = results["defaults"]["p50_ms"]
    print(f"\nLoCoMo {args.data.name}: {sum(len(c.questions) for c in convs)} questions, engine in process")
    print(header())
    ordered = ["bm25 baseline (bm25s)"] + [v.name for v in variants]
    for name in ordered:
        print(fmt_row(name, results[name], base_p50 if name != "bm25 baseline (bm25s)" else None))
    bm = results["bm25 baseline (bm25s)"]["overall"]["recall@10"]
    print(f"\ndefaults / bm25 recall@10: {results['defaults']['overall']['recall@10'] / bm:.2f}x")
    print(
        "store seconds per row (cached embeddings, so without the model): "
        + ", ".join(f"{k.strip()}: {v:.2f}" for k, v in stores.items())
    )
    if not args.no_write:
        write_result(
            "retrieval-ablation",
            {
                "data": args.data.name,
                "variants": {
                    v.name: {"overrides": v.overrides, "mode": v.mode.value, "note": v.note} for v in variants
                },
                "results": results,
                "store_seconds": stores,
                "texts_embedded": emb.embedded,
            },
        )


if __name__ == "__main__":
    main()
