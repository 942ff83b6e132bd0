"""Encryption at rest, key handling, corruption, reopen, group commit: real RocksDB, real AES-GCM."""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import threading
import time
from pathlib import Path

import pytest
from conftest import KEY, open_engine
from engram_server.engine import crypto
from engram_server.engine.crypto import Cipher, resolve_key
from engram_server.engine.errors import DataCorrupted, InvalidArgument, WrongEncryptionKey
from engram_server.engine.models import MemoryPatch, NewMemory, RecallQuery
from engram_server.engine.storage import CF_RECORDS, Storage

CANARY = "zebracanary7731"


def test_seal_binds_cf_and_key() -> None:
    c = Cipher(KEY)
    blob = c.seal("records", b"a\x00m1", b"hello " * 40)
    assert blob[0] == crypto.V_ZSTD
    assert c.open("records", b"a\x00m1", blob) == b"hello " * 40
    with pytest.raises(DataCorrupted, match="records:a/m2"):
        c.open("records", b"a\x00m2", blob)
    with pytest.raises(DataCorrupted):
        c.open("history", b"a\x00m1", blob)
    with pytest.raises(DataCorrupted):
        Cipher(bytes(32)).open("records", b"a\x00m1", blob)
    assert c.seal("r", b"k", b"x") != c.seal("r", b"k", b"x")  # fresh nonce per write


def test_key_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.delenv(crypto.ENV_KEY, raising=False)
    monkeypatch.delenv(crypto.ENV_KEY_FILE, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    with caplog.at_level(logging.WARNING):
        k = resolve_key(None, None)
    path = tmp_path / "cfg" / "engram" / "encryption.key"
    assert path.exists() and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().strip() == k.hex()
    assert str(path) in caplog.text and "loses all data" in caplog.text and k.hex() not in caplog.text
    assert resolve_key(None, None) == k  # reused, not regenerated
    monkeypatch.setenv(crypto.ENV_KEY, "ab" * 32)
    assert resolve_key(None, None) == bytes([0xAB]) * 32
    monkeypatch.setenv(crypto.ENV_KEY, "xyz")
    with pytest.raises(InvalidArgument, match="64 hex"):
        resolve_key(None, None)
    monkeypatch.setenv(crypto.ENV_KEY, "zz" * 32)
    with pytest.raises(InvalidArgument, match="not hexadecimal"):
        resolve_key(None, None)
    with pytest.raises(InvalidArgument):
        resolve_key(b"short", None)
    assert crypto.key_id(k) != hashlib.sha256(k).hexdigest()[:16]


def _all_bytes(d: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file())


def test_no_plaintext_on_disk(data_dir: Path) -> None:
    eng = open_engine(data_dir)
    try:
        m, _ = eng.store(
            NewMemory(
                "agent-1",
                f"secret {CANARY} content",
                tags=[f"tag{CANARY}"],
                metadata={"note": f"meta{CANARY}", f"key{CANARY}": 1},
            )
        )
        other, _ = eng.store(NewMemory("agent-1", "another memory", id=f"id{CANARY}"))  # client-chosen id
        eng.store(NewMemory(f"agent{CANARY}", "an agent whose id is secret too"))
        eng.update("agent-1", m.id, MemoryPatch(content=f"updated {CANARY} text"))
        eng.link("agent-1", m.id, other.id, relation=f"rel{CANARY}")
        eng.recall(RecallQuery("agent-1", "secret content"))
        eng.run_maintenance()
        eng.storage.flush_and_compact()
        blob = _all_bytes(data_dir)
        assert CANARY.encode() not in blob
        assert CANARY.encode("utf-16-le") not in blob
    finally:
        eng.close()
    assert CANARY.encode() not in _all_bytes(data_dir)  # WAL and SST files after close too


def _hashes(d: Path) -> dict[str, str]:
    files = sorted(p for p in d.rglob("*") if p.is_file())
    return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def test_wrong_key_refuses_and_changes_nothing(data_dir: Path) -> None:
    eng = open_engine(data_dir)
    eng.store(NewMemory("a", "some memory"))
    eng.close()
    before = _hashes(data_dir)
    with pytest.raises(WrongEncryptionKey, match="another key"):
        open_engine(data_dir, encryption_key=bytes(32))
    assert _hashes(data_dir) == before
    eng = open_engine(data_dir)  # the right key still works and the lock was released
    assert eng.list_memories("a").total_size == 1
    eng.close()


def test_byte_flip_is_detected_for_that_record_only(data_dir: Path) -> None:
    eng = open_engine(data_dir)
    a, _ = eng.store(NewMemory("a", "first memory about apples"))
    b, _ = eng.store(NewMemory("a", "second memory about apples"))
    key = eng.keyspace.agent("a").record(a.id)
    raw = bytearray(eng.storage.get_raw(CF_RECORDS, key) or b"")
    raw[-5] ^= 0x01
    batch = eng.storage.batch()
    batch.put_sealed(CF_RECORDS, key, bytes(raw))
    eng.storage.write(batch)
    with pytest.raises(DataCorrupted) as err:
        eng.get("a", a.id)
    assert a.id in str(err.value) and "apples" not in str(err.value)
    assert eng.get("a", b.id).content == "second memory about apples"
    res = eng.recall(RecallQuery("a", "apples", top_k=5))
    assert [s.memory.id for s in res.memories] == [b.id]
    eng.close()


def test_reopen_in_same_process(data_dir: Path) -> None:
    for i in range(3):
        eng = open_engine(data_dir)
        eng.store(NewMemory("a", f"memory {i}"))
        eng.checkpoint(str(data_dir.parent / f"cp{i}"))
        assert eng.list_memories("a").total_size == i + 1
        eng.close()
        eng.close()  # idempotent
    s = Storage.open(data_dir / "db", Cipher(KEY))
    s.close()


def test_checkpoint_is_openable(data_dir: Path, tmp_path: Path) -> None:
    eng = open_engine(data_dir)
    m, _ = eng.store(NewMemory("a", "kept in the backup"))
    eng.checkpoint(str(tmp_path / "backup" / "db"))
    eng.close()
    restored = open_engine(tmp_path / "backup")
    assert restored.get("a", m.id).content == "kept in the backup"
    restored.close()


def test_group_commit_groups_concurrent_writers(data_dir: Path) -> None:
    eng = open_engine(data_dir)
    n_threads, per = 16, 20
    errors: list[BaseException] = []

    def worker(t: int) -> None:
        try:
            for i in range(per):
                eng.store(NewMemory(f"agent-{t % 4}", f"thread {t} memory {i}"))
        except BaseException as exc:
            errors.append(exc)

    g0, b0 = eng.storage.commit_stats
    threads = [threading.Thread(target=worker, args=(t,)) for t in range(n_threads)]
    t0 = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    elapsed = time.perf_counter() - t0
    g1, b1 = eng.storage.commit_stats
    assert not errors
    assert b1 - b0 == n_threads * per
    assert g1 - g0 < b1 - b0  # some fsyncs were shared
    assert sum(eng.list_memories(f"agent-{a}").total_size for a in range(4)) == n_threads * per
    print(f"\n{n_threads * per} stores in {elapsed:.2f}s with {g1 - g0} synced groups")
    eng.close()


def test_key_file_created_exclusive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(crypto.ENV_KEY, raising=False)
    path = tmp_path / "k" / "key"
    k1 = resolve_key(None, path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert resolve_key(None, path) == k1
