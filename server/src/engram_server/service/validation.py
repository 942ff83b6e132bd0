"""Request validation: every failure is INVALID_ARGUMENT naming the field and the limit."""

from __future__ import annotations

import json
import math
import re
from typing import Any

import betterproto2
from engram._gen.engram import v1 as pb

from ..config import Config
from ..errors import invalid

ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
AGENT_RE = re.compile(r"^[A-Za-z0-9._:@-]{1,128}$")
RELATION_RE = re.compile(r"^[a-z0-9_]{1,64}$")
ORDER_BY = {f"{f} {d}" for f in ("created_at", "updated_at", "importance", "event_time") for d in ("asc", "desc")}


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
        raise invalid(name, "must be 1 to 128 characters of [A-Za-z0-9._:-]")


def content(value: str, cfg: Config, name: str = "content") -> None:
    if not value or not value.strip():
        raise invalid(name, "required and must not be blank")
    n = len(value.encode("utf-8"))
    if n > cfg.max_content_bytes:
        raise invalid(name, f"is {n} UTF-8 bytes; the limit is {cfg.max_content_bytes}")


def importance(value: float | None, name: str = "importance") -> None:
    if value is None:
        return
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        raise invalid(name, "must be between 0 and 1")


def tags(values: list[str], cfg: Config, name: str = "tags") -> None:
    if len(values) > cfg.max_tags:
        raise invalid(name, f"has {len(values)} tags; the limit is {cfg.max_tags}")
    for i, t in enumerate(values):
        if not t or not t.strip():
            raise invalid(f"{name}[{i}]", "must not be empty")
        if len(t) > cfg.max_tag_chars:
            raise invalid(f"{name}[{i}]", f"is {len(t)} characters; the limit is {cfg.max_tag_chars}")


def metadata(value: Any, cfg: Config, name: str = "metadata") -> None:
    if value is None:
        return
    data = value.to_dict() if hasattr(value, "to_dict") else value
    try:
        n = len(json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
    except (TypeError, ValueError):
        raise invalid(name, "must be a JSON object") from None
    if n > cfg.max_metadata_bytes:
        raise invalid(name, f"is {n} bytes of JSON; the limit is {cfg.max_metadata_bytes}")


def enum_value(enum_cls: type[betterproto2.Enum], value: Any, name: str) -> None:
    try:
        enum_cls(value)
    except ValueError:
        raise invalid(name, f"unknown value {int(value)}") from None


def session_id(value: str, name: str = "session_id") -> None:
    if len(value) > 256:
        raise invalid(name, "is longer than 256 characters")


def store_request(req: pb.StoreMemoryRequest, cfg: Config, prefix: str = "") -> None:
    agent_id(req.agent_id, prefix + "agent_id")
    content(req.content, cfg, prefix + "content")
    memory_id(req.id, prefix + "id", required=False)
    enum_value(pb.MemoryType, req.memory_type, prefix + "memory_type")
    importance(req.importance, prefix + "importance")
    tags(req.tags, cfg, prefix + "tags")
    metadata(req.metadata, cfg, prefix + "metadata")
    session_id(req.session_id, prefix + "session_id")
    if req.ttl_seconds < 0:
        raise invalid(prefix + "ttl_seconds", "must not be negative")
    if req.ttl_seconds and req.expires_at is not None:
        raise invalid(prefix + "expires_at", "ttl_seconds and expires_at are exclusive")
    if req.expires_at is not None:
        import time

        from .convert import ts_to_float

        if (ts_to_float(req.expires_at) or 0) <= time.time():
            raise invalid(prefix + "expires_at", "is in the past")


def memory_filter(f: pb.MemoryFilter | None, cfg: Config, name: str = "filter") -> None:
    if f is None:
        return
    for i, t in enumerate(f.memory_types):
        enum_value(pb.MemoryType, t, f"{name}.memory_types[{i}]")
    for fld in ("tags_any", "tags_all"):
        vals = getattr(f, fld)
        if len(vals) > cfg.max_page_size:
            raise invalid(f"{name}.{fld}", f"has more than {cfg.max_page_size} values")
    importance(f.min_importance, f"{name}.min_importance")
    if len(f.ids) > cfg.max_page_size:
        raise invalid(f"{name}.ids", f"has more than {cfg.max_page_size} ids")
    metadata(f.metadata_equals, cfg, f"{name}.metadata_equals")
    for rng in ("event_time", "created_time"):
        tr = getattr(f, rng)
        if tr is not None and tr.start_time is not None and tr.end_time is not None and tr.end_time < tr.start_time:
            raise invalid(f"{name}.{rng}", "end_time is before start_time")


def page_size(value: int, cfg: Config, name: str = "page_size") -> int:
    if value < 0:
        raise invalid(name, "must not be negative")
    if value > cfg.max_page_size:
        raise invalid(name, f"is {value}; the limit is {cfg.max_page_size}")
    return value or 50


def batch(values: list[Any], cfg: Config, name: str) -> None:
    if not values:
        raise invalid(name, "must not be empty")
    if len(values) > cfg.max_batch_size:
        raise invalid(name, f"has {len(values)} items; the limit is {cfg.max_batch_size}")


def recall_request(req: pb.RecallRequest, cfg: Config, prefix: str = "") -> int:
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
    if math.isnan(req.min_score) or math.isinf(req.min_score):
        raise invalid(prefix + "min_score", "must be a finite number")
    memory_filter(req.filter, cfg, prefix + "filter")
    return req.top_k or 10


def order_by(value: str) -> str:
    v = " ".join(value.split()).lower()
    if not v:
        return "created_at desc"
    if " " not in v and v in {o.split()[0] for o in ORDER_BY}:
        v = f"{v} asc"
    if v not in ORDER_BY:
        raise invalid("order_by", "must be one of created_at, updated_at, importance, event_time with asc or desc")
    return v


def relation(value: str, name: str = "relation") -> str:
    if not value:
        return "related_to"
    if not RELATION_RE.match(value):
        raise invalid(name, "must be 1 to 64 characters of [a-z0-9_]")
    return value
