"""The status code tables: read from google/rpc/code.proto, and every committed copy agrees with it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tools import gen_codes

REPO = Path(__file__).resolve().parents[2]
CODE_PROTO = Path("proto/third_party/google/rpc/code.proto")


@pytest.fixture(scope="module")
def codes() -> list[gen_codes.StatusCode]:
    return gen_codes.load(REPO)


def test_table_from_code_proto(codes: list[gen_codes.StatusCode]) -> None:
    by_name = {c.name: c for c in codes}
    assert [c.number for c in codes] == list(range(17))
    assert (by_name["OK"].number, by_name["OK"].http_status) == (0, 200)
    assert (by_name["CANCELLED"].number, by_name["CANCELLED"].http_status) == (1, 499)
    assert by_name["CANCELLED"].http_reason == "Client Closed Request"
    assert (by_name["NOT_FOUND"].number, by_name["NOT_FOUND"].http_status) == (5, 404)
    assert (by_name["UNAUTHENTICATED"].number, by_name["UNAUTHENTICATED"].http_status) == (16, 401)
    assert by_name["DEADLINE_EXCEEDED"].http_status == 504
    assert by_name["FAILED_PRECONDITION"].http_status == 400
    assert by_name["DATA_LOSS"].summary == "unrecoverable data loss or corruption."
    assert by_name["CANCELLED"].go_name == "CodeCanceled"
    assert by_name["OK"].go_name == "CodeOK"


@pytest.mark.parametrize("path", sorted(gen_codes.OUTPUTS, key=str), ids=str)
def test_committed_table_agrees_with_code_proto(codes: list[gen_codes.StatusCode], path: Path) -> None:
    committed = (REPO / path).read_text(encoding="utf-8")
    assert committed == gen_codes.OUTPUTS[path](codes), f"{path} is stale: run `make generate`"
    assert "DO NOT EDIT" in committed.splitlines()[0]


def test_server_maps_codes_to_http_and_grpc() -> None:
    from engram_server.errors import CODES, HTTP_STATUS, RpcError

    assert HTTP_STATUS["NOT_FOUND"] == 404
    assert HTTP_STATUS["CANCELLED"] == 499
    assert HTTP_STATUS["UNAUTHENTICATED"] == 401
    assert CODES["UNAUTHENTICATED"] == 16
    assert RpcError("CANCELLED", "m").status == 499
    assert RpcError("NOT_FOUND", "m").status == 404
    assert RpcError("NOT_FOUND", "m").grpc_code == 5
    assert RpcError("RESOURCE_EXHAUSTED", "m", http_status=413).status == 413
    assert RpcError("SOMETHING_NEW", "m").status == 500


def test_openapi_error_codes_come_from_the_table(codes: list[gen_codes.StatusCode]) -> None:
    doc = json.loads((REPO / "docs/openapi.json").read_text(encoding="utf-8"))
    assert doc["components"]["schemas"]["Error"]["properties"]["code"]["enum"] == [c.name for c in codes]
    description = doc["components"]["responses"]["Error"]["description"]
    assert "499 `CANCELLED`" in description and "404 `NOT_FOUND`" in description


def test_conformance_schema_lists_every_error_code(codes: list[gen_codes.StatusCode]) -> None:
    def enums(node: Any) -> list[list[str]]:
        if isinstance(node, dict):
            found = [node["error"]["enum"]] if isinstance(node.get("error"), dict) and "enum" in node["error"] else []
            return found + [e for v in node.values() for e in enums(v)]
        return [e for v in node for e in enums(v)] if isinstance(node, list) else []

    schema = json.loads((REPO / "conformance/schema/case.schema.json").read_text(encoding="utf-8"))
    assert enums(schema) == [[c.name for c in codes if c.name != "OK"]]


def _proto_copy(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "proto", tmp_path / "proto")
    return tmp_path


def test_code_without_http_mapping_fails_generation(tmp_path: Path) -> None:
    repo = _proto_copy(tmp_path)
    proto = repo / CODE_PROTO
    text = proto.read_text(encoding="utf-8")
    mapping = "  // HTTP Mapping: 500 Internal Server Error\n  DATA_LOSS = 15;"
    assert mapping in text
    proto.write_text(text.replace(mapping, "  DATA_LOSS = 15;"), encoding="utf-8")
    with pytest.raises(ValueError, match=r"google\.rpc\.Code\.DATA_LOSS needs exactly one 'HTTP Mapping"):
        gen_codes.load(repo)


def test_edited_http_mapping_changes_every_table(tmp_path: Path, codes: list[gen_codes.StatusCode]) -> None:
    repo = _proto_copy(tmp_path)
    proto = repo / CODE_PROTO
    text = proto.read_text(encoding="utf-8")
    proto.write_text(text.replace("HTTP Mapping: 499 Client", "HTTP Mapping: 498 Client"), encoding="utf-8")
    edited = gen_codes.load(repo)
    assert {c.name: c.http_status for c in edited}["CANCELLED"] == 498
    for render in set(gen_codes.OUTPUTS.values()):
        assert "498" in render(edited) and render(edited) != render(codes)
