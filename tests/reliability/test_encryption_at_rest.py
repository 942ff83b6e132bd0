"""Encryption at rest, seen from outside the server: nothing a user stored is readable in any
file under the data directory, and a wrong key is refused without touching anything."""

from __future__ import annotations

import hashlib
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bench.common import ROOT_KEY, SERVER_BIN, ServerProcess, free_port

CANARIES = {
    "content": "CANARY-CONTENT-7f3a9c",
    "tag": "canary-tag-51be0d",
    "metadata_key": "canary_meta_key_c0ffee",
    "metadata_value": "CANARY-META-VALUE-9d2e44",
    "session": "canary-session-a11ce5",
    "updated": "CANARY-UPDATED-CONTENT-3be4f1",
    "agent_id": "canary-agent-4d9b2e",  # identifiers are out of the keys too
    "memory_id": "canary-memory-id-5e1f07",
    "relation": "canary_relation_8c3d",
}
AGENT = CANARIES["agent_id"]


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def _store_canaries(server: ServerProcess) -> None:
    headers = {"authorization": f"Bearer {ROOT_KEY}"}
    with httpx.Client(base_url=server.base_url, headers=headers, timeout=60) as http:
        ids = []
        for i in range(50):
            resp = http.post("/v1/memories", json={
                "agent_id": AGENT,
                **({"id": CANARIES["memory_id"]} if i == 1 else {}),
                "content": f"{CANARIES['content']} number {i}: the vault code is {secrets.token_hex(4)}",
                "tags": [CANARIES["tag"]],
                "metadata": {CANARIES["metadata_key"]: CANARIES["metadata_value"]},
                "session_id": CANARIES["session"],
            })
            assert resp.status_code == 200, resp.text
            ids.append(resp.json()["memory"]["id"])
        # updates (history), links and recalls (access counts) write other records too
        resp = http.patch(f"/v1/memories/{ids[0]}", json={"content": CANARIES["updated"]})
        assert resp.status_code == 200, resp.text
        resp = http.post(
            f"/v1/memories/{ids[0]}/links",
            json={"agent_id": AGENT, "target_id": ids[1], "relation": CANARIES["relation"]},
        )
        assert resp.status_code == 200, resp.text
        resp = http.post("/v1/memories/recall", json={"agent_id": AGENT, "query": CANARIES["content"]})
        assert resp.status_code == 200 and resp.json()["memories"], resp.text


def _assert_no_canary(paths: list[Path]) -> None:
    assert paths, "no files to scan"
    needles = [c.encode() for c in CANARIES.values()] + [c.encode("utf-16-le") for c in CANARIES.values()]
    for path in paths:
        data = path.read_bytes()
        for needle in needles:
            assert needle not in data, f"{needle!r} found in plaintext in {path}"


@pytest.fixture
def server(data_dir: Path, encryption_key: str) -> Iterator[ServerProcess]:
    """A server whose access log names agents by a keyed hash (--access-log-agent hash): then no
    identifier a client chose is in any file it writes, its log included."""
    proc = ServerProcess(data_dir=data_dir, encryption_key=encryption_key, extra_args=["--access-log-agent", "hash"])
    proc.start()
    yield proc
    proc.stop()


def test_no_plaintext_on_disk_after_clean_shutdown(server: ServerProcess, data_dir: Path) -> None:
    _store_canaries(server)
    server.stop()
    files = _files(data_dir)
    assert any(p.name.endswith(".log") or p.name.startswith("LOG") or p.suffix == ".sst" for p in files)
    _assert_no_canary(files + ([server.log_path] if server.log_path else []))


def test_no_plaintext_on_disk_after_kill(server: ServerProcess, data_dir: Path) -> None:
    """Killed before any flush: the data lives only in the write-ahead log, which must be sealed too."""
    _store_canaries(server)
    assert server.proc is not None
    server.proc.kill()
    server.proc.wait()
    server.proc = None
    _assert_no_canary(_files(data_dir) + ([server.log_path] if server.log_path else []))


def test_wrong_key_refuses_and_changes_nothing(server: ServerProcess, data_dir: Path, tmp_path: Path) -> None:
    _store_canaries(server)
    server.stop()
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in _files(data_dir)}
    wrong = secrets.token_hex(32)
    proc = subprocess.run(
        [str(SERVER_BIN), "serve", "--host", "127.0.0.1", "--port", str(free_port()), "--grpc-port", "0",
         "--data-dir", str(data_dir), "--api-key", ROOT_KEY],
        env={"ENGRAM_ENCRYPTION_KEY": wrong, "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode != 0, "the server started with a wrong key"
    message = (proc.stderr + proc.stdout).lower()
    assert "key" in message and ("wrong" in message or "does not match" in message or "decrypt" in message), message[-2000:]
    assert wrong not in proc.stderr + proc.stdout, "the key itself was printed"
    after = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in _files(data_dir)}
    assert after == before, "files under the data directory changed after a refused start"
