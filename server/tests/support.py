"""What the server's tests share: a small deterministic embedder and engines over temporary
data directories (real RocksDB, real encryption)."""

from __future__ import annotations

import hashlib
import re
import time
from concurrent.futures import Future
from pathlib import Path

import numpy as np
from engram_server.engine.config import EngineConfig
from engram_server.engine.engine import Engine

KEY = bytes(range(32))


class FakeEmbedder:
    """Bag of hashed words: texts sharing words are similar. Deterministic, instant.

    `slow`: seconds each query embedding takes (deadline and cancellation tests)."""

    model_id = "fake-bow-64"

    def __init__(self, dim: int = 64, model_id: str | None = None) -> None:
        self.dim = dim
        self.slow = 0.0
        if model_id:
            self.model_id = model_id

    def _one(self, text: str) -> np.ndarray:
        v = np.zeros(self.dim, dtype=np.float32)
        for w in re.findall(r"[a-z0-9]+", text.lower()):
            h = int.from_bytes(hashlib.blake2b(w.encode(), digest_size=4).digest(), "little")
            v[h % self.dim] += 1.0 if (h >> 16) & 1 else -1.0
        n = float(np.linalg.norm(v))
        if n == 0:
            v[0] = 1.0
            n = 1.0
        return v / n

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self._one(t) for t in texts])

    def submit_query(self, text: str) -> Future[np.ndarray]:
        done: Future[np.ndarray] = Future()
        done.set_result(self.embed_query(text))
        return done

    def embed_query(self, text: str) -> np.ndarray:
        if self.slow:
            time.sleep(self.slow)
        return self._one(text)


def make_config(data_dir: Path, **kw: object) -> EngineConfig:
    kw.setdefault("encryption_key", KEY)
    kw.setdefault("background_interval_seconds", 3600.0)
    return EngineConfig(data_dir=data_dir, **kw)  # type: ignore[arg-type]


def open_engine(data_dir: Path, **kw: object) -> Engine:
    emb = kw.pop("embedder", None) or FakeEmbedder()
    return Engine.open(make_config(data_dir, **kw), embedder=emb)  # type: ignore[arg-type]
