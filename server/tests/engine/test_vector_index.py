"""VectorIndex: exact mutable segment, sealing through the worker, persistence, tombstones.

Graph builds go through the real worker process; the first build in the worker compiles
pynndescent's numba code (~40 s), so every test shares one builder and a small seal threshold.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import numpy as np
import pytest
from engram_server.engine.index_worker import IndexBuilder
from engram_server.engine.segments import DictSnapshotStore
from engram_server.engine.vector_index import VectorIndex

DIM = 32
SEAL = 300


@pytest.fixture(scope="module")
def builder() -> Iterator[IndexBuilder]:
    b = IndexBuilder()
    yield b
    b.close()


def clustered(n: int, seed: int = 0, clusters: int = 20) -> np.ndarray:
    """Clustered unit vectors: closer to real embeddings than uniform noise."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, DIM))
    x = centres[rng.integers(0, clusters, n)] + 0.6 * rng.standard_normal((n, DIM))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32)


def exact_top(x: np.ndarray, ids: list[str], q: np.ndarray, k: int) -> list[str]:
    sims = x @ q
    return [ids[i] for i in np.argsort(-sims)[:k]]


def ids_of(n: int, prefix: str = "m") -> list[str]:
    return [f"{prefix}{i}" for i in range(n)]


def test_import_is_light() -> None:
    code = (
        "import sys, engram_server.engine.vector_index, engram_server.engine.keyword_index, "
        "engram_server.engine.fusion, engram_server.engine.embedding, engram_server.engine.index_worker\n"
        "bad = [m for m in ('pynndescent', 'numba', 'bm25s', 'onnxruntime', 'scipy') if m in sys.modules]\n"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_mutable_exact_search_upsert_remove(builder: IndexBuilder) -> None:
    vi = VectorIndex("a", DIM, DictSnapshotStore(), builder, seal_threshold=10_000)
    x = clustered(2000)
    ids = ids_of(2000)
    vi.add(ids, x)
    assert len(vi) == 2000 and vi.contains("m5")
    q = x[5]
    hits = vi.search(q, 10)
    assert [h[0] for h in hits] == exact_top(x, ids, q, 10)
    assert hits[0][0] == "m5" and abs(hits[0][1] - 1.0) < 1e-5
    # upsert replaces the vector
    vi.add(["m5"], -q[None, :])
    assert len(vi) == 2000
    assert "m5" not in [h[0] for h in vi.search(q, 10)]
    vi.remove(["m6", "nope"])
    assert len(vi) == 1999 and not vi.contains("m6")
    assert all(h[0] != "m6" for h in vi.search(x[6], 50))


def test_filter_never_returns_fewer_than_exist(builder: IndexBuilder) -> None:
    vi = VectorIndex("f", DIM, DictSnapshotStore(), builder, seal_threshold=SEAL)
    x = clustered(900, seed=3)
    ids = ids_of(900)
    vi.add(ids, x)
    vi.maintenance()  # seals 900 into a graph segment
    assert vi.wait_ready()
    allowed_ids = {ids[i] for i in range(0, 900, 97)}  # 10 ids spread everywhere
    hits = vi.search(x[0], 10, allowed=lambda i: i in allowed_ids)
    assert {h[0] for h in hits} == allowed_ids
    hits = vi.search(x[0], 5, allowed=lambda i: i in allowed_ids)
    assert len(hits) == 5


def test_seal_persist_reload_tombstones_and_recall(builder: IndexBuilder) -> None:
    store = DictSnapshotStore()
    vi = VectorIndex("s", DIM, store, builder, seal_threshold=400)
    x = clustered(1000, seed=1)
    ids = ids_of(1000)
    vi.add(ids[:700], x[:700])
    vi.maintenance()
    st = vi.stats()
    assert len(st["segments"]) == 1 and st["mutable"] == 0
    seg = st["segments"][0]
    assert seg["size"] == 700 and seg["state"] in ("ready", "lazy", "loading")
    assert seg["recall"] >= 0.95
    vi.add(ids[700:], x[700:])
    assert vi.stats()["mutable"] == 300
    assert vi.wait_ready()

    # recall@10 of the whole index vs exact
    rng = np.random.default_rng(9)
    qs = x[rng.choice(1000, 100, replace=False)] + 0.05 * rng.standard_normal((100, DIM)).astype(np.float32)
    got = 0
    for q in qs:
        q = q / np.linalg.norm(q)
        got += len({h[0] for h in vi.search(q, 10)} & set(exact_top(x, ids, q, 10)))
    assert got / 1000 >= 0.95

    # tombstones in the sealed segment, honoured at once and persisted by maintenance
    vi.remove(["m1", "m2"])
    assert not vi.contains("m1") and len(vi) == 998
    assert all(h[0] not in ("m1", "m2") for h in vi.search(x[1], 20))
    vi.add(["m3"], x[500][None, :])  # upsert of a sealed id moves it to the mutable part
    vi.maintenance()

    # restart: sealed from snapshots, the mutable part from the caller
    vi2 = VectorIndex("s", DIM, store, builder, seal_threshold=400)
    live = [(i, v) for i, v in zip(ids, x, strict=True) if i not in ("m1", "m2", "m3")]
    live.append(("m3", x[500]))
    vi2.load(live)
    assert len(vi2) == 998 and not vi2.contains("m1")
    st2 = vi2.stats()
    assert st2["mutable"] == 301 and len(st2["segments"]) == 1
    assert st2["segments"][0]["state"] == "lazy"
    top = vi2.search(x[500], 2)  # exact until the graph is loaded in the background
    assert {h[0] for h in top} == {"m500", "m3"}
    assert vi2.wait_ready()
    assert vi2.stats()["segments"][0]["state"] == "ready"
    assert {h[0] for h in vi2.search(x[500], 2)} == {"m500", "m3"}

    # once loaded, the graph's copy of the vectors is the only one, and every path still reads
    # the right vector for a row: graph re-rank, exact fallback (a filter that empties the
    # graph's candidates), and the snapshot written from it
    sealed = vi2._segments[0]
    assert sealed.vectors is None and sealed.inv_order is not None
    assert np.allclose(sealed.full_vectors(), x[:700], atol=1e-5)
    assert vi2.search(x[10], 1)[0][0] == "m10"
    far = {"m699"}
    assert [h[0] for h in vi2.search(x[0], 1, allowed=lambda i: i in far)] == ["m699"]
    assert np.allclose(sealed.all_sims(x[42]), x[:700] @ x[42], atol=1e-5)

    # restart with an authoritative (complete) live set: a delete that missed the manifest
    vi3 = VectorIndex("s", DIM, store, builder, seal_threshold=400)
    vi3.load([p for p in live if p[0] != "m4"], authoritative=True)
    assert not vi3.contains("m4") and len(vi3) == 997


def test_compaction_folds_small_remainder(builder: IndexBuilder) -> None:
    store = DictSnapshotStore()
    vi = VectorIndex("c", DIM, store, builder, seal_threshold=SEAL)
    x = clustered(400, seed=5)
    ids = ids_of(400)
    vi.add(ids, x)
    vi.maintenance()
    vi.remove(ids[:300])  # 75 % tombstones, 100 alive < SEAL / 2
    vi.maintenance()
    st = vi.stats()
    assert st["segments"] == [] and st["mutable"] == 100 and len(vi) == 100
    assert vi.search(x[350], 1)[0][0] == "m350"
    assert store.names("vec/c/seg/") == []


def test_concurrent_writes_searches_and_maintenance(builder: IndexBuilder) -> None:
    import threading

    vi = VectorIndex("t", DIM, DictSnapshotStore(), builder, seal_threshold=SEAL)
    x = clustered(1200, seed=11)
    ids = ids_of(1200)
    stop = threading.Event()
    errors: list[BaseException] = []

    def reader() -> None:
        rng = np.random.default_rng(1)
        while not stop.is_set():
            try:
                hits = vi.search(x[int(rng.integers(0, 1200))], 10)
                assert len({h[0] for h in hits}) == len(hits)
            except BaseException as exc:  # reported below
                errors.append(exc)
                return

    def maint() -> None:
        while not stop.is_set():
            vi.maintenance()

    threads = [threading.Thread(target=reader) for _ in range(2)]
    threads.append(threading.Thread(target=maint))
    for t in threads:
        t.start()
    for s in range(0, 1200, 100):
        vi.add(ids[s : s + 100], x[s : s + 100])
        vi.remove(ids[s : s + 10])
    stop.set()
    for t in threads:
        t.join()
    vi.maintenance()
    assert not errors, errors
    assert len(vi) == 1080
    assert vi.wait_ready()
    for i in range(10, 1200, 37):
        if i % 100 >= 10:
            assert vi.search(x[i], 1)[0][0] == ids[i]


def test_graph_blob_leaves_the_vectors_to_the_segment(builder: IndexBuilder) -> None:
    """The snapshot holds the vectors once: the packed graph carries no copy, and unpacking it
    with the segment's vectors gives a graph that finds them."""
    import pickle

    from engram_server.engine.index_worker import unpack_graph

    x = clustered(600, seed=11)
    result = builder.build(x)
    assert result.graph is not None
    packed = pickle.loads(result.graph)
    assert "_raw_data" not in packed["state"] and len(result.graph) < x.nbytes
    graph = unpack_graph(result.graph, x)
    idx, _ = graph.query(x[123][None, :], k=1)
    assert int(idx[0][0]) == 123
