"""Key rotation (resumable, old key stops working) and backups taken while the engine serves."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from conftest import KEY, open_engine
from engram_server.engine.backup import backup
from engram_server.engine.crypto import Cipher
from engram_server.engine.engine import Engine
from engram_server.engine.errors import FailedPrecondition, InvalidArgument, WrongEncryptionKey
from engram_server.engine.models import MemoryPatch, NewMemory, RecallQuery
from engram_server.engine.rotation import rotate_key

NEW_KEY = bytes(range(100, 132))
CANARY = "canary-rotation-7f3e"


def _fill(data_dir: Path, n: int = 120) -> dict[str, str]:
    eng = open_engine(data_dir)
    try:
        stored = {}
        for i in range(n):
            m, _ = eng.store(NewMemory("a", f"{CANARY} memory number {i} about apples", tags=[f"t{i % 3}"]))
            stored[m.id] = m.content
        first = next(iter(stored))
        eng.update("a", first, MemoryPatch(content=f"{CANARY} memory number 0 about pears"))  # history too
        stored[first] = f"{CANARY} memory number 0 about pears"
        return stored
    finally:
        eng.close()


def _assert_all_readable(data_dir: Path, stored: dict[str, str], key: bytes) -> None:
    eng = open_engine(data_dir, encryption_key=key)
    try:
        for mid, content in stored.items():
            assert eng.get("a", mid).content == content
        assert eng.list_memories("a").total_size == len(stored)
        hits = eng.recall(RecallQuery("a", "pears", top_k=3)).memories
        assert "pears" in hits[0].memory.content
    finally:
        eng.close()


def _all_ids(eng: Engine, agent: str) -> set[str]:
    ids: set[str] = set()
    token = ""
    while True:
        page = eng.list_memories(agent, page_size=500, page_token=token)
        ids |= {m.id for m in page.memories}
        token = page.next_page_token
        if not token:
            return ids


def test_rotation_reencrypts_everything_and_retires_the_old_key(data_dir: Path) -> None:
    stored = _fill(data_dir)
    report = rotate_key(data_dir / "db", KEY, NEW_KEY, batch_values=50)
    assert report.rewritten > len(stored) and report.unreadable == 0 and not report.resumed
    assert report.old_key_id == Cipher(KEY).key_id and report.new_key_id == Cipher(NEW_KEY).key_id
    _assert_all_readable(data_dir, stored, NEW_KEY)
    with pytest.raises(WrongEncryptionKey):
        open_engine(data_dir, encryption_key=KEY)
    # Nothing on disk may still be sealed with the old key: after compaction every file is new.
    again = rotate_key(data_dir / "db", KEY, NEW_KEY)
    assert again.nothing_to_do


def test_interrupted_rotation_blocks_serving_and_resumes(data_dir: Path) -> None:
    stored = _fill(data_dir)

    class Interrupted(Exception):
        pass

    def stop_after_first_batch(cf: str, done: int) -> None:
        raise Interrupted

    with pytest.raises(Interrupted):
        rotate_key(data_dir / "db", KEY, NEW_KEY, batch_values=10, progress=stop_after_first_batch)
    # Values are under two keys now: neither key may serve, and the message says what to do.
    for key in (KEY, NEW_KEY):
        with pytest.raises((FailedPrecondition, WrongEncryptionKey)) as err:
            open_engine(data_dir, encryption_key=key)
        if key == KEY:
            assert "rotate-key" in str(err.value)
    # Another new key than the one the interrupted run started with is refused.
    with pytest.raises(FailedPrecondition, match="interrupted rotation"):
        rotate_key(data_dir / "db", KEY, bytes(range(200, 232)))
    report = rotate_key(data_dir / "db", KEY, NEW_KEY, batch_values=10)
    assert report.resumed and report.already_rotated >= 10
    _assert_all_readable(data_dir, stored, NEW_KEY)
    with pytest.raises(WrongEncryptionKey):
        open_engine(data_dir, encryption_key=KEY)


def test_rotation_refuses_a_wrong_current_key_or_the_same_key(data_dir: Path) -> None:
    _fill(data_dir, n=3)
    with pytest.raises(WrongEncryptionKey):
        rotate_key(data_dir / "db", bytes(32), NEW_KEY)
    with pytest.raises(InvalidArgument):
        rotate_key(data_dir / "db", KEY, KEY)
    assert open_engine(data_dir).list_memories("a").total_size == 3  # untouched


def test_backup_while_serving_under_concurrent_writes(data_dir: Path, tmp_path: Path) -> None:
    eng = open_engine(data_dir)
    acknowledged: list[str] = []
    stop = threading.Event()

    def writer() -> None:
        i = 0
        while not stop.is_set():
            m, _ = eng.store(NewMemory("a", f"write {i} during the backup"))
            acknowledged.append(m.id)
            i += 1

    for i in range(50):
        m, _ = eng.store(NewMemory("a", f"before the backup {i}"))
        acknowledged.append(m.id)
    thread = threading.Thread(target=writer)
    thread.start()
    try:
        before = list(acknowledged)  # acknowledged before the backup starts: must be in it
        report = backup(data_dir / "db", tmp_path / "copy", Cipher(KEY))
    finally:
        stop.set()
        thread.join()
    assert report.total_values > 0
    eng.close()
    restored = open_engine(tmp_path / "copy")
    try:
        ids = _all_ids(restored, "a")
        assert set(before) <= ids
        assert ids <= set(acknowledged)  # nothing invented; later writes may or may not be in it
        for mid in before[:10]:
            assert restored.get("a", mid).content.startswith("before the backup")
        assert restored.recall(RecallQuery("a", "before the backup", top_k=5)).memories
    finally:
        restored.close()


def test_backup_refuses_wrong_key_and_non_empty_target(data_dir: Path, tmp_path: Path) -> None:
    _fill(data_dir, n=3)
    with pytest.raises(WrongEncryptionKey):
        backup(data_dir / "db", tmp_path / "copy", Cipher(bytes(32)))
    assert not (tmp_path / "copy").exists()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(FailedPrecondition, match="not empty"):
        backup(data_dir / "db", tmp_path / "full", Cipher(KEY))
