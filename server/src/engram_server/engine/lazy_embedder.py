"""The embedding model, loaded on first use (or by warm_up) and shared by the write path, recall
and re-embedding."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from .embedding import BUNDLED_MODEL_IDS, DEFAULT_PRECISION, bundled_model_id, model_spec_from_dir
from .errors import FailedPrecondition, InvalidArgument

if TYPE_CHECKING:
    from concurrent.futures import Future

    from .config import EngineConfig


class TextEmbedder(Protocol):
    """What the engine needs of an embedding model (tests inject a small deterministic one)."""

    model_id: str
    dim: int

    def embed_documents(self, texts: list[str]) -> np.ndarray: ...

    def embed_query(self, text: str) -> np.ndarray: ...

    def submit_query(self, text: str) -> Future[np.ndarray]: ...


class LazyEmbedder:
    def __init__(self, config: EngineConfig, embedder: TextEmbedder | None = None) -> None:
        self._config = config
        self._embedder = embedder
        self._lock = threading.Lock()
        self.model_id = embedder.model_id if embedder is not None else configured_model_id(config)
        self._dim: int | None = int(embedder.dim) if embedder is not None else None

    @property
    def loaded(self) -> bool:
        return self._embedder is not None

    def follows_stored_precision(self) -> bool:
        """ "auto" precision of the bundled model: keep what the data directory's vectors use."""
        c = self._config
        return self._embedder is None and c.embedding_model_path is None and c.embedding_precision == "auto"

    def adopt_stored(self, model_id: str, dim: int) -> None:
        """Before the model loads: the data directory's model (auto precision) and dimension."""
        if self._dim is None:
            self._dim = dim
        if self.follows_stored_precision() and model_id in BUNDLED_MODEL_IDS:
            self.model_id = bundled_model_id(BUNDLED_MODEL_IDS[model_id])  # today's build of it

    def forget_dim(self) -> None:
        self._dim = None

    def get(self) -> TextEmbedder:
        emb = self._embedder
        if emb is not None:
            return emb
        with self._lock:
            if self._embedder is None:
                from .embedding import Embedder

                c = self._config
                loaded = Embedder.from_config(
                    c.embedding_model_path,
                    c.model_cache_dir or default_cache_dir(),
                    threads=c.embedding_threads,
                    arena=c.embedding_arena,
                    precision=BUNDLED_MODEL_IDS.get(self.model_id, DEFAULT_PRECISION),
                )
                if loaded.model_id != self.model_id:
                    raise FailedPrecondition("the embedding model loaded differs from the configured model id")
                self._dim = int(loaded.dim)
                self._embedder = loaded
            return self._embedder

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = int(self.get().dim)
        return self._dim

    @property
    def known_dim(self) -> int:
        """The dimension if known without loading the model (0 otherwise)."""
        return self._dim or 0

    def close(self) -> None:
        close = getattr(self._embedder, "close", None)  # test embedders have none
        if close is not None:
            close()


def configured_model_id(config: EngineConfig) -> str:
    if config.embedding_model_path is not None:
        return model_spec_from_dir(Path(config.embedding_model_path)).model_id
    precision = DEFAULT_PRECISION if config.embedding_precision == "auto" else config.embedding_precision
    if precision == "int8":
        return bundled_model_id("int8")
    if precision == "float32":
        return bundled_model_id("float32")
    raise InvalidArgument(f"embedding_precision must be auto, int8 or float32, not {precision!r}")


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "engram"
