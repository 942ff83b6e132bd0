"""`engram mcp --http` driven by the `mcp` package's client over Streamable HTTP, against a real
Engram server: a key is required and forwarded (its scope applies), a missing or wrong key is
refused with 401 before any tool runs, Host and Origin are checked, unsafe binds are refused."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

import engram
from engram.mcp_server import TOOLS_LIST_BUDGET

from .conftest import ENGRAM_CLI, Server, _free_port

pytest.importorskip("mcp")

DEFAULT_TOOLS = {"store_memory", "recall", "get_memory", "update_memory", "forget_memories", "list_memories",
                 "consolidate_memories"}
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "test", "version": "1"}}}
MCP_HEADERS = {"content-type": "application/json", "accept": "application/json, text/event-stream"}


@dataclass(frozen=True)
class McpHttp:
    """A running `engram mcp --http`."""

    url: str
    proc: subprocess.Popen[bytes]
    log: Path


def _env(server_url: str, tmp: Path, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENGRAM_")}
    env.update(ENGRAM_URL=server_url, ENGRAM_CONFIG=str(tmp / "none.toml"), **extra)
    return env


def start_mcp_http(server_url: str, tmp: Path, *args: str, env: dict[str, str] | None = None,
                   scheme: str = "http", verify: Any = True) -> McpHttp:
    """Start `engram mcp --http` on a free port; ready when its endpoint answers 401 to no key."""
    port = _free_port()
    log = tmp / f"mcp-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([*ENGRAM_CLI, "mcp", "--http", "--port", str(port), *args],
                                env=_env(server_url, tmp, env or {}), stdout=out, stderr=subprocess.STDOUT)
    url = f"{scheme}://127.0.0.1:{port}/mcp"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(url, verify=verify, timeout=1).status_code == 401:
                return McpHttp(url, proc, log)
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    stop(proc)
    pytest.fail(f"engram mcp --http did not start:\n{log.read_text(errors='replace')[-3000:]}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def mcp_http(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[McpHttp]:
    """`engram mcp --http` without an agent id: tools take `agent_id`, the key's pin applies."""
    running = start_mcp_http(server.http_url, tmp_path_factory.mktemp("mcp-http"))
    try:
        yield running
    finally:
        stop(running.proc)


@asynccontextmanager
async def mcp_session(url: str, key: str | None, **client_args: Any) -> AsyncIterator[Any]:
    """An initialised `mcp` ClientSession over Streamable HTTP, sending `key` as a bearer token."""
    import httpx2
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    headers = {"authorization": f"Bearer {key}"} if key else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=300), **client_args) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


def _json(result: Any) -> Any:
    assert not result.is_error, result.content
    return json.loads(result.content[0].text)


@pytest.mark.server
@pytest.mark.anyio
async def test_http_session_with_key_lists_stores_and_recalls(
    server: Server, mcp_http: McpHttp, agent_id: str
) -> None:
    async with mcp_session(mcp_http.url, server.api_key) as session:
        listed = await session.list_tools()
        assert {t.name for t in listed.tools} == DEFAULT_TOOLS
        size = len(listed.model_dump_json(by_alias=True, exclude_none=True).encode())
        assert size <= TOOLS_LIST_BUDGET, f"tools/list is {size} bytes"

        stored = _json(await session.call_tool("store_memory", {
            "agent_id": agent_id, "content": "The remote user drinks oolong tea", "tags": ["mcp-http"]}))
        memory = stored["memory"]
        assert memory["agent_id"] == agent_id

        found = _json(await session.call_tool("recall", {
            "agent_id": agent_id, "query": "which tea does the user drink?", "top_k": 3}))
        assert found["memories"][0]["id"] == memory["id"]

        updated = _json(await session.call_tool("update_memory", {
            "agent_id": agent_id, "memory": {"id": memory["id"], "tags": []}}))
        assert updated["memory"]["version"] == 2 and not updated["memory"].get("tags")

        missing = await session.call_tool("get_memory", {"agent_id": agent_id, "id": "nope"})
        assert missing.is_error and "NOT_FOUND" in missing.content[0].text


@pytest.mark.server
@pytest.mark.anyio
@pytest.mark.parametrize("key", [None, "wrong-key", "engram_000000000000_" + "x" * 43],
                         ids=["no-key", "garbage-key", "unknown-key"])
async def test_http_without_a_valid_key_is_refused(mcp_http: McpHttp, key: str | None) -> None:
    headers = {**MCP_HEADERS, **({"authorization": f"Bearer {key}"} if key else {})}
    response = httpx.post(mcp_http.url, json=INIT, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer ")
    assert "mcp-session-id" not in response.headers

    # The mcp client cannot even initialise (no session, no tool list, no tool call): every
    # request it made was answered 401.
    statuses: list[int] = []

    async def record(response: Any) -> None:
        statuses.append(response.status_code)

    with pytest.raises(Exception):  # noqa: B017 - an ExceptionGroup around the client's MCPError
        async with mcp_session(mcp_http.url, key, event_hooks={"response": [record]}):
            pass
    assert statuses and set(statuses) == {401}


@pytest.mark.server
@pytest.mark.anyio
async def test_http_forwards_the_clients_key_so_its_scope_applies(
    server: Server, mcp_http: McpHttp, agent_id: str
) -> None:
    with engram.Client(server.http_url, api_key=server.api_key) as admin:
        created = admin.create_api_key("mcp-http-pinned", role="read_write", agent_ids=[agent_id])
    async with mcp_session(mcp_http.url, created.key) as session:
        own = await session.call_tool("store_memory", {"agent_id": agent_id, "content": "pinned key memory"})
        assert not own.is_error, own.content
        other = await session.call_tool("store_memory", {"agent_id": "other-" + agent_id, "content": "x"})
        assert other.is_error and "PERMISSION_DENIED" in other.content[0].text
        stats = await session.call_tool("list_memories", {"agent_id": "other-" + agent_id})
        assert stats.is_error and "PERMISSION_DENIED" in stats.content[0].text


@pytest.mark.server
@pytest.mark.anyio
async def test_http_revoked_key_is_refused_at_once(server: Server, mcp_http: McpHttp, agent_id: str) -> None:
    with engram.Client(server.http_url, api_key=server.api_key) as admin:
        created = admin.create_api_key("mcp-http-revoked", role="read_write")
        async with mcp_session(mcp_http.url, created.key) as session:
            assert not (await session.call_tool("list_memories", {"agent_id": agent_id})).is_error
            admin.revoke_api_key(created.api_key.id)
            refused = await session.call_tool("list_memories", {"agent_id": agent_id})
            assert refused.is_error and "UNAUTHENTICATED" in refused.content[0].text
            # The key's check is forgotten: the next request is refused before the MCP server.
            response = httpx.post(mcp_http.url, json=INIT,
                                  headers={**MCP_HEADERS, "authorization": f"Bearer {created.key}"})
            assert response.status_code == 401


@pytest.mark.server
def test_http_session_is_bound_to_the_key_that_opened_it(server: Server, mcp_http: McpHttp) -> None:
    with engram.Client(server.http_url, api_key=server.api_key) as admin:
        other_key = admin.create_api_key("mcp-http-other", role="read_only").key
    opened = httpx.post(mcp_http.url, json=INIT, headers={**MCP_HEADERS, "authorization": f"Bearer {server.api_key}"})
    assert opened.status_code == 200
    session_id = opened.headers["mcp-session-id"]
    listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
    in_session = {**MCP_HEADERS, "mcp-session-id": session_id, "mcp-protocol-version": "2025-06-18"}
    stolen = httpx.post(mcp_http.url, json=listing, headers={**in_session, "authorization": f"Bearer {other_key}"})
    assert stolen.status_code == 404
    owned = httpx.post(mcp_http.url, json=listing, headers={**in_session, "authorization": f"Bearer {server.api_key}"})
    assert owned.status_code == 200 and "store_memory" in owned.text


@pytest.mark.server
@pytest.mark.parametrize(("header", "value", "status"), [
    ("host", "evil.example.com", 421),         # DNS rebinding: a page's own name pointed at 127.0.0.1
    ("origin", "http://evil.example.com", 403),  # a web page of another origin
])
def test_http_checks_host_and_origin(server: Server, mcp_http: McpHttp, header: str, value: str,
                                     status: int) -> None:
    headers = {**MCP_HEADERS, "authorization": f"Bearer {server.api_key}", header: value}
    assert httpx.post(mcp_http.url, json=INIT, headers=headers).status_code == status
    fine = {**MCP_HEADERS, "authorization": f"Bearer {server.api_key}", "origin": "http://localhost:5173"}
    assert httpx.post(mcp_http.url, json=INIT, headers=fine).status_code == 200


@pytest.mark.server
@pytest.mark.anyio
async def test_http_with_an_agent_id_injects_it(server: Server, agent_id: str, tmp_path: Path) -> None:
    running = start_mcp_http(server.http_url, tmp_path, env={"ENGRAM_AGENT_ID": agent_id})
    try:
        async with mcp_session(running.url, server.api_key) as session:
            listed = await session.list_tools()
            assert all("agent_id" not in t.input_schema["properties"] for t in listed.tools)
            stored = _json(await session.call_tool("store_memory", {"content": "scoped by configuration"}))
            assert stored["memory"]["agent_id"] == agent_id
    finally:
        stop(running.proc)


@pytest.mark.anyio
async def test_http_answers_503_when_the_engram_server_is_down(tmp_path: Path) -> None:
    running = start_mcp_http(f"http://127.0.0.1:{_free_port()}", tmp_path)
    try:
        response = httpx.post(running.url, json=INIT, headers={**MCP_HEADERS, "authorization": "Bearer some-key"})
        assert response.status_code == 503
        assert response.json()["error"] == "temporarily_unavailable"
    finally:
        stop(running.proc)


@pytest.mark.server
@pytest.mark.anyio
async def test_http_serves_tls(server: Server, tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    trust = ssl.create_default_context(cafile=str(cert))
    running = start_mcp_http(server.http_url, tmp_path, "--tls-cert", str(cert), "--tls-key", str(key),
                             scheme="https", verify=trust)
    try:
        async with mcp_session(running.url, server.api_key, verify=trust) as session:
            assert {t.name for t in (await session.list_tools()).tools} == DEFAULT_TOOLS
    finally:
        stop(running.proc)


@pytest.mark.parametrize(("args", "message"), [
    (["--host", "0.0.0.0"], "over plain HTTP"),
    (["--host", "192.0.2.10"], "over plain HTTP"),
    (["--host", "0.0.0.0", "--allow-plain-http"], "--allowed-host"),
    (["--tls-cert", "cert.pem"], "go together"),
    (["--path", "mcp"], "must start with '/'"),
])
def test_http_refuses_unsafe_binds(args: list[str], message: str, tmp_path: Path) -> None:
    done = subprocess.run([*ENGRAM_CLI, "mcp", "--http", *args], env=_env("http://127.0.0.1:1", tmp_path, {
        "COLUMNS": "400"}), capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert message in " ".join(done.stderr.split())


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost (cryptography is in the dev lock)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path




def test_docs_use_only_real_options() -> None:
    """Every option that docs/mcp.md gives `engram mcp` exists (the docs' commands are real)."""
    import re

    import typer

    from engram.cli import app

    docs = (Path(__file__).resolve().parents[2] / "docs" / "mcp.md").read_text()
    command = typer.main.get_command(app)
    mcp_command = command.commands["mcp"]  # type: ignore[attr-defined]
    known = {opt for param in mcp_command.params for opt in param.opts}
    known |= {opt for param in command.params for opt in param.opts}  # the root's (--agent, --url)
    known |= {"--help"}
    used = set()
    for code in re.findall(r"```.*?```|`[^`]+`", docs, flags=re.DOTALL):  # code blocks and spans
        for command in code.split("engram mcp")[1:]:
            command = command.split("\n#")[0].split("\n\n")[0]  # up to a comment or a blank line
            used |= set(re.findall(r"(?<![\w-])--[a-z][a-z-]+", command))
    for row in re.findall(r"^\| `--.*$", docs, flags=re.MULTILINE):  # the options table
        used |= set(re.findall(r"`(--[a-z][a-z-]+)`", row.split("|")[1]))
    assert used, "no engram mcp command found in docs/mcp.md"
    assert used <= known, f"options in docs/mcp.md that engram mcp does not have: {used - known}"
