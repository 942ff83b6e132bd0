"""Connecting: the address forms, the default, and the error of a server that is not there.

None of these needs a running server: the failures are made against a port nothing listens on.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import engram
from engram import errors
from engram._config import DEFAULT_URL, grpc_connect_cause, parse_url

from .conftest import ENGRAM_CLI, _free_port

HINT = "is the Engram server running? Start it with `make serve` or `engram-server serve`"


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ENGRAM_URL", "ENGRAM_API_KEY"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("transport", ["rest", "grpc"])
def test_closed_port_names_the_address_and_the_cause(transport: str, no_env: None) -> None:
    port = _free_port()
    url = f"{'grpc' if transport == 'grpc' else 'http'}://127.0.0.1:{port}"
    with engram.Client(f"{url}/", retry=None, timeout=5) as client, pytest.raises(errors.Unavailable) as info:
        client.health()
    err = info.value
    print(f"{transport}: {err}")
    assert err.code == "UNAVAILABLE" and not err.from_server
    assert err.message == f"cannot connect to {url} (connection refused): {HINT}"
    assert engram.Retry().delay(err, 0) is not None  # still retried


@pytest.mark.parametrize("transport", ["rest", "grpc"])
def test_closed_port_given_as_host_port_is_named_normalised(transport: str, no_env: None) -> None:
    port = _free_port()
    client = engram.Client(f"127.0.0.1:{port}", transport=transport, retry=None, timeout=5)  # type: ignore[arg-type]
    with client, pytest.raises(errors.Unavailable) as info:
        client.health()
    scheme = "grpc" if transport == "grpc" else "http"
    assert f"cannot connect to {scheme}://127.0.0.1:{port} (connection refused)" in info.value.message


def test_closed_ipv6_port(no_env: None) -> None:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
            port = s.getsockname()[1]
    except OSError:
        pytest.skip("no IPv6 loopback")
    for url in (f"http://[::1]:{port}", f"grpc://[::1]:{port}"):
        with engram.Client(url, retry=None, timeout=5) as client, pytest.raises(errors.Unavailable) as info:
            client.health()
        assert info.value.message.startswith(f"cannot connect to {url} (connection refused): ")


def test_unresolvable_host_is_unavailable(no_env: None) -> None:
    client = engram.Client("http://engram-host.invalid:3300", retry=None, timeout=5)
    with client, pytest.raises(errors.Unavailable) as info:
        client.health()
    assert info.value.message.startswith("cannot connect to http://engram-host.invalid:3300 (DNS lookup failed")


def test_connect_timeout_is_unavailable_and_retried(no_env: None) -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        raise httpx.ConnectTimeout("timed out", request=request)

    fast = engram.Retry(attempts=2, backoff=0.001)
    client = engram.Client("10.0.0.1:3300", http_transport=httpx.MockTransport(handler), retry=fast)
    with pytest.raises(errors.Unavailable) as info:
        client.health()
    assert info.value.message == f"cannot connect to http://10.0.0.1:3300 (connection timed out): {HINT}"
    assert len(calls) == 2


@pytest.fixture
def blocked_port() -> Iterator[int]:
    """A port whose listener never accepts and whose queue is full: connections hang."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fill = []
    for _ in range(3):
        c = socket.socket()
        c.setblocking(False)
        c.connect_ex(listener.getsockname())
        fill.append(c)
    yield listener.getsockname()[1]
    for c in fill:
        c.close()
    listener.close()


@pytest.mark.parametrize("transport", ["rest", "grpc"])
def test_connect_timeout_against_a_hanging_listener(transport: str, blocked_port: int, no_env: None) -> None:
    scheme = "grpc" if transport == "grpc" else "http"
    url = f"{scheme}://127.0.0.1:{blocked_port}"
    with engram.Client(url, retry=None, timeout=engram.Timeout(1, connect=0.5)) as client, \
            pytest.raises(errors.Unavailable) as info:
        client.health()
    assert info.value.message == f"cannot connect to {url} (connection timed out): {HINT}"


@pytest.mark.anyio
async def test_async_grpc_connect_timeout(blocked_port: int, no_env: None) -> None:
    url = f"grpc://127.0.0.1:{blocked_port}"
    async with engram.AsyncClient(url, retry=None, timeout=1) as client:
        with pytest.raises(errors.Unavailable) as info:
            await client.health()
    assert info.value.message == f"cannot connect to {url} (connection timed out): {HINT}"


def test_retries_stop_at_the_timeout() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        raise httpx.ConnectError("refused", request=request)

    retry = engram.Retry(attempts=100, backoff=0.2, max_backoff=0.2, jitter=0)
    client = engram.Client("h:1", http_transport=httpx.MockTransport(handler), retry=retry, timeout=0.5)
    with pytest.raises(errors.Unavailable):
        client.health()
    assert 2 <= len(calls) <= 3


@pytest.mark.parametrize(
    "address",
    ["h:3300", "h:3300/", "http://h:3300", "http://h:3300/", "HTTP://h:3300", " http://h:3300 "],
)
def test_address_forms_give_the_same_endpoint(address: str) -> None:
    endpoint = parse_url(address)
    assert (endpoint.transport, endpoint.host, endpoint.port, endpoint.tls) == ("rest", "h", 3300, False)
    assert endpoint.url == "http://h:3300"


def test_other_address_forms() -> None:
    assert parse_url("https://h:3300/").url == "https://h:3300"
    assert parse_url("https://h").port == 443
    assert parse_url("h").port == 3300
    assert parse_url("grpc://h:3300/").url == parse_url("h:3300", "grpc").url == "grpc://h:3300"
    assert parse_url("grpcs://h:3300").url == "grpcs://h:3300"
    for v6 in ("[::1]:3300", "http://[::1]:3300", "http://[::1]:3300/"):
        endpoint = parse_url(v6)
        assert (endpoint.host, endpoint.port, endpoint.url, endpoint.target) == (
            "::1", 3300, "http://[::1]:3300", "[::1]:3300")
    for bad in ("ftp://h:1", "http://h:port", "http://"):
        with pytest.raises(ValueError):
            parse_url(bad)


def test_default_address_is_local_without_environment(no_env: None) -> None:
    assert DEFAULT_URL == "http://127.0.0.1:3300"
    for given in (None, ""):
        endpoint = parse_url(given)
        assert (endpoint.transport, endpoint.host, endpoint.port) == ("rest", "127.0.0.1", 3300)
    with engram.Client() as client:
        assert client.url == "http://127.0.0.1:3300"


def test_environment_overrides_default_and_argument_overrides_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ENGRAM_URL", "grpc://env-host:9")
    assert parse_url(None).url == "grpc://env-host:9"
    assert parse_url("h:1").url == "http://h:1"


def test_grpc_connect_causes() -> None:
    refused = ("failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:1: "
               "Failed to connect to remote host: Connection refused")
    assert grpc_connect_cause(refused) == "connection refused"
    dns = ("errors resolving h.invalid:3300: [field:hostname lookup error:address lookup failed for "
           "h.invalid:3300: Domain name not found]")
    assert grpc_connect_cause(dns) == "DNS lookup failed: Domain name not found"
    timeout = ("failed to connect to all addresses; last error: UNKNOWN: ipv4:10.0.0.1:3300: "
               "Timeout occurred: FD Shutdown")
    assert grpc_connect_cause(timeout) == "connection timed out"
    assert grpc_connect_cause("Socket closed") is None
    assert grpc_connect_cause("the server is draining") is None


def test_cli_names_the_address_of_a_closed_port(tmp_path: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENGRAM_")}
    env.update(ENGRAM_CONFIG=str(tmp_path / "none.toml"), COLUMNS="300", NO_COLOR="1")
    r = subprocess.run([*ENGRAM_CLI, "--url", f"127.0.0.1:{port}", "--timeout", "5", "health"], env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 5, r.stderr
    assert f"UNAVAILABLE: cannot connect to http://127.0.0.1:{port} (connection refused)" in r.stderr


# `engram mcp` without the mcp extra: the `mcp` package made unimportable in the child process.
_BLOCK_MCP = "import sys; sys.modules['mcp'] = None; from engram.cli import main; sys.argv[0] = 'engram'; main()"


def test_mcp_without_the_extra_prints_the_install_command() -> None:
    r = subprocess.run([sys.executable, "-c", _BLOCK_MCP, "mcp"], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "COLUMNS": "300", "NO_COLOR": "1"})
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    assert "engram mcp needs the optional dependency 'mcp'" in r.stderr
    assert "pip install 'engram-memory-client[mcp]'" in r.stderr
    assert r.stdout == ""


# Any command that meets a missing optional dependency: a command added here that imports one late.
_LATE_IMPORT = """import sys
import engram.cli as cli
@cli.app.command("late")
def late() -> None:
    raise ModuleNotFoundError("No module named 'google.rpc'", name="google.rpc")
sys.argv = ["engram", "late"]
cli.main()
"""


def test_any_command_missing_an_optional_dependency_prints_the_install_command() -> None:
    r = subprocess.run([sys.executable, "-c", _LATE_IMPORT], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "COLUMNS": "300", "NO_COLOR": "1"})
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert "pip install 'engram-memory-client[grpc-details]'" in r.stderr
