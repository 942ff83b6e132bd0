"""Fixtures: a real engram-server per test session (started per docs/design/contracts.md)."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

import engram

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Server:
    """A running engram-server."""

    port: int
    api_key: str
    data_dir: Path

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def grpc_url(self) -> str:
        return f"grpc://127.0.0.1:{self.port}"

    def url(self, transport: str) -> str:
        return self.grpc_url if transport == "grpc" else self.http_url


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _server_bin() -> str:
    return os.environ.get("ENGRAM_SERVER_BIN") or str(REPO / ".venv" / "bin" / "engram-server")


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    """Start engram-server on a free port with a fresh data dir; skip when it cannot start."""
    binary = _server_bin()
    if not Path(binary).exists() and not os.environ.get("ENGRAM_SERVER_BIN"):
        pytest.skip(f"no engram-server at {binary}")
    tmp = Path(tempfile.mkdtemp(prefix="engram-sdk-test-"))
    port = _free_port()
    api_key = "root-" + secrets.token_hex(16)
    env = {**os.environ, "ENGRAM_ENCRYPTION_KEY": secrets.token_hex(32)}
    for name in ("ENGRAM_URL", "ENGRAM_API_KEY", "ENGRAM_AGENT_ID", "ENGRAM_CONFIG"):
        env.pop(name, None)
    log = (tmp / "server.log").open("wb")
    proc = subprocess.Popen(
        [binary, "serve", "--host", "127.0.0.1", "--port", str(port), "--grpc-port", "0",
         "--data-dir", str(tmp / "data"), "--api-key", api_key],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    ready = False
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                ready = True
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    if not ready:
        proc.kill()
        proc.wait()
        log.close()
        text = (tmp / "server.log").read_text(errors="replace")[-3000:]
        pytest.fail(f"engram-server did not become healthy:\n{text}")
    try:
        yield Server(port, api_key, tmp / "data")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(params=["rest", "grpc"])
def transport(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


@pytest.fixture
def client(server: Server, transport: str) -> Iterator[engram.Client]:
    with engram.Client(server.url(transport), api_key=server.api_key) as c:
        yield c


@pytest.fixture
def agent_id() -> str:
    return "test-" + uuid.uuid4().hex[:12]


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    # One event loop for the whole run, as an application has. grpc.aio binds its completion
    # queue to the loop it first sees; with a new loop per test, a cancelled call's late event
    # could land on a closed loop (grpc/grpc#25364, "Event loop is closed").
    return "asyncio"


@pytest.fixture
def cli_env(server: Server, tmp_path: Path) -> dict[str, str]:
    """Environment for running the `engram` CLI against the test server."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENGRAM_")}
    env.update(ENGRAM_URL=server.http_url, ENGRAM_API_KEY=server.api_key,
               ENGRAM_CONFIG=str(tmp_path / "none.toml"), COLUMNS="200", NO_COLOR="1")
    return env


ENGRAM_CLI = [sys.executable, "-m", "engram.cli"]


class ServerProcess:
    """An engram-server of one test (module): its own data directory and port, stoppable and
    restartable on both (``restart`` keeps the data). ``heartbeat`` shortens the change stream's
    heartbeat interval (15 s in production) through the server's own module constant, so that
    heartbeat handling is tested in a second instead of waiting for the real interval."""

    def __init__(self, tmp: Path, *args: str, heartbeat: float | None = None) -> None:
        self.tmp = tmp
        self.args = args
        self.heartbeat = heartbeat
        self.port = _free_port()
        self.api_key = "root-" + secrets.token_hex(16)
        self.encryption_key = secrets.token_hex(32)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, transport: str) -> str:
        return f"grpc://127.0.0.1:{self.port}" if transport == "grpc" else self.http_url

    def start(self) -> None:
        argv = ["serve", "--host", "127.0.0.1", "--port", str(self.port), "--grpc-port", "0",
                "--data-dir", str(self.tmp / "data"), "--api-key", self.api_key, *self.args]
        if self.heartbeat is None:
            binary = _server_bin()
            if not Path(binary).exists():
                pytest.skip(f"no engram-server at {binary}")
            command = [binary, *argv]
        else:
            command = [sys.executable, "-c",
                       "import sys; import engram_server.service.memory_service as m; "
                       f"m.WATCH_HEARTBEAT_SECONDS = {self.heartbeat!r}; "
                       "from engram_server.cli import main; sys.exit(main(sys.argv[1:]))", *argv]
        env = {k: v for k, v in os.environ.items() if not k.startswith("ENGRAM_")}
        env["ENGRAM_ENCRYPTION_KEY"] = self.encryption_key
        with (self.tmp / "server.log").open("ab") as log:
            self.proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                if httpx.get(f"{self.http_url}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        text = (self.tmp / "server.log").read_text(errors="replace")[-3000:]
        pytest.fail(f"engram-server did not become healthy:\n{text}")

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture
def server_process(tmp_path: Path) -> Iterator[ServerProcess]:
    """A fresh engram-server of this test alone (start it with ``.start()``)."""
    proc = ServerProcess(tmp_path)
    try:
        yield proc
    finally:
        proc.stop()
