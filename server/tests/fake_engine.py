"""An in-memory stand-in for the Engine facade, for fast service/transport tests only.

It follows engine.py's contract (errors, shapes) closely enough to test the layers above it;
the integration tests use the real Engine.
"""

from __future__ import annotations

import copy
import hashlib
import re
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from engram_server.engine import errors as e
from engram_server.engine import models as m


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


class FakeEngine:
    def __init__(self, ready: bool = True) -> None:
        self.executor = ThreadPoolExecutor(4, thread_name_prefix="fake-engine")
        self._ready = ready
        self.mems: dict[str, m.Memory] = {}
        self.hist: dict[str, list[m.Memory]] = {}
        self.links: list[m.Link] = []
        self.keys: dict[str, m.ApiKeyRecord] = {}
        self.lock = threading.RLock()
        self.closed = False
        self.slow = 0.0  # seconds each recall sleeps (deadline tests)

    @classmethod
    def open(cls, config) -> FakeEngine:
        return cls()

    def close(self) -> None:
        self.closed = True

    @property
    def ready(self) -> bool:
        return self._ready

    def warm_up(self) -> None:
        self._ready = True

    def _live(self, mid: str, agent_id: str = "") -> m.Memory:
        mem = self.mems.get(mid)
        if mem is None or (agent_id and mem.agent_id != agent_id) or (mem.expires_at and mem.expires_at < time.time()):
            raise e.NotFound(f"memory {mid!r} not found")
        return mem

    def store(self, item: m.NewMemory):
        return self.store_batch([item])[0]

    def store_batch(self, items):
        out = []
        with self.lock:
            for it in items:
                if it.id and it.id in self.mems:
                    old = self.mems[it.id]
                    if old.content != it.content or old.agent_id != it.agent_id:
                        raise e.AlreadyExists(f"memory {it.id!r} exists with other content")
                    out.append((copy.deepcopy(old), False))
                    continue
                now = time.time()
                exp = it.expires_at or (now + it.ttl_seconds if it.ttl_seconds else None)
                mem = m.Memory(
                    id=it.id or uuid.uuid4().hex,
                    agent_id=it.agent_id,
                    content=it.content,
                    memory_type=it.memory_type,
                    importance=it.importance,
                    tags=list(it.tags),
                    metadata=dict(it.metadata),
                    session_id=it.session_id,
                    event_time=it.event_time or now,
                    created_at=now,
                    updated_at=now,
                    expires_at=exp,
                    embedding_model="fake-model",
                )
                self.mems[mem.id] = mem
                self.hist[mem.id] = [copy.deepcopy(mem)]
                out.append((copy.deepcopy(mem), True))
        return out

    def get(self, memory_id, agent_id=""):
        return copy.deepcopy(self._live(memory_id, agent_id))

    def update(self, memory_id, patch, agent_id=""):
        with self.lock:
            mem = self._live(memory_id, agent_id)
            for f in (
                "content",
                "memory_type",
                "importance",
                "tags",
                "metadata",
                "session_id",
                "event_time",
                "expires_at",
            ):
                v = getattr(patch, f)
                if v is not None:
                    setattr(mem, f, v)
            if patch.ttl_seconds is not None:
                mem.expires_at = time.time() + patch.ttl_seconds if patch.ttl_seconds else None
            mem.version += 1
            mem.updated_at = time.time()
            self.hist[memory_id].append(copy.deepcopy(mem))
            return copy.deepcopy(mem)

    def delete(self, memory_id, agent_id=""):
        with self.lock:
            mem = self._live(memory_id, agent_id)
            del self.mems[memory_id]
            self.hist.pop(memory_id, None)
            self.links = [x for x in self.links if memory_id not in (x.source_id, x.target_id)]
            return mem

    def _match(self, mem, f):
        if f is None:
            return True
        if f.memory_types and mem.memory_type not in f.memory_types:
            return False
        if f.tags_any and not set(f.tags_any) & set(mem.tags):
            return False
        if f.tags_all and not set(f.tags_all) <= set(mem.tags):
            return False
        if f.session_id and mem.session_id != f.session_id:
            return False
        if f.min_importance is not None and mem.importance < f.min_importance:
            return False
        if f.ids and mem.id not in f.ids:
            return False
        return all(mem.metadata.get(k) == v for k, v in f.metadata_equals.items())

    def _agent_mems(self, agent_id, f=None):
        now = time.time()
        return [
            x
            for x in self.mems.values()
            if x.agent_id == agent_id and not (x.expires_at and x.expires_at < now) and self._match(x, f)
        ]

    def list(self, agent_id, filter=None, page_size=50, page_token="", order_by="created_at desc"):
        field, direction = order_by.split()
        items = sorted(
            self._agent_mems(agent_id, filter), key=lambda x: (getattr(x, field), x.id), reverse=direction == "desc"
        )
        start = 0
        if page_token:
            if not page_token.startswith(agent_id + ":"):
                raise e.InvalidArgument("invalid page_token", field="page_token")
            start = int(page_token.rsplit(":", 1)[1])
        page = items[start : start + page_size]
        nxt = f"{agent_id}:{start + page_size}" if start + page_size < len(items) else ""
        return m.ListPage([copy.deepcopy(x) for x in page], nxt, len(items))

    def recall(self, q: m.RecallQuery):
        if self.slow:
            time.sleep(self.slow)
        qw = _words(q.query)
        scored = []
        for mem in self._agent_mems(q.agent_id, q.filter):
            s = len(qw & _words(mem.content)) / (len(qw) or 1)
            if q.mode == m.RecallMode.KEYWORD and s == 0:
                continue
            s = s * 0.8 + 0.2 * mem.importance
            if s >= q.min_score:
                expl = m.ScoreExplanation(fused_score=s) if q.explain else None
                scored.append(m.ScoredMemory(copy.deepcopy(mem), s, keyword_score=s, explanation=expl))
        scored.sort(key=lambda x: -x.score)
        return m.RecallResult(scored[: q.top_k], len(scored), 0.1)

    def recall_batch(self, queries):
        return [self.recall(q) for q in queries]

    def forget(self, agent_id, filter, dry_run=False):
        if filter.is_empty():
            raise e.InvalidArgument("filter must not be empty", field="filter")
        ids = [x.id for x in self._agent_mems(agent_id, filter)]
        if not dry_run:
            for i in ids:
                self.delete(i)
        return m.ForgetResult(len(ids), 0 if dry_run else len(ids), ids[:1000])

    def history(self, memory_id, agent_id=""):
        self._live(memory_id, agent_id)
        return copy.deepcopy(self.hist[memory_id])

    def link(self, agent_id, source_id, target_id, relation="related_to", weight=1.0):
        self._live(source_id, agent_id)
        self._live(target_id, agent_id)
        link = m.Link(agent_id, source_id, target_id, relation, weight, time.time())
        self.links = [
            x for x in self.links if (x.source_id, x.target_id, x.relation) != (source_id, target_id, relation)
        ]
        self.links.append(link)
        return link

    def unlink(self, agent_id, source_id, target_id, relation=""):
        before = len(self.links)
        self.links = [
            x
            for x in self.links
            if not (
                x.agent_id == agent_id
                and x.source_id == source_id
                and x.target_id == target_id
                and (not relation or x.relation == relation)
            )
        ]
        return before - len(self.links)

    def graph(self, agent_id, memory_id, depth=1, relations=None, max_nodes=100):
        start = self._live(memory_id, agent_id)
        seen, frontier, links = [start.id], [start.id], []
        for _ in range(depth):
            nxt = []
            for x in self.links:
                if x.agent_id != agent_id or (relations and x.relation not in relations):
                    continue
                for a, b in ((x.source_id, x.target_id), (x.target_id, x.source_id)):
                    if a in frontier:
                        if x not in links:
                            links.append(x)
                        if b not in seen and len(seen) < max_nodes:
                            seen.append(b)
                            nxt.append(b)
            frontier = nxt
        return m.MemoryGraph([copy.deepcopy(self.mems[i]) for i in seen], links)

    def export(self, agent_id, filter=None):
        for mem in sorted(self._agent_mems(agent_id, filter), key=lambda x: x.id):
            yield copy.deepcopy(mem)

    def import_memories(self, memories, agent_id_override=""):
        imported = skipped = 0
        with self.lock:
            for mem in memories:
                if mem.id in self.mems:
                    skipped += 1
                    continue
                mem = copy.deepcopy(mem)
                if agent_id_override:
                    mem.agent_id = agent_id_override
                self.mems[mem.id] = mem
                self.hist[mem.id] = [copy.deepcopy(mem)]
                imported += 1
        return imported, skipped

    def consolidate(self, agent_id, similarity_threshold=0.95, dry_run=True):
        return []

    def _agents(self):
        out = {}
        for mem in self.mems.values():
            a = out.setdefault(mem.agent_id, m.AgentInfo(mem.agent_id, created_at=mem.created_at))
            a.memory_count += 1
            a.bytes_stored += len(mem.content)
            a.memory_type_counts[mem.memory_type.value] = a.memory_type_counts.get(mem.memory_type.value, 0) + 1
        return out

    def list_agents(self, page_size=100, page_token=""):
        agents = sorted(self._agents().values(), key=lambda a: a.agent_id)
        start = int(page_token or 0)
        nxt = str(start + page_size) if start + page_size < len(agents) else ""
        return agents[start : start + page_size], nxt, len(agents)

    def get_agent(self, agent_id):
        a = self._agents().get(agent_id)
        if a is None:
            raise e.NotFound(f"agent {agent_id!r} not found")
        return a

    def delete_agent(self, agent_id):
        ids = [x.id for x in self.mems.values() if x.agent_id == agent_id]
        for i in ids:
            self.delete(i)
        return len(ids)

    def embed(self, texts):
        out = np.zeros((len(texts), 8), dtype=np.float32)
        for i, t in enumerate(texts):
            h = hashlib.sha256(t.encode()).digest()
            out[i] = np.frombuffer(h[:32], dtype=np.uint8)[:8].astype(np.float32) + 1
            out[i] /= np.linalg.norm(out[i])
        return out

    @property
    def embedding_model(self):
        return "fake-model"

    @property
    def embedding_dim(self):
        return 8

    def put_api_key(self, record):
        self.keys[record.id] = copy.deepcopy(record)

    def get_api_key(self, key_id):
        r = self.keys.get(key_id)
        return copy.deepcopy(r) if r else None

    def list_api_keys(self):
        return [copy.deepcopy(r) for r in self.keys.values()]

    def stats(self):
        return m.EngineStats(
            agents=len(self._agents()),
            memories=len(self.mems),
            links=len(self.links),
            vectors_exact=len(self.mems),
            embedding_model="fake-model",
            embedding_dim=8,
        )

    def checkpoint(self, target_dir):
        pass
