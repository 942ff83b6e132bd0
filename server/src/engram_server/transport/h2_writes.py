"""Hypercorn's HTTP/2 protocol with a unary response in one socket write instead of three.

Hypercorn (0.18) writes each part of a response as soon as it has it: the HEADERS frame of
`http.response.start`, then, from its sending task, the DATA frame, then the trailing HEADERS
frame. A unary gRPC call is all three, one after the other, so every call cost three `send`
syscalls, three TCP segments for the client to wake up for and an extra event-loop turn for the
sending task.

`CoalescingH2Protocol` changes two steps and leaves everything else to Hypercorn:

* the response headers are encoded at once but written with whatever comes next; a flush is
  scheduled for the end of the event-loop turn in case nothing does (a stream that starts and
  then waits), so headers are never held back longer than that turn;
* trailers first write what the stream still has buffered, when it fits in the flow-control
  window and one frame, then the trailing HEADERS, all in one write. A larger body keeps
  Hypercorn's own path (its sending task chunks it under flow control).

It also turns off h2's validation of *outbound* headers: the app and Hypercorn write those
headers themselves (constants and already-validated values), so h2 checking each of them again,
in a chain of generators on every response, bought nothing. Inbound headers are still validated.

The server runs connections.LimitedH2Protocol, a subclass that adds connection limits;
`connections.install()` puts it in `hypercorn.protocol`, where Hypercorn's ProtocolWrapper looks
it up for each connection. The Hypercorn version is pinned (requirements/*.lock), and the tests
run every RPC, streaming, large messages and errors through this class.
"""

from __future__ import annotations

import asyncio
from typing import Any

import h2.exceptions
from hypercorn.protocol.events import Response, Trailers
from hypercorn.protocol.h2 import BufferCompleteError, H2Protocol
from priority.priority import MissingStreamError


class CoalescingH2Protocol(H2Protocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.connection.config.validate_outbound_headers = False
        self._flush_scheduled = False

    async def _flush(self) -> None:
        self._flush_scheduled = False  # this flush writes whatever was held back
        await super()._flush()

    def _flush_at_end_of_turn(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush_if_still_held)

    def _flush_if_still_held(self) -> None:
        if self._flush_scheduled and not self.closed:
            self.task_group.spawn(self._flush)

    async def stream_send(self, event: Any) -> None:
        try:
            if type(event) is Response:  # not InformationalResponse (103), which goes out at once
                self.connection.send_headers(
                    event.stream_id,
                    [(b":status", b"%d" % event.status_code), *event.headers, *self.config.response_headers("h2")],
                )
                self._flush_at_end_of_turn()
                return
            if isinstance(event, Trailers) and await self._write_buffered(event.stream_id):
                self.connection.send_headers(event.stream_id, event.headers, end_stream=True)
                await self._flush()
                return
        except (BufferCompleteError, KeyError, MissingStreamError, h2.exceptions.ProtocolError):
            return  # the connection closed meanwhile, as Hypercorn's own stream_send treats it
        await super().stream_send(event)

    async def _write_buffered(self, stream_id: int) -> bool:
        """Move the stream's buffered body into h2 now; False when it must go Hypercorn's way."""
        buffer = self.stream_buffers[stream_id]
        size = len(buffer.buffer)
        if size:
            window = self.connection.local_flow_control_window(stream_id)
            if size > min(window, self.connection.max_outbound_frame_size):
                return False
            self.connection.send_data(stream_id, await buffer.pop(size))
        return True
