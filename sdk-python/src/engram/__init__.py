"""Engram Python SDK: clients for the Engram memory server.

    import engram

    with engram.Client("http://localhost:3300", api_key="...") as client:
        client.store("agent-1", "The user prefers dark mode", tags=["ui"])
        for hit in client.recall("agent-1", "UI preferences").memories:
            print(hit.score, hit.content)

Messages and enums live in :mod:`engram.models`; errors in :mod:`engram.errors`.
"""

from contextlib import suppress as __suppress

from engram._async.client import AsyncClient
from engram._async.transports import AsyncGrpcTransport, AsyncRestTransport, AsyncTransport
from engram._config import USE_CLIENT_DEFAULT, Retry, Timeout
from engram._convert import decode_vector, encode_vector
from engram._gen.engram.v1 import (
    ApiKeyRole,
    EmbeddingInputType,
    Memory,
    MemoryFilter,
    MemoryType,
    RecallMode,
    TimeRange,
)
from engram._sync.client import Client
from engram._sync.transports import GrpcTransport, RestTransport, Transport
from engram._version import __version__
from engram.errors import (
    Aborted,
    AlreadyExists,
    Cancelled,
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

__all__ = [
    "USE_CLIENT_DEFAULT",
    "Aborted",
    "AlreadyExists",
    "ApiKeyRole",
    "AsyncClient",
    "AsyncGrpcTransport",
    "AsyncRestTransport",
    "AsyncTransport",
    "Cancelled",
    "Client",
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
    "__version__",
    "decode_vector",
    "encode_vector",
]

__locals = locals()
for __name in __all__:
    __obj = __locals[__name]
    # Own classes only: betterproto2 resolves the generated ones' type hints via __module__.
    if isinstance(__obj, type) and not __obj.__module__.startswith("engram._gen"):
        with __suppress(AttributeError, TypeError):
            __obj.__module__ = "engram"  # like httpx: show engram.Client, not engram._sync...
