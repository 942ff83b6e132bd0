"""Conversions shared by both clients and both transports (no I/O here)."""

from __future__ import annotations

import base64
import datetime
import json
import struct
import sys
from array import array
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import betterproto2

from engram._gen.codes import CODE_NAMES
from engram._gen.engram import v1 as pb
from engram._gen.google.protobuf import Struct
from engram.errors import EngramError, code_for_http_status, error_for_code

E = TypeVar("E", bound=betterproto2.Enum)
M = TypeVar("M", bound=betterproto2.Message)

_ENUM_PREFIX: dict[type[betterproto2.Enum], str] = {
    pb.MemoryType: "MEMORY_TYPE_",
    pb.RecallMode: "RECALL_MODE_",
    pb.ApiKeyRole: "API_KEY_ROLE_",
    pb.EmbeddingInputType: "EMBEDDING_INPUT_TYPE_",
    pb.DuplicatePolicy: "DUPLICATE_POLICY_",
    pb.StoreOutcome: "STORE_OUTCOME_",
    pb.MemoryEventType: "MEMORY_EVENT_TYPE_",
}


def enum_value(cls: type[E], value: E | str | int | None) -> E:
    """``"semantic"``, ``"MEMORY_TYPE_SEMANTIC"``, ``2`` or ``MemoryType.SEMANTIC`` → the member."""
    if value is None:
        return cls(0)
    if isinstance(value, cls):
        return value
    if isinstance(value, int):
        return cls(value)
    name = str(value).strip().upper().replace("-", "_")
    prefix = _ENUM_PREFIX.get(cls, "")
    if prefix and name.startswith(prefix):
        name = name[len(prefix):]
    try:
        return cls[name]
    except KeyError:
        choices = ", ".join(m.name.lower() for m in cls if m.value != 0)
        raise ValueError(f"unknown {cls.__name__} {value!r}: expected one of {choices}") from None


def struct_of(value: Mapping[str, Any] | Struct | None) -> Struct | None:
    """A ``google.protobuf.Struct`` from a JSON-like mapping."""
    if value is None or isinstance(value, Struct):
        return value
    return Struct.from_dict(dict(value))


def plain(value: Struct | None) -> dict[str, Any]:
    """A ``Struct`` as a plain dict (``{}`` when unset)."""
    if value is None:
        return {}
    out = value.to_dict()
    return out if isinstance(out, dict) else {}


def message_of(cls: type[M], value: M | Mapping[str, Any] | None) -> M | None:
    """A message from itself or from a dict in proto3 JSON form (either casing, short enums)."""
    if value is None or isinstance(value, cls):
        return value
    if not isinstance(value, Mapping):
        raise TypeError(f"expected {cls.__name__} or a mapping, not {type(value).__name__}")
    return cls.from_dict(_normalise(cls, dict(value)))


def _normalise(cls: type[betterproto2.Message], data: dict[str, Any]) -> dict[str, Any]:
    """Accept short enum names and nested dicts in ``data`` before ``from_dict``."""
    hints = cls._type_hints()
    metas = cls._betterproto.meta_by_field_name  # type: ignore[arg-type]
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = betterproto2.casing.snake_case(key)
        meta = metas.get(name)
        if meta is None:
            out[key] = value
            continue
        hint = hints[name]
        inner = hint.__args__[0] if (meta.repeated or meta.optional) and hasattr(hint, "__args__") else hint
        if isinstance(inner, type) and issubclass(inner, betterproto2.Enum):
            if meta.repeated and isinstance(value, list):
                value = [_enum_json(inner, v) for v in value]
            else:
                value = _enum_json(inner, value)
        elif (
            isinstance(inner, type)
            and issubclass(inner, betterproto2.Message)
            and inner is not Struct
            and isinstance(value, dict)
        ):
            value = _normalise(inner, value)
        out[name] = value
    return out


def _enum_json(cls: type[betterproto2.Enum], value: Any) -> Any:
    member = enum_value(cls, value)
    return cls.betterproto_value_to_renamed_proto_names()[member.value]


def filter_of(value: pb.MemoryFilter | Mapping[str, Any] | None) -> pb.MemoryFilter | None:
    """A ``MemoryFilter`` from itself or a dict like ``{"tags_any": ["x"], "memory_types": ["semantic"]}``."""
    return message_of(pb.MemoryFilter, value)


def timestamp_of(value: datetime.datetime | str | None) -> datetime.datetime | None:
    """A timezone-aware datetime from a datetime (naive means UTC) or an RFC 3339 string."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.UTC)
    return value


def decode_vector(data: bytes) -> list[float]:
    """Packed little-endian float32 bytes → a list of floats."""
    values = array("f")
    values.frombytes(data)
    if sys.byteorder != "little":
        values.byteswap()
    return values.tolist()


def encode_vector(values: Sequence[float]) -> bytes:
    """A list of floats → packed little-endian float32 bytes."""
    return struct.pack(f"<{len(values)}f", *values)


# --- proto3 JSON for REST -------------------------------------------------------------------


def to_json_dict(message: betterproto2.Message) -> dict[str, Any]:
    """The proto3 JSON form of a message, snake_case field names."""
    return message.to_dict(casing=betterproto2.Casing.SNAKE)


def from_json_dict(cls: type[M], data: Any) -> M:
    """Parse proto3 JSON (unknown fields ignored, so newer servers stay readable)."""
    if not isinstance(data, dict):
        data = {}
    message = cls.from_dict(data, ignore_unknown_fields=True)
    _round_floats(message)
    return message


_F32 = struct.Struct("<f")


def _round_floats(message: betterproto2.Message) -> None:
    """Round ``float`` (32-bit) fields parsed from JSON to float32, as gRPC delivers them, so that
    both transports give the same Python values (JSON ``0.3`` → ``0.30000001192092896``)."""
    metas = type(message)._betterproto.meta_by_field_name  # type: ignore[arg-type]
    for name, meta in metas.items():
        value = getattr(message, name)
        if meta.proto_type == betterproto2.TYPE_FLOAT:
            if meta.repeated:
                setattr(message, name, [_F32.unpack(_F32.pack(v))[0] for v in value])
            elif value is not None:
                setattr(message, name, _F32.unpack(_F32.pack(value))[0])
        elif meta.proto_type == betterproto2.TYPE_MESSAGE and meta.unwrap is None:
            for item in value if meta.repeated else [value]:
                if isinstance(item, betterproto2.Message) and type(item).__module__.startswith("engram._gen.engram"):
                    _round_floats(item)


def query_params(
    data: Mapping[str, Any], prefix: str = ""
) -> list[tuple[str, str | int | float | bool | None]]:
    """Flatten proto3 JSON into query parameters the way grpc-gateway reads them.

    Nested messages become dotted names (``filter.tags_any=a&filter.tags_any=b``), a
    ``FieldMask`` a comma-separated list, and ``Struct`` values JSON text.
    """
    out: list[tuple[str, str | int | float | bool | None]] = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            if set(value) == {"paths"} and isinstance(value["paths"], list):
                # proto3 JSON writes FieldMask paths in lowerCamelCase (parsers reject "_").
                out.append((name, ",".join(betterproto2.casing.camel_case(str(p)) for p in value["paths"])))
            elif key in ("metadata", "metadata_equals"):
                out.append((name, json.dumps(value, separators=(",", ":"))))
            else:
                out.extend(query_params(value, name + "."))
        elif isinstance(value, list):
            out.extend((name, _scalar(v)) for v in value)
        else:
            out.append((name, _scalar(value)))
    return out


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def rest_error(status: int, body: bytes, headers: Mapping[str, str]) -> EngramError:
    """The exception for a REST error response ``{"code", "message", "details"}``."""
    data: Any = None
    try:
        data = json.loads(body) if body else None
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        data = data["error"]
    code = code_for_http_status(status)
    message = body.decode("utf-8", "replace").strip()[:500] or f"HTTP {status}"
    details: list[dict[str, Any]] = []
    if isinstance(data, dict):
        raw_code = data.get("code")
        if isinstance(raw_code, str) and raw_code:
            code = raw_code.upper()
        elif isinstance(raw_code, int) and 0 < raw_code < len(CODE_NAMES):
            code = CODE_NAMES[raw_code]
        if isinstance(data.get("message"), str):
            message = data["message"]
        if isinstance(data.get("details"), list):
            details = [d for d in data["details"] if isinstance(d, dict)]
    retry_after = _retry_after(headers.get("retry-after"), details)
    return error_for_code(code, message, details=details, retry_after=retry_after, from_server=True)


def _retry_after(header: str | None, details: Sequence[Mapping[str, Any]]) -> float | None:
    if header:
        try:
            return max(0.0, float(header))
        except ValueError:
            pass
    for detail in details:
        if str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            delay = detail.get("retry_delay", detail.get("retryDelay"))
            if isinstance(delay, str) and delay.endswith("s"):
                try:
                    return float(delay[:-1])
                except ValueError:
                    pass
            if isinstance(delay, dict):
                return float(delay.get("seconds", 0)) + float(delay.get("nanos", 0)) / 1e9
    return None


def grpc_error(
    code_name: str, message: str, trailing: Sequence[tuple[str, str | bytes]] | None, local: bool
) -> EngramError:
    """The exception for a gRPC status (``code_name`` as in ``grpc.StatusCode.X.name``)."""
    details: list[dict[str, Any]] = []
    retry_after: float | None = None
    for key, value in trailing or ():
        if key == "grpc-status-details-bin" and isinstance(value, bytes):
            details = _status_details(value)
        elif key == "retry-after" and isinstance(value, str):
            retry_after = _retry_after(value, ())
    if retry_after is None:
        retry_after = _retry_after(None, details)
    return error_for_code(
        code_name, message, details=details, retry_after=retry_after, from_server=not local
    )


def _status_details(data: bytes) -> list[dict[str, Any]]:
    """Decode the details of a ``google.rpc.Status`` as proto3 JSON, when protobuf can."""
    try:
        from google.protobuf import json_format
        from google.rpc import error_details_pb2, status_pb2  # noqa: F401  (registers types)
    except ImportError:  # pragma: no cover - optional dependency
        return _status_details_raw(data)
    try:
        status = status_pb2.Status.FromString(data)
        out: list[dict[str, Any]] = []
        for any_detail in status.details:
            try:
                out.append(json_format.MessageToDict(any_detail, preserving_proto_field_name=True))
            except Exception:  # noqa: BLE001 - unknown detail type
                out.append({"@type": any_detail.type_url,
                            "value": base64.b64encode(any_detail.value).decode()})
        return out
    except Exception:  # noqa: BLE001 - malformed trailer: keep the error itself
        return []


def _status_details_raw(data: bytes) -> list[dict[str, Any]]:  # pragma: no cover
    return []
