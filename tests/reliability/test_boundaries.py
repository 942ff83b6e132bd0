"""Boundary fuzzing of every request field of every RPC, on gRPC and REST, against one real server.

For each RPC of the descriptor set a small valid request (TEMPLATES below; a new RPC without one
fails `test_every_rpc_has_a_template`) is mutated one field at a time by `boundary.mutations`,
which walks the request's descriptor: scalars, enums, Timestamps, Structs, FieldMasks, sub-messages
(3 levels; 4 with ENGRAM_STRESS=1), repeated and map fields, proto3 optionals, plus malformed
wire bytes, JSON bodies, query strings and paths. Each case goes over gRPC (raw bytes through
grpcio's generic calls) and over REST (JSON through the method's google.api.http rule; NDJSON for
the import). The rules:

* REST never answers 5xx, gRPC never INTERNAL, UNKNOWN or DATA_LOSS, the server stays up;
* afterwards every agent is fully readable on both transports (`boundary.unreadable`).

ENGRAM_STRESS=1 adds more string values, a fourth nesting level, every additional HTTP binding and
random pairs of mutations.
"""

from __future__ import annotations

import os
import random
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from engram_server.descriptors import api
from google.protobuf.message import DecodeError, Message

from bench.common import ROOT_KEY, ServerProcess

from .boundary import (
    ABSENT,
    Answer,
    Caller,
    Case,
    apply_grpc,
    apply_json,
    cases_for,
    mutations,
    parse_template,
    request_class,
    unreadable,
)
from .boundary import request as send
from .conftest import STRESS

A = "fz-a"  # the agent most templates act on
FORGET_AGENT = "fz-forget"
CONSOLIDATE_AGENT = "fz-consolidate"  # mutations of dry_run / similarity_threshold merge for real
DOOMED_AGENT = "fz-doomed"
PAIRS = 20_000 if STRESS else 0  # random pairs of mutations, spread over the RPCs
ANSWERS_LOG = os.environ.get("ENGRAM_BOUNDARY_LOG")  # a file to write every case's answer to, to read them


@dataclass
class World:
    server: ServerProcess
    caller: Caller
    ids: dict[str, str] = field(default_factory=dict)
    lengths: tuple[int, ...] = ()  # repeated fields' lengths to try: each configured limit + 1


FILTER = {
    "memory_types": ["MEMORY_TYPE_SEMANTIC"],
    "tags_any": ["t1"],
    "tags_all": ["t1"],
    "session_id": "s1",
    "event_time": {"start_time": "2000-01-01T00:00:00Z", "end_time": "2100-01-01T00:00:00Z"},
    "created_time": {"start_time": "2000-01-01T00:00:00Z", "end_time": "2100-01-01T00:00:00Z"},
    "min_importance": 0.1,
    "metadata_equals": {"k": "v"},
    "ids": ["fz-m1"],
}
STORE = {
    "agent_id": A,
    "content": "boundary memory",
    "memory_type": "MEMORY_TYPE_SEMANTIC",
    "importance": 0.5,
    "tags": ["t1", "t2"],
    "metadata": {"k": "v", "n": 1.5, "o": {"l": [1, "a", None, True]}},
    "session_id": "s1",
    "event_time": "2024-01-01T00:00:00Z",
}
RECALL = {
    "agent_id": A,
    "query": "boundary memory",
    "top_k": 5,
    "filter": FILTER,
    "mode": "RECALL_MODE_HYBRID",
    "explain": True,
    "include_associated": True,
    "min_score": 0.0,
}
IMPORTED = {
    "id": "fz-imported",
    "agent_id": A,
    "content": "imported boundary memory",
    "memory_type": "MEMORY_TYPE_WORKING",
    "importance": 0.25,
    "tags": ["t1"],
    "metadata": {"k": "v"},
    "session_id": "s1",
    "event_time": "2024-01-01T00:00:00Z",
    "created_at": "2024-01-01T00:00:00Z",
    "updated_at": "2024-01-02T00:00:00Z",
    "expires_at": "2999-01-01T00:00:00Z",
    "access_count": 3,
    "last_accessed_at": "2024-01-03T00:00:00Z",
    "version": 2,
    "embedding_model": "elsewhere",
}

# A valid request per RPC (proto3 JSON; a list of requests for client streaming).
TEMPLATES: dict[str, Callable[[dict[str, str]], Any]] = {
    "MemoryService.StoreMemory": lambda w: dict(STORE),
    "MemoryService.BatchStoreMemories": lambda w: {"requests": [dict(STORE), {"agent_id": A, "content": "second"}]},
    "MemoryService.GetMemory": lambda w: {"id": "fz-m1", "agent_id": A},
    "MemoryService.UpdateMemory": lambda w: {
        "memory": {
            "id": "fz-m1",
            "content": "boundary memory updated",
            "memory_type": "MEMORY_TYPE_SEMANTIC",
            "importance": 0.7,
            "tags": ["t1", "u"],
            "metadata": {"k": "v"},
            "session_id": "s1",
            "event_time": "2024-06-01T00:00:00Z",
            "expires_at": "2999-01-01T00:00:00Z",
        },
        "agent_id": A,
    },
    "MemoryService.DeleteMemory": lambda w: {"id": "fz-del", "agent_id": A},
    "MemoryService.ListMemories": lambda w: {
        "agent_id": A, "page_size": 10, "page_token": "", "filter": FILTER, "order_by": "created_at desc",
    },
    "MemoryService.Recall": lambda w: dict(RECALL),
    "MemoryService.BatchRecall": lambda w: {"requests": [dict(RECALL), {"agent_id": A, "query": "second"}]},
    "MemoryService.ForgetMemories": lambda w: {
        "agent_id": FORGET_AGENT, "filter": {"tags_any": ["t"]}, "dry_run": True,
    },
    "MemoryService.GetMemoryHistory": lambda w: {"id": "fz-m1", "agent_id": A},
    "MemoryService.LinkMemories": lambda w: {
        "agent_id": A, "source_id": "fz-m1", "target_id": "fz-m2", "relation": "rel", "weight": 0.5,
    },
    "MemoryService.UnlinkMemories": lambda w: {
        "agent_id": A, "source_id": "fz-m1", "target_id": "fz-m2", "relation": "other",
    },
    "MemoryService.GetMemoryGraph": lambda w: {
        "agent_id": A, "id": "fz-m1", "depth": 2, "relations": ["rel"], "max_nodes": 10,
    },
    "MemoryService.ExportMemories": lambda w: {"agent_id": A, "filter": FILTER},
    "MemoryService.ConsolidateMemories": lambda w: {"agent_id": CONSOLIDATE_AGENT, "dry_run": True, "similarity_threshold": 0.95},
    "MemoryService.WatchMemories": lambda w: {"agent_id": A, "start_after": "0"},
    "MemoryService.ImportMemories": lambda w: [{"memory": dict(IMPORTED), "agent_id": A}],
    "AgentService.ListAgents": lambda w: {"page_size": 10, "page_token": ""},
    "AgentService.GetAgent": lambda w: {"agent_id": A},
    "AgentService.DeleteAgent": lambda w: {"agent_id": DOOMED_AGENT},
    "AdminService.Health": lambda w: {},
    "AdminService.GetServerInfo": lambda w: {},
    "AdminService.GetStats": lambda w: {},
    "AdminService.CreateApiKey": lambda w: {
        "name": "fz key", "role": "API_KEY_ROLE_READ_ONLY", "agent_ids": [A], "agent_id_prefix": "fz-",
        "ttl_seconds": 3600,
    },
    "AdminService.ListApiKeys": lambda w: {"include_revoked": True},
    "AdminService.RevokeApiKey": lambda w: {"id": w["revocable_key"]},
    "AdminService.GetClusterStatus": lambda w: {},
    "AdminService.DrainClusterNode": lambda w: {"node_id": "n1"},
    "EmbeddingService.Embed": lambda w: {"texts": ["hello", "world"], "input_type": "EMBEDDING_INPUT_TYPE_QUERY"},
}
# A single server refuses these whatever the request (there is no cluster): their fields are still
# fuzzed, for a clean 4xx every time.
REFUSED_HERE = {"AdminService.DrainClusterNode": "FAILED_PRECONDITION"}


def rpc_names() -> list[str]:
    return sorted(f"{m.service}.{m.name}" for m in api().methods.values())


def test_every_rpc_has_a_template() -> None:
    missing = sorted(set(rpc_names()) - set(TEMPLATES))
    assert not missing, f"RPCs without a boundary template (add them to TEMPLATES): {missing}"


def make_world(server: ServerProcess) -> World:
    caller = Caller(server.base_url, server.grpc_target, ROOT_KEY)
    w = World(server, caller)

    def ok(rpc: str, data: Any) -> Any:
        ans = send(caller, "rest", rpc, data)
        assert ans.ok, f"setup {rpc}: {ans.code} {ans.message}"
        return ans.body

    for mid, content in (("fz-m1", "boundary memory one"), ("fz-m2", "boundary memory two"), ("fz-del", "doomed")):
        ok("MemoryService.StoreMemory", {**STORE, "id": mid, "content": content})
    ok("MemoryService.LinkMemories", {"agent_id": A, "source_id": "fz-m1", "target_id": "fz-m2", "relation": "rel"})
    for content in ("forget me", "forget me too"):
        ok("MemoryService.StoreMemory", {"agent_id": FORGET_AGENT, "content": content, "tags": ["t"]})
    for content in ("the user likes tea", "the user likes green tea", "the user likes tea."):
        ok("MemoryService.StoreMemory", {"agent_id": CONSOLIDATE_AGENT, "content": content})
    ok("MemoryService.StoreMemory", {"agent_id": DOOMED_AGENT, "content": "doomed agent"})
    key = ok("AdminService.CreateApiKey", {"name": "revocable", "role": "API_KEY_ROLE_READ_ONLY"})
    w.ids["revocable_key"] = key["api_key"]["id"]
    limits = ok("AdminService.GetServerInfo", {})["limits"]
    w.lengths = tuple(sorted({limits[k] + 1 for k in ("max_tags", "max_batch_size", "max_page_size")}))
    if STRESS:
        w.lengths += (2 * limits["max_page_size"] + 1,)
    return w


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    data_dir = tmp_path_factory.mktemp("boundaries") / "data"
    server = ServerProcess(data_dir=data_dir, encryption_key=secrets.token_hex(32))
    server.start()
    w = make_world(server)
    yield w
    w.caller.close()
    server.stop()


@dataclass
class Tally:
    sent: dict[str, int] = field(default_factory=lambda: {"grpc": 0, "rest": 0})
    codes: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    calls: int = 0

    def record(self, case: Case, ans: Answer) -> None:
        self.sent[ans.transport] += 1
        key = f"{ans.transport}:{ans.code}"
        self.codes[key] = self.codes.get(key, 0) + 1
        why = ans.bad()
        if why:
            self.failures.append(f"{ans.transport} {case.rpc} [{case.label}]: {why}")


def alive(server: ServerProcess, caller: Caller) -> None:
    assert server.proc is not None and server.proc.poll() is None, f"server died, see {server.log_path}"
    assert caller.http.get("/health").status_code == 200


def run_cases(w: World, cases: list[Case], tally: Tally) -> None:
    for case in cases:
        for transport in ("grpc", "rest"):
            ans = w.caller.call(transport, case)
            if ans is None:
                continue
            tally.record(case, ans)
            if ANSWERS_LOG:
                with open(ANSWERS_LOG, "a") as f:
                    f.write(f"{transport}\t{case.rpc}\t{case.label}\t{ans.code}\t{ans.message[:200]!r}\n")
            tally.calls += 1
            if tally.calls % 250 == 0:
                alive(w.server, w.caller)


def test_boundaries(world: World) -> None:
    w = world
    tally = Tally()
    started = time.perf_counter()
    total_cases = 0
    skipped = {"json_only": 0, "grpc_only": 0}
    per_rpc: dict[str, int] = {}
    for rpc in rpc_names():
        info = w.caller.methods[rpc]
        template = TEMPLATES[rpc](w.ids)
        # The template itself is valid on both transports (a second delete finds nothing).
        for transport in ("rest", "grpc"):
            ans = send(w.caller, transport, rpc, template)
            assert ans.ok or (transport == "grpc" and ans.code == "NOT_FOUND") or ans.code == REFUSED_HERE.get(rpc), (
                f"template of {rpc} fails on {transport}: {ans.code} {ans.message}"
            )
        cases, skip = cases_for(info, template, STRESS, w.lengths)
        for k, v in skip.items():
            skipped[k] += v
        per_rpc[rpc] = len(cases)
        total_cases += len(cases)
        run_cases(w, cases, tally)
        if STRESS:
            run_cases(w, extra_bindings(w, rpc, template), tally)
            run_cases(w, pairs(rpc, template, PAIRS // len(TEMPLATES)), tally)
    alive(w.server, w.caller)
    elapsed = time.perf_counter() - started
    print(
        f"\nboundary cases: {total_cases} over {len(per_rpc)} RPCs; sent {tally.sent['grpc']} gRPC and "
        f"{tally.sent['rest']} REST requests in {elapsed:.1f} s; no wire form (JSON only): {skipped['json_only']}, "
        f"no JSON form (wire only): {skipped['grpc_only']}; REST URL over 64 KiB (not sent): "
        f"{len(w.caller.unsendable)}\nper RPC: {per_rpc}\ncodes: {dict(sorted(tally.codes.items()))}"
    )
    assert not tally.failures, f"{len(tally.failures)} answers broke the rules:\n" + "\n".join(tally.failures[:80])
    log = w.server.log_path.read_text(errors="replace") if w.server.log_path else ""
    assert "unhandled error" not in log, "the server logged an unhandled error"


def test_everything_readable_afterwards(world: World) -> None:
    counts: dict[str, int] = {}
    started = time.perf_counter()
    problems = unreadable(world.caller, counts=counts)
    print(f"\nread back: {counts} in {time.perf_counter() - started:.1f} s")
    assert not problems, "\n".join(problems[:50])


# --- ENGRAM_STRESS=1 -----------------------------------------------------------------------------
def extra_bindings(w: World, rpc: str, template: Any) -> list[Case]:
    """The template's mutations through every additional HTTP binding (REST only)."""
    info = w.caller.methods[rpc]
    out: list[Case] = []
    for b in info.bindings[1:]:
        for case in cases_for(info, template, STRESS, w.lengths)[0]:
            if case.json is ABSENT:
                continue
            out.append(Case(case.rpc, f"{b.method} {b.path}: {case.label}", json=case.json, binding=b))
    return out


def pairs(rpc: str, template: Any, n: int) -> list[Case]:
    """n random pairs of mutations of different fields, applied together."""
    info = api().methods[next(p for p, m in api().methods.items() if f"{m.service}.{m.name}" == rpc)]
    stream = info.client_streaming
    first = template[0] if stream else template
    ms = list(mutations(request_class(info).DESCRIPTOR, first, True))
    rng = random.Random(f"{rpc}-pairs")
    base = parse_template(info, first)
    out: list[Case] = []
    for _ in range(n):
        a, b = rng.sample(ms, 2)
        if a.path[: len(b.path)] == b.path or b.path[: len(a.path)] == a.path:
            continue
        case = Case(rpc, f"{a.label} + {b.label}")
        if a.has_json and b.has_json:
            body = apply_json(apply_json(first, a), b)
            case.json = [body] if stream else body
        if a.py is not None and b.py is not None:
            msg: Message = type(base)()
            try:
                msg.ParseFromString(apply_grpc(base, a))
            except DecodeError:  # nested beyond upb's depth limit: sent over REST only
                pass
            else:
                case.wire = [apply_grpc(msg, b)]
        out.append(case)
    return out


# --- the defects this fuzzing found, one test each -----------------------------------------------
def test_lone_surrogates_in_json_are_invalid_argument(world: World) -> None:
    """JSON may spell a lone UTF-16 surrogate (\\ud800) that no protobuf string can hold: in a key,
    an enum name or a float field it reached upb (SystemError) or the error text (unencodable):
    500s. Refused as malformed JSON, in the body, an NDJSON line and a Struct query parameter."""
    http = world.caller.http
    cases = [
        ("POST", "/v1/memories", b'{"agent_id": "fz-a", "content": "x", "\\ud800": 1}', "application/json"),
        ("POST", "/v1/memories", b'{"agent_id": "fz-a", "content": "x", "memory_type": "\\udc00"}', "application/json"),
        ("POST", "/v1/memories", b'{"agent_id": "fz-a", "content": "x", "importance": "\\ud800"}', "application/json"),
        ("PATCH", "/v1/memories/fz-m1", b'{"\\ud800": 1}', "application/json"),
        ("POST", "/v1/memories:import", b'{"memory": {"id": "x", "\\ud800": 1}}\n', "application/x-ndjson"),
        ("GET", "/v1/memories?agent_id=fz-a&filter.metadata_equals=%7B%22%5Cud800%22%3A1%7D", b"", ""),
    ]
    for verb, path, body, ctype in cases:
        r = http.request(verb, path, content=body, headers={"content-type": ctype} if ctype else {})
        assert r.status_code == 400 and "surrogate" in r.json()["message"], (path, body, r.status_code, r.text)


def test_numbers_beyond_a_float_are_invalid_argument(world: World) -> None:
    """A JSON integer too large for a double (400 digits) in a float field or a Struct made
    json_format raise OverflowError: a 500."""
    http = world.caller.http
    huge = "9" * 400
    for body in (
        f'{{"agent_id": "fz-a", "content": "x", "importance": {huge}}}',
        f'{{"agent_id": "fz-a", "content": "x", "metadata": {{"a": {huge}}}}}',
        f'{{"agent_id": "fz-a", "query": "x", "min_score": {huge}}}',
    ):
        path = "/v1/memories/recall" if "query" in body else "/v1/memories"
        r = http.post(path, content=body.encode(), headers={"content-type": "application/json"})
        assert r.status_code == 400 and r.json()["code"] == "INVALID_ARGUMENT", (body[:60], r.status_code, r.text)


def test_an_error_quoting_a_megabyte_does_not_stall_the_server(world: World) -> None:
    """Errors quote what was sent (an update_mask path, an API key id). A 1 MB quote went into the
    gRPC grpc-message header, whose HPACK Huffman coding is quadratic in pure Python: one call
    held the event loop, and every other call, for about two minutes. Messages are clipped."""
    w = world
    info = w.caller.methods["AdminService.RevokeApiKey"]
    request_cls = request_class(info)
    for rpc, msg in (
        ("AdminService.RevokeApiKey", request_cls(id="k" * 1_000_000)),
        ("MemoryService.UpdateMemory", parse_template(w.caller.methods["MemoryService.UpdateMemory"], {
            "memory": {"id": "fz-m1", "content": "x"}, "update_mask": "content"})),
    ):
        if rpc == "MemoryService.UpdateMemory":
            msg.update_mask.paths[:] = ["p" * 1_000_000]
        started = time.perf_counter()
        ans = w.caller.grpc(rpc, [msg.SerializeToString()], timeout=20)
        took = time.perf_counter() - started
        assert ans.code in ("NOT_FOUND", "INVALID_ARGUMENT"), (rpc, ans.code, ans.message[:100])
        assert len(ans.message) <= 512 and took < 5, (rpc, len(ans.message), took)
    r = w.caller.http.delete("/v1/keys/" + "k" * 60_000)
    assert r.status_code == 404 and len(r.json()["message"]) <= 512
