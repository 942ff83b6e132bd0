"""The JSON writer gives json_format's proto3 JSON for every message of the API (filled, empty,
presence fields at their defaults), and the reader names what it refuses."""

from __future__ import annotations

import math

import pytest
from engram_server import pb
from engram_server._gen.engram.v1 import enums_pb2, messages_pb2, request_response_pb2
from engram_server.errors import RpcError
from engram_server.transport import json_codec
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

MESSAGES = sorted(
    (
        cls
        for module in (messages_pb2, request_response_pb2)
        for name in module.DESCRIPTOR.message_types_by_name
        for cls in [getattr(module, name)]
    ),
    key=lambda c: c.DESCRIPTOR.full_name,
)
WRITER = json_codec.JsonWriter()


def _fill(msg: Message, depth: int = 0, seed: int = 1) -> Message:
    """Every field of msg set to a non-default value (sub-messages two levels deep)."""
    for fd in msg.DESCRIPTOR.fields:
        name = fd.name
        if fd.message_type is not None:
            full = fd.message_type.full_name
            if fd.message_type.GetOptions().map_entry:
                getattr(msg, name)["k"] = seed
            elif full == "google.protobuf.Timestamp":
                target = getattr(msg, name).add() if fd.is_repeated else getattr(msg, name)
                target.seconds, target.nanos = 1_700_000_000 + seed, 123_000_000
            elif full == "google.protobuf.Struct":
                getattr(msg, name).update({"a": 1.5, "b": [True, None, "x"], "c": {"d": "e"}})
            elif full == "google.protobuf.FieldMask":
                getattr(msg, name).paths.append("content")
            elif depth < 2:
                sub = getattr(msg, name).add() if fd.is_repeated else getattr(msg, name)
                _fill(sub, depth + 1, seed + 1)
            continue
        value = _scalar(fd, seed)
        if fd.is_repeated:
            getattr(msg, name).extend([value, value])
        else:
            setattr(msg, name, value)
    return msg


def _scalar(fd: FieldDescriptor, seed: int) -> object:
    if fd.enum_type is not None:
        return fd.enum_type.values[-1].number
    if fd.type == fd.TYPE_STRING:
        return f"s{seed}é"
    if fd.type == fd.TYPE_BYTES:
        return b"\x00\xffbytes"
    if fd.type == fd.TYPE_BOOL:
        return True
    if fd.type in (fd.TYPE_FLOAT, fd.TYPE_DOUBLE):
        return 0.1 * seed + 0.3
    return 7 * seed


@pytest.mark.parametrize("cls", MESSAGES, ids=lambda c: c.DESCRIPTOR.name)
def test_writer_matches_json_format(cls: type[Message]) -> None:
    for msg in (cls(), _fill(cls())):
        assert WRITER.to_dict(msg) == json_codec.reference_dict(msg), cls.DESCRIPTOR.full_name


def test_presence_fields_at_their_default_are_written() -> None:
    msg = pb.StoreMemoryRequest(importance=0.0)
    msg.metadata.SetInParent()
    msg.event_time.SetInParent()
    out = WRITER.to_dict(msg)
    assert out == json_codec.reference_dict(msg)
    assert out["importance"] == 0.0 and out["metadata"] == {} and out["event_time"] == "1970-01-01T00:00:00Z"


def test_float_edge_values() -> None:
    for value in (0.1, 1e-45, 3.4e38, -0.0, math.inf, -math.inf, math.nan):
        msg = pb.RecalledMemory(score=value)
        assert str(WRITER.to_dict(msg)["score"]) == str(json_codec.reference_dict(msg)["score"])


def test_timestamps_from_year_1_to_9999() -> None:
    for seconds, nanos in ((-62135596800, 0), (0, 1), (0, 1000), (0, 1_000_000), (253402300799, 999_999_999)):
        msg = pb.Memory()
        msg.created_at.seconds, msg.created_at.nanos = seconds, nanos
        assert WRITER.to_dict(msg) == json_codec.reference_dict(msg)


def test_every_api_message_has_a_plan() -> None:
    """The frequent answers must not fall back to json_format's generic walk."""
    for cls in (pb.RecallResponse, pb.GetMemoryResponse, pb.StoreMemoryResponse, pb.ListMemoriesResponse):
        assert WRITER._plan(json_codec.descriptor_of(cls)) is not None


def test_reader_names_unknown_fields_and_takes_enum_aliases() -> None:
    req = json_codec.parse(pb.RecallRequest, {"agentId": "a", "query": "q", "mode": "keyword"})
    assert req.agent_id == "a" and req.mode == enums_pb2.RECALL_MODE_KEYWORD
    with pytest.raises(RpcError) as err:
        json_codec.parse(pb.RecallRequest, {"agent_id": "a", "filter": {"tagz": []}})
    assert err.value.code == "INVALID_ARGUMENT" and "filter.tagz" in err.value.message
    with pytest.raises(RpcError) as err:
        json_codec.parse(pb.StoreMemoryRequest, {"memory_type": "nope"})
    assert "memory_type" in err.value.message
