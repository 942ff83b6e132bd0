"""Background maintenance: access-count flushes, expiry purges, index sealing and snapshots,
catalogue snapshots, journal trimming; and re-embedding when the model changes.

One daemon thread runs `run_round` every `background_interval_seconds` (access counts every
`access_flush_seconds`). It never holds an agent's lock for long, and `stop()` makes it return
between agents so that a shutdown is not held up by index work (what is not done resumes on the
next start: the journal keeps every change).
"""

from __future__ import annotations

import json
import logging
import threading
import time

import numpy as np

from . import codec
from .access import AccessTracker
from .agent import AgentState, catalogue_snapshot_bytes
from .agent_store import AgentStore
from .config import EngineConfig
from .context_embedding import contextualise, mix
from .directory import AGENT_RECORDS
from .events import EventLog
from .lazy_embedder import LazyEmbedder, TextEmbedder
from .models import EventType
from .storage import CF_JOURNAL, CF_META, CF_RECORDS, CF_SNAPSHOTS, CF_VECTORS, Batch
from .writes import META_EMBEDDING, Writes

log = logging.getLogger(__name__)

META_BG = b"bg_state"
CAT_SNAPSHOT_EVERY = 2000  # journal entries before the background rewrites a catalogue snapshot
REEMBED_CHUNK = 128


class Maintenance:
    def __init__(
        self,
        agents: AgentStore,
        writes: Writes,
        access: AccessTracker,
        embedder: LazyEmbedder,
        config: EngineConfig,
        events: EventLog,
    ) -> None:
        self._agents = agents
        self._events = events
        self._storage = agents.storage
        self._writes = writes
        self._access = access
        self._embedder = embedder
        self._config = config
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        raw = self._storage.get(CF_META, META_BG)
        self.state: dict[str, float] = json.loads(raw) if raw else {}

    # --- the thread --------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="engram-background", daemon=True)
        self._thread.start()

    def request_stop(self) -> None:
        """Ask the thread to return at its next check (between agents, between steps)."""
        self._stop.set()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)
            if self._thread.is_alive():
                log.warning("background maintenance did not stop within %.0f s; closing anyway", timeout)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def _loop(self) -> None:
        interval = max(0.05, self._config.background_interval_seconds)
        flush_every = max(0.05, min(self._config.access_flush_seconds, interval))
        last_heavy = time.monotonic()
        while not self._stop.wait(flush_every):
            try:
                self._access.flush()
                if time.monotonic() - last_heavy >= interval:
                    last_heavy = time.monotonic()
                    self.run_round()
            except Exception:
                if not self._stop.is_set():
                    log.exception("background maintenance failed; retrying next round")

    # --- one round ---------------------------------------------------------------------------
    def run_round(self) -> None:
        """Purge expired memories, seal and persist indexes, snapshot catalogues, trim journals.
        Safe to call any time (tests call it directly)."""
        self._access.flush()
        purged = self.purge_expired()
        dropped = self._events.prune()
        if dropped:
            log.info("dropped %d changes past the change stream's retention", dropped)
        for st in self._agents.loaded():
            if self._stop.is_set():
                return
            self._index_maintenance(st)
            self.snapshot_catalogue(st, force=False)
        refreshed = self.refresh_stale_agents()
        if self._stop.is_set():
            return  # closing (the index work above was abandoned): the next start runs a round
        self.state = {"last_run": time.time(), "last_purged": float(purged), "last_reembedded": float(refreshed)}
        b = self._storage.batch()
        b.put(CF_META, META_BG, codec.dumps(self.state))
        self._storage.write(b)

    def purge_expired(self) -> int:
        """Delete expired memories (already invisible) of every agent that has any."""
        t = time.time()
        total = 0
        for _, v in self._storage.scan(CF_META, AGENT_RECORDS):
            d = json.loads(v)
            min_exp = float(d.get("min_expires") or 0.0)
            if not min_exp or min_exp > t:
                continue
            st = self._agents.get(d["agent_id"])
            with st.lock:
                ids = [e.id for e in st.entries.values() if not e.live(t)]
                if not ids:
                    st.min_expires = min((e.expires_at for e in st.entries.values() if e.expires_at), default=0.0)
                    continue
                fut, token = self._writes.delete_locked(st, ids, EventType.EXPIRED)
                st.min_expires = min((e.expires_at for e in st.entries.values() if e.expires_at), default=0.0)
            self._agents.wait(st, fut, token, ids)
            total += len(ids)
        if total:
            log.info("purged %d expired memories", total)
        return total

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

    def persist_indexes(self, st: AgentState) -> None:
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
            b = self._storage.batch()
            b.put(CF_META, st.keys.meta_index_seq, str(seq).encode())
            self._storage.write(b)
            st.idx_seq = seq
            self._trim_journal(st)

    def snapshot_catalogue(self, st: AgentState, force: bool, closing: bool = False) -> None:
        with st.maint_lock:
            if st.deleted or not st.loaded or (not force and st.seq - st.cat_seq < 1) or st.seq == st.cat_seq:
                return
            if not force and st.seq - st.cat_seq < CAT_SNAPSHOT_EVERY and not closing:
                return
            seq, blob = catalogue_snapshot_bytes(st)
            self._agents.snapshots.put(st.keys.catalogue_snapshot, blob)
            st.cat_seq = seq
            self._trim_journal(st)

    def _trim_journal(self, st: AgentState) -> None:
        upto = min(st.cat_seq, st.idx_seq)
        if upto <= 0:
            return
        b = self._storage.batch()
        b.ops.append((Batch.RANGE, CF_JOURNAL, st.keys.prefix, st.keys.journal(upto + 1)))
        self._storage.write(b)

    def final_flush(self) -> None:
        """At close: access counts, index parts and catalogues, so the next start loads fast."""
        self._access.flush()
        for st in self._agents.loaded():
            self.persist_indexes(st)
            self.snapshot_catalogue(st, force=False, closing=True)

    # --- re-embedding ------------------------------------------------------------------------
    def refresh_stale_agents(self) -> int:
        """Re-embed, while serving, the agents whose vectors another recipe made (a model of the
        same family, other context weights: Engine.recipe); returns the memories re-embedded.
        Recall meanwhile searches old and new vectors together, which that family's vectors
        allow. Stopped half-way (shutdown), an agent is finished after the next start."""
        current = self._agents.recipe
        stale = [
            str(d["agent_id"])
            for d in (json.loads(v) for _, v in self._storage.scan(CF_META, AGENT_RECORDS))
            if d.get("recipe", "") != current
        ]
        done = 0
        for agent_id in stale:
            if self._stop.is_set():
                break
            done += self._refresh_agent(self._agents.get(agent_id))
        return done

    def _refresh_agent(self, st: AgentState) -> int:
        agents = self._agents
        current = agents.recipe
        model_id = self._embedder.model_id
        weight = self._config.contextual_embedding_weight
        done = 0
        with st.maint_lock:
            with st.lock:
                if st.deleted or not st.loaded or st.recipe == current:
                    return 0
                # Session order: each memory's predecessor is re-embedded before it.
                order = sorted(
                    st.entries.values(), key=lambda e: (e.session == "", e.session, e.event_time, e.created_at, e.id)
                )
                ids = [e.id for e in order]
            for start in range(0, len(ids), REEMBED_CHUNK):
                if self._stop.is_set():
                    return done
                chunk = ids[start : start + REEMBED_CHUNK]
                with st.lock:
                    recs = agents.read_many(st, chunk)
                mems = [recs[mid] for mid in chunk if mid in recs]
                vecs = self._writes.embed([m.content for m in mems])
                b = self._storage.batch()
                with st.lock:
                    if st.deleted or not st.loaded:
                        return done
                    # A memory written meanwhile has a vector of today already.
                    fresh = [
                        i
                        for i, m in enumerate(mems)
                        if (e := st.entries.get(m.id)) is not None and e.updated_at == m.updated_at
                    ]
                    if not fresh:
                        continue
                    kept = [mems[i] for i in fresh]
                    new = contextualise(st, kept, vecs[fresh], weight)
                    for m, v in zip(kept, new, strict=True):
                        b.put(CF_VECTORS, st.keys.record(m.id), codec.vector_to_bytes(model_id, v), compress=False)
                    fut = agents.commit(st, b, [m.id for m in kept])
                    assert st.vindex is not None
                    st.vindex.add([m.id for m in kept], new)
                agents.wait(st, fut)
                done += len(kept)
            with st.lock:
                st.recipe = current
                fut = agents.commit(st, self._storage.batch(), [])  # the agent record, with its recipe
            agents.wait(st, fut)
        if done:
            log.info("re-embedded %d memories of an agent with %s", done, current)
        return done

    def reembed_all(self) -> int:
        """Re-embed every memory with the configured model (a model change is a migration).
        Resumable: each agent's vectors are rewritten, then the model id is recorded last."""
        emb = self._embedder.get()
        names = [json.loads(v)["agent_id"] for _, v in self._storage.scan(CF_META, AGENT_RECORDS)]
        total = sum(self._reembed_agent(agent_id, emb) for agent_id in names)
        b = self._storage.batch()
        b.put(CF_META, META_EMBEDDING, codec.dumps({"model_id": self._embedder.model_id, "dim": int(emb.dim)}))
        self._storage.write(b)
        log.info("re-embedded %d memories with %s", total, self._embedder.model_id)
        return total

    def _reembed_agent(self, agent_id: str, emb: TextEmbedder) -> int:
        """Rewrite every vector of one agent; drop its vector snapshots so that the index is
        rebuilt from the new vectors on its next load. Memories are embedded in session order,
        so each takes its predecessor's new vector as context, and its speaker's
        (context_embedding.py)."""
        keys = self._agents.keyspace.agent(agent_id)
        st = self._agents.cached(agent_id)
        if st is not None:
            self._agents.evict(st)
        weight = self._config.contextual_embedding_weight
        rows: list[tuple[str, float, float, str, str]] = []  # session, event_time, created_at, id, content
        for _, v in self._storage.scan(CF_RECORDS, keys.prefix):
            m = codec.memory_from_bytes(v)
            rows.append((m.session_id, m.event_time, m.created_at, m.id, m.content))
        rows.sort(key=lambda r: (r[0] == "", r[0], r[1], r[2], r[3]))  # sessions in time order, then the rest
        last: dict[str, np.ndarray] = {}
        for start in range(0, len(rows), REEMBED_CHUNK):
            chunk = rows[start : start + REEMBED_CHUNK]
            vecs = self._writes.speakers.embed(emb, [r[4] for r in chunk], self._config.speaker_embedding_weight)
            b = self._storage.batch()
            for (session, _, _, mid, _), own in zip(chunk, vecs, strict=True):
                vec = np.asarray(own, dtype=np.float32)
                if session:
                    vec = mix(vec, last.get(session), weight)
                    last[session] = vec
                b.put(CF_VECTORS, keys.record(mid), codec.vector_to_bytes(emb.model_id, vec), compress=False)
            self._storage.write(b)
        n = len(rows)
        b = self._storage.batch()
        b.delete_prefix(CF_SNAPSHOTS, keys.snapshot_prefixes[0].encode())
        b.delete(CF_META, keys.meta_index_seq)
        raw = self._storage.get(CF_META, keys.meta_agent)
        if raw is not None:  # its vectors are today's: nothing left for the background
            info = json.loads(raw)
            info["recipe"] = self._agents.recipe
            b.put(CF_META, keys.meta_agent, codec.dumps(info))
        self._storage.write(b)
        return n
