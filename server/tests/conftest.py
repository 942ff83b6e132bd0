"""Shared fixtures: an in-process app over a real engine (temporary data directory, the small
deterministic test embedder), and a real server subprocess."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from .support import FakeEmbedder, open_engine

REPO = Path(__file__).resolve().parents[2]
ROOT_KEY = "test-root-key-0123456789abcdef"
ENC_KEY = "00" * 32


@pytest.fixture
def anyio_backend():
    return "asyncio"


def make_app(engine, **cfg):
    from engram_server.app import create_app
    from engram_server.config import Config

    cfg.setdefault("api_key", ROOT_KEY)
    cfg.setdefault("access_log", False)
    return create_app(Config(**cfg), engine=engine)


@pytest.fixture
def embedder():
    return FakeEmbedder()


@pytest.fixture
def engine(tmp_path, embedder):
    e = open_engine(tmp_path / "data", embedder=embedder)
    yield e
    e.close()


@pytest.fixture
def app(engine):
    return make_app(engine, cors_origins=["https://app.example"])


@pytest.fixture
async def rest(app):
    import httpx

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app),
        base_url="http://engram.test",
        headers={"authorization": f"Bearer {ROOT_KEY}"},
    ) as client:
        yield client


async def asgi_call(
    app,
    path: str,
    body: bytes = b"",
    headers: dict | None = None,
    method: str = "POST",
    http_version: str = "2",
    chunks: list[bytes] | None = None,
    disconnect_after: float | None = None,
):
    """Call the ASGI app directly (HTTP/2 scope, trailers seen). Returns (status, headers, body, trailers)."""
    import asyncio

    hdrs = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": http_version,
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": hdrs,
        "client": ("127.0.0.1", 1234),
        "server": ("127.0.0.1", 3300),
        "extensions": {"http.response.trailers": {}},
    }
    parts = list(chunks if chunks is not None else [body])
    queue = [{"type": "http.request", "body": p, "more_body": i < len(parts) - 1} for i, p in enumerate(parts)]
    out = {"status": None, "headers": {}, "body": b"", "trailers": {}}

    async def receive():
        if queue:
            return queue.pop(0)
        if disconnect_after is not None:
            await asyncio.sleep(disconnect_after)
            return {"type": "http.disconnect"}
        await asyncio.sleep(3600)

    async def send(msg):
        if msg["type"] == "http.response.start":
            out["status"] = msg["status"]
            out["headers"] = {k.decode(): v.decode() for k, v in msg.get("headers", [])}
        elif msg["type"] == "http.response.body":
            out["body"] += msg.get("body", b"")
        elif msg["type"] == "http.response.trailers":
            out["trailers"].update({k.decode(): v.decode() for k, v in msg["headers"]})

    await app(scope, receive, send)
    return out


def grpc_frame(data: bytes, flag: int = 0) -> bytes:
    import struct

    return struct.pack(">BI", flag, len(data)) + data


def grpc_messages(body: bytes) -> list[tuple[int, bytes]]:
    import struct

    out, i = [], 0
    while i < len(body):
        flag, n = struct.unpack_from(">BI", body, i)
        out.append((flag, body[i + 5 : i + 5 + n]))
        i += 5 + n
    return out


# --- the real server ----------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    def __init__(self, tmp: Path, extra_args: list[str] | None = None, env: dict | None = None) -> None:
        self.port = free_port()
        self.data_dir = tmp / "data"
        self.log_path = tmp / "server.log"
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.target = f"127.0.0.1:{self.port}"
        bin_path = os.environ.get("ENGRAM_SERVER_BIN") or str(REPO / ".venv/bin/engram-server")
        args = [
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--grpc-port",
            "0",
            "--data-dir",
            str(self.data_dir),
            "--api-key",
            ROOT_KEY,
            "--cors-origins",
            "*",
            *(extra_args or []),
        ]
        cmd = [bin_path, *args]
        full_env = {**os.environ, "ENGRAM_ENCRYPTION_KEY": ENC_KEY, **(env or {})}
        self.log = open(self.log_path, "wb")  # noqa: SIM115 - held open for the server's lifetime, closed in stop()
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=full_env)

    def wait_healthy(self, timeout: float = 60) -> float:
        import httpx

        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited {self.proc.returncode}:\n{self.log_path.read_text()[-3000:]}")
            try:
                r = httpx.get(self.base_url + "/health", timeout=1)
                if r.status_code == 200:
                    return time.perf_counter() - self.started
            except httpx.HTTPError:
                pass
            time.sleep(0.02)
        raise RuntimeError("server did not become healthy:\n" + self.log_path.read_text()[-3000:])

    def stop(self, timeout: float = 10) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    s = ServerProcess(tmp_path_factory.mktemp("engram"))
    s.healthy_after = s.wait_healthy()
    yield s
    s.stop()


@pytest.fixture(scope="session")
def channel(server):
    import grpc

    ch = grpc.insecure_channel(server.target)
    yield ch
    ch.close()


def authed(channel, key: str = ROOT_KEY):
    """A channel that sends `authorization: Bearer <key>` on every call."""
    import grpc

    class Auth(
        grpc.UnaryUnaryClientInterceptor,
        grpc.UnaryStreamClientInterceptor,
        grpc.StreamUnaryClientInterceptor,
        grpc.StreamStreamClientInterceptor,
    ):
        def _add(self, details):
            md = [*list(details.metadata or []), ("authorization", f"Bearer {key}")]
            return details._replace(metadata=md) if hasattr(details, "_replace") else _Details(details, md)

        def intercept_unary_unary(self, cont, details, request):
            return cont(self._add(details), request)

        def intercept_unary_stream(self, cont, details, request):
            return cont(self._add(details), request)

        def intercept_stream_unary(self, cont, details, it):
            return cont(self._add(details), it)

        def intercept_stream_stream(self, cont, details, it):
            return cont(self._add(details), it)

    return grpc.intercept_channel(channel, Auth())


class _Details:
    def __init__(self, d, metadata):
        self.method = d.method
        self.timeout = d.timeout
        self.metadata = metadata
        self.credentials = d.credentials
        self.wait_for_ready = getattr(d, "wait_for_ready", None)
        self.compression = getattr(d, "compression", None)


class GrpcStub:
    """A plain grpcio client for one service of the API, built from the descriptor set: one
    method per RPC in snake_case (`stub.store_memory(request)`), of the RPC's kind (unary,
    server-, client- or bidi-streaming), carrying the generated betterproto2 messages. The
    generated package has no stubs of its own (tools/generate.py), so the tests make their
    calls here with grpcio directly, as any gRPC client of the server would."""

    def __init__(self, channel, service: str) -> None:
        from engram._gen.engram import v1 as pb
        from engram_server.descriptors import api

        self._channel = channel
        methods = [m for m in api().methods.values() if m.service == service]
        if not methods:
            raise ValueError(f"no service {service}")
        for m in methods:
            request = getattr(pb, m.input_type.rsplit(".", 1)[1])
            response = getattr(pb, m.output_type.rsplit(".", 1)[1])
            make = {
                "unary": channel.unary_unary,
                "server_stream": channel.unary_stream,
                "client_stream": channel.stream_unary,
                "bidi": channel.stream_stream,
            }[m.kind]
            call = make(m.path, request_serializer=bytes, response_deserializer=response.parse)
            setattr(self, m.snake_name, _stub_method(call, request, m.kind))


def _stub_method(call, request_cls, kind: str):
    def method(message=None, *, timeout=None, metadata=None):
        if message is None and kind in ("unary", "server_stream"):
            message = request_cls()
        return call(message, timeout=timeout, metadata=metadata)

    return method
