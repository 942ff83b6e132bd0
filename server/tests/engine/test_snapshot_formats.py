"""Snapshot formats: the current layouts round-trip, the earlier ones still load, and chunked
snapshots read back byte for byte through the encrypted store."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from conftest import KEY
from engram_server.engine import storage as storage_mod
from engram_server.engine.catalogue import _FIELDS, Entry, dump_snapshot, load_snapshot
from engram_server.engine.crypto import Cipher
from engram_server.engine.errors import DataCorrupted
from engram_server.engine.segments import SNAPSHOT_VERSION
from engram_server.engine.storage import SnapshotView, Storage
from engram_server.engine.vector_index import _Segment


def entries() -> list[Entry]:
    return [
        Entry("m1", 1.5, 2.5, 1.0, 0.9, "semantic", 0.0, (), "", frozenset(), 120, 0, 0.0, 1),
        Entry(
            "m2", 3.0, 3.0, 2.0, 0.1, "episodic", 99.5, ("a", "b"), "s1", frozenset({7, 9}), 64, 3, 4.0, 2, "k2", -42
        ),
    ]


def test_catalogue_snapshot_round_trip() -> None:
    back = load_snapshot(dump_snapshot(12, entries()))
    assert back is not None and back.seq == 12
    assert [e.as_tuple() for e in back.entries] == [e.as_tuple() for e in entries()]
    pairs = zip(back.entries, entries(), strict=True)
    assert all(type(getattr(e, f)) is type(getattr(o, f)) for e, o in pairs for f in _FIELDS)


def test_catalogue_snapshots_before_version_3_are_rebuilt() -> None:
    """Versions 1 and 2 lack upsert keys and content hashes: the loader ignores them, and the
    agent's catalogue is rebuilt from its records (test_catalogue_rebuilt_from_records_has_keys)."""
    rows = [e.as_tuple()[:14] for e in entries()]
    assert load_snapshot(pickle.dumps({"v": 1, "seq": 5, "rows": rows})) is None
    assert load_snapshot(pickle.dumps({"v": 2, "seq": 5, "cols": {}})) is None


def test_catalogue_snapshot_unknown_version_is_ignored() -> None:
    assert load_snapshot(pickle.dumps({"v": 99, "seq": 1})) is None


def segment(graph: bytes | None) -> _Segment:
    rng = np.random.default_rng(1)
    vecs = rng.standard_normal((50, 8)).astype(np.float32)
    seg = _Segment.create("vec/a/seg/00000001", [f"m{i}" for i in range(50)], vecs, "exact")
    seg.graph_blob = graph
    seg.recall = 0.97
    seg.search_epsilon = 0.2
    return seg


def test_vector_segment_round_trip_reads_vectors_in_place() -> None:
    for graph in (None, b"graph-bytes" * 100):
        seg = segment(graph)
        buf = bytearray(seg.to_bytes())
        back = _Segment.from_bytes(seg.name, buf)
        assert back.ids == seg.ids and back.graph_blob == graph and back.recall == 0.97
        assert back.state == ("lazy" if graph else "exact") and back.search_epsilon == 0.2
        assert back.vectors is not None and np.array_equal(back.vectors, seg.vectors)
        assert np.shares_memory(back.vectors, np.frombuffer(buf, dtype=np.uint8))  # no copy
        # bytes (a one-chunk snapshot) give a read-only view; searching it works all the same
        ro = _Segment.from_bytes(seg.name, bytes(buf))
        q = seg.vectors[3]
        assert ro.search(q, 1, None, 0.1)[0][0] == "m3"


def test_vector_segment_first_layout_loads() -> None:
    seg = segment(b"g")
    old = pickle.dumps(
        {"version": SNAPSHOT_VERSION, "ids": seg.ids, "vectors": seg.vectors, "graph": b"g", "recall": 0.9},
        protocol=pickle.HIGHEST_PROTOCOL,
    )
    back = _Segment.from_bytes(seg.name, old)
    assert back.ids == seg.ids and back.graph_blob == b"g" and back.state == "lazy"
    assert np.array_equal(back.vectors, seg.vectors)


def test_chunked_snapshots_read_back_exactly(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(storage_mod, "CHUNK_BYTES", 1000)
    s = Storage.open(tmp_path / "db", Cipher(KEY))
    try:
        view = SnapshotView(s)
        rng = np.random.default_rng(2)
        for size in (0, 1, 999, 1000, 1001, 4321):
            data = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
            for compress in (True, False):
                view.put(f"x/{size}", data, compress=compress)
                got = view.get(f"x/{size}")
                assert got is not None and bytes(got) == data
        view.put("x/1001", b"shorter")  # rewriting drops the old chunks
        assert view.get("x/1001") == b"shorter"
        view.delete("x/1001")
        assert view.get("x/1001") is None
    finally:
        s.close()


def test_a_snapshot_read_does_not_mix_in_a_rewrite(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Chunks are read from one RocksDB snapshot: a rewrite between two chunk reads is not seen."""
    monkeypatch.setattr(storage_mod, "CHUNK_BYTES", 10)
    s = Storage.open(tmp_path / "db", Cipher(KEY))
    try:
        view = SnapshotView(s)
        view.put("x", b"A" * 35)
        reading = s.scan_at_snapshot(storage_mod.CF_SNAPSHOTS, b"x")
        assert next(reading) == (b"x", b"4")
        view.put("x", b"B" * 35)  # rewritten after the read began
        rest = [v for k, v in reading if k.startswith(b"x\x00")]
        assert b"".join(rest) == b"A" * 35
        assert view.get("x") == b"B" * 35
        b = s.batch()
        b.delete(storage_mod.CF_SNAPSHOTS, b"x\x00000002")
        s.write(b)
        with pytest.raises(DataCorrupted, match="missing chunks"):
            view.get("x")
    finally:
        s.close()
