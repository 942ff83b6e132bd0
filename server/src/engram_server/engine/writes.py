"""The write path: store (with upserts and duplicate merging), update, delete, forget.

Store: plan each item under the agent's lock (claim its id or key) → embed (no lock held) →
under the lock build one batch (record, vector, id index, history, change events, journal, agent
record), enqueue it and apply it to the catalogue and the indexes → release the lock → wait until
the batch is synced (agent_store.py). Every change logs its event in the batch that makes it
(events.py). The service layer validates every request before it reaches this module.

Duplicates: under DuplicatePolicy.EXACT a new memory whose normalised text (catalogue.
normalise_content) equals a live memory's is merged into it; under NEAR, also one whose vector is
within the threshold. A merge keeps the existing id and makes a new version: the newer text (a
re-stated fact may have changed detail), the higher importance, the union of tags, metadata with
the newer values winning, the access count plus one; the old version goes to history.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, replace

import numpy as np

from . import clock, codec
from .agent import AgentState
from .agent_store import AgentStore, now
from .catalogue import Entry, compile_filter, content_hash, normalise_content
from .config import EngineConfig
from .context_embedding import SpeakerVectors, contextualise
from .errors import Aborted, AlreadyExists
from .events import EventLog
from .ids import new_id
from .keyword_index import keyword_document
from .lazy_embedder import LazyEmbedder
from .models import (
    DuplicatePolicy,
    EventType,
    ForgetResult,
    Memory,
    MemoryFilter,
    MemoryPatch,
    NewMemory,
    StoreOutcome,
)
from .storage import CF_HISTORY, CF_ID_INDEX, CF_LINKS, CF_META, CF_RECORDS, CF_VECTORS

META_EMBEDDING = b"embedding"
FORGET_IDS_SHOWN = 1000  # ids a forget (or its dry run) lists
# NEAR duplicates: the vector index's nearest few are candidates when their (contextual) vector is
# within this margin below the threshold; their own texts' vectors decide.
NEAR_CANDIDATES = 4
NEAR_CANDIDATE_MARGIN = 0.15


@dataclass
class _Plan:
    """What one store does (Writes.store_batch)."""

    item: NewMemory
    memory: Memory  # the new record; after the write, the memory as stored
    outcome: StoreOutcome
    target: str = ""  # the existing memory it replaces or merges into


def _merged(cur: Memory, new: Memory, t: float) -> Memory:
    """A duplicate `new` folded into `cur` (same id, a new version)."""
    out = replace(cur, tags=list(cur.tags), metadata={**cur.metadata, **new.metadata})
    out.content = new.content
    out.importance = max(cur.importance, new.importance)
    out.tags += [x for x in new.tags if x not in out.tags]
    # Whichever lives longer: None (never) outlives any time.
    out.expires_at = None if cur.expires_at is None or new.expires_at is None else max(cur.expires_at, new.expires_at)
    out.access_count = cur.access_count + 1
    out.last_accessed_at = t
    out.version = cur.version + 1
    out.updated_at = t
    return out


def _replaced(cur: Memory, new: Memory, t: float) -> Memory:
    """An upsert: every field from `new`, identity and counters from `cur`."""
    return replace(
        new,
        id=cur.id,
        created_at=cur.created_at,
        updated_at=t,
        access_count=cur.access_count,
        last_accessed_at=cur.last_accessed_at,
        version=cur.version + 1,
    )


class Writes:
    def __init__(self, agents: AgentStore, embedder: LazyEmbedder, config: EngineConfig, events: EventLog) -> None:
        self._agents = agents
        self._storage = agents.storage
        self._embedder = embedder
        self._config = config
        self._events = events
        self.speakers = SpeakerVectors()  # speaker names' vectors (context_embedding.py)
        self._keyspace = agents.keyspace

    # --- store -------------------------------------------------------------------------------
    def store_batch(self, items: list[NewMemory]) -> list[tuple[Memory, StoreOutcome]]:
        """Store memories of one agent in one synced batch, all or nothing. Per item:

        * a `key` the agent already uses: that memory is replaced (REPLACED);
        * a client-supplied `id` the agent holds: the same content is a retry (UNCHANGED), other
          content is AlreadyExists;
        * otherwise, under the item's duplicate policy, the same text (EXACT) or a vector within
          the threshold (NEAR) of a live memory merges into it (MERGED);
        * else a new memory (CREATED).

        A store with an `id` or a `key` is never merged as a duplicate: the caller named the memory."""
        if not items:
            return []
        t = now()
        st = self._agents.get(items[0].agent_id)
        plans: list[_Plan] = []
        claimed_ids: list[str] = []
        claimed_keys: list[str] = []
        try:
            with st.lock:
                self._agents.check_alive(st)
                for it in items:
                    plans.append(self._plan(st, it, self._new_record(it, t), claimed_ids, claimed_keys))
            todo = [p for p in plans if p.outcome is not StoreOutcome.UNCHANGED]
            if todo:
                vecs = self.embed([p.memory.content for p in todo])
                near = self._near_candidates(st, todo, vecs)
                self._write_plans(st, todo, vecs, near, t)
        finally:
            if claimed_ids or claimed_keys:
                with st.lock:
                    st.claimed.difference_update(claimed_ids)
                    st.claimed_keys.difference_update(claimed_keys)
        return [(p.memory, p.outcome) for p in plans]

    def _plan(self, st: AgentState, it: NewMemory, m: Memory, claimed_ids: list[str], claimed_keys: list[str]) -> _Plan:
        """What a store will do, decided under st.lock; its id or key is claimed until it is written."""
        if it.key:
            if it.key in st.claimed_keys:
                raise Aborted(f"another store with key {it.key!r} is under way for this agent; retry")
            st.claimed_keys.add(it.key)
            claimed_keys.append(it.key)
            target = st.by_key.get(it.key)
            if target is not None:
                m.id = target
                return _Plan(it, m, StoreOutcome.REPLACED, target)
            return _Plan(it, m, StoreOutcome.CREATED)
        if it.id:
            if m.id not in st.entries and m.id not in st.pending and m.id not in st.claimed:
                st.claimed.add(m.id)
                claimed_ids.append(m.id)
                return _Plan(it, m, StoreOutcome.CREATED)
            existing = None if m.id in st.claimed else self._agents.read(st, m.id)
            if existing is not None and existing.content == m.content:
                return _Plan(it, existing, StoreOutcome.UNCHANGED)
            raise AlreadyExists(f"memory {m.id} already exists with different content")
        return _Plan(it, m, StoreOutcome.CREATED)

    def _near_candidates(self, st: AgentState, plans: list[_Plan], vecs: np.ndarray) -> dict[int, tuple[str, float]]:
        """For each new memory under the NEAR policy, the live memory closest to it, when within
        its threshold. The index holds contextual vectors (a session memory's carries its
        predecessor's), so its nearest few are candidates only: their texts are embedded again and
        compared with the new text's own vector."""
        asks = [
            i
            for i, p in enumerate(plans)
            if p.outcome is StoreOutcome.CREATED
            and not p.item.id
            and not p.item.key
            and p.item.duplicate_policy is DuplicatePolicy.NEAR
        ]
        if not asks or st.vindex is None:
            return {}
        t = clock.now()
        entries = st.entries

        def live(mid: str) -> bool:
            e = entries.get(mid)
            return e is not None and e.live(t)

        cands: dict[int, list[str]] = {}
        for i in asks:
            floor = plans[i].item.duplicate_threshold - NEAR_CANDIDATE_MARGIN
            hits = st.vindex.search(vecs[i], NEAR_CANDIDATES, live)
            cands[i] = [mid for mid, score in hits if score >= floor]
        wanted = sorted({mid for ids in cands.values() for mid in ids})
        if not wanted:
            return {}
        with st.lock:
            found = self._agents.read_many(st, wanted)
        ids = [mid for mid in wanted if mid in found]
        if not ids:
            return {}
        own = dict(zip(ids, self.embed([found[mid].content for mid in ids]), strict=True))
        out: dict[int, tuple[str, float]] = {}
        for i, mids in cands.items():
            best = max(
                ((mid, float(own[mid] @ vecs[i])) for mid in mids if mid in own), key=lambda x: x[1], default=None
            )
            if best is not None and best[1] >= plans[i].item.duplicate_threshold:
                out[i] = best
        return out

    def _write_plans(
        self, st: AgentState, plans: list[_Plan], vecs: np.ndarray, near: dict[int, tuple[str, float]], t: float
    ) -> None:
        """Write every plan in one batch (under st.lock), then wait for it to be synced."""
        agents = self._agents
        model_id = self._embedder.model_id
        w = self._config.contextual_embedding_weight
        b = self._storage.batch()
        token = object()
        touched: list[str] = []
        new_ids: list[str] = []
        new_vecs: list[np.ndarray] = []
        upd_ids: list[str] = []
        upd_vecs: list[np.ndarray] = []
        kw_ids: list[str] = []
        kw_docs: list[str] = []
        with st.lock:
            agents.check_alive(st)
            if self._storage.get(CF_META, META_EMBEDDING) is None:
                b.put(CF_META, META_EMBEDDING, codec.dumps({"model_id": model_id, "dim": int(vecs.shape[1])}))
            creates = [i for i, p in enumerate(plans) if p.outcome is StoreOutcome.CREATED]
            ctx = contextualise(st, [plans[i].memory for i in creates], vecs[creates], w) if creates else vecs[:0]
            ctx_of = dict(zip(creates, ctx, strict=True))
            for i, p in enumerate(plans):
                if p.outcome is StoreOutcome.CREATED:
                    target = self._duplicate_of(st, p, near.get(i), t)
                    if target is not None:
                        p.outcome, p.target = StoreOutcome.MERGED, target
                cur = agents.read(st, p.target) if p.target else None
                if p.outcome is StoreOutcome.REPLACED and cur is None:  # deleted meanwhile: a new one
                    p.outcome, p.target = StoreOutcome.CREATED, ""
                if p.outcome is StoreOutcome.CREATED:
                    m = p.memory
                    m.embedding_model = model_id
                    body = codec.memory_to_bytes(m)
                    k = st.keys.record(m.id)
                    b.put(CF_RECORDS, k, body)
                    b.put(CF_VECTORS, k, codec.vector_to_bytes(model_id, ctx_of[i]), compress=False)
                    b.put(CF_ID_INDEX, self._keyspace.id_entry(m.id, st.qa), m.agent_id.encode())
                    self._events.add(b, st.qa, EventType.CREATED, m.agent_id, m.id, m.version, m, t)
                    st.put_entry(Entry.of(m, len(body)))
                    st.pending[m.id] = (token, m)
                    new_ids.append(m.id)
                    new_vecs.append(ctx_of[i])
                    kw_ids.append(m.id)
                    kw_docs.append(keyword_document(m.content, m.event_time))
                    touched.append(m.id)
                    continue
                assert cur is not None
                out = _replaced(cur, p.memory, t) if p.outcome is StoreOutcome.REPLACED else _merged(cur, p.memory, t)
                out.embedding_model = model_id
                b.put(CF_HISTORY, st.keys.history(cur.id, cur.version), codec.memory_to_bytes(cur))
                body = codec.memory_to_bytes(out)
                b.put(CF_RECORDS, st.keys.record(cur.id), body)
                if out.content != cur.content or out.session_id != cur.session_id:
                    v = contextualise(st, [out], vecs[i : i + 1], w)[0]
                    b.put(CF_VECTORS, st.keys.record(cur.id), codec.vector_to_bytes(model_id, v), compress=False)
                    upd_ids.append(cur.id)
                    upd_vecs.append(v)
                if out.content != cur.content or out.event_time != cur.event_time:
                    kw_ids.append(cur.id)
                    kw_docs.append(keyword_document(out.content, out.event_time))
                self._events.add(b, st.qa, EventType.UPDATED, out.agent_id, out.id, out.version, out, t)
                st.put_entry(Entry.of(out, len(body)))
                st.pending[cur.id] = (token, out)
                p.memory = out
                touched.append(cur.id)
            fut = agents.commit(st, b, touched)
            assert st.vindex is not None and st.kindex is not None
            if new_ids:
                st.vindex.add(new_ids, np.stack(new_vecs))
            if upd_ids:
                st.vindex.add(upd_ids, np.stack(upd_vecs))
            if kw_ids:
                st.kindex.add(kw_ids, kw_docs)
        agents.wait(st, fut, token, touched)

    def _duplicate_of(self, st: AgentState, p: _Plan, near: tuple[str, float] | None, t: float) -> str | None:
        """The live memory a new one duplicates under its policy, or None (caller holds st.lock).
        Checked here, under the lock that writes it, so two racing stores of one text make one
        memory."""
        it = p.item
        if it.id or it.key or it.duplicate_policy is DuplicatePolicy.OFF:
            return None
        cid = st.by_content.get(content_hash(p.memory.content))
        if cid is not None and cid != p.memory.id:
            e = st.entries.get(cid)
            cur = self._agents.read(st, cid) if e is not None and e.live(t) else None
            if cur is not None and normalise_content(cur.content) == normalise_content(p.memory.content):
                return cid
        if near is not None:
            e = st.entries.get(near[0])
            if e is not None and e.live(t):
                return near[0]
        return None

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
            key=item.key,
        )

    def store_records(self, mems: list[Memory], skip_existing: bool = False) -> list[tuple[Memory, bool]]:
        """Store full records of one agent (times kept; imports). skip_existing: an id the agent
        holds is left as it is and reported as not created. No duplicate detection: an import
        restores what was exported."""
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
                        if m.key and st.by_key.get(m.key, m.id) != m.id:
                            raise AlreadyExists(f"memory {m.id}: the agent already has a memory with key {m.key!r}")
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
                self._events.add(b, st.qa, EventType.CREATED, m.agent_id, m.id, m.version, m)
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
            cur = agents.read_live(st, memory_id)
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
            self._events.add(b, st.qa, EventType.UPDATED, agent_id, memory_id, new.version, new, t)
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
            cur = agents.read_live(st, memory_id)
            fut, token = self.delete_locked(st, [memory_id])
        agents.wait(st, fut, token, [memory_id])
        return cur

    def delete_locked(
        self, st: AgentState, ids: list[str], why: EventType = EventType.DELETED
    ) -> tuple[Future[None], object]:
        """Delete ids of st (caller holds st.lock, then waits on the future with the token).
        `why`: the change event logged for each (DELETED, or EXPIRED for the expiry purge)."""
        b = self._storage.batch()
        token = object()
        t = now()
        for mid in ids:
            e = st.entries.get(mid)
            self._events.add(b, st.qa, why, st.agent_id, mid, e.version if e is not None else 0, None, t)
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
