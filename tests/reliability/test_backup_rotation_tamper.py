"""Backup while serving, key rotation and tampered values, seen from outside a real server.

* `engram-server backup` copies a data directory while the server keeps serving writes; a server
  started on the copy returns every memory acknowledged before the backup began.
* `engram-server rotate-key` re-encrypts everything; the old key is then refused at start-up, the
  new one serves every memory, and no file holds a canary in plaintext.
* A byte flipped in one stored value gives DATA_LOSS (gRPC) / 500 with code DATA_LOSS (REST) for
  that memory only; the server keeps serving the others, recall included.
"""

from __future__ import annotations

import gc
import os
import secrets
import subprocess
import threading
from pathlib import Path

import httpx
import pytest
from rocksdict import Options, Rdict

from bench.common import ROOT_KEY, SERVER_BIN, ServerProcess
from conformance.targets import rpc

from .test_encryption_at_rest import AGENT, _assert_no_canary, _files, _store_canaries
from .test_tenant_isolation import GrpcTarget

HEADERS = {"authorization": f"Bearer {ROOT_KEY}"}


def _cli(*args: str, key: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "ENGRAM_ENCRYPTION_KEY": key}
    return subprocess.run([str(SERVER_BIN), *args], env=env, capture_output=True, text=True, timeout=300)


def _store(http: httpx.Client, agent: str, content: str) -> str:
    resp = http.post("/v1/memories", json={"agent_id": agent, "content": content})
    assert resp.status_code == 200, resp.text
    return str(resp.json()["memory"]["id"])


def test_backup_while_serving_restores_every_acknowledged_memory(
    server: ServerProcess, data_dir: Path, encryption_key: str, tmp_path: Path
) -> None:
    with httpx.Client(base_url=server.base_url, headers=HEADERS, timeout=60) as http:
        before = {_store(http, "b", f"stored before the backup, number {i}"): i for i in range(30)}
        stop = threading.Event()
        during: list[str] = []
        errors: list[BaseException] = []

        def writer() -> None:
            with httpx.Client(base_url=server.base_url, headers=HEADERS, timeout=60) as w:
                i = 0
                while not stop.is_set():
                    try:
                        during.append(_store(w, "b", f"stored during the backup, number {i}"))
                    except BaseException as exc:  # reported below
                        errors.append(exc)
                        return
                    i += 1

        thread = threading.Thread(target=writer)
        thread.start()
        try:
            target = tmp_path / "backup"
            proc = _cli("backup", "--data-dir", str(data_dir), "--target", str(target),
                        key=encryption_key, home=tmp_path)
        finally:
            stop.set()
            thread.join()
        assert proc.returncode == 0, proc.stderr
        assert "backup written" in proc.stdout
        assert not errors, errors
        assert during, "no write happened while the backup ran"
        # The server kept serving through the backup.
        assert http.get(f"/v1/memories/{next(iter(before))}").status_code == 200

    restored = ServerProcess(data_dir=target, encryption_key=encryption_key)
    restored.start()
    try:
        with httpx.Client(base_url=restored.base_url, headers=HEADERS, timeout=60) as http:
            for mid, i in before.items():
                resp = http.get(f"/v1/memories/{mid}")
                assert resp.status_code == 200, resp.text
                assert resp.json()["memory"]["content"] == f"stored before the backup, number {i}"
            resp = http.post("/v1/memories/recall", json={"agent_id": "b", "query": "stored before the backup"})
            assert resp.status_code == 200 and resp.json()["memories"], resp.text
    finally:
        restored.stop()


def test_backup_with_a_wrong_key_is_refused(server: ServerProcess, data_dir: Path, tmp_path: Path) -> None:
    proc = _cli("backup", "--data-dir", str(data_dir), "--target", str(tmp_path / "b"),
                key=secrets.token_hex(32), home=tmp_path)
    assert proc.returncode != 0
    assert "key" in proc.stderr.lower() and not (tmp_path / "b").exists()


def test_rotate_key_reencrypts_and_retires_the_old_key(
    server: ServerProcess, data_dir: Path, encryption_key: str, tmp_path: Path
) -> None:
    _store_canaries(server)
    with httpx.Client(base_url=server.base_url, headers=HEADERS, timeout=60) as http:
        resp = http.get("/v1/memories", params={"agent_id": AGENT, "page_size": 100})
        before = {m["id"]: m["content"] for m in resp.json()["memories"]}
    assert len(before) == 50
    server.stop()

    new_key_file = tmp_path / "keys" / "new.key"
    proc = _cli("rotate-key", "--data-dir", str(data_dir), "--new-key-file", str(new_key_file),
                "--batch-values", "25", key=encryption_key, home=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "finished" in proc.stdout and "generated a new key" in proc.stdout
    assert new_key_file.stat().st_mode & 0o777 == 0o600
    new_key = new_key_file.read_text().strip()
    assert new_key not in proc.stdout + proc.stderr and encryption_key not in proc.stdout + proc.stderr
    _assert_no_canary(_files(data_dir))

    old = ServerProcess(data_dir=data_dir, encryption_key=encryption_key)
    with pytest.raises(RuntimeError, match="exited early"):
        old.start(timeout=60)
    assert old.log_path is not None and "does not open the data directory" in old.log_path.read_text()

    rotated = ServerProcess(data_dir=data_dir, encryption_key=new_key)
    rotated.start()
    try:
        with httpx.Client(base_url=rotated.base_url, headers=HEADERS, timeout=60) as http:
            for mid, content in before.items():
                resp = http.get(f"/v1/memories/{mid}")
                assert resp.status_code == 200 and resp.json()["memory"]["content"] == content
    finally:
        rotated.stop()
    again = _cli("rotate-key", "--data-dir", str(data_dir), "--new-key-file", str(new_key_file),
                 key=new_key, home=tmp_path)
    assert again.returncode != 0 and "current key" in again.stderr  # new == current: refused, clearly


def _flip_one_byte_of(data_dir: Path, key: str, agent_id: str, memory_id: str) -> None:
    """Flip the last byte of one memory's stored record (its key is a token: see keyspace.py)."""
    from engram_server.engine.crypto import Cipher
    from engram_server.engine.keyspace import Keyspace
    from engram_server.engine.migrations import NAMING_SECRET

    path = str(data_dir / "db")
    families = {n: Options(raw_mode=True) for n in Rdict.list_cf(path) if n != "default"}
    db = Rdict(path, options=Options(raw_mode=True), column_families=families)
    try:
        meta = db.get_column_family("meta")
        secret = Cipher(bytes.fromhex(key)).open("meta", NAMING_SECRET, meta[NAMING_SECRET])
        record_key = Keyspace(secret).agent(agent_id).record(memory_id)
        records = db.get_column_family("records")
        value = bytearray(records[record_key])
        value[-1] ^= 0x01
        records[record_key] = bytes(value)
        del records, meta
    finally:
        db.close()
        del db
        gc.collect()


def test_a_flipped_byte_is_data_loss_for_that_memory_only(
    server: ServerProcess, data_dir: Path, encryption_key: str
) -> None:
    with httpx.Client(base_url=server.base_url, headers=HEADERS, timeout=60) as http:
        victim = _store(http, "t", "the harbour ferry leaves at nine")
        others = [_store(http, "t", f"the harbour ferry note number {i}") for i in range(5)]
    server.stop()
    _flip_one_byte_of(data_dir, encryption_key, "t", victim)
    server.start()

    with httpx.Client(base_url=server.base_url, headers=HEADERS, timeout=60) as http:
        resp = http.get(f"/v1/memories/{victim}")
        assert resp.status_code == 500, resp.text
        body = resp.json()
        assert body["code"] == "DATA_LOSS" and victim in body["message"]
        assert "harbour" not in body["message"]  # the error names the record, never its content
        for mid in others:
            assert http.get(f"/v1/memories/{mid}").status_code == 200
        resp = http.post("/v1/memories/recall", json={"agent_id": "t", "query": "harbour ferry", "top_k": 10})
        assert resp.status_code == 200, resp.text
        ids = [m["id"] for m in resp.json()["memories"]]
        assert set(others) <= set(ids) and victim not in ids

    target = GrpcTarget(server.grpc_target)
    try:
        out = target.call(rpc("MemoryService.GetMemory"), {"id": victim}, ROOT_KEY)
        assert out.error is not None and out.error["code"] == "DATA_LOSS" and victim in out.error["message"]
        out = target.call(rpc("MemoryService.GetMemory"), {"id": others[0]}, ROOT_KEY)
        assert out.error is None, out.error
    finally:
        target.close()
