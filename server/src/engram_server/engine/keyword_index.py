"""Per-agent BM25 keyword index in segments, with corpus-wide statistics.

Scoring is BM25 as Lucene and bm25s compute it: sum over query terms of
idf(t) * tf / (tf + k1 * (1 - b + b * dl / avgdl)), idf(t) = ln(1 + (N - df + 0.5) / (df + 0.5)),
with k1 = 0.9 and b = 0.4: memories are short and of similar length, where a weak length
normalisation ranks better (LoCoMo recall@10 +3 points over 1.5 / 0.75; docs/design/recall.md).
N, avgdl and df are kept over the live documents of all segments together, so scores are
comparable across segments and deletes count at once.

Why not bm25s' own index: bm25s bakes idf and avgdl into its per-document score matrix at build
time and cannot add or remove documents, so segments built at different times would score on
different statistics. We keep raw term frequencies instead (a column-compressed matrix per sealed
segment, an inverted dict for the growing one) and apply the current statistics at query time, which is
the same arithmetic bm25s uses (tests check parity). Importing bm25s also pulls in numba (2.5 s),
so the tokeniser below reproduces bm25s' English setup (lowercase, unicode word split, its
33-word Lucene stopword list, Snowball stemmer from PyStemmer) without importing it.

Sealing (in `maintenance()`, off the request path) turns the inverted dict into a term matrix;
there is no re-tokenisation and no rebuild per write. The matrix is plain numpy, not
scipy.sparse: a query reads one contiguous slice per term, and importing scipy added 0.3 s of
start-up to the first recall after a restart.
"""

from __future__ import annotations

import hashlib
import logging
import math
import pickle
import re
import threading
from array import array
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from .segments import SNAPSHOT_VERSION, SegmentedIndex, SnapshotStore
from .vector_index import top_allowed

log = logging.getLogger(__name__)

Allowed = Callable[[str], bool]
K1 = 0.9
B = 0.4

# bm25s.stopwords.STOPWORDS_EN (Lucene's English list), copied to avoid importing bm25s.
STOPWORDS_EN = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "for",
        "if",
        "in",
        "into",
        "is",
        "it",
        "no",
        "not",
        "of",
        "on",
        "or",
        "such",
        "that",
        "the",
        "their",
        "then",
        "there",
        "these",
        "they",
        "this",
        "to",
        "was",
        "will",
        "with",
    ]
)
_WORD = re.compile(r"(?u)\b\w\w+\b")  # bm25s' default token pattern (unicode, 2+ chars)


class Tokenizer:
    """lowercase -> unicode words -> drop stopwords -> Snowball stem (if PyStemmer is there)."""

    def __init__(self, stem: bool = True) -> None:
        self._stem: Callable[[list[str]], list[str]] | None = None
        if stem:
            try:
                import Stemmer

                self._stem = Stemmer.Stemmer("english").stemWords
            except ImportError:  # the index still works, just without stemming
                log.warning("PyStemmer not installed: keyword search runs without stemming")
        self._lock = threading.Lock()  # Snowball stemmer objects are not thread-safe

    def __call__(self, text: str) -> list[str]:
        words = [w for w in _WORD.findall(text.lower()) if w not in STOPWORDS_EN]
        if self._stem is not None and words:
            with self._lock:
                words = self._stem(words)
        return words


def keyword_document(content: str, event_time: float) -> str:
    """What the keyword index holds for a memory: its content, then the day it happened in UTC
    ("8 May 2023"), so "what did Nate cook on 9 November 2022" finds that day's memories.
    LoCoMo recall@10 +1.2 points (docs/design/recall.md)."""
    if event_time <= 0:
        return content
    try:
        day = datetime.fromtimestamp(event_time, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return content
    return f"{content}\n{day.day} {_MONTHS[day.month - 1]} {day.year}"


_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


def _text_hash(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest()


@dataclass(eq=False)
class _RowTermCounts:
    """Term counts of documents row by row, as the mutable snapshot stores them: row r's terms
    are `vocab[terms[indptr[r]:indptr[r + 1]]]`, with the same slice of `counts`."""

    vocab: list[str]
    indptr: np.ndarray
    terms: np.ndarray
    counts: np.ndarray


class _MutableKw:
    """Growing segment, searched with numpy: every document gets a row; each term keeps its
    postings as two growing typed arrays (rows, tf) that numpy reads without copying Python
    objects. A removed or replaced document only clears its row's `alive` flag; dead rows are
    dropped when the segment is rebuilt (sealing, or when they outnumber the live ones)."""

    def __init__(self) -> None:
        self.postings: dict[str, tuple[array[int], array[float]]] = {}  # term -> (rows int32, tf float32)
        self.docs: dict[str, tuple[Counter[str], int, bytes]] = {}  # id -> (tf, length, hash)
        self.row: dict[str, int] = {}  # id -> its live row
        self.ids: list[str] = []  # row -> id
        self.lengths = array("f")  # row -> document length
        self.alive = bytearray()  # row -> 1 live, 0 dead

    def __len__(self) -> int:
        return len(self.docs)

    @property
    def n_dead(self) -> int:
        return len(self.ids) - len(self.docs)

    def put(self, id_: str, terms: list[str], h: bytes, df: Counter[str]) -> int:
        """Returns the change in total length."""
        delta = -self.remove(id_, df)
        tf = Counter(terms)
        self._append(id_, tf, len(terms))
        for t in tf:
            df[t] += 1
        self.docs[id_] = (tf, len(terms), h)
        return delta + len(terms)

    def _append(self, id_: str, tf: Counter[str], length: int) -> None:
        r = len(self.ids)
        self.ids.append(id_)
        self.lengths.append(float(length))
        self.alive.append(1)
        self.row[id_] = r
        for t, c in tf.items():
            p = self.postings.get(t)
            if p is None:
                p = self.postings[t] = (array("i"), array("f"))
            p[0].append(r)
            p[1].append(float(c))

    def remove(self, id_: str, df: Counter[str]) -> int:
        doc = self.docs.pop(id_, None)
        if doc is None:
            return 0
        tf, length, _ = doc
        self.alive[self.row.pop(id_)] = 0
        for t in tf:
            df[t] -= 1
        return length

    @classmethod
    def from_docs(
        cls, docs: dict[str, tuple[Counter[str], int, bytes]], counts: _RowTermCounts | None = None
    ) -> _MutableKw:
        """A fresh segment holding `docs` (no dead rows). Global statistics are not touched.

        `counts`: the same documents' term counts as arrays, row by row in `docs` order (a
        loaded snapshot): the postings are then grouped with numpy instead of one append per
        term of every document (0.4 s for 20k documents)."""
        m = cls()
        if counts is None or len(counts.indptr) != len(docs) + 1:
            for id_, doc in docs.items():
                m._append(id_, doc[0], doc[1])
                m.docs[id_] = doc
            return m
        m.docs = dict(docs)
        m.ids = list(docs)
        m.row = dict(zip(m.ids, range(len(m.ids)), strict=True))
        m.lengths = array("f", [float(d[1]) for d in docs.values()])
        m.alive = bytearray(b"\x01") * len(m.ids)
        row_of = np.repeat(np.arange(len(m.ids), dtype=np.int32), np.diff(counts.indptr))
        order = np.argsort(counts.terms, kind="stable")  # by term, rows ascending within one
        terms = counts.terms[order]
        rows = row_of[order]
        freqs = counts.counts[order].astype(np.float32)
        if len(terms) == 0:
            return m
        starts = np.flatnonzero(np.r_[True, terms[1:] != terms[:-1]]).tolist()
        ends = [*starts[1:], len(terms)]
        for a, b, j in zip(starts, ends, terms[starts].tolist(), strict=True):
            r = array("i")
            r.frombytes(rows[a:b].tobytes())
            f = array("f")
            f.frombytes(freqs[a:b].tobytes())
            m.postings[counts.vocab[j]] = (r, f)
        return m

    def scores(self, idf: dict[str, float], avgdl: float, k1: float, b: float) -> np.ndarray | None:
        """BM25 per row (0 for rows without a query term, -inf for dead rows). Caller holds the
        index lock (the typed arrays must not grow while numpy copies them)."""
        n = len(self.ids)
        if n == 0:
            return None
        acc = np.zeros(n, dtype=np.float32)
        norm = k1 * (1 - b + b * np.frombuffer(self.lengths, dtype=np.float32, count=n) / avgdl)
        hit = False
        for t, w in idf.items():
            p = self.postings.get(t)
            if p is None:
                continue
            rows = np.array(p[0], dtype=np.int32)  # copies: no buffer export outlives the lock
            tf = np.array(p[1], dtype=np.float32)
            acc[rows] += w * tf / (tf + norm[rows])
            hit = True
        if not hit:
            return None
        acc[acc <= 0] = -np.inf
        if len(self.docs) != n:
            acc[np.frombuffer(self.alive, dtype=np.uint8, count=n) == 0] = -np.inf
        return acc


@dataclass(eq=False)
class _TermMatrix:
    """Raw term frequencies of a sealed segment (docs x terms), compressed by column: a term's
    postings are `indices[indptr[j]:indptr[j + 1]]` (rows, ascending) and the same slice of
    `data` (frequencies). The layout of scipy's CSC, which earlier snapshots were written from."""

    data: np.ndarray  # float32
    indices: np.ndarray  # int32 row of each posting
    indptr: np.ndarray  # n_terms + 1 column starts
    shape: tuple[int, int]
    _by_row: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    @classmethod
    def from_postings(cls, rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, shape: tuple[int, int]) -> _TermMatrix:
        """From (row, term, frequency) triples, each (row, term) at most once."""
        order = np.lexsort((rows, cols))  # by term, then row
        indptr = np.zeros(shape[1] + 1, dtype=np.int64)
        np.cumsum(np.bincount(cols, minlength=shape[1]), out=indptr[1:])
        return cls(vals[order].astype(np.float32), rows[order].astype(np.int32), indptr, shape)

    def term_of_postings(self) -> np.ndarray:
        """The term (column) of every posting, in storage order."""
        return np.repeat(np.arange(self.shape[1], dtype=np.int32), np.diff(self.indptr))

    def term_counts(self, dead_rows: np.ndarray | None) -> np.ndarray:
        """Documents per term (df), leaving out the rows marked in the boolean `dead_rows`."""
        df = np.diff(self.indptr)
        if dead_rows is not None and dead_rows.any():
            gone = self.term_of_postings()[dead_rows[self.indices]]
            df = df - np.bincount(gone, minlength=self.shape[1])
        return df

    def by_row(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(indptr, terms, frequencies) compressed by row, built on first use (deletes and
        compaction read documents whole; queries never do)."""
        out = self._by_row
        if out is None:
            order = np.argsort(self.indices, kind="stable")
            indptr = np.zeros(self.shape[0] + 1, dtype=np.int64)
            np.cumsum(np.bincount(self.indices, minlength=self.shape[0]), out=indptr[1:])
            out = (indptr, self.term_of_postings()[order], self.data[order])
            self._by_row = out
        return out


@dataclass
class _KwSegment:
    name: str
    ids: list[str]
    pos: dict[str, int]
    vocab: dict[str, int]
    tf: _TermMatrix
    lengths: np.ndarray  # float32 doc lengths
    hashes: list[bytes]
    alive: np.ndarray
    persisted: bool = False
    _inv: list[str] | None = None  # term id -> term, built on first delete

    @property
    def n_alive(self) -> int:
        return int(self.alive.sum())

    def doc_terms(self, row: int) -> list[str]:
        inv = self._inv_vocab()
        indptr, terms, _ = self.tf.by_row()
        return [inv[j] for j in terms[indptr[row] : indptr[row + 1]].tolist()]

    def _inv_vocab(self) -> list[str]:
        inv = self._inv
        if inv is None:
            inv = [""] * len(self.vocab)
            for t, j in self.vocab.items():
                inv[j] = t
            self._inv = inv
        return inv

    def to_bytes(self) -> bytes:
        return pickle.dumps(
            {
                "version": SNAPSHOT_VERSION,
                "ids": self.ids,
                "vocab": self.vocab,
                "data": self.tf.data,
                "indices": self.tf.indices,
                "indptr": self.tf.indptr,
                "shape": self.tf.shape,
                "lengths": self.lengths,
                "hashes": self.hashes,
            },
            protocol=pickle.HIGHEST_PROTOCOL,
        )

    @classmethod
    def from_bytes(cls, name: str, data: bytes | bytearray) -> _KwSegment:
        d = pickle.loads(data)
        if d.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"unsupported keyword snapshot version {d.get('version')}")
        shape = (int(d["shape"][0]), int(d["shape"][1]))
        tf = _TermMatrix(
            np.asarray(d["data"], dtype=np.float32), np.asarray(d["indices"], dtype=np.int32), d["indptr"], shape
        )
        ids = list(d["ids"])
        return cls(
            name=name,
            ids=ids,
            pos=dict(zip(ids, range(len(ids)), strict=True)),
            vocab=d["vocab"],
            tf=tf,
            lengths=np.asarray(d["lengths"], dtype=np.float32),
            hashes=list(d["hashes"]),
            alive=np.ones(len(ids), dtype=bool),
            persisted=True,
        )


class KeywordIndex(SegmentedIndex[_KwSegment]):
    """BM25 over one agent's memories. Thread-safe: one lock guards the structures."""

    kind = "kw"

    def __init__(
        self,
        agent_id: str,
        snapshots: SnapshotStore,
        seal_threshold: int = 20000,
        *,
        tokenizer: Tokenizer | None = None,
        compact_dead_fraction: float = 0.25,
        k1: float = K1,
        b: float = B,
    ) -> None:
        super().__init__(agent_id, snapshots, max(1, seal_threshold), compact_dead_fraction)
        self.k1 = k1
        self.b = b
        self.tokenize = tokenizer or Tokenizer()
        self._mutable = _MutableKw()
        self._df: Counter[str] = Counter()  # over live documents of all segments
        self._n = 0
        self._total_len = 0

    # --- writes ------------------------------------------------------------------------------
    def add(self, ids: list[str], texts: list[str]) -> None:
        """Upsert documents (an existing id is replaced)."""
        prepared = [(i, self.tokenize(t), _text_hash(t)) for i, t in zip(ids, texts, strict=True)]
        with self._lock:
            for id_, terms, h in prepared:
                self._kill_sealed(id_)
                if id_ not in self._mutable.docs:
                    self._n += 1
                self._total_len += self._mutable.put(id_, terms, h, self._df)
            self._mutable_version += 1
            self._maybe_rebuild_mutable()

    def remove(self, ids: list[str]) -> None:
        with self._lock:
            for id_ in ids:
                if id_ in self._mutable.docs:
                    self._total_len -= self._mutable.remove(id_, self._df)
                    self._n -= 1
                else:
                    self._kill_sealed(id_)
            self._mutable_version += 1
            self._maybe_rebuild_mutable()

    def _maybe_rebuild_mutable(self) -> None:
        m = self._mutable
        if m.n_dead > 1024 and m.n_dead > len(m.docs):
            self._mutable = _MutableKw.from_docs(m.docs)

    def _kill_sealed(self, id_: str) -> None:
        for seg in self._segments:
            i = seg.pos.get(id_)
            if i is not None and seg.alive[i]:
                seg.alive[i] = False
                for t in seg.doc_terms(i):
                    self._df[t] -= 1
                self._n -= 1
                self._total_len -= int(seg.lengths[i])
                self._manifest_dirty = True

    # --- reads -------------------------------------------------------------------------------
    def __len__(self) -> int:
        with self._lock:
            return self._n

    def live_ids(self) -> set[str]:
        """Every id with a live document (one pass, for loading)."""
        from itertools import compress

        with self._lock:
            out = set(self._mutable.docs)
            for s in self._segments:
                out.update(compress(s.ids, s.alive.tolist()))
            return out

    def contains(self, id_: str) -> bool:
        with self._lock:
            if id_ in self._mutable.docs:
                return True
            return any((i := s.pos.get(id_)) is not None and bool(s.alive[i]) for s in self._segments)

    def search(self, query: str, k: int, allowed: Allowed | None = None) -> list[tuple[str, float]]:
        """Top k (id, BM25 score) with score > 0, best first. With `allowed`, all that match."""
        terms = list(dict.fromkeys(self.tokenize(query)))  # a repeated query term counts once
        if not terms or k <= 0:
            return []
        with self._lock:
            n = self._n
            if n == 0:
                return []
            avgdl = self._total_len / n if n else 1.0
            idf = {t: math.log(1.0 + (n - self._df[t] + 0.5) / (self._df[t] + 0.5)) for t in terms if self._df[t] > 0}
            if not idf:
                return []
            # Growing segment: numpy over its typed posting arrays.
            acc = self._mutable.scores(idf, avgdl, self.k1, self.b)
            cands = top_allowed(acc, self._mutable.ids, k, allowed) if acc is not None else []
            segments = list(self._segments)
        for seg in segments:
            sc = self._search_segment(seg, idf, avgdl, self.k1, self.b)
            if sc is not None:
                cands.extend(top_allowed(sc, seg.ids, k, allowed))
        if segments:
            cands.sort(key=lambda c: -c[1])
        return cands[:k]

    @staticmethod
    def _search_segment(seg: _KwSegment, idf: dict[str, float], avgdl: float, k1: float, b: float) -> np.ndarray | None:
        """BM25 per row of a sealed segment; -inf for rows without a query term or dead."""
        acc = np.zeros(len(seg.ids), dtype=np.float32)
        norm = k1 * (1 - b + b * seg.lengths / avgdl)
        hit = False
        for t, w in idf.items():
            j = seg.vocab.get(t)
            if j is None:
                continue
            start, end = seg.tf.indptr[j], seg.tf.indptr[j + 1]
            rows = seg.tf.indices[start:end]
            tf = seg.tf.data[start:end].astype(np.float32)
            acc[rows] += w * tf / (tf + norm[rows])
            hit = True
        if not hit:
            return None
        acc[~seg.alive] = 0.0
        acc[acc <= 0] = -np.inf
        return acc

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "agent_id": self.agent_id,
                "documents": self._n,
                "mutable": len(self._mutable),
                "segments": [
                    {
                        "name": s.name,
                        "size": len(s.ids),
                        "tombstones": len(s.ids) - s.n_alive,
                    }
                    for s in self._segments
                ],
                "vocabulary": sum(1 for c in self._df.values() if c > 0),
                "avgdl": self._total_len / self._n if self._n else 0.0,
            }

    # --- persistence -------------------------------------------------------------------------
    def load(self, texts_for_mutable: Iterable[tuple[str, str]], authoritative: bool = False) -> None:
        """Open: sealed segments from snapshots, the rest from the caller (same contract as
        VectorIndex.load: passing every live (id, text) is fine; unchanged sealed ones are
        skipped by content hash, changed ones replace the sealed copy)."""
        seq, segments = self._read_manifest()
        snap_docs, snap_counts = self._load_mutable_snapshot(segments)
        snap_ids = list(snap_docs)
        fresh: list[tuple[str, str]] = []
        seen: set[str] = set()
        for id_, text in texts_for_mutable:
            seen.add(id_)
            h = _text_hash(text)
            keep = False
            sd = snap_docs.get(id_)
            if sd is not None:
                if sd[2] == h:
                    keep = True
                else:
                    del snap_docs[id_]
            for seg in segments:
                i = seg.pos.get(id_)
                if i is not None and seg.alive[i]:
                    if seg.hashes[i] == h:
                        keep = True
                    else:
                        seg.alive[i] = False
            if not keep:
                fresh.append((id_, text))
        if authoritative:
            self._tombstone_missing(segments, seen)
            for id_ in [i for i in snap_docs if i not in seen]:
                del snap_docs[id_]
        with self._lock:
            self._segments = segments
            unchanged = len(snap_docs) == len(snap_ids)  # only deletions can happen above
            self._mutable = _MutableKw.from_docs(snap_docs, snap_counts if unchanged else None)
            self._seq = max(seq, self._seq)
            self._recount()
            self._manifest_dirty = True
            self._mutable_version += 1
        if fresh:
            self.add([f[0] for f in fresh], [f[1] for f in fresh])

    def _segment_from_bytes(self, name: str, data: bytes | bytearray) -> _KwSegment:
        return _KwSegment.from_bytes(name, data)

    def _load_mutable_snapshot(
        self, segments: list[_KwSegment]
    ) -> tuple[dict[str, tuple[Counter[str], int, bytes]], _RowTermCounts | None]:
        """The growing segment's documents from its snapshot (no re-tokenising), minus ids alive
        in a sealed segment (sealed after the snapshot was taken); with their term counts as
        arrays when none was left out."""
        raw = self.snapshots.get(self._mutable_name())
        if raw is None:
            return {}, None
        try:
            d = pickle.loads(raw)
            if d.get("version") != SNAPSHOT_VERSION:
                return {}, None
            vocab: list[str] = d["vocab"]
            indptr = d["indptr"].tolist()
            terms = d["terms"].tolist()
            counts = d["counts"].tolist()
            lengths = d["lengths"].tolist()
            out: dict[str, tuple[Counter[str], int, bytes]] = {}
            for r, (id_, h) in enumerate(zip(d["ids"], d["hashes"], strict=True)):
                a, e = indptr[r], indptr[r + 1]
                # Counter's own constructor counts in Python: build the dict, then wrap it.
                tf: Counter[str] = Counter()
                dict.update(tf, zip([vocab[j] for j in terms[a:e]], counts[a:e], strict=True))
                out[id_] = (tf, lengths[r], h)
            arrays = _RowTermCounts(vocab, d["indptr"], d["terms"], d["counts"])
        except Exception:
            log.warning("keyword mutable snapshot of %s unreadable; texts come from storage", self.agent_id)
            return {}, None
        sealed = self._alive_in(segments, out)
        for id_ in sealed:
            del out[id_]
        return out, (arrays if not sealed else None)

    def mutable_ids(self) -> list[str]:
        with self._lock:
            return list(self._mutable.docs)

    def _mutable_state(self) -> dict[str, tuple[Counter[str], int, bytes]]:
        return dict(self._mutable.docs)

    def _mutable_snapshot(self, docs: dict[str, tuple[Counter[str], int, bytes]]) -> tuple[bytes, bool]:
        """The growing segment's term counts as one snapshot, so an agent loads without reading
        and re-tokenising every text that is not sealed."""
        vocab: dict[str, int] = {}
        indptr = [0]
        terms: list[int] = []
        counts: list[int] = []
        for tf, _, _ in docs.values():
            for t, c in tf.items():
                terms.append(vocab.setdefault(t, len(vocab)))
                counts.append(c)
            indptr.append(len(terms))
        blob = pickle.dumps(
            {
                "version": SNAPSHOT_VERSION,
                "ids": list(docs),
                "hashes": [d[2] for d in docs.values()],
                "lengths": np.asarray([d[1] for d in docs.values()], dtype=np.int64),
                "vocab": list(vocab),
                "indptr": np.asarray(indptr, dtype=np.int64),
                "terms": np.asarray(terms, dtype=np.int32),
                "counts": np.asarray(counts, dtype=np.int32),
            },
            protocol=pickle.HIGHEST_PROTOCOL,
        )
        return blob, True

    def _recount(self) -> None:
        """Recompute global statistics from scratch (load, compaction)."""
        df: Counter[str] = Counter()
        n = 0
        total = 0
        for seg in self._segments:
            alive = seg.alive
            n += int(alive.sum())
            total += int(seg.lengths[alive].sum())
            col_df = seg.tf.term_counts(None if alive.all() else ~alive)
            inv = seg._inv_vocab()
            nz = np.flatnonzero(col_df)
            # Counter.update with a mapping adds counts (plain assignment when df is empty).
            df.update(dict(zip([inv[j] for j in nz.tolist()], col_df[nz].tolist(), strict=True)))
        m = self._mutable
        if m.n_dead == 0:  # every posting is a live document's: df is the postings' length
            n += len(m.docs)
            total += int(sum(d[1] for d in m.docs.values()))
            df.update({t: len(p[0]) for t, p in m.postings.items()})
        else:
            for tf, length, _ in m.docs.values():
                n += 1
                total += length
                for t in tf:
                    df[t] += 1
        self._df, self._n, self._total_len = df, n, total

    def _clear(self) -> None:
        self._mutable = _MutableKw()
        self._recount()

    # --- maintenance ---------------------------------------------------------------------------
    def _seal_if_full(self) -> None:
        with self._lock:
            if len(self._mutable) < self.seal_threshold:
                return
            docs = dict(self._mutable.docs)
        self._seal(docs)

    def _build_segment(self, name: str, docs: dict[str, tuple[Counter[str], int, bytes]]) -> _KwSegment:
        ids = list(docs)
        vocab: dict[str, int] = {}
        rows: list[int] = []
        cols: list[int] = []
        vals: list[int] = []
        for r, id_ in enumerate(ids):
            for t, c in docs[id_][0].items():
                rows.append(r)
                cols.append(vocab.setdefault(t, len(vocab)))
                vals.append(c)
        tf = _TermMatrix.from_postings(
            np.asarray(rows, dtype=np.int32),
            np.asarray(cols, dtype=np.int32),
            np.asarray(vals, dtype=np.float32),
            (len(ids), max(1, len(vocab))),
        )
        return _KwSegment(
            name=name,
            ids=ids,
            pos=dict(zip(ids, range(len(ids)), strict=True)),
            vocab=vocab,
            tf=tf,
            lengths=np.asarray([docs[i][1] for i in ids], dtype=np.float32),
            hashes=[docs[i][2] for i in ids],
            alive=np.ones(len(ids), dtype=bool),
        )

    def _seal(self, docs: dict[str, tuple[Counter[str], int, bytes]]) -> None:
        with self._lock:
            name = self._next_name()
        seg = self._build_segment(name, docs)  # outside the lock: writes continue meanwhile
        self.snapshots.put(name, seg.to_bytes())
        seg.persisted = True
        with self._lock:
            # Docs changed or removed during the build stay in the mutable part (or are gone);
            # only the untouched ones move to the sealed segment.
            rest = dict(self._mutable.docs)
            for i, id_ in enumerate(seg.ids):
                cur = rest.get(id_)
                if cur is not None and cur is docs[id_]:
                    del rest[id_]
                else:
                    seg.alive[i] = False
            self._mutable = _MutableKw.from_docs(rest)
            self._mutable_version += 1
            self._segments.append(seg)
            self._manifest_dirty = True
        self._write_manifest()

    def _compact(self) -> None:
        with self._lock:
            victims = [
                s
                for s in self._segments
                if s.persisted and len(s.ids) and 1 - s.n_alive / len(s.ids) >= self.compact_dead_fraction
            ]
        for seg in victims:
            with self._lock:
                if seg not in self._segments:
                    continue
                live = {}
                inv = seg._inv_vocab()
                indptr, terms, freqs = seg.tf.by_row()
                for row in np.flatnonzero(seg.alive):
                    i = int(row)
                    s, e = indptr[i], indptr[i + 1]
                    tf = Counter(
                        {inv[j]: int(c) for j, c in zip(terms[s:e].tolist(), freqs[s:e].tolist(), strict=True)}
                    )
                    live[seg.ids[i]] = (tf, int(seg.lengths[i]), seg.hashes[i])
                name = self._next_name()
            new = self._build_segment(name, live) if live else None
            if new is not None:
                self.snapshots.put(name, new.to_bytes())
                new.persisted = True
            with self._lock:
                if new is not None:
                    # Deletes that happened while rebuilding.
                    for i, id_ in enumerate(new.ids):
                        if not seg.alive[seg.pos[id_]]:
                            new.alive[i] = False
                    self._segments[self._segments.index(seg)] = new
                else:
                    self._segments.remove(seg)
                self._manifest_dirty = True
            self._write_manifest()
            self.snapshots.delete(seg.name)
