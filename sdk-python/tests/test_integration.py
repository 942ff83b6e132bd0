"""Every client method against a real engram-server, over REST and over gRPC."""

from __future__ import annotations

import math
import uuid

import betterproto2
import pytest

import engram
from engram import errors
from engram.models import ApiKeyRole, MemoryType, RecallMode

from .conftest import Server

pytestmark = pytest.mark.server


def test_store_get_update_history_delete(client: engram.Client, agent_id: str) -> None:
    stored = client.store(agent_id, "The user prefers dark mode", memory_type="semantic", importance=0.8,
                          tags=["ui", "prefs"], metadata={"source": "chat", "n": 2}, session_id="s1")
    m = stored.memory
    assert stored.created and m is not None and m.id
    assert (m.agent_id, m.content, m.memory_type) == (agent_id, "The user prefers dark mode", MemoryType.SEMANTIC)
    assert math.isclose(m.importance, 0.8, rel_tol=1e-6) and m.tags == ["ui", "prefs"]
    assert engram._convert.plain(m.metadata) == {"source": "chat", "n": 2}
    assert m.version == 1 and m.created_at is not None

    got = client.get(m.id, agent_id=agent_id).memory
    assert got is not None and got.content == m.content

    updated = client.update(m.id, agent_id=agent_id, content="The user prefers light mode", tags=[],
                            importance=0.0).memory
    assert updated is not None and updated.version == 2
    assert updated.content == "The user prefers light mode" and updated.tags == [] and updated.importance == 0.0
    assert updated.memory_type == MemoryType.SEMANTIC  # untouched

    versions = client.history(m.id, agent_id=agent_id).versions
    assert [v.version for v in versions] == [1, 2]
    assert versions[0].content == "The user prefers dark mode"

    assert client.delete(m.id, agent_id=agent_id).id == m.id
    with pytest.raises(errors.NotFound):
        client.get(m.id)


def test_store_with_client_id_is_idempotent(client: engram.Client, agent_id: str) -> None:
    mid = "fixed-" + uuid.uuid4().hex[:8]
    first = client.store(agent_id, "same content", id=mid)
    again = client.store(agent_id, "same content", id=mid)
    assert first.created and not again.created
    assert again.memory is not None and again.memory.id == mid
    with pytest.raises(errors.AlreadyExists) as info:
        client.store(agent_id, "other content", id=mid)
    assert info.value.code == "ALREADY_EXISTS" and info.value.from_server


def test_batch_store_list_and_iterate(client: engram.Client, agent_id: str) -> None:
    r = client.batch_store([{"agent_id": agent_id, "content": f"fact number {i}", "tags": ["batch"],
                             "importance": i / 10} for i in range(7)])
    assert r.created_count == 7 and len(r.memories) == 7
    page = client.list(agent_id, page_size=3)
    assert page.total_size == 7 and len(page.memories) == 3 and page.next_page_token
    ids = [m.id for m in client.iter_memories(agent_id, page_size=3)]
    assert sorted(ids) == sorted(m.id for m in r.memories)
    high = client.list(agent_id, filter={"min_importance": 0.45}, order_by="importance desc")
    assert [round(m.importance, 1) for m in high.memories] == [0.6, 0.5]


def test_recall_and_batch_recall(client: engram.Client, agent_id: str) -> None:
    client.batch_store([
        {"agent_id": agent_id, "content": "Alice's favourite colour is teal", "tags": ["alice"]},
        {"agent_id": agent_id, "content": "The deploy failed with error ERR_CONN_RESET", "tags": ["ops"]},
        {"agent_id": agent_id, "content": "Bob lives in Lisbon and likes surfing", "tags": ["bob"]},
    ])
    r = client.recall(agent_id, "what colour does Alice like?", top_k=2, explain=True)
    assert r.memories and r.memories[0].content.startswith("Alice")
    assert r.memories[0].score >= r.memories[-1].score and len(r.memories) <= 2
    assert r.memories[0].explanation is not None
    kw = client.recall(agent_id, "ERR_CONN_RESET", mode=RecallMode.KEYWORD, top_k=1)
    assert kw.memories[0].content.startswith("The deploy failed")
    only_bob = client.recall(agent_id, "favourite colour", filter={"tags_any": ["bob"]})
    assert [m.tags for m in only_bob.memories] == [["bob"]]
    batch = client.batch_recall([{"agent_id": agent_id, "query": "surfing", "top_k": 1},
                                 {"agent_id": agent_id, "query": "deploy error", "top_k": 1, "mode": "keyword"}])
    assert len(batch.responses) == 2
    assert batch.responses[0].memories[0].content.startswith("Bob")


def test_forget(client: engram.Client, agent_id: str) -> None:
    client.batch_store([{"agent_id": agent_id, "content": f"temp {i}", "tags": ["tmp"]} for i in range(3)]
                       + [{"agent_id": agent_id, "content": "keep me", "tags": ["keep"]}])
    dry = client.forget(agent_id, filter={"tags_any": ["tmp"]}, dry_run=True)
    assert (dry.matched_count, dry.deleted_count, dry.dry_run) == (3, 0, True) and len(dry.ids) == 3
    done = client.forget(agent_id, filter={"tags_any": ["tmp"]})
    assert done.deleted_count == 3
    assert client.list(agent_id).total_size == 1
    with pytest.raises(errors.InvalidArgument):
        client.forget(agent_id, filter={})


def test_link_graph_unlink(client: engram.Client, agent_id: str) -> None:
    ids = [m.id for m in client.batch_store(
        [{"agent_id": agent_id, "content": f"node {i}"} for i in range(3)]).memories]
    link = client.link(agent_id, ids[0], ids[1], relation="caused_by", weight=0.5).link
    assert link is not None and (link.source_id, link.target_id, link.relation) == (ids[0], ids[1], "caused_by")
    client.link(agent_id, ids[1], ids[2])
    g = client.graph(agent_id, ids[0], depth=2)
    assert g.memories[0].id == ids[0] and {m.id for m in g.memories} == set(ids)
    assert len(g.links) == 2
    assert client.unlink(agent_id, ids[0], ids[1]).removed_count == 1
    assert {m.id for m in client.graph(agent_id, ids[0], depth=2).memories} == {ids[0]}


def test_export_and_import(client: engram.Client, agent_id: str) -> None:
    client.batch_store([{"agent_id": agent_id, "content": f"exported {i}", "tags": ["x"]} for i in range(5)])
    exported = list(client.export(agent_id))
    assert len(exported) == 5 and all(m.embedding_model for m in exported)
    # Ids are per agent: the same ids copy into another agent, and importing again skips them.
    same = client.import_memories(exported, agent_id=agent_id + "-same")
    assert (same.imported_count, same.skipped_count) == (5, 0)
    again = client.import_memories(exported, agent_id=agent_id + "-same")
    assert (again.imported_count, again.skipped_count) == (0, 5)
    target = agent_id + "-copy"
    copies = [{**m.to_dict(casing=betterproto2.Casing.SNAKE), "id": "copy-" + m.id} for m in exported]
    r = client.import_memories(copies, agent_id=target)
    assert (r.imported_count, r.skipped_count) == (5, 0)
    again = client.import_memories(iter(copies), agent_id=target)
    assert (again.imported_count, again.skipped_count) == (0, 5)
    copied = {m.id: m for m in client.iter_memories(target)}
    assert set(copied) == {"copy-" + m.id for m in exported}
    assert all(copied["copy-" + m.id].content == m.content for m in exported)
    assert all(copied["copy-" + m.id].created_at == m.created_at for m in exported)
    assert len(list(client.export(agent_id, filter={"tags_any": ["nope"]}))) == 0


def test_agents(client: engram.Client, agent_id: str) -> None:
    client.store(agent_id, "agent memory", memory_type="procedural")
    agents = {a.agent_id: a for a in client.iter_agents(page_size=1)}
    assert agents[agent_id].memory_count == 1
    page = client.list_agents(page_size=1)
    assert page.total_size >= 1 and len(page.agents) == 1
    agent = client.get_agent(agent_id).agent
    assert agent is not None and agent.memory_count == 1 and agent.memory_type_counts.get("procedural") == 1
    assert client.delete_agent(agent_id).deleted_memory_count == 1
    with pytest.raises(errors.NotFound):
        client.get_agent(agent_id)


def test_admin(client: engram.Client) -> None:
    assert client.health().status == "healthy"
    info = client.server_info()
    assert info.api_version == "v1" and info.embedding_dimensions > 0 and info.auth_required
    assert info.limits is not None and info.limits.max_top_k == 100
    assert client.stats().uptime_seconds > 0
    cluster = client.cluster_status()
    assert (cluster.node_count, cluster.replication_factor) == (1, 1) and cluster.nodes[0].healthy
    with pytest.raises(errors.FailedPrecondition):  # a single server has no cluster to drain
        client.drain_cluster_node(cluster.nodes[0].node_id)


def test_api_keys(client: engram.Client, server: Server, transport: str, agent_id: str) -> None:
    created = client.create_api_key("ro-" + agent_id, "read_only", agent_ids=[agent_id])
    assert created.key and created.api_key is not None and created.api_key.role == ApiKeyRole.READ_ONLY
    key_id = created.api_key.id
    assert key_id in {k.id for k in client.list_api_keys().api_keys}
    client.store(agent_id, "visible to the read-only key")
    with engram.Client(server.url(transport), api_key=created.key) as ro:
        assert ro.list(agent_id).total_size == 1
        with pytest.raises(errors.PermissionDenied):
            ro.store(agent_id, "not allowed")
        with pytest.raises(errors.PermissionDenied):
            ro.list(agent_id + "-other")
        revoked = client.revoke_api_key(key_id).api_key
        assert revoked is not None and revoked.revoked_at is not None
        with pytest.raises(errors.Unauthenticated):
            ro.list(agent_id)
    assert key_id not in {k.id for k in client.list_api_keys().api_keys}
    assert key_id in {k.id for k in client.list_api_keys(include_revoked=True).api_keys}


def test_embed(client: engram.Client) -> None:
    vectors = client.embed(["hello world", "bonjour"], input_type="query")
    dims = client.server_info().embedding_dimensions
    assert len(vectors) == 2 and all(len(v) == dims for v in vectors)
    assert math.isclose(sum(x * x for x in vectors[0]), 1.0, rel_tol=1e-3)


def test_errors_are_the_same_on_both_transports(client: engram.Client, server: Server, transport: str) -> None:
    with pytest.raises(errors.NotFound) as nf:
        client.get("does-not-exist")
    assert nf.value.code == "NOT_FOUND" and nf.value.from_server
    with pytest.raises(errors.InvalidArgument) as bad:
        client.store("a", "")
    assert "content" in bad.value.message
    with pytest.raises(errors.InvalidArgument):
        client.recall("a", "q", top_k=100000)
    with engram.Client(server.url(transport), api_key="wrong-key-0123456789") as anon:
        with pytest.raises(errors.Unauthenticated):
            anon.list("a")
        assert anon.health().status == "healthy"  # health needs no key


def test_unreachable_server_raises_unavailable(transport: str) -> None:
    from .conftest import _free_port

    url = f"{'grpc' if transport == 'grpc' else 'http'}://127.0.0.1:{_free_port()}"
    with engram.Client(url, retry=None, timeout=3) as c, pytest.raises(errors.Unavailable) as info:
        c.health()
    assert info.value.from_server is False
