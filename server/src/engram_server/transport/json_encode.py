"""Fast proto3 JSON for the service layer's betterproto2 messages (REST responses).

protobuf's `json_format.MessageToDict` walks a message in pure Python, through generic
dispatch for every field: for a recall response, several times the cost of its binary
encoding. This module writes the same dict with one function per message class, compiled once,
as `upb_encode` does for the binary form.

"The same" is what `MessageToDict(upb copy, preserving_proto_field_name=True,
always_print_fields_with_no_presence=True)` gives, key order included (set fields by field
number, then the unset fields without presence in declaration order), with floats shortened by
protobuf's own float32 rule. One difference: a Struct's keys keep their stored order, where the
upb copy lists them in hash order. The tests compare both over every message of the API.

What it does not handle it leaves to json_format: a class with a map, a well-known type other
than Timestamp and Struct, or an enum with options has no compiled writer, and any error while
writing (a naive datetime, a float beyond float32) makes the caller use json_format, which then
fails or succeeds exactly as before.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import functools
import math
import struct
from collections.abc import Callable
from typing import Any

import betterproto2
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.internal import type_checkers

from .upb_encode import attr_source, timestamp_parts

_TIMESTAMP = "google.protobuf.Timestamp"
_STRUCT = "google.protobuf.Struct"
# Messages json_format writes in a form of their own, besides Timestamp and Struct (handled
# here) and the Value types and wrappers (`google.protobuf.*Value`, see _converter).
_SPECIAL = {"google.protobuf.Any", "google.protobuf.Duration", "google.protobuf.FieldMask"}
_INT64 = {
    FieldDescriptor.TYPE_INT64,
    FieldDescriptor.TYPE_UINT64,
    FieldDescriptor.TYPE_SINT64,
    FieldDescriptor.TYPE_FIXED64,
    FieldDescriptor.TYPE_SFIXED64,
}
_F32 = struct.Struct("<f")
# Timestamp.ToJsonString's range: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z.
_MIN_SECONDS, _MAX_SECONDS = -62135596800, 253402300799
_EPOCH = datetime.datetime(1970, 1, 1)


class Unsupported(Exception):
    """A field kind this writer leaves to json_format."""


Writer = Callable[[Any], dict[str, Any]]


class JsonEncoder:
    def __init__(self, descriptor: Callable[[str], Descriptor]) -> None:
        self._descriptor = descriptor
        self._writers: dict[tuple[type, Descriptor], Writer | None] = {}

    def to_dict(self, full_name: str, msg: betterproto2.Message) -> dict[str, Any] | None:
        """The proto3 JSON dict of msg, or None when json_format must write it."""
        try:
            return self._write(msg, self._descriptor(full_name))
        except Exception:  # json_format decides: the same result, or the same error
            return None

    def _write(self, msg: Any, desc: Descriptor) -> dict[str, Any]:
        key = (type(msg), desc)
        try:
            writer = self._writers[key]
        except KeyError:
            try:
                writer = self._compile(type(msg), desc)
            except Unsupported:
                writer = None
            self._writers[key] = writer
        if writer is None:
            raise Unsupported(desc.full_name)
        return writer(msg)

    # --- compiling ------------------------------------------------------------------------
    def _compile(self, cls: type, desc: Descriptor) -> Writer:
        by_number = {f.number: f for f in desc.fields}
        env: dict[str, Any] = {
            "_write": self._write,
            "_struct": struct_json,
            "_ts": timestamp_json,
            "_f32": float32,
            "_f64": float64,
        }
        attrs: dict[int, str] = {}
        for field in _message_fields(cls):
            meta = field.metadata["betterproto"]
            if meta.number not in by_number:
                raise Unsupported(f"{desc.full_name}: no field number {meta.number} in the descriptor")
            attrs[meta.number] = field.name
        if set(attrs) != set(by_number):
            raise Unsupported(f"{desc.full_name}: the class and the descriptor differ")
        set_lines, default_lines = [], []
        for number in sorted(by_number):  # json_format writes set fields in field-number order
            fd = by_number[number]
            v = f"v{number}"
            set_lines.append(f"{v} = {attr_source('msg', attrs[number])}")
            if fd.is_repeated:
                set_lines.append(f"if {v}: js[{fd.name!r}] = [{self._converter(fd, env, 'x')} for x in {v}]")
            elif fd.has_presence:
                set_lines.append(f"if {v} is not None: js[{fd.name!r}] = {self._converter(fd, env, v)}")
            else:  # as the upb copy: a zero value is not set (json_format then writes the default)
                set_lines.append(f"if {v}: js[{fd.name!r}] = {self._converter(fd, env, v)}")
        for fd in desc.fields:  # then unset fields without presence, in declaration order
            if fd.has_presence:
                continue
            if fd.is_repeated:
                default = "[]"  # a new list per message
            else:
                env[f"D{fd.number}"] = _default(fd)
                default = f"D{fd.number}"
            default_lines.append(f"if {fd.name!r} not in js: js[{fd.name!r}] = {default}")
        body = ["js = {}", *set_lines, *default_lines, "return js"]
        source = "def writer(msg):\n" + "\n".join("  " + line for line in body)
        exec(source, env)  # the source is built above from descriptor field names only
        writer: Writer = env["writer"]
        return writer

    def _converter(self, fd: FieldDescriptor, env: dict[str, Any], v: str) -> str:
        """An expression converting the Python value `v` of one (non-repeated) element of fd."""
        if fd.message_type is not None:
            if fd.message_type.GetOptions().map_entry:
                raise Unsupported(f"{fd.full_name}: map")
            name = fd.message_type.full_name
            if name == _TIMESTAMP:
                return f"_ts({v})"  # betterproto2 unwraps Timestamp to an aware datetime
            if name == _STRUCT:
                return f"_struct({v})"
            if name in _SPECIAL or (name.startswith("google.protobuf.") and name.endswith("Value")):
                raise Unsupported(f"{fd.full_name}: {name}")
            env[f"M{fd.number}"] = fd.message_type
            return f"_write({v}, M{fd.number})"
        if fd.enum_type is not None:
            if fd.enum_type.full_name == "google.protobuf.NullValue" or any(
                val.GetOptions().ListFields() for val in fd.enum_type.values
            ):
                raise Unsupported(f"{fd.full_name}: enum with options")
            env[f"E{fd.number}"] = {val.number: val.name for val in fd.enum_type.values}
            return f"E{fd.number}.get(int({v}), int({v}))"
        if fd.type in _INT64:
            return f"str(int({v}))"
        if fd.type == FieldDescriptor.TYPE_FLOAT:
            return f"_f32({v})"
        if fd.type == FieldDescriptor.TYPE_DOUBLE:
            return f"_f64({v})"
        if fd.type == FieldDescriptor.TYPE_BYTES:
            env["_b64"] = base64.b64encode
            return f"_b64({v}).decode('utf-8')"
        if fd.type == FieldDescriptor.TYPE_BOOL:
            return f"bool({v})"
        if fd.type == FieldDescriptor.TYPE_STRING:
            return f"str({v})"
        return f"int({v})"  # the 32-bit integer types


def _default(fd: FieldDescriptor) -> Any:
    """What json_format writes for an unset field without presence."""
    if fd.enum_type is not None:
        zero = fd.enum_type.values_by_number.get(0)
        return zero.name if zero is not None else 0
    if fd.type in _INT64:
        return "0"
    if fd.type == FieldDescriptor.TYPE_FLOAT:
        return type_checkers.ToShortestFloat(0.0)
    if fd.type == FieldDescriptor.TYPE_BYTES:
        return ""
    return fd.default_value


def float32(value: float) -> float | str:
    """A float field as json_format writes it: rounded to float32, then the shortest of its
    6-to-9-digit forms that reads back as the same float32 (type_checkers.ToShortestFloat)."""
    (f,) = _F32.unpack(_F32.pack(value))  # OverflowError beyond float32: json_format decides
    return _non_finite(f) or _shortest_float32(f)


@functools.lru_cache(maxsize=1024)
def _shortest_float32(f: float) -> float:
    """ToShortestFloat's search, with a small cache: importances repeat (0.5 most of all), and a
    memory returned again brings its values again. Small, so it holds a few hundred kB at most."""
    precision = 6
    rounded = float(f"{f:.{precision}g}")
    while _F32.unpack(_F32.pack(rounded))[0] != f:
        precision += 1
        rounded = float(f"{f:.{precision}g}")
    return rounded


def float64(value: float) -> float | str:
    f = float(value)
    return _non_finite(f) or f


def _non_finite(f: float) -> str | None:
    """json_format's names for the floats JSON has no number for; None for a finite one."""
    if math.isinf(f):
        return "-Infinity" if f < 0 else "Infinity"
    return "NaN" if math.isnan(f) else None


@functools.lru_cache(maxsize=1024)
def timestamp_json(value: datetime.datetime) -> str:
    """Timestamp.ToJsonString of the Timestamp the datetime encodes to (upb_encode.timestamp_parts)."""
    seconds, nanos = timestamp_parts(value)
    if not _MIN_SECONDS <= seconds <= _MAX_SECONDS:
        raise ValueError("timestamp out of range")
    day_seconds = seconds % 86400
    result = (_EPOCH + datetime.timedelta((seconds - day_seconds) // 86400, day_seconds)).isoformat()
    if nanos == 0:
        return result + "Z"
    if nanos % 1_000_000 == 0:
        return f"{result}.{nanos // 1_000_000:03d}Z"
    if nanos % 1000 == 0:
        return f"{result}.{nanos // 1000:06d}Z"
    return f"{result}.{nanos:09d}Z"


def struct_json(value: Any) -> dict[str, Any]:
    """A google.protobuf.Struct as json_format writes it. Its keys keep their stored order (the
    upb copy json_format would read gives them in hash order: the same object, reordered)."""
    return {str(k): _value_json(v) for k, v in value.fields.items()}


def _value_json(value: Any) -> Any:
    which, x_ = betterproto2.which_one_of(value, "kind")
    x: Any = x_
    if not which or which == "null_value":
        return None
    if which == "number_value":
        f = float(x)
        if math.isinf(f) or math.isnan(f):
            raise ValueError("a Struct number cannot be Infinity or NaN in JSON")  # as json_format
        return f
    if which == "string_value":
        return str(x)
    if which == "bool_value":
        return bool(x)
    if which == "struct_value":
        return struct_json(x)
    return [_value_json(e) for e in x.values]  # list_value


def _message_fields(cls: type) -> list[Any]:
    return [f for f in dataclasses.fields(cls) if f.metadata.get("betterproto") is not None]
