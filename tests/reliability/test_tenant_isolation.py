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
    import secrets

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
