"""What a transport needs from the server that mounts it (the app implements it).

Transports depend on this protocol, not on the app, so that the app imports the transports and
never the other way round.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ..config import Config
    from ..service.base import CallContext
    from ..service.registry import Registry


class Host(Protocol):
    @property
    def config(self) -> Config: ...

    @property
    def registry(self) -> Registry: ...

    def observe(self, method: str, transport: str, code: str, seconds: float, ctx: CallContext | None) -> None:
        """Count and log one finished call."""

    def log_exception(self, msg: str) -> None:
        """Log an unexpected error with its traceback."""
