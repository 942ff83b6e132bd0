"""KeywordIndex: BM25 parity with bm25s, segments with global statistics, deletes, persistence."""

from __future__ import annotations

import numpy as np
import pytest
from engram_server.engine.keyword_index import KeywordIndex, Tokenizer
from engram_server.engine.segments import DictSnapshotStore

DOCS = [
    "The deployment failed with error code E1234 because the disk was full",
    "Caroline went to the LGBTQ support group on Tuesday",
    "Melanie painted a sunrise over the lake with her kids",
    "User prefers dark mode and vim keybindings",
    "Error E5678 appears when the database connection times out",
    "The kids went camping at the lake and roasted marshmallows",
    "Caroline is researching adoption agencies",
    "Disk usage alerts fire at ninety percent",
]


def corpus(n: int) -> list[str]:
    rng = np.random.default_rng(0)
    words = " ".join(DOCS).lower().split()
    return [" ".join(rng.choice(words, size=int(rng.integers(3, 15)))) for _ in range(n)]


def test_tokenizer() -> None:
    tok = Tokenizer()
    assert tok("The Running memories, of Zoë!") == ["run", "memori", "zoë"]
    assert Tokenizer(stem=False)("Error-code E1234 a") == ["error", "code", "e1234"]


def test_scores_match_bm25s() -> None:
    bm25s = pytest.importorskip("bm25s")
    texts = corpus(200)
    ki = KeywordIndex("a", DictSnapshotStore(), k1=1.2, b=0.6)
    ki.add([f"d{i}" for i in range(len(texts))], texts)
    tok = ki.tokenize
    retriever = bm25s.BM25(backend="numpy", k1=1.2, b=0.6, method="lucene")
    retriever.index([tok(t) for t in texts], show_progress=False)
    for query in ("disk error lake", "caroline kids sunrise", "vim"):
        ours = ki.search(query, 10)
        docs, scores = retriever.retrieve([tok(query)], k=10, show_progress=False, n_threads=1)
        ref = {f"d{int(d)}": float(s) for d, s in zip(docs[0], scores[0], strict=True) if s > 0}
        assert len(ours) == len(ref)
        # same scores in the same order (ids may differ only among ties at the cut-off)
        assert [s for _, s in ours] == pytest.approx(sorted(ref.values(), reverse=True), rel=1e-4)
        for id_, s in ours:
            if id_ in ref:
                assert s == pytest.approx(ref[id_], rel=1e-4)


def test_segments_keep_global_statistics() -> None:
    texts = corpus(300)
    ids = [f"d{i}" for i in range(300)]
    one = KeywordIndex("one", DictSnapshotStore(), seal_threshold=10**6)
    one.add(ids, texts)
    seg = KeywordIndex("seg", DictSnapshotStore(), seal_threshold=100)
    for start in range(0, 300, 100):
        seg.add(ids[start : start + 100], texts[start : start + 100])
        seg.maintenance()
    seg.add(["extra"], ["lake sunrise"])
    one.add(["extra"], ["lake sunrise"])
    assert len(seg.stats()["segments"]) == 3
    for q in ("lake sunrise", "error disk", "caroline"):
        a, b = one.search(q, 20), seg.search(q, 20)
        assert [x[0] for x in a] == [x[0] for x in b]
        assert np.allclose([x[1] for x in a], [x[1] for x in b], rtol=1e-5)
    # deletes count at once, in sealed and growing parts alike
    seg.remove(["d0", "extra"])
    one.remove(["d0", "extra"])
    assert len(seg) == len(one) == 299
    a, b = one.search("lake", 50), seg.search("lake", 50)
    assert [x[0] for x in a] == [x[0] for x in b]
    assert np.allclose([x[1] for x in a], [x[1] for x in b], rtol=1e-5)


def test_upsert_filter_persist_reload() -> None:
    store = DictSnapshotStore()
    ki = KeywordIndex("p", store, seal_threshold=4)
    ids = [f"m{i}" for i in range(len(DOCS))]
    ki.add(ids, DOCS)
    ki.maintenance()
    assert len(ki.stats()["segments"]) == 1
    assert ki.search("E1234", 3)[0][0] == "m0"
    ki.add(["m0"], ["nothing relevant here"])  # upsert of a sealed doc
    assert ki.search("E1234", 3) == []
    ki.remove(["m1"])
    assert all(h[0] != "m1" for h in ki.search("caroline", 5))
    hits = ki.search("lake", 5, allowed=lambda i: i == "m5")
    assert [h[0] for h in hits] == ["m5"]
    ki.maintenance()  # compaction + manifest

    live = {i: t for i, t in zip(ids, DOCS, strict=True) if i != "m1"}
    live["m0"] = "nothing relevant here"
    ki2 = KeywordIndex("p", store, seal_threshold=4)
    ki2.load(live.items())
    assert len(ki2) == len(live)
    for q in ("caroline", "lake kids", "E1234", "relevant"):
        a, b = ki2.search(q, 5), ki.search(q, 5)
        assert [x[0] for x in a] == [x[0] for x in b]
        assert [x[1] for x in a] == pytest.approx([x[1] for x in b])
    ki3 = KeywordIndex("p", store, seal_threshold=4)
    ki3.load([(i, t) for i, t in live.items() if i != "m6"], authoritative=True)
    assert not ki3.contains("m6") and len(ki3) == len(live) - 1


def test_reload_with_tombstones_keeps_statistics() -> None:
    """A sealed segment's tombstones are subtracted per term when the index loads (a past bug
    counted them per document row, skewing idf after a restart)."""
    texts = corpus(120)
    ids = [f"d{i}" for i in range(120)]
    store = DictSnapshotStore()
    ki = KeywordIndex("t", store, seal_threshold=100, compact_dead_fraction=0.9)
    ki.add(ids, texts)
    ki.maintenance()
    dead = ids[:30:3]
    ki.remove(dead)
    ki.maintenance()  # manifest with the tombstones, no compaction
    assert ki.stats()["segments"][0]["tombstones"] == len(dead)
    reloaded = KeywordIndex("t", store, seal_threshold=100, compact_dead_fraction=0.9)
    reloaded.load([])
    ref = KeywordIndex("r", DictSnapshotStore(), seal_threshold=10**6)
    ref.add([i for i in ids if i not in dead], [t for i, t in zip(ids, texts, strict=True) if i not in dead])
    assert reloaded._df == +ref._df  # + drops zero counts
    for q in ("lake sunrise", "error disk", "caroline kids"):
        a, b = reloaded.search(q, 20), ref.search(q, 20)
        assert [x[0] for x in a] == [x[0] for x in b]
        assert np.allclose([x[1] for x in a], [x[1] for x in b], rtol=1e-5)
    reloaded.remove(ids[1:3])  # row-wise reads after a load
    ref.remove(ids[1:3])
    assert +reloaded._df == +ref._df


def test_reload_of_the_growing_segment_matches_a_rebuild(monkeypatch: pytest.MonkeyPatch) -> None:
    """A loaded mutable snapshot's postings are grouped from its arrays (from_docs' fast path):
    the same postings, statistics and scores as building the segment document by document."""
    from engram_server.engine.keyword_index import _MutableKw

    texts = corpus(300)
    ids = [f"d{i}" for i in range(300)]
    store = DictSnapshotStore()
    ki = KeywordIndex("g", store, seal_threshold=10**6)
    ki.add(ids, texts)
    ki.remove(ids[:20:4])
    ki.add([ids[50]], ["an updated text about the lake"])
    ki.maintenance()  # persists the growing segment
    reloaded = KeywordIndex("g", store, seal_threshold=10**6)
    appended: list[str] = []
    original_append = _MutableKw._append
    monkeypatch.setattr(_MutableKw, "_append", lambda self, *a: appended.append(a[0]) or original_append(self, *a))
    reloaded.load([])
    assert appended == []  # the fast path: no document appended one by one
    monkeypatch.undo()
    slow = _MutableKw.from_docs(reloaded._mutable.docs)
    fast = reloaded._mutable
    assert fast.ids == slow.ids and fast.lengths == slow.lengths and fast.alive == slow.alive
    assert {t: (list(r), list(f)) for t, (r, f) in fast.postings.items()} == {
        t: (list(r), list(f)) for t, (r, f) in slow.postings.items()
    }
    assert +reloaded._df == +ki._df and reloaded._n == ki._n and reloaded._total_len == ki._total_len
    for q in ("lake sunrise", "error disk", "caroline kids", "updated"):
        a, b = reloaded.search(q, 20), ki.search(q, 20)
        assert [x[0] for x in a] == [x[0] for x in b]
        assert np.allclose([x[1] for x in a], [x[1] for x in b], rtol=1e-5)
    reloaded.remove([ids[60]])  # writes after a fast load
    reloaded.add(["new"], ["a brand new lake memory"])
    assert reloaded.search("brand new", 1)[0][0] == "new"


def test_concurrent_writes_and_sealing() -> None:
    import threading

    ki = KeywordIndex("t", DictSnapshotStore(), seal_threshold=50)
    texts = corpus(600)
    ids = [f"d{i}" for i in range(600)]
    stop = threading.Event()
    errors: list[BaseException] = []

    def reader() -> None:
        while not stop.is_set():
            try:
                ki.search("lake error caroline", 10)
            except BaseException as exc:  # reported below
                errors.append(exc)
                return

    def maint() -> None:
        while not stop.is_set():
            ki.maintenance()

    threads = [threading.Thread(target=reader), threading.Thread(target=maint)]
    for t in threads:
        t.start()
    for s in range(0, 600, 20):
        ki.add(ids[s : s + 20], texts[s : s + 20])
        ki.remove([ids[s]])
    stop.set()
    for t in threads:
        t.join()
    assert not errors, errors
    ref = KeywordIndex("r", DictSnapshotStore(), seal_threshold=10**6)
    keep = [i for i in range(600) if i % 20]
    ref.add([ids[i] for i in keep], [texts[i] for i in keep])
    assert len(ki) == len(ref) == 570
    for q in ("lake sunrise", "error disk", "caroline kids"):
        a, b = ki.search(q, 15), ref.search(q, 15)
        assert [x[1] for x in a] == pytest.approx([x[1] for x in b], rel=1e-5)
