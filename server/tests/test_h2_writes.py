"""CoalescingH2Protocol: Hypercorn's HTTP/2 protocol, driven with a real h2 client's bytes, writes
a unary response (headers, body, trailers) in one write, and still gets every other shape right:
a streamed body, a body larger than one frame, headers with no body yet."""

from __future__ import annotations

import asyncio
from typing import Any

import h2.config
import h2.connection
import h2.events
import pytest
from engram_server.transport.h2_writes import CoalescingH2Protocol
from hypercorn.app_wrappers import ASGIWrapper
from hypercorn.asyncio.task_group import TaskGroup
from hypercorn.asyncio.worker_context import WorkerContext
from hypercorn.config import Config
from hypercorn.events import Closed, RawData
from hypercorn.protocol.h2 import H2Protocol

TRAILERS = [(b"grpc-status", b"0"), (b"grpc-message", b"")]


def _app(parts: list[bytes], *, streamed: bool = False, pause: float = 0.0) -> Any:
    """An ASGI app answering as the gRPC transport does: start, the body (one last message, or
    `parts` streamed then an empty last one), trailers."""
    start = {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/grpc")]}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        while (await receive()).get("more_body"):
            pass
        await send({**start, "trailers": True})
        if pause:
            await asyncio.sleep(pause)  # headers must not wait for the first message
        last = parts[0] if not streamed else b""
        for part in parts if streamed else []:
            await send({"type": "http.response.body", "body": part, "more_body": True})
            await asyncio.sleep(0)
        await send({"type": "http.response.body", "body": last, "more_body": False})
        await send({"type": "http.response.trailers", "headers": TRAILERS, "more_trailers": False})

    return app


async def _exchange(protocol_cls: type[H2Protocol], app: Any, *, watch_headers: float = 0.0) -> dict[str, Any]:
    """One request on a fresh connection; the writes the server made after the request, and
    what the client made of them."""
    writes: list[bytes] = []

    async def send(event: Any) -> None:
        if isinstance(event, RawData):
            writes.append(event.data)

    config = Config()
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
    client.initiate_connection()
    loop = asyncio.get_running_loop()
    async with TaskGroup(loop) as group:
        proto = protocol_cls(
            ASGIWrapper(app), config, WorkerContext(None), group, {}, False, ("127.0.0.1", 1), ("127.0.0.1", 2), send
        )
        await proto.initiate()
        await proto.handle(RawData(client.data_to_send()))
        client.receive_data(b"".join(writes))  # server preface and settings
        writes.clear()
        sid = client.get_next_available_stream_id()
        client.send_headers(
            sid,
            [
                (b":method", b"POST"),
                (b":scheme", b"http"),
                (b":path", b"/x.S/M"),
                (b":authority", b"t"),
                (b"te", b"trailers"),
                (b"content-type", b"application/grpc"),
            ],
        )
        client.send_data(sid, b"\x00\x00\x00\x00\x00", end_stream=True)
        await proto.handle(RawData(client.data_to_send()))
        result: dict[str, Any] = {"headers_before_body": None}
        events: list[Any] = []
        deadline = loop.time() + 5
        seen = 0
        while loop.time() < deadline:
            await asyncio.sleep(0.001)
            new = writes[seen:]
            seen = len(writes)
            for chunk in new:
                got = client.receive_data(chunk)
                for e in got:
                    if isinstance(e, h2.events.DataReceived):
                        client.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
                events.extend(got)
            reply = client.data_to_send()
            if reply:  # window updates, acks: the server needs them to go on
                await proto.handle(RawData(reply))
            if (
                watch_headers
                and result["headers_before_body"] is None
                and any(isinstance(e, h2.events.ResponseReceived) for e in events)
            ):
                result["headers_before_body"] = not any(isinstance(e, h2.events.DataReceived) for e in events)
            if any(isinstance(e, h2.events.StreamEnded) for e in events):
                break
        await proto.handle(Closed())
    result["writes"] = [w for w in writes if w]
    result["body"] = b"".join(e.data for e in events if isinstance(e, h2.events.DataReceived))
    result["trailers"] = next((e.headers for e in events if isinstance(e, h2.events.TrailersReceived)), None)
    result["status"] = next(
        (dict(e.headers)[b":status"] for e in events if isinstance(e, h2.events.ResponseReceived)), None
    )
    return result


@pytest.mark.parametrize("size", [0, 5, 3000])
def test_unary_response_is_one_write(size: int) -> None:
    body = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    ours = asyncio.run(_exchange(CoalescingH2Protocol, _app([body])))
    theirs = asyncio.run(_exchange(H2Protocol, _app([body])))
    for r in (ours, theirs):
        assert (r["status"], r["body"], r["trailers"]) == (b"200", body, TRAILERS)
    assert len(ours["writes"]) == 1, ours["writes"]
    assert len(theirs["writes"]) > 1  # the behaviour this class exists to change


def test_body_larger_than_a_frame_keeps_flow_control() -> None:
    body = b"m" * 100_000  # over the 16 KiB frame and the 64 KiB initial window
    ours = asyncio.run(_exchange(CoalescingH2Protocol, _app([body])))
    assert (ours["status"], ours["body"], ours["trailers"]) == (b"200", body, TRAILERS)


def test_streamed_messages_arrive_in_order() -> None:
    parts = [bytes([i]) * (100 + i) for i in range(20)]
    ours = asyncio.run(_exchange(CoalescingH2Protocol, _app(parts, streamed=True)))
    assert (ours["status"], ours["body"], ours["trailers"]) == (b"200", b"".join(parts), TRAILERS)


def test_headers_are_not_held_for_a_body_that_comes_later() -> None:
    ours = asyncio.run(_exchange(CoalescingH2Protocol, _app([b"late"], streamed=True, pause=0.2), watch_headers=0.2))
    assert ours["headers_before_body"] is True
    assert (ours["body"], ours["trailers"]) == (b"late", TRAILERS)
