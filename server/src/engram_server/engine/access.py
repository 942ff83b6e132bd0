"""Access counts: kept in memory by every read, written into the records in the background.

A recall bumps its hits' counters in the catalogue at once (reads return them live) and marks
them dirty; `flush` rewrites the dirty records every `access_flush_seconds` and at close. A busy
working set's accesses coalesce into one rewrite per record per interval; a crash loses at most
one interval of counts, never a memory.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future

from . import codec
from .agent import AgentState
from .agent_store import AgentStore
from .storage import CF_RECORDS

FLUSH_CHUNK = 128  # records rewritten per hold of the agent lock


class AccessTracker:
    def __init__(self, agents: AgentStore) -> None:
        self._agents = agents
        self._lock = threading.Lock()
        self._dirty: dict[str, set[str]] = {}

    def touch(self, st: AgentState, ids: list[str], now: float) -> None:
        if not ids:
            return
        with st.lock:
            for mid in ids:
                e = st.entries.get(mid)
                if e is not None:
                    e.access_count += 1
                    e.last_accessed_at = now
        with self._lock:
            self._dirty.setdefault(st.agent_id, set()).update(ids)

    def forget_agent(self, agent_id: str) -> None:
        with self._lock:
            self._dirty.pop(agent_id, None)

    def flush(self) -> None:
        with self._lock:
            dirty, self._dirty = self._dirty, {}
        agents = self._agents
        for agent_id, ids in dirty.items():
            st = agents.cached(agent_id)
            if st is None or not st.loaded or st.deleted:
                continue
            # In chunks, each under the agent lock (a record's read-modify-write must not
            # interleave with an update of it) but never for long: recalls wait for this lock.
            ordered = sorted(ids)
            futures: list[Future[None]] = []
            for start in range(0, len(ordered), FLUSH_CHUNK):
                b = agents.storage.batch()
                with st.lock:
                    live = [mid for mid in ordered[start : start + FLUSH_CHUNK] if mid in st.entries]
                    touched = []
                    for mid, m in agents.read_many(st, live).items():  # carrying the live counters
                        b.put(CF_RECORDS, st.keys.record(mid), codec.memory_to_bytes(m))
                        touched.append(mid)
                    if not touched:
                        continue
                    futures.append(agents.commit(st, b, touched))
            for fut in futures:  # written in order, by one group commit when they are quick
                agents.wait(st, fut)
