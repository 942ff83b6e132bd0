"""Engine errors. The service layer maps each to one google.rpc code; messages are safe to show
to clients (they never contain memory content or secrets)."""

from __future__ import annotations


class EngineError(Exception):
    """Root of every error the engine raises on purpose."""

    code = "INTERNAL"


class InvalidArgument(EngineError):
    code = "INVALID_ARGUMENT"

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class NotFound(EngineError):
    code = "NOT_FOUND"


class AlreadyExists(EngineError):
    code = "ALREADY_EXISTS"


class FailedPrecondition(EngineError):
    code = "FAILED_PRECONDITION"


class ResourceExhausted(EngineError):
    code = "RESOURCE_EXHAUSTED"


class DataCorrupted(EngineError):
    """A stored value failed authentication (tampered or written under another key)."""

    code = "DATA_LOSS"


class WrongEncryptionKey(EngineError):
    """The configured key does not open this data directory. Raised at start-up only."""

    code = "FAILED_PRECONDITION"


class OutOfRange(EngineError):
    """A position past what is kept (a change-stream cursor older than the retained changes)."""

    code = "OUT_OF_RANGE"


class Aborted(EngineError):
    """A concurrent change got there first; the call may be retried as it is."""

    code = "ABORTED"
