"""connections.py's protocols, driven in memory: on the client's EOF (Closed from the read loop)
an in-flight request gets http.disconnect, as in Hypercorn, and the protocol then tells its TCP
server to close the socket, which Hypercorn 0.18 never does. The timeouts and the reset limit
are tested against a real server in tests/reliability/test_connection_churn.py."""

from __future__ import annotations

import asyncio
from typing import Any

import h2.config
import h2.connection
import pytest
from engram_server.transport.connections import LimitedH2Protocol, LimitedH11Protocol
from hypercorn.app_wrappers import ASGIWrapper
from hypercorn.asyncio.task_group import TaskGroup
from hypercorn.asyncio.worker_context import WorkerContext
from hypercorn.config import Config
from hypercorn.events import Closed, RawData


async def _eof_during_request(protocol_cls: type, request: bytes) -> tuple[list[str], list[Any]]:
    received: list[str] = []
    sent: list[Any] = []
    started = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        started.set()
        while True:
            message = await receive()
            received.append(message["type"])
            if message["type"] == "http.disconnect":
                return

    async def send(event: Any) -> None:
        sent.append(event)

    async with TaskGroup(asyncio.get_running_loop()) as group:
        proto = protocol_cls(
            ASGIWrapper(app), Config(), WorkerContext(None), group, {}, False, ("127.0.0.1", 1), ("127.0.0.1", 2), send
        )
        await proto.initiate()
        await proto.handle(RawData(request))
        await asyncio.wait_for(started.wait(), 5)
        await proto.handle(Closed())
        await proto.handle(Closed())  # the read loop and a failed write may both report it
    return received, sent


def _h2_request_without_end() -> bytes:
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
    client.initiate_connection()
    headers = [(b":method", b"POST"), (b":scheme", b"http"), (b":path", b"/x"), (b":authority", b"t")]
    client.send_headers(1, headers)
    client.send_data(1, b"part of a body")
    return client.data_to_send()


@pytest.mark.parametrize(
    ("protocol_cls", "request_bytes"),
    [
        (LimitedH11Protocol, b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\npart of a body"),
        (LimitedH2Protocol, _h2_request_without_end()),
    ],
)
def test_eof_disconnects_the_request_and_closes_the_connection(protocol_cls: type, request_bytes: bytes) -> None:
    received, sent = asyncio.run(_eof_during_request(protocol_cls, request_bytes))
    assert received[-1] == "http.disconnect"
    assert sum(isinstance(e, Closed) for e in sent) == 1  # once, however often EOF is reported
