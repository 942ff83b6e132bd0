"""What the whole server shares about itself: whether it serves, since when."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .engine.engine import Engine


class ServerState:
    def __init__(self, engine: Engine | None = None) -> None:
        self.engine = engine
        self.stopping = False
        self.started_monotonic = time.monotonic()
        self.warm_up_error: str | None = None

    @property
    def status(self) -> str:
        """healthy | starting | stopping (GET /health, AdminService.Health)."""
        if self.stopping:
            return "stopping"
        if self.engine is not None and self.engine.ready:
            return "healthy"
        return "starting"
