"""Bulk work on an agent: export, import, and consolidation of near-duplicates."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import numpy as np

from . import clock, codec
from .agent import AgentState
from .agent_store import AgentStore, now
from .catalogue import Entry, compile_filter
from .events import EventLog
from .models import DuplicateGroup, EventType, Link, Memory, MemoryFilter
from .storage import CF_HISTORY, CF_LINKS, CF_RECORDS, CF_VECTORS
from .writes import Writes

IMPORT_CHUNK = 64  # records embedded and written per batch
CANDIDATE_MARGIN = 0.15  # consolidation: stored vectors propose groups this far below the threshold
EXPORT_CHUNK = 256  # records read per hold of the agent lock


class Bulk:
    def __init__(self, agents: AgentStore, writes: Writes, events: EventLog) -> None:
        self._agents = agents
        self._writes = writes
        self._events = events

    def export(self, agent_id: str, flt: MemoryFilter) -> Iterator[Memory]:
        """Every live memory of the agent matching flt (all fields), in id order."""
        pred = compile_filter(flt)
        agents = self._agents
        st = agents.get(agent_id)
        t = time.time()
        with st.lock:
            ids = sorted(e.id for e in st.entries.values() if e.live(t) and (pred is None or pred(e)))

        def gen() -> Iterator[Memory]:
            for i in range(0, len(ids), EXPORT_CHUNK):
                chunk = ids[i : i + EXPORT_CHUNK]
                with st.lock:
                    recs = agents.read_many(st, chunk, strict=True)
                for mid in chunk:
                    if mid in recs:
                        yield recs[mid]

        return gen()

    def import_memories(self, agent_id: str, memories: list[Memory]) -> tuple[int, int]:
        """Import full records into the agent, keeping ids, times and versions, embedded with
        this server's model. Idempotent by id: an id the agent holds is skipped. Returns
        (imported, skipped)."""
        imported = skipped = 0
        t = now()
        records = []
        for src in memories:
            m = replace(src, agent_id=agent_id, tags=list(src.tags), metadata=dict(src.metadata))
            m.created_at = m.created_at or t
            m.updated_at = m.updated_at or m.created_at
            m.event_time = m.event_time or m.created_at
            m.version = max(1, m.version)
            records.append(m)
        for i in range(0, len(records), IMPORT_CHUNK):
            for _, created in self._writes.store_records(records[i : i + IMPORT_CHUNK], skip_existing=True):
                if created:
                    imported += 1
                else:
                    skipped += 1
        return imported, skipped

    # --- consolidation -----------------------------------------------------------------------
    def consolidate(self, agent_id: str, similarity_threshold: float, dry_run: bool = True) -> list[DuplicateGroup]:
        """Find near-duplicates; unless dry_run, merge each group into its keeper (history kept).

        Two passes, as for NEAR duplicates at store time (writes.py): the stored vectors (which
        carry session context) propose groups at a lower threshold; the texts of the proposed
        memories are embedded again and their own vectors decide. Texts equal once normalised
        (catalogue.normalise_content) count as similarity 1."""
        agents = self._agents
        st = agents.get(agent_id)
        t = clock.now()
        with st.lock:
            live = [e for e in st.entries.values() if e.live(t)]
        ids = [e.id for e in live]
        vecs = self._vectors(st, ids)
        ids = [i for i in ids if i in vecs]
        if len(ids) < 2:
            return []
        # Keeper: most important, then the oldest (the one others most likely refer to).
        rank = {e.id: (-e.importance, e.created_at, e.id) for e in live}
        hashes = {e.id: e.content_h for e in live}
        floor = max(0.0, similarity_threshold - CANDIDATE_MARGIN)
        proposed = find_duplicate_groups(ids, np.stack([vecs[i] for i in ids]), floor, key=lambda mid: rank[mid])
        members = sorted({mid for g in proposed for mid in (g.keep_id, *g.duplicate_ids)}, key=lambda mid: rank[mid])
        if len(members) < 2:
            return []
        with st.lock:
            found = agents.read_many(st, members)
        members = [mid for mid in members if mid in found]
        own = np.asarray(self._writes.embed([found[mid].content for mid in members]), dtype=np.float32)
        h = np.array([hashes[mid] for mid in members], dtype=np.int64)
        groups = find_duplicate_groups(
            members, own, similarity_threshold, key=lambda mid: rank[mid], same=h[:, None] == h[None, :]
        )
        if dry_run:
            return groups
        return [g for g in groups if self._merge(st, g)]

    def _vectors(self, st: AgentState, ids: list[str]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for i in range(0, len(ids), 4096):
            chunk = ids[i : i + 4096]
            vals = self._agents.storage.multi_get(CF_VECTORS, [st.keys.record(m) for m in chunk])
            for mid, v in zip(chunk, vals, strict=True):
                if v is not None:
                    out[mid] = codec.vector_from_bytes(v)[1]
        return out

    def _merge(self, st: AgentState, g: DuplicateGroup) -> bool:
        agents = self._agents
        t = now()
        token = object()
        b = agents.storage.batch()
        with st.lock:
            keeper = agents.read(st, g.keep_id)
            dups = [d for d in (agents.read(st, mid) for mid in g.duplicate_ids) if d is not None]
            if keeper is None or not dups:
                return False
            new = replace(keeper, tags=list(keeper.tags), metadata=dict(keeper.metadata))
            for d in dups:
                new.tags += [x for x in d.tags if x not in new.tags]
                new.metadata = {**d.metadata, **new.metadata}
                new.importance = max(new.importance, d.importance)
                new.access_count += d.access_count
            new.version = keeper.version + 1
            new.updated_at = t
            b.put(CF_HISTORY, st.keys.history(keeper.id, keeper.version), codec.memory_to_bytes(keeper))
            for d in dups:  # merged memories stay readable in the keeper's history
                b.put(CF_HISTORY, st.keys.merged(keeper.id, d.id), codec.memory_to_bytes(d))
            body = codec.memory_to_bytes(new)
            b.put(CF_RECORDS, st.keys.record(keeper.id), body)
            self._events.add(b, st.qa, EventType.UPDATED, new.agent_id, new.id, new.version, new, t)
            relinks: list[Link] = []
            dup_ids = {d.id for d in dups}
            for d in dups:
                for link in st.links_of(d.id):
                    s = keeper.id if link.source_id in dup_ids else link.source_id
                    tg = keeper.id if link.target_id in dup_ids else link.target_id
                    if s != tg:
                        relinks.append(replace(link, source_id=s, target_id=tg))
            st.put_entry(Entry.of(new, len(body)))
            st.pending[keeper.id] = (token, new)
            fut1 = agents.commit(st, b, [keeper.id])
            fut2, token2 = self._writes.delete_locked(st, [d.id for d in dups])
            b3 = agents.storage.batch()
            for link in relinks:
                b3.put(CF_LINKS, st.keys.link(link.source_id, link.target_id, link.relation), codec.link_to_bytes(link))
                st.add_link(link)
            fut3 = agents.commit(st, b3, [])
        agents.wait(st, fut1, token, [keeper.id])
        agents.wait(st, fut2, token2, [d.id for d in dups])
        agents.wait(st, fut3)
        return True


def find_duplicate_groups(
    ids: list[str], mat: np.ndarray, threshold: float, key: Callable[[str], Any], same: np.ndarray | None = None
) -> list[DuplicateGroup]:
    """Greedy grouping: the best keeper candidate first takes every unassigned memory with
    cosine >= threshold to it. Row blocks keep memory at O(block * n). `same`: a boolean n x n
    matrix of pairs that are duplicates whatever their cosine (similarity 1)."""
    order = sorted(range(len(ids)), key=lambda i: key(ids[i]))
    assigned = np.zeros(len(ids), dtype=bool)
    groups: list[DuplicateGroup] = []
    block = 256
    for start in range(0, len(order), block):
        rows = order[start : start + block]
        sims = mat[rows] @ mat.T
        if same is not None:
            sims = np.where(same[rows], np.float32(1.0), sims)
        for r, i in enumerate(rows):
            if assigned[i]:
                continue
            cand = np.flatnonzero((sims[r] >= threshold) & ~assigned)
            cand = cand[cand != i]
            if len(cand) == 0:
                continue
            assigned[i] = True
            assigned[cand] = True
            dup_order = sorted(cand.tolist(), key=lambda j: key(ids[j]))
            groups.append(DuplicateGroup(ids[i], [ids[j] for j in dup_order], float(sims[r][cand].min())))
    return groups
