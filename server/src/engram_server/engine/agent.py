"""One agent's in-memory state: catalogue, indexes, links, and how it is loaded from storage.

Loading is lazy (first use of the agent) and fast: the catalogue comes from its snapshot plus the
journal written since, the indexes from their sealed-segment snapshots plus whatever is not in a
sealed segment (read from storage); nothing is re-embedded or re-tokenised that was persisted.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import codec
from .catalogue import Entry, dump_snapshot, load_snapshot
from .errors import DataCorrupted
from .keyspace import AgentKeys
from .keyword_index import keyword_document
from .models import Link, Memory
from .sessions import SessionIndex
from .storage import CF_JOURNAL, CF_LINKS, CF_META, CF_RECORDS, CF_VECTORS, Storage

if TYPE_CHECKING:
    from .keyword_index import KeywordIndex
    from .vector_index import VectorIndex

log = logging.getLogger(__name__)

LinkKey = tuple[str, str, str]  # (source, target, relation)


@dataclass
class AgentState:
    agent_id: str
    keys: AgentKeys  # where its data lives in storage
    lock: threading.RLock = field(default_factory=threading.RLock)
    load_lock: threading.Lock = field(default_factory=threading.Lock)
    maint_lock: threading.Lock = field(default_factory=threading.Lock)
    loaded: bool = False
    deleted: bool = False
    persisted: bool = False  # has an agent record in meta
    entries: dict[str, Entry] = field(default_factory=dict)
    sessions: SessionIndex = field(default_factory=SessionIndex)
    vindex: VectorIndex | None = None
    kindex: KeywordIndex | None = None
    links: dict[LinkKey, Link] = field(default_factory=dict)
    adj: dict[str, set[LinkKey]] = field(default_factory=dict)
    pending: dict[str, tuple[object, Memory | None]] = field(default_factory=dict)
    claimed: set[str] = field(default_factory=set)  # ids whose store is under way (writes.py)
    claimed_keys: set[str] = field(default_factory=set)  # upsert keys whose store is under way
    by_key: dict[str, str] = field(default_factory=dict)  # upsert key -> memory id
    by_content: dict[int, str] = field(default_factory=dict)  # content hash -> a memory id
    seq: int = 0  # last journal sequence number written
    cat_seq: int = 0  # journal seq covered by the persisted catalogue snapshot
    idx_seq: int = 0  # journal seq covered by the persisted index snapshots
    created_at: float = 0.0
    last_activity_at: float = 0.0
    min_expires: float = 0.0
    recipe: str = ""  # how its vectors were made (Engine recipe); "" = before recipes were kept
    bytes: int = 0
    type_counts: dict[str, int] = field(default_factory=dict)

    @property
    def qa(self) -> str:
        """The agent's token in storage keys (and index snapshot names)."""
        return self.keys.qa

    # --- catalogue bookkeeping (callers hold self.lock) ----------------------------------------
    def put_entry(self, e: Entry) -> None:
        old = self.entries.get(e.id)
        if old is not None:
            self._uncount(old)
            self._unindex(old)
        self.entries[e.id] = e
        self._index(e)
        self.sessions.put(e, old)
        self.bytes += e.size
        self.type_counts[e.mtype] = self.type_counts.get(e.mtype, 0) + 1
        if e.expires_at and (not self.min_expires or e.expires_at < self.min_expires):
            self.min_expires = e.expires_at

    def put_entries(self, entries: list[Entry]) -> None:
        """put_entry for many at once into an empty catalogue (loading a snapshot, whose ids are
        unique): the totals in one pass."""
        assert not self.entries
        self.entries = {e.id: e for e in entries}
        self.bytes = sum(e.size for e in entries)
        self.type_counts = dict(Counter(e.mtype for e in entries))
        for e in entries:
            if e.session:
                self.sessions.put(e, None)
            self._index(e)

    def drop_entry(self, mid: str) -> Entry | None:
        old = self.entries.pop(mid, None)
        if old is not None:
            self._uncount(old)
            self._unindex(old)
            self.sessions.remove(old)
        return old

    def _index(self, e: Entry) -> None:
        """The key and content lookups of writes.py (upserts, duplicate detection)."""
        if e.key:
            self.by_key[e.key] = e.id
        self.by_content.setdefault(e.content_h, e.id)

    def _unindex(self, e: Entry) -> None:
        if e.key and self.by_key.get(e.key) == e.id:
            del self.by_key[e.key]
        if self.by_content.get(e.content_h) == e.id:
            del self.by_content[e.content_h]  # another memory with that text is merely not found

    def _uncount(self, e: Entry) -> None:
        self.bytes -= e.size
        c = self.type_counts.get(e.mtype, 0) - 1
        if c > 0:
            self.type_counts[e.mtype] = c
        else:
            self.type_counts.pop(e.mtype, None)

    def add_link(self, link: Link) -> None:
        k = (link.source_id, link.target_id, link.relation)
        self.links[k] = link
        self.adj.setdefault(link.source_id, set()).add(k)
        self.adj.setdefault(link.target_id, set()).add(k)

    def remove_link(self, k: LinkKey) -> Link | None:
        link = self.links.pop(k, None)
        for end in (k[0], k[1]):
            s = self.adj.get(end)
            if s is not None:
                s.discard(k)
                if not s:
                    del self.adj[end]
        return link

    def links_of(self, mid: str) -> list[Link]:
        return [self.links[k] for k in sorted(self.adj.get(mid, ()))]

    def info(self) -> dict[str, Any]:
        return {
            "agent_id": self.agent_id,
            "created_at": self.created_at,
            "last_activity_at": self.last_activity_at,
            "count": len(self.entries),
            "bytes": self.bytes,
            "links": len(self.links),
            "types": dict(self.type_counts),
            "min_expires": self.min_expires,
            "recipe": self.recipe,
        }


def read_journal(storage: Storage, keys: AgentKeys, after: int) -> list[tuple[int, list[str]]]:
    out = []
    prefix = keys.prefix
    for k, v in storage.scan(CF_JOURNAL, prefix):
        seq = int(k[len(prefix) :])
        if seq > after:
            out.append((seq, json.loads(v)))
    return out


_gc_lock = threading.Lock()
_gc_pausers = 0
_gc_was_enabled = False


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off while an agent loads. A load creates a few hundred
    thousand long-lived, acyclic objects (catalogue entries, ids); the collections their
    allocation triggers rescan the growing heap again and again and took 40 % of the catalogue's
    load. Nested and concurrent loads share one pause."""
    global _gc_pausers, _gc_was_enabled
    with _gc_lock:
        if _gc_pausers == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_pausers += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pausers -= 1
            if _gc_pausers == 0 and _gc_was_enabled:
                gc.enable()


def load_agent(st: AgentState, storage: Storage, new_vindex: Any, new_kindex: Any, snapshots: Any) -> None:
    """Fill st from storage. new_vindex/new_kindex build empty indexes for the agent."""
    with gc_paused():
        _load_agent(st, storage, new_vindex, new_kindex, snapshots)


def _load_agent(st: AgentState, storage: Storage, new_vindex: Any, new_kindex: Any, snapshots: Any) -> None:
    t0 = time.perf_counter()
    keys = st.keys
    raw = storage.get(CF_META, keys.meta_agent)
    if raw is not None:
        info = json.loads(raw)
        st.persisted = True
        st.created_at = float(info.get("created_at", 0.0))
        st.last_activity_at = float(info.get("last_activity_at", 0.0))
        st.recipe = str(info.get("recipe", ""))
    idx_raw = storage.get(CF_META, keys.meta_index_seq)
    st.idx_seq = int(idx_raw) if idx_raw is not None else 0

    snap = None
    try:
        snap_blob = snapshots.get(keys.catalogue_snapshot)
        snap = load_snapshot(snap_blob) if snap_blob is not None else None
    except DataCorrupted as exc:  # the records are the truth: rebuild the catalogue from them
        log.error("an agent's catalogue snapshot is unreadable; rebuilding it from the records: %s", exc)
    journal = read_journal(storage, keys, 0)
    st.seq = journal[-1][0] if journal else (snap.seq if snap else 0)
    if snap is not None and (not journal or journal[0][0] <= snap.seq + 1):
        st.cat_seq = snap.seq
        st.put_entries(snap.entries)
        changed = {mid for seq, ids in journal if seq > snap.seq for mid in ids}
        _refresh_entries(st, storage, sorted(changed))
        source = "snapshot"
    else:  # no usable snapshot: rebuild from the records themselves
        st.cat_seq = 0
        try:
            for _, v in storage.scan(CF_RECORDS, keys.prefix):
                m = codec.memory_from_bytes(v)
                st.put_entry(Entry.of(m, len(v)))
        except DataCorrupted as exc:  # serve what is readable; `engram-server verify` names the rest
            log.error("an agent's records are partly unreadable; serving %d of them: %s", len(st.entries), exc)
        source = "records"
    st.seq = max(st.seq, st.cat_seq)
    st.min_expires = min((e.expires_at for e in st.entries.values() if e.expires_at), default=0.0)

    for _, v in storage.scan(CF_LINKS, keys.prefix):
        st.add_link(codec.link_from_bytes(v))
    t_catalogue = time.perf_counter()

    # Indexes: sealed segments from snapshots; the rest from storage.
    vi = new_vindex()
    ki = new_kindex()
    try:
        vi.load([])
    except DataCorrupted as exc:  # rebuilt from the stored vectors below (no re-embedding)
        log.error("an agent's vector index snapshot is unreadable; rebuilding the index: %s", exc)
        vi = new_vindex()
    t_vectors = time.perf_counter()
    try:
        ki.load([])
    except DataCorrupted as exc:
        log.error("an agent's keyword index snapshot is unreadable; rebuilding the index: %s", exc)
        ki = new_kindex()
    t_keywords = time.perf_counter()
    # The mutable snapshots may hold a write whose commit failed: drop what the catalogue lacks.
    for index in (vi, ki):
        extra = [mid for mid in index.mutable_ids() if mid not in st.entries]
        if extra:
            index.remove(extra)
    idx_changed = {mid for seq, ids in journal if seq > st.idx_seq for mid in ids}
    # Only trust the snapshots' tombstones when the journal reaches back to idx_seq.
    trusted = (bool(journal) and journal[0][0] <= st.idx_seq + 1) or (not journal and st.idx_seq >= st.seq)
    if not trusted:
        idx_changed = set(st.entries)
    gone = [mid for mid in idx_changed if mid not in st.entries]
    if gone:
        vi.remove(gone)
        ki.remove(gone)
    have_v, have_k = vi.live_ids(), ki.live_ids()
    need_v = [mid for mid in st.entries if mid in idx_changed or mid not in have_v]
    need_k = [mid for mid in st.entries if mid in idx_changed or mid not in have_k]
    del have_v, have_k
    for chunk in _chunks(need_v, 4096):
        vals = _read_chunk(storage, CF_VECTORS, keys, chunk)
        ids, vecs = [], []
        for mid, vv in zip(chunk, vals, strict=True):
            if vv is not None:
                _, vec = codec.vector_from_bytes(vv)
                ids.append(mid)
                vecs.append(vec)
        if ids:
            import numpy as np

            vi.add(ids, np.stack(vecs))
    for chunk in _chunks(need_k, 4096):
        vals = _read_chunk(storage, CF_RECORDS, keys, chunk)
        ids, texts = [], []
        for mid, rv in zip(chunk, vals, strict=True):
            if rv is not None:
                ids.append(mid)
                m = codec.memory_from_bytes(rv)
                texts.append(keyword_document(m.content, m.event_time))
        if ids:
            ki.add(ids, texts)
    st.vindex, st.kindex = vi, ki
    st.loaded = True
    t_end = time.perf_counter()
    log.info(
        "agent loaded: %d memories (%s), %d vectors and %d texts from storage in %.0f ms "
        "(catalogue %.0f, vector snapshots %.0f, keyword snapshots %.0f, rest %.0f)",
        len(st.entries),
        source,
        len(need_v),
        len(need_k),
        (t_end - t0) * 1000,
        (t_catalogue - t0) * 1000,
        (t_vectors - t_catalogue) * 1000,
        (t_keywords - t_vectors) * 1000,
        (t_end - t_keywords) * 1000,
    )


def _refresh_entries(st: AgentState, storage: Storage, ids: list[str]) -> None:
    for chunk in _chunks(ids, 4096):
        vals = storage.multi_get_each(CF_RECORDS, [st.keys.record(m) for m in chunk])
        for mid, v in zip(chunk, vals, strict=True):
            if v is None:
                st.drop_entry(mid)
            elif isinstance(v, DataCorrupted):
                # Keep what the snapshot says: the memory stays listed, and reading it reports
                # DATA_LOSS naming it, rather than it seeming deleted.
                log.error("memory %s is unreadable: %s", mid, v)
            else:
                st.put_entry(Entry.of(codec.memory_from_bytes(v), len(v)))


def _read_chunk(storage: Storage, cf: str, keys: AgentKeys, ids: list[str]) -> list[bytes | None]:
    """Values of ids for loading an index: a corrupted one is logged and left out (the index
    then lacks that memory; reading it reports DATA_LOSS)."""
    try:
        return storage.multi_get(cf, [keys.record(m) for m in ids])
    except DataCorrupted:
        out: list[bytes | None] = []
        for mid, v in zip(ids, storage.multi_get_each(cf, [keys.record(m) for m in ids]), strict=True):
            if isinstance(v, DataCorrupted):
                log.error("memory %s is unreadable and left out of its index: %s", mid, v)
                v = None
            out.append(v)
        return out


def _chunks(items: list[str], n: int) -> list[list[str]]:
    return [items[i : i + n] for i in range(0, len(items), n)]


def catalogue_snapshot_bytes(st: AgentState) -> tuple[int, bytes]:
    """Called with st.lock held only long enough to copy; returns (seq, blob)."""
    with st.lock:
        seq = st.seq
        entries = list(st.entries.values())
    return seq, dump_snapshot(seq, entries)
