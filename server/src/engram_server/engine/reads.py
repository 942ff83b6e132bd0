"""Reads: a memory by id, its versions, the agents holding an id, and pages of an agent's
memories in a chosen order."""

from __future__ import annotations

import base64
import bisect
import hashlib
import json
import time

from . import codec
from .agent_store import AgentStore
from .catalogue import compile_filter, filter_fingerprint
from .errors import EngineError, InvalidArgument
from .models import ListPage, Memory, MemoryFilter
from .storage import CF_HISTORY, CF_ID_INDEX

ORDER_FIELDS = ("created_at", "updated_at", "importance", "event_time")


class Reads:
    def __init__(self, agents: AgentStore) -> None:
        self._agents = agents
        self._storage = agents.storage

    def owners(self, memory_id: str) -> list[str]:
        """The agents that hold a memory with this id."""
        prefix = self._agents.keyspace.id_prefix(memory_id)
        return sorted(v.decode() for _, v in self._storage.scan(CF_ID_INDEX, prefix))

    def get(self, agent_id: str, memory_id: str) -> Memory:
        """A live memory of the agent; NotFound when it does not exist or expired."""
        agents = self._agents
        st = agents.get(agent_id)
        with st.lock:
            return agents.read_live(st, memory_id)

    def history(self, agent_id: str, memory_id: str) -> list[Memory]:
        """All versions, oldest first, the current one last."""
        agents = self._agents
        st = agents.get(agent_id)
        with st.lock:
            cur = agents.read_live(st, memory_id)
        old = [codec.memory_from_bytes(v) for _, v in self._storage.scan(CF_HISTORY, st.keys.history_prefix(memory_id))]
        old = [m for m in old if m.id != memory_id or m.version < cur.version]
        old.sort(key=lambda m: (m.updated_at, m.version))
        return [*old, cur]

    def page(self, agent_id: str, flt: MemoryFilter, page_size: int, page_token: str, order_by: str) -> ListPage:
        """A page of the agent's live memories matching flt, in `order_by` ("<field> asc|desc",
        field one of ORDER_FIELDS); total_size counts every match. A token from another query
        (agent, filter or order) or a malformed one is InvalidArgument."""
        field, direction = order_by.split()
        desc = direction == "desc"
        pred = compile_filter(flt)
        st = self._agents.get(agent_id)
        fp = hashlib.sha256(f"{agent_id}\x00{filter_fingerprint(flt)}\x00{field}\x00{desc}".encode()).hexdigest()[:16]
        after = _decode_token(page_token, fp) if page_token else None
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
        page = rows[start : start + page_size]
        with st.lock:
            recs = self._agents.read_many(st, [mid for _, mid in page])
        mems = [recs[mid] for _, mid in page if mid in recs]
        token = _encode_token(page[-1], fp) if page and start + page_size < len(rows) else ""
        return ListPage(mems, token, len(rows))


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
