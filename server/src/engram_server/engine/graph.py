"""Links between an agent's memories and traversal of the graph they make."""

from __future__ import annotations

import time
from collections import deque

from . import codec
from .agent import LinkKey
from .agent_store import AgentStore, now
from .errors import NotFound
from .models import Link, MemoryGraph
from .storage import CF_LINKS


class Graph:
    def __init__(self, agents: AgentStore) -> None:
        self._agents = agents

    def link(self, agent_id: str, source_id: str, target_id: str, relation: str, weight: float) -> Link:
        """Both memories must be live in the agent. Linking the same pair and relation again
        updates the weight."""
        agents = self._agents
        st = agents.get(agent_id)
        with st.lock:
            for f, mid in (("source_id", source_id), ("target_id", target_id)):
                try:
                    agents.live_entry(st, mid)
                except NotFound:
                    raise NotFound(f"{f}: memory {mid} not found in agent") from None
            k = (source_id, target_id, relation)
            prev = st.links.get(k)
            link = Link(agent_id, source_id, target_id, relation, weight, prev.created_at if prev else now())
            b = agents.storage.batch()
            b.put(CF_LINKS, st.keys.link(source_id, target_id, relation), codec.link_to_bytes(link))
            st.add_link(link)
            fut = agents.commit(st, b, [])
        agents.wait(st, fut)
        return link

    def unlink(self, agent_id: str, source_id: str, target_id: str, relation: str = "") -> int:
        """Remove links (of every relation when relation is empty). Returns how many."""
        agents = self._agents
        st = agents.get(agent_id)
        with st.lock:
            keys = [
                k
                for k in st.adj.get(source_id, ())
                if k[0] == source_id and k[1] == target_id and (not relation or k[2] == relation)
            ]
            if not keys:
                return 0
            b = agents.storage.batch()
            for k in keys:
                b.delete(CF_LINKS, st.keys.link(*k))
                st.remove_link(k)
            fut = agents.commit(st, b, [])
        agents.wait(st, fut)
        return len(keys)

    def graph(
        self, agent_id: str, memory_id: str, depth: int, relations: list[str] | None, max_nodes: int
    ) -> MemoryGraph:
        """Breadth-first traversal over links in both directions, up to depth."""
        agents = self._agents
        rel = set(relations or [])
        st = agents.get(agent_id)
        t = time.time()
        with st.lock:
            agents.live_entry(st, memory_id)
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
                    if e is None or not e.live(t):
                        continue
                    if other not in seen:
                        if len(order) >= max_nodes:
                            continue
                        seen.add(other)
                        order.append(other)
                        frontier.append((other, d + 1))
                    links[k] = st.links[k]
            recs = agents.read_many(st, order)
        return MemoryGraph(
            [recs[m] for m in order if m in recs], [lk for k, lk in links.items() if k[0] in seen and k[1] in seen]
        )
