"""Property: a request that fails changes nothing.

Hypothesis draws write requests (store, batch store, update, delete, link, unlink, forget, import,
create key) from valid templates aimed at a small world of agents, with zero to two boundary
mutations each (`boundary.mutations`, the ones test_boundaries sends), and sends each over gRPC
or REST. Whenever one fails (non-OK / 4xx), the observable state is compared before and after:
the list of agents, the export of every agent, the list of API keys (revoked included), and the
history and graph of every memory the request names and of the world's seed memories.

An import here is at most three lines: a streamed import commits every 128 records (documented
as resumable, `engram import`), so a failure after the first 128 keeps them by design.

20 examples per RPC by default (180 in all); ENGRAM_STRESS=1 runs 150 per RPC.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.common import ROOT_KEY, ServerProcess

from .boundary import (
    ABSENT,
    Caller,
    Case,
    Mutation,
    apply_grpc,
    apply_json,
    mutations,
    parse_template,
    request_class,
    ts_seconds,
)
from .boundary import request as send
from .conftest import STRESS

AGENTS = ("pa", "pb")
SEEDS = {"pa": ("p1", "p2", "p3"), "pb": ("q1", "p1")}  # "p1" is an id both agents hold
IDS = ("p1", "p2", "p3", "q1", "nowhere")
EXAMPLES = 150 if STRESS else 20  # per RPC (9 of them)


def templates(agent: str, mid: str, other: str) -> dict[str, Any]:
    store = {"agent_id": agent, "content": f"property memory {mid}", "tags": ["t"], "importance": 0.5,
             "metadata": {"k": "v"}, "event_time": "2024-01-01T00:00:00Z"}
    return {
        "MemoryService.StoreMemory": {**store, "id": mid},
        "MemoryService.BatchStoreMemories": {"requests": [{**store, "id": mid}, {**store, "id": other}]},
        "MemoryService.UpdateMemory": {
            "memory": {"id": mid, "content": "property update", "importance": 0.25, "tags": ["u"],
                       "expires_at": "2999-01-01T00:00:00Z"},
            "agent_id": agent,
        },
        "MemoryService.DeleteMemory": {"id": mid, "agent_id": agent},
        "MemoryService.LinkMemories": {"agent_id": agent, "source_id": mid, "target_id": other, "relation": "r",
                                       "weight": 0.5},
        "MemoryService.UnlinkMemories": {"agent_id": agent, "source_id": mid, "target_id": other},
        "MemoryService.ForgetMemories": {"agent_id": agent, "filter": {"ids": [mid], "tags_any": ["t"]}},
        "MemoryService.ImportMemories": [
            {"memory": {"id": mid, "agent_id": agent, "content": "imported", "importance": 0.5,
                        "created_at": "2024-01-01T00:00:00Z", "version": 3}},
            {"memory": {"id": other, "agent_id": agent, "content": "imported too"}},
        ],
        "AdminService.CreateApiKey": {"name": "property", "role": "API_KEY_ROLE_READ_WRITE", "agent_ids": [agent],
                                      "ttl_seconds": 3600},
    }


class World:
    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.caller = Caller(server.base_url, server.grpc_target, ROOT_KEY)
        self.checked = {"failed": 0, "succeeded": 0, "retried": 0}

    def ok(self, rpc: str, data: Any) -> Any:
        ans = send(self.caller, "rest", rpc, data)
        assert ans.ok, f"{rpc}: {ans.code} {ans.message}"
        return ans.body

    def answer(self, rpc: str, data: Any) -> Any:
        ans = send(self.caller, "rest", rpc, data)
        return ans.body if ans.ok else {"error": ans.code, "message": ans.message}

    def snapshot(self, named: set[tuple[str, str]], horizon: float) -> dict[str, Any]:
        """What root sees. A memory that expires before `horizon` (one per example, minutes
        ahead) is left out: it may expire between the two snapshots of an example, by itself."""
        agents = self.ok("AgentService.ListAgents", {"page_size": 1000})
        names = sorted(a["agent_id"] for a in agents.get("agents", []))
        out: dict[str, Any] = {"agents": agents, "keys": self.ok("AdminService.ListApiKeys", {"include_revoked": True})}
        expiring: set[tuple[str, str]] = set()
        for a in names:
            lasting = []
            for x in self.ok("MemoryService.ExportMemories", {"agent_id": a}):
                mem = x["memory"]
                if mem.get("expires_at") and ts_seconds(mem["expires_at"]) < horizon:
                    expiring.add((a, mem["id"]))
                else:
                    lasting.append(x)
            out[f"export {a}"] = lasting
        pairs = named | {(a, m) for a, ms in SEEDS.items() for m in ms}
        for a, m in sorted(pairs - expiring):
            out[f"history {a}/{m}"] = self.answer("MemoryService.GetMemoryHistory", {"agent_id": a, "id": m})
            graph = self.answer("MemoryService.GetMemoryGraph", {"agent_id": a, "id": m, "depth": 1})
            if "memories" in graph:
                graph["memories"] = [x for x in graph["memories"] if (a, x["id"]) not in expiring]
                graph["links"] = [
                    x for x in graph.get("links", []) if not {(a, x["source_id"]), (a, x["target_id"])} & expiring
                ]
            out[f"graph {a}/{m}"] = graph
        return out

    def log_size(self) -> int:
        assert self.server.log_path is not None
        return self.server.log_path.stat().st_size

    def purged_since(self, offset: int) -> bool:
        """Whether background maintenance purged expired memories since offset of the log (it
        changes the agents' counters, not by the request)."""
        assert self.server.log_path is not None
        with open(self.server.log_path, "rb") as f:
            f.seek(offset)
            return b"expired memories" in f.read()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    server = ServerProcess(data_dir=tmp_path_factory.mktemp("failed") / "data", encryption_key=secrets.token_hex(32))
    server.start()
    w = World(server)
    for agent, ids in SEEDS.items():
        for mid in ids:
            w.ok("MemoryService.StoreMemory", {"agent_id": agent, "id": mid, "content": f"seed {agent} {mid}",
                                               "tags": ["t"]})
    w.ok("MemoryService.LinkMemories", {"agent_id": "pa", "source_id": "p1", "target_id": "p2"})
    w.ok("MemoryService.UpdateMemory", {"memory": {"id": "p1", "content": "seed pa p1 v2"}, "agent_id": "pa"})
    yield w
    w.caller.close()
    server.stop()


def named_ids(data: Any) -> set[str]:
    """Every memory id a request names (id, source_id, target_id, ... at any depth)."""
    out: set[str] = set()
    if isinstance(data, dict):
        for k, v in data.items():
            if k in ("id", "source_id", "target_id") and isinstance(v, str):
                out.add(v)
            else:
                out |= named_ids(v)
    elif isinstance(data, list):
        for v in data:
            out |= named_ids(v)
    return out


_MUTATIONS: dict[tuple[str, str], list[Mutation]] = {}


def mutations_of(rpc: str, info: Any, template: Any) -> list[Mutation]:
    first = template[0] if isinstance(template, list) else template
    key = (rpc, json.dumps(first, sort_keys=True))
    if key not in _MUTATIONS:
        _MUTATIONS[key] = list(mutations(request_class(info).DESCRIPTOR, first, stress=False))
    return _MUTATIONS[key]


def build(info: Any, rpc: str, template: Any, picked: list[Mutation]) -> Case:
    stream = info.client_streaming
    first = template[0] if stream else template
    case = Case(rpc, " + ".join(m.label for m in picked) or "template")
    if all(m.has_json for m in picked):
        body = first
        for m in picked:
            body = apply_json(body, m)
        case.json = [body, *template[1:]] if stream else body
    wire_only = [m for m in picked if m.py is None]
    if all(m.has_grpc for m in picked) and len(wire_only) <= 1:
        # upb-built values first; raw wire bytes (which may not parse) last.
        msg = parse_template(info, first)
        try:
            for m in [m for m in picked if m.py is not None]:
                msg_bytes = apply_grpc(msg, m)
                msg = type(msg)()
                msg.ParseFromString(msg_bytes)
        except DecodeError:  # nested beyond upb's depth limit: no second mutation on top of it
            return case
        data = apply_grpc(msg, wire_only[0]) if wire_only else msg.SerializeToString()
        rest = [parse_template(info, t).SerializeToString() for t in template[1:]] if stream else []
        case.wire = [data, *rest]
    return case


def test_a_snapshot_is_stable(world: World) -> None:
    """The snapshot's own reads change nothing it shows (else the property could not hold)."""
    named = {("pa", "p1"), ("pb", "nowhere")}
    horizon = time.time() + 600
    assert world.snapshot(named, horizon) == world.snapshot(named, horizon)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
@pytest.mark.parametrize("rpc", sorted(templates("pa", "p1", "p2")))
def test_a_failed_request_changes_nothing(world: World, rpc: str, data: st.DataObject) -> None:
    w = world
    agent = data.draw(st.sampled_from(AGENTS), label="agent")
    # Mostly ids the agent holds, so that the request would succeed but for its mutations.
    mid = data.draw(st.sampled_from([*SEEDS[agent], "nowhere"]), label="id")
    other = data.draw(st.sampled_from([*SEEDS[agent], "q1", "nowhere"]), label="other id")
    template = templates(agent, mid, other)[rpc]
    info = w.caller.methods[rpc]
    pool = mutations_of(rpc, info, template)
    # A field first, then one of its values: each field is as likely as any other.
    by_field: dict[tuple[Any, ...], list[Mutation]] = {}
    for m in pool:
        by_field.setdefault(m.path, []).append(m)
    fields = data.draw(
        st.lists(st.sampled_from(sorted(by_field, key=repr)), min_size=0, max_size=2, unique=True), label="fields"
    )
    picked = [data.draw(st.sampled_from(by_field[f]), label=f"mutation of {f}") for f in fields]
    case = build(info, rpc, template, picked)
    transports = [t for t, ok in (("grpc", case.wire is not None), ("rest", case.json is not ABSENT)) if ok]
    if not transports:
        return
    transport = data.draw(st.sampled_from(transports), label="transport")
    named = {(a, m) for a in AGENTS for m in named_ids(case.json if case.json is not ABSENT else template)
             if len(m) <= 128}
    for _attempt in range(3):
        offset = w.log_size()
        horizon = time.time() + 600
        before = w.snapshot(named, horizon)
        ans = w.caller.call(transport, case)
        if ans is None:  # a URL over httpx's 64 KiB limit: not sendable
            return
        assert not ans.bad(), f"{transport} {rpc} [{case.label}]: {ans.bad()}"
        if ans.ok:
            w.checked["succeeded"] += 1
            return
        after = w.snapshot(named, horizon)
        if before == after:
            w.checked["failed"] += 1
            return
        if not w.purged_since(offset):
            break
        w.checked["retried"] += 1  # an expiry purge ran meanwhile: the same request again
    diff = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    detail = {k: (before.get(k), after.get(k)) for k in diff[:3]}
    raise AssertionError(
        f"{transport} {rpc} [{case.label}] failed with {ans.code} {ans.message[:200]!r} but changed "
        f"{diff}: {json.dumps(detail)[:3000]}"
    )


def test_report(world: World) -> None:
    print(f"\nfailed-request property: {world.checked}")
    assert world.checked["failed"] > 0
