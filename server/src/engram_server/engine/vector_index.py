"""Per-agent vector index in segments: one mutable exact segment plus sealed graph segments.

* New vectors go to the mutable segment: a preallocated float32 matrix searched exactly with one
  matrix-vector product (about 0.4 ms at 10k x 384).
* When it reaches `seal_threshold`, `maintenance()` (a background thread) freezes it, has the
  IndexBuilder worker process build a pynndescent graph, persists the segment as one snapshot
  (ids, vectors, pickled graph) and swaps it in. A frozen segment is searched exactly until its
  graph is ready, so nothing is ever unsearchable.
* Deletes in sealed segments are tombstones (an `alive` mask), persisted in the manifest at each
  maintenance; segments with many tombstones are compacted (rebuilt, or folded back into the
  mutable segment when small).
* After a restart, `load()` reads the manifest and each segment with one get; the segment's
  vectors are a view into the snapshot buffer (no copy, see `_Segment.to_bytes`). The graph
  inside is unpickled lazily on a background thread the first time the segment is searched
  (importing pynndescent/numba takes seconds); until then that segment is searched exactly.
  So a restart never stalls a request on a numba import.

Scores are cosine similarities (vectors are L2-normalised). Thread-safety: one lock guards the
segment list and the mutable segment; long work (graph builds, snapshot writes, graph loads)
runs outside it and is swapped in under it. pynndescent queries share per-index scratch
buffers, so each graph has its own query lock.
"""

from __future__ import annotations

import itertools
import logging
import pickle
import struct
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .index_worker import BuildAborted
from .segments import SNAPSHOT_VERSION, SegmentedIndex, SnapshotStore

if TYPE_CHECKING:
    from .index_worker import BuildParams, IndexBuilder

log = logging.getLogger(__name__)

# Segment snapshots since 2026-11: magic, meta length, pickled meta, then the raw float32 vectors
# (64-byte aligned) and the graph blob. Older ones are one pickle; both load.
_SEGMENT_MAGIC = b"EGVS"
_SEGMENT_LAYOUT = 2
_SEGMENT_HEAD = struct.Struct("<4sQ")
Allowed = Callable[[str], bool]


def _normalise(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    if v.ndim == 1:
        n = float(np.linalg.norm(v))
        return v / n if n > 0 else v
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    out: np.ndarray = v / np.maximum(norms, 1e-12)
    return out


def top_allowed(scores: np.ndarray, ids: list[str], k: int, allowed: Allowed | None) -> list[tuple[str, float]]:
    """Top k (id, score), best first, skipping rows scored -inf and ids the filter rejects.

    Never fewer than exist: the window of best rows looked at starts near k (argpartition,
    O(n)) and grows 4x whenever the filter leaves fewer than k in it, up to a full sort. So an
    unfiltered or loosely filtered search calls `allowed` a few dozen times, not once per row.
    """
    n = scores.shape[0]
    if n == 0 or k <= 0:
        return []
    window = min(n, max(2 * k, k + 16)) if allowed is not None else min(n, k)
    neg = -scores
    while True:
        if window < n:
            thr = -neg[np.argpartition(neg, window - 1)[window - 1]]
            # every row tied with the window's last one too, so ties break by row, not by chance
            part = np.flatnonzero(scores >= thr) if thr != -np.inf else np.flatnonzero(scores > thr)
        else:
            part = np.arange(n)
        part = part[np.argsort(neg[part], kind="stable")]  # ties: lower row (older) first
        out: list[tuple[str, float]] = []
        for i in part.tolist():
            s = float(scores[i])
            if s == -np.inf:
                return out
            id_ = ids[i]
            if allowed is None or allowed(id_):
                out.append((id_, s))
                if len(out) >= k:
                    return out
        if window >= n:
            return out
        window = min(n, window * 4)


def _top_exact(
    sims: np.ndarray,
    ids: list[str],
    k: int,
    allowed: Allowed | None,
    alive: np.ndarray | None,
) -> list[tuple[str, float]]:
    """Top k of a similarity vector, skipping dead rows and ids the filter rejects."""
    if sims.shape[0] == 0 or k <= 0:
        return []
    if alive is not None:
        sims = np.where(alive, sims, -np.inf)
    return top_allowed(sims, ids, k, allowed)


class _Mutable:
    """Growable exact segment: rows [0, n) of a preallocated matrix; delete = swap with last."""

    def __init__(self, dim: int, capacity: int = 1024) -> None:
        self.dim = dim
        self.mat = np.zeros((max(16, capacity), dim), dtype=np.float32)
        self.ids: list[str] = []
        self.pos: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.ids)

    def put(self, id_: str, vec: np.ndarray) -> None:
        i = self.pos.get(id_)
        if i is None:
            i = len(self.ids)
            if i >= self.mat.shape[0]:
                grown = np.zeros((self.mat.shape[0] * 2, self.dim), dtype=np.float32)
                grown[:i] = self.mat[:i]
                self.mat = grown
            self.ids.append(id_)
            self.pos[id_] = i
        self.mat[i] = vec

    def remove(self, id_: str) -> bool:
        i = self.pos.pop(id_, None)
        if i is None:
            return False
        last = len(self.ids) - 1
        if i != last:
            moved = self.ids[last]
            self.mat[i] = self.mat[last]
            self.ids[i] = moved
            self.pos[moved] = i
        self.ids.pop()
        return True

    def search(self, q: np.ndarray, k: int, allowed: Allowed | None) -> list[tuple[str, float]]:
        n = len(self.ids)
        if n == 0:
            return []
        sims = self.mat[:n] @ q  # BLAS; releases the GIL
        return _top_exact(sims, self.ids, k, allowed, None)


@dataclass
class _Segment:
    """An immutable set of vectors (sealed, or frozen while its graph builds) plus tombstones."""

    name: str
    ids: list[str]
    # The segment's vectors in row order. None once a loaded graph holds them: pynndescent keeps
    # its own copy (`_raw_data`, rows in the graph's order), and one copy of 100k x 384 floats is
    # 150 MB; `inv_order` maps a segment row to its row there.
    vectors: np.ndarray | None
    alive: np.ndarray
    pos: dict[str, int]
    graph_blob: bytes | None = None  # pickled NNDescent, unpickled lazily
    graph: Any = None
    state: str = "exact"  # exact | building | lazy | loading | ready
    recall: float = 1.0
    build_seconds: float = 0.0
    # The graph search setting its recall was measured with (None: the index's defaults).
    search_epsilon: float | None = None
    search_k_factor: float | None = None
    persisted: bool = False
    qlock: threading.Lock = field(default_factory=threading.Lock)
    inv_order: np.ndarray | None = None

    # --- vectors, wherever they live -----------------------------------------------------------
    def row_vectors(self, rows: np.ndarray) -> np.ndarray:
        """The vectors of the given segment rows (a copy)."""
        v = self.vectors  # read once: the graph loader may hand them over concurrently
        out: np.ndarray
        if v is not None:
            out = v[rows]
            return out
        assert self.inv_order is not None
        raw: np.ndarray = self.graph._raw_data
        out = raw[self.inv_order[rows]]
        return out

    def vector(self, row: int) -> np.ndarray:
        out: np.ndarray = self.row_vectors(np.array([row]))[0]
        return out

    def all_sims(self, q: np.ndarray) -> np.ndarray:
        """Similarity of q to every row, in row order."""
        v = self.vectors
        if v is not None:
            direct: np.ndarray = v @ q
            return direct
        assert self.inv_order is not None
        sims: np.ndarray = (self.graph._raw_data @ q)[self.inv_order]
        return sims

    def full_vectors(self) -> np.ndarray:
        v = self.vectors
        return v if v is not None else self.row_vectors(np.arange(len(self.ids)))

    def share_vectors_with(self, graph: Any) -> bool:
        """Drop our copy of the vectors when the graph holds the same ones (checked)."""
        v = self.vectors
        raw = getattr(graph, "_raw_data", None)
        order = getattr(graph, "_vertex_order", None)
        if v is None or not isinstance(raw, np.ndarray) or order is None:
            return False
        if raw.dtype != np.float32 or raw.shape != v.shape or len(order) != len(v):
            return False
        inv = np.argsort(np.asarray(order)).astype(np.int32)
        probe = np.unique(np.linspace(0, len(v) - 1, num=min(len(v), 64)).astype(np.int64))
        if not np.allclose(raw[inv[probe]], v[probe], atol=1e-5):
            return False
        self.inv_order = inv  # before the vectors go: readers that see None need it
        self.vectors = None
        return True

    @classmethod
    def create(cls, name: str, ids: list[str], vectors: np.ndarray, state: str) -> _Segment:
        return cls(
            name=name,
            ids=ids,
            vectors=vectors,
            alive=np.ones(len(ids), dtype=bool),
            pos=dict(zip(ids, range(len(ids)), strict=True)),
            state=state,
        )

    @property
    def n_alive(self) -> int:
        return int(self.alive.sum())

    @property
    def n_dead(self) -> int:
        return len(self.ids) - self.n_alive

    def is_alive(self, id_: str) -> bool:
        i = self.pos.get(id_)
        return i is not None and bool(self.alive[i])

    def kill(self, id_: str) -> bool:
        i = self.pos.get(id_)
        if i is None or not self.alive[i]:
            return False
        self.alive[i] = False
        return True

    def to_bytes(self) -> bytes:
        """Meta as a pickle, vectors and graph raw after it: loading then reads the vectors in
        place from the snapshot buffer instead of unpickling a copy of 150 MB at 100k."""
        vectors = np.ascontiguousarray(self.full_vectors(), dtype="<f4")
        graph = self.graph_blob
        meta = pickle.dumps(
            {
                "version": SNAPSHOT_VERSION,
                "layout": _SEGMENT_LAYOUT,
                "ids": self.ids,
                "shape": vectors.shape,
                "graph_bytes": None if graph is None else len(graph),
                "recall": self.recall,
                "build_seconds": self.build_seconds,
                "search_epsilon": self.search_epsilon,
                "search_k_factor": self.search_k_factor,
            },
            protocol=pickle.HIGHEST_PROTOCOL,
        )
        head = _SEGMENT_HEAD.pack(_SEGMENT_MAGIC, len(meta))
        pad = b"\0" * (-(len(head) + len(meta)) % 64)
        return b"".join((head, meta, pad, vectors.data.cast("B"), graph or b""))

    @classmethod
    def from_bytes(cls, name: str, data: bytes | bytearray) -> _Segment:
        if data[:4] != _SEGMENT_MAGIC:
            return cls._from_pickle(name, data)
        view = memoryview(data)
        _, meta_len = _SEGMENT_HEAD.unpack_from(view)
        start = _SEGMENT_HEAD.size
        d = pickle.loads(view[start : start + meta_len])
        if d.get("version") != SNAPSHOT_VERSION or d.get("layout") != _SEGMENT_LAYOUT:
            raise ValueError(f"unsupported vector segment snapshot {d.get('version')}/{d.get('layout')}")
        offset = start + meta_len
        offset += -offset % 64
        n, dim = d["shape"]
        # A view into the snapshot buffer (read-only when it is `bytes`): segments never write
        # their vectors.
        vectors = np.frombuffer(view, dtype="<f4", count=n * dim, offset=offset).reshape(n, dim)
        offset += n * dim * 4
        graph = d["graph_bytes"]
        blob = None if graph is None else bytes(view[offset : offset + graph])
        return cls._from_meta(name, d, vectors, blob)

    @classmethod
    def _from_pickle(cls, name: str, data: bytes | bytearray) -> _Segment:
        d = pickle.loads(data)  # the first layout: one pickle of numpy + bytes
        if d.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"unsupported vector segment snapshot version {d.get('version')}")
        return cls._from_meta(name, d, np.asarray(d["vectors"], dtype=np.float32), d["graph"])

    @classmethod
    def _from_meta(cls, name: str, d: dict[str, Any], vectors: np.ndarray, graph_blob: bytes | None) -> _Segment:
        seg = cls.create(name, list(d["ids"]), vectors, "exact")
        seg.graph_blob = graph_blob
        seg.state = "lazy" if graph_blob is not None else "exact"
        seg.recall = float(d.get("recall", 1.0))
        seg.build_seconds = float(d.get("build_seconds", 0.0))
        seg.search_epsilon = d.get("search_epsilon")
        seg.search_k_factor = d.get("search_k_factor")
        seg.persisted = True
        return seg

    def search(
        self,
        q: np.ndarray,
        k: int,
        allowed: Allowed | None,
        epsilon: float,
        k_factor: float = 2.0,
    ) -> list[tuple[str, float]]:
        n = len(self.ids)
        if n == 0 or k <= 0:
            return []
        graph = self.graph if self.state == "ready" else None
        if graph is not None:
            epsilon = self.search_epsilon or epsilon
            k_factor = self.search_k_factor or k_factor
            n_dead = self.n_dead
            # Oversample so that tombstones and the filter still leave k results in most cases.
            base = max(k, int(k * k_factor))
            kk = base + n_dead if allowed is None else 2 * base + n_dead
            if kk < n // 2:
                with self.qlock:
                    idx, _ = graph.query(q[None, :], k=kk, epsilon=epsilon)
                rows = idx[0][idx[0] >= 0]
                rows = rows[self.alive[rows]]
                sims = self.row_vectors(rows) @ q
                order = np.argsort(-sims, kind="stable")
                out: list[tuple[str, float]] = []
                for j in order:
                    id_ = self.ids[int(rows[j])]
                    if allowed is None or allowed(id_):
                        out.append((id_, float(sims[j])))
                        if len(out) >= k:
                            return out
                # Too few: the graph cannot prove there are no more, so search exactly.
        sims = self.all_sims(q)
        return _top_exact(sims, self.ids, k, allowed, self.alive)


class VectorIndex(SegmentedIndex[_Segment]):
    """The vectors of one agent. See the module docstring for the design."""

    kind = "vec"

    def __init__(
        self,
        agent_id: str,
        dim: int,
        snapshots: SnapshotStore,
        builder: IndexBuilder,
        seal_threshold: int = 20000,
        *,
        search_epsilon: float | None = None,
        compact_dead_fraction: float = 0.25,
        build_params: BuildParams | None = None,
    ) -> None:
        super().__init__(agent_id, snapshots, max(2, seal_threshold), compact_dead_fraction)
        self.dim = dim
        self.builder = builder
        self.build_params = build_params
        params = build_params or builder.params
        self.search_epsilon = params.search_epsilon if search_epsilon is None else search_epsilon
        # The graph is asked for k * factor candidates, re-ranked by exact similarity.
        self.search_k_factor = params.search_k_factor
        self._mutable = _Mutable(dim, capacity=min(self.seal_threshold, 1024))
        self.loaded = False

    # --- writes ------------------------------------------------------------------------------
    def add(self, ids: list[str], vectors: np.ndarray) -> None:
        """Upsert: an id that exists anywhere is replaced by the new vector."""
        vecs = _normalise(np.asarray(vectors, dtype=np.float32).reshape(len(ids), self.dim))
        with self._lock:
            for id_, v in zip(ids, vecs, strict=True):
                for seg in self._segments:
                    if seg.kill(id_):
                        self._manifest_dirty = True
                self._mutable.put(id_, v)
            self._mutable_version += 1

    def remove(self, ids: list[str]) -> None:
        with self._lock:
            for id_ in ids:
                if self._mutable.remove(id_):
                    self._mutable_version += 1
                    continue
                for seg in self._segments:
                    if seg.kill(id_):
                        self._manifest_dirty = True

    # --- reads -------------------------------------------------------------------------------
    def __len__(self) -> int:
        with self._lock:
            return len(self._mutable) + sum(s.n_alive for s in self._segments)

    def live_ids(self) -> set[str]:
        """Every id with a live vector (one pass, for loading)."""
        from itertools import compress

        with self._lock:
            out = set(self._mutable.ids)
            for s in self._segments:
                out.update(compress(s.ids, s.alive.tolist()))
            return out

    def contains(self, id_: str) -> bool:
        with self._lock:
            return id_ in self._mutable.pos or any(s.is_alive(id_) for s in self._segments)

    def vector(self, id_: str) -> np.ndarray | None:
        """The live vector of id_ (a copy), or None."""
        with self._lock:
            i = self._mutable.pos.get(id_)
            if i is not None:
                mine: np.ndarray = self._mutable.mat[i].copy()
                return mine
            segments = list(self._segments)
        for seg in segments:
            row = seg.pos.get(id_)
            if row is not None and seg.alive[row]:
                return np.array(seg.vector(row), dtype=np.float32)
        return None

    def search(self, query: np.ndarray, k: int, allowed: Allowed | None = None) -> list[tuple[str, float]]:
        """Top k (id, cosine similarity), best first. With `allowed`, never fewer than exist."""
        if k <= 0:
            return []
        q = _normalise(np.asarray(query, dtype=np.float32).reshape(self.dim))
        with self._lock:
            hits = self._mutable.search(q, k, allowed)
            segments = list(self._segments)
        for seg in segments:
            if seg.state == "lazy":
                self._start_graph_load(seg)
            hits.extend(seg.search(q, k, allowed, self.search_epsilon, self.search_k_factor))
        if len(segments) == 0:
            return hits[:k]
        best: dict[str, float] = {}
        for (
            id_,
            s,
        ) in hits:  # an id being upserted concurrently may briefly appear twice
            if s > best.get(id_, -np.inf):
                best[id_] = s
        return sorted(best.items(), key=lambda t: -t[1])[:k]

    def stats(self) -> dict[str, Any]:
        with self._lock:
            segs = list(self._segments)
            mutable = len(self._mutable)
        return {
            "agent_id": self.agent_id,
            "dim": self.dim,
            "vectors": mutable + sum(s.n_alive for s in segs),
            "vectors_exact": mutable + sum(s.n_alive for s in segs if s.state not in ("ready", "lazy", "loading")),
            "vectors_indexed": sum(s.n_alive for s in segs if s.state in ("ready", "lazy", "loading")),
            "mutable": mutable,
            "segments": [
                {
                    "name": s.name,
                    "size": len(s.ids),
                    "tombstones": s.n_dead,
                    "state": s.state,
                    "recall": round(s.recall, 4),
                    "build_seconds": round(s.build_seconds, 3),
                }
                for s in segs
            ],
            "tombstones": sum(s.n_dead for s in segs),
            "builds_pending": sum(1 for s in segs if s.state == "building"),
        }

    # --- persistence -------------------------------------------------------------------------
    def load(
        self,
        vectors_for_mutable: Iterable[tuple[str, np.ndarray]],
        authoritative: bool = False,
    ) -> None:
        """Open the index: sealed segments from snapshots, everything else from the caller.

        The caller may pass every live (id, vector) of the agent (simplest) or only those that
        are not in a sealed segment: ids whose vector equals the sealed one are skipped, changed
        ones replace it. With authoritative=True the caller's set is the complete live set and
        sealed ids missing from it are tombstoned (deletes that happened after the last
        maintenance). Otherwise persisted tombstones are what removes them.
        """
        seq, segments = self._read_manifest()
        mutable = _Mutable(self.dim, capacity=min(self.seal_threshold, 1024))
        self._load_mutable_snapshot(mutable, segments)
        seen: set[str] = set()
        for id_, vec in vectors_for_mutable:
            v = _normalise(np.asarray(vec, dtype=np.float32).reshape(self.dim))
            seen.add(id_)
            in_sealed = False
            for seg in segments:
                i = seg.pos.get(id_)
                if i is not None and seg.alive[i]:
                    if np.allclose(seg.vector(i), v, atol=1e-5):
                        in_sealed = True
                    else:
                        seg.alive[i] = False
            if not in_sealed:
                mutable.put(id_, v)
        if authoritative:
            self._tombstone_missing(segments, seen)
        with self._lock:
            self._segments = segments
            self._mutable = mutable
            self._seq = max(seq, self._seq)
            self._manifest_dirty = True
            self._mutable_version += 1
            self.loaded = True

    def _segment_from_bytes(self, name: str, data: bytes | bytearray) -> _Segment:
        return _Segment.from_bytes(name, data)

    def _load_mutable_snapshot(self, mutable: _Mutable, segments: list[_Segment]) -> None:
        """Fill `mutable` from the snapshot of the mutable segment (one get + frombuffer).
        Ids alive in a sealed segment are skipped (sealed after the snapshot was taken)."""
        raw = self.snapshots.get(self._mutable_name())
        if raw is None:
            return
        try:
            d = pickle.loads(raw)
            if d.get("version") != SNAPSHOT_VERSION or int(d.get("dim", -1)) != self.dim:
                return
            ids = list(d["ids"])
            vecs = np.frombuffer(d["vectors"], dtype="<f4").reshape(len(ids), self.dim)
        except Exception:
            log.warning("mutable vector snapshot of %s unreadable; vectors come from storage", self.agent_id)
            return
        sealed = self._alive_in(segments, ids)
        keep = [i for i, id_ in enumerate(ids) if id_ not in sealed] if sealed else list(range(len(ids)))
        if len(keep) != len(ids):
            ids = [ids[i] for i in keep]
            vecs = vecs[keep]
        mutable.mat = np.zeros((max(16, len(ids), min(self.seal_threshold, 1024)), self.dim), dtype=np.float32)
        mutable.mat[: len(ids)] = vecs
        mutable.ids = ids
        mutable.pos = dict(zip(ids, range(len(ids)), strict=True))

    def mutable_ids(self) -> list[str]:
        with self._lock:
            return list(self._mutable.ids)

    def _mutable_state(self) -> tuple[list[str], np.ndarray]:
        m = self._mutable
        return list(m.ids), m.mat[: len(m)].astype("<f4", copy=True)

    def _mutable_snapshot(self, state: tuple[list[str], np.ndarray]) -> tuple[bytes, bool]:
        """The mutable segment as one snapshot (ids + float32 matrix), so an agent loads with
        one get instead of one read and decrypt per vector. Float32 barely compresses."""
        ids, mat = state
        blob = pickle.dumps(
            {"version": SNAPSHOT_VERSION, "dim": self.dim, "ids": ids, "vectors": mat.tobytes()},
            protocol=pickle.HIGHEST_PROTOCOL,
        )
        return blob, False

    def _clear(self) -> None:
        self._mutable = _Mutable(self.dim)
        self._mutable_version += 1

    # --- lazy graph loading --------------------------------------------------------------------
    def _start_graph_load(self, seg: _Segment) -> None:
        with self._lock:
            if seg.state != "lazy":
                return
            seg.state = "loading"
        threading.Thread(target=self._load_graph, args=(seg,), name="engram-graph-load", daemon=True).start()

    def _load_graph(self, seg: _Segment) -> None:
        try:
            assert seg.graph_blob is not None
            from .index_worker import unpack_graph

            graph = unpack_graph(seg.graph_blob, seg.full_vectors())
            q = seg.vector(0)
            with seg.qlock:
                graph.query(q[None, :], k=1, epsilon=self.search_epsilon)  # first query: warm
            seg.graph = graph
            seg.graph_blob = None  # persisted already; the loaded graph is all that is needed now
            seg.share_vectors_with(graph)
            seg.state = "ready"
        except Exception:
            log.exception("vector graph for %s failed to load; searching it exactly", seg.name)
            seg.state = "exact"

    def wait_ready(self, timeout: float = 120.0) -> bool:
        """Block until every segment's graph is loaded or built (tests, warm-up)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                segs = list(self._segments)
            for s in segs:
                if s.state == "lazy":
                    self._start_graph_load(s)
            if all(s.state in ("ready", "exact") for s in segs):
                return True
            time.sleep(0.02)
        return False

    # --- background maintenance ----------------------------------------------------------------
    def _seal_if_full(self) -> None:
        """Freeze the whole mutable segment at once, cut into n // seal_threshold segments of
        equal size (a bulk load of 100k gives five 20k segments in one round, not one a round,
        and no segment is bigger than 2x the threshold); build their graphs one after another."""
        with self._lock:
            if len(self._mutable) < self.seal_threshold:
                return
            m = self._mutable
            n = len(m)
            parts = n // self.seal_threshold
            bounds = [n * i // parts for i in range(parts + 1)]
            frozen = [
                _Segment.create(self._next_name(), list(m.ids[a:b]), m.mat[a:b].copy(), "building")
                for a, b in itertools.pairwise(bounds)
            ]
            self._segments.extend(frozen)
            self._mutable = _Mutable(self.dim, capacity=min(self.seal_threshold, 1024))
            self._mutable_version += 1
        for seg in frozen:
            self._build_into(seg, seg.full_vectors())

    def _build_into(self, seg: _Segment, vectors: np.ndarray) -> None:
        """Build seg's graph outside the lock, persist the segment, then mark it searchable."""
        try:
            result = self.builder.build(vectors, self.build_params)
            seg.graph_blob = result.graph
            seg.recall = result.recall
            seg.build_seconds = result.build_seconds
            seg.search_epsilon = result.search_epsilon
            seg.search_k_factor = result.search_k_factor
            if result.graph is None:
                log.warning(
                    "segment %s: graph recall too low (%s); exact search",
                    seg.name,
                    result.notes,
                )
        except BuildAborted:
            # Shutdown: the segment stays unsealed (searched exactly until then); its vectors are
            # in storage and the next start seals them again.
            log.info("index build of %s abandoned for the shutdown", seg.name)
            return
        except Exception:
            log.exception("graph build failed for %s; it is searched exactly", seg.name)
            seg.graph_blob = None
        self.snapshots.put(seg.name, seg.to_bytes(), compress=False)  # float32 barely compresses
        with self._lock:
            seg.persisted = True
            seg.state = "lazy" if seg.graph_blob is not None else "exact"
            self._manifest_dirty = True
        self._write_manifest()
        if seg.graph_blob is not None:
            self._load_graph(seg)  # already on a background thread: load it now

    def _compact(self) -> None:
        with self._lock:
            victims = [
                s
                for s in self._segments
                if s.state in ("ready", "lazy", "exact")
                and s.persisted
                and len(s.ids) > 0
                and s.n_dead / len(s.ids) >= self.compact_dead_fraction
            ]
        for seg in victims:
            with self._lock:
                if seg not in self._segments:
                    continue
                rows = np.flatnonzero(seg.alive)
                if len(rows) < self.seal_threshold // 2:
                    # Small remainder: fold it back into the mutable segment (no build needed).
                    for i, vec in zip(rows.tolist(), seg.row_vectors(rows), strict=True):
                        self._mutable.put(seg.ids[i], vec)
                    self._mutable_version += 1
                    self._segments.remove(seg)
                    self._manifest_dirty = True
                    replacement = None
                else:
                    replacement = _Segment.create(
                        self._next_name(),
                        [seg.ids[i] for i in rows],
                        seg.row_vectors(rows),
                        "building",
                    )
                    # Swap now: the replacement is searched exactly until its graph is ready.
                    self._segments[self._segments.index(seg)] = replacement
                    replacement.alive[:] = seg.alive[rows]
            if replacement is None:
                self._write_manifest()
                self.snapshots.delete(seg.name)
                continue
            self._build_into(replacement, replacement.full_vectors())
            self.snapshots.delete(seg.name)
