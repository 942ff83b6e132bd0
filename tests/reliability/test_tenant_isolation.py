"""Tenant isolation for every RPC on every transport, generated from the RPC list.

For each RPC of the descriptor set there must be an entry in POLICY below (a new RPC without
one fails `test_every_rpc_has_a_policy`), saying what a call aimed at the victim agent B looks
like and whether the RPC writes or needs admin. Then, on gRPC and REST:
* a key pinned to agent A cannot read, list, recall, export, update, delete or link B's memories;
* a read-only key cannot write; a revoked key stops working at once;
* admin RPCs need an admin key.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest

from bench.common import ROOT_KEY, ServerProcess
from conformance.api import Rpc, message_class, normalise, rpcs
from conformance.targets import Outcome, RawRestTarget

# What a "call on agent B" is for each RPC. `ids` are B's memories made by the fixture.
Req = Callable[[dict[str, str]], Any]
POLICY: dict[str, tuple[Req, str]] = {
    # name: (request aimed at agent B, kind) — kind: read | write | admin | open | list
    # ("list": a pinned key sees only its own agents, so the answer must not mention agent B)
    "MemoryService.StoreMemory": (lambda b: {"agent_id": b["agent"], "content": "intrusion"}, "write"),
    "MemoryService.BatchStoreMemories": (lambda b: {"requests": [{"agent_id": b["agent"], "content": "x"}]}, "write"),
    "MemoryService.GetMemory": (lambda b: {"id": b["m1"]}, "read"),
    "MemoryService.UpdateMemory": (lambda b: {"memory": {"id": b["m1"], "content": "changed"}, "update_mask": "content"}, "write"),
    "MemoryService.DeleteMemory": (lambda b: {"id": b["m1"]}, "write"),
    "MemoryService.ListMemories": (lambda b: {"agent_id": b["agent"]}, "read"),
    "MemoryService.Recall": (lambda b: {"agent_id": b["agent"], "query": "secret"}, "read"),
    "MemoryService.BatchRecall": (lambda b: {"requests": [{"agent_id": b["agent"], "query": "secret"}]}, "read"),
    "MemoryService.ForgetMemories": (lambda b: {"agent_id": b["agent"], "filter": {"tags_any": ["b"]}}, "write"),
    "MemoryService.GetMemoryHistory": (lambda b: {"id": b["m1"]}, "read"),
    "MemoryService.LinkMemories": (lambda b: {"agent_id": b["agent"], "source_id": b["m1"], "target_id": b["m2"]}, "write"),
    "MemoryService.UnlinkMemories": (lambda b: {"agent_id": b["agent"], "source_id": b["m1"], "target_id": b["m2"]}, "write"),
    "MemoryService.GetMemoryGraph": (lambda b: {"agent_id": b["agent"], "id": b["m1"]}, "read"),
    "MemoryService.ExportMemories": (lambda b: {"agent_id": b["agent"]}, "read"),
    "MemoryService.ConsolidateMemories": (lambda b: {"agent_id": b["agent"], "dry_run": False}, "write"),
    "MemoryService.WatchMemories": (lambda b: {"agent_id": b["agent"], "start_after": "0"}, "read"),
    "MemoryService.ImportMemories": (lambda b: [{"memory": {"id": "intruder-1", "agent_id": b["agent"], "content": "x"}}], "write"),
    "AgentService.ListAgents": (lambda b: {"page_size": 1000}, "list"),
    "AgentService.GetAgent": (lambda b: {"agent_id": b["agent"]}, "read"),
    "AgentService.DeleteAgent": (lambda b: {"agent_id": b["agent"]}, "write"),
    "AdminService.Health": (lambda b: {}, "open"),
    "AdminService.GetServerInfo": (lambda b: {}, "open"),
    "AdminService.GetStats": (lambda b: {}, "admin"),
    "AdminService.CreateApiKey": (lambda b: {"name": "escalation", "role": "API_KEY_ROLE_ADMIN"}, "admin"),
    "AdminService.ListApiKeys": (lambda b: {}, "admin"),
    "AdminService.RevokeApiKey": (lambda b: {"id": b["root_like_key_id"]}, "admin"),
    "AdminService.GetClusterStatus": (lambda b: {}, "open"),
    "AdminService.DrainClusterNode": (lambda b: {"node_id": "n1"}, "admin"),
    "EmbeddingService.Embed": (lambda b: {"texts": ["hello"]}, "open"),
}
DENIED = {"PERMISSION_DENIED", "NOT_FOUND"}  # NOT_FOUND where admitting existence would leak it


class GrpcTarget:
    """Generic gRPC calls from proto3 JSON with grpcio, for any RPC of the descriptor."""

    name = "grpc"

    def __init__(self, target: str) -> None:
        self._channel = grpc.insecure_channel(target)

    def call(self, rpc: Rpc, request: Any, api_key: str | None, timeout_ms: int = 0) -> Outcome:
        req_cls, resp_cls = message_class(rpc.input_type), message_class(rpc.output_type)
        metadata = (("authorization", f"Bearer {api_key}"),) if api_key else ()
        encode = lambda r: bytes(req_cls.from_dict(_mask_fix(r)))  # noqa: E731
        try:
            if rpc.client_streaming:
                resp = self._channel.stream_unary(rpc.grpc_path, lambda b: b, resp_cls.FromString)(
                    iter([encode(r) for r in request]), metadata=metadata, timeout=30)
                return Outcome(response=resp.to_dict())
            if rpc.server_streaming:
                stream = self._channel.unary_stream(rpc.grpc_path, lambda b: b, resp_cls.FromString)(
                    encode(request), metadata=metadata, timeout=30)
                return Outcome(response=[m.to_dict() for m in stream])
            resp = self._channel.unary_unary(rpc.grpc_path, lambda b: b, resp_cls.FromString)(
                encode(request), metadata=metadata, timeout=30)
            return Outcome(response=resp.to_dict())
        except grpc.RpcError as err:
            return Outcome(error={"code": err.code().name, "message": err.details() or ""})

    def close(self) -> None:
        self._channel.close()


def _mask_fix(request: Any) -> Any:
    """betterproto2 cannot parse a FieldMask from its JSON string form; give it the object form."""
    if isinstance(request, dict) and isinstance(request.get("update_mask"), str):
        return {**request, "update_mask": {"paths": request["update_mask"].split(",")}}
    return request


def test_every_rpc_has_a_policy() -> None:
    missing = sorted(set(rpcs()) - set(POLICY))
    assert not missing, f"RPCs without an isolation policy (add them to POLICY): {missing}"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, dict[str, str]]]:
    server = ServerProcess(data_dir=tmp_path_factory.mktemp("iso") / "data", encryption_key=secrets.token_hex(32))
    server.start()
    rest = RawRestTarget(server.base_url)
    table = rpcs()

    def root(name: str, req: Any) -> Any:
        out = rest.call(table[name], req, ROOT_KEY, 0)
        assert out.error is None, f"{name}: {out.error}"
        return out.response

    b = {"agent": "victim-b"}
    b["m1"] = root("MemoryService.StoreMemory", {"agent_id": "victim-b", "content": "B's secret", "tags": ["b"]})["memory"]["id"]
    b["m2"] = root("MemoryService.StoreMemory", {"agent_id": "victim-b", "content": "B's other secret"})["memory"]["id"]
    root("MemoryService.StoreMemory", {"agent_id": "tenant-a", "content": "A's own"})

    def key(role: str, **scope: Any) -> tuple[str, str]:
        out = root("AdminService.CreateApiKey", {"name": f"iso {role}", "role": role, **scope})
        return out["key"], out["api_key"]["id"]

    b["pinned_a"], _ = key("API_KEY_ROLE_READ_WRITE", agent_ids=["tenant-a"])
    b["read_only"], _ = key("API_KEY_ROLE_READ_ONLY")
    b["read_write"], _ = key("API_KEY_ROLE_READ_WRITE")
    b["revoked"], revoked_id = key("API_KEY_ROLE_ADMIN")
    _, b["root_like_key_id"] = key("API_KEY_ROLE_ADMIN")
    root("AdminService.RevokeApiKey", {"id": revoked_id})
    rest.close()
    yield server, b
    server.stop()


def _targets(server: ServerProcess) -> list[Any]:
    return [GrpcTarget(server.grpc_target), RawRestTarget(server.base_url)]


@pytest.mark.parametrize("rpc_name", sorted(POLICY))
def test_pinned_key_cannot_touch_other_agent(world: tuple[ServerProcess, dict[str, str]], rpc_name: str) -> None:
    server, b = world
    make, kind = POLICY[rpc_name]
    if kind in ("open",):
        pytest.skip("not agent-scoped")
    for target in _targets(server):
        out = target.call(rpcs()[rpc_name], make(b), b["pinned_a"], 0)
        if kind == "list" and out.error is None:
            assert b["agent"] not in json.dumps(out.response), f"{target.name} {rpc_name}: agent B listed to a pinned key"
            continue
        assert out.error is not None, f"{target.name} {rpc_name}: pinned key reached agent B: {json.dumps(out.response)[:300]}"
        assert out.error["code"] in DENIED, f"{target.name} {rpc_name}: {out.error}"
        target.close()


@pytest.mark.parametrize("rpc_name", sorted(n for n, (_, k) in POLICY.items() if k == "write"))
def test_read_only_key_cannot_write(world: tuple[ServerProcess, dict[str, str]], rpc_name: str) -> None:
    server, b = world
    make, _ = POLICY[rpc_name]
    for target in _targets(server):
        out = target.call(rpcs()[rpc_name], make(b), b["read_only"], 0)
        assert out.error is not None and out.error["code"] == "PERMISSION_DENIED", f"{target.name} {rpc_name}: {out}"
        target.close()


@pytest.mark.parametrize("rpc_name", sorted(n for n, (_, k) in POLICY.items() if k == "admin"))
def test_admin_rpcs_need_admin(world: tuple[ServerProcess, dict[str, str]], rpc_name: str) -> None:
    server, b = world
    make, _ = POLICY[rpc_name]
    for target in _targets(server):
        out = target.call(rpcs()[rpc_name], make(b), b["read_write"], 0)
        assert out.error is not None and out.error["code"] == "PERMISSION_DENIED", f"{target.name} {rpc_name}: {out}"
        target.close()


@pytest.mark.parametrize("rpc_name", sorted(n for n, (_, k) in POLICY.items() if k != "open"))
def test_revoked_key_stops_working(world: tuple[ServerProcess, dict[str, str]], rpc_name: str) -> None:
    server, b = world
    make, _ = POLICY[rpc_name]
    for target in _targets(server):
        out = target.call(rpcs()[rpc_name], make(b), b["revoked"], 0)
        assert out.error is not None and out.error["code"] == "UNAUTHENTICATED", f"{target.name} {rpc_name}: {out}"
        target.close()


def test_victim_data_intact(world: tuple[ServerProcess, dict[str, str]]) -> None:
    """After every attempt above, B's memories are exactly as stored."""
    server, b = world
    target = RawRestTarget(server.base_url)
    out = target.call(rpcs()["MemoryService.ListMemories"], {"agent_id": "victim-b"}, ROOT_KEY, 0)
    assert out.error is None
    listed = normalise("ListMemoriesResponse", out.response)
    assert listed["total_size"] == 2
    assert {m["content"] for m in listed["memories"]} == {"B's secret", "B's other secret"}
    target.close()


# --- memory ids across tenants --------------------------------------------------------------------
# Memory ids are per agent. A key pinned to agent A that names agent B's ids must learn nothing
# about them: every answer is the one the same call gets for an id that exists nowhere (status
# and message, the id itself aside), and B's memories stay as they are. B's ids are the victim's
# m1/m2 (server-made) of the fixture above; A is "tenant-a".
VOLATILE = {"id", "created_at", "updated_at", "event_time", "last_accessed_at", "source_id", "target_id", "took_ms"}


def _same_shape(value: Any, ident: str) -> Any:
    """A response with the probed id replaced and per-memory times and ids left out."""
    if isinstance(value, dict):
        return {k: _same_shape(v, ident) for k, v in sorted(value.items()) if k not in VOLATILE}
    if isinstance(value, list):
        return [_same_shape(v, ident) for v in value]
    if isinstance(value, str):
        return value.replace(ident, "<ID>")
    return value


def _answer(target: Any, rpc_name: str, request: Any, key: str, ident: str) -> Any:
    rpc = rpcs()[rpc_name]
    out = target.call(rpc, request, key, 0)
    if out.error is not None:
        return ("error", out.error["code"], out.error["message"].replace(ident, "<ID>"))
    return ("ok", _same_shape(normalise(rpc.output_type, out.response), ident))


def _victim_state(server: ServerProcess, agent: str, ids: list[str]) -> Any:
    """What root sees of a victim agent: its export, agent record, and each memory's history and graph."""
    rest = RawRestTarget(server.base_url)
    state = [_answer(rest, "MemoryService.ExportMemories", {"agent_id": agent}, ROOT_KEY, "")]
    for mid in ids:
        for rpc in ("MemoryService.GetMemoryHistory", "MemoryService.GetMemoryGraph"):
            state.append(rest.call(rpcs()[rpc], {"id": mid, "agent_id": agent}, ROOT_KEY, 0).response)
    state.append(_answer(rest, "AgentService.GetAgent", {"agent_id": agent}, ROOT_KEY, ""))
    rest.close()
    return state


# Calls by id with a key pinned to tenant-a: (name, rpc, request for a probed id `x`).
TA, TB = "tenant-a", "victim-b"
UPDATE = {"content": "hijack"}
BY_ID: list[tuple[str, str, Callable[[str], Any]]] = [
    ("get", "MemoryService.GetMemory", lambda x: {"id": x}),
    ("get as A", "MemoryService.GetMemory", lambda x: {"id": x, "agent_id": TA}),
    ("get as B", "MemoryService.GetMemory", lambda x: {"id": x, "agent_id": TB}),
    ("history", "MemoryService.GetMemoryHistory", lambda x: {"id": x}),
    ("history as A", "MemoryService.GetMemoryHistory", lambda x: {"id": x, "agent_id": TA}),
    ("history as B", "MemoryService.GetMemoryHistory", lambda x: {"id": x, "agent_id": TB}),
    ("update", "MemoryService.UpdateMemory", lambda x: {"memory": {"id": x, **UPDATE}, "update_mask": "content"}),
    ("update as A", "MemoryService.UpdateMemory",
     lambda x: {"memory": {"id": x, **UPDATE}, "update_mask": "content", "agent_id": TA}),
    ("update as B", "MemoryService.UpdateMemory",
     lambda x: {"memory": {"id": x, **UPDATE}, "update_mask": "content", "agent_id": TB}),
    ("update importance", "MemoryService.UpdateMemory", lambda x: {"memory": {"id": x, "importance": 0.9}}),
    ("delete", "MemoryService.DeleteMemory", lambda x: {"id": x}),
    ("delete as A", "MemoryService.DeleteMemory", lambda x: {"id": x, "agent_id": TA}),
    ("delete as B", "MemoryService.DeleteMemory", lambda x: {"id": x, "agent_id": TB}),
    ("link from", "MemoryService.LinkMemories", lambda x: {"agent_id": TA, "source_id": x, "target_id": "a-own"}),
    ("link to", "MemoryService.LinkMemories", lambda x: {"agent_id": TA, "source_id": "a-own", "target_id": x}),
    ("link in B", "MemoryService.LinkMemories", lambda x: {"agent_id": TB, "source_id": x, "target_id": x + "z"}),
    ("unlink from", "MemoryService.UnlinkMemories", lambda x: {"agent_id": TA, "source_id": x, "target_id": "a-own"}),
    ("unlink to", "MemoryService.UnlinkMemories", lambda x: {"agent_id": TA, "source_id": "a-own", "target_id": x}),
    ("unlink in B", "MemoryService.UnlinkMemories", lambda x: {"agent_id": TB, "source_id": x, "target_id": x + "z"}),
    ("graph", "MemoryService.GetMemoryGraph", lambda x: {"agent_id": TA, "id": x}),
    ("graph in B", "MemoryService.GetMemoryGraph", lambda x: {"agent_id": TB, "id": x}),
    ("list by id", "MemoryService.ListMemories", lambda x: {"agent_id": TA, "filter": {"ids": [x]}}),
    ("recall by id", "MemoryService.Recall", lambda x: {"agent_id": TA, "query": "secret", "filter": {"ids": [x]}}),
    ("forget by id", "MemoryService.ForgetMemories", lambda x: {"agent_id": TA, "filter": {"ids": [x]}}),
    ("export by id", "MemoryService.ExportMemories", lambda x: {"agent_id": TA, "filter": {"ids": [x]}}),
]


@pytest.fixture(scope="module")
def a_own(world: tuple[ServerProcess, dict[str, str]]) -> str:
    server, b = world
    rest = RawRestTarget(server.base_url)
    own = {"agent_id": "tenant-a", "id": "a-own", "content": "A's linked"}
    out = rest.call(rpcs()["MemoryService.StoreMemory"], own, b["pinned_a"], 0)
    rest.close()
    assert out.error is None, out.error
    return "a-own"


@pytest.mark.parametrize("call", [c[0] for c in BY_ID])
def test_other_tenants_ids_answer_as_ids_that_exist_nowhere(
    world: tuple[ServerProcess, dict[str, str]], a_own: str, call: str
) -> None:
    server, b = world
    _, rpc_name, make = next(c for c in BY_ID if c[0] == call)
    before = _victim_state(server, "victim-b", [b["m1"], b["m2"]])
    for target in _targets(server):
        for victim in (b["m1"], b["m2"]):
            nowhere = f"nowhere-{secrets.token_hex(4)}"
            got = _answer(target, rpc_name, make(victim), b["pinned_a"], victim)
            expected = _answer(target, rpc_name, make(nowhere), b["pinned_a"], nowhere)
            assert got == expected, f"{target.name} {call}: B's id answers {got}, an id of no one {expected}"
        target.close()
    assert _victim_state(server, "victim-b", [b["m1"], b["m2"]]) == before, f"{call} changed agent B"


@pytest.fixture(scope="module")
def b2_ids(world: tuple[ServerProcess, dict[str, str]]) -> list[str]:
    """Four memories of a second victim agent, whose ids tenant A will store and import."""
    server, _ = world
    rest = RawRestTarget(server.base_url)
    ids = []
    for i in range(4):
        out = rest.call(rpcs()["MemoryService.StoreMemory"], {"agent_id": "victim-b2", "content": f"B2 secret {i}"},
                        ROOT_KEY, 0)
        assert out.error is None, out.error
        ids.append(out.response["memory"]["id"])
    rest.close()
    return ids


def test_storing_and_importing_other_tenants_ids_makes_own_memories(
    world: tuple[ServerProcess, dict[str, str]], b2_ids: list[str]
) -> None:
    """A store or an import into A with B's id creates A's own memory, answered exactly as for an
    id that exists nowhere; B's memories stay as they are; from then on A's by-id calls find A's
    memory, never B's."""
    server, b = world
    before = _victim_state(server, "victim-b2", b2_ids)
    store = lambda x: {"agent_id": "tenant-a", "id": x, "content": "A's copy"}  # noqa: E731
    imp = lambda x: [{"memory": {"id": x, "agent_id": "tenant-a", "content": "A's import"}}]  # noqa: E731
    for target, (stored, imported) in zip(_targets(server), (b2_ids[:2], b2_ids[2:]), strict=True):
        nowhere = f"nowhere-{secrets.token_hex(4)}"
        got = _answer(target, "MemoryService.StoreMemory", store(stored), b["pinned_a"], stored)
        expected = _answer(target, "MemoryService.StoreMemory", store(nowhere), b["pinned_a"], nowhere)
        assert got == expected, f"{target.name} store: B's id answers {got}, an id of no one {expected}"
        assert got[0] == "ok" and got[1]["created"], got
        nowhere = f"nowhere-{secrets.token_hex(4)}"
        got = _answer(target, "MemoryService.ImportMemories", imp(imported), b["pinned_a"], imported)
        expected = _answer(target, "MemoryService.ImportMemories", imp(nowhere), b["pinned_a"], nowhere)
        assert got == expected, f"{target.name} import: B's id answers {got}, an id of no one {expected}"
        assert got[0] == "ok" and got[1]["imported_count"] == 1, got
        for mid, content in ((stored, "A's copy"), (imported, "A's import")):
            mine = target.call(rpcs()["MemoryService.GetMemory"], {"id": mid}, b["pinned_a"], 0)
            assert mine.error is None, mine.error
            mem = normalise("GetMemoryResponse", mine.response)["memory"]
            assert (mem["agent_id"], mem["content"]) == ("tenant-a", content)
        target.close()
    assert _victim_state(server, "victim-b2", b2_ids) == before


def test_an_id_used_by_one_tenant_stays_free_for_another(world: tuple[ServerProcess, dict[str, str]]) -> None:
    """A cannot block B's ids: B stores an id A already holds and gets its own memory."""
    server, b = world
    rest = RawRestTarget(server.base_url)
    key_c = rest.call(rpcs()["AdminService.CreateApiKey"],
                      {"name": "tenant c", "role": "API_KEY_ROLE_READ_WRITE", "agent_ids": ["tenant-c"]}, ROOT_KEY, 0)
    assert key_c.error is None, key_c.error
    pinned_c = key_c.response["key"]
    for target in _targets(server):
        taken = f"taken-{target.name.replace('/', '-')}-{secrets.token_hex(3)}"
        store = rpcs()["MemoryService.StoreMemory"]
        mine = {"agent_id": "tenant-a", "id": taken, "content": "A was here first"}
        first = target.call(store, mine, b["pinned_a"], 0)
        assert first.error is None, first.error
        again = target.call(store, {"agent_id": "tenant-c", "id": taken, "content": "C's own"}, pinned_c, 0)
        assert again.error is None, f"{target.name}: A's id blocked C: {again.error}"
        assert normalise("StoreMemoryResponse", again.response)["created"]
        for key, agent, content in ((b["pinned_a"], "tenant-a", "A was here first"), (pinned_c, "tenant-c", "C's own")):
            got = target.call(rpcs()["MemoryService.GetMemory"], {"id": taken}, key, 0)
            assert got.error is None, got.error
            mem = normalise("GetMemoryResponse", got.response)["memory"]
            assert (mem["agent_id"], mem["content"]) == (agent, content)
        target.close()
    rest.close()
