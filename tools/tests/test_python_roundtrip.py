"""Every message of the generated Python code survives binary and JSON round trips.

Messages are populated generically, by reflecting on the betterproto2 dataclass fields (scalars,
enums, nested messages, repeated fields, maps, oneofs, well-known types unwrapped to
``datetime``/``timedelta``), so a message added to the proto is covered without touching this
file. For each oneof, one variant per member is built so that every member is exercised.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import inspect
import types
from typing import Any

import betterproto2
import pytest
from engram._gen import engram as _engram_pkg
from engram._gen import google as _google_pkg
from engram._gen.engram import v1
from engram._gen.google import api as google_api
from engram._gen.google import protobuf as google_protobuf

MAX_DEPTH = 3
# betterproto2 message classes are dataclasses built at import time: typed loosely here.
MessageClass = Any

SCALAR_SAMPLES: dict[str, Any] = {
    "string": "héllo ✓ \"quoted\"\n",
    "bytes": b"\x00\x01\xfe\xff vectors",
    "bool": True,
    "float": 0.625,  # exactly representable in float32
    "double": 1234.5678,
    "int32": -123456,
    "sint32": -7,
    "sfixed32": -8,
    "uint32": 4_000_000_000,
    "fixed32": 4_000_000_001,
    "int64": -(2**53) - 3,  # beyond float precision: proto3 JSON writes it as a string
    "sint64": -(2**40),
    "sfixed64": 2**62,
    "uint64": 2**64 - 2,
    "fixed64": 2**63 + 5,
}
SAMPLE_TIME = datetime.datetime(2024, 2, 29, 13, 45, 7, 123456, tzinfo=datetime.UTC)
SAMPLE_DURATION = datetime.timedelta(seconds=93784, microseconds=500_000)


def _message_classes(module: types.ModuleType) -> list[MessageClass]:
    return sorted(
        (c for c in vars(module).values() if inspect.isclass(c) and issubclass(c, betterproto2.Message)),
        key=lambda c: c.__name__,
    )


def _field_class(cls: MessageClass, name: str) -> Any:
    return cls._betterproto.cls_by_field[name]


def _sample(proto_type: str, klass: Any, depth: int) -> Any:
    if proto_type == "enum":
        members = list(klass)
        return members[-1] if len(members) > 1 else members[0]  # a non-default value when there is one
    if proto_type == "message":
        if klass is datetime.datetime:
            return SAMPLE_TIME
        if klass is datetime.timedelta:
            return SAMPLE_DURATION
        if not (inspect.isclass(klass) and issubclass(klass, betterproto2.Message)):
            # A wrapper type unwrapped to a Python scalar (str, int, float, bool, bytes).
            return {str: "wrapped", int: 42, float: 2.5, bool: True, bytes: b"\x07"}[klass]
        return populate(klass, depth + 1)[0]
    return SCALAR_SAMPLES[proto_type]


def _other_key(key: Any) -> Any:
    return {str: "second-key", bool: False}.get(type(key), 1)


def populate(cls: MessageClass, depth: int = 0) -> list[betterproto2.Message]:
    """Instances of ``cls`` with every field set; one instance per member of the largest oneof.

    Below ``MAX_DEPTH`` nested messages are populated too; at it, only scalar fields are set, so
    recursive types (``Struct`` → ``Value`` → ``Struct``) end.
    """
    if cls is google_protobuf.Timestamp:  # the valid range is years 1 to 9999, not all of int64
        return [google_protobuf.Timestamp.from_datetime(SAMPLE_TIME)]
    duration = getattr(google_protobuf, "Duration", None)  # generated only when the API uses it
    if duration is not None and cls is duration:
        return [duration.from_timedelta(SAMPLE_DURATION)]
    meta = cls._betterproto
    recurse = depth < MAX_DEPTH
    plain: dict[str, Any] = {}
    groups: dict[str, list[tuple[str, Any]]] = {}
    for f in dataclasses.fields(cls):
        fm: betterproto2.FieldMetadata = f.metadata["betterproto"]
        if fm.proto_type == "map":
            key_meta, value_meta = fm.map_meta  # type: ignore[misc]
            if value_meta.proto_type == "message" and not recurse:
                continue
            value = _sample(value_meta.proto_type, meta.cls_by_field.get(f"{f.name}.value"), depth)
            key = SCALAR_SAMPLES[key_meta.proto_type]
            plain[f.name] = {key: value, _other_key(key): value}
            continue
        if fm.proto_type == "message" and not recurse:
            continue
        value = _sample(fm.proto_type, _field_class(cls, f.name), depth)
        if fm.repeated:
            value = [value, value]
        if fm.group:
            groups.setdefault(fm.group, []).append((f.name, value))
        else:
            plain[f.name] = value
    variants = max((len(members) for members in groups.values()), default=1)
    out = []
    for i in range(variants):
        kwargs = dict(plain)
        for members in groups.values():
            name, value = members[min(i, len(members) - 1)]
            kwargs[name] = value
        out.append(cls(**kwargs))
    return out


def _all_classes() -> list[MessageClass]:
    classes = _message_classes(v1) + _message_classes(google_api) + _message_classes(google_protobuf)
    assert _engram_pkg and _google_pkg  # the generated packages import
    return classes


ALL = _all_classes()
ENGRAM = [c for c in ALL if c.__module__.startswith("engram._gen.engram")]
# Proto2 descriptor messages use features (defaults, groups, extensions) outside the proto3 JSON
# mapping; they are covered by the binary round trip only.
_DESCRIPTOR_SUFFIXES = (
    "Options", "OptionNamePart", "Option", "Info", "Location", "Annotation", "Range", "FeatureSet",
    "Defaults", "EditionDefault", "FeatureSupport", "Declaration", "VisibilityFeature",
)  # fmt: skip
JSON_EXEMPT = {
    c
    for c in _message_classes(google_protobuf)
    if "Descriptor" in c.__name__ or c.__name__.endswith(_DESCRIPTOR_SUFFIXES)
}


def _class_id(cls: type) -> str:
    return f"{cls.__module__.removeprefix('engram._gen.')}.{cls.__name__}"


def test_every_engram_message_is_covered() -> None:
    assert len(ENGRAM) >= 60, [c.__name__ for c in ENGRAM]
    for name in ("Memory", "RecallRequest", "RecallResponse", "EmbedResponse", "ImportMemoriesRequest"):
        assert hasattr(v1, name)


def test_every_enum_has_an_unspecified_zero() -> None:
    enums = [c for c in vars(v1).values() if inspect.isclass(c) and issubclass(c, enum.Enum)]
    assert enums
    for e in enums:
        assert e(0).name.endswith("UNSPECIFIED"), e


@pytest.mark.parametrize("cls", ALL, ids=_class_id)
def test_binary_round_trip(cls: MessageClass) -> None:
    for msg in populate(cls):
        data = bytes(msg)
        if dataclasses.fields(cls):
            assert data, f"{cls.__name__}: populated message encoded to nothing"
        assert cls.parse(data) == msg
        assert bytes(cls.parse(data)) == data


@pytest.mark.parametrize("casing", [betterproto2.Casing.CAMEL, betterproto2.Casing.SNAKE], ids=["camel", "snake"])
@pytest.mark.parametrize("cls", [c for c in ALL if c not in JSON_EXEMPT], ids=_class_id)
def test_json_round_trip(cls: MessageClass, casing: betterproto2.Casing) -> None:
    for msg in populate(cls):
        as_dict = msg.to_dict(casing=casing)
        assert cls.from_dict(as_dict) == msg
        assert cls.from_json(msg.to_json()) == msg


def test_int64_is_a_json_string_and_snake_case_names() -> None:
    stats = v1.GetStatsResponse(memory_count=2**53 + 1)
    assert stats.to_dict(casing=betterproto2.Casing.SNAKE) == {"memory_count": str(2**53 + 1)}
    assert v1.GetStatsResponse.from_dict({"memoryCount": "9007199254740993"}) == stats
    assert v1.GetStatsResponse.from_dict({"memory_count": 9007199254740993}) == stats


def test_default_message_encodes_empty() -> None:
    for cls in ENGRAM:
        assert bytes(cls()) == b"", cls.__name__


@pytest.mark.parametrize("cls", ENGRAM, ids=lambda c: c.__name__)
def test_populate_sets_every_field(cls: MessageClass) -> None:
    """Guards the generator above: no field of an API message is left at its default."""
    variants = populate(cls)
    default = cls()
    for f in dataclasses.fields(cls):
        assert any(getattr(v, f.name) != getattr(default, f.name) for v in variants), f"{cls.__name__}.{f.name}"
