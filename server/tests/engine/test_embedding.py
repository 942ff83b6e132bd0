"""Embedder on the bundled all-MiniLM-L6-v2 (float32 conversion cached in a temp dir)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from engram_server.engine.embedding import (
    Embedder,
    default_model_spec,
    model_spec_from_dir,
)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def embedder(cache: Path) -> Embedder:
    return Embedder(default_model_spec(cache), threads=2)


def test_shapes_norms_and_batching(embedder: Embedder) -> None:
    assert embedder.dim == 384 and embedder.model_id == "all-MiniLM-L6-v2"
    assert embedder.spec.onnx_path.name.endswith(".f32.onnx")
    texts = ["short", "a much longer sentence " * 30, "", "the cat sat on the mat"] * 10
    out = embedder.embed_documents(texts)
    assert out.shape == (40, 384) and out.dtype == np.float32
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    # batching and length-sorting do not change a vector
    single = np.stack([embedder.embed_documents([t])[0] for t in texts[:4]])
    assert np.allclose(out[:4], single, atol=1e-5)
    q = embedder.embed_query("the cat sat on the mat")
    assert q.shape == (384,)
    assert embedder.embed_documents([]).shape == (0, 384)


def test_semantics_and_int8_agreement(embedder: Embedder) -> None:
    a, b, c = embedder.embed_documents(["The cat sits on the mat.", "A kitten rests on a rug.", "Stock markets fell."])
    assert float(a @ b) > float(a @ c) + 0.2
    int8 = Embedder(default_model_spec(None), threads=1, arena=False)
    assert int8.spec.onnx_path.name == "model.onnx"
    x = int8.embed_documents(["The cat sits on the mat.", "Stock markets fell."])
    assert float(x[0] @ a) > 0.99 and float(x[1] @ c) > 0.99


def test_model_dir_with_prefixes_and_cls(embedder: Embedder, tmp_path: Path) -> None:
    shutil.copy(embedder.spec.onnx_path, tmp_path / "model.onnx")
    shutil.copy(embedder.spec.tokenizer_path, tmp_path / "tokenizer.json")
    (tmp_path / "engram-model.json").write_text(
        json.dumps(
            {
                "model_id": "custom",
                "pooling": "cls",
                "query_prefix": "query: ",
                "document_prefix": "passage: ",
            }
        )
    )
    spec = model_spec_from_dir(tmp_path)
    assert (spec.model_id, spec.pooling, spec.query_prefix) == (
        "custom",
        "cls",
        "query: ",
    )
    e = Embedder(spec, threads=1)
    # prefixes are applied; CLS pooling takes the first token's state
    assert np.allclose(e.embed_query("hello"), e._embed_raw(["query: hello"])[0], atol=1e-6)
    assert np.allclose(e.embed_documents(["hello"])[0], e._embed_raw(["passage: hello"])[0], atol=1e-6)
    assert not np.allclose(e.embed_query("hello"), e.embed_documents(["hello"])[0])
    assert not np.allclose(e._embed_raw(["hello"])[0], embedder._embed_raw(["hello"])[0])
    (tmp_path / "engram-model.json").write_text(json.dumps({"pooling": "max"}))
    with pytest.raises(ValueError):
        model_spec_from_dir(tmp_path)
    with pytest.raises(FileNotFoundError):
        model_spec_from_dir(tmp_path / "missing")
