"""Per-agent in-memory catalogue: the compact fields that filters, listing and totals need.

Content is deliberately not kept in RAM (it lives encrypted in RocksDB); metadata is kept only
as 64-bit hashes of its top-level (key, value) pairs, enough to answer metadata_equals.
"""

from __future__ import annotations

import hashlib
import pickle
import re
import sys
import unicodedata
from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .codec import canonical_json
from .errors import InvalidArgument
from .models import Memory, MemoryFilter, MemoryType, TimeRange

CATALOGUE_VERSION = 3
_TYPES = {t.value: t for t in MemoryType}
_SPACE = re.compile(r"\s+")
_TRAILING = ".!?;:,\u2026\u3002\uff01\uff1f \t\n"


def normalise_content(text: str) -> str:
    """The text two memories must share to be exact duplicates: Unicode compatibility forms
    folded (NFKC), case folded, runs of whitespace as one space, trailing punctuation dropped."""
    t = _SPACE.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()
    return t.rstrip(_TRAILING)


def content_hash(text: str) -> int:
    """64-bit hash of the normalised content (exact duplicate detection; collisions are checked)."""
    return int.from_bytes(
        hashlib.blake2b(normalise_content(text).encode(), digest_size=8).digest(), "little", signed=True
    )


def meta_hash(key: str, value: Any) -> int:
    h = hashlib.blake2b((key + "\x00" + canonical_json(value)).encode(), digest_size=8).digest()
    return int.from_bytes(h, "little")


class Entry:
    """One memory's filterable fields. __slots__ keeps 100k of them to a few tens of MB."""

    __slots__ = (
        "access_count",
        "content_h",
        "created_at",
        "event_time",
        "expires_at",
        "id",
        "importance",
        "key",
        "last_accessed_at",
        "meta_h",
        "mtype",
        "session",
        "size",
        "tags",
        "updated_at",
        "version",
    )

    def __init__(
        self,
        id: str,
        created_at: float,
        updated_at: float,
        event_time: float,
        importance: float,
        mtype: str,
        expires_at: float,
        tags: tuple[str, ...],
        session: str,
        meta_h: frozenset[int],
        size: int,
        access_count: int,
        last_accessed_at: float,
        version: int,
        key: str = "",
        content_h: int = 0,
    ) -> None:
        self.id = id
        self.created_at = created_at
        self.updated_at = updated_at
        self.event_time = event_time
        self.importance = importance
        self.mtype = mtype
        self.expires_at = expires_at  # 0.0 = never
        self.tags = tags
        self.session = session
        self.meta_h = meta_h
        self.size = size
        self.access_count = access_count
        self.last_accessed_at = last_accessed_at  # 0.0 = never
        self.version = version
        self.key = key  # client upsert key; "" = none
        self.content_h = content_h  # content_hash(content): exact duplicate detection

    @classmethod
    def of(cls, m: Memory, size: int) -> Entry:
        return cls(
            sys.intern(m.id),
            m.created_at,
            m.updated_at,
            m.event_time,
            m.importance,
            sys.intern(m.memory_type.value),
            m.expires_at or 0.0,
            tuple(sys.intern(t) for t in m.tags),
            sys.intern(m.session_id),
            frozenset(meta_hash(k, v) for k, v in m.metadata.items()),
            size,
            m.access_count,
            m.last_accessed_at or 0.0,
            m.version,
            sys.intern(m.key),
            content_hash(m.content),
        )

    def live(self, now: float) -> bool:
        return not self.expires_at or self.expires_at > now

    def as_tuple(self) -> tuple[Any, ...]:
        return tuple(getattr(self, s) for s in _FIELDS)


# Constructor order (the snapshot stores rows in it); __slots__ order is not relied upon.
_FIELDS = (
    "id", "created_at", "updated_at", "event_time", "importance", "mtype", "expires_at",
    "tags", "session", "meta_h", "size", "access_count", "last_accessed_at", "version", "key", "content_h",
)  # fmt: skip

Predicate = Callable[[Entry], bool]


def _in_range(r: TimeRange | None, field: str) -> tuple[float, float] | None:
    if r is None or (r.start is None and r.end is None):
        return None
    lo = float("-inf") if r.start is None else float(r.start)
    hi = float("inf") if r.end is None else float(r.end)
    if lo > hi:
        raise InvalidArgument(f"filter.{field}: start must not be after end", field=f"filter.{field}")
    return lo, hi


def compile_filter(f: MemoryFilter | None) -> Predicate | None:
    """A predicate over entries, or None for "everything". Validates the filter."""
    if f is None or f.is_empty():
        return None
    conds: list[Predicate] = []
    if f.memory_types:
        types = set()
        for t in f.memory_types:
            try:
                types.add(MemoryType(t).value)
            except ValueError:
                raise InvalidArgument(f"filter.memory_types: unknown type {t!r}", field="filter.memory_types") from None
        conds.append(lambda e: e.mtype in types)
    if f.tags_any:
        anyset = frozenset(f.tags_any)
        conds.append(lambda e: not anyset.isdisjoint(e.tags))
    if f.tags_all:
        allset = frozenset(f.tags_all)
        conds.append(lambda e: allset.issubset(e.tags))
    if f.session_id:
        sid = f.session_id
        conds.append(lambda e: e.session == sid)
    ev = _in_range(f.event_time, "event_time")
    if ev is not None:
        elo, ehi = ev
        conds.append(lambda e: elo <= e.event_time < ehi)
    cr = _in_range(f.created_time, "created_time")
    if cr is not None:
        clo, chi = cr
        conds.append(lambda e: clo <= e.created_at < chi)
    if f.min_importance is not None:
        mi = float(f.min_importance)
        conds.append(lambda e: e.importance >= mi)
    if f.metadata_equals:
        hs = frozenset(meta_hash(k, v) for k, v in f.metadata_equals.items())
        conds.append(lambda e: hs.issubset(e.meta_h))
    if f.ids:
        idset = frozenset(f.ids)
        conds.append(lambda e: e.id in idset)
    if f.keys:
        keyset = frozenset(f.keys)
        conds.append(lambda e: e.key in keyset)
    if len(conds) == 1:
        return conds[0]
    return lambda e: all(c(e) for c in conds)


def filter_fingerprint(f: MemoryFilter | None) -> str:
    if f is None:
        return ""
    d = {
        "t": sorted(MemoryType(t).value for t in f.memory_types),
        "ta": sorted(f.tags_any),
        "tl": sorted(f.tags_all),
        "s": f.session_id,
        "e": [f.event_time.start, f.event_time.end] if f.event_time else None,
        "c": [f.created_time.start, f.created_time.end] if f.created_time else None,
        "mi": f.min_importance,
        "m": canonical_json(f.metadata_equals, "filter.metadata_equals"),
        "i": sorted(f.ids),
        "k": sorted(f.keys),
    }
    return canonical_json(d)


@dataclass
class CatalogueSnapshot:
    seq: int
    entries: list[Entry]


# Version 2 stores the catalogue by column: numbers as packed arrays, strings as lists, empty
# tag tuples and metadata sets as None. Loading 100k entries is then a handful of C-level list
# builds and one constructor call per entry; version 1 (a pickled tuple per entry) spent most of
# an agent's load unpickling 1.5 million small objects.
_FLOAT_FIELDS = ("created_at", "updated_at", "event_time", "importance", "expires_at", "last_accessed_at")
_INT_FIELDS = ("size", "access_count", "version", "content_h")
_EMPTY_META: frozenset[int] = frozenset()


def dump_snapshot(seq: int, entries: Iterable[Entry]) -> bytes:
    rows = list(entries)
    cols: dict[str, Any] = {}
    for f in _FLOAT_FIELDS:
        cols[f] = array("d", [getattr(e, f) for e in rows]).tobytes()
    for f in _INT_FIELDS:
        cols[f] = array("q", [getattr(e, f) for e in rows]).tobytes()
    cols["id"] = [e.id for e in rows]
    cols["mtype"] = [e.mtype for e in rows]  # a few distinct, interned objects: pickled once each
    cols["session"] = [e.session for e in rows]
    cols["key"] = [e.key for e in rows]
    cols["tags"] = [e.tags or None for e in rows]
    cols["meta_h"] = [e.meta_h or None for e in rows]
    return pickle.dumps({"v": CATALOGUE_VERSION, "seq": seq, "cols": cols}, protocol=pickle.HIGHEST_PROTOCOL)


def load_snapshot(data: bytes | bytearray) -> CatalogueSnapshot | None:
    d = pickle.loads(data)  # our own encrypted, authenticated blob
    if d.get("v") != CATALOGUE_VERSION:
        return None  # versions 1 and 2 lack keys and content hashes: the agent's records rebuild it
    c = d["cols"]
    intern = sys.intern
    num: dict[str, list[Any]] = {f: array("d", c[f]).tolist() for f in _FLOAT_FIELDS}
    num.update({f: array("q", c[f]).tolist() for f in _INT_FIELDS})
    empty_tags: tuple[str, ...] = ()
    # The argument order of Entry's constructor (_FIELDS).
    entries = list(
        map(
            Entry,
            map(intern, c["id"]),
            num["created_at"],
            num["updated_at"],
            num["event_time"],
            num["importance"],
            map(intern, c["mtype"]),
            num["expires_at"],
            (t or empty_tags for t in c["tags"]),
            map(intern, c["session"]),
            (m or _EMPTY_META for m in c["meta_h"]),
            num["size"],
            num["access_count"],
            num["last_accessed_at"],
            num["version"],
            map(intern, c["key"]),
            num["content_h"],
        )
    )
    return CatalogueSnapshot(int(d["seq"]), entries)
