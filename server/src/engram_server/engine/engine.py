"""The Engine facade: the only entry point the service layer uses.

CONTRACT (shared by the engine and the service layer; change only together):
every method is synchronous and thread-safe; the service layer calls it from its worker pool
(`Engine.executor`), never on the event loop. Errors are `engram_server.engine.errors.*`.

Write path: validate → embed (no lock held) → under the agent's lock build one batch (record,
vector, id index, history, journal, agent record), enqueue it on the group-commit writer and
apply it to the in-memory catalogue and indexes → release the lock → wait until the batch is
synced. Enqueue order is commit order, so writes to one agent stay ordered while concurrent
writers still share fsyncs. Until the commit lands, readers see the new value through the
agent's `pending` overlay; if the commit fails the agent is evicted and reloaded from storage.
"""

from __future__ import annotations

import base64
import builtins
import hashlib
import json
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from . import codec
from .agent import (
    AgentState,
    LinkKey,
    cat_snapshot_name,
    catalogue_snapshot_bytes,
    journal_key,
    link_key,
    load_agent,
    meta_agent_key,
    meta_idx_key,
)
from .catalogue import Entry, compile_filter, filter_fingerprint
from .config import EngineConfig
from .crypto import Cipher, resolve_key
from .embedding import BUNDLED_MODEL_IDS, DEFAULT_PRECISION, bundled_model_id
from .errors import AlreadyExists, DataCorrupted, EngineError, FailedPrecondition, InvalidArgument, NotFound
from .fusion import FusedHit
from .ids import agent_key, agent_prefix, check_agent_id, check_memory_id, new_id, rec_key
from .keyword_index import keyword_document
from .models import (
    AgentInfo,
    ApiKeyRecord,
    DuplicateGroup,
    EngineStats,
    ForgetResult,
    Link,
    ListPage,
    Memory,
    MemoryFilter,
    MemoryGraph,
    MemoryPatch,
    MemoryType,
    NewMemory,
    RecallMode,
    RecallQuery,
    RecallResult,
    ScoredMemory,
    ScoreExplanation,
)
from .storage import (
    CF_API_KEYS,
    CF_HISTORY,
    CF_ID_INDEX,
    CF_JOURNAL,
    CF_LINKS,
    CF_META,
    CF_RECORDS,
    CF_SNAPSHOTS,
    CF_VECTORS,
    Batch,
    SnapshotView,
    Storage,
)

log = logging.getLogger(__name__)

META_EMBEDDING = b"embedding"
META_BG = b"bg_state"
MAX_PAGE = 1000
MAX_TOP_K = 1000
_ORDERS = ("created_at", "updated_at", "importance", "event_time")
_ACCESS_FLUSH_CHUNK = 128  # records rewritten per hold of the agent lock by the access-count flush
_CAT_SNAPSHOT_EVERY = 2000  # journal entries before the background rewrites a catalogue snapshot


def _now() -> float:
    return round(time.time(), 6)


class Engine:
    executor: ThreadPoolExecutor  # bounded pool for CPU/IO work; size from config

    def __init__(self, config: EngineConfig, storage: Storage, embedder: Any = None) -> None:
        self.config = config
        self.storage = storage
        self.snapshots = SnapshotView(storage)
        self.executor = ThreadPoolExecutor(max(1, config.worker_threads), thread_name_prefix="engram-engine")
        self._embedder = embedder
        self._embedder_lock = threading.Lock()
        self._model_id = embedder.model_id if embedder is not None else _configured_model_id(config)
        self._dim: int | None = int(embedder.dim) if embedder is not None else None
        self._agents: dict[str, AgentState] = {}
        self._agents_lock = threading.Lock()
        self._id_lock = threading.Lock()  # client-supplied ids: check-and-claim across agents
        self._inflight_ids: dict[str, str] = {}
        self._access_lock = threading.Lock()
        self._access_dirty: dict[str, set[str]] = {}
        self._builder: Any = None
        self._started = time.monotonic()
        self._closed = False
        self._stop = threading.Event()
        self._bg_state: dict[str, float] = {}
        self._bg: threading.Thread | None = None

    # --- lifecycle ------------------------------------------------------------------------
    @classmethod
    def open(cls, config: EngineConfig, *, embedder: Any = None, background: bool = True) -> Engine:
        """Open (or create) the data directory. Raises WrongEncryptionKey without touching
        anything when the key does not match. Fast: heavy imports and index loads are lazy.

        embedder: an object with model_id, dim, embed_documents, embed_query (tests inject a
        small one); default: the configured ONNX model, loaded by warm_up() or first use."""
        key = resolve_key(config.encryption_key, config.encryption_key_file)
        storage = Storage.open(Path(config.data_dir) / "db", Cipher(key))
        try:
            eng = cls(config, storage, embedder)
            eng._check_model()
            raw = storage.get(CF_META, META_BG)
            eng._bg_state = json.loads(raw) if raw else {}
        except BaseException:
            storage.close()
            raise
        if eng._needs_reembed:
            eng.reembed_all()
        if background:
            eng._bg = threading.Thread(target=eng._background, name="engram-background", daemon=True)
            eng._bg.start()
        return eng

    def _check_model(self) -> None:
        self._needs_reembed = False
        raw = self.storage.get(CF_META, META_EMBEDDING)
        if raw is None:
            return
        stored = json.loads(raw)
        if self._dim is None:
            self._dim = int(stored["dim"])
        if self._follows_stored_precision() and stored["model_id"] in BUNDLED_MODEL_IDS:
            self._model_id = stored["model_id"]  # "auto": keep the precision the vectors were made with
        if stored["model_id"] != self._model_id:
            if not self.config.reembed_on_model_change:
                raise FailedPrecondition(
                    f"the data directory's vectors were made with embedding model {stored['model_id']!r}, but the "
                    f"configured model is {self._model_id!r}. Configure the original model (or embedding_precision "
                    "auto), or re-embed every memory with the new one (reembed_on_model_change)."
                )
            self._needs_reembed = True
            self._dim = None

    def _follows_stored_precision(self) -> bool:
        return (
            self._embedder is None
            and self.config.embedding_model_path is None
            and self.config.embedding_precision == "auto"
        )

    def close(self) -> None:
        """Flush, stop background work, release the RocksDB lock. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._bg is not None:
            self._bg.join(timeout=30)
        try:
            self._flush_access()
            for st in self._loaded_agents():
                self._persist_indexes(st)
                self._snapshot_catalogue(st, force=False)
        except Exception:
            log.exception("final flush failed; the journal still has every change")
        if self._builder is not None:
            self._builder.close()
        self.executor.shutdown(wait=True, cancel_futures=True)
        close_embedder = getattr(self._embedder, "close", None)  # test embedders have none
        if close_embedder is not None:
            close_embedder()
        with self._agents_lock:
            self._agents.clear()
        self.storage.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def ready(self) -> bool:
        """True once recall can be served (embedding model loaded)."""
        return self._embedder is not None

    def warm_up(self) -> None:
        """Load the embedding model and anything else the first recall needs."""
        emb = self._get_embedder()
        emb.embed_query("warm up")

    def preload_agents(self, limit: int | None = None) -> builtins.list[str]:
        """Load the most recently active agents (`preload_agents` of them), for a background
        thread at start-up: their first recall after a restart then finds them in memory.
        Returns the ids loaded."""
        n = self.config.preload_agents if limit is None else limit
        if n <= 0:
            return []
        recent: builtins.list[tuple[float, str]] = []
        for _, v in self.storage.scan(CF_META, b"agent/"):
            d = json.loads(v)
            recent.append((float(d.get("last_activity_at", 0.0)), d["agent_id"]))
        recent.sort(reverse=True)
        done = []
        for _, agent_id in recent[:n]:
            if self._closed:
                break
            try:
                self._agent(agent_id)
            except Exception:  # the agent's own requests will report it
                log.warning("preloading an agent failed", exc_info=True)
                continue
            done.append(agent_id)
        return done

    def _get_embedder(self) -> Any:
        emb = self._embedder
        if emb is not None:
            return emb
        with self._embedder_lock:
            if self._embedder is None:
                from .embedding import Embedder

                self._embedder = Embedder.from_config(
                    self.config.embedding_model_path,
                    self.config.model_cache_dir or _default_cache_dir(),
                    threads=self.config.embedding_threads,
                    arena=self.config.embedding_arena,
                    precision=BUNDLED_MODEL_IDS.get(self._model_id, DEFAULT_PRECISION),
                )
                if self._embedder.model_id != self._model_id:
                    raise FailedPrecondition("the embedding model loaded differs from the configured model id")
                self._dim = int(self._embedder.dim)
            return self._embedder

    def _get_dim(self) -> int:
        if self._dim is None:
            self._dim = int(self._get_embedder().dim)
        return self._dim

    def _check_open(self) -> None:
        if self._closed:
            raise FailedPrecondition("the engine is closed")

    # --- agents: cache and loading ---------------------------------------------------------
    def _agent(self, agent_id: str) -> AgentState:
        check_agent_id(agent_id)
        self._check_open()
        with self._agents_lock:
            st = self._agents.get(agent_id)
            if st is None:
                st = AgentState(agent_id, agent_key(agent_id))
                self._agents[agent_id] = st
        if not st.loaded:
            with st.load_lock:
                if not st.loaded:
                    load_agent(
                        st, self.storage, lambda: self._new_vindex(st), lambda: self._new_kindex(st), self.snapshots
                    )
        return st

    def _new_vindex(self, st: AgentState) -> Any:
        from .vector_index import VectorIndex

        return VectorIndex(
            st.qa, self._get_dim_for_index(), self.snapshots, self._get_builder(), self.config.seal_threshold
        )

    def _get_dim_for_index(self) -> int:
        return self._dim if self._dim is not None else self._get_dim()

    def _new_kindex(self, st: AgentState) -> Any:
        from .keyword_index import KeywordIndex

        return KeywordIndex(st.qa, self.snapshots, self.config.seal_threshold)

    def _get_builder(self) -> Any:
        if self._builder is None:
            from .index_worker import IndexBuilder

            self._builder = IndexBuilder(numba_cache_dir=self.config.numba_cache_dir)
        return self._builder

    def _loaded_agents(self) -> builtins.list[AgentState]:
        with self._agents_lock:
            return [s for s in self._agents.values() if s.loaded and not s.deleted]

    def _evict(self, st: AgentState) -> None:
        with self._agents_lock:
            if self._agents.get(st.agent_id) is st:
                del self._agents[st.agent_id]

    # --- commit helpers --------------------------------------------------------------------
    def _enqueue(self, st: AgentState, b: Batch, touched: Iterable[str]) -> Future[None]:
        """Called with st.lock held: journal + agent record, then hand the batch to the writer."""
        now = _now()
        if not st.created_at:
            st.created_at = now
        st.last_activity_at = now
        ids = sorted(set(touched))
        if ids:
            st.seq += 1
            b.put(CF_JOURNAL, journal_key(st.qa, st.seq), codec.dumps(ids))
        b.put(CF_META, meta_agent_key(st.qa), codec.dumps(st.info()))
        st.persisted = True
        return self.storage.write_async(b)

    def _await(self, st: AgentState, fut: Future[None], token: object | None = None, ids: Iterable[str] = ()) -> None:
        try:
            fut.result()
        except BaseException:
            st.loaded = False  # in-memory state may be ahead of storage: reload from storage
            self._evict(st)
            raise
        if token is not None:
            with st.lock:
                for mid in ids:
                    p = st.pending.get(mid)
                    if p is not None and p[0] is token:
                        del st.pending[mid]

    def _read(self, st: AgentState, mid: str) -> Memory | None:
        """Current record (pending overlay first), with the live access counters."""
        p = st.pending.get(mid)
        if p is not None:
            m = p[1]
        else:
            raw = self.storage.get(CF_RECORDS, rec_key(st.qa, mid))
            m = codec.memory_from_bytes(raw) if raw is not None else None
        if m is None:
            return None
        e = st.entries.get(mid)
        if e is not None:
            m = replace(
                m,
                access_count=e.access_count,
                last_accessed_at=e.last_accessed_at or None,
                tags=list(m.tags),
                metadata=dict(m.metadata),
            )
        return m

    def _read_many(self, st: AgentState, ids: builtins.list[str]) -> dict[str, Memory]:
        """Current records of ids (pending overlay first), with the live access counters. One
        multi-get for those in storage; their freshly decoded records take the counters in place
        (a copy is only needed for the shared pending ones)."""
        out: dict[str, Memory] = {}
        missing = []
        for mid in ids:
            p = st.pending.get(mid)
            if p is not None:
                if p[1] is not None:
                    e = st.entries.get(mid)
                    m = p[1]
                    out[mid] = (
                        m
                        if e is None
                        else replace(m, access_count=e.access_count, last_accessed_at=e.last_accessed_at or None)
                    )
            else:
                missing.append(mid)
        if not missing:
            return out
        keys = [rec_key(st.qa, mid) for mid in missing]
        try:
            values = self.storage.multi_get(CF_RECORDS, keys)
        except DataCorrupted:  # one bad record must not take the others down: read one by one
            values = [self._get_record_or_skip(k) for k in keys]
        for mid, v in zip(missing, values, strict=True):
            if v is None:
                continue
            m = codec.memory_from_bytes(v)
            e = st.entries.get(mid)
            if e is not None:
                m.access_count = e.access_count
                m.last_accessed_at = e.last_accessed_at or None
            out[mid] = m
        return out

    def _get_record_or_skip(self, key: bytes) -> bytes | None:
        try:
            return self.storage.get(CF_RECORDS, key)
        except DataCorrupted as exc:
            log.error("skipping unreadable record: %s", exc)
            return None

    def _locate(self, memory_id: str, agent_id: str) -> AgentState:
        """The agent that owns memory_id (NotFound when it does not exist or agent_id differs)."""
        if not memory_id:
            raise InvalidArgument("id must not be empty", field="id")
        if agent_id:
            return self._agent(agent_id)
        self._check_open()
        with self._id_lock:
            owner = self._inflight_ids.get(memory_id)
        if owner is None:
            raw = self.storage.get(CF_ID_INDEX, memory_id.encode())
            if raw is None:
                raise NotFound(f"memory {memory_id} not found")
            owner = raw.decode()
        return self._agent(owner)

    def _live_entry(self, st: AgentState, memory_id: str) -> Entry:
        e = st.entries.get(memory_id)
        if e is None or not e.live(time.time()):
            raise NotFound(f"memory {memory_id} not found")
        return e

    # --- validation --------------------------------------------------------------------------
    @staticmethod
    def _mtype(value: Any, field: str) -> MemoryType:
        try:
            return MemoryType(value)
        except ValueError:
            allowed = ", ".join(t.value for t in MemoryType)
            raise InvalidArgument(f"{field} must be one of {allowed}", field=field) from None

    def _validate_new(self, item: NewMemory, now: float) -> Memory:
        check_agent_id(item.agent_id)
        if not isinstance(item.content, str) or not item.content.strip():
            raise InvalidArgument("content must not be empty", field="content")
        if item.id:
            check_memory_id(item.id)
        imp = codec.check_number(item.importance, "importance", 0.0, 1.0)
        mtype = self._mtype(item.memory_type, "memory_type")
        tags = _check_tags(item.tags)
        meta = _check_metadata(item.metadata)
        expires = _expiry(item.ttl_seconds, item.expires_at, now)
        ev = codec.check_number(item.event_time, "event_time") if item.event_time else now
        return Memory(
            id=item.id or new_id(),
            agent_id=item.agent_id,
            content=item.content,
            memory_type=mtype,
            importance=imp,
            tags=tags,
            metadata=meta,
            session_id=item.session_id or "",
            event_time=ev,
            created_at=now,
            updated_at=now,
            expires_at=expires,
            embedding_model=self._model_id,
        )

    # --- memories -------------------------------------------------------------------------
    def store(self, item: NewMemory) -> tuple[Memory, bool]:
        """Store one memory. Returns (memory, created); created is False when a client-supplied
        id already existed with the same content (idempotent retry). Same id with different
        content → AlreadyExists."""
        return self.store_batch([item])[0]

    def store_batch(self, items: builtins.list[NewMemory]) -> builtins.list[tuple[Memory, bool]]:
        """Validate all, embed in one batch, write in one synced batch. All or nothing."""
        self._check_open()
        if not items:
            return []
        now = _now()
        mems = [self._validate_new(it, now) for it in items]
        if len({m.agent_id for m in mems}) != 1:
            raise InvalidArgument("every memory of a batch must have the same agent_id", field="agent_id")
        seen: set[str] = set()
        for m in mems:
            if m.id in seen:
                raise InvalidArgument(f"id {m.id} appears twice in the batch", field="id")
            seen.add(m.id)
        return self._store_memories(mems, keep_times=False)

    def _store_memories(
        self, mems: builtins.list[Memory], keep_times: bool, skip_existing: bool = False
    ) -> builtins.list[tuple[Memory, bool]]:
        st = self._agent(mems[0].agent_id)
        results: builtins.list[tuple[Memory, bool] | None] = [None] * len(mems)
        claimed: builtins.list[str] = []
        try:
            with self._id_lock:  # claim ids so two concurrent stores cannot both create one id
                for i, m in enumerate(mems):
                    owner = self._inflight_ids.get(m.id)
                    if owner is None:
                        raw = self.storage.get(CF_ID_INDEX, m.id.encode())
                        owner = raw.decode() if raw is not None else None
                    if owner is not None:
                        existing = self._existing(owner, m.id) if owner == m.agent_id else None
                        if skip_existing:
                            results[i] = (existing or m, False)
                        elif existing is not None and existing.content == m.content:
                            results[i] = (existing, False)
                        else:
                            raise AlreadyExists(f"memory {m.id} already exists with different content")
                    else:
                        self._inflight_ids[m.id] = m.agent_id
                        claimed.append(m.id)
            new = [m for i, m in enumerate(mems) if results[i] is None]
            if new:
                vecs = self._get_embedder().embed_documents([m.content for m in new])
                self._write_new(st, new, vecs)
                it = iter(new)
                for i in range(len(results)):
                    if results[i] is None:
                        results[i] = (next(it), True)
        finally:
            with self._id_lock:
                for mid in claimed:
                    self._inflight_ids.pop(mid, None)
        return [r for r in results if r is not None]

    def _existing(self, agent_id: str, mid: str) -> Memory | None:
        st = self._agent(agent_id)
        with st.lock:
            return self._read(st, mid)

    def _write_new(self, st: AgentState, mems: builtins.list[Memory], vecs: np.ndarray) -> None:
        b = self.storage.batch()
        token = object()
        with st.lock:
            self._check_agent_alive(st)
            if self.storage.get(CF_META, META_EMBEDDING) is None:
                b.put(CF_META, META_EMBEDDING, codec.dumps({"model_id": self._model_id, "dim": int(vecs.shape[1])}))
            sizes = []
            for m, v in zip(mems, vecs, strict=True):
                m.embedding_model = self._model_id
                body = codec.memory_to_bytes(m)
                sizes.append(len(body))
                b.put(CF_RECORDS, rec_key(st.qa, m.id), body)
                b.put(CF_VECTORS, rec_key(st.qa, m.id), codec.vector_to_bytes(self._model_id, v), compress=False)
                b.put(CF_ID_INDEX, m.id.encode(), m.agent_id.encode())
            for m, size in zip(mems, sizes, strict=True):
                st.put_entry(Entry.of(m, size))
                st.pending[m.id] = (token, m)
            fut = self._enqueue(st, b, [m.id for m in mems])
            assert st.vindex is not None and st.kindex is not None
            st.vindex.add([m.id for m in mems], vecs)
            st.kindex.add([m.id for m in mems], [keyword_document(m.content, m.event_time) for m in mems])
        self._await(st, fut, token, [m.id for m in mems])

    def _check_agent_alive(self, st: AgentState) -> None:
        if st.deleted or not st.loaded:
            raise FailedPrecondition("the agent was deleted or reloaded concurrently; retry")

    def get(self, memory_id: str, agent_id: str = "") -> Memory:
        """By id; agent_id, when given, must match (else NotFound). Expired → NotFound."""
        st = self._locate(memory_id, agent_id)
        with st.lock:
            self._live_entry(st, memory_id)
            m = self._read(st, memory_id)
        if m is None:
            raise NotFound(f"memory {memory_id} not found")
        return m

    def update(self, memory_id: str, patch: MemoryPatch, agent_id: str = "") -> Memory:
        """New version; the previous one goes to history. Content change re-embeds."""
        st = self._locate(memory_id, agent_id)
        if patch.content is not None and (not isinstance(patch.content, str) or not patch.content.strip()):
            raise InvalidArgument("content must not be empty", field="content")
        vec = None
        if patch.content is not None:
            vec = self._get_embedder().embed_documents([patch.content])
        now = _now()
        b = self.storage.batch()
        token = object()
        with st.lock:
            self._live_entry(st, memory_id)
            cur = self._read(st, memory_id)
            if cur is None:
                raise NotFound(f"memory {memory_id} not found")
            new = self._apply_patch(cur, patch, now)
            if vec is not None and patch.content == cur.content:
                vec = None  # same text: keep the vector
            b.put(CF_HISTORY, _hist_key(st.qa, memory_id, cur.version), codec.memory_to_bytes(cur))
            body = codec.memory_to_bytes(new)
            b.put(CF_RECORDS, rec_key(st.qa, memory_id), body)
            if vec is not None:
                b.put(
                    CF_VECTORS, rec_key(st.qa, memory_id), codec.vector_to_bytes(self._model_id, vec[0]), compress=False
                )
            st.put_entry(Entry.of(new, len(body)))
            st.pending[memory_id] = (token, new)
            fut = self._enqueue(st, b, [memory_id])
            assert st.vindex is not None and st.kindex is not None
            if vec is not None:
                st.vindex.add([memory_id], vec)
            if vec is not None or new.event_time != cur.event_time:
                st.kindex.add([memory_id], [keyword_document(new.content, new.event_time)])
        self._await(st, fut, token, [memory_id])
        return new

    def _apply_patch(self, cur: Memory, p: MemoryPatch, now: float) -> Memory:
        new = replace(cur, tags=list(cur.tags), metadata=dict(cur.metadata))
        if p.content is not None:
            new.content = p.content
        if p.memory_type is not None:
            new.memory_type = self._mtype(p.memory_type, "memory_type")
        if p.importance is not None:
            new.importance = codec.check_number(p.importance, "importance", 0.0, 1.0)
        if p.tags is not None:
            new.tags = _check_tags(p.tags)
        if p.metadata is not None:
            new.metadata = _check_metadata(p.metadata)
        if p.session_id is not None:
            new.session_id = p.session_id
        if p.event_time is not None:
            new.event_time = codec.check_number(p.event_time, "event_time")
        if p.ttl_seconds is not None:
            ttl = codec.check_number(p.ttl_seconds, "ttl_seconds", 0.0)
            new.expires_at = now + ttl if ttl > 0 else None
        if p.expires_at is not None:
            new.expires_at = codec.check_number(p.expires_at, "expires_at", 0.0) or None
        new.version = cur.version + 1
        new.updated_at = now
        new.embedding_model = self._model_id
        return new

    def delete(self, memory_id: str, agent_id: str = "") -> Memory:
        """Delete a memory, its vector, keyword entry, links and history. Returns what was deleted."""
        st = self._locate(memory_id, agent_id)
        with st.lock:
            self._live_entry(st, memory_id)
            cur = self._read(st, memory_id)
            if cur is None:
                raise NotFound(f"memory {memory_id} not found")
            fut, token = self._delete_locked(st, [memory_id])
        self._await(st, fut, token, [memory_id])
        return cur

    def _delete_locked(self, st: AgentState, ids: builtins.list[str]) -> tuple[Future[None], object]:
        b = self.storage.batch()
        token = object()
        for mid in ids:
            k = rec_key(st.qa, mid)
            b.delete(CF_RECORDS, k)
            b.delete(CF_VECTORS, k)
            b.delete(CF_ID_INDEX, mid.encode())
            b.delete_prefix(CF_HISTORY, k + b"\x00")
            for link in st.links_of(mid):
                b.delete(CF_LINKS, link_key(st.qa, link.source_id, link.target_id, link.relation))
                st.remove_link((link.source_id, link.target_id, link.relation))
            st.drop_entry(mid)
            st.pending[mid] = (token, None)
        fut = self._enqueue(st, b, ids)
        assert st.vindex is not None and st.kindex is not None
        st.vindex.remove(ids)
        st.kindex.remove(ids)
        return fut, token

    def list(
        self,
        agent_id: str,
        filter: MemoryFilter | None = None,
        page_size: int = 50,
        page_token: str = "",
        order_by: str = "created_at desc",
    ) -> ListPage:
        """Page through an agent's memories. total_size is the true count matching the filter.
        order_by: "created_at desc|asc", "updated_at desc|asc", "importance desc|asc",
        "event_time desc|asc". Bad token → InvalidArgument."""
        field, desc = _parse_order(order_by)
        if page_size < 0:
            raise InvalidArgument("page_size must not be negative", field="page_size")
        size = min(page_size or 50, MAX_PAGE)
        pred = compile_filter(filter)
        st = self._agent(agent_id)
        fp = hashlib.sha256(f"{agent_id}\x00{filter_fingerprint(filter)}\x00{field}\x00{desc}".encode()).hexdigest()[
            :16
        ]
        after: tuple[float, str] | None = None
        if page_token:
            after = _decode_token(page_token, fp)
        now = time.time()
        with st.lock:
            rows = [
                (float(getattr(e, field)), e.id)
                for e in st.entries.values()
                if e.live(now) and (pred is None or pred(e))
            ]
        rows.sort(reverse=desc)
        start = 0
        if after is not None:
            import bisect

            if desc:
                lo, hi = 0, len(rows)
                while lo < hi:  # first row strictly after `after` in descending order
                    mid = (lo + hi) // 2
                    if rows[mid] >= after:
                        lo = mid + 1
                    else:
                        hi = mid
                start = lo
            else:
                start = bisect.bisect_right(rows, after)
        page = rows[start : start + size]
        with st.lock:
            recs = self._read_many(st, [mid for _, mid in page])
        mems = [recs[mid] for _, mid in page if mid in recs]
        token = _encode_token(page[-1], fp) if page and start + size < len(rows) else ""
        return ListPage(mems, token, len(rows))

    # --- recall ---------------------------------------------------------------------------
    def recall(self, query: RecallQuery) -> RecallResult:
        """Hybrid / vector / keyword recall with filters applied before top_k."""
        t0 = time.perf_counter()
        check_agent_id(query.agent_id)
        if not isinstance(query.query, str) or not query.query.strip():
            raise InvalidArgument("query must not be empty", field="query")
        if not isinstance(query.top_k, int) or query.top_k <= 0 or query.top_k > MAX_TOP_K:
            raise InvalidArgument(f"top_k must be between 1 and {MAX_TOP_K}", field="top_k")
        try:
            mode = RecallMode(query.mode)
        except ValueError:
            raise InvalidArgument("mode must be hybrid, vector or keyword", field="mode") from None
        min_score = codec.check_number(query.min_score, "min_score")
        pred = compile_filter(query.filter)
        # The query embeds on the embedder's thread while this one searches the keywords.
        qfut = self._get_embedder().submit_query(query.query) if mode is not RecallMode.KEYWORD else None
        st = self._agent(query.agent_id)
        from .fusion import CANDIDATE_DEPTH, adjust, fuse

        now = time.time()
        entries = st.entries

        def allowed(mid: str) -> bool:
            e = entries.get(mid)
            return e is not None and e.live(now) and (pred is None or pred(e))

        depth = max(CANDIDATE_DEPTH, query.top_k)
        assert st.vindex is not None and st.kindex is not None
        # Without a filter and with nothing expired, every indexed memory may be returned: the
        # indexes then search without the per-candidate check (the graph is asked for half as
        # many candidates). Deletes are tombstoned in the indexes, and the check below still
        # drops what a concurrent write removed.
        expiring = st.min_expires and st.min_expires <= now
        search_filter = allowed if pred is not None or expiring else None
        khits = st.kindex.search(query.query, depth, search_filter) if mode is not RecallMode.VECTOR else []
        vhits = st.vindex.search(qfut.result(), depth, search_filter) if qfut is not None else []
        fused = fuse(vhits, khits, mode)
        fused = [h for h in fused if allowed(h.id)]  # a concurrent delete between search and here
        if self.config.session_context_weight > 0:
            fused = self._with_session_context(st, fused, allowed)
        hl_days = self.config.decay_half_life_days

        def half_life(mid: str) -> float:
            e = entries.get(mid)
            return hl_days.get(e.mtype if e else "episodic", 30.0) * 86400.0

        def importance(mid: str) -> float:
            e = entries.get(mid)
            return self._effective_importance(e, now) if e is not None else 0.5

        def age(mid: str) -> float:
            e = entries.get(mid)
            return max(now - e.event_time, 0.0) if e is not None else 0.0

        ranked = adjust(fused, importance, age, half_life)
        chosen = [h for h in ranked if h.score >= min_score][: query.top_k]
        with st.lock:
            recs = self._read_many(st, [h.id for h in chosen])
        out: builtins.list[ScoredMemory] = []
        for h in chosen:
            m = recs.get(h.id)
            if m is None:
                continue
            expl = None
            if query.explain:
                expl = ScoreExplanation(
                    h.vector_score,
                    h.keyword_score,
                    h.vector_rank,
                    h.keyword_rank,
                    h.fused_score,
                    h.importance_boost,
                    h.recency_boost,
                    h.context_boost,
                )
            out.append(ScoredMemory(m, h.score, h.vector_score, h.keyword_score, expl))
        if query.include_associated and out:
            out.extend(self._associated(st, out, allowed))
        self._touch(st, [s.memory.id for s in out], now)
        return RecallResult(out, len(fused), (time.perf_counter() - t0) * 1000)

    def _with_session_context(
        self, st: AgentState, fused: builtins.list[FusedHit], allowed: Callable[[str], bool]
    ) -> builtins.list[FusedHit]:
        """Hits lend relevance to the memories next to them in their session (fusion.py)."""
        from .fusion import spread_session_context

        if not st.sessions:  # no memory of this agent has a session: skip the lock
            return fused
        entries = st.entries
        with st.lock:  # the session order changes with writes
            near: dict[str, builtins.list[str]] = {}
            for h in fused:
                e = entries.get(h.id)
                if e is not None and e.session:
                    near[h.id] = [n for n in st.sessions.neighbours(e, entries) if allowed(n)]
        if not near:
            return fused
        return spread_session_context(fused, lambda mid: near.get(mid, ()), self.config.session_context_weight)

    def _effective_importance(self, e: Entry, now: float) -> float:
        """Importance decays with time since the memory was last written or used (half-life
        per type); computed at recall time, never written back."""
        hl = self.config.decay_half_life_days.get(e.mtype, 0.0) * 86400.0
        if hl <= 0:
            return e.importance
        ref = max(e.updated_at, e.last_accessed_at)
        return e.importance * math.pow(2.0, -max(now - ref, 0.0) / hl)

    def _associated(
        self, st: AgentState, hits: builtins.list[ScoredMemory], allowed: Callable[[str], bool]
    ) -> builtins.list[ScoredMemory]:
        have = {s.memory.id for s in hits}
        extra: dict[str, float] = {}
        with st.lock:
            for s in hits:
                for link in st.links_of(s.memory.id):
                    other = link.target_id if link.source_id == s.memory.id else link.source_id
                    if other not in have and allowed(other):
                        extra[other] = max(extra.get(other, 0.0), s.score * link.weight)
            recs = self._read_many(st, list(extra))
        return [
            ScoredMemory(recs[mid], sc, associated=True)
            for mid, sc in sorted(extra.items(), key=lambda t: -t[1])
            if mid in recs
        ]

    def _touch(self, st: AgentState, ids: builtins.list[str], now: float) -> None:
        """Access counts: in memory now, persisted by the background flush (off the recall path)."""
        if not ids:
            return
        with st.lock:
            for mid in ids:
                e = st.entries.get(mid)
                if e is not None:
                    e.access_count += 1
                    e.last_accessed_at = now
        with self._access_lock:
            self._access_dirty.setdefault(st.agent_id, set()).update(ids)

    def recall_batch(self, queries: builtins.list[RecallQuery]) -> builtins.list[RecallResult]:
        return [self.recall(q) for q in queries]

    def forget(self, agent_id: str, filter: MemoryFilter, dry_run: bool = False) -> ForgetResult:
        """Delete every memory matching filter. An empty filter → InvalidArgument."""
        if filter is None or filter.is_empty():
            raise InvalidArgument("filter must not be empty (use delete_agent to erase an agent)", field="filter")
        pred = compile_filter(filter)
        assert pred is not None
        st = self._agent(agent_id)
        now = time.time()
        with st.lock:
            ids = sorted(e.id for e in st.entries.values() if e.live(now) and pred(e))
            if dry_run or not ids:
                return ForgetResult(len(ids), 0, ids[:1000])
            fut, token = self._delete_locked(st, ids)
        self._await(st, fut, token, ids)
        return ForgetResult(len(ids), len(ids), ids[:1000])

    def history(self, memory_id: str, agent_id: str = "") -> builtins.list[Memory]:
        """All versions, oldest first, the current one last."""
        st = self._locate(memory_id, agent_id)
        with st.lock:
            self._live_entry(st, memory_id)
            cur = self._read(st, memory_id)
        if cur is None:
            raise NotFound(f"memory {memory_id} not found")
        old = [
            codec.memory_from_bytes(v) for _, v in self.storage.scan(CF_HISTORY, rec_key(st.qa, memory_id) + b"\x00")
        ]
        old = [m for m in old if m.id != memory_id or m.version < cur.version]
        old.sort(key=lambda m: (m.updated_at, m.version))
        return [*old, cur]

    # --- graph ----------------------------------------------------------------------------
    def link(
        self, agent_id: str, source_id: str, target_id: str, relation: str = "related_to", weight: float = 1.0
    ) -> Link:
        """Both memories must exist in agent_id. Re-linking the same pair+relation updates weight."""
        relation = relation or "related_to"
        if len(relation) > 128:
            raise InvalidArgument("relation is longer than 128 characters", field="relation")
        w = codec.check_number(weight, "weight", 0.0, 1e6)
        if source_id == target_id:
            raise InvalidArgument("a memory cannot be linked to itself", field="target_id")
        st = self._agent(agent_id)
        with st.lock:
            for f, mid in (("source_id", source_id), ("target_id", target_id)):
                try:
                    self._live_entry(st, mid)
                except NotFound:
                    raise NotFound(f"{f}: memory {mid} not found in agent") from None
            k = (source_id, target_id, relation)
            prev = st.links.get(k)
            link = Link(agent_id, source_id, target_id, relation, w, prev.created_at if prev else _now())
            b = self.storage.batch()
            b.put(CF_LINKS, link_key(st.qa, source_id, target_id, relation), codec.link_to_bytes(link))
            st.add_link(link)
            fut = self._enqueue(st, b, [])
        self._await(st, fut)
        return link

    def unlink(self, agent_id: str, source_id: str, target_id: str, relation: str = "") -> int:
        """Remove links (all relations when relation is empty). Returns how many were removed."""
        st = self._agent(agent_id)
        with st.lock:
            keys = [
                k
                for k in st.adj.get(source_id, ())
                if k[0] == source_id and k[1] == target_id and (not relation or k[2] == relation)
            ]
            if not keys:
                return 0
            b = self.storage.batch()
            for k in keys:
                b.delete(CF_LINKS, link_key(st.qa, *k))
                st.remove_link(k)
            fut = self._enqueue(st, b, [])
        self._await(st, fut)
        return len(keys)

    def graph(
        self,
        agent_id: str,
        memory_id: str,
        depth: int = 1,
        relations: builtins.list[str] | None = None,
        max_nodes: int = 100,
    ) -> MemoryGraph:
        """Breadth-first traversal over links in both directions, up to depth."""
        if depth < 0 or depth > 10:
            raise InvalidArgument("depth must be between 0 and 10", field="depth")
        if max_nodes <= 0:
            raise InvalidArgument("max_nodes must be positive", field="max_nodes")
        rel = set(relations or [])
        st = self._agent(agent_id)
        now = time.time()
        with st.lock:
            self._live_entry(st, memory_id)
            order = [memory_id]
            seen = {memory_id}
            links: dict[LinkKey, Link] = {}
            frontier = deque([(memory_id, 0)])
            while frontier:
                mid, d = frontier.popleft()
                if d >= depth:
                    continue
                for k in sorted(st.adj.get(mid, ())):
                    if rel and k[2] not in rel:
                        continue
                    other = k[1] if k[0] == mid else k[0]
                    e = st.entries.get(other)
                    if e is None or not e.live(now):
                        continue
                    if other not in seen:
                        if len(order) >= max_nodes:
                            continue
                        seen.add(other)
                        order.append(other)
                        frontier.append((other, d + 1))
                    links[k] = st.links[k]
            recs = self._read_many(st, order)
        return MemoryGraph(
            [recs[m] for m in order if m in recs], [lk for k, lk in links.items() if k[0] in seen and k[1] in seen]
        )

    # --- bulk -----------------------------------------------------------------------------
    def export(self, agent_id: str, filter: MemoryFilter | None = None) -> Iterator[Memory]:
        """Every memory of the agent (all fields, including ids and times), in id order."""
        pred = compile_filter(filter)
        st = self._agent(agent_id)
        now = time.time()
        with st.lock:
            ids = sorted(e.id for e in st.entries.values() if e.live(now) and (pred is None or pred(e)))

        def gen() -> Iterator[Memory]:
            for i in range(0, len(ids), 256):
                chunk = ids[i : i + 256]
                with st.lock:
                    recs = self._read_many(st, chunk)
                for mid in chunk:
                    if mid in recs:
                        yield recs[mid]

        return gen()

    def import_memories(self, memories: Iterable[Memory], agent_id_override: str = "") -> tuple[int, int]:
        """Import full records (keeping id, times, version); idempotent by id: an existing id is
        skipped. Returns (imported, skipped). Re-embeds when the model differs."""
        imported = skipped = 0
        chunk: builtins.list[Memory] = []

        def flush() -> None:
            nonlocal imported, skipped
            by_agent: dict[str, builtins.list[Memory]] = {}
            for m in chunk:
                by_agent.setdefault(m.agent_id, []).append(m)
            for mems in by_agent.values():
                for _, created in self._store_memories(mems, keep_times=True, skip_existing=True):
                    if created:
                        imported += 1
                    else:
                        skipped += 1
            chunk.clear()

        now = _now()
        for src in memories:
            m = replace(src, tags=list(src.tags), metadata=dict(src.metadata))
            if agent_id_override:
                m.agent_id = agent_id_override
            check_agent_id(m.agent_id)
            check_memory_id(m.id)
            if not m.content or not m.content.strip():
                raise InvalidArgument("content must not be empty", field="content")
            m.memory_type = self._mtype(m.memory_type, "memory_type")
            m.importance = codec.check_number(m.importance, "importance", 0.0, 1.0)
            m.tags = _check_tags(m.tags)
            m.metadata = _check_metadata(m.metadata)
            m.created_at = m.created_at or now
            m.updated_at = m.updated_at or m.created_at
            m.event_time = m.event_time or m.created_at
            m.version = max(1, int(m.version))
            chunk.append(m)
            if len(chunk) >= 64:
                flush()
        if chunk:
            flush()
        return imported, skipped

    def consolidate(
        self, agent_id: str, similarity_threshold: float = 0.95, dry_run: bool = True
    ) -> builtins.list[DuplicateGroup]:
        """Find near-duplicates; unless dry_run, merge each group into its keeper (history kept)."""
        from .lifecycle import find_duplicate_groups

        thr = codec.check_number(similarity_threshold, "similarity_threshold", 0.0, 1.0)
        st = self._agent(agent_id)
        now = time.time()
        with st.lock:
            live = [e for e in st.entries.values() if e.live(now)]
        ids = [e.id for e in live]
        vecs = self._vectors(st, ids)
        ids = [i for i in ids if i in vecs]
        if len(ids) < 2:
            return []
        mat = np.stack([vecs[i] for i in ids])
        # Keeper: most important, then the oldest (the one others most likely refer to).
        rank = {e.id: (-e.importance, e.created_at, e.id) for e in live}
        groups = find_duplicate_groups(ids, mat, thr, key=lambda mid: rank[mid])
        if dry_run:
            return groups
        done = []
        for g in groups:
            if self._merge(st, g):
                done.append(g)
        return done

    def _vectors(self, st: AgentState, ids: builtins.list[str]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for i in range(0, len(ids), 4096):
            chunk = ids[i : i + 4096]
            vals = self.storage.multi_get(CF_VECTORS, [rec_key(st.qa, m) for m in chunk])
            for mid, v in zip(chunk, vals, strict=True):
                if v is not None:
                    out[mid] = codec.vector_from_bytes(v)[1]
        return out

    def _merge(self, st: AgentState, g: DuplicateGroup) -> bool:
        now = _now()
        token = object()
        b = self.storage.batch()
        with st.lock:
            keeper = self._read(st, g.keep_id)
            dups = [d for d in (self._read(st, mid) for mid in g.duplicate_ids) if d is not None]
            if keeper is None or not dups:
                return False
            new = replace(keeper, tags=list(keeper.tags), metadata=dict(keeper.metadata))
            for d in dups:
                new.tags += [t for t in d.tags if t not in new.tags]
                new.metadata = {**d.metadata, **new.metadata}
                new.importance = max(new.importance, d.importance)
                new.access_count += d.access_count
            new.version = keeper.version + 1
            new.updated_at = now
            b.put(CF_HISTORY, _hist_key(st.qa, keeper.id, keeper.version), codec.memory_to_bytes(keeper))
            for d in dups:  # merged memories stay readable in the keeper's history
                b.put(CF_HISTORY, rec_key(st.qa, keeper.id) + b"\x00m" + d.id.encode(), codec.memory_to_bytes(d))
            body = codec.memory_to_bytes(new)
            b.put(CF_RECORDS, rec_key(st.qa, keeper.id), body)
            relinks: builtins.list[Link] = []
            dup_ids = {d.id for d in dups}
            for d in dups:
                for link in st.links_of(d.id):
                    s = keeper.id if link.source_id in dup_ids else link.source_id
                    t = keeper.id if link.target_id in dup_ids else link.target_id
                    if s != t:
                        relinks.append(replace(link, source_id=s, target_id=t))
            st.put_entry(Entry.of(new, len(body)))
            st.pending[keeper.id] = (token, new)
            fut1 = self._enqueue(st, b, [keeper.id])
            fut2, token2 = self._delete_locked(st, [d.id for d in dups])
            b3 = self.storage.batch()
            for link in relinks:
                b3.put(
                    CF_LINKS, link_key(st.qa, link.source_id, link.target_id, link.relation), codec.link_to_bytes(link)
                )
                st.add_link(link)
            fut3 = self._enqueue(st, b3, [])
        self._await(st, fut1, token, [keeper.id])
        self._await(st, fut2, token2, [d.id for d in dups])
        self._await(st, fut3)
        return True

    # --- agents ---------------------------------------------------------------------------
    def _agent_infos(self) -> builtins.list[AgentInfo]:
        loaded = {s.agent_id: s for s in self._loaded_agents()}
        out = []
        for _, v in self.storage.scan(CF_META, b"agent/"):
            d = json.loads(v)
            st = loaded.get(d["agent_id"])
            if st is not None:
                with st.lock:
                    d = st.info()
            out.append(
                AgentInfo(
                    d["agent_id"],
                    int(d["count"]),
                    int(d["bytes"]),
                    int(d["links"]),
                    float(d["created_at"]),
                    float(d["last_activity_at"]),
                    dict(d["types"]),
                )
            )
        out.sort(key=lambda a: a.agent_id)
        return out

    def list_agents(self, page_size: int = 100, page_token: str = "") -> tuple[builtins.list[AgentInfo], str, int]:
        """(agents, next_page_token, total)."""
        self._check_open()
        if page_size < 0:
            raise InvalidArgument("page_size must not be negative", field="page_size")
        size = min(page_size or 100, MAX_PAGE)
        infos = self._agent_infos()
        start = 0
        if page_token:
            try:
                after = base64.urlsafe_b64decode(page_token.encode()).decode()
            except (ValueError, UnicodeDecodeError):
                raise InvalidArgument("page_token is not valid", field="page_token") from None
            start = next((i for i, a in enumerate(infos) if a.agent_id > after), len(infos))
        page = infos[start : start + size]
        token = (
            base64.urlsafe_b64encode(page[-1].agent_id.encode()).decode() if page and start + size < len(infos) else ""
        )
        return page, token, len(infos)

    def get_agent(self, agent_id: str) -> AgentInfo:
        check_agent_id(agent_id)
        self._check_open()
        with self._agents_lock:
            st = self._agents.get(agent_id)
        if st is None and self.storage.get(CF_META, meta_agent_key(agent_key(agent_id))) is None:
            raise NotFound(f"agent {agent_id} not found")
        st = self._agent(agent_id)
        if not st.persisted:
            raise NotFound(f"agent {agent_id} not found")
        with st.lock:
            d = st.info()
        now = time.time()
        live = sum(1 for e in st.entries.values() if e.live(now))
        return AgentInfo(
            agent_id,
            live,
            int(d["bytes"]),
            int(d["links"]),
            float(d["created_at"]),
            float(d["last_activity_at"]),
            dict(d["types"]),
        )

    def delete_agent(self, agent_id: str) -> int:
        """Erase records, vectors, index snapshots, links and history. Returns memories deleted."""
        st = self._agent(agent_id)
        if not st.persisted:
            raise NotFound(f"agent {agent_id} not found")
        with st.maint_lock, st.lock:  # no index maintenance may write snapshots meanwhile
            ids = list(st.entries)
            b = self.storage.batch()
            p = agent_prefix(st.qa)
            for cf in (CF_RECORDS, CF_VECTORS, CF_HISTORY, CF_LINKS, CF_JOURNAL):
                b.delete_prefix(cf, p)
            for mid in ids:
                b.delete(CF_ID_INDEX, mid.encode())
            for prefix in (f"vec/{st.qa}/", f"kw/{st.qa}/"):
                b.delete_prefix(CF_SNAPSHOTS, prefix.encode())
            b.delete_prefix(CF_SNAPSHOTS, cat_snapshot_name(st.qa).encode())
            b.delete(CF_META, meta_agent_key(st.qa))
            b.delete(CF_META, meta_idx_key(st.qa))
            st.deleted = True
            fut = self.storage.write_async(b)
            self._evict(st)
        fut.result()
        with self._access_lock:
            self._access_dirty.pop(agent_id, None)
        return sum(1 for _ in ids)

    # --- embeddings, keys, stats ----------------------------------------------------------
    def embed(self, texts: builtins.list[str]) -> np.ndarray:
        """float32 array (len(texts), dim), L2-normalised."""
        self._check_open()
        return np.asarray(self._get_embedder().embed_documents(list(texts)), dtype=np.float32)

    @property
    def embedding_model(self) -> str:
        return self._model_id

    @property
    def embedding_dim(self) -> int:
        return self._get_dim()

    def put_api_key(self, record: ApiKeyRecord) -> None:
        self._check_open()
        if not record.id:
            raise InvalidArgument("id must not be empty", field="id")
        b = self.storage.batch()
        b.put(CF_API_KEYS, record.id.encode(), codec.api_key_to_bytes(record))
        self.storage.write(b)

    def get_api_key(self, key_id: str) -> ApiKeyRecord | None:
        self._check_open()
        if not key_id:
            return None
        raw = self.storage.get(CF_API_KEYS, key_id.encode())
        return codec.api_key_from_bytes(raw) if raw is not None else None

    def list_api_keys(self) -> builtins.list[ApiKeyRecord]:
        self._check_open()
        return [codec.api_key_from_bytes(v) for _, v in self.storage.scan(CF_API_KEYS, b"")]

    def stats(self) -> EngineStats:
        self._check_open()
        infos = self._agent_infos()
        exact = indexed = 0
        for st in self._loaded_agents():
            if st.vindex is not None:
                s = st.vindex.stats()
                exact += int(s["vectors_exact"])
                indexed += int(s["vectors_indexed"])
        return EngineStats(
            agents=len(infos),
            memories=sum(a.memory_count for a in infos),
            links=sum(a.link_count for a in infos),
            bytes_on_disk=self.storage.bytes_on_disk(),
            vectors_exact=exact,
            vectors_indexed=indexed,
            index_builds_pending=int(self._builder.pending) if self._builder is not None else 0,
            embedding_model=self._model_id,
            embedding_dim=self._dim or 0,
            uptime_seconds=time.monotonic() - self._started,
        )

    def checkpoint(self, target_dir: str) -> None:
        """Consistent RocksDB checkpoint (backup) while serving."""
        self._check_open()
        self._flush_access()
        self.storage.checkpoint(target_dir)

    # --- re-embedding -------------------------------------------------------------------------
    def reembed_all(self) -> int:
        """Re-embed every memory with the configured model (a model change is a migration).
        Resumable: each agent's vectors are rewritten, then the model id is recorded last."""
        from .lifecycle import reembed_agent

        self._needs_reembed = False
        emb = self._get_embedder()
        names = [json.loads(v)["agent_id"] for _, v in self.storage.scan(CF_META, b"agent/")]
        total = 0
        for agent_id in names:
            total += reembed_agent(self, agent_id, emb)
        b = self.storage.batch()
        b.put(CF_META, META_EMBEDDING, codec.dumps({"model_id": self._model_id, "dim": int(emb.dim)}))
        self.storage.write(b)
        log.info("re-embedded %d memories with %s", total, self._model_id)
        return total

    # --- background -------------------------------------------------------------------------
    def _background(self) -> None:
        interval = max(0.05, self.config.background_interval_seconds)
        flush_every = max(0.05, min(self.config.access_flush_seconds, interval))
        last_heavy = time.monotonic()
        while not self._stop.wait(flush_every):
            try:
                self._flush_access()
                if time.monotonic() - last_heavy >= interval:
                    last_heavy = time.monotonic()
                    self.run_maintenance()
            except Exception:
                if not self._closed:
                    log.exception("background maintenance failed; retrying next round")

    def run_maintenance(self) -> None:
        """One round of background work: purge expired memories, index maintenance, catalogue
        snapshots, journal trimming. Safe to call any time (tests call it directly)."""
        from .lifecycle import purge_expired

        self._flush_access()
        purged = purge_expired(self)
        for st in self._loaded_agents():
            if self._stop.is_set() and not self._closed:
                return
            self._index_maintenance(st)
            self._snapshot_catalogue(st, force=False)
        self._bg_state = {"last_run": time.time(), "last_purged": float(purged)}
        b = self.storage.batch()
        b.put(CF_META, META_BG, codec.dumps(self._bg_state))
        self.storage.write(b)

    def _index_maintenance(self, st: AgentState) -> None:
        with st.maint_lock:
            if st.deleted or not st.loaded:
                return
            with st.lock:
                seq = st.seq
                vi, ki = st.vindex, st.kindex
            if vi is None or ki is None:
                return
            vi.maintenance()  # seals full chunks, persists manifest and mutable snapshot
            ki.maintenance()
            self._record_idx_seq(st, seq)

    def _persist_indexes(self, st: AgentState) -> None:
        """Shutdown: persist tombstones and the mutable parts (no sealing) so the next load is
        one snapshot read per index instead of one storage read per unsealed memory."""
        with st.maint_lock:
            if st.deleted or not st.loaded:
                return
            with st.lock:
                seq = st.seq
                vi, ki = st.vindex, st.kindex
            if vi is None or ki is None:
                return
            if vi.persist() and ki.persist():
                self._record_idx_seq(st, seq)

    def _record_idx_seq(self, st: AgentState, seq: int) -> None:
        """Called with st.maint_lock held, after both indexes persisted everything up to seq."""
        if seq != st.idx_seq and not st.deleted:
            b = self.storage.batch()
            b.put(CF_META, meta_idx_key(st.qa), str(seq).encode())
            self.storage.write(b)
            st.idx_seq = seq
            self._trim_journal(st)

    def _snapshot_catalogue(self, st: AgentState, force: bool) -> None:
        with st.maint_lock:
            if st.deleted or not st.loaded or (not force and st.seq - st.cat_seq < 1) or st.seq == st.cat_seq:
                return
            if not force and st.seq - st.cat_seq < _CAT_SNAPSHOT_EVERY and not self._closed:
                return
            seq, blob = catalogue_snapshot_bytes(st)
            self.snapshots.put(cat_snapshot_name(st.qa), blob)
            st.cat_seq = seq
            self._trim_journal(st)

    def _trim_journal(self, st: AgentState) -> None:
        upto = min(st.cat_seq, st.idx_seq)
        if upto <= 0:
            return
        b = self.storage.batch()
        b.ops.append((Batch.RANGE, CF_JOURNAL, agent_prefix(st.qa), journal_key(st.qa, upto + 1)))
        self.storage.write(b)

    def _flush_access(self) -> None:
        with self._access_lock:
            dirty, self._access_dirty = self._access_dirty, {}
        for agent_id, ids in dirty.items():
            with self._agents_lock:
                st = self._agents.get(agent_id)
            if st is None or not st.loaded or st.deleted:
                continue
            # In chunks, each under the agent lock (a record's read-modify-write must not interleave
            # with an update of it) but never for long: recalls wait for this lock.
            ordered = sorted(ids)
            futures: builtins.list[Future[None]] = []
            for start in range(0, len(ordered), _ACCESS_FLUSH_CHUNK):
                b = self.storage.batch()
                with st.lock:
                    live = [mid for mid in ordered[start : start + _ACCESS_FLUSH_CHUNK] if mid in st.entries]
                    touched = []
                    for mid, m in self._read_many(st, live).items():  # carrying the live counters
                        b.put(CF_RECORDS, rec_key(st.qa, mid), codec.memory_to_bytes(m))
                        touched.append(mid)
                    if not touched:
                        continue
                    futures.append(self._enqueue(st, b, touched))
            for fut in futures:  # written in order, by one group commit when they are quick
                self._await(st, fut)


# --- helpers ----------------------------------------------------------------------------------
def _configured_model_id(config: EngineConfig) -> str:
    from .embedding import model_spec_from_dir

    if config.embedding_model_path is not None:
        return model_spec_from_dir(Path(config.embedding_model_path)).model_id
    precision = DEFAULT_PRECISION if config.embedding_precision == "auto" else config.embedding_precision
    if precision in ("int8", "float32"):
        return bundled_model_id("float32" if precision == "float32" else "int8")
    raise InvalidArgument(f"embedding_precision must be auto, int8 or float32, not {precision!r}")


def _default_cache_dir() -> Path:
    import os

    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "engram"


def _hist_key(qa: str, mid: str, version: int) -> bytes:
    return rec_key(qa, mid) + b"\x00v%010d" % version


def _check_tags(tags: Any) -> builtins.list[str]:
    if not isinstance(tags, (list, tuple)):
        raise InvalidArgument("tags must be a list of strings", field="tags")
    out: builtins.list[str] = []
    for t in tags:
        if not isinstance(t, str) or not t:
            raise InvalidArgument("tags must be non-empty strings", field="tags")
        if t not in out:
            out.append(t)
    return out


def _check_metadata(meta: Any) -> dict[str, Any]:
    if meta is None:
        return {}
    if not isinstance(meta, dict) or not all(isinstance(k, str) for k in meta):
        raise InvalidArgument("metadata must be an object with string keys", field="metadata")
    codec.canonical_json(meta, "metadata")
    out: dict[str, Any] = json.loads(json.dumps(meta))
    return out


def _expiry(ttl: float | None, expires_at: float | None, now: float) -> float | None:
    if ttl is not None:
        t = codec.check_number(ttl, "ttl_seconds", 0.0)
        if t > 0:
            return now + t
    if expires_at:
        return codec.check_number(expires_at, "expires_at", 0.0)
    return None


def _parse_order(order_by: str) -> tuple[str, bool]:
    parts = (order_by or "created_at desc").split()
    field = parts[0] if parts else "created_at"
    direction = parts[1].lower() if len(parts) > 1 else "desc"
    if field not in _ORDERS or direction not in ("asc", "desc") or len(parts) > 2:
        raise InvalidArgument(
            "order_by must be one of created_at, updated_at, importance, event_time followed by asc or desc",
            field="order_by",
        )
    return field, direction == "desc"


def _encode_token(last: tuple[float, str], fp: str) -> str:
    return base64.urlsafe_b64encode(codec.dumps({"k": [last[0], last[1]], "f": fp})).decode()


def _decode_token(token: str, fp: str) -> tuple[float, str]:
    try:
        d = json.loads(base64.urlsafe_b64decode(token.encode()))
        v, mid = d["k"]
        if d["f"] != fp:
            raise InvalidArgument(
                "page_token belongs to another query (agent, filter or order changed)", field="page_token"
            )
        return float(v), str(mid)
    except EngineError:
        raise
    except Exception:
        raise InvalidArgument("page_token is not valid", field="page_token") from None
