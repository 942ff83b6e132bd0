"""The compiled JSON writer gives json_format's dict for every message of the API: filled, empty,
with explicit-presence fields at their defaults, and with the float and timestamp values whose
formatting has rules of its own. Key order is compared too, except inside a Struct (whose keys
the writer keeps in stored order, json_format's upb copy in hash order)."""

from __future__ import annotations

import datetime
import json
import math
from typing import Any

import betterproto2
import pytest
from engram._gen.engram import v1 as pb
from engram._gen.google import protobuf as gpb
from engram_server.descriptors import api
from engram_server.transport.codec import Codec
from engram_server.transport.json_encode import JsonEncoder

from .test_upb_encode import MESSAGES, _defaults_with_presence, _fill

CODEC = Codec(api())
WRITER = JsonEncoder(api().descriptor)
# Fields holding a Struct, by name: inside them key order is not compared.
STRUCT_FIELDS = {
    fd.name
    for cls in MESSAGES
    for fd in api().descriptor(f"engram.v1.{cls.__name__}").fields
    if fd.message_type is not None and fd.message_type.full_name == "google.protobuf.Struct"
}


def _same(full_name: str, msg: betterproto2.Message) -> dict[str, Any]:
    ours = WRITER.to_dict(full_name, msg)
    assert ours is not None, f"{full_name} fell back to json_format"
    theirs = CODEC.to_json_reference(full_name, msg)
    _same_json(ours, theirs, full_name)
    return ours


def _same_json(ours: Any, theirs: Any, path: str, in_struct: bool = False) -> None:
    """Equal values of equal types (1.0 is not 1), and equal key order outside Structs."""
    assert type(ours) is type(theirs), f"{path}: {ours!r} != {theirs!r}"
    if isinstance(ours, dict):
        if in_struct:
            assert sorted(ours) == sorted(theirs), path
        else:
            assert list(ours) == list(theirs), f"{path}: key order {list(ours)} != {list(theirs)}"
        for key in ours:
            _same_json(ours[key], theirs[key], f"{path}.{key}", in_struct or key in STRUCT_FIELDS)
    elif isinstance(ours, list):
        assert len(ours) == len(theirs), path
        for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            _same_json(a, b, f"{path}[{i}]", in_struct)
    else:
        assert ours == theirs or (isinstance(ours, float) and math.isnan(ours) and math.isnan(theirs)), (
            f"{path}: {ours!r} != {theirs!r}"
        )


def _compiled(cls: type) -> bool:
    """Whether the writer handles cls, nested messages included (a filled one reaches them)."""
    return WRITER.to_dict(f"engram.v1.{cls.__name__}", _fill(cls)) is not None


@pytest.mark.parametrize("cls", MESSAGES, ids=lambda c: c.__name__)
def test_every_message_writes_as_json_format_does(cls: type) -> None:
    full_name = f"engram.v1.{cls.__name__}"
    if not _compiled(cls):
        pytest.skip(f"{cls.__name__} has a field kind left to json_format")
    _same(full_name, _fill(cls))
    _same(full_name, cls())
    _same(full_name, _defaults_with_presence(cls))


def test_the_hot_responses_are_compiled() -> None:
    """REST's frequent answers must not fall back to json_format (a field kind the writer does
    not know, added to one of them, would make REST quietly slow again)."""
    for cls in (pb.RecallResponse, pb.Memory, pb.StoreMemoryResponse, pb.ListMemoriesResponse, pb.HealthResponse):
        assert _compiled(cls), cls.__name__
    fallen = [c.__name__ for c in MESSAGES if not _compiled(c)]
    assert len(fallen) < len(MESSAGES) // 4, fallen


@pytest.mark.parametrize(
    "value",
    [0.0, -0.0, 0.1, 0.7, 1 / 3, 1e-8, 123456.789, 3.4028234e38, -2.5e-45, 16777217.0, math.inf, -math.inf, math.nan],
)
def test_float_fields_shorten_as_json_format_does(value: float) -> None:
    _same("engram.v1.RecalledMemory", pb.RecalledMemory(id="m", score=value, importance=value))


@pytest.mark.parametrize("micros", [0, 1, 500, 123000, 123456, 999999])
@pytest.mark.parametrize("year", [1, 1969, 1970, 2026, 9999])
def test_timestamps_write_as_json_format_does(year: int, micros: int) -> None:
    when = datetime.datetime(year, 12, 31, 23, 59, 58, micros, tzinfo=datetime.UTC)
    _same("engram.v1.Memory", pb.Memory(id="m", created_at=when, event_time=when))
    other_zone = when.astimezone(datetime.timezone(datetime.timedelta(hours=-5))) if year > 1 else when
    _same("engram.v1.Memory", pb.Memory(id="m", created_at=other_zone))


def test_struct_values_and_errors_match() -> None:
    meta = gpb.Struct.from_dict({"z": 1, "a": [1, "x", None, {"b": True, "c": 2.5}], "n": -0.5, "s": "é🙂"})
    ours = _same("engram.v1.Memory", pb.Memory(id="m", metadata=meta))
    assert list(ours["metadata"]) == ["z", "a", "n", "s"]  # stored order
    assert json.dumps(ours["metadata"]["z"]) == "1.0"  # a Struct number is a double, as in json_format


def test_what_json_format_refuses_falls_back_to_it() -> None:
    naive = pb.Memory(id="m", created_at=datetime.datetime(2026, 1, 1))  # naive, on purpose
    assert WRITER.to_dict("engram.v1.Memory", naive) is None
    with pytest.raises(ValueError):
        CODEC.to_json("engram.v1.Memory", naive)
    inf_meta = pb.Memory(id="m", metadata=gpb.Struct.from_dict({"x": math.inf}))
    assert WRITER.to_dict("engram.v1.Memory", inf_meta) is None
    huge = pb.RecalledMemory(id="m", score=1e39)  # beyond float32: upb stores infinity
    assert WRITER.to_dict("engram.v1.RecalledMemory", huge) is None
    assert CODEC.to_json("engram.v1.RecalledMemory", huge)["score"] == "Infinity"
