"""The write path: store, update, delete, forget.

Store: embed (no lock held) → under the agent's lock build one batch (record, vector, id
index, history, journal, agent record), enqueue it and apply it to the catalogue and the
indexes → release the lock → wait until the batch is synced (agent_store.py).
The service layer validates every request before it reaches this module.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import replace

import numpy as np

from . import codec
from .agent import AgentState
from .agent_store import AgentStore, now
from .catalogue import Entry, compile_filter
from .config import EngineConfig
from .context_embedding import SpeakerVectors, contextualise
from .errors import AlreadyExists, NotFound
from .ids import new_id
from .keyword_index import keyword_document
from .lazy_embedder import LazyEmbedder
from .models import ForgetResult, Memory, MemoryFilter, MemoryPatch, NewMemory
from .storage import CF_HISTORY, CF_ID_INDEX, CF_LINKS, CF_META, CF_RECORDS, CF_VECTORS

META_EMBEDDING = b"embedding"
FORGET_IDS_SHOWN = 1000  # ids a forget (or its dry run) lists


class Writes:
    def __init__(self, agents: AgentStore, embedder: LazyEmbedder, config: EngineConfig) -> None:
        self._agents = agents
        self._storage = agents.storage
        self._embedder = embedder
        self._config = config
        self.speakers = SpeakerVectors()  # speaker names' vectors (context_embedding.py)
        self._keyspace = agents.keyspace

    # --- store -------------------------------------------------------------------------------
    def store_batch(self, items: list[NewMemory]) -> list[tuple[Memory, bool]]:
        """Store memories of one agent in one synced batch, all or nothing. Returns (memory,
        created) per item: created is False when a client-supplied id already held the same
        content (an idempotent retry); the same id with other content is AlreadyExists."""
        if not items:
            return []
        t = now()
        mems = [self._new_record(it, t) for it in items]
        return self.store_records(mems)

    def _new_record(self, item: NewMemory, t: float) -> Memory:
        return Memory(
            id=item.id or new_id(),
            agent_id=item.agent_id,
            content=item.content,
            memory_type=item.memory_type,
            importance=item.importance,
            tags=list(item.tags),
            metadata=item.metadata,
            session_id=item.session_id,
            event_time=item.event_time if item.event_time is not None else t,
            created_at=t,
            updated_at=t,
            expires_at=item.expires_at,
            embedding_model=self._embedder.model_id,
        )

    def store_records(self, mems: list[Memory], skip_existing: bool = False) -> list[tuple[Memory, bool]]:
        """Store full records of one agent (times kept). skip_existing: an id the agent holds is
        left as it is and reported as not created (imports)."""
        agents = self._agents
        st = agents.get(mems[0].agent_id)
        results: list[tuple[Memory, bool] | None] = [None] * len(mems)
        claimed: list[str] = []
        try:
            # Ids are the agent's own: they are claimed under its lock while their store is under
            # way, so that two concurrent stores cannot both create one id.
            with st.lock:
                agents.check_alive(st)
                for i, m in enumerate(mems):
                    if m.id not in st.entries and m.id not in st.pending and m.id not in st.claimed:
                        st.claimed.add(m.id)
                        claimed.append(m.id)
                        continue
                    existing = None if m.id in st.claimed else agents.read(st, m.id)
                    if skip_existing or (existing is not None and existing.content == m.content):
                        results[i] = (existing or m, False)
                    else:
                        raise AlreadyExists(f"memory {m.id} already exists with different content")
            new = [m for i, m in enumerate(mems) if results[i] is None]
            if new:
                vecs = self.embed([m.content for m in new])
                self._write_new(st, new, vecs)
                it = iter(new)
                for i in range(len(results)):
                    if results[i] is None:
                        results[i] = (next(it), True)
        finally:
            if claimed:
                with st.lock:
                    st.claimed.difference_update(claimed)
        return [r for r in results if r is not None]

    def embed(self, contents: list[str]) -> np.ndarray:
        """The model's vectors of contents, each with its speaker's name mixed in."""
        return self.speakers.embed(self._embedder.get(), contents, self._config.speaker_embedding_weight)

    def _write_new(self, st: AgentState, mems: list[Memory], vecs: np.ndarray) -> None:
        agents = self._agents
        model_id = self._embedder.model_id
        b = self._storage.batch()
        token = object()
        with st.lock:
            agents.check_alive(st)
            # A memory's vector carries its session predecessor's (context_embedding.py).
            vecs = contextualise(st, mems, vecs, self._config.contextual_embedding_weight)
            if self._storage.get(CF_META, META_EMBEDDING) is None:
                b.put(CF_META, META_EMBEDDING, codec.dumps({"model_id": model_id, "dim": int(vecs.shape[1])}))
            sizes = []
            for m, v in zip(mems, vecs, strict=True):
                m.embedding_model = model_id
                body = codec.memory_to_bytes(m)
                sizes.append(len(body))
                k = st.keys.record(m.id)
                b.put(CF_RECORDS, k, body)
                b.put(CF_VECTORS, k, codec.vector_to_bytes(model_id, v), compress=False)
                b.put(CF_ID_INDEX, self._keyspace.id_entry(m.id, st.qa), m.agent_id.encode())
            for m, size in zip(mems, sizes, strict=True):
                st.put_entry(Entry.of(m, size))
                st.pending[m.id] = (token, m)
            fut = agents.commit(st, b, [m.id for m in mems])
            assert st.vindex is not None and st.kindex is not None
            st.vindex.add([m.id for m in mems], vecs)
            st.kindex.add([m.id for m in mems], [keyword_document(m.content, m.event_time) for m in mems])
        agents.wait(st, fut, token, [m.id for m in mems])

    # --- by id -------------------------------------------------------------------------------
    def update(self, agent_id: str, memory_id: str, patch: MemoryPatch) -> Memory:
        """A new version; the previous one goes to history. A content change re-embeds."""
        agents = self._agents
        st = agents.get(agent_id)
        vec = None
        if patch.content is not None:
            vec = self.embed([patch.content])
        t = now()
        b = self._storage.batch()
        token = object()
        with st.lock:
            agents.live_entry(st, memory_id)
            cur = agents.read(st, memory_id)
            if cur is None:
                raise NotFound(f"memory {memory_id} not found")
            new = self._apply_patch(cur, patch, t)
            if vec is not None and patch.content == cur.content:
                vec = None  # same text: keep the vector
            if vec is not None:
                vec = contextualise(st, [new], vec, self._config.contextual_embedding_weight)
            b.put(CF_HISTORY, st.keys.history(memory_id, cur.version), codec.memory_to_bytes(cur))
            body = codec.memory_to_bytes(new)
            b.put(CF_RECORDS, st.keys.record(memory_id), body)
            if vec is not None:
                b.put(
                    CF_VECTORS,
                    st.keys.record(memory_id),
                    codec.vector_to_bytes(self._embedder.model_id, vec[0]),
                    compress=False,
                )
            st.put_entry(Entry.of(new, len(body)))
            st.pending[memory_id] = (token, new)
            fut = agents.commit(st, b, [memory_id])
            assert st.vindex is not None and st.kindex is not None
            if vec is not None:
                st.vindex.add([memory_id], vec)
            if vec is not None or new.event_time != cur.event_time:
                st.kindex.add([memory_id], [keyword_document(new.content, new.event_time)])
        agents.wait(st, fut, token, [memory_id])
        return new

    def _apply_patch(self, cur: Memory, p: MemoryPatch, t: float) -> Memory:
        new = replace(cur, tags=list(cur.tags), metadata=dict(cur.metadata))
        if p.content is not None:
            new.content = p.content
        if p.memory_type is not None:
            new.memory_type = p.memory_type
        if p.importance is not None:
            new.importance = p.importance
        if p.tags is not None:
            new.tags = list(p.tags)
        if p.metadata is not None:
            new.metadata = p.metadata
        if p.session_id is not None:
            new.session_id = p.session_id
        if p.event_time is not None:
            new.event_time = p.event_time
        if p.expires_at is not None:
            new.expires_at = p.expires_at or None  # 0 clears the expiry
        new.version = cur.version + 1
        new.updated_at = t
        new.embedding_model = self._embedder.model_id
        return new

    def delete(self, agent_id: str, memory_id: str) -> Memory:
        """Delete a memory, its vector, keyword entry, links and history. Returns what was deleted."""
        agents = self._agents
        st = agents.get(agent_id)
        with st.lock:
            agents.live_entry(st, memory_id)
            cur = agents.read(st, memory_id)
            if cur is None:
                raise NotFound(f"memory {memory_id} not found")
            fut, token = self.delete_locked(st, [memory_id])
        agents.wait(st, fut, token, [memory_id])
        return cur

    def delete_locked(self, st: AgentState, ids: list[str]) -> tuple[Future[None], object]:
        """Delete ids of st (caller holds st.lock, then waits on the future with the token)."""
        b = self._storage.batch()
        token = object()
        for mid in ids:
            k = st.keys.record(mid)
            b.delete(CF_RECORDS, k)
            b.delete(CF_VECTORS, k)
            b.delete(CF_ID_INDEX, self._keyspace.id_entry(mid, st.qa))
            b.delete_prefix(CF_HISTORY, st.keys.history_prefix(mid))
            for link in st.links_of(mid):
                b.delete(CF_LINKS, st.keys.link(link.source_id, link.target_id, link.relation))
                st.remove_link((link.source_id, link.target_id, link.relation))
            st.drop_entry(mid)
            st.pending[mid] = (token, None)
        fut = self._agents.commit(st, b, ids)
        assert st.vindex is not None and st.kindex is not None
        st.vindex.remove(ids)
        st.kindex.remove(ids)
        return fut, token

    def forget(self, agent_id: str, flt: MemoryFilter, dry_run: bool = False) -> ForgetResult:
        """Delete every live memory matching a (non-empty) filter."""
        pred = compile_filter(flt)
        assert pred is not None, "forget needs a filter"
        st = self._agents.get(agent_id)
        t = now()
        with st.lock:
            ids = sorted(e.id for e in st.entries.values() if e.live(t) and pred(e))
            if dry_run or not ids:
                return ForgetResult(len(ids), 0, ids[:FORGET_IDS_SHOWN])
            fut, token = self.delete_locked(st, ids)
        self._agents.wait(st, fut, token, ids)
        return ForgetResult(len(ids), len(ids), ids[:FORGET_IDS_SHOWN])
