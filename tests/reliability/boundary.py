"""Boundary mutations of API requests, generated from the descriptors; and one caller that sends a
request over gRPC (raw bytes) or REST (JSON through the method's google.api.http rule).

A mutation changes one field of a small valid request (a template, proto3 JSON) to one boundary
value. The fields and their kinds come from the request's descriptor (engram_server.pb classes),
recursing into sub-messages, repeated fields, maps (a Struct is a map) and oneofs; the values
come from the field's type:

* integers: the type's min, -1, 0, 1, max; in JSON also out-of-range numbers (2**63, 1e400), numbers
  as strings ("NaN", "1.5"), wrong types; on the wire also varints beyond the type;
* float/double: NaN, ±Infinity, -0.0, 3.5e38 (beyond float32), 1e-45; enums: -1, 99, int32 max;
* Timestamp: seconds at and beyond 0001-01-01 / 9999-12-31, int64 extremes, nanos -1 and 10**9
  (JSON: RFC 3339 strings out of range, malformed, with offsets that cross the range);
* strings: empty, 1 MB, invalid id characters, NUL, lone surrogates (JSON), invalid UTF-8 (wire);
* Struct: depth 40 and 1000, 10k keys, null / NaN / no-kind values; FieldMask: unknown paths;
* repeated fields beyond the configured limits; wrong JSON shapes for every field.

Each mutation says how it is written in JSON (REST) and on the wire (gRPC): `py` sets it on the
upb message, `wire` appends raw field bytes for values upb will not build (invalid UTF-8, a
varint beyond the field's type, a wrong wire type). A mutation with neither is REST-only, one
with no JSON form gRPC-only.
"""

from __future__ import annotations

import copy
import json
import re
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import grpc
import httpx
from engram_server import pb
from engram_server.descriptors import HttpBinding, MethodInfo, api
from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

FD = FieldDescriptor
ABSENT: Any = type("Absent", (), {"__repr__": lambda self: "ABSENT"})()  # JSON: key removed
TS_MIN, TS_MAX = -62135596800, 253402300799
MB = 1_000_000
URL_MAX_CHARS = 60_000  # httpx refuses a URL component over 64 KiB: longer strings are cut there
BAD_GRPC = {"INTERNAL", "UNKNOWN", "DATA_LOSS"}


class RawJson:
    """JSON text written verbatim (numbers Python's json cannot write: 1e400, 400 digits)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"RawJson({self.text[:40]!r})"


@dataclass
class Mutation:
    path: tuple[Any, ...]  # field names, and list indexes into repeated fields
    label: str
    json: Any = ABSENT  # the JSON value at path; ABSENT with json_remove: the key removed
    json_remove: bool = False
    py: Callable[[Message, str], None] | None = None  # sets the value on the parent message
    wire: bytes | None = None  # raw field bytes (tag included) replacing the field in the parent

    @property
    def has_json(self) -> bool:
        return self.json_remove or self.json is not ABSENT

    @property
    def has_grpc(self) -> bool:
        return self.py is not None or self.wire is not None


@dataclass
class Case:
    rpc: str  # "MemoryService.StoreMemory"
    label: str
    json: Any = ABSENT  # the request as proto3 JSON (a list of them for client streaming)
    wire: list[bytes] | None = None  # the request messages' bytes
    raw_body: bytes | None = None  # REST only: a body sent as is
    raw_query: str | None = None  # REST only: a query string sent as is
    raw_path: str | None = None  # REST only: a path sent as is
    binding: HttpBinding | None = None  # REST: the http rule to use (the method's first by default)


# --- wire encoding ------------------------------------------------------------------------------
def varint(n: int) -> bytes:
    """Base-128 varint of n taken modulo 2**64 when it fits 64 bits; wider values give the longer
    (malformed) encoding they would need."""
    if n < 0:
        n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def tag(number: int, wire_type: int) -> bytes:
    return varint(number << 3 | wire_type)


def len_field(number: int, data: bytes) -> bytes:
    return tag(number, 2) + varint(len(data)) + data


def natural_wire_type(fd: FieldDescriptor) -> int:
    if fd.type in (FD.TYPE_DOUBLE, FD.TYPE_FIXED64, FD.TYPE_SFIXED64):
        return 1
    if fd.type in (FD.TYPE_FLOAT, FD.TYPE_FIXED32, FD.TYPE_SFIXED32):
        return 5
    if fd.type in (FD.TYPE_STRING, FD.TYPE_BYTES, FD.TYPE_MESSAGE):
        return 2
    return 0


def wrong_wire_type(fd: FieldDescriptor) -> bytes:
    """The field with a wire type other than its own."""
    if natural_wire_type(fd) == 2:
        return tag(fd.number, 0) + varint(1)
    return len_field(fd.number, b"xyz")


def with_wire(msg: Message, path: tuple[Any, ...], leaf: bytes) -> bytes:
    """msg's encoding with the field at path (its last element a field name) replaced by `leaf`
    (raw field bytes); every message on the way is re-encoded around it."""
    head = path[0]
    m = copy_msg(msg)
    if head in msg.DESCRIPTOR.fields_by_name:  # not an unknown field's made-up name
        m.ClearField(head)
    if len(path) == 1:
        return m.SerializeToString() + leaf
    fd = msg.DESCRIPTOR.fields_by_name[head]
    out = m.SerializeToString()
    if isinstance(path[1], int):
        scratch = copy_msg(msg)
        rep = getattr(scratch, head)
        while len(rep) <= path[1]:
            rep.add()
        for i, item in enumerate(rep):
            body = with_wire(item, path[2:], leaf) if i == path[1] else item.SerializeToString()
            out += len_field(fd.number, body)
        return out
    return out + len_field(fd.number, with_wire(getattr(msg, head), path[1:], leaf))


def copy_msg(msg: Message) -> Message:
    m = type(msg)()
    m.CopyFrom(msg)
    return m


# --- values -------------------------------------------------------------------------------------
INT_RANGES = {
    FD.TYPE_INT32: (-(2**31), 2**31 - 1),
    FD.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FD.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FD.TYPE_INT64: (-(2**63), 2**63 - 1),
    FD.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FD.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FD.TYPE_UINT32: (0, 2**32 - 1),
    FD.TYPE_FIXED32: (0, 2**32 - 1),
    FD.TYPE_UINT64: (0, 2**64 - 1),
    FD.TYPE_FIXED64: (0, 2**64 - 1),
}
NAN, INF = float("nan"), float("inf")
WRONG_TYPES: list[tuple[str, Any]] = [("[]", []), ("{}", {}), ("true", True)]
BAD_NUMBER_JSON: list[tuple[str, Any]] = [
    ("1e400", RawJson("1e400")),
    ("-1e400", RawJson("-1e400")),
    ("400 digits", RawJson("9" * 400)),
    ('"NaN"', "NaN"),
    ('"Infinity"', "Infinity"),
    ("1.5", 1.5),
    ('"1.5"', "1.5"),
    ('"0x10"', "0x10"),
    ('""', ""),
    ("lone surrogate", "\ud800"),
]


def string_values(stress: bool) -> list[tuple[str, str]]:
    out = [
        ("empty", ""),
        ("blank", "   "),
        ("1 char", "a"),
        ("128 chars", "a" * 128),
        ("129 chars", "a" * 129),
        ("257 chars", "b" * 257),
        ("32769 bytes", "c" * 32_769),
        ("1 MB", "d" * MB),
        ("slash", "bad/id"),
        ("dot-dot", "../../etc"),
        ("space inside", "a b"),
        ("NUL", "\x00"),
        ("NUL inside", "a\x00b"),
        ("newline", "a\nb"),
        ("leading dash", "-x"),
        ("non-ASCII", "é日本"),
        ("emoji", "\U0001f600"),
        ("RTL override", "\u202eabc"),
        ("percent", "%2F%00"),
    ]
    if stress:
        out += [
            ("128 multibyte", "é" * 128),
            ("64 chars", "z" * 64),
            ("65 chars", "z" * 65),
            ("max tag+1", "t" * 129),
            ("tab", "\t"),
            ("uppercase", "ABC"),
            ("at sign", "a@b"),
            ("colon", "a:b"),
            ("BOM", "\ufeffx"),
            ("noncharacter", "\uffff"),
        ]
    return out


JSON_ONLY_STRINGS = [("lone high surrogate", "\ud800"), ("lone low surrogate inside", "a\udc00b")]
INVALID_UTF8 = [("invalid UTF-8 0xff", b"\xff"), ("encoded surrogate", b"\xed\xa0\x80"), ("overlong NUL", b"\xc0\x80")]


def scalar_values(fd: FieldDescriptor, stress: bool) -> list[Mutation]:
    """Mutations setting a scalar (or enum) field to each boundary value; path is filled later."""
    out: list[Mutation] = []
    name = fd.name
    t = fd.type

    def both(label: str, value: Any, json_value: Any = ABSENT) -> None:
        jv = value if json_value is ABSENT else json_value
        out.append(Mutation((), label, json=jv, py=lambda m, n, v=value: setattr(m, n, v)))

    def json_only(label: str, value: Any) -> None:
        out.append(Mutation((), label, json=value))

    def wire_only(label: str, raw: bytes) -> None:
        out.append(Mutation((), label, wire=raw))

    if fd.enum_type is not None:
        for v in fd.enum_type.values:
            both(f"enum {v.name}", v.number, v.name)
        for v in (-1, 99, 2**31 - 1, -(2**31)):
            both(f"enum {v}", v)
        json_only("enum 2**31", 2**31)
        json_only('enum "UNKNOWN"', "NOT_A_VALUE")
        json_only('enum ""', "")
        json_only("enum 1.5", 1.5)
        json_only("enum lone surrogate", "\ud800")
        json_only('enum "1"', "1")
        wire_only("enum varint 2**40", tag(fd.number, 0) + varint(2**40))
    elif t in INT_RANGES:
        lo, hi = INT_RANGES[t]
        for v in sorted({lo, -1, 0, 1, hi} - ({-1} if lo == 0 else set())):
            both(f"int {v}", v)
        is64 = hi > 2**32
        if is64:
            json_only(f'int "{hi}" as string', str(hi))
            json_only(f'int "{hi + 1}" as string', str(hi + 1))
        for v in (hi + 1, lo - 1, 2**63, 2**64):
            json_only(f"int {v} (out of range)", v)
        for label, v in BAD_NUMBER_JSON:
            json_only(label, v)
        if natural_wire_type(fd) == 0:
            wire_only("varint 2**40", tag(fd.number, 0) + varint(2**40))
            wire_only("varint of 65 bits", tag(fd.number, 0) + varint(2**64))
            wire_only("varint of 11 bytes", tag(fd.number, 0) + b"\xff" * 10 + b"\x01")
            wire_only("truncated varint", tag(fd.number, 0) + b"\x80")
    elif t in (FD.TYPE_FLOAT, FD.TYPE_DOUBLE):
        for label, v, jv in (
            ("NaN", NAN, "NaN"),
            ("Infinity", INF, "Infinity"),
            ("-Infinity", -INF, "-Infinity"),
            ("-0.0", -0.0, -0.0),
            ("0", 0.0, 0),
            ("1", 1.0, 1),
            ("-1", -1.0, -1),
            ("3.5e38", 3.5e38, 3.5e38),
            ("1e-45", 1e-45, 1e-45),
            ("1.0000001", 1.0000001, 1.0000001),
            ("1e308", 1e308, 1e308),
        ):
            both(f"float {label}", v, jv)
        json_only("NaN literal", RawJson("NaN"))
        json_only("-Infinity literal", RawJson("-Infinity"))
        for label, v in BAD_NUMBER_JSON:
            if label not in ('"NaN"', '"Infinity"', "1.5"):
                json_only(label, v)
        if t == FD.TYPE_FLOAT:
            wire_only("float bits of a signalling NaN", tag(fd.number, 5) + b"\x01\x00\x80\x7f")
        else:
            wire_only("double bits of a signalling NaN", tag(fd.number, 1) + struct.pack("<Q", 0x7FF0000000000001))
        wire_only("truncated fixed", tag(fd.number, natural_wire_type(fd)) + b"\x00")
    elif t == FD.TYPE_BOOL:
        both("true", True)
        both("false", False)
        for label, v in (('"true"', "true"), ("1", 1), ("0", 0), ('"yes"', "yes")):
            json_only(f"bool {label}", v)
        wire_only("bool varint 2", tag(fd.number, 0) + varint(2))
        wire_only("bool varint 2**64-1", tag(fd.number, 0) + varint(2**64 - 1))
    elif t == FD.TYPE_STRING:
        for label, v in string_values(stress):
            both(f"string {label}", v)
        for label, v in JSON_ONLY_STRINGS:
            json_only(f"string {label}", v)
        json_only("string as number", 1)
        for label, raw in INVALID_UTF8:
            wire_only(f"string {label}", len_field(fd.number, raw))
        wire_only("string length past the end", tag(fd.number, 2) + varint(1000) + b"abc")
    elif t == FD.TYPE_BYTES:
        for label, v in (("empty", b""), ("1 MB", b"\x00" * MB), ("bytes", b"\xff\xfe")):
            both(f"bytes {label}", v, json_format.MessageToDict(pb.Embedding(vector=v)).get("vector", ""))
        json_only("bytes not base64", "***")
    for label, v in WRONG_TYPES:
        json_only(f"wrong type {label}", v)
    if t != FD.TYPE_STRING and fd.enum_type is None:
        json_only("wrong type string", "abc")
    out.append(Mutation((), "wrong wire type", wire=wrong_wire_type(fd)))
    for m in out:
        m.label = f"{name}: {m.label}"
    return out


# --- well-known types ---------------------------------------------------------------------------
def _set_ts(seconds: int, nanos: int) -> Callable[[Message, str], None]:
    def f(m: Message, n: str) -> None:
        ts = getattr(m, n)
        ts.seconds = seconds
        ts.nanos = nanos

    return f


def timestamp_values(fd: FieldDescriptor, stress: bool) -> list[Mutation]:
    out: list[Mutation] = []
    seconds = [TS_MIN - 1, TS_MIN, -1, 0, TS_MAX, TS_MAX + 1, -(2**63), 2**63 - 1]
    for s in seconds:
        out.append(Mutation((), f"seconds {s}", py=_set_ts(s, 0)))
    for s in (0, TS_MAX, TS_MIN) if stress else (0, TS_MAX):
        for n in (-1, 999_999_999, 10**9, -(2**31), 2**31 - 1):
            out.append(Mutation((), f"seconds {s} nanos {n}", py=_set_ts(s, n)))
    texts = [
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59.999999999Z",
        "1970-01-01T00:00:00Z",
        "1969-12-31T23:59:59.999999999Z",
        "0000-12-31T23:59:59Z",
        "10000-01-01T00:00:00Z",
        "9999-12-31T23:59:59-01:00",  # 10000-01-01T00:59:59Z
        "0001-01-01T00:00:00+01:00",  # 0000-12-31T23:00:00Z
        "2024-02-30T00:00:00Z",
        "2024-01-01T24:00:00Z",
        "2024-01-01T00:00:60Z",
        "2024-01-01T00:00:00.1234567891Z",
        "2024-01-01T00:00:00+25:00",
        "2024-01-01",
        "",
        "garbage",
        "\ud800",
    ]
    for text in texts:
        out.append(Mutation((), f"RFC 3339 {text!r}", json=text))
    for label, v in [("number 0", 0), ("1e400", RawJson("1e400")), ("object", {"seconds": 1, "nanos": 0}), ("[]", [])]:
        out.append(Mutation((), f"timestamp {label}", json=v))
    out.append(Mutation((), "nanos wrong wire type", wire=len_field(fd.number, tag(2, 2) + varint(1) + b"x")))
    for m in out:
        m.label = f"{fd.name}: {m.label}"
    return out


def _deep_json(depth: int, kind: str) -> RawJson:
    if kind == "object":
        return RawJson('{"a":' * (depth - 1) + "1" + "}" * (depth - 1)) if depth > 1 else RawJson("{}")
    return RawJson('{"a":' + "[" * depth + "1" + "]" * depth + "}")


def _deep_struct_wire(depth: int) -> bytes:
    """A Struct nested `depth` objects deep, built from the inside (no recursion)."""
    inner = b""  # the innermost Struct: empty
    for _ in range(depth - 1):
        value = len_field(5, inner)  # Value.struct_value
        entry = len_field(1, b"a") + len_field(2, value)
        inner = len_field(1, entry)  # Struct.fields
    return inner


def _deep_list_wire(depth: int) -> bytes:
    value = tag(2, 1) + struct.pack("<d", 1.0)  # Value.number_value
    for _ in range(depth):
        value = len_field(6, len_field(1, value))  # Value.list_value { values }
    return len_field(1, len_field(1, b"a") + len_field(2, value))


def _struct_py(build: Callable[[Any], None]) -> Callable[[Message, str], None]:
    def f(m: Message, n: str) -> None:
        s = getattr(m, n)
        s.Clear()
        build(s)

    return f


def struct_values(fd: FieldDescriptor, stress: bool) -> list[Mutation]:
    out: list[Mutation] = []
    num = fd.number

    def both(label: str, value: dict[str, Any]) -> None:
        out.append(Mutation((), label, json=value, py=_struct_py(lambda s, v=value: s.update(v))))

    def wire(label: str, body: bytes, json_value: Any = ABSENT) -> None:
        out.append(Mutation((), label, json=json_value, wire=len_field(num, body)))

    both("empty", {})
    both("null value", {"a": None})
    both("nested", {"a": {"b": [1, "x", None, True, {"c": []}]}})
    both("empty key", {"": 1})
    both("NUL key", {"\x00": "\x00"})
    both("NaN value", {"a": NAN})
    both("Infinity value", {"a": INF})
    both("-0.0 value", {"a": -0.0})
    both("1e308 value", {"a": 1e308})
    both("long key", {"k" * 100_000: 1})
    both("big string value", {"a": "v" * 20_000})
    both("10k keys", {f"k{i}": i for i in range(10_000)})
    both("list of 10k", {"a": list(range(10_000))})
    for depth in (32, 33, 40):
        value: Any = 1
        for _ in range(depth - 1):
            value = {"a": value}
        both(f"objects {depth} deep", value)
    wire("objects 1000 deep", _deep_struct_wire(1000), _deep_json(1000, "object"))
    wire("lists 40 deep", _deep_list_wire(40), _deep_json(40, "list"))
    wire("lists 1000 deep", _deep_list_wire(1000), _deep_json(1000, "list"))
    if stress:
        out.append(Mutation((), "objects 100000 deep", json=_deep_json(100_000, "object")))
    wire("value with no kind", len_field(1, len_field(1, b"a") + len_field(2, b"")))
    wire(
        "value with two kinds (number then string)",
        len_field(1, len_field(1, b"a") + len_field(2, tag(2, 1) + struct.pack("<d", 1.0) + len_field(3, b"s"))),
    )
    wire("list with an empty value", len_field(1, len_field(1, b"a") + len_field(2, len_field(6, len_field(1, b"")))))
    wire("key invalid UTF-8", len_field(1, len_field(1, b"\xff") + len_field(2, tag(4, 0) + varint(1))))
    wire("null_value 99", len_field(1, len_field(1, b"a") + len_field(2, tag(1, 0) + varint(99))))
    for label, v in [
        ("NaN literal", {"a": RawJson("NaN")}),
        ("1e400", {"a": RawJson("1e400")}),
        ("400 digits", {"a": RawJson("9" * 400)}),
        ("lone surrogate key", {"\ud800": 1}),
        ("lone surrogate value", {"a": "\udc00"}),
        ("array", [1]),
        ("string", "x"),
        ("number", 1),
        ("true", True),
    ]:
        out.append(Mutation((), label, json=v))
    for m in out:
        m.label = f"{fd.name}: Struct {m.label}"
    return out


def fieldmask_values(fd: FieldDescriptor, stress: bool) -> list[Mutation]:
    out: list[Mutation] = []

    def paths(label: str, ps: list[str], json_value: Any = ABSENT) -> None:
        def f(m: Message, n: str, ps: list[str] = ps) -> None:
            fm = getattr(m, n)
            del fm.paths[:]
            fm.paths.extend(ps)

        jv = ",".join(_camel(p) for p in ps) if json_value is ABSENT else json_value
        out.append(Mutation((), label, json=jv, py=f))

    paths("nonexistent", ["nonexistent"])
    paths("memory.nonexistent", ["memory.nonexistent"])
    paths("empty path", [""])
    paths("id", ["id"])
    paths("memory", ["memory"])
    paths("created_at", ["created_at"])
    paths("a.b.c", ["a.b.c"])
    paths("content twice", ["content", "content"])
    paths("1000 paths", ["content"] * 1000)
    paths("1 MB path", ["p" * MB])
    paths("NUL", ["\x00"])
    for label, v in [
        ("comma only", ","),
        ("trailing comma", "content,"),
        ("snake_case in JSON", "event_time"),
        ("object form", {"paths": ["content"]}),
        ("array", ["content"]),
        ("number", 1),
        ("lone surrogate", "\ud800"),
    ]:
        out.append(Mutation((), label, json=v))
    out.append(Mutation((), "paths invalid UTF-8", wire=len_field(fd.number, len_field(1, b"\xff"))))
    for m in out:
        m.label = f"{fd.name}: FieldMask {m.label}"
    return out


def _camel(name: str) -> str:
    return re.sub(r"_([a-z0-9])", lambda m: m.group(1).upper(), name)


# --- the generator ------------------------------------------------------------------------------
# Repeated fields' lengths: over the default max_tags (64), max_batch_size (256), max_page_size (1000).
LENGTHS = (65, 257, 1001)
WKT = {"google.protobuf.Timestamp": timestamp_values, "google.protobuf.Struct": struct_values,
       "google.protobuf.FieldMask": fieldmask_values}


def default_element(fd: FieldDescriptor) -> Any:
    """A valid-looking element of a repeated field with nothing in the template."""
    if fd.message_type is not None:
        return {}
    if fd.enum_type is not None:
        return fd.enum_type.values[-1].name
    if fd.type == FD.TYPE_STRING:
        return "x"
    if fd.type == FD.TYPE_BOOL:
        return True
    return 1


def mutations(
    desc: Descriptor,
    template: Any,
    stress: bool,
    depth: int = 0,
    max_depth: int = 3,
    lengths: tuple[int, ...] = LENGTHS,
) -> Iterator[Mutation]:
    """Every single-field mutation of a message whose valid form is `template` (proto3 JSON).
    Repeated fields also get each of `lengths` elements (the server's limits + 1)."""
    template = template if isinstance(template, dict) else {}
    for fd in desc.fields:
        yield from field_mutations(fd, template.get(fd.name, ABSENT), stress, depth, max_depth, lengths)
    # Unknown fields: a JSON key the message does not have; on the wire a field number it does not.
    yield Mutation(("zz_unknown",), "unknown field", json=1, wire=tag(999, 0) + varint(1))
    yield Mutation(("zz_unknown",), "1000 nested unknown groups", wire=tag(999, 3) * 1000 + tag(999, 4) * 1000)


def field_mutations(
    fd: FieldDescriptor, current: Any, stress: bool, depth: int, max_depth: int, lengths: tuple[int, ...]
) -> Iterator[Mutation]:
    name = fd.name
    here = (name,)

    def at(ms: list[Mutation], prefix: tuple[Any, ...]) -> Iterator[Mutation]:
        for m in ms:
            m.path = prefix + m.path
            yield m

    if current is not ABSENT:
        yield Mutation(here, f"{name}: absent", json_remove=True, py=lambda m, n: m.ClearField(n))
    yield Mutation(here, f"{name}: null", json=None)
    if fd.containing_oneof is not None and fd.message_type is None:
        # proto3 optional (or a oneof member): present with its default value.
        zero: Any = False if fd.type == FD.TYPE_BOOL else "" if fd.type == FD.TYPE_STRING else 0
        yield Mutation(here, f"{name}: present with default", json=zero, py=lambda m, n, z=zero: setattr(m, n, z))
    sub = fd.message_type
    is_map = sub is not None and sub.GetOptions().map_entry
    if is_map:
        yield from map_mutations(fd, stress)
        return
    if fd.is_repeated:
        yield from repeated_mutations(fd, current, stress, depth, max_depth, lengths)
        return
    if sub is not None:
        wkt = WKT.get(sub.full_name)
        if wkt is not None:
            yield from at(wkt(fd, stress), here)
            yield Mutation(here, f"{name}: wrong wire type", wire=wrong_wire_type(fd))
            return
        yield Mutation(here, f"{name}: empty message", json={}, py=_empty_message)
        for label, v in [*WRONG_TYPES[:1], ("string", "x"), ("number", 1), ("1e400", RawJson("1e400"))]:
            yield Mutation(here, f"{name}: wrong type {label}", json=v)
        yield Mutation(here, f"{name}: wrong wire type", wire=wrong_wire_type(fd))
        yield Mutation(here, f"{name}: truncated sub-message", wire=tag(fd.number, 2) + varint(50) + b"\x0a")
        if depth + 1 < max_depth:
            for m in mutations(sub, current, stress, depth + 1, max_depth, lengths):
                m.path = here + m.path
                m.label = f"{name}.{m.label}"
                yield m
        return
    for m in scalar_values(fd, stress):
        m.path = here
        yield m


def _empty_message(m: Message, n: str) -> None:
    m.ClearField(n)
    getattr(m, n).SetInParent()


def _elements(fd: FieldDescriptor, current: Any) -> list[Any]:
    if isinstance(current, list) and current:
        return current
    return [default_element(fd)]


def repeated_mutations(
    fd: FieldDescriptor, current: Any, stress: bool, depth: int, max_depth: int, lengths: tuple[int, ...]
) -> Iterator[Mutation]:
    name = fd.name
    here = (name,)
    elems = _elements(fd, current)

    def set_list(values: list[Any]) -> Callable[[Message, str], None]:
        def f(m: Message, n: str) -> None:
            tmp = type(m)()
            json_format.ParseDict({n: values}, tmp)
            m.ClearField(n)
            getattr(m, n).extend(getattr(tmp, n))

        return f

    yield Mutation(here, f"{name}: []", json=[], py=lambda m, n: m.ClearField(n))
    for n in lengths:
        if fd.message_type is not None:
            values = [copy.deepcopy(elems[i % len(elems)]) for i in range(n)]
        elif fd.type == FD.TYPE_STRING:
            values = [f"{elems[0]}{i}" for i in range(n)]
        else:
            values = [elems[i % len(elems)] for i in range(n)]
        yield Mutation(here, f"{name}: {n} elements", json=values, py=set_list(values))
    yield Mutation(here, f"{name}: [null]", json=[None])
    yield Mutation(here, f"{name}: a scalar for the list", json=elems[0] if fd.message_type is None else "x")
    yield Mutation(here, f"{name}: an object for the list", json={"a": 1})
    yield Mutation(here, f"{name}: nested list", json=[elems[:1]])
    sub = fd.message_type
    if sub is not None:
        if depth + 1 < max_depth:
            for m in mutations(sub, elems[0], stress, depth + 1, max_depth, lengths):
                m.path = (name, 0, *m.path)
                m.label = f"{name}[0].{m.label}"
                yield m
        return
    # Scalar elements: the element at index 0 (the others as in the template) takes each value.
    for m in scalar_values(fd, stress):
        if m.wire is not None:
            m.path = here
            # Wire: the template's elements first, then the mutated one appended.
            yield m
            continue
        jv = m.json
        if m.py is not None:
            pyf = m.py

            def py(msg: Message, n: str, pyf: Callable[[Message, str], None] = pyf) -> None:
                # Set through a scratch message's singular twin: scalar setters need a field name.
                scratch = _ScalarSlot()
                pyf(scratch, "v")
                getattr(msg, n)[0:1] = [scratch.v]

            m.py = py
        m.json = [jv, *elems[1:]] if jv is not ABSENT else ABSENT
        m.path = here
        m.label = m.label.replace(f"{name}: ", f"{name}[0]: ", 1)
        yield m


class _ScalarSlot:
    """Receives a value a scalar mutation would set (see repeated_mutations)."""

    v: Any = None


def map_mutations(fd: FieldDescriptor, stress: bool) -> Iterator[Mutation]:
    """A map<K, V> field other than a Struct's (none in the API's requests today)."""
    name = fd.name
    here = (name,)
    key_fd = fd.message_type.fields_by_name["key"]
    zero_key: Any = "" if key_fd.type == FD.TYPE_STRING else 0
    yield Mutation(here, f"{name}: empty map", json={})
    yield Mutation(here, f"{name}: default key", json={str(zero_key): None})
    yield Mutation(here, f"{name}: 10k entries", json={f"{i}": None for i in range(10_000)})
    yield Mutation(here, f"{name}: array for the map", json=[])
    yield Mutation(here, f"{name}: map entry without key or value", wire=len_field(fd.number, b""))


# --- requests -----------------------------------------------------------------------------------
def request_class(info: MethodInfo) -> type[Message]:
    cls: type[Message] = getattr(pb, info.input_type.rsplit(".", 1)[1])
    return cls


def apply_json(template: dict[str, Any], m: Mutation) -> dict[str, Any]:
    data = copy.deepcopy(template)
    node: Any = data
    for i, part in enumerate(m.path[:-1]):
        nxt_is_index = isinstance(m.path[i + 1], int)
        if isinstance(part, int):
            while len(node) <= part:
                node.append({})
            if not isinstance(node[part], dict):
                node[part] = {}
            node = node[part]
            continue
        child = node.get(part)
        if nxt_is_index:
            if not isinstance(child, list):
                child = node[part] = []
        elif not isinstance(child, dict):
            child = node[part] = {}
        node = child
    last = m.path[-1]
    if m.json_remove:
        node.pop(last, None)
    else:
        node[last] = m.json
    return data


def apply_grpc(template_msg: Message, m: Mutation) -> bytes:
    """The request's bytes with the mutation applied (py: through upb, wire: raw bytes)."""
    if m.py is not None:
        msg = copy_msg(template_msg)
        parent: Any = msg
        path = list(m.path)
        while len(path) > 1:
            part = path.pop(0)
            if isinstance(path[0], int):
                idx = path.pop(0)
                rep = getattr(parent, part)
                while len(rep) <= idx:
                    rep.add()
                parent = rep[idx]
            else:
                parent = getattr(parent, part)
        m.py(parent, path[0])
        return msg.SerializeToString()
    assert m.wire is not None
    return with_wire(template_msg, m.path, m.wire)


def parse_template(info: MethodInfo, template: dict[str, Any]) -> Message:
    msg = request_class(info)()
    json_format.ParseDict(template, msg)
    return msg


def cases_for(
    info: MethodInfo, template: Any, stress: bool, lengths: tuple[int, ...] = ()
) -> tuple[list[Case], dict[str, int]]:
    """The mutated requests of one RPC, and counts of what could not be sent on one transport."""
    rpc = f"{info.service}.{info.name}"
    desc = request_class(info).DESCRIPTOR
    stream_in = info.client_streaming
    first = template[0] if stream_in else template
    base_msg = parse_template(info, first)
    out: list[Case] = []
    skipped = {"json_only": 0, "grpc_only": 0}
    for m in mutations(desc, first, stress, max_depth=4 if stress else 3, lengths=lengths or LENGTHS):
        case = Case(rpc, m.label)
        if m.has_json:
            body = apply_json(first, m)
            case.json = [body, *template[1:]] if stream_in else body
        else:
            skipped["grpc_only"] += 1
        if m.has_grpc:
            try:
                data = apply_grpc(base_msg, m)
            except (ValueError, TypeError) as exc:  # upb refuses to build it: JSON only
                raise AssertionError(f"{rpc} {m.label}: upb would not build it: {exc}") from exc
            rest = [parse_template(info, t).SerializeToString() for t in template[1:]] if stream_in else []
            case.wire = [data, *rest]
        else:
            skipped["json_only"] += 1
        out.append(case)
    out += malformed_rest_cases(info, rpc, first)
    out += malformed_wire_cases(rpc, base_msg)
    return out, skipped


def malformed_wire_cases(rpc: str, msg: Message) -> list[Case]:
    data = msg.SerializeToString()
    cases = [
        Case(rpc, "wire: garbage bytes", wire=[b"\xff\xff\xff\xff"]),
        Case(rpc, "wire: 1000 nested groups", wire=[tag(1, 3) * 1000]),
        Case(rpc, "wire: end-group without start", wire=[tag(1, 4)]),
        Case(rpc, "wire: field number 0", wire=[tag(0, 0) + b"\x01"]),
        Case(rpc, "wire: field number 2**29", wire=[tag(2**29, 0) + b"\x01"]),
        Case(rpc, "wire: empty message", wire=[b""]),
    ]
    if data:
        cases.append(Case(rpc, "wire: truncated by one byte", wire=[data[:-1]]))
    return cases


def malformed_rest_cases(info: MethodInfo, rpc: str, template: dict[str, Any]) -> list[Case]:
    """Bodies and query strings that are not the request in proto3 JSON."""
    out: list[Case] = []
    binding = info.bindings[0]
    if binding.body:
        bodies = [
            ("empty body", b""),
            ("array", b"[]"),
            ("string", b'"x"'),
            ("number", b"1"),
            ("null", b"null"),
            ("truncated", b'{"a":'),
            ("trailing garbage", b"{}}"),
            ("trailing comma", b'{"a":1,}'),
            ("invalid UTF-8", b'{"\xff": 1}'),
            ("BOM", b"\xef\xbb\xbf" + json.dumps(template).encode()),
            ("UTF-16", json.dumps(template).encode("utf-16")),
            ("arrays 1000 deep", b"[" * 1000 + b"]" * 1000),
            ("objects 1000 deep", b'{"a":' * 1000 + b"1" + b"}" * 1000),
            ("arrays 100000 deep", b"[" * 100_000 + b"]" * 100_000),
            ("unclosed 100000 deep", b"[" * 100_000),
            ("huge number", b'{"a": ' + b"9" * 5000 + b"}"),
            ("1e400", b'{"a": 1e400}'),
            ("duplicate keys", b'{"a": 1, "a": 2}'),
            ("lone surrogate key", b'{"\\ud800": 1}'),
            ("NUL", b"\x00"),
        ]
        if info.client_streaming:
            line = json.dumps(template).encode()
            bodies += [
                ("NDJSON: valid then invalid line", line + b"\n{\n"),
                ("NDJSON: array line", b"[" + line + b"," + line + b"]\n"),
                ("NDJSON: array of a scalar", b"[1]\n"),
                ("NDJSON: blank lines only", b"\n\n\n"),
                ("NDJSON: 5 MB line", b'{"a":"' + b"x" * 5_000_000 + b'"}\n'),
                ("NDJSON: CRLF", line + b"\r\n" + line + b"\r\n"),
            ]
        for label, raw in bodies:
            out.append(Case(rpc, f"REST body: {label}", raw_body=raw))
    queries = [
        ("unknown parameter", "zz_unknown=1"),
        ("invalid percent-encoding", "agent_id=%zz"),
        ("invalid UTF-8", "agent_id=%ff%fe"),
        ("NUL", "agent_id=%00"),
        ("1000-part key", "a." * 1000 + "b=1"),
        ("no value", "page_size"),
        ("page_size 1e400", "page_size=1e400"),
        ("page_size NaN", "page_size=NaN"),
        ("page_size 2**63", f"page_size={2**63}"),
        ("message as scalar", "filter=x"),
        ("scalar as message", "agent_id.x=1"),
        ("Struct not JSON", "filter.metadata_equals=%7Bbad"),
        ("Struct 1000 deep", "filter.metadata_equals=" + quote('{"a":' * 1000 + "1" + "}" * 1000)),
        ("Struct key path", "filter.metadata_equals.a.b=1"),
        ("Timestamp garbage", "filter.event_time.start_time=garbage"),
        ("repeated message", "requests.agent_id=x"),
    ]
    for label, qs in queries:
        out.append(Case(rpc, f"REST query: {label}", raw_query=qs))
    if "{" in binding.path:
        for label, seg in [
            ("%00", "%00"),
            ("%ff", "%ff"),
            ("encoded slash", "a%2Fb"),
            ("%zz", "%zz"),
            ("dot-dot", ".."),
            ("60k", "x" * URL_MAX_CHARS),
        ]:
            path = re.sub(r"\{[^}]+\}", seg, binding.path)
            out.append(Case(rpc, f"REST path: {label}", raw_path=path))
    return out


# --- sending ------------------------------------------------------------------------------------
@dataclass
class Answer:
    transport: str
    ok: bool
    code: str  # OK, or the gRPC code name (REST: the body's code)
    status: int = 0  # REST: the HTTP status
    message: str = ""
    body: Any = None  # the response (REST: JSON; gRPC: the message(s))
    error_lines: list[dict[str, Any]] = field(default_factory=list)  # REST streaming: {"error"} lines

    def bad(self) -> str:
        """Why this answer breaks the rules (5xx, INTERNAL, UNKNOWN, DATA_LOSS), or ''."""
        if self.transport == "rest" and self.status >= 500:
            return f"HTTP {self.status} {self.code}: {self.message[:300]}"
        if self.code in BAD_GRPC:
            return f"{self.code}: {self.message[:300]}"
        for e in self.error_lines:
            if e.get("code") in BAD_GRPC:
                return f"stream error line {e}"
        return ""


def dumps(value: Any) -> str:
    """JSON text of value, RawJson placeholders written verbatim."""
    raws: list[str] = []

    def default(o: Any) -> Any:
        if isinstance(o, RawJson):
            raws.append(o.text)
            return f"\x00RAW{len(raws) - 1}\x00"
        raise TypeError(type(o).__name__)

    text = json.dumps(value, default=default)
    for i, raw in enumerate(raws):
        text = text.replace(json.dumps(f"\x00RAW{i}\x00"), raw)
    return text


def _text(value: Any) -> str:
    """A value as a query parameter or path segment."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, RawJson):
        return value.text
    if isinstance(value, (int, float)):
        return repr(value)
    return dumps(value)


def _quote(value: str) -> str:
    return quote(value[:URL_MAX_CHARS].encode("utf-8", "surrogatepass"), safe="")


def query_items(desc: Descriptor | None, data: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Fields as query parameters: sub-messages dotted, repeated fields repeated, a Struct as
    JSON text, everything else as text."""
    out: list[tuple[str, str]] = []
    if not isinstance(data, dict):
        return [(prefix.rstrip(".") or "body", _text(data))]
    for key, value in data.items():
        fd = desc.fields_by_name.get(key) if desc is not None else None
        name = prefix + key
        if value is None:
            continue
        sub = fd.message_type if fd is not None else None
        wkt = sub is not None and sub.full_name.startswith("google.protobuf.")
        if isinstance(value, dict) and sub is not None and not wkt:
            out += query_items(sub, value, name + ".")
        elif isinstance(value, list) and fd is not None and fd.is_repeated:
            out += [(name, _text(v)) for v in value]
        else:
            out.append((name, _text(value)))
    return out


# Server streams that stay open until the client leaves (a watch): the answer is the first
# response, which the server sends at once (its starting cursor); then the call is cancelled.
OPEN_ENDED = frozenset({"MemoryService.WatchMemories"})


class Caller:
    """Sends a request to one server over gRPC (raw bytes) or REST (its http rule)."""

    def __init__(self, base_url: str, grpc_target: str, api_key: str) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=120, headers={"authorization": f"Bearer {api_key}"})
        self.channel = grpc.insecure_channel(
            grpc_target, options=[("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
        )
        self.metadata = (("authorization", f"Bearer {api_key}"),)
        self.methods = {f"{m.service}.{m.name}": m for m in api().methods.values()}
        self.unsendable: list[str] = []  # REST cases whose URL httpx refuses to build

    def close(self) -> None:
        self.http.close()
        self.channel.close()

    # gRPC ---------------------------------------------------------------------------------------
    def grpc(self, rpc: str, wire: list[bytes], timeout: float = 120) -> Answer:
        info = self.methods[rpc]
        resp_cls = getattr(pb, info.output_type.rsplit(".", 1)[1])
        ident = lambda b: b  # noqa: E731
        try:
            if info.client_streaming:
                call = self.channel.stream_unary(info.path, ident, resp_cls.FromString)
                body: Any = call(iter(wire), metadata=self.metadata, timeout=timeout)
            elif info.server_streaming:
                call = self.channel.unary_stream(info.path, ident, resp_cls.FromString)
                responses = call(wire[0], metadata=self.metadata, timeout=timeout)
                if rpc in OPEN_ENDED:
                    first = next(responses, None)  # an error is raised here, as RpcError
                    responses.cancel()
                    body = [] if first is None else [first]
                else:
                    body = list(responses)
            else:
                call = self.channel.unary_unary(info.path, ident, resp_cls.FromString)
                body = call(wire[0], metadata=self.metadata, timeout=timeout)
        except grpc.RpcError as err:
            return Answer("grpc", False, err.code().name, message=err.details() or "")
        return Answer("grpc", True, "OK", body=body)

    # REST ---------------------------------------------------------------------------------------
    def rest(self, case: Case) -> Answer | None:
        info = self.methods[case.rpc]
        b = case.binding or info.bindings[0]
        path = case.raw_path or b.path
        query: Any = case.raw_query
        content: bytes | None = case.raw_body
        headers: dict[str, str] = {}
        if case.raw_path is None and case.raw_query is None and case.raw_body is None:
            path, query, content = self._encode(info, b, case.json)
        elif "{" in path:
            path = re.sub(r"\{[^}]+\}", "x", path)
        if content is not None or b.body:
            headers["content-type"] = "application/x-ndjson" if info.client_streaming else "application/json"
            if content is None:
                content = b""
        url = path + (f"?{query}" if isinstance(query, str) and query else "")
        params = query if isinstance(query, list) else None
        try:
            req = self.http.build_request(b.method, url, params=params, content=content, headers=headers)
        except httpx.InvalidURL:  # over httpx's 64 KiB URL limit: not sendable with this client
            self.unsendable.append(f"{case.rpc} [{case.label}]")
            return None
        if case.rpc in OPEN_ENDED:
            resp = self.http.send(req, stream=True)
            try:
                if resp.status_code != 200:
                    resp.read()
                    return self._answer(resp, stream=True)
                first = next((line for line in resp.iter_lines() if line.strip()), "")
            finally:
                resp.close()
            return self._answer(httpx.Response(200, content=first.encode(), request=req), stream=True)
        return self._answer(self.http.send(req), stream=info.server_streaming)

    def _encode(self, info: MethodInfo, b: HttpBinding, data: Any) -> tuple[str, Any, bytes | None]:
        desc = request_class(info).DESCRIPTOR
        if info.client_streaming:
            body = "".join(dumps(item) + "\n" for item in data).encode("utf-8", "surrogatepass")
            return b.path, [], body
        data = copy.deepcopy(data)

        def fill(match: re.Match[str]) -> str:
            parts = match.group(1).split(".")
            node: Any = data
            for p in parts[:-1]:
                node = node.get(p) if isinstance(node, dict) else None
            value = node.get(parts[-1], "") if isinstance(node, dict) else ""
            if len(parts) == 1 and isinstance(data, dict):
                data.pop(parts[0], None)
            return _quote(_text(value)) if value is not None else ""

        path = re.sub(r"\{([^}=]+)\}", fill, b.path)
        if b.body == "*":
            return path, [], dumps(data).encode("utf-8", "surrogatepass")
        if b.body:
            body_value = data.pop(b.body, ABSENT) if isinstance(data, dict) else ABSENT
            content = b"" if body_value is ABSENT else dumps(body_value).encode("utf-8", "surrogatepass")
            return path, self._query(desc, data), content
        return path, self._query(desc, data), None

    @staticmethod
    def _query(desc: Descriptor, data: Any) -> str:
        items = query_items(desc, data)
        return "&".join(f"{_quote(k)}={_quote(v)}" for k, v in items)

    @staticmethod
    def _answer(resp: httpx.Response, stream: bool) -> Answer:
        if resp.status_code != 200:
            try:
                body = resp.json()
                code = body.get("code", "") if isinstance(body, dict) else ""
                message = body.get("message", "") if isinstance(body, dict) else resp.text
            except ValueError:
                code, message = "", resp.text
            return Answer("rest", False, code or f"HTTP_{resp.status_code}", resp.status_code, str(message))
        if stream:
            lines = [json.loads(line) for line in resp.text.splitlines() if line.strip()]
            errors = [x["error"] for x in lines if isinstance(x, dict) and "error" in x]
            if errors:
                e = errors[0]
                return Answer("rest", False, e.get("code", ""), 200, e.get("message", ""), lines, errors)
            return Answer("rest", True, "OK", 200, body=lines)
        return Answer("rest", True, "OK", 200, body=resp.json())

    def call(self, transport: str, case: Case) -> Answer | None:
        """The case over one transport; None when it has no form there."""
        if transport == "grpc":
            return None if case.wire is None else self.grpc(case.rpc, case.wire)
        if case.json is ABSENT and case.raw_body is None and case.raw_query is None and case.raw_path is None:
            return None
        return self.rest(case)


def to_dict(body: Any) -> Any:
    if isinstance(body, list):
        return [to_dict(x) for x in body]
    if isinstance(body, Message):
        return json_format.MessageToDict(body, preserving_proto_field_name=True)
    return body


def request(caller: Caller, transport: str, rpc: str, data: Any) -> Answer:
    """A valid request (proto3 JSON) over one transport; a gRPC response comes back as JSON too."""
    info = caller.methods[rpc]
    case = Case(rpc, "request", json=data)
    if transport == "grpc":
        items = data if info.client_streaming else [data]
        case.wire = [parse_template(info, d).SerializeToString() for d in items]
    ans = caller.call(transport, case)
    assert ans is not None
    if ans.ok:
        ans.body = to_dict(ans.body)
    return ans


def unreadable(
    caller: Caller, transports: tuple[str, ...] = ("rest", "grpc"), counts: dict[str, int] | None = None
) -> list[str]:
    """Every agent, read back in full: agents listed page by page; each agent's memories listed
    page by page, exported, recalled, and each one got, with its history (and graph for some).
    Returns what failed. A memory that expires while this runs is left out."""
    problems: list[str] = []
    counts = counts if counts is not None else {}

    def must(t: str, rpc: str, data: Any) -> Any:
        counts["calls"] = counts.get("calls", 0) + 1
        ans = request(caller, t, rpc, data)
        if not ans.ok:
            problems.append(f"{t} {rpc} {json.dumps(data)[:200]}: {ans.code} {ans.status} {ans.message[:200]}")
            return None
        return ans.body

    import time

    soon = time.time() + 120
    for t in transports:
        agents: list[str] = []
        token = ""
        while True:
            page = must(t, "AgentService.ListAgents", {"page_size": 7, "page_token": token})
            if page is None:
                break
            agents += [a["agent_id"] for a in page.get("agents", [])]
            token = page.get("next_page_token", "")
            if not token:
                break
        counts[f"{t} agents"] = len(agents)
        for agent in agents:
            must(t, "AgentService.GetAgent", {"agent_id": agent})
            listed: dict[str, Any] = {}
            token = ""
            while True:
                page = must(t, "MemoryService.ListMemories", {"agent_id": agent, "page_size": 50, "page_token": token})
                if page is None:
                    break
                listed.update({m["id"]: m for m in page.get("memories", [])})
                token = page.get("next_page_token", "")
                if not token:
                    break
            exported = must(t, "MemoryService.ExportMemories", {"agent_id": agent})
            lasting = {i for i, m in listed.items() if not m.get("expires_at") or ts_seconds(m["expires_at"]) > soon}
            counts[f"{t} memories"] = counts.get(f"{t} memories", 0) + len(listed)
            if exported is not None:
                got = {x["memory"]["id"] for x in exported}
                if lasting - got:
                    problems.append(f"{t} export of {agent} lacks {sorted(lasting - got)[:5]}")
            must(t, "MemoryService.Recall", {"agent_id": agent, "query": "boundary memory", "top_k": 100})
            for i, mid in enumerate(sorted(lasting)):
                must(t, "MemoryService.GetMemory", {"agent_id": agent, "id": mid})
                must(t, "MemoryService.GetMemoryHistory", {"agent_id": agent, "id": mid})
                if i < 10:
                    must(t, "MemoryService.GetMemoryGraph", {"agent_id": agent, "id": mid, "depth": 5})
    return problems


def ts_seconds(text: str) -> float:
    from google.protobuf.timestamp_pb2 import Timestamp

    ts = Timestamp()
    ts.FromJsonString(text)
    return ts.seconds + ts.nanos / 1e9
