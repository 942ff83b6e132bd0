"""Wire codecs shared by the transports.

Binary: the bytes are checked by the upb parser first (corrupt wire data, bad UTF-8, fields of
the wrong wire type are refused or dropped), then read into the betterproto2 message, which on
its own accepts some malformed input silently.

Encoding copies the betterproto2 message into upb and serialises there (upb_encode.py): the
same bytes as betterproto2's pure-Python serialiser at a fraction of the cost.

JSON: proto3 JSON through protobuf's json_format on dynamic messages from the descriptor set,
so names (snake_case and lowerCamelCase), enums, int64 strings, Timestamp, Struct and FieldMask
follow the spec exactly. Responses are written by json_encode.py where it can: the same dict,
without json_format's generic walk.
"""

from __future__ import annotations

from typing import Any

import betterproto2
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor

from ..descriptors import Api
from ..errors import RpcError, invalid
from .json_encode import JsonEncoder
from .upb_encode import UpbEncoder


def _is_pydantic(self: betterproto2.Message) -> bool:
    """pydantic's own test (`is_pydantic_dataclass`: messages are dataclasses already), without
    importing pydantic.dataclasses: betterproto2 asks on every parse, and the first ask imported
    it, 0.14 s spent in the first request after a start."""
    return "__pydantic_validator__" in type(self).__dict__


betterproto2.Message._is_pydantic = _is_pydantic  # type: ignore[method-assign]


class Codec:
    def __init__(self, api: Api) -> None:
        self.api = api
        self._upb = UpbEncoder(api.message_class, api.descriptor)
        self._json = JsonEncoder(api.descriptor)

    def decode(self, full_name: str, cls: type[betterproto2.Message], data: bytes) -> Any:
        from google.protobuf.message import DecodeError

        dyn = self.api.message_class(full_name)()
        try:
            dyn.ParseFromString(data)
        except DecodeError:
            raise RpcError("INVALID_ARGUMENT", f"request is not a valid {full_name} message") from None
        dyn.DiscardUnknownFields()
        return cls.parse(dyn.SerializeToString())

    def encode(self, full_name: str, msg: Any) -> bytes:
        return self._upb.encode(full_name, msg)

    # --- JSON -----------------------------------------------------------------------------
    def from_json(self, full_name: str, cls: type[betterproto2.Message], data: dict[str, Any]) -> Any:
        from google.protobuf import json_format

        desc = self.api.descriptor(full_name)
        normalize(desc, data, "")
        dyn = self.api.message_class(full_name)()
        try:
            json_format.ParseDict(data, dyn, ignore_unknown_fields=False)
        except json_format.ParseError as exc:
            raise RpcError("INVALID_ARGUMENT", f"invalid JSON for {desc.name}: {clean_parse_error(str(exc))}") from None
        return cls.parse(dyn.SerializeToString())

    def to_json(self, full_name: str, msg: Any) -> dict[str, Any]:
        fast = self._json.to_dict(full_name, msg)
        if fast is not None:
            return fast
        return self.to_json_reference(full_name, msg)

    def to_json_reference(self, full_name: str, msg: Any) -> dict[str, Any]:
        """json_format's proto3 JSON of msg: what `to_json` writes faster when it can."""
        from google.protobuf import json_format

        dyn = self._upb.to_upb(full_name, msg)
        if dyn is None:
            dyn = self.api.message_class(full_name).FromString(bytes(msg))
        out: dict[str, Any] = json_format.MessageToDict(
            dyn, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
        )
        return out


def clean_parse_error(text: str) -> str:
    return text.split("\n")[0][:300]


def _enum_prefix(enum_desc: EnumDescriptor) -> str:
    # MEMORY_TYPE_UNSPECIFIED -> MEMORY_TYPE_
    first = enum_desc.values[0].name
    return first[: -len("UNSPECIFIED")] if first.endswith("UNSPECIFIED") else ""


def _enum_value(fd: FieldDescriptor, value: Any, path: str) -> Any:
    if not isinstance(value, str):
        return value
    enum = fd.enum_type
    if value in enum.values_by_name:
        return value
    alias = _enum_prefix(enum) + value.upper()
    if alias in enum.values_by_name:
        return alias
    names = ", ".join(v.name for v in enum.values if not v.name.endswith("UNSPECIFIED"))
    raise invalid(path, f"unknown value {value!r}; expected one of {names}")


WELL_KNOWN_OPAQUE = {
    "google.protobuf.Struct",
    "google.protobuf.Value",
    "google.protobuf.ListValue",
    "google.protobuf.Timestamp",
    "google.protobuf.Duration",
    "google.protobuf.FieldMask",
}


def normalize(desc: Descriptor, data: Any, prefix: str) -> None:
    """Check JSON keys against the message (unknown → INVALID_ARGUMENT naming the field) and
    rewrite short lowercase enum names (`semantic`) to their full names, in place."""
    if not isinstance(data, dict):
        raise invalid(prefix.rstrip(".") or "body", "must be a JSON object")
    for key in list(data.keys()):
        fd = desc.fields_by_name.get(key) or _by_json_name(desc, key)
        path = prefix + key
        if fd is None:
            raise invalid(path, f"unknown field {key!r} in {desc.name}")
        value = data[key]
        if value is None:
            continue
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            continue
        if fd.enum_type is not None:
            if isinstance(value, list):
                data[key] = [_enum_value(fd, x, f"{path}[{i}]") for i, x in enumerate(value)]
            else:
                data[key] = _enum_value(fd, value, path)
        elif fd.message_type is not None and fd.message_type.full_name not in WELL_KNOWN_OPAQUE:
            if isinstance(value, list):
                for i, x in enumerate(value):
                    normalize(fd.message_type, x, f"{path}[{i}].")
            else:
                normalize(fd.message_type, value, path + ".")


def _by_json_name(desc: Descriptor, key: str) -> FieldDescriptor | None:
    for fd in desc.fields:
        if fd.json_name == key:
            return fd
    return None
