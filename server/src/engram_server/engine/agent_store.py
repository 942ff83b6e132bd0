"""The agents in memory and how every change of one reaches storage.

Each part of the engine (writes, recall, graph, bulk, maintenance) works on an `AgentState` it
gets here, under that agent's lock, and commits through `commit` / `wait`:

* `commit(st, batch, ids)`, called with `st.lock` held: appends the agent's journal entry and
  agent record to the batch and hands it to the group-commit writer. Enqueue order is commit
  order, so writes to one agent stay ordered while concurrent writers share fsyncs.
* `wait(st, future, token, ids)`, called after releasing the lock: waits until the batch is
  synced. Until then readers see new values through `st.pending`; if the commit fails the agent
  is evicted and reloaded from storage on next use.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import replace
from typing import TYPE_CHECKING

from . import clock, codec
from .agent import AgentState, load_agent
from .catalogue import Entry
from .errors import DataCorrupted, FailedPrecondition, NotFound
from .keyspace import Keyspace
from .models import Memory
from .storage import CF_JOURNAL, CF_META, CF_RECORDS, Batch, SnapshotView, Storage

if TYPE_CHECKING:
    from .index_worker import IndexBuilder
    from .keyword_index import KeywordIndex
    from .lazy_embedder import LazyEmbedder
    from .vector_index import VectorIndex

log = logging.getLogger(__name__)


def now() -> float:
    """Wall-clock seconds at the microsecond (the precision stored and returned)."""
    return round(clock.now(), 6)


class AgentStore:
    def __init__(
        self,
        storage: Storage,
        keyspace: Keyspace,
        embedder: LazyEmbedder,
        builder: Callable[[], IndexBuilder],
        seal_threshold: int,
        recipe: str = "",
    ) -> None:
        self.storage = storage
        self.keyspace = keyspace
        self.snapshots = SnapshotView(storage)
        self._embedder = embedder
        self._builder = builder
        self._seal_threshold = seal_threshold
        self.recipe = recipe  # how new vectors are made (Engine); agents whose differ are re-embedded
        self._agents: dict[str, AgentState] = {}
        self._lock = threading.Lock()
        self.closed = False

    # --- the agents in memory ----------------------------------------------------------------
    def get(self, agent_id: str) -> AgentState:
        """The agent's state, loaded from storage on first use (also for a new agent)."""
        if self.closed:
            raise FailedPrecondition("the engine is closed")
        with self._lock:
            st = self._agents.get(agent_id)
            if st is None:
                st = AgentState(agent_id, self.keyspace.agent(agent_id))
                self._agents[agent_id] = st
        if not st.loaded:
            with st.load_lock:
                if not st.loaded:
                    load_agent(
                        st, self.storage, lambda: self._new_vindex(st), lambda: self._new_kindex(st), self.snapshots
                    )
                    if not st.persisted:
                        st.recipe = self.recipe  # a new agent's vectors are all made today
        return st

    def existing(self, agent_id: str) -> AgentState:
        """The agent's state; NotFound when it has never stored anything."""
        with self._lock:
            st = self._agents.get(agent_id)
        if st is None and self.storage.get(CF_META, self.keyspace.agent(agent_id).meta_agent) is None:
            raise NotFound(f"agent {agent_id} not found")
        st = self.get(agent_id)
        if not st.persisted:
            raise NotFound(f"agent {agent_id} not found")
        return st

    def cached(self, agent_id: str) -> AgentState | None:
        """The agent's state if it is in memory (loaded or loading), without loading it."""
        with self._lock:
            return self._agents.get(agent_id)

    def loaded(self) -> list[AgentState]:
        with self._lock:
            return [s for s in self._agents.values() if s.loaded and not s.deleted]

    def evict(self, st: AgentState) -> None:
        with self._lock:
            if self._agents.get(st.agent_id) is st:
                del self._agents[st.agent_id]

    def clear(self) -> None:
        with self._lock:
            self._agents.clear()

    def _new_vindex(self, st: AgentState) -> VectorIndex:
        from .vector_index import VectorIndex

        return VectorIndex(st.qa, self._embedder.dim, self.snapshots, self._builder(), self._seal_threshold)

    def _new_kindex(self, st: AgentState) -> KeywordIndex:
        from .keyword_index import KeywordIndex

        return KeywordIndex(st.qa, self.snapshots, self._seal_threshold)

    # --- commits -------------------------------------------------------------------------------
    def commit(self, st: AgentState, b: Batch, touched: Iterable[str]) -> Future[None]:
        """Called with st.lock held: journal + agent record, then hand the batch to the writer."""
        t = now()
        if not st.created_at:
            st.created_at = t
        st.last_activity_at = t
        ids = sorted(set(touched))
        if ids:
            st.seq += 1
            b.put(CF_JOURNAL, st.keys.journal(st.seq), codec.dumps(ids))
        b.put(CF_META, st.keys.meta_agent, codec.dumps(st.info()))
        st.persisted = True
        return self.storage.write_async(b)

    def wait(self, st: AgentState, fut: Future[None], token: object | None = None, ids: Iterable[str] = ()) -> None:
        try:
            fut.result()
        except BaseException:
            st.loaded = False  # in-memory state may be ahead of storage: reload from storage
            self.evict(st)
            raise
        if token is not None:
            with st.lock:
                for mid in ids:
                    p = st.pending.get(mid)
                    if p is not None and p[0] is token:
                        del st.pending[mid]

    @staticmethod
    def check_alive(st: AgentState) -> None:
        if st.deleted or not st.loaded:
            raise FailedPrecondition("the agent was deleted or reloaded concurrently; retry")

    # --- reads ---------------------------------------------------------------------------------
    @staticmethod
    def live_entry(st: AgentState, memory_id: str) -> Entry:
        e = st.entries.get(memory_id)
        if e is None or not e.live(time.time()):
            raise NotFound(f"memory {memory_id} not found")
        return e

    def read_live(self, st: AgentState, mid: str) -> Memory:
        """The current record of a live (present, unexpired) memory; NotFound otherwise. Caller
        holds st.lock."""
        self.live_entry(st, mid)
        m = self.read(st, mid)
        if m is None:
            raise NotFound(f"memory {mid} not found")
        return m

    def read(self, st: AgentState, mid: str) -> Memory | None:
        """Current record (pending overlay first), with the live access counters. Caller holds
        st.lock."""
        p = st.pending.get(mid)
        if p is not None:
            m = p[1]
        else:
            try:
                raw = self.storage.get(CF_RECORDS, st.keys.record(mid))
            except DataCorrupted:
                raise unreadable(mid) from None
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

    def read_many(self, st: AgentState, ids: list[str], strict: bool = False) -> dict[str, Memory]:
        """Current records of ids (pending overlay first), with the live access counters. One
        multi-get for those in storage; their freshly decoded records take the counters in place
        (a copy is only needed for the shared pending ones). Caller holds st.lock.

        A record corrupted on disk is left out (logged), so that a recall or a page still serves
        the agent's other memories; strict: DataCorrupted naming it instead (exports, which
        must be whole)."""
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
        keys = [st.keys.record(mid) for mid in missing]
        try:
            values = self.storage.multi_get(CF_RECORDS, keys)
        except DataCorrupted:  # one bad record must not take the others down: read one by one
            values = [self._get_record_or_skip(st, mid, k, strict) for mid, k in zip(missing, keys, strict=True)]
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

    def _get_record_or_skip(self, st: AgentState, mid: str, key: bytes, strict: bool) -> bytes | None:
        try:
            return self.storage.get(CF_RECORDS, key)
        except DataCorrupted as exc:
            if strict:
                raise unreadable(mid) from None
            log.error("memory %s of an agent is unreadable and left out: %s", mid, exc)
            return None


def unreadable(memory_id: str) -> DataCorrupted:
    return DataCorrupted(
        f"memory {memory_id} is corrupted on disk (its stored record fails its checks); the agent's other "
        "memories are unaffected. Restore it from a backup or export; `engram-server verify` lists every such record."
    )
