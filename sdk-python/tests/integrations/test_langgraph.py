"""EngramStore (engram.integrations.langgraph) against a real server and the real LangGraph.

LangGraph ships no conformance suite for stores (langgraph-checkpoint-conformance covers
checkpointers only), so this is one: every op of ``BaseStore`` (get, put with index and ttl,
delete, search with query, filter, limit and offset, list_namespaces with prefix, suffix,
wildcards, max_depth, limit and offset, batch and abatch), sync and async, over REST and gRPC;
the ops that do not depend on embeddings are also run on LangGraph's own ``InMemoryStore``,
the reference, and must give the same answers. No model is called: the Engram server embeds.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, TypedDict

import pytest
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.store.base import (
    BaseStore,
    GetOp,
    InvalidNamespaceError,
    Item,
    ListNamespacesOp,
    MatchCondition,
    PutOp,
    SearchOp,
)
from langgraph.store.memory import InMemoryStore

import engram
from engram.integrations.langgraph import TAG, TAG_INDEXED, EngramStore

from ..conftest import Server

pytestmark = [pytest.mark.server]

AGENT_RE = re.compile(r"^[A-Za-z0-9._:@-]{1,128}$")


def _prefix() -> str:
    return f"lgt-{uuid.uuid4().hex[:10]}:"


@pytest.fixture
def store(server: Server, transport: str) -> Iterator[EngramStore]:
    with engram.Client(server.url(transport), api_key=server.api_key) as client:
        yield EngramStore(client, agent_prefix=_prefix())


@pytest.fixture
async def astore(server: Server, transport: str) -> AsyncIterator[EngramStore]:
    async with engram.AsyncClient(server.url(transport), api_key=server.api_key) as client:
        yield EngramStore(client, agent_prefix=_prefix())


@pytest.fixture
def admin(server: Server) -> Iterator[engram.Client]:
    with engram.Client(server.http_url, api_key=server.api_key) as client:
        yield client


# --- namespaces -> agent ids ------------------------------------------------------------------


NAMESPACES = [
    ("users",),
    ("users", "alice"),
    ("users", "Zoë Smith"),
    ("a@b", "c:d", "e-f_g"),
    ("100%", "x y", "@40"),
    ("emoji 🦜", "tab\there", "日本"),
    ("langgraph", "memories"),
    ("a", "b", "c", "d", "e", "f"),
]


def test_namespace_encoding_is_one_to_one_and_reversible() -> None:
    store = EngramStore(url="http://127.0.0.1:1")
    ids = [store.agent_id_for(ns) for ns in NAMESPACES]
    assert len(set(ids)) == len(ids)
    for ns, agent_id in zip(NAMESPACES, ids, strict=True):
        assert AGENT_RE.match(agent_id), agent_id
        assert agent_id.startswith("langgraph:")
        assert store.namespace_for(agent_id) == ns
    assert store.agent_id_for(("users", "Zoë Smith")) == "langgraph:users.Zo@C3@AB@20Smith"
    assert store.agent_id_for(("a@b",)) == "langgraph:a@40b"
    # Not one of the store's agents, or not in the canonical form: not a namespace.
    for other in ("agent-1", "langgraph:", "langgraph:a..b", "langgraph:a@4", "langgraph:a@4g",
                  "langgraph:@61", "langgraph:x@c3@ab", "langgraph:@FF", "other:users"):
        assert store.namespace_for(other) is None, other
    assert EngramStore(url="http://127.0.0.1:1", agent_prefix="").namespace_for("agent-1") == ("agent-1",)


def test_namespace_too_long_or_invalid() -> None:
    store = EngramStore(url="http://127.0.0.1:1")
    store.agent_id_for(("x" * 118,))
    with pytest.raises(InvalidNamespaceError, match="too long"):
        store.agent_id_for(("x" * 119,))
    with pytest.raises(InvalidNamespaceError, match="too long"):
        store.agent_id_for(("é" * 20,))  # 6 characters each
    for bad in [(), ("a.b",), ("",), ("a", 1), "ab"]:
        with pytest.raises(InvalidNamespaceError):
            store.agent_id_for(bad)  # type: ignore[arg-type]


# --- get / put / delete ---------------------------------------------------------------------


VALUE = {
    "text": "The user prefers dark mode",
    "count": 3,
    "big": 2**60,
    "ratio": 0.25,
    "flag": True,
    "none": None,
    "nested": {"list": [1, 2.5, "three", {"deep": [None, False]}]},
    "unicode": "Zoë 🦜 日本",
}


def test_put_get_round_trip(store: EngramStore) -> None:
    ns = ("users", "alice")
    assert store.get(ns, "prefs") is None
    before = datetime.now().astimezone()
    store.put(ns, "prefs", VALUE)
    item = store.get(ns, "prefs")
    assert isinstance(item, Item)
    assert item.value == VALUE
    assert type(item.value["count"]) is int and item.value["big"] == 2**60  # exact, not float
    assert item.key == "prefs" and item.namespace == ns
    assert item.created_at == item.updated_at
    assert abs((item.created_at - before).total_seconds()) < 30

    time.sleep(0.05)
    store.put(ns, "prefs", {"text": "light mode now"})
    again = store.get(ns, "prefs")
    assert again is not None
    assert again.value == {"text": "light mode now"}
    assert again.created_at == item.created_at
    assert again.updated_at > item.updated_at


def test_put_is_an_upsert_by_key_with_duplicates_off(store: EngramStore, admin: engram.Client) -> None:
    ns = ("docs",)
    # The same value under two keys is two items (no deduplication), one key is one memory.
    store.put(ns, "a", {"text": "same text"})
    store.put(ns, "b", {"text": "same text"})
    store.put(ns, "a", {"text": "same text"})
    agent_id = store.agent_id_for(ns)
    memories = admin.list(agent_id).memories
    assert sorted(m.key for m in memories) == ["a", "b"]
    memory = next(m for m in memories if m.key == "a")
    assert memory.version == 2
    assert set(memory.tags) == {TAG, TAG_INDEXED}
    meta = memory.metadata.to_dict() if memory.metadata else {}
    assert meta["namespace"] == ["docs"]
    assert meta["value"] == '{"text":"same text"}'
    assert memory.content == '{"text": "same text"}'  # the whole value: index fields ["$"]


def test_delete(store: EngramStore) -> None:
    ns = ("users", "bob")
    store.put(ns, "k1", {"v": 1})
    store.put(ns, "k2", {"v": 2})
    store.delete(ns, "k1")
    assert store.get(ns, "k1") is None
    assert store.get(ns, "k2") is not None
    store.delete(ns, "k1")  # deleting what is gone is fine
    store.delete(("never", "written"), "x")
    assert [i.key for i in store.search(ns)] == ["k2"]
    store.delete(ns, "k2")
    assert store.search(ns) == []
    assert store.list_namespaces() == []  # an empty namespace is not listed


def test_keys_are_any_text(store: EngramStore) -> None:
    ns = ("keys",)
    keys = ["with space", "slash/and:colon", "dots.in.key", "ü🦜", "x" * 300]
    for key in keys:
        store.put(ns, key, {"key": key})
    for key in keys:
        got = store.get(ns, key)
        assert got is not None and got.value == {"key": key}
    assert sorted(i.key for i in store.search(ns, limit=10)) == sorted(keys)


def test_foreign_memories_are_ignored(store: EngramStore, admin: engram.Client) -> None:
    ns = ("shared",)
    store.put(ns, "mine", {"text": "pizza"})
    admin.store(store.agent_id_for(ns), "pizza is great", key="theirs")  # not written by the store
    assert store.get(ns, "theirs") is None
    assert [i.key for i in store.search(ns)] == ["mine"]
    assert [i.key for i in store.search(ns, query="pizza")] == ["mine"]


# --- batch ----------------------------------------------------------------------------------


def test_batch_mixed_ops(store: EngramStore) -> None:
    ns = ("batch",)
    store.put(ns, "old", {"n": 0})
    results = store.batch([
        PutOp(ns, "a", {"n": 1}),
        GetOp(ns, "old"),
        GetOp(ns, "a"),  # reads see the store as it was before the batch's puts
        PutOp(ns, "b", {"n": 2}),
        PutOp(ns, "b", {"n": 3}),  # the last put of an item wins
        SearchOp(ns),
        ListNamespacesOp(),
        PutOp(ns, "old", None),
    ])
    assert len(results) == 8
    assert results[0] is None and results[3] is None and results[4] is None and results[7] is None
    old = results[1]
    assert isinstance(old, Item) and old.value == {"n": 0}
    assert results[2] is None
    assert [i.key for i in results[5]] == ["old"]  # type: ignore[union-attr]
    assert results[6] == [ns]
    got_b = store.get(ns, "b")
    assert got_b is not None and got_b.value == {"n": 3}
    assert store.get(ns, "old") is None
    assert store.batch([]) == []
    assert [x.key if x else None for x in store.batch([GetOp(ns, "a"), GetOp(ns, "zz"), GetOp(ns, "a")])] == [
        "a", None, "a",
    ]


def test_batch_checks_every_op_before_sending_any(store: EngramStore) -> None:
    ns = ("checked",)
    with pytest.raises(ValueError, match="not JSON"):
        store.batch([PutOp(ns, "a", {"ok": 1}), PutOp(ns, "b", {"bad": object()})])
    with pytest.raises(ValueError, match="unknown operation"):
        store.batch([PutOp(ns, "a", {"ok": 1}), "nonsense"])  # type: ignore[list-item]
    assert store.get(ns, "a") is None


# --- search: filters, paging, order ---------------------------------------------------------


DOCS = {
    "d1": {"kind": "report", "score": 4.5, "year": 2023, "tags": ["a", "b"], "meta": {"lang": "en", "pages": 10}},
    "d2": {"kind": "report", "score": 2.0, "year": 2024, "tags": ["b"], "meta": {"lang": "fr", "pages": 3}},
    "d3": {"kind": "note", "score": 3.0, "year": 2022, "tags": [], "meta": {"lang": "en", "pages": 1}},
    "d4": {"kind": "note", "score": 5, "title": "zebra", "meta": {"lang": "de"}},
    "d5": {"kind": "draft", "score": None, "title": "apple"},
}

ALL = set(DOCS)
FILTERS: list[tuple[dict[str, Any], set[str]]] = [
    ({}, ALL),
    ({"kind": "report"}, {"d1", "d2"}),
    ({"kind": {"$eq": "note"}}, {"d3", "d4"}),
    ({"kind": {"$ne": "report"}}, {"d3", "d4", "d5"}),
    ({"score": {"$gt": 3}}, {"d1", "d4"}),
    ({"score": {"$gte": 3}}, {"d1", "d3", "d4"}),
    ({"score": {"$lt": 3}}, {"d2"}),
    ({"score": {"$lte": 3.0}}, {"d2", "d3"}),
    ({"score": {"$gt": 2, "$lt": 5}}, {"d1", "d3"}),
    ({"year": {"$gte": 2023}, "kind": "report"}, {"d1", "d2"}),
    ({"title": {"$gt": "b"}}, {"d4"}),
    ({"meta": {"lang": "en"}}, {"d1", "d3"}),
    ({"meta": {"lang": "en", "pages": {"$gt": 5}}}, {"d1"}),
    ({"tags": ["b"]}, {"d2"}),
    ({"tags": []}, {"d3"}),
    ({"missing": None}, ALL),
    ({"missing": {"$ne": 1}}, ALL),
    ({"score": None}, {"d5"}),
    ({"kind": "nothing"}, set()),
]


def _put_docs(target: BaseStore, ns: tuple[str, ...]) -> None:
    for key, value in DOCS.items():
        target.put(ns, key, value)


@pytest.mark.parametrize(("flt", "expected"), FILTERS, ids=[str(f) for f, _ in FILTERS])
def test_search_filter(store: EngramStore, flt: dict[str, Any], expected: set[str]) -> None:
    ns = ("docs", "f")
    _put_docs(store, ns)
    assert {i.key for i in store.search(("docs",), filter=flt, limit=100)} == expected
    # LangGraph's InMemoryStore agrees, where it can compare at all (it fails on a missing value
    # or a string under $gt and the like, where EngramStore answers "no match").
    reference = InMemoryStore()
    _put_docs(reference, ns)
    try:
        want = {i.key for i in reference.search(("docs",), filter=flt, limit=100)}
    except (TypeError, ValueError):
        return
    assert want == expected


def test_search_filter_errors(store: EngramStore) -> None:
    with pytest.raises(ValueError, match=r"unsupported filter operator '\$in'"):
        store.search(("x",), filter={"a": {"$in": [1]}})
    with pytest.raises(ValueError, match="mixes operators and fields"):
        store.search(("x",), filter={"a": {"$gt": 1, "b": 2}})
    with pytest.raises(ValueError, match="limit"):
        store.search(("x",), limit=-1)
    with pytest.raises(ValueError, match="offset"):
        store.search(("x",), offset=-2)
    with pytest.raises(ValueError, match="filter"):
        store.search(("x",), filter=["a"])  # type: ignore[arg-type]


def test_search_paging_and_order(store: EngramStore) -> None:
    ns = ("paged",)
    for i in range(7):
        store.put((*ns, f"sub{i % 2}"), f"k{i}", {"i": i})
    everything = store.search(ns, limit=100)
    assert [i.key for i in everything] == [f"k{i}" for i in reversed(range(7))]  # newest first
    assert all(i.score is None for i in everything)
    assert [i.key for i in store.search(ns, limit=3)] == ["k6", "k5", "k4"]
    assert [i.key for i in store.search(ns, limit=3, offset=3)] == ["k3", "k2", "k1"]
    assert [i.key for i in store.search(ns, limit=3, offset=6)] == ["k0"]
    assert store.search(ns, limit=0) == []
    assert store.search(ns, offset=50) == []
    assert [i.key for i in store.search((*ns, "sub1"))] == ["k5", "k3", "k1"]
    assert [i.key for i in store.search(ns, filter={"i": {"$lt": 4}}, limit=2, offset=1)] == ["k2", "k1"]
    assert store.search(("nothing", "here")) == []
    # The prefix () covers every namespace of the store.
    assert len(store.search((), limit=100)) == 7


# --- search: query --------------------------------------------------------------------------


FACTS = {
    "pets": {"text": "Alice has a cat called Miso and a dog named Rex", "topic": "animals", "rank": 1},
    "food": {"text": "Alice loves spicy ramen and sushi", "topic": "food", "rank": 2},
    "work": {"text": "Alice works as a software engineer in Berlin", "topic": "career", "rank": 3},
    "travel": {"text": "Last summer Alice hiked in the Swiss Alps", "topic": "travel", "rank": 4},
}


def test_search_query_ranks_by_meaning(store: EngramStore) -> None:
    ns = ("users", "alice", "facts")
    for key, value in FACTS.items():
        store.put(ns, key, value, index=["text"])
    hits = store.search(("users",), query="what pets does she have?")
    assert hits[0].key == "pets"
    assert all(isinstance(h.score, float) for h in hits)
    assert [h.score for h in hits] == sorted((h.score or 0.0 for h in hits), reverse=True)
    assert store.search(ns, query="japanese food", limit=1)[0].key == "food"
    second = store.search(ns, query="japanese food", limit=2, offset=1)
    assert len(second) == 2 and "food" not in {h.key for h in second}
    # A filter first, then the query among the matching items only.
    filtered = store.search(ns, query="pets", filter={"rank": {"$gte": 2}})
    assert {h.key for h in filtered} == {"food", "work", "travel"}
    assert store.search(ns, query="pets", filter={"topic": "career"})[0].key == "work"


def test_search_query_across_namespaces(store: EngramStore) -> None:
    store.put(("kb", "animals"), "cats", {"text": "Cats are small domesticated felines"})
    store.put(("kb", "animals"), "dogs", {"text": "Dogs are loyal companions"})
    store.put(("kb", "geo"), "alps", {"text": "The Alps are a mountain range in Europe"})
    store.put(("kb", "geo"), "nile", {"text": "The Nile is a river in Africa"})
    hits = store.search(("kb",), query="mountains in Europe", limit=4)
    assert hits[0].key == "alps" and hits[0].namespace == ("kb", "geo")
    assert {h.key for h in hits} == {"cats", "dogs", "alps", "nile"}


def test_index_fields_and_unindexed_items(server: Server, admin: engram.Client) -> None:
    with engram.Client(server.http_url, api_key=server.api_key) as client:
        store = EngramStore(client, agent_prefix=_prefix(), index={"fields": ["title", "notes[*].body"]})
        ns = ("idx",)
        store.put(ns, "a", {"title": "Quarterly revenue", "notes": [{"body": "grew 10%"}, {"body": "in Europe"}],
                            "secret": "volcano"})
        store.put(ns, "b", {"title": "Volcano trip", "body": "ignored"}, index=["title"])
        store.put(ns, "c", {"title": "volcano eruption facts"}, index=False)
        store.put(ns, "d", {"other": "no indexed field at all"})
        by_key = {m.key: m for m in admin.list(store.agent_id_for(ns)).memories}
        assert by_key["a"].content == "Quarterly revenue\ngrew 10%\nin Europe"
        assert by_key["b"].content == "Volcano trip"
        assert TAG_INDEXED not in by_key["c"].tags and TAG_INDEXED not in by_key["d"].tags
        hits = store.search(ns, query="volcano")
        # Indexed items are ranked (the secret field of "a" is not embedded), unindexed ones follow.
        assert hits[0].key == "b" and hits[0].score is not None
        assert {h.key for h in hits[2:]} == {"c", "d"} and all(h.score is None for h in hits[2:])
        assert {h.key for h in store.search(ns, query="volcano", filter={"title": {"$gt": ""}})} == {"a", "b", "c"}
        assert len(store.search(ns, query="volcano", limit=1)) == 1
        assert store.get(ns, "c") is not None
    with pytest.raises(ValueError, match="embeds every memory"):
        EngramStore(url="http://127.0.0.1:1", index={"dims": 3, "embed": lambda texts: [[0.0] * 3 for _ in texts]})


# --- list_namespaces ------------------------------------------------------------------------


LISTED = [
    ("a", "b", "c"),
    ("a", "b", "d", "e"),
    ("a", "b", "d", "i"),
    ("a", "b", "f"),
    ("a", "c", "f"),
    ("b", "a", "f"),
    ("users", "123"),
    ("users", "456", "settings"),
    ("admin", "users", "789"),
    *[("namespace", f"sub_{i:02d}") for i in range(12)],
]

LIST_QUERIES: list[dict[str, Any]] = [
    {},
    {"prefix": ("a", "b")},
    {"suffix": ("f",)},
    {"prefix": ("a",), "suffix": ("f",)},
    {"prefix": ("a", "b"), "max_depth": 3},
    {"max_depth": 1},
    {"max_depth": 2, "limit": 3, "offset": 1},
    {"prefix": ("a", "b"), "limit": 2},
    {"prefix": ("a", "b"), "offset": 2},
    {"prefix": ("a", "*", "f")},
    {"suffix": ("*", "f")},
    {"prefix": ("*", "users")},
    {"prefix": ("*", "users"), "suffix": ("*", "settings")},
    {"prefix": ("nonexistent",)},
    {"prefix": ("users", "123")},
    {"prefix": ("namespace",), "limit": 5, "offset": 5},
    {"limit": 0},
]


def test_list_namespaces_matches_in_memory_store(store: EngramStore) -> None:
    reference = InMemoryStore()
    assert store.list_namespaces() == []
    store.batch([PutOp(ns, "k", {"ns": list(ns)}) for ns in LISTED])
    for ns in LISTED:
        reference.put(ns, "k", {"ns": list(ns)})
    for query in LIST_QUERIES:
        assert store.list_namespaces(**query) == reference.list_namespaces(**query), query
    direct = store.batch([ListNamespacesOp(match_conditions=(MatchCondition("suffix", ("f",)),), limit=2)])
    assert direct == [[("a", "b", "f"), ("a", "c", "f")]]
    with pytest.raises(InvalidNamespaceError):
        store.list_namespaces(prefix=("a.b",))
    with pytest.raises(ValueError, match="max_depth"):
        store.list_namespaces(max_depth=0)


def test_stores_with_other_prefixes_are_separate(server: Server) -> None:
    with engram.Client(server.http_url, api_key=server.api_key) as client:
        one, two = EngramStore(client, agent_prefix=_prefix()), EngramStore(client, agent_prefix=_prefix())
        one.put(("shared", "ns"), "k", {"from": "one"})
        two.put(("shared", "ns"), "k", {"from": "two"})
        got_one, got_two = one.get(("shared", "ns"), "k"), two.get(("shared", "ns"), "k")
        assert got_one is not None and got_one.value == {"from": "one"}
        assert got_two is not None and got_two.value == {"from": "two"}
        assert one.list_namespaces() == two.list_namespaces() == [("shared", "ns")]


def test_scoped_key_sees_only_its_prefix(server: Server, admin: engram.Client) -> None:
    prefix = _prefix()
    secret = admin.create_api_key("lg-scoped", "read_write", agent_id_prefix=prefix).key
    with engram.Client(server.http_url, api_key=secret) as client:
        store = EngramStore(client, agent_prefix=prefix)
        store.put(("mine",), "k", {"text": "scoped"})
        assert store.list_namespaces() == [("mine",)]
        assert [i.key for i in store.search((), query="scoped")] == ["k"]
        with pytest.raises(engram.PermissionDenied):
            EngramStore(client, agent_prefix="elsewhere:").put(("x",), "k", {"v": 1})


# --- TTL ------------------------------------------------------------------------------------


def _expiry(admin: engram.Client, store: EngramStore, ns: tuple[str, ...], key: str) -> datetime | None:
    (memory,) = admin.list(store.agent_id_for(ns), filter={"keys": [key]}).memories
    return memory.expires_at


def test_ttl_expires_and_refreshes(store: EngramStore, admin: engram.Client) -> None:
    assert store.supports_ttl
    ns = ("ttl",)
    store.put(ns, "short", {"v": 1}, ttl=1 / 60)  # one second
    store.put(ns, "long", {"v": 2}, ttl=10)
    store.put(ns, "forever", {"v": 3})
    assert _expiry(admin, store, ns, "forever") is None
    item = store.get(ns, "long")  # refreshes the TTL (the default)
    assert item is not None
    first = _expiry(admin, store, ns, "long")
    assert first is not None
    time.sleep(0.05)
    store.get(ns, "long", refresh_ttl=False)
    assert _expiry(admin, store, ns, "long") == first
    store.get(ns, "long")  # refreshes (the default)
    refreshed = _expiry(admin, store, ns, "long")
    assert refreshed is not None and refreshed > first
    again = store.get(ns, "long", refresh_ttl=False)
    assert again is not None and again.updated_at == item.updated_at  # a refresh is not an update
    store.search(ns, filter={"v": 2})
    last = _expiry(admin, store, ns, "long")
    assert last is not None and last > refreshed
    time.sleep(1.5)
    assert store.get(ns, "short") is None
    assert {i.key for i in store.search(ns)} == {"long", "forever"}
    # A put without ttl replaces the item with one that never expires.
    store.put(ns, "long", {"v": 4})
    assert _expiry(admin, store, ns, "long") is None


def test_ttl_config(server: Server, admin: engram.Client) -> None:
    with engram.Client(server.http_url, api_key=server.api_key) as client:
        store = EngramStore(client, agent_prefix=_prefix(), ttl={"default_ttl": 5, "refresh_on_read": False})
        ns = ("cfg",)
        store.put(ns, "k", {"v": 1})
        expiry = _expiry(admin, store, ns, "k")
        assert expiry is not None
        assert 250 < (expiry - datetime.now().astimezone()).total_seconds() <= 300
        time.sleep(0.05)
        store.get(ns, "k")
        assert _expiry(admin, store, ns, "k") == expiry  # refresh_on_read is off
        store.put(ns, "k", {"v": 1}, ttl=None)
        assert _expiry(admin, store, ns, "k") is None
    for bad in (0, -1, float("nan"), "5"):
        with pytest.raises(ValueError, match="ttl"):
            EngramStore(url="http://127.0.0.1:1").batch([PutOp(("x",), "k", {"v": 1}, ttl=bad)])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ttl"):
        EngramStore(url="http://127.0.0.1:1", ttl={"default_ttl": -3})


# --- bad input ------------------------------------------------------------------------------


def test_bad_input_gets_clear_errors(store: EngramStore) -> None:
    with pytest.raises(InvalidNamespaceError):
        store.put((), "k", {"v": 1})
    with pytest.raises(InvalidNamespaceError):
        store.batch([PutOp((), "k", {"v": 1})])
    with pytest.raises(InvalidNamespaceError):
        store.put(("a.b",), "k", {"v": 1})
    with pytest.raises(InvalidNamespaceError):
        store.batch([GetOp(("a", ""), "k")])
    with pytest.raises(InvalidNamespaceError, match="too long"):
        store.put(("x" * 200,), "k", {"v": 1})
    with pytest.raises(ValueError, match="key"):
        store.put(("a",), "", {"v": 1})
    with pytest.raises(TypeError, match="dict"):
        store.put(("a",), "k", ["not", "a", "dict"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not JSON"):
        store.put(("a",), "k", {"nan": float("nan")})
    with pytest.raises(TypeError, match="index"):
        store.put(("a",), "k", {"v": 1}, index="text")  # type: ignore[arg-type]
    with pytest.raises(engram.InvalidArgument, match="metadata"):
        store.put(("a",), "k", {"text": "x" * 20_000})  # over the server's metadata limit
    with pytest.raises(engram.InvalidArgument, match="control"):
        store.put(("a",), "bad\x01key", {"v": 1})
    with pytest.raises(ValueError, match="agent_prefix"):
        EngramStore(url="http://127.0.0.1:1", agent_prefix="no spaces")
    with engram.Client("http://127.0.0.1:1") as client, pytest.raises(TypeError, match="not both"):
        EngramStore(client, url="http://127.0.0.1:1")
    with pytest.raises(TypeError, match="client"):
        EngramStore("http://127.0.0.1:1")  # type: ignore[arg-type]


def test_async_client_only_refuses_sync_calls(server: Server) -> None:
    store = EngramStore(engram.AsyncClient(server.http_url, api_key=server.api_key))
    with pytest.raises(RuntimeError, match="AsyncClient only"):
        store.get(("a",), "k")


def test_unreachable_server_raises_unavailable() -> None:
    with EngramStore(url="http://127.0.0.1:9", api_key="x") as store, pytest.raises(engram.Unavailable):
        store.get(("a",), "k")


# --- async ----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_async_ops(astore: EngramStore) -> None:
    ns = ("async", "ns")
    await astore.aput(ns, "a", {"text": "asynchronous writes are awaited", "n": 1})
    await astore.aput(ns, "b", {"text": "the weather in Paris is sunny", "n": 2}, index=["text"])
    await astore.aput(("async", "other"), "c", {"n": 3}, ttl=5)
    got = await astore.aget(ns, "a")
    assert got is not None and got.value["n"] == 1
    assert (await astore.asearch(ns, query="weather forecast", limit=1))[0].key == "b"
    assert [i.key for i in await astore.asearch(("async",), filter={"n": {"$gte": 2}})] == ["c", "b"]
    assert await astore.alist_namespaces(prefix=("async",)) == [("async", "ns"), ("async", "other")]
    results = await astore.abatch([GetOp(ns, "a"), GetOp(ns, "b"), GetOp(("async", "other"), "c"),
                                   SearchOp(("async",), limit=1), ListNamespacesOp(max_depth=1)])
    assert [r.key for r in results[:3]] == ["a", "b", "c"]  # type: ignore[union-attr]
    assert results[4] == [("async",)]
    await astore.adelete(ns, "a")
    assert await astore.aget(ns, "a") is None
    # Concurrent calls on one store.
    await asyncio.gather(*(astore.aput(ns, f"c{i}", {"i": i}) for i in range(10)))
    assert len(await astore.asearch(ns, filter={"i": {"$gte": 0}}, limit=20)) == 10


@pytest.mark.anyio
async def test_sync_client_serves_async_calls_too(server: Server) -> None:
    with engram.Client(server.http_url, api_key=server.api_key) as client:
        store = EngramStore(client, agent_prefix=_prefix())
        await store.aput(("t",), "k", {"v": 1})
        got = await store.aget(("t",), "k")
        assert got is not None and got.value == {"v": 1}


@pytest.mark.anyio
async def test_store_made_from_url_closes_its_clients(server: Server) -> None:
    async with EngramStore(url=server.http_url, api_key=server.api_key, agent_prefix=_prefix()) as store:
        await store.aput(("t",), "k", {"v": 1})
        assert store.get(("t",), "k") is not None  # the sync client, made on first use
    store.close()


def test_store_from_url_across_event_loops_and_threads(server: Server) -> None:
    with EngramStore(url=server.grpc_url, api_key=server.api_key, agent_prefix=_prefix()) as store:
        asyncio.run(store.aput(("loops",), "a", {"v": 1}))
        got = asyncio.run(store.aget(("loops",), "a"))  # another event loop: another async client
        assert got is not None and got.value == {"v": 1}
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda i: store.put(("threads",), f"k{i}", {"i": i}), range(8)))
        assert len(store.search(("threads",), limit=20)) == 8


# --- inside a LangGraph graph ---------------------------------------------------------------


class State(TypedDict, total=False):
    user: str
    fact: str
    question: str
    recalled: list[str]


def _remember(state: State, runtime: Runtime[None]) -> dict[str, Any]:
    assert runtime.store is not None
    ns = ("memories", state["user"])
    if state.get("fact"):
        runtime.store.put(ns, str(len(runtime.store.search(ns, limit=100))), {"text": state["fact"]})
    return {}


def _recall(state: State, runtime: Runtime[None]) -> dict[str, Any]:
    assert runtime.store is not None
    hits = runtime.store.search(("memories", state["user"]), query=state.get("question", ""), limit=3)
    return {"recalled": [h.value["text"] for h in hits]}


async def _aremember(state: State, runtime: Runtime[None]) -> dict[str, Any]:
    assert runtime.store is not None
    ns = ("memories", state["user"])
    if state.get("fact"):
        await runtime.store.aput(ns, str(len(await runtime.store.asearch(ns, limit=100))), {"text": state["fact"]})
    return {}


async def _arecall(state: State, runtime: Runtime[None]) -> dict[str, Any]:
    assert runtime.store is not None
    hits = await runtime.store.asearch(("memories", state["user"]), query=state.get("question", ""), limit=3)
    return {"recalled": [h.value["text"] for h in hits]}


def _graph(remember: Any, recall: Any) -> Any:
    builder = StateGraph(State)
    builder.add_node("remember", remember)
    builder.add_node("recall", recall)
    builder.add_edge(START, "remember")
    builder.add_edge("remember", "recall")
    builder.add_edge("recall", END)
    return builder


def test_graph_uses_the_store(store: EngramStore) -> None:
    graph = _graph(_remember, _recall).compile(store=store)
    graph.invoke({"user": "u1", "fact": "my cat is called Miso"})
    graph.invoke({"user": "u1", "fact": "I live in Lisbon"})
    out = graph.invoke({"user": "u1", "question": "what is the name of my cat?"})
    assert out["recalled"][0] == "my cat is called Miso"
    assert len(out["recalled"]) == 2
    assert store.list_namespaces() == [("memories", "u1")]


@pytest.mark.anyio
async def test_async_graph_uses_the_store(astore: EngramStore) -> None:
    graph = _graph(_aremember, _arecall).compile(store=astore)
    await graph.ainvoke({"user": "u2", "fact": "my dog is called Rex"})
    await graph.ainvoke({"user": "u2", "fact": "I drink green tea"})
    out = await graph.ainvoke({"user": "u2", "question": "what is my dog's name?"})
    assert out["recalled"][0] == "my dog is called Rex"
