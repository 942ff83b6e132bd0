"""A broken disk, file by file: a flipped byte in a table file, the write-ahead log, the
MANIFEST or CURRENT gives a clear error, never a silent loss; `backup` of a corrupted directory
fails and writes nothing; `verify` names what is wrong; a healthy backup restores record by record.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx
import pytest

from bench.common import ROOT_KEY, SERVER_BIN, ServerProcess

HEADERS = {"authorization": f"Bearer {ROOT_KEY}"}
AGENTS = ("ledger", "diary")


def _cli(*args: str, key: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "ENGRAM_ENCRYPTION_KEY": key}
    return subprocess.run([str(SERVER_BIN), *args], env=env, capture_output=True, text=True, timeout=300)


def _fill(server: ServerProcess, n: int = 200) -> dict[str, dict[str, str]]:
    stored: dict[str, dict[str, str]] = {a: {} for a in AGENTS}
    with httpx.Client(base_url=server.base_url, headers=HEADERS, timeout=60) as http:
        for agent in AGENTS:
            for start in range(0, n, 50):
                body = {"requests": [
                    {"agent_id": agent, "content": f"{agent} entry {i}: " + "words to fill a block " * 8}
                    for i in range(start, start + 50)
                ]}
                resp = http.post("/v1/memories:batchStore", json=body)
                assert resp.status_code == 200, resp.text
                for m in resp.json()["memories"]:
                    stored[agent][m["id"]] = m["content"]
    return stored


def _flush(data_dir: Path, key: str) -> None:
    """Everything into table files (a stopped server's last writes may be in the WAL only)."""
    from engram_server.engine.crypto import Cipher
    from engram_server.engine.storage import Storage

    storage = Storage.open(data_dir / "db", Cipher(bytes.fromhex(key)))
    try:
        storage.flush_and_compact()
    finally:
        storage.close()


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x5A
    path.write_bytes(bytes(data))


def _largest(data_dir: Path, pattern: str) -> Path:
    return max((data_dir / "db").glob(pattern), key=lambda p: p.stat().st_size)


def _start_fails(data_dir: Path, key: str) -> str:
    proc = ServerProcess(data_dir=data_dir, encryption_key=key)
    with pytest.raises(RuntimeError, match="exited early"):
        proc.start(timeout=60)
    assert proc.log_path is not None
    return proc.log_path.read_text()


def test_a_corrupted_table_file_is_reported_and_the_rest_served(
    server: ServerProcess, data_dir: Path, encryption_key: str, tmp_path: Path
) -> None:
    stored = _fill(server)
    server.stop()
    _flush(data_dir, encryption_key)
    sst = _largest(data_dir, "*.sst")
    _flip(sst, sst.stat().st_size // 3)  # inside a data block, not the footer

    check = _cli("verify", "--data-dir", str(data_dir), key=encryption_key, home=tmp_path)
    assert check.returncode == 1, check.stdout + check.stderr
    assert "corrupt" in check.stdout.lower() and "problem" in check.stdout

    target = tmp_path / "backup"
    backup = _cli("backup", "--data-dir", str(data_dir), "--target", str(target), key=encryption_key, home=tmp_path)
    assert backup.returncode != 0 and "corrupt" in backup.stderr.lower(), backup.stdout + backup.stderr
    assert not target.exists(), "a failed backup left files behind"

    server.start()
    codes: dict[int, int] = {}
    with httpx.Client(base_url=server.base_url, headers=HEADERS, timeout=60) as http:
        for agent, memories in stored.items():
            for mid, content in memories.items():
                resp = http.get(f"/v1/memories/{mid}", params={"agent_id": agent})
                codes[resp.status_code] = codes.get(resp.status_code, 0) + 1
                if resp.status_code == 200:
                    assert resp.json()["memory"]["content"] == content
                else:
                    assert resp.status_code == 500 and resp.json()["code"] == "DATA_LOSS", resp.text
                    assert content not in resp.text
            resp = http.post("/v1/memories/recall", json={"agent_id": agent, "query": f"{agent} entry", "top_k": 10})
            assert resp.status_code == 200, resp.text
            resp = http.get("/v1/memories", params={"agent_id": agent, "page_size": 1000})
            assert resp.status_code == 200, resp.text
    assert codes.get(200, 0) > 0, codes  # the rest is served


def test_a_corrupted_wal_manifest_or_current_refuses_to_start_clearly(
    server: ServerProcess, data_dir: Path, encryption_key: str, tmp_path: Path
) -> None:
    _fill(server, n=100)
    server.stop()
    db = data_dir / "db"
    saved = {p.name: p.read_bytes() for p in db.iterdir() if p.is_file()}

    def restore() -> None:
        for name, data in saved.items():
            (db / name).write_bytes(data)

    for pattern in ("MANIFEST-*", "CURRENT", "*.log"):
        target = _largest(data_dir, pattern)
        if pattern == "*.log" and target.stat().st_size < 4096:
            continue  # nothing left unflushed to corrupt
        _flip(target, min(target.stat().st_size // 2, max(0, target.stat().st_size - 20)))
        log = _start_fails(data_dir, encryption_key)
        assert "cannot open the data directory" in log, log[-2000:]
        assert "Traceback" not in log, log[-2000:]
        restore()
    server.start()  # restored: serves again
    with httpx.Client(base_url=server.base_url, headers=HEADERS, timeout=60) as http:
        resp = http.get("/v1/memories", params={"agent_id": AGENTS[0], "page_size": 10})
        assert resp.status_code == 200, resp.text


def test_a_healthy_backup_restores_record_by_record(
    server: ServerProcess, data_dir: Path, encryption_key: str, tmp_path: Path
) -> None:
    _fill(server, n=150)
    with httpx.Client(base_url=server.base_url, headers=HEADERS, timeout=60) as http:
        original = {agent: _export(http, agent) for agent in AGENTS}
    target = tmp_path / "backup"
    proc = _cli("backup", "--data-dir", str(data_dir), "--target", str(target), key=encryption_key, home=tmp_path)
    assert proc.returncode == 0 and "verified" in proc.stdout, proc.stderr
    check = _cli("verify", "--data-dir", str(target), key=encryption_key, home=tmp_path)
    assert check.returncode == 0 and "sound" in check.stdout, check.stdout + check.stderr

    restored = ServerProcess(data_dir=target, encryption_key=encryption_key)
    restored.start()
    try:
        with httpx.Client(base_url=restored.base_url, headers=HEADERS, timeout=60) as http:
            for agent in AGENTS:
                assert _export(http, agent) == original[agent]
    finally:
        restored.stop()


def _export(http: httpx.Client, agent: str) -> dict[str, dict[str, object]]:
    """Every memory of the agent, by id, as export writes it (access counts left out: reading
    them is an access)."""
    import json

    resp = http.post("/v1/memories:export", json={"agent_id": agent})
    assert resp.status_code == 200, resp.text
    out = {}
    for line in resp.text.splitlines():
        memory = json.loads(line)["memory"]
        memory.pop("access_count", None)
        memory.pop("last_accessed_at", None)
        out[memory["id"]] = memory
    return out
