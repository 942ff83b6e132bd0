"""Lifecycle work over an agent's memories: expiry purge, near-duplicate grouping, re-embedding."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from . import codec
from .agent import meta_idx_key
from .ids import agent_key, agent_prefix, rec_key
from .models import DuplicateGroup
from .storage import CF_META, CF_RECORDS, CF_SNAPSHOTS, CF_VECTORS

if TYPE_CHECKING:
    from .engine import Engine

log = logging.getLogger(__name__)


def purge_expired(engine: Engine) -> int:
    """Delete expired memories (already invisible) of every agent that has any."""
    now = time.time()
    total = 0
    for _, v in engine.storage.scan(CF_META, b"agent/"):
        d = json.loads(v)
        min_exp = float(d.get("min_expires") or 0.0)
        if not min_exp or min_exp > now:
            continue
        st = engine._agent(d["agent_id"])
        with st.lock:
            ids = [e.id for e in st.entries.values() if not e.live(now)]
            if not ids:
                st.min_expires = min((e.expires_at for e in st.entries.values() if e.expires_at), default=0.0)
                continue
            fut, token = engine._delete_locked(st, ids)
            st.min_expires = min((e.expires_at for e in st.entries.values() if e.expires_at), default=0.0)
        engine._await(st, fut, token, ids)
        total += len(ids)
    if total:
        log.info("purged %d expired memories", total)
    return total


def find_duplicate_groups(
    ids: list[str], mat: np.ndarray, threshold: float, key: Callable[[str], Any]
) -> list[DuplicateGroup]:
    """Greedy grouping: the best keeper candidate first takes every unassigned memory with
    cosine >= threshold to it. Row blocks keep memory at O(block * n)."""
    order = sorted(range(len(ids)), key=lambda i: key(ids[i]))
    assigned = np.zeros(len(ids), dtype=bool)
    groups: list[DuplicateGroup] = []
    block = 256
    for start in range(0, len(order), block):
        rows = order[start : start + block]
        sims = mat[rows] @ mat.T
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


def reembed_agent(engine: Engine, agent_id: str, embedder: Any) -> int:
    """Rewrite every vector of one agent with `embedder`; drop its vector snapshots so the
    index is rebuilt from the new vectors on next load."""
    qa = agent_key(agent_id)
    st = engine._agents.get(agent_id)
    if st is not None:
        engine._evict(st)
    n = 0
    batch_ids: list[str] = []
    texts: list[str] = []

    def flush() -> None:
        nonlocal n
        vecs = embedder.embed_documents(texts)
        b = engine.storage.batch()
        for mid, v in zip(batch_ids, vecs, strict=True):
            b.put(CF_VECTORS, rec_key(qa, mid), codec.vector_to_bytes(embedder.model_id, v), compress=False)
        engine.storage.write(b)
        n += len(batch_ids)
        batch_ids.clear()
        texts.clear()

    prefix = agent_prefix(qa)
    for k, v in engine.storage.scan(CF_RECORDS, prefix):
        batch_ids.append(k[len(prefix) :].decode())
        texts.append(codec.memory_from_bytes(v).content)
        if len(batch_ids) >= 128:
            flush()
    if batch_ids:
        flush()
    b = engine.storage.batch()
    b.delete_prefix(CF_SNAPSHOTS, f"vec/{qa}/".encode())
    b.delete(CF_META, meta_idx_key(qa))
    engine.storage.write(b)
    return n
