"""A resumable watch of memory changes (``MemoryService.WatchMemories``).

``engram/_sync/watch.py`` (``Watch``) is generated from this file by ``scripts/unasync.py``;
edit this one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import suppress
from types import TracebackType
from typing import TYPE_CHECKING

from engram._config import Timeout
from engram._gen.engram import v1 as pb
from engram._utils import aclosing, async_sleep
from engram.errors import CursorExpired, EngramError, Unavailable

if TYPE_CHECKING:
    from engram._async.client import AsyncClient

logger = logging.getLogger("engram.watch")

IDLE_TIMEOUT = 45.0
"""Seconds a watch waits for the next response before it takes the connection for dead and
reopens it (REST; over gRPC the channel's keepalive notices a dead connection). The server sends
a heartbeat at least every 15 seconds, so three in a row were lost."""

_RESUMABLE_CODES = frozenset({"UNAVAILABLE", "CANCELLED"})


class AsyncWatch:
    """A running watch: an async iterator of :class:`engram.models.MemoryEvent`, oldest first.

    Made by :meth:`AsyncClient.watch`. It never ends on its own: iterate it, ``break`` when done,
    and close it (``aclose()``, or use it as an async context manager), which cancels the call::

        async with client.watch("agent-1", start_after="0") as watch:
            async for event in watch:
                print(event.type.name, event.memory_id)
                if event.type == models.MemoryEventType.DELETED:
                    break
        resume_from = watch.cursor  # pass as start_after= to continue exactly there later

    When the connection drops, or the server answers ``UNAVAILABLE`` (restarting, draining), or
    ends the stream (stopping), the watch reopens it after :attr:`cursor`, waiting the client's
    :class:`engram.Retry` backoff between tries: no change is missed or delivered twice.
    Heartbeats (responses without events, sent while nothing changes) only move the cursor;
    they are never yielded.

    Raises (from iteration):
        CursorExpired: The cursor is older than the changes the server retains: changes were
            missed; resynchronise (export) and watch from now.
        EngramError: Any other error, e.g. ``InvalidArgument`` for a malformed cursor,
            ``PermissionDenied`` for an agent the key may not read, or ``Unavailable`` once the
            server stays unreachable (see ``reconnect_timeout``).
    """

    def __init__(
        self,
        client: AsyncClient,
        agent_id: str = "",
        *,
        start_after: str | None = None,
        reconnect_timeout: float | None = None,
    ) -> None:
        if start_after is not None and not isinstance(start_after, str):
            raise TypeError(f"start_after must be a cursor string or None, not {type(start_after).__name__}")
        if reconnect_timeout is not None and reconnect_timeout < 0:
            raise ValueError(f"reconnect_timeout must be None or at least 0, got {reconnect_timeout}")
        self.agent_id = agent_id
        """The watched agent; empty for every agent the key may access."""
        self.reconnects = 0
        """How many times the stream was reopened (after a drop, an error or its end)."""
        self._client = client
        self._cursor = start_after or ""
        self._reconnect_timeout = reconnect_timeout
        self._closed = False
        self._events = self._iterate()

    @property
    def cursor(self) -> str:
        """Where the watch stands: the cursor of the last event delivered, or of the last
        response (a heartbeat also moves it past changes of agents the watch does not show).
        Empty while a watch started from now has received nothing yet. Pass it as
        ``start_after`` to a later :meth:`~AsyncClient.watch` to continue exactly here."""
        return self._cursor

    @property
    def closed(self) -> bool:
        """Whether :meth:`aclose` was called."""
        return self._closed

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<{type(self).__name__} agent_id={self.agent_id!r} cursor={self._cursor!r} {state}>"

    def __aiter__(self) -> AsyncWatch:
        return self

    async def __anext__(self) -> pb.MemoryEvent:
        if self._closed:
            raise StopAsyncIteration
        return await self._events.__anext__()

    async def __aenter__(self) -> AsyncWatch:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop watching and cancel the call. Iteration then ends (``StopAsyncIteration``).

        Called while another task or thread is waiting for the next event, it takes effect
        when the next response arrives (at most a heartbeat interval, 15 seconds).
        """
        self._closed = True
        with suppress(RuntimeError, ValueError):  # being iterated elsewhere right now: see above
            await self._events.aclose()

    # --- the stream -----------------------------------------------------------------------

    async def _iterate(self) -> AsyncGenerator[pb.MemoryEvent, None]:
        async with aclosing(self._responses()) as responses:
            async for response in responses:
                for event in response.events:
                    self._cursor = event.cursor or self._cursor
                    yield event
                if response.cursor:
                    self._cursor = response.cursor

    async def _responses(self) -> AsyncIterator[pb.WatchMemoriesResponse]:
        """Every response, the stream reopened after the cursor whenever it breaks."""
        client = self._client
        limits = Timeout(IDLE_TIMEOUT, connect=client.timeout.connect, stream=None)
        opened = False  # a response has arrived since the watch started
        failures = 0  # consecutive tries that delivered nothing
        broken_since = 0.0
        while not self._closed:
            delivered = False
            try:
                async with aclosing(
                    client.watch_responses(self.agent_id, start_after=self._cursor, timeout=limits)
                ) as stream:
                    async for response in stream:
                        delivered = opened = True
                        failures = 0
                        yield response
                        if self._closed:
                            return
                error: EngramError = Unavailable(
                    "the server ended the watch (it is stopping)", from_server=False
                )
            except EngramError as exc:
                if self._closed:
                    return
                if not self._resumable(exc):
                    raise
                error = exc
            if self._closed:
                return
            now = time.monotonic()
            if delivered:
                broken_since = now
            if not opened:
                # Never connected yet: the client's retry policy, as for any idempotent call.
                delay = client.retry.delay(error, failures)
                if delay is None:
                    raise error
            else:
                limit = self._reconnect_timeout
                if limit is not None and now - broken_since >= limit:
                    raise error
                delay = client.retry.backoff_delay(failures, error.retry_after)
                if limit is not None:
                    delay = min(delay, max(0.0, broken_since + limit - now))
            failures += 1
            self.reconnects += 1
            logger.info("watch of %r: %s; reopening after cursor %r in %.2f s",
                        self.agent_id or "*", error, self._cursor, delay)
            await async_sleep(delay)

    def _resumable(self, exc: EngramError) -> bool:
        if isinstance(exc, CursorExpired):
            return False
        if exc.code in _RESUMABLE_CODES or exc.code in self._client.retry.codes:
            return True
        # No response for IDLE_TIMEOUT (REST): the connection is dead.
        return exc.code == "DEADLINE_EXCEEDED" and not exc.from_server
