"""The agents of a data directory: list, inspect, erase."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

from . import clock
from .access import AccessTracker
from .agent import AgentState
from .agent_store import AgentStore
from .errors import InvalidArgument
from .events import EventLog
from .models import AgentInfo, EventType
from .storage import CF_HISTORY, CF_ID_INDEX, CF_JOURNAL, CF_LINKS, CF_META, CF_RECORDS, CF_SNAPSHOTS, CF_VECTORS, Batch

AGENT_RECORDS = b"agent/"  # the meta key prefix of agent records


class Directory:
    def __init__(self, agents: AgentStore, access: AccessTracker, events: EventLog) -> None:
        self._agents = agents
        self._access = access
        self._events = events

    def infos(self) -> list[AgentInfo]:
        """Every agent, by id; loaded agents from memory (newer than their stored record)."""
        loaded = {s.agent_id: s for s in self._agents.loaded()}
        out = []
        for _, v in self._agents.storage.scan(CF_META, AGENT_RECORDS):
            d = json.loads(v)
            st = loaded.get(d["agent_id"])
            if st is not None:
                with st.lock:
                    d = st.info()
            out.append(_info(d, int(d["count"])))
        out.sort(key=lambda a: a.agent_id)
        return out

    def list_agents(self, page_size: int, page_token: str) -> tuple[list[AgentInfo], str, int]:
        """(a page of agents by id, next_page_token, total)."""
        infos = self.infos()
        start = 0
        if page_token:
            try:
                after = base64.urlsafe_b64decode(page_token.encode()).decode()
            except (ValueError, UnicodeDecodeError):
                raise InvalidArgument("page_token is not valid", field="page_token") from None
            start = next((i for i, a in enumerate(infos) if a.agent_id > after), len(infos))
        page = infos[start : start + page_size]
        more = page and start + page_size < len(infos)
        token = base64.urlsafe_b64encode(page[-1].agent_id.encode()).decode() if more else ""
        return page, token, len(infos)

    def get_agent(self, agent_id: str) -> AgentInfo:
        st = self._agents.existing(agent_id)
        with st.lock:
            d = st.info()
        t = time.time()
        return _info(d, sum(1 for e in st.entries.values() if e.live(t)))

    def delete_agent(self, agent_id: str) -> int:
        """Erase records, vectors, index snapshots, links and history. Returns memories deleted."""
        agents = self._agents
        st = agents.existing(agent_id)
        with st.maint_lock, st.lock:  # no index maintenance may write snapshots meanwhile
            ids = list(st.entries)
            b = self._erase_batch(st, ids)
            # Its earlier changes leave the change log (they carry its memories); what watchers
            # get is one deletion per memory.
            self._events.purge_agent(b, st.qa)
            versions = [(mid, st.entries[mid].version) for mid in ids]
            self._events.add_many(b, st.qa, EventType.DELETED, agent_id, versions, clock.now())
            fut = agents.storage.write_async(b)
            st.deleted = True
            agents.evict(st)
        fut.result()
        self._access.forget_agent(agent_id)
        return len(ids)

    def _erase_batch(self, st: AgentState, ids: list[str]) -> Batch:
        b = self._agents.storage.batch()
        keys = st.keys
        for cf in (CF_RECORDS, CF_VECTORS, CF_HISTORY, CF_LINKS, CF_JOURNAL):
            b.delete_prefix(cf, keys.prefix)
        for mid in ids:
            b.delete(CF_ID_INDEX, self._agents.keyspace.id_entry(mid, keys.qa))
        for prefix in keys.snapshot_prefixes:
            b.delete_prefix(CF_SNAPSHOTS, prefix.encode())
        b.delete_prefix(CF_SNAPSHOTS, keys.catalogue_snapshot.encode())
        b.delete(CF_META, keys.meta_agent)
        b.delete(CF_META, keys.meta_index_seq)
        return b


def _info(d: dict[str, Any], live: int) -> AgentInfo:
    """An agent record (AgentState.info(), as stored) with its live memory count."""
    return AgentInfo(
        str(d["agent_id"]),
        live,
        int(d["bytes"]),
        int(d["links"]),
        float(d["created_at"]),
        float(d["last_activity_at"]),
        dict(d["types"]),
    )
