"""The upb encoder gives the same message as betterproto2's own serialiser, for every message of
the API: filled with non-default values, left empty, and with explicit-presence fields set to
their defaults (which must still be sent)."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import inspect
import typing

import betterproto2
import pytest
from engram._gen.engram import v1 as pb
from engram._gen.google import protobuf as gpb
from engram_server.descriptors import api
from engram_server.transport.upb_encode import UpbEncoder

API = api()
ENCODER = UpbEncoder(API.message_class, API.descriptor)
MESSAGES = sorted(
    (cls for _, cls in inspect.getmembers(pb, inspect.isclass) if issubclass(cls, betterproto2.Message)),
    key=lambda c: c.__name__,
)
WHEN = datetime.datetime(2026, 11, 29, 3, 4, 5, 678901, tzinfo=datetime.UTC)


def _sample(cls: type, hint: typing.Any, meta: typing.Any, depth: int, seed: int) -> typing.Any:
    """A non-default value for one field."""
    if meta.map_meta is not None:
        _, value_type = meta.map_meta
        if typing.get_origin(hint) is not dict:  # Optional[dict[...]]
            hint = next(a for a in typing.get_args(hint) if a is not type(None))
        value_cls = typing.get_args(hint)[1]
        if isinstance(value_cls, type) and issubclass(value_cls, betterproto2.Message):
            value = _fill(value_cls, depth + 1, seed) if depth < 3 else value_cls()
        else:
            value = _scalar(value_type.proto_type, None, seed)
        return {f"k{seed}": value, "second": value}
    if meta.unwrap is not None:  # Timestamp
        value = WHEN + datetime.timedelta(seconds=seed)
        return [value] if meta.repeated else value
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    base = args[0] if args else hint
    if typing.get_origin(base) is list:
        base = typing.get_args(base)[0]
    if isinstance(base, type) and issubclass(base, betterproto2.Message):
        value = _fill(base, depth + 1, seed) if depth < 3 else base()
    elif isinstance(base, type) and issubclass(base, enum.Enum):
        members = list(base)
        value = members[min(len(members) - 1, 1 + seed % max(1, len(members) - 1))]
    else:
        value = _scalar(meta.proto_type, base, seed)
    return [value, value] if meta.repeated else value


def _scalar(proto_type: str, base: typing.Any, seed: int) -> typing.Any:
    if proto_type in (betterproto2.TYPE_STRING,):
        return f"text {seed} é 🙂"
    if proto_type == betterproto2.TYPE_BYTES:
        return bytes([seed % 256, 0, 255])
    if proto_type == betterproto2.TYPE_BOOL:
        return True
    if proto_type in (betterproto2.TYPE_FLOAT, betterproto2.TYPE_DOUBLE):
        return 0.25 + seed
    return 7 + seed


def _fill(cls: type, depth: int = 0, seed: int = 1) -> betterproto2.Message:
    hints = typing.get_type_hints(cls, vars(inspect.getmodule(cls)))
    kwargs: dict[str, typing.Any] = {}
    groups: set[str] = set()
    for i, field in enumerate(dataclasses.fields(cls)):
        meta = field.metadata.get("betterproto")
        if meta is None:
            continue
        if meta.group:
            if meta.group in groups:
                continue  # one member per oneof
            groups.add(meta.group)
        kwargs[field.name] = _sample(cls, hints[field.name], meta, depth, seed + i)
    return cls(**kwargs)


def _defaults_with_presence(cls: type) -> betterproto2.Message:
    """Optional/oneof fields set to their zero value: present, so they must be on the wire."""
    hints = typing.get_type_hints(cls, vars(inspect.getmodule(cls)))
    kwargs: dict[str, typing.Any] = {}
    groups: set[str] = set()
    for field in dataclasses.fields(cls):
        meta = field.metadata.get("betterproto")
        if meta is None or not (meta.optional or meta.group) or meta.repeated:
            continue
        if meta.group:
            if meta.group in groups:
                continue
            groups.add(meta.group)
        sample = _sample(cls, hints[field.name], meta, 3, 0)
        if isinstance(sample, datetime.datetime):
            kwargs[field.name] = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)  # Timestamp{0, 0}
        elif isinstance(sample, (enum.Enum, betterproto2.Message)):
            kwargs[field.name] = type(sample)(0) if isinstance(sample, enum.Enum) else type(sample)()
        else:
            kwargs[field.name] = type(sample)()
    return cls(**kwargs)


def _same(cls: type, msg: betterproto2.Message) -> None:
    full_name = f"engram.v1.{cls.__name__}"
    upb_cls = API.message_class(full_name)
    ours = ENCODER.to_upb(full_name, msg)
    assert ours is not None, f"{full_name} fell back to betterproto2"
    theirs = upb_cls.FromString(bytes(msg))
    assert ours == theirs, f"{full_name}:\nupb: {ours}\nbetterproto2: {theirs}"
    assert upb_cls.FromString(ENCODER.encode(full_name, msg)) == theirs


@pytest.mark.parametrize("cls", MESSAGES, ids=lambda c: c.__name__)
def test_filled_message_encodes_identically(cls: type) -> None:
    msg = _fill(cls)
    _same(cls, msg)
    if dataclasses.fields(cls):  # the sample really fills it: every field is on the wire
        dyn = API.message_class(f"engram.v1.{cls.__name__}").FromString(bytes(msg))
        groups = {f.containing_oneof.name for f in dyn.DESCRIPTOR.fields if f.containing_oneof}
        assert len(dyn.ListFields()) == len(dyn.DESCRIPTOR.fields) - sum(
            len(o.fields) - 1 for o in dyn.DESCRIPTOR.oneofs if o.name in groups
        )


@pytest.mark.parametrize("cls", MESSAGES, ids=lambda c: c.__name__)
def test_empty_and_default_presence_encode_identically(cls: type) -> None:
    _same(cls, cls())
    _same(cls, _defaults_with_presence(cls))


def test_struct_metadata_round_trips() -> None:
    memory = pb.Memory(id="m1", metadata=gpb.Struct.from_dict({"a": [1, "x", None, {"b": True}], "n": 2.5}))
    _same(pb.Memory, memory)


def test_naive_datetime_is_refused_like_betterproto2() -> None:
    memory = pb.Memory(id="m1", created_at=datetime.datetime(2026, 1, 1))  # naive, on purpose
    with pytest.raises(ValueError):
        bytes(memory)
    with pytest.raises(ValueError):
        ENCODER.encode("engram.v1.Memory", memory)


def test_parsing_does_not_import_pydantic_dataclasses() -> None:
    """The codec answers betterproto2's per-parse pydantic check itself (codec._is_pydantic)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import engram_server.transport.codec\n"
        "from engram._gen.engram.v1 import RecallRequest\n"
        "m = RecallRequest.parse(bytes(RecallRequest(agent_id='a', query='q', top_k=3)))\n"
        "assert (m.agent_id, m.top_k) == ('a', 3)\n"
        "assert 'pydantic.dataclasses' not in sys.modules\n"
        "import pydantic.dataclasses, betterproto2\n"
        "assert not pydantic.dataclasses.is_pydantic_dataclass(RecallRequest) and not m._is_pydantic()\n"
        "@pydantic.dataclasses.dataclass\n"
        "class P(betterproto2.Message):\n"
        "    pass\n"
        "assert P()._is_pydantic() == pydantic.dataclasses.is_pydantic_dataclass(P) == True\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_compiled_copy_handles_field_names_that_are_python_keywords() -> None:
    """No field of the API is named like a keyword today; the generated copy must still work
    for one (`msg.from` would not compile)."""
    import types

    from engram_server.transport import upb_encode as ue

    steps = [
        ue._Step("from_", "from", ue._SCALAR, False, None),
        ue._Step("lambda_", "lambda", ue._REP_SCALAR, False, None),
        ue._Step("plain", "plain", ue._SCALAR, True, None),
    ]
    filler = ue._compile(steps, lambda *_: None)
    dyn = types.SimpleNamespace(**{"lambda": [], "from": None, "plain": None})
    filler(dyn, types.SimpleNamespace(from_="x", lambda_=[1, 2], plain=0))
    assert (getattr(dyn, "from"), getattr(dyn, "lambda"), dyn.plain) == ("x", [1, 2], 0)
