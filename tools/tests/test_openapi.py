"""The generated OpenAPI document lists every REST route of every RPC and is a valid OpenAPI 3.1."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import validate

from tools import check_path_conflicts
from tools.gen_openapi import path_parameter_names
from tools.protos import Api, Method

REPO = Path(__file__).resolve().parents[2]
DOC_PATHS = (REPO / "docs/openapi.json", REPO / "server/src/engram_server/_gen/openapi.json")
_VARIABLE = re.compile(r"\{([^}=]+)(=[^}]*)?\}")


@pytest.fixture(scope="module")
def api() -> Api:
    return Api((REPO / "server/src/engram_server/_gen/engram.binpb").read_bytes())


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DOC_PATHS[0].read_text(encoding="utf-8"))
    return data


def openapi_path(template: str) -> str:
    fields = [m.group(1) for m in _VARIABLE.finditer(template)]
    names = path_parameter_names(fields)
    return _VARIABLE.sub(lambda m: "{" + names[m.group(1)] + "}", template)


def test_both_copies_are_identical() -> None:
    assert DOC_PATHS[0].read_bytes() == DOC_PATHS[1].read_bytes()


def test_is_valid_openapi_31(doc: dict[str, Any]) -> None:
    assert doc["openapi"] == "3.1.0"
    validate(doc)


def test_every_rpc_has_every_rest_binding(api: Api, doc: dict[str, Any]) -> None:
    methods = api.methods()
    # Every rpc the .proto sources declare (read from the sources, not the descriptor set).
    declared = sum(len(re.findall(r"^\s*rpc \w+", f.read_text(), re.M)) for f in (REPO / "proto").rglob("*.proto"))
    assert len(methods) == declared > 0
    expected = 0
    for method in methods:
        assert method.bindings, f"{method.grpc_path} has no google.api.http rule"
        for binding in method.bindings:
            expected += 1
            item = doc["paths"].get(openapi_path(binding.path))
            assert item is not None, f"{binding.verb.upper()} {binding.path} ({method.name}) missing"
            op = item.get(binding.verb)
            assert op is not None, f"{binding.verb.upper()} {binding.path} ({method.name}) missing"
            assert method.grpc_path in op["description"]
    operations = [op for item in doc["paths"].values() for op in item.values()]
    assert len(operations) == expected  # and nothing else


@pytest.mark.parametrize(
    ("verb", "path"),
    [
        ("post", "/v1/memories"),
        ("post", "/v1/memories/recall"),
        ("post", "/v1/memory/store"),
        ("post", "/v1/memory/recall"),
        ("post", "/v1/memory/forget"),
        ("get", "/v1/memory/get/{id}"),
        ("put", "/v1/memory/update/{id}"),
        ("get", "/health"),
    ],
)
def test_seed_compatible_routes(doc: dict[str, Any], verb: str, path: str) -> None:
    assert verb in doc["paths"][path]


def test_parameters_and_bodies(api: Api, doc: dict[str, Any]) -> None:
    by_id = {op["operationId"]: op for item in doc["paths"].values() for op in item.values()}
    assert len(by_id) == sum(1 for item in doc["paths"].values() for _ in item)  # unique operationIds
    for path, item in doc["paths"].items():
        variables = set(re.findall(r"\{([^}]+)\}", path))
        for verb, op in item.items():
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert declared == variables, f"{verb} {path}"
            if verb in ("get", "delete"):
                assert "requestBody" not in op, f"{verb} {path}"
    # Query parameters are the flattened non-path fields of GET requests.
    list_params = {p["name"] for p in by_id["MemoryService_ListMemories"]["parameters"]}
    assert {"agent_id", "page_size", "page_token", "filter.tags_any", "filter.event_time.start_time"} <= list_params
    # body: "memory" sends the Memory message; the other fields travel in the query string.
    update = by_id["MemoryService_UpdateMemory"]
    body = update["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/engram.v1.Memory"}
    assert {p["name"] for p in update["parameters"]} >= {"id", "update_mask"}
    # Streaming over REST is NDJSON.
    assert "application/x-ndjson" in by_id["MemoryService_ExportMemories"]["responses"]["200"]["content"]
    assert "application/x-ndjson" in by_id["MemoryService_ImportMemories"]["requestBody"]["content"]


def test_schemas_follow_proto3_json(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    memory = schemas["engram.v1.Memory"]["properties"]
    assert memory["created_at"]["format"] == "date-time"
    assert memory["metadata"]["type"] == "object"
    assert memory["memory_type"]["$ref"] == "#/components/schemas/engram.v1.MemoryType"
    assert "agent_id" in memory and "agentId" not in memory
    assert schemas["engram.v1.MemoryType"]["enum"][0] == "MEMORY_TYPE_UNSPECIFIED"
    stats = schemas["engram.v1.GetStatsResponse"]["properties"]
    assert stats["memory_count"]["type"] == "string"  # int64 is a JSON string
    assert schemas["engram.v1.Embedding"]["properties"]["vector"]["format"] == "byte"
    assert schemas["engram.v1.Memory"]["description"].startswith("A memory")
    assert set(schemas["Error"]["required"]) == {"code", "message"}


def test_every_ref_resolves(doc: dict[str, Any]) -> None:
    refs: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                refs.append(node["$ref"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(doc)
    assert refs
    for ref in refs:
        section, name = ref.removeprefix("#/components/").split("/", 1)
        assert name in doc["components"][section], ref


def test_no_path_conflicts(doc: dict[str, Any]) -> None:
    assert check_path_conflicts.conflicts(doc) == []


def test_path_conflict_check_finds_ambiguous_routes() -> None:
    doc: dict[str, object] = {
        "paths": {
            "/v1/memories/{id}": {"get": {}, "delete": {}},
            "/v1/memories/recall": {"get": {}, "post": {}},
            "/v1/memories:export": {"post": {}},
            "/v1/things/{a}/x": {"put": {}},
            "/v1/things/y/{b}": {"put": {}},
        }
    }
    assert check_path_conflicts.conflicts(doc) == [
        "GET /v1/memories/recall  <->  GET /v1/memories/{id}",
        "PUT /v1/things/y/{b}  <->  PUT /v1/things/{a}/x",
    ]


def test_method_grpc_path() -> None:
    m = Method("MemoryService", "Recall", "engram.v1.RecallRequest", "engram.v1.RecallResponse", False, False, "", ())
    assert m.grpc_path == "/engram.v1.MemoryService/Recall"
