"""RPC errors: one exception type for every transport.

    RpcError(code, message, field_violations=...)
      ├─ raised by the service layer (validation, auth, limits) or
      └─ made from an engine error by `from_engine_error`

Each transport renders it once: gRPC as `grpc-status` / `grpc-message` / `grpc-status-details-bin`
(a serialized google.rpc.Status whose details carry a google.rpc.BadRequest when fields were
wrong), REST as an HTTP status with `{"code", "message", "details"}`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

# The gRPC status codes (google.rpc.Code) by name and number, and the HTTP status of each, are
# generated from google/rpc/code.proto (docs/design/contracts.md).
from ._gen.codes import CODE_NAMES as CODE_NAMES
from ._gen.codes import CODES as CODES
from ._gen.codes import HTTP_STATUS as HTTP_STATUS

BAD_REQUEST_TYPE = "type.googleapis.com/google.rpc.BadRequest"
# The longest message, field name or description an error carries. Messages quote what the client
# sent (an unknown update_mask path, a key id), which can be megabytes; on gRPC the message is a
# header, and HPACK's Huffman coding of one (hpack, pure Python) takes time quadratic in its
# length: a 1 MB message held the event loop, and so every call, for minutes.
MAX_ERROR_CHARS = 512


def clip(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 12] + "… (clipped)"


@dataclass
class FieldViolation:
    field: str
    description: str


@dataclass
class RpcError(Exception):
    """An error that reaches the client with a code and a message safe to show."""

    code: str
    message: str
    field_violations: list[FieldViolation] = field(default_factory=list)
    http_status: int | None = None  # overrides HTTP_STATUS (413 for oversized bodies)

    def __post_init__(self) -> None:
        self.message = clip(self.message)
        for v in self.field_violations:
            v.field, v.description = clip(v.field), clip(v.description)
        super().__init__(f"{self.code}: {self.message}")

    @property
    def grpc_code(self) -> int:
        return CODES.get(self.code, 2)

    @property
    def status(self) -> int:
        return self.http_status or HTTP_STATUS.get(self.code, 500)

    # --- REST -----------------------------------------------------------------------------
    def details_json(self) -> list[dict[str, Any]]:
        if not self.field_violations:
            return []
        return [
            {
                "@type": BAD_REQUEST_TYPE,
                "field_violations": [{"field": v.field, "description": v.description} for v in self.field_violations],
            }
        ]

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": self.details_json()}

    # --- gRPC -----------------------------------------------------------------------------
    def grpc_trailers(self) -> list[tuple[bytes, bytes]]:
        out = [
            (b"grpc-status", str(self.grpc_code).encode()),
            (b"grpc-message", encode_grpc_message(self.message)),
        ]
        details = self.status_details_bin()
        if details:
            import base64

            out.append((b"grpc-status-details-bin", base64.b64encode(details).rstrip(b"=")))
        return out

    def status_details_bin(self) -> bytes:
        """google.rpc.Status serialized; empty when there is nothing beyond code and message."""
        if not self.field_violations:
            return b""
        from google.rpc import error_details_pb2, status_pb2  # lazy: error path only

        bad = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
                for v in self.field_violations
            ]
        )
        st = status_pb2.Status(code=self.grpc_code, message=self.message)
        st.details.add().Pack(bad)
        encoded: bytes = st.SerializeToString()
        return encoded


def invalid(field_name: str, description: str) -> RpcError:
    """INVALID_ARGUMENT naming one field."""
    return RpcError(
        "INVALID_ARGUMENT",
        f"{field_name}: {description}",
        [FieldViolation(field_name, description)],
    )


def encode_grpc_message(message: str) -> bytes:
    """Percent-encode per the gRPC HTTP/2 spec (printable ASCII except '%' stays)."""
    return quote(
        message, safe=" !\"#$&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~"
    ).encode("ascii")


def from_engine_error(exc: Exception) -> RpcError:
    """Map an engine error to an RpcError; anything unexpected becomes a bare INTERNAL."""
    from .engine.errors import EngineError, InvalidArgument

    if isinstance(exc, RpcError):
        return exc
    if isinstance(exc, InvalidArgument):
        msg = str(exc)
        if exc.field:
            return RpcError("INVALID_ARGUMENT", msg, [FieldViolation(exc.field, msg)])
        return RpcError("INVALID_ARGUMENT", msg)
    if isinstance(exc, EngineError):
        return RpcError(exc.code, str(exc) or exc.code.lower().replace("_", " "))
    return RpcError("INTERNAL", "internal error")
