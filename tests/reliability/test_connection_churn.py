"""Connections come and go without leaking; idle, slow and abusive ones are closed.

* Churn: thousands of connect-and-close cycles of each kind (raw TCP with no bytes, HTTP/1.1
  GET /health, the h2c prior-knowledge preface, a real gRPC call on a fresh channel) against a
  server limited to 256 descriptors whose timeouts are all an hour, so only closing on the
  client's EOF can keep its descriptor count flat; no socket is left in CLOSE-WAIT and /health
  still answers.
* Timeouts, against a server with short ones: idle HTTP/1.1 is closed, idle HTTP/2 gets GOAWAY
  (after no stream, a finished stream, a reset stream); a half-sent request head, a silent
  connection, a preface without SETTINGS and a stalled body are cut; a slow but steady body and a
  response held back by the client's flow control for longer than every timeout are not.
* Rapid reset: HEADERS + RST_STREAM in a loop on one h2c connection gets GOAWAY
  (ENHANCE_YOUR_CALM) and the connection is closed, while /health keeps answering.

`make test` runs 3000 cycles of each socket kind and 500 gRPC channels; `make stress`
(ENGRAM_STRESS=1) 20000 and 3000.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import httpx
import pytest

from bench.common import ROOT_KEY, ServerProcess

from .conftest import STRESS

CYCLES = 20_000 if STRESS else 3000
GRPC_CYCLES = 3000 if STRESS else 500
NOFILE = 256
FD_SLACK = 8

HEADER_S, BODY_S, H1_IDLE_S, H2_IDLE_S = 1.0, 1.0, 2.0, 2.5
SLACK_S = 1.5  # scheduling on a loaded 2-core machine
AUTH = f"Bearer {ROOT_KEY}"
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def _server(tmp: Path, extra: list[str], nofile: int | None = None) -> Iterator[ServerProcess]:
    import secrets

    proc = ServerProcess(data_dir=tmp / "data", encryption_key=secrets.token_hex(32), extra_args=extra, nofile=nofile)
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def churn_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    hour = "3600"
    extra = ["--header-timeout", hour, "--body-timeout", hour, "--http1-idle-timeout", hour]
    yield from _server(tmp_path_factory.mktemp("churn"), [*extra, "--http2-idle-timeout", hour], nofile=NOFILE)


@pytest.fixture(scope="module")
def limits_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    extra = [
        "--header-timeout",
        str(HEADER_S),
        "--body-timeout",
        str(BODY_S),
        "--http1-idle-timeout",
        str(H1_IDLE_S),
        "--http2-idle-timeout",
        str(H2_IDLE_S),
    ]
    yield from _server(tmp_path_factory.mktemp("limits"), extra)


# --- helpers ----------------------------------------------------------------------------------


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _close_wait(port: int) -> int:
    """Sockets on the server's port in CLOSE-WAIT (the peer closed, the server did not)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "08":
                count += 1
    return count


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def _recv(sock: socket.socket) -> bytes:
    data = sock.recv(65536)
    if not data:
        raise EOFError("the server closed the connection before the response ended")
    return data


def _get_health(sock: socket.socket) -> bytes:
    """GET /health on a keep-alive connection; the status line, once the whole response is read."""
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        data += _recv(sock)
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.lower().split(b"\r\n")
    lengths = [int(line.split(b":")[1]) for line in lines if line.startswith(b"content-length:")]
    while (len(body) < lengths[0]) if lengths else not body.endswith(b"\r\n0\r\n\r\n"):  # else chunked
        body += _recv(sock)
    return lines[0]


def _wait_eof(sock: socket.socket, timeout: float) -> float:
    """Seconds until the server closes the connection (anything it sends first is read and
    dropped); fails after `timeout`."""
    start = time.monotonic()
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    except TimeoutError:
        pytest.fail(f"the server kept the connection open for {timeout} s")
    return time.monotonic() - start


def _h2(port: int, settings: dict[int, int] | None = None) -> tuple[socket.socket, h2.connection.H2Connection]:
    sock = _connect(port)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
    conn.initiate_connection()
    if settings:
        conn.update_settings(settings)
    sock.sendall(conn.data_to_send())
    return sock, conn


def _h2_events(
    sock: socket.socket, conn: h2.connection.H2Connection, until: Callable[[h2.events.Event], bool], timeout: float
) -> tuple[list[h2.events.Event], bool, float]:
    """Read until an event satisfies `until` or the server closes: (events, closed, seconds)."""
    start = time.monotonic()
    events: list[h2.events.Event] = []
    while (left := timeout - (time.monotonic() - start)) > 0:
        sock.settimeout(left)
        try:
            data = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:
            data = b""
        if not data:
            return events, True, time.monotonic() - start
        try:
            new = conn.receive_data(data)
        except h2.exceptions.ProtocolError:
            continue  # frames after GOAWAY
        events += new
        if out := conn.data_to_send():
            with contextlib.suppress(OSError):
                sock.sendall(out)
        if any(until(e) for e in new):
            return events, False, time.monotonic() - start
    return events, False, time.monotonic() - start


def _request_headers(path: bytes, method: bytes = b"GET", extra: list[tuple[bytes, bytes]] | None = None) -> list:
    return [
        (b":method", method),
        (b":scheme", b"http"),
        (b":path", path),
        (b":authority", b"t"),
        (b"authorization", AUTH.encode()),
        *(extra or []),
    ]


GRPC_HEADERS = [(b"content-type", b"application/grpc"), (b"te", b"trailers")]


def _grpc_message(payload: bytes) -> bytes:
    return b"\x00" + len(payload).to_bytes(4, "big") + payload


# --- churn -------------------------------------------------------------------------------------


def _raw_cycle(port: int) -> None:
    _connect(port).close()


def _http1_cycle(port: int) -> None:
    with _connect(port) as s:
        assert _get_health(s).startswith(b"http/1.1 200")


def _h2c_cycle(port: int) -> None:
    with _connect(port) as s:
        s.sendall(PREFACE + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")  # preface and empty SETTINGS
        s.recv(65536)  # the server's SETTINGS


def _grpc_cycle(port: int) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        channel.unary_unary("/engram.v1.AdminService/Health")(b"", timeout=10)


@pytest.mark.parametrize(
    ("kind", "cycle", "cycles"),
    [
        ("raw TCP connect+close", _raw_cycle, CYCLES),
        ("HTTP/1.1 GET /health+close", _http1_cycle, CYCLES),
        ("h2c preface+close", _h2c_cycle, CYCLES),
        ("gRPC channel Health+close", _grpc_cycle, GRPC_CYCLES),
    ],
)
def test_connect_close_churn_leaves_no_descriptor(
    churn_server: ServerProcess, kind: str, cycle: Callable[[int], None], cycles: int
) -> None:
    assert churn_server.proc is not None
    pid, port = churn_server.proc.pid, churn_server.port
    for _ in range(20):  # warm-up: whatever the first connections of this kind allocate for good
        cycle(port)
    time.sleep(0.3)
    before = _fds(pid)
    start = time.monotonic()
    for i in range(cycles):
        cycle(port)
        if i % 50 == 49:
            # One full request: answered only once the server has accepted every connection
            # before it, so the accept queue (Hypercorn's backlog, 100) never overflows; an
            # overflow would only make the client wait a second for its SYN to be retried.
            _http1_cycle(port)
    took = time.monotonic() - start
    deadline = time.monotonic() + 5  # let the server handle the last closes
    while (_fds(pid) > before + FD_SLACK or _close_wait(port)) and time.monotonic() < deadline:
        time.sleep(0.05)
    after, close_wait = _fds(pid), _close_wait(port)
    print(
        json.dumps(
            {
                "kind": kind,
                "cycles": cycles,
                "seconds": round(took, 1),
                "fds_before": before,
                "fds_after": after,
                "close_wait": close_wait,
                "nofile": NOFILE,
            }
        )
    )
    assert after <= before + FD_SLACK, f"{kind}: {cycles} cycles took the server from {before} to {after} descriptors"
    assert close_wait == 0, f"{kind}: {close_wait} sockets left in CLOSE-WAIT"
    assert httpx.get(f"{churn_server.base_url}/health", timeout=5).status_code == 200


# --- idle timeouts ----------------------------------------------------------------------------


def test_idle_http1_connection_is_closed(limits_server: ServerProcess) -> None:
    with _connect(limits_server.port) as s:
        assert _get_health(s).startswith(b"http/1.1 200")
        idle = _wait_eof(s, H1_IDLE_S + 10)
    assert H1_IDLE_S - 0.2 <= idle <= H1_IDLE_S + SLACK_S, idle


def test_idle_http2_connection_gets_goaway(limits_server: ServerProcess) -> None:
    """Three idle connections: one that never opened a stream (prior-knowledge preface only), one
    after a finished request, one after a stream the client reset. Each gets GOAWAY(NO_ERROR)
    and is closed after the HTTP/2 idle timeout."""
    port = limits_server.port
    results: dict[str, tuple[list[h2.events.Event], bool, float]] = {}

    def watch(name: str, prepare: Callable[[socket.socket, h2.connection.H2Connection], None]) -> None:
        sock, conn = _h2(port)
        with sock:
            prepare(sock, conn)
            results[name] = _h2_events(sock, conn, lambda e: False, H2_IDLE_S + 10)

    def nothing(sock: socket.socket, conn: h2.connection.H2Connection) -> None:
        pass

    def finished(sock: socket.socket, conn: h2.connection.H2Connection) -> None:
        conn.send_headers(1, _request_headers(b"/health"), end_stream=True)
        sock.sendall(conn.data_to_send())
        _h2_events(sock, conn, lambda e: isinstance(e, h2.events.StreamEnded), 10)

    def reset(sock: socket.socket, conn: h2.connection.H2Connection) -> None:
        conn.send_headers(1, _request_headers(b"/engram.v1.AdminService/Health", b"POST", GRPC_HEADERS))
        sock.sendall(conn.data_to_send())
        time.sleep(0.2)
        conn.reset_stream(1, h2.errors.ErrorCodes.CANCEL)
        sock.sendall(conn.data_to_send())

    threads = [
        threading.Thread(target=watch, args=a) for a in (("none", nothing), ("finished", finished), ("reset", reset))
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for name, (events, closed, took) in results.items():
        goaways = [e for e in events if isinstance(e, h2.events.ConnectionTerminated)]
        assert closed, f"{name}: still open after {took:.1f} s"
        assert goaways and goaways[0].error_code == h2.errors.ErrorCodes.NO_ERROR, f"{name}: {events}"
        assert took <= H2_IDLE_S + SLACK_S, f"{name}: closed after {took:.1f} s"


# --- header and body timeouts -----------------------------------------------------------------


def test_half_sent_request_head_is_cut(limits_server: ServerProcess) -> None:
    with _connect(limits_server.port) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n")  # no blank line: the head never ends
        took = _wait_eof(s, HEADER_S + 10)
    assert took <= HEADER_S + SLACK_S, took


def test_half_sent_second_head_is_cut_from_its_first_byte(limits_server: ServerProcess) -> None:
    """A keep-alive connection: the idle timeout (longer) applies until a head begins, then the
    header timeout from that first byte."""
    with _connect(limits_server.port) as s:
        assert _get_health(s).startswith(b"http/1.1 200")
        time.sleep(H1_IDLE_S * 0.6)  # past header_timeout, within the idle timeout
        s.sendall(b"GET /health HTTP/1.1\r\n")
        took = _wait_eof(s, HEADER_S + 10)
    assert took <= HEADER_S + SLACK_S, took


def test_silent_connection_and_preface_without_settings_are_cut(limits_server: ServerProcess) -> None:
    with _connect(limits_server.port) as silent, _connect(limits_server.port) as preface_only:
        preface_only.sendall(PREFACE)
        start = time.monotonic()
        _wait_eof(silent, HEADER_S + 10)
        _wait_eof(preface_only, HEADER_S + 10)
        took = time.monotonic() - start
    assert took <= HEADER_S + SLACK_S, took


def test_stalled_http1_body_is_cut(limits_server: ServerProcess) -> None:
    with _connect(limits_server.port) as s:
        s.sendall(
            b"POST /v1/memories HTTP/1.1\r\nHost: t\r\nAuthorization: " + AUTH.encode() + b"\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n" + b'{"agent_id"'[:10]
        )
        took = _wait_eof(s, BODY_S + 10)
    assert took <= BODY_S + SLACK_S, took


def test_slow_but_steady_http1_body_is_not_cut(limits_server: ServerProcess) -> None:
    body = json.dumps({"agent_id": "slow-body", "content": "a body sent ten bytes at a time"}).encode()
    head = (
        b"POST /v1/memories HTTP/1.1\r\nHost: t\r\nAuthorization: " + AUTH.encode() + b"\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
    )
    with _connect(limits_server.port) as s:
        s.sendall(head)
        start = time.monotonic()
        for i in range(0, len(body), 10):
            time.sleep(BODY_S * 0.4)
            s.sendall(body[i : i + 10])
        took = time.monotonic() - start
        s.settimeout(30)
        assert s.recv(65536).startswith(b"HTTP/1.1 200"), "the slow body was cut"
    assert took > 2 * BODY_S  # the whole body took longer than the timeout


def test_stalled_http2_body_resets_the_stream_only(limits_server: ServerProcess) -> None:
    sock, conn = _h2(limits_server.port)
    with sock:
        conn.send_headers(1, _request_headers(b"/v1/memories", b"POST", [(b"content-length", b"100")]))
        conn.send_data(1, b"0123456789")
        sock.sendall(conn.data_to_send())
        events, closed, took = _h2_events(sock, conn, lambda e: isinstance(e, h2.events.StreamReset), BODY_S + 10)
        resets = [e for e in events if isinstance(e, h2.events.StreamReset)]
        assert resets and resets[0].stream_id == 1 and not closed, events
        assert took <= BODY_S + SLACK_S, took
        conn.ping(b"12345678")  # the connection itself still serves
        sock.sendall(conn.data_to_send())
        events, closed, _ = _h2_events(sock, conn, lambda e: isinstance(e, h2.events.PingAckReceived), 5)
        assert not closed and any(isinstance(e, h2.events.PingAckReceived) for e in events)


def test_response_held_back_by_the_client_is_not_cut(limits_server: ServerProcess) -> None:
    """A server-streaming export whose request is complete, with a 1 KiB stream window that the
    client leaves full for longer than every timeout before reading the rest: nothing cuts it."""
    agent, count = "slow-reader", 12
    with httpx.Client(base_url=limits_server.base_url, headers={"authorization": AUTH}, timeout=30) as http:
        for i in range(count):
            content = f"memory {i} of a slow reader, padded to make the stream outgrow its window " * 2
            assert http.post("/v1/memories", json={"agent_id": agent, "content": content}).status_code == 200
    sock, conn = _h2(limits_server.port, {h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1024})
    with sock:
        _h2_events(sock, conn, lambda e: isinstance(e, h2.events.SettingsAcknowledged), 5)
        path = b"/engram.v1.MemoryService/ExportMemories"
        conn.send_headers(1, _request_headers(path, b"POST", GRPC_HEADERS))
        conn.send_data(1, _grpc_message(b"\x0a" + bytes([len(agent)]) + agent.encode()), end_stream=True)
        sock.sendall(conn.data_to_send())
        events, closed, _ = _h2_events(sock, conn, lambda e: isinstance(e, h2.events.DataReceived), 5)
        assert not closed
        time.sleep(max(HEADER_S, BODY_S, H1_IDLE_S, H2_IDLE_S) + 1)  # window full: the server waits
        conn.increment_flow_control_window(1 << 20, 1)
        conn.increment_flow_control_window(1 << 20)
        sock.sendall(conn.data_to_send())
        more, closed, _ = _h2_events(sock, conn, lambda e: isinstance(e, h2.events.StreamEnded), 10)
        events += more
    assert not any(isinstance(e, (h2.events.StreamReset, h2.events.ConnectionTerminated)) for e in events), events
    trailers = [dict(e.headers) for e in events if isinstance(e, h2.events.TrailersReceived)]
    assert trailers and trailers[0][b"grpc-status"] == b"0", events
    body = b"".join(e.data for e in events if isinstance(e, h2.events.DataReceived))
    messages = 0
    while body:
        messages, body = messages + 1, body[5 + int.from_bytes(body[1:5], "big") :]
    assert messages == count and len(body) == 0


# --- rapid reset ------------------------------------------------------------------------------


PROBE = """
import json, sys, time, httpx
samples, end = [], time.time() + float(sys.argv[2])
with httpx.Client(base_url=sys.argv[1], timeout=30) as http:
    while time.time() < end:
        t = time.time()
        assert http.get("/health").status_code == 200
        samples.append((t, time.time() - t))
print(json.dumps(samples))
"""


def test_rapid_reset_flood_gets_enhance_your_calm(limits_server: ServerProcess) -> None:
    """HEADERS + RST_STREAM pairs, 50 to a write, as fast as the client makes them, while another
    process times /health on its own connection (another process: this one's GIL is busy)."""
    prober = subprocess.Popen([sys.executable, "-c", PROBE, limits_server.base_url, "3"], stdout=subprocess.PIPE)
    time.sleep(1.0)
    sock, conn = _h2(limits_server.port)
    _h2_events(sock, conn, lambda e: isinstance(e, h2.events.RemoteSettingsChanged), 5)
    headers = _request_headers(b"/engram.v1.AdminService/Health", b"POST", GRPC_HEADERS)
    sent, events, closed = 0, [], False
    start = time.time()
    with sock:
        while not closed and time.time() - start < 30:
            try:
                for _ in range(50):
                    sid = conn.get_next_available_stream_id()
                    conn.send_headers(sid, headers)
                    conn.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
                    sent += 1
                sock.sendall(conn.data_to_send())
            except (h2.exceptions.ProtocolError, OSError):
                break  # GOAWAY received (h2 refuses new streams) or the socket closed
            new, closed, _ = _h2_events(sock, conn, lambda e: True, 0.001)
            events += new
        flood_end = time.time()
        more, closed, _ = _h2_events(sock, conn, lambda e: False, 10)
        events += more
    samples = json.loads(prober.communicate(timeout=60)[0])
    before = [took for t, took in samples if t < start]
    during = [took for t, took in samples if start <= t <= flood_end + 0.5]  # and half a second after
    goaways = [e for e in events if isinstance(e, h2.events.ConnectionTerminated)]
    ms = lambda xs: {"n": len(xs), "p50": round(1000 * statistics.median(xs), 1), "max": round(1000 * max(xs), 1)}  # noqa: E731
    print(
        json.dumps(
            {
                "pairs_sent": sent,
                "flood_s": round(flood_end - start, 2),
                "health_ms_before": ms(before),
                "health_ms_during": ms(during),
            }
        )
    )
    assert goaways and goaways[0].error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM, events[-5:]
    assert closed, "the flooding connection stayed open"
    assert during and max(during) < 2.0 and statistics.median(during) < 0.05, during
