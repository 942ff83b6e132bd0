"""A schema-1 data directory (written by the schema-1 engine, data/make_v1_fixture.py) opens
on this engine: every memory, version, link and snapshot is moved to the schema-2 keys, no
identifier is left in any key, and a migration cut short finishes on the next start."""

from __future__ import annotations

import json
import tarfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from conftest import KEY, FakeEmbedder, make_config
from engram_server.engine import migrations
from engram_server.engine.crypto import Cipher
from engram_server.engine.engine import Engine
from engram_server.engine.models import NewMemory, RecallMode, RecallQuery, StoreOutcome
from engram_server.engine.storage import COLUMN_FAMILIES, SCHEMA_VERSION, Storage

FIXTURE = Path(__file__).parent / "data" / "v1-datadir.tar.gz"


@pytest.fixture
def v1_dir(tmp_path: Path) -> Path:
    with tarfile.open(FIXTURE) as tar:
        tar.extractall(tmp_path, filter="data")
    return tmp_path / "data"


def _expected(data_dir: Path) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = json.loads((data_dir / "expected.json").read_text())
    return out


def _open(data_dir: Path) -> Engine:
    return Engine.open(make_config(data_dir, encryption_key=KEY), embedder=FakeEmbedder())


def _raw_keys(data_dir: Path) -> Iterator[tuple[str, bytes]]:
    storage = Storage.open(data_dir / "db", Cipher(KEY))
    try:
        for cf in COLUMN_FAMILIES:
            for key, _ in storage.scan_raw(cf, b""):
                yield cf, key
    finally:
        storage.close()


def test_a_schema_1_directory_is_migrated_and_reads_back(v1_dir: Path) -> None:
    expected = _expected(v1_dir)
    eng = _open(v1_dir)
    try:
        assert eng.storage.schema_version() == SCHEMA_VERSION == 3
        for agent, memories in expected.items():
            assert eng.list_memories(agent, page_size=100).total_size == len(memories)
            for mid, content in memories.items():
                assert eng.get(agent, mid).content == content
                assert eng.owners(mid) == [agent]
        plain = expected["plain-agent"]
        first = next(mid for mid, c in plain.items() if "boats" in c)
        assert [m.version for m in eng.history("plain-agent", first)] == [1, 2]
        assert eng.get_agent("plain-agent").link_count == 1
        hits = eng.recall(RecallQuery("plain-agent", "stored after the snapshots", top_k=1, mode=RecallMode.KEYWORD))
        assert hits.memories[0].memory.id == "late-1"
        # ids are per agent now: another agent may take an id the first one holds
        _, created = eng.store(_new("user@example.com", "client-0"))
        assert created is StoreOutcome.CREATED and sorted(eng.owners("client-0")) == ["plain-agent", "user@example.com"]
    finally:
        eng.close()
    _assert_no_identifier_in_keys(v1_dir, expected)


def _new(agent: str, mid: str) -> NewMemory:
    return NewMemory(agent, "a second agent's memory with the same id", id=mid)


def _assert_no_identifier_in_keys(data_dir: Path, expected: dict[str, dict[str, str]]) -> None:
    needles = {a.encode() for a in expected} | {quote(a, safe="").encode() for a in expected}
    needles |= {mid.encode() for memories in expected.values() for mid in memories}
    needles |= {b"caused_by"}
    for cf, key in _raw_keys(data_dir):
        for needle in needles:
            assert needle not in key, (cf, key, needle)


def test_a_migration_cut_short_finishes_on_the_next_start(v1_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = _expected(v1_dir)
    monkeypatch.setattr(migrations, "_BATCH_OPS", 7)
    writes = 0
    real_write = Storage.write

    def failing_write(self: Storage, batch: object) -> None:
        nonlocal writes
        writes += 1
        if writes == 6:
            raise OSError("disk gone (test)")
        real_write(self, batch)  # type: ignore[arg-type]

    monkeypatch.setattr(Storage, "write", failing_write)
    with pytest.raises(OSError):
        _open(v1_dir)
    monkeypatch.setattr(Storage, "write", real_write)
    storage = Storage.open(v1_dir / "db", Cipher(KEY))
    assert storage.schema_version() == 1  # not marked done
    storage.close()
    eng = _open(v1_dir)
    try:
        for agent, memories in expected.items():
            assert {m.id for m in eng.export(agent)} == set(memories)
    finally:
        eng.close()
    _assert_no_identifier_in_keys(v1_dir, expected)


def test_a_missing_naming_secret_is_refused_not_replaced(v1_dir: Path) -> None:
    eng = _open(v1_dir)
    eng.close()
    storage = Storage.open(v1_dir / "db", Cipher(KEY))
    b = storage.batch()
    b.delete("meta", migrations.NAMING_SECRET)
    storage.write(b)
    storage.close()
    with pytest.raises(Exception, match="key-naming secret is missing"):
        _open(v1_dir)
