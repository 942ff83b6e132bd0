"""Serialisation of domain records to the bytes that storage seals (compact JSON).

Memory records go through orjson: every recall decodes the records it returns and the access
flush rewrites them, and orjson does both several times faster than the json module. The bytes
are the same compact JSON either way, so records
written by either load with either. What orjson refuses (an integer beyond 64 bits in
metadata, from an in-process caller) falls back to the json module.
"""

from __future__ import annotations

import json
from dataclasses import asdict, fields
from typing import Any

import numpy as np
import orjson

from .errors import DataCorrupted, InvalidArgument
from .models import ApiKeyRecord, Link, Memory, MemoryType


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


_MEMORY_FIELDS = tuple(f.name for f in fields(Memory))


def memory_to_bytes(m: Memory) -> bytes:
    # A shallow dict: the encoder only reads the values (asdict deep-copies every list and dict,
    # which was a tenth of a batch store's CPU time).
    d = {name: getattr(m, name) for name in _MEMORY_FIELDS}
    d["memory_type"] = m.memory_type.value
    try:
        return orjson.dumps(d)
    except TypeError:  # e.g. an int beyond 64 bits; json writes it (and refuses NaN) as before
        return dumps(d)


def memory_from_bytes(data: bytes) -> Memory:
    try:
        d = orjson.loads(data)
    except orjson.JSONDecodeError:  # what orjson cannot read (an int beyond 64 bits) json may
        d = json.loads(data)
    d["memory_type"] = MemoryType(d["memory_type"])
    return Memory(**d)


def link_to_bytes(link: Link) -> bytes:
    return dumps(asdict(link))


def link_from_bytes(data: bytes) -> Link:
    return Link(**json.loads(data))


def api_key_to_bytes(r: ApiKeyRecord) -> bytes:
    d = asdict(r)
    d["key_hash"] = r.key_hash.hex()
    return dumps(d)


def api_key_from_bytes(data: bytes) -> ApiKeyRecord:
    d = json.loads(data)
    d["key_hash"] = bytes.fromhex(d["key_hash"])
    return ApiKeyRecord(**d)


def vector_to_bytes(model_id: str, vec: np.ndarray) -> bytes:
    """model id travels with every vector: a model change is detected, never silently mixed."""
    mid = model_id.encode()
    return bytes([len(mid)]) + mid + np.asarray(vec, dtype="<f4").tobytes()


def vector_from_bytes(data: bytes) -> tuple[str, np.ndarray]:
    n = data[0]
    try:
        return data[1 : 1 + n].decode(), np.frombuffer(data[1 + n :], dtype="<f4").astype(np.float32)
    except (UnicodeDecodeError, ValueError):
        raise DataCorrupted("stored vector is malformed") from None


def canonical_json(value: Any, field: str = "metadata") -> str:
    """JSON text of a metadata value (sorted keys), or InvalidArgument naming the field."""
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"{field} must be JSON-serialisable: {type(exc).__name__}", field=field) from None
