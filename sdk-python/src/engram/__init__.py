"""Engram Python SDK: clients for the Engram memory server.

    import engram

    with engram.Client("http://127.0.0.1:3300", api_key="...") as client:
        client.store("agent-1", "The user prefers dark mode", tags=["ui"])
        for hit in client.recall("agent-1", "UI preferences").memories:
            print(hit.score, hit.content)

Messages and enums live in :mod:`engram.models`; errors in :mod:`engram.errors`.
"""

import importlib as _importlib
import typing as _typing
from contextlib import suppress as _suppress

from engram._config import USE_CLIENT_DEFAULT, Retry, Timeout
from engram._gen.engram.v1 import (
    ApiKeyRole,
    EmbeddingInputType,
    Memory,
    MemoryFilter,
    MemoryType,
    RecallMode,
    TimeRange,
)
from engram._version import __version__
from engram.errors import (
    Aborted,
    AlreadyExists,
    Cancelled,
    CursorExpired,
    DataLoss,
    DeadlineExceeded,
    EngramError,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    NotFound,
    OutOfRange,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
    Unimplemented,
    Unknown,
)

if _typing.TYPE_CHECKING:
    from engram._async.client import AsyncClient
    from engram._async.transports import AsyncGrpcTransport, AsyncRestTransport, AsyncTransport
    from engram._async.watch import AsyncWatch
    from engram._convert import decode_vector, encode_vector
    from engram._sync.client import Client
    from engram._sync.transports import GrpcTransport, RestTransport, Transport
    from engram._sync.watch import Watch

# The clients and transports load on first use (PEP 562): they pull in httpx and grpcio, which a
# program that only needs the messages (the reference server imports engram._gen) should not pay
# for at start-up.
_LAZY = {
    "AsyncClient": "engram._async.client",
    "AsyncGrpcTransport": "engram._async.transports",
    "AsyncRestTransport": "engram._async.transports",
    "AsyncTransport": "engram._async.transports",
    "AsyncWatch": "engram._async.watch",
    "Client": "engram._sync.client",
    "GrpcTransport": "engram._sync.transports",
    "RestTransport": "engram._sync.transports",
    "Transport": "engram._sync.transports",
    "Watch": "engram._sync.watch",
    "decode_vector": "engram._convert",
    "encode_vector": "engram._convert",
}

__all__ = [
    "USE_CLIENT_DEFAULT",
    "Aborted",
    "AlreadyExists",
    "ApiKeyRole",
    "AsyncClient",
    "AsyncGrpcTransport",
    "AsyncRestTransport",
    "AsyncTransport",
    "AsyncWatch",
    "Cancelled",
    "Client",
    "CursorExpired",
    "DataLoss",
    "DeadlineExceeded",
    "EmbeddingInputType",
    "EngramError",
    "FailedPrecondition",
    "GrpcTransport",
    "Internal",
    "InvalidArgument",
    "Memory",
    "MemoryFilter",
    "MemoryType",
    "NotFound",
    "OutOfRange",
    "PermissionDenied",
    "RecallMode",
    "ResourceExhausted",
    "RestTransport",
    "Retry",
    "TimeRange",
    "Timeout",
    "Transport",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
    "Unknown",
    "Watch",
    "__version__",
    "decode_vector",
    "encode_vector",
]


def _present_as_engram(obj: object) -> None:
    # Own classes only: betterproto2 resolves the generated ones' type hints via __module__.
    if isinstance(obj, type) and not obj.__module__.startswith("engram._gen"):
        with _suppress(AttributeError, TypeError):
            obj.__module__ = "engram"  # like httpx: show engram.Client, not engram._sync...


def __getattr__(name: str) -> _typing.Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'engram' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    _present_as_engram(value)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


for _name in __all__:
    if _name not in _LAZY:
        _present_as_engram(globals()[_name])
