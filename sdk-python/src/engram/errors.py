"""Errors raised by the Engram client.

The tree, the same on both transports (gRPC and REST)::

    EngramError                 code, message, details, retry_after, from_server
    ├── InvalidArgument         INVALID_ARGUMENT     HTTP 400
    ├── FailedPrecondition      FAILED_PRECONDITION  HTTP 400
    ├── OutOfRange              OUT_OF_RANGE         HTTP 400
    │   └── CursorExpired       a watch's cursor is past the server's retention: resynchronise
    ├── Unauthenticated         UNAUTHENTICATED      HTTP 401
    ├── PermissionDenied        PERMISSION_DENIED    HTTP 403
    ├── NotFound                NOT_FOUND            HTTP 404
    ├── AlreadyExists           ALREADY_EXISTS       HTTP 409
    ├── Aborted                 ABORTED              HTTP 409
    ├── ResourceExhausted       RESOURCE_EXHAUSTED   HTTP 429, 413
    ├── Cancelled               CANCELLED            HTTP 499
    ├── Unimplemented           UNIMPLEMENTED        HTTP 501
    ├── Unavailable             UNAVAILABLE          HTTP 503, connection errors
    ├── DeadlineExceeded        DEADLINE_EXCEEDED    HTTP 504, client-side timeouts
    ├── Internal                INTERNAL             HTTP 500
    ├── DataLoss                DATA_LOSS            HTTP 500 with that code
    └── Unknown                 UNKNOWN              anything else

``code`` is the gRPC code name (``"NOT_FOUND"``), the same string in every Engram SDK.
``from_server`` is True when the server sent the error, False when the client made it up
(a connection refused, a timeout). ``retry_after`` is the delay in seconds the server asked
for (``Retry-After`` or ``google.rpc.RetryInfo``), else None. ``details`` are the
``google.rpc.Status`` details as proto3 JSON dicts (each with an ``"@type"``).
"""

from __future__ import annotations

from typing import Any

from engram._gen.codes import CODE_FOR_HTTP_STATUS

__all__ = [
    "Aborted",
    "AlreadyExists",
    "Cancelled",
    "CursorExpired",
    "DataLoss",
    "DeadlineExceeded",
    "EngramError",
    "FailedPrecondition",
    "Internal",
    "InvalidArgument",
    "NotFound",
    "OutOfRange",
    "PermissionDenied",
    "ResourceExhausted",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
    "Unknown",
    "error_for_code",
    "code_for_http_status",
]


class EngramError(Exception):
    """Root of every error the client raises."""

    code: str = "UNKNOWN"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: list[dict[str, Any]] | None = None,
        retry_after: float | None = None,
        from_server: bool = True,
    ) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message
        self.details: list[dict[str, Any]] = details or []
        self.retry_after = retry_after
        self.from_server = from_server

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"


class InvalidArgument(EngramError):
    """The request is malformed: a field is missing, out of range or of the wrong kind."""

    code = "INVALID_ARGUMENT"


class FailedPrecondition(EngramError):
    """The request is valid but the system is not in a state to accept it."""

    code = "FAILED_PRECONDITION"


class OutOfRange(EngramError):
    """A value is past the valid range (for instance a page token past the end)."""

    code = "OUT_OF_RANGE"


class CursorExpired(OutOfRange):
    """A watch cannot resume: its cursor is older than the changes the server still retains
    (the server's ``event_retention``), so changes were missed.

    Resynchronise: read the current state again with ``Client.export`` (or ``iter_memories``),
    then watch from now (``start_after=None``). ``cursor`` is the cursor that was refused.
    """

    code = "OUT_OF_RANGE"

    def __init__(self, message: str, *, cursor: str = "", **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.cursor = cursor


class Unauthenticated(EngramError):
    """No API key, or an unknown, expired or revoked one."""

    code = "UNAUTHENTICATED"


class PermissionDenied(EngramError):
    """The API key may not do this (role or agent scope)."""

    code = "PERMISSION_DENIED"


class NotFound(EngramError):
    """The memory, agent or key does not exist (or is not visible to this key)."""

    code = "NOT_FOUND"


class AlreadyExists(EngramError):
    """A memory with this client-supplied id already exists with other content."""

    code = "ALREADY_EXISTS"


class Aborted(EngramError):
    """The operation was aborted, typically by a concurrent change."""

    code = "ABORTED"


class ResourceExhausted(EngramError):
    """A limit was hit: rate, request size, batch size. See ``retry_after``."""

    code = "RESOURCE_EXHAUSTED"


class Cancelled(EngramError):
    """The call was cancelled."""

    code = "CANCELLED"


class Unimplemented(EngramError):
    """The server does not implement this call."""

    code = "UNIMPLEMENTED"


class Unavailable(EngramError):
    """The server cannot be reached or is not serving (starting, draining). Safe to retry."""

    code = "UNAVAILABLE"


class DeadlineExceeded(EngramError):
    """The call did not finish within its timeout."""

    code = "DEADLINE_EXCEEDED"


class Internal(EngramError):
    """The server failed; the message does not reveal internals."""

    code = "INTERNAL"


class DataLoss(EngramError):
    """Unrecoverable data loss or corruption was detected."""

    code = "DATA_LOSS"


class Unknown(EngramError):
    """An error without a known code."""

    code = "UNKNOWN"


_BY_CODE: dict[str, type[EngramError]] = {
    cls.code: cls
    for cls in (
        InvalidArgument, FailedPrecondition, OutOfRange, Unauthenticated, PermissionDenied,
        NotFound, AlreadyExists, Aborted, ResourceExhausted, Cancelled, Unimplemented,
        Unavailable, DeadlineExceeded, Internal, DataLoss, Unknown,
    )
}

# The code of each HTTP status (generated from google/rpc/code.proto), and two that only a proxy or
# the server's body size limit answer with.
_BY_HTTP_STATUS: dict[int, str] = {**CODE_FOR_HTTP_STATUS, 413: "RESOURCE_EXHAUSTED", 502: "UNAVAILABLE"}


def code_for_http_status(status: int) -> str:
    """The gRPC code name for an HTTP status, when the body does not name one."""
    return _BY_HTTP_STATUS.get(status, "INTERNAL" if status >= 500 else "UNKNOWN")


def error_for_code(
    code: str,
    message: str,
    *,
    details: list[dict[str, Any]] | None = None,
    retry_after: float | None = None,
    from_server: bool = True,
) -> EngramError:
    """Build the exception of the class that matches ``code`` (a gRPC code name)."""
    code = code.upper()
    cls = _BY_CODE.get(code, EngramError)
    return cls(message, code=code, details=details, retry_after=retry_after, from_server=from_server)
