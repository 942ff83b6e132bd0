"""Property test: random store / update / delete / recall / list / reopen sequences on the real
engine (RocksDB, encryption, indexes; a small deterministic embedder) agree with a dict model.

Checked after every step: each live memory reads back as the model says (content, tags,
version); a deleted one is NOT_FOUND; list totals and ids match; recall returns only live
memories of the agent that pass the filter, and exactly min(top_k, matching) of them (filters
apply before top-k). `ENGRAM_STRESS=1` (make stress) runs many more sequences.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import open_engine
from engram_server.engine.errors import NotFound
from engram_server.engine.models import MemoryFilter, MemoryPatch, NewMemory, RecallQuery, StoreOutcome
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, rule

STRESS = os.environ.get("ENGRAM_STRESS") == "1"
AGENTS = ("alice", "bob")
WORDS = ("apple", "river", "cobalt", "lantern", "orbit", "meadow", "violin", "quartz")
TAGS = ("red", "blue", "green")

texts = st.lists(st.sampled_from(WORDS), min_size=1, max_size=5).map(" ".join)
tag_sets = st.lists(st.sampled_from(TAGS), max_size=2, unique=True)


@dataclass
class Expected:
    agent: str
    content: str
    tags: list[str]
    version: int


class EngineModel(RuleBasedStateMachine):
    memories = Bundle("memories")

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="engram-model-"))
        self.engine = open_engine(self.dir / "data")
        self.model: dict[str, Expected] = {}
        self.deleted: set[str] = set()
        self.owner: dict[str, str] = {}  # every id ever stored → its agent

    def teardown(self) -> None:
        self.engine.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    @rule(target=memories, agent=st.sampled_from(AGENTS), content=texts, tags=tag_sets)
    def store(self, agent: str, content: str, tags: list[str]) -> str:
        m, created = self.engine.store(NewMemory(agent, content, tags=list(tags)))
        assert created is StoreOutcome.CREATED and m.content == content and m.version == 1
        self.model[m.id] = Expected(agent, content, sorted(tags), 1)
        self.owner[m.id] = agent
        return m.id

    @rule(mid=memories, content=st.none() | texts, tags=st.none() | tag_sets)
    def update(self, mid: str, content: str | None, tags: list[str] | None) -> None:
        if mid in self.deleted:
            with pytest.raises(NotFound):
                self.engine.update(self.owner[mid], mid, MemoryPatch(content=content or "x"))
            return
        if content is None and tags is None:
            return
        exp = self.model[mid]
        patch = MemoryPatch(content=content, tags=None if tags is None else list(tags))
        m = self.engine.update(exp.agent, mid, patch)
        if content is not None:
            exp.content = content
        if tags is not None:
            exp.tags = sorted(tags)
        exp.version += 1  # every update is a new version (the previous one goes to history)
        assert m.version == exp.version and m.content == exp.content

    @rule(mid=consumes(memories))
    def delete(self, mid: str) -> None:
        if mid in self.deleted:
            return
        self.engine.delete(self.owner[mid], mid)
        del self.model[mid]
        self.deleted.add(mid)

    @rule(agent=st.sampled_from(AGENTS), query=texts, top_k=st.integers(1, 8), tag=st.none() | st.sampled_from(TAGS))
    def recall(self, agent: str, query: str, top_k: int, tag: str | None) -> None:
        flt = MemoryFilter(tags_any=[tag]) if tag else MemoryFilter()
        res = self.engine.recall(RecallQuery(agent, query, top_k=top_k, filter=flt))
        matching = {i for i, e in self.model.items() if e.agent == agent and (tag is None or tag in e.tags)}
        got = [s.memory.id for s in res.memories]
        assert len(got) == len(set(got))
        assert set(got) <= matching, set(got) - matching
        assert len(got) == min(top_k, len(matching))

    @rule()
    def reopen(self) -> None:
        self.engine.close()
        self.engine = open_engine(self.dir / "data")

    @invariant()
    def reads_agree(self) -> None:
        for mid, exp in self.model.items():
            m = self.engine.get(exp.agent, mid)
            assert (m.agent_id, m.content, sorted(m.tags), m.version) == (exp.agent, exp.content, exp.tags, exp.version)
        for mid in self.deleted:
            with pytest.raises(NotFound):
                self.engine.get(self.owner[mid], mid)

    @invariant()
    def lists_agree(self) -> None:
        for agent in AGENTS:
            page = self.engine.list_memories(agent, page_size=1000)
            expected = {i for i, e in self.model.items() if e.agent == agent}
            assert page.total_size == len(expected)
            assert {m.id for m in page.memories} == expected


EngineModel.TestCase.settings = settings(
    max_examples=150 if STRESS else 12,
    stateful_step_count=40 if STRESS else 20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_engine_agrees_with_model = EngineModel.TestCase
