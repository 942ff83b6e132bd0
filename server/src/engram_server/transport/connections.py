"""Connection lifetimes on Hypercorn 0.18: close on the client's EOF, idle timeouts per protocol,
header and body timeouts, and a limit on HTTP/2 stream resets.

What Hypercorn 0.18 does, and what this module changes (docs/design/transport.md has the whole
story and the upstream report):

* A client's EOF did not close the connection. `TCPServer._read_data` hands `Closed()` to the
  protocol, but neither `H11Protocol` nor `H2Protocol` then tells the TCPServer to close, so the
  socket stayed in CLOSE-WAIT, holding its descriptor, until the idle task ran out
  (`keep_alive_timeout`). Here both protocols answer `Closed()` by sending `Closed()` back, which
  makes the TCPServer close the socket at once; in-flight requests still get `http.disconnect`.
* One `keep_alive_timeout` served both protocols. `LimitedTCPServer._idle_timeout` takes
  `http1_idle_timeout` or `http2_idle_timeout` by the connection's protocol, and ends an idle
  HTTP/2 connection with GOAWAY. Hypercorn also stopped the idle timer for good when an h2c
  connection started with the prior-knowledge preface (HTTP/1.1 saw the preface as a request),
  and when a client reset its last open stream; `LimitedH2Protocol` restarts it in both cases.
* Nothing bounded how slowly a client sends. The first request head, or the HTTP/2 preface and
  the client's SETTINGS, must arrive within `header_timeout` of connect (`LimitedTCPServer`);
  each later HTTP/1.1 request head within `header_timeout` of its first byte
  (`LimitedH11Protocol`). While a request body is being received, `body_timeout` without a byte
  of it closes an HTTP/1.1 connection or resets that HTTP/2 stream. Once a request is complete,
  no timer runs however long the response takes, and no timer runs while the server itself is
  still handling the bytes it read (the app may be slow to take a body).
* Shutting down, Hypercorn refuses a new HTTP/2 stream with RST_STREAM(NO_ERROR), which a gRPC
  client reports as an error, and then fails with KeyError on that stream's DATA (it never made
  the stream), which took the whole connection down, every call in flight on it included. Here a
  new stream is refused with REFUSED_STREAM (nothing of it was processed: clients may retry it
  elsewhere), and frames of refused streams are acknowledged and dropped.
* Nothing limited stream resets (CVE-2023-44487, "rapid reset"). More than `max_stream_resets`
  client RST_STREAMs on one connection within `RESET_WINDOW_S` gets GOAWAY(ENHANCE_YOUR_CALM)
  and the connection is closed.

`install()` puts the classes where Hypercorn looks them up: the protocols in `hypercorn.protocol`
(ProtocolWrapper, which also switches a connection from HTTP/1.1 to HTTP/2), the TCP server in
`hypercorn.asyncio.run` (worker_serve). The limits travel in the Hypercorn config
(`LimitedConfig`, built by `server.hypercorn_config`). Timers are event-loop timers
(`call_later`), so the same code runs on asyncio's loop and on uvloop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import h11
from hypercorn.asyncio.tcp_server import TCPServer
from hypercorn.config import Config as HypercornConfig
from hypercorn.events import Closed, Event, RawData, Updated
from hypercorn.protocol.h11 import H11Protocol

from ..config import Config
from .h2_writes import CoalescingH2Protocol

RESET_WINDOW_S = 10.0  # the window max_stream_resets counts in


@dataclass(frozen=True)
class Limits:
    http1_idle_timeout: float
    http2_idle_timeout: float
    header_timeout: float
    body_timeout: float
    max_stream_resets: int

    @classmethod
    def of(cls, cfg: Config) -> Limits:
        return cls(
            http1_idle_timeout=cfg.http1_idle_timeout,
            http2_idle_timeout=cfg.http2_idle_timeout,
            header_timeout=cfg.header_timeout,
            body_timeout=cfg.body_timeout,
            max_stream_resets=cfg.max_stream_resets,
        )


class LimitedConfig(HypercornConfig):
    """Hypercorn's configuration plus the limits of this module."""

    limits: Limits


@cache
def _default_limits() -> Limits:
    return Limits.of(Config())


def limits_of(config: HypercornConfig) -> Limits:
    """The config's limits; the documented defaults for a plain Hypercorn config."""
    return config.limits if isinstance(config, LimitedConfig) else _default_limits()


@dataclass(frozen=True)
class HandshakeDone(Event):
    """From a protocol to its TCPServer: the first request head (HTTP/1.1) or the client's
    SETTINGS (HTTP/2) has arrived. Hypercorn's own TCPServer ignores events it does not know."""


def _spawn(task_group: Any, func: Callable[..., Any], *args: Any) -> None:
    """Run func(*args) in the connection's task group, from a timer callback; nothing when the
    connection has finished meanwhile (its task group then refuses new tasks)."""
    with contextlib.suppress(RuntimeError):
        task_group.spawn(func, *args)


class LimitedTCPServer(TCPServer):
    """Per-protocol idle timeouts (GOAWAY for HTTP/2) and the handshake deadline."""

    async def run(self) -> None:
        limits = limits_of(self.config)
        # The first request head, or the HTTP/2 preface and SETTINGS, within header_timeout of
        # connect. Closing the transport ends _read_data with EOF, which closes the protocol.
        self._handshake = self.loop.call_later(limits.header_timeout, self.writer.close)
        try:
            await super().run()
        finally:
            self._handshake.cancel()

    async def protocol_send(self, event: Event) -> None:
        if type(event) is HandshakeDone:
            self._handshake.cancel()
        else:
            await super().protocol_send(event)

    async def _idle_timeout(self) -> None:
        # Hypercorn's own waits keep_alive_timeout for every protocol and closes without GOAWAY.
        limits = limits_of(self.config)
        protocol = self.protocol.protocol
        is_h2 = isinstance(protocol, LimitedH2Protocol)
        timeout = limits.http2_idle_timeout if is_h2 else limits.http1_idle_timeout
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.context.terminated.wait(), timeout)
        if isinstance(protocol, LimitedH2Protocol):
            await asyncio.shield(protocol.go_away())
        else:
            await asyncio.shield(self._initiate_server_close())


class LimitedH11Protocol(H11Protocol):
    """HTTP/1.1: closes on EOF; header timeout from a request head's first byte; body timeout."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._limits = limits_of(self.config)
        self._timer: asyncio.TimerHandle | None = None
        self._head_started: float | None = None  # loop time of a pending head's first byte
        self._handshake_sent = False
        self._closed_sent = False

    async def handle(self, event: Event) -> None:
        if isinstance(event, RawData):
            # No timer while the bytes are handled: that may wait on the app (a full body queue,
            # a pipelined request) and then the client is not the one that is slow.
            self._cancel_timer()
            await super().handle(event)  # raises when ProtocolWrapper must switch to HTTP/2
            self._arm_timer()
        elif isinstance(event, Closed):
            self._cancel_timer()
            await super().handle(event)  # closes an open stream: the app gets http.disconnect
            if not self._closed_sent:  # Hypercorn stops here and the socket stays open
                self._closed_sent = True
                await self.send(Closed())
        else:
            await super().handle(event)

    async def _create_stream(self, request: h11.Request) -> None:
        if not self._handshake_sent:
            self._handshake_sent = True
            await self.send(HandshakeDone())
        await super()._create_stream(request)

    def _arm_timer(self) -> None:
        state = self.connection.their_state
        loop = asyncio.get_running_loop()
        if state is h11.IDLE and self.connection.trailing_data[0]:  # part of a request head
            if self._head_started is None:
                self._head_started = loop.time()
            self._timer = loop.call_at(self._head_started + self._limits.header_timeout, self._timed_out)
            return
        self._head_started = None
        if state is h11.SEND_BODY:  # the body is still coming
            self._timer = loop.call_later(self._limits.body_timeout, self._timed_out)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _timed_out(self) -> None:
        self._timer = None
        _spawn(self.task_group, self.handle, Closed())


class LimitedH2Protocol(CoalescingH2Protocol):
    """HTTP/2 (with CoalescingH2Protocol's writes): closes on EOF, GOAWAY when idle, resets a
    stream whose body stalls, and ends a connection that resets too many streams."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._limits = limits_of(self.config)
        self._settings_seen = False
        self._body_timers: dict[int, asyncio.TimerHandle] = {}
        self._handling = False  # a batch of events is being handled (it may wait on the app)
        self._resets = 0
        self._resets_since = 0.0
        self._closed_sent = False
        self._refused: set[int] = set()  # streams refused while shutting down
        self._refusing = False

    async def initiate(self, headers: list[tuple[bytes, bytes]] | None = None, settings: bytes | None = None) -> None:
        await super().initiate(headers, settings)
        if self.idle:
            # HTTP/1.1 took the prior-knowledge preface for a request and stopped the idle
            # timer (Updated(idle=False)); nothing would restart it until a stream closes.
            await self.send(Updated(idle=True))

    async def handle(self, event: Event) -> None:
        await super().handle(event)
        if isinstance(event, Closed) and not self._closed_sent:
            # Hypercorn marks itself closed but never tells the TCPServer, whose socket stays open.
            self._closed_sent = True
            await self.send(Closed())

    async def go_away(self, error_code: int = h2.errors.ErrorCodes.NO_ERROR) -> None:
        """GOAWAY (a gRPC client opens a new connection for its next call), then close."""
        if not self.closed:
            with contextlib.suppress(h2.exceptions.ProtocolError):
                self.connection.close_connection(error_code=error_code)
                await self._flush()
        await self.handle(Closed())

    async def _handle_events(self, events: list[h2.events.Event]) -> None:
        if self.context.terminated.is_set():
            events = self._refuse_new_streams(events)
        # Which streams this batch leaves still receiving a body, counted resets, first SETTINGS.
        receiving: dict[int, bool] = {}
        reset = False
        for event in events:
            if isinstance(event, h2.events.DataReceived):
                receiving[event.stream_id] = True
            elif isinstance(event, h2.events.RequestReceived):
                receiving[event.stream_id] = event.stream_ended is None
            elif isinstance(event, h2.events.StreamEnded):
                receiving[event.stream_id] = False
            elif isinstance(event, h2.events.StreamReset):
                receiving[event.stream_id] = False
                reset = True
                if event.remote_reset and self._too_many_resets():
                    await self.go_away(h2.errors.ErrorCodes.ENHANCE_YOUR_CALM)
                    return
            elif isinstance(event, h2.events.RemoteSettingsChanged) and not self._settings_seen:
                self._settings_seen = True
                await self.send(HandshakeDone())
        for stream_id in receiving:
            timer = self._body_timers.pop(stream_id, None)
            if timer is not None:
                timer.cancel()
        self._handling = True
        try:
            await super()._handle_events(events)
        finally:
            self._handling = False
        for stream_id, still in receiving.items():
            if still and stream_id in self.streams:
                self._arm_body_timer(stream_id)
        if reset and self.idle and not self.closed:
            # Hypercorn closes a reset stream without telling the TCPServer the connection may
            # now be idle, so the idle timer would never restart.
            await self.send(Updated(idle=True))

    def _refuse_new_streams(self, events: list[h2.events.Event]) -> list[h2.events.Event]:
        """Shutting down: refuse new streams (REFUSED_STREAM: nothing of them ran) and drop the
        frames of refused ones, which Hypercorn would look up and fail on."""
        kept: list[h2.events.Event] = []
        if not self._refusing:
            self._refusing = True  # and tell the client to open no more
            with contextlib.suppress(h2.exceptions.ProtocolError):
                self.connection.update_settings({h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 0})
        for event in events:
            stream_id = getattr(event, "stream_id", None)
            if isinstance(event, h2.events.RequestReceived):
                self._refused.add(event.stream_id)
                with contextlib.suppress(h2.exceptions.ProtocolError):
                    self.connection.reset_stream(event.stream_id, error_code=h2.errors.ErrorCodes.REFUSED_STREAM)
                continue
            if stream_id in self._refused:
                if isinstance(event, h2.events.DataReceived):
                    with contextlib.suppress(h2.exceptions.ProtocolError):
                        self.connection.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                continue
            kept.append(event)
        return kept

    async def _close_stream(self, stream_id: int) -> None:
        timer = self._body_timers.pop(stream_id, None)
        if timer is not None:
            timer.cancel()
        await super()._close_stream(stream_id)

    def _too_many_resets(self) -> bool:
        now = asyncio.get_running_loop().time()
        if now - self._resets_since > RESET_WINDOW_S:
            self._resets_since, self._resets = now, 0
        self._resets += 1
        return self._resets > self._limits.max_stream_resets

    def _arm_body_timer(self, stream_id: int) -> None:
        loop = asyncio.get_running_loop()
        self._body_timers[stream_id] = loop.call_later(self._limits.body_timeout, self._body_timed_out, stream_id)

    def _body_timed_out(self, stream_id: int) -> None:
        del self._body_timers[stream_id]
        if self._handling:
            # This stream's bytes may be waiting behind the batch being handled.
            self._arm_body_timer(stream_id)
            return
        if self.closed or stream_id not in self.streams:
            return
        with contextlib.suppress(h2.exceptions.ProtocolError):
            # At once, so h2 drops any frame of this stream that arrives before the task runs.
            self.connection.reset_stream(stream_id, error_code=h2.errors.ErrorCodes.CANCEL)
        _spawn(self.task_group, self._close_timed_out_stream, stream_id)

    async def _close_timed_out_stream(self, stream_id: int) -> None:
        await self._close_stream(stream_id)  # the app gets http.disconnect
        await self._flush()
        if self.idle and not self.closed:
            await self.send(Updated(idle=True))


def install() -> None:
    """Serve every connection with these classes (idempotent)."""
    import hypercorn.asyncio.run
    import hypercorn.protocol

    hypercorn.protocol.H11Protocol = LimitedH11Protocol  # type: ignore[attr-defined]
    hypercorn.protocol.H2Protocol = LimitedH2Protocol  # type: ignore[attr-defined]
    hypercorn.asyncio.run.TCPServer = LimitedTCPServer  # type: ignore[attr-defined]
