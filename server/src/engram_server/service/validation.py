"""Request validation: the one place where the API's rules and limits are checked.

Every failure is INVALID_ARGUMENT naming the field and the rule. The limits are the server's
configuration (`Config.max_*`, documented in docs/operations/configuration.md); the rules are the
patterns and ranges below. Every number and time a client sends is checked here against what
the engine stores and the wire can carry back (a Timestamp holds years 1 to 9999, counts are
int32), before anything is written: the engine trusts what reaches it.
"""

from __future__ import annotations

import math
import re
import unicodedata
from typing import Any

from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper

from .. import pb
from ..config import Config
from ..errors import invalid
from .convert import TIMESTAMP_MAX_SECONDS, TIMESTAMP_MIN_SECONDS, ts_seconds

ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
AGENT_RE = re.compile(r"^[A-Za-z0-9._:@-]{1,128}$")
RELATION_RE = re.compile(r"^[a-z0-9_]{1,64}$")
ORDER_FIELDS = ("created_at", "updated_at", "importance", "event_time")
ORDER_BY = {f"{f} {d}" for f in ORDER_FIELDS for d in ("asc", "desc")}
MAX_SESSION_ID_CHARS = 256
MAX_NAME_CHARS = 128
MAX_KEY_BYTES = 512  # an upsert key (Memory.key)
MIN_SIMILARITY_THRESHOLD = 0.5  # duplicate and consolidation thresholds
# A client's clock may run a little ahead of the server's: times that must lie in the past
# (an imported memory's creation) may be this far in the future.
CLOCK_SKEW_SECONDS = 300.0
TIME_RANGE = "between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z"


def agent_id(value: str, name: str = "agent_id", required: bool = True) -> None:
    if not value:
        if required:
            raise invalid(name, "required")
        return
    if not AGENT_RE.match(value):
        raise invalid(name, "must be 1 to 128 characters of [A-Za-z0-9._:@-]")


def memory_id(value: str, name: str = "id", required: bool = True) -> None:
    if not value:
        if required:
            raise invalid(name, "required")
        return
    if not ID_RE.match(value):
        raise invalid(name, "must be 1 to 128 characters of [A-Za-z0-9._:-], starting with a letter or digit")


def content(value: str, cfg: Config, name: str = "content") -> None:
    if not value or not value.strip():
        raise invalid(name, "required and must not be blank")
    n = len(value.encode("utf-8"))
    if n > cfg.max_content_bytes:
        raise invalid(name, f"is {n} UTF-8 bytes; the limit is {cfg.max_content_bytes}")


def unit_interval(value: float, name: str) -> float:
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        raise invalid(name, "must be between 0 and 1")
    return value


def finite(value: float, name: str) -> float:
    if not math.isfinite(value):
        raise invalid(name, "must be a finite number")
    return value


def tags(values: Any, cfg: Config, name: str = "tags") -> None:
    if len(values) > cfg.max_tags:
        raise invalid(name, f"has {len(values)} tags; the limit is {cfg.max_tags}")
    for i, t in enumerate(values):
        if not t or not t.strip():
            raise invalid(f"{name}[{i}]", "must not be empty")
        if len(t) > cfg.max_tag_chars:
            raise invalid(f"{name}[{i}]", f"is {len(t)} characters; the limit is {cfg.max_tag_chars}")


def metadata(value: pb.Struct, cfg: Config, name: str = "metadata") -> None:
    """Size (bytes of its binary encoding, about its JSON size) and nesting depth."""
    n = value.ByteSize()
    if n > cfg.max_metadata_bytes:
        raise invalid(name, f"is {n} bytes; the limit is {cfg.max_metadata_bytes}")
    depth = _struct_depth(value, cfg.max_metadata_depth + 1)
    if depth > cfg.max_metadata_depth:
        raise invalid(name, f"is nested more than {cfg.max_metadata_depth} levels deep")
    for k, v in value.fields.items():
        _check_value(v, f"{name}.{k}")


def _struct_depth(s: pb.Struct, stop: int) -> int:
    deepest = 0
    for v in s.fields.values():
        deepest = max(deepest, _value_depth(v, stop - 1))
        if deepest >= stop:
            break
    return 1 + deepest


def _value_depth(v: pb.Value, stop: int) -> int:
    if stop <= 0:
        return 0
    kind = v.WhichOneof("kind")
    if kind == "struct_value":
        return _struct_depth(v.struct_value, stop)
    if kind == "list_value":
        return 1 + max((_value_depth(x, stop - 1) for x in v.list_value.values), default=0)
    return 0


def _check_value(v: pb.Value, name: str) -> None:
    """A JSON value: one kind set (a null is null_value, not nothing), numbers finite."""
    kind = v.WhichOneof("kind")
    if kind is None:
        raise invalid(name, "is a google.protobuf.Value with no kind set (send null_value for null)")
    if kind == "number_value" and not math.isfinite(v.number_value):
        raise invalid(name, "must be a finite number (JSON has no NaN or Infinity)")
    if kind == "struct_value":
        for k, x in v.struct_value.fields.items():
            _check_value(x, f"{name}.{k}")
    elif kind == "list_value":
        for i, x in enumerate(v.list_value.values):
            _check_value(x, f"{name}[{i}]")


def enum_value(enum: EnumTypeWrapper, value: int, name: str) -> None:
    if value not in enum.values():
        raise invalid(name, f"unknown value {value}; expected one of {', '.join(enum.keys())}")


def memory_key(value: str, name: str = "key") -> None:
    """An upsert key: any text without control characters, 1 to MAX_KEY_BYTES UTF-8 bytes."""
    if not value:
        return
    n = len(value.encode("utf-8"))
    if n > MAX_KEY_BYTES:
        raise invalid(name, f"is {n} UTF-8 bytes; the limit is {MAX_KEY_BYTES}")
    if any(unicodedata.category(c) == "Cc" for c in value):
        raise invalid(name, "must not contain control characters")


def similarity_threshold(value: float, name: str) -> None:
    if math.isnan(value) or not MIN_SIMILARITY_THRESHOLD <= value <= 1.0:
        raise invalid(name, f"must be between {MIN_SIMILARITY_THRESHOLD} and 1")


def session_id(value: str, name: str = "session_id") -> None:
    if len(value) > MAX_SESSION_ID_CHARS:
        raise invalid(name, f"is longer than {MAX_SESSION_ID_CHARS} characters")


def timestamp(ts: pb.Timestamp, name: str) -> float:
    """Unix seconds of a Timestamp that a Timestamp may hold (RFC 3339 years 1 to 9999)."""
    if not TIMESTAMP_MIN_SECONDS <= ts.seconds <= TIMESTAMP_MAX_SECONDS or not 0 <= ts.nanos <= 999_999_999:
        raise invalid(name, f"must be {TIME_RANGE}")
    return ts_seconds(ts)


def optional_timestamp(msg: Any, field: str, name: str) -> float | None:
    return timestamp(getattr(msg, field), name) if msg.HasField(field) else None


def ttl_seconds(value: int, now: float, name: str = "ttl_seconds") -> None:
    """A TTL whose expiry (now + ttl) is a time the API can express."""
    if value < 0:
        raise invalid(name, "must not be negative")
    if now + value > TIMESTAMP_MAX_SECONDS:
        raise invalid(
            name, f"is too large: the expiry would be after 9999-12-31 (at most {int(TIMESTAMP_MAX_SECONDS - now)})"
        )


def not_in_future(value: float | None, now: float, name: str) -> None:
    if value is not None and value > now + CLOCK_SKEW_SECONDS:
        raise invalid(name, "must not be in the future")


def store_request(req: pb.StoreMemoryRequest, cfg: Config, now: float, prefix: str = "") -> None:
    agent_id(req.agent_id, prefix + "agent_id")
    content(req.content, cfg, prefix + "content")
    memory_id(req.id, prefix + "id", required=False)
    memory_key(req.key, prefix + "key")
    if req.key and req.id:
        raise invalid(prefix + "key", "key and id are exclusive: a key names the memory to replace")
    enum_value(pb.DuplicatePolicy, req.duplicate_policy, prefix + "duplicate_policy")
    if req.HasField("duplicate_threshold"):
        similarity_threshold(req.duplicate_threshold, prefix + "duplicate_threshold")
    enum_value(pb.MemoryType, req.memory_type, prefix + "memory_type")
    if req.HasField("importance"):
        unit_interval(req.importance, prefix + "importance")
    tags(req.tags, cfg, prefix + "tags")
    metadata(req.metadata, cfg, prefix + "metadata")
    session_id(req.session_id, prefix + "session_id")
    optional_timestamp(req, "event_time", prefix + "event_time")
    ttl_seconds(req.ttl_seconds, now, prefix + "ttl_seconds")
    expires = optional_timestamp(req, "expires_at", prefix + "expires_at")
    if req.ttl_seconds and expires is not None:
        raise invalid(prefix + "expires_at", "ttl_seconds and expires_at are exclusive")
    if expires is not None and expires <= now:
        raise invalid(prefix + "expires_at", "is in the past")


def import_message(req: pb.ImportMemoriesRequest, cfg: Config, now: float, index: int) -> str:
    """One message of an import stream; returns the agent it imports into (its `agent_id`, else
    the memory's own)."""
    prefix = f"requests[{index}]."
    if not req.HasField("memory"):
        raise invalid(prefix + "memory", "required")
    target = req.agent_id or req.memory.agent_id
    agent_id(req.agent_id, prefix + "agent_id", required=False)
    agent_id(target, prefix + "memory.agent_id")
    imported_memory(req.memory, cfg, now, prefix + "memory.")
    return target


def imported_memory(mem: pb.Memory, cfg: Config, now: float, prefix: str) -> None:
    """A full record from an export. Times the server sets itself (creation, update, last
    access) cannot lie in the future and counts cannot be negative: a restore never has them."""
    memory_id(mem.id, prefix + "id")
    content(mem.content, cfg, prefix + "content")
    enum_value(pb.MemoryType, mem.memory_type, prefix + "memory_type")
    unit_interval(mem.importance, prefix + "importance")
    tags(mem.tags, cfg, prefix + "tags")
    metadata(mem.metadata, cfg, prefix + "metadata")
    session_id(mem.session_id, prefix + "session_id")
    memory_key(mem.key, prefix + "key")
    optional_timestamp(mem, "event_time", prefix + "event_time")
    optional_timestamp(mem, "expires_at", prefix + "expires_at")
    created = optional_timestamp(mem, "created_at", prefix + "created_at")
    updated = optional_timestamp(mem, "updated_at", prefix + "updated_at")
    accessed = optional_timestamp(mem, "last_accessed_at", prefix + "last_accessed_at")
    for value, name in ((created, "created_at"), (updated, "updated_at"), (accessed, "last_accessed_at")):
        not_in_future(value, now, prefix + name)
    if mem.access_count < 0:
        raise invalid(prefix + "access_count", "must not be negative")
    if mem.version < 0:
        raise invalid(prefix + "version", "must not be negative")


def memory_filter(f: pb.MemoryFilter, cfg: Config, name: str = "filter") -> None:
    for i, t in enumerate(f.memory_types):
        enum_value(pb.MemoryType, t, f"{name}.memory_types[{i}]")
    for fld in ("tags_any", "tags_all"):
        vals = getattr(f, fld)
        if len(vals) > cfg.max_page_size:
            raise invalid(f"{name}.{fld}", f"has more than {cfg.max_page_size} values")
    if f.HasField("min_importance"):
        unit_interval(f.min_importance, f"{name}.min_importance")
    if len(f.ids) > cfg.max_page_size:
        raise invalid(f"{name}.ids", f"has more than {cfg.max_page_size} ids")
    if len(f.keys) > cfg.max_page_size:
        raise invalid(f"{name}.keys", f"has more than {cfg.max_page_size} keys")
    for i, k in enumerate(f.keys):
        if not k:
            raise invalid(f"{name}.keys[{i}]", "must not be empty")
        memory_key(k, f"{name}.keys[{i}]")
    metadata(f.metadata_equals, cfg, f"{name}.metadata_equals")
    for rng in ("event_time", "created_time"):
        if not f.HasField(rng):
            continue
        tr = getattr(f, rng)
        start = optional_timestamp(tr, "start_time", f"{name}.{rng}.start_time")
        end = optional_timestamp(tr, "end_time", f"{name}.{rng}.end_time")
        if start is not None and end is not None and end < start:
            raise invalid(f"{name}.{rng}", "end_time is before start_time")


def page_size(value: int, cfg: Config, name: str = "page_size", default: int = 50) -> int:
    if value < 0:
        raise invalid(name, "must not be negative")
    if value > cfg.max_page_size:
        raise invalid(name, f"is {value}; the limit is {cfg.max_page_size}")
    return value or default


def batch(values: Any, cfg: Config, name: str) -> None:
    if not values:
        raise invalid(name, "must not be empty")
    if len(values) > cfg.max_batch_size:
        raise invalid(name, f"has {len(values)} items; the limit is {cfg.max_batch_size}")


def recall_request(req: pb.RecallRequest, cfg: Config, prefix: str = "") -> int:
    """Checks a recall; returns its top_k (10 when unset)."""
    agent_id(req.agent_id, prefix + "agent_id")
    if not req.query or not req.query.strip():
        raise invalid(prefix + "query", "required and must not be blank")
    n = len(req.query.encode("utf-8"))
    if n > cfg.max_content_bytes:
        raise invalid(prefix + "query", f"is {n} UTF-8 bytes; the limit is {cfg.max_content_bytes}")
    if req.top_k < 0:
        raise invalid(prefix + "top_k", "must not be negative")
    if req.top_k > cfg.max_top_k:
        raise invalid(prefix + "top_k", f"is {req.top_k}; the limit is {cfg.max_top_k}")
    enum_value(pb.RecallMode, req.mode, prefix + "mode")
    finite(req.min_score, prefix + "min_score")
    memory_filter(req.filter, cfg, prefix + "filter")
    return req.top_k or 10


def order_by(value: str) -> str:
    v = " ".join(value.split()).lower()
    if not v:
        return "created_at desc"
    if " " not in v and v in ORDER_FIELDS:
        v = f"{v} asc"
    if v not in ORDER_BY:
        raise invalid("order_by", f"must be one of {', '.join(ORDER_FIELDS)} with asc or desc")
    return v


def relation(value: str, name: str = "relation") -> str:
    if not value:
        return "related_to"
    if not RELATION_RE.match(value):
        raise invalid(name, "must be 1 to 64 characters of [a-z0-9_]")
    return value


def name(value: str, field: str = "name") -> None:
    if not value or not value.strip():
        raise invalid(field, "required")
    if len(value) > MAX_NAME_CHARS:
        raise invalid(field, f"must be at most {MAX_NAME_CHARS} characters")
