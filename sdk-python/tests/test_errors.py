"""Error mapping: gRPC codes and REST bodies/statuses give the same exception classes."""

from __future__ import annotations

import json

import pytest

import engram
from engram import _convert, errors

CASES = [
    ("INVALID_ARGUMENT", 400, errors.InvalidArgument),
    ("UNAUTHENTICATED", 401, errors.Unauthenticated),
    ("PERMISSION_DENIED", 403, errors.PermissionDenied),
    ("NOT_FOUND", 404, errors.NotFound),
    ("ALREADY_EXISTS", 409, errors.AlreadyExists),
    ("RESOURCE_EXHAUSTED", 429, errors.ResourceExhausted),
    ("UNAVAILABLE", 503, errors.Unavailable),
    ("DEADLINE_EXCEEDED", 504, errors.DeadlineExceeded),
    ("INTERNAL", 500, errors.Internal),
]


@pytest.mark.parametrize(("code", "status", "cls"), CASES)
def test_same_class_from_rest_body_status_and_grpc(code: str, status: int, cls: type) -> None:
    body = json.dumps({"code": code, "message": "boom", "details": []}).encode()
    from_body = _convert.rest_error(status, body, {})
    from_status = _convert.rest_error(status, b"not json", {})
    from_grpc = _convert.grpc_error(code, "boom", [], local=False)
    for exc in (from_body, from_status, from_grpc):
        assert type(exc) is cls
        assert isinstance(exc, engram.EngramError)
        assert exc.code == code
    assert from_body.message == from_grpc.message == "boom"
    assert from_body.from_server and from_grpc.from_server


def test_body_code_wins_over_status() -> None:
    exc = _convert.rest_error(400, b'{"code": "FAILED_PRECONDITION", "message": "m"}', {})
    assert isinstance(exc, errors.FailedPrecondition)
    exc = _convert.rest_error(413, b"", {})
    assert isinstance(exc, errors.ResourceExhausted)


def test_retry_after_from_header_and_retry_info() -> None:
    exc = _convert.rest_error(429, b'{"code":"RESOURCE_EXHAUSTED","message":"slow"}', {"retry-after": "2"})
    assert exc.retry_after == 2.0
    body = {"code": "UNAVAILABLE", "message": "m",
            "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retry_delay": "1.5s"}]}
    exc = _convert.rest_error(503, json.dumps(body).encode(), {})
    assert exc.retry_after == 1.5
    assert exc.details[0]["@type"].endswith("RetryInfo")


def test_grpc_status_details_are_decoded() -> None:
    pytest.importorskip("google.rpc.status_pb2")
    from google.protobuf import any_pb2, duration_pb2
    from google.rpc import error_details_pb2, status_pb2

    info = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=3))
    detail = any_pb2.Any()
    detail.Pack(info)
    status = status_pb2.Status(code=14, message="m", details=[detail])
    exc = _convert.grpc_error("UNAVAILABLE", "m", [("grpc-status-details-bin", status.SerializeToString())],
                              local=False)
    assert exc.retry_after == 3.0
    assert exc.details[0]["@type"].endswith("google.rpc.RetryInfo")


def test_unknown_code_and_str() -> None:
    exc = errors.error_for_code("SOMETHING_NEW", "x")
    assert type(exc) is errors.EngramError and exc.code == "SOMETHING_NEW"
    assert str(errors.NotFound("gone")) == "NOT_FOUND: gone"
    assert errors.code_for_http_status(418) == "UNKNOWN"
    assert errors.code_for_http_status(502) == "UNAVAILABLE"


def test_tree_is_documented() -> None:
    doc = errors.__doc__ or ""
    for name in errors.__all__:
        obj = getattr(errors, name)
        if isinstance(obj, type) and obj is not errors.EngramError:
            assert name in doc, name


def test_every_code_has_its_class_and_documented_http_status() -> None:
    """The generated table (google/rpc/code.proto) and the exception classes cover the same codes."""
    from engram._gen.codes import CODE_NAMES, HTTP_STATUS

    tree = {line.split()[2]: line for line in (errors.__doc__ or "").splitlines() if "── " in line}
    for code in CODE_NAMES[1:]:  # OK is no error
        exc = errors.error_for_code(code, "m")
        assert type(exc) is not errors.EngramError and exc.code == code, code
        if code != "UNKNOWN":  # documented as "anything else"
            assert f" HTTP {HTTP_STATUS[code]}" in tree[code], code
    assert errors.code_for_http_status(499) == "CANCELLED"
    assert errors.code_for_http_status(500) == "INTERNAL"
    assert errors.code_for_http_status(409) == "ALREADY_EXISTS"
