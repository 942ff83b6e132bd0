"""Builds sealed vector-segment graphs in a long-lived worker process.

Why a separate process: pynndescent's NNDescent build is numba code that is compiled on the first
build in every process (tens of seconds, not cacheable) and holds the GIL while it runs. The
serving process must neither wait for that compile nor stall on the GIL, so builds go to one
spawned worker that stays alive (the compile is paid once per server run, ideally at start via
`warm_up()`). The worker returns a prepared NNDescent (pickled without its vectors, see
`pack_graph`) plus a recall report; the serving process only ever unpickles and queries
(pynndescent's search functions are disk-cached numba code: no compile at query time).

Recall guard: pynndescent can produce a poorly connected graph on tightly clustered data. Each
build measures recall@10 of the graph against exact search on a sample of perturbed data points;
below `min_recall` it rebuilds with more neighbours, and if that still fails the segment is
marked exact-only (graph None) so search falls back to numpy over the segment's vectors.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import pickle
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


class BuildAborted(Exception):
    """The builder was closed (shutdown) while a build waited or ran: nothing was built."""


@dataclass(frozen=True)
class BuildParams:
    """Graph construction and the search settings its recall is checked with."""

    n_neighbors: int = 30
    search_epsilon: float = 0.3  # pynndescent query epsilon used by VectorIndex.search
    search_k: int = 10
    search_k_factor: float = 2.0  # the graph is asked for k * factor, re-ranked exactly
    # eps 0.3 x2: recall@10 0.992-0.997 at 100k in 5 segments; eps 0.2 x1: 0.92-0.97 (vector_tune.py)
    min_recall: float = 0.95
    # Wider searches tried, cheapest first, when the default one misses min_recall: a graph of
    # tightly clustered vectors usually needs a wider beam, not an exact-search fallback (which
    # costs a full scan of the segment per query). The segment keeps the setting that passed.
    wider_searches: tuple[tuple[float, float], ...] = ((0.5, 3.0), (0.8, 4.0))
    sample_size: int = 200
    max_attempts: int = 3  # each retry multiplies n_neighbors by 1.5
    n_jobs: int = 1  # threads for the build; the serving process keeps the other cores
    random_state: int = 42


@dataclass
class BuildResult:
    graph: bytes | None  # pack_graph of a prepared NNDescent; None = use exact search for this segment
    recall: float  # measured recall@search_k vs exact on the sample (1.0 for exact-only)
    build_seconds: float
    n_neighbors: int
    attempts: int
    notes: list[str] = field(default_factory=list)
    search_epsilon: float | None = None  # the search setting the recall was reached with
    search_k_factor: float | None = None


def _sample_queries(vectors: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    # Perturbed data points: like real queries, they are near but not on indexed vectors.
    idx = rng.choice(vectors.shape[0], size=min(n, vectors.shape[0]), replace=False)
    q = vectors[idx] + rng.normal(0.0, 0.03, size=(len(idx), vectors.shape[1])).astype(np.float32)
    q /= np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
    out: np.ndarray = q.astype(np.float32)
    return out


def graph_recall(
    index: Any, vectors: np.ndarray, queries: np.ndarray, k: int, epsilon: float, k_factor: float = 1.0
) -> float:
    """recall@k against exact search, searching as VectorIndex does: the graph returns
    k * k_factor candidates, which are re-ranked by their exact similarity."""
    k = min(k, vectors.shape[0])
    kk = min(vectors.shape[0], max(k, int(k * k_factor)))
    sims = queries @ vectors.T
    exact = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    got, _ = index.query(queries, k=kk, epsilon=epsilon)
    hits = 0
    for row, g, e in zip(sims, got, exact, strict=True):
        cand = g[g >= 0]
        top = cand[np.argsort(-row[cand])[:k]]
        hits += len(set(map(int, top)) & set(map(int, e)))
    return hits / float(k * len(queries))


def build_graph(vectors: np.ndarray, params: BuildParams) -> BuildResult:
    """Build, check and pickle one segment graph. Runs inside the worker process."""
    import pynndescent

    t0 = time.perf_counter()
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    rng = np.random.default_rng(params.random_state)
    queries = _sample_queries(vectors, params.sample_size, rng)
    n_neighbors = params.n_neighbors
    notes: list[str] = []
    searches = ((params.search_epsilon, params.search_k_factor), *params.wider_searches)
    best: tuple[float, Any, int, float, float] | None = None
    for attempt in range(1, params.max_attempts + 1):
        index = pynndescent.NNDescent(
            vectors,
            metric="dot",  # vectors are L2-normalised: dot == cosine
            n_neighbors=min(n_neighbors, vectors.shape[0] - 1),
            random_state=params.random_state + attempt,
            n_jobs=params.n_jobs,
            low_memory=True,
            compressed=False,
        )
        index.prepare()
        for epsilon, k_factor in searches:
            recall = graph_recall(index, vectors, queries, params.search_k, epsilon, k_factor)
            notes.append(f"attempt {attempt}: n_neighbors={n_neighbors} eps={epsilon} x{k_factor} recall={recall:.3f}")
            if best is None or recall > best[0]:
                best = (recall, index, n_neighbors, epsilon, k_factor)
            if recall >= params.min_recall:
                break
        if best is not None and best[0] >= params.min_recall:
            break
        n_neighbors = int(n_neighbors * 1.5)
    assert best is not None
    recall, index, used, epsilon, k_factor = best
    if recall < params.min_recall:
        notes.append("recall below threshold: segment falls back to exact search")
        return BuildResult(None, 1.0, time.perf_counter() - t0, used, len(notes), notes)
    # Drop build-only state that the query path never reads (smaller snapshots).
    for attr in ("_neighbor_graph", "_rp_forest"):
        if hasattr(index, attr):
            delattr(index, attr)
    blob = pack_graph(index)
    return BuildResult(blob, recall, time.perf_counter() - t0, used, len(notes), notes, epsilon, k_factor)


CLOSE_POLL_SECONDS = 0.2  # how soon a build notices that the builder was closed
_GRAPH_FORMAT = "engram-nndescent-v2"


def pack_graph(index: Any) -> bytes:
    """The prepared index's state without its copy of the vectors (`_raw_data`, rows in the
    graph's own order): the segment snapshot stores the vectors already, so keeping them twice
    doubled the snapshot and the bytes read and decrypted at load."""
    state = index.__getstate__()
    state.pop("_raw_data", None)
    return pickle.dumps({"format": _GRAPH_FORMAT, "state": state}, protocol=pickle.HIGHEST_PROTOCOL)


def unpack_graph(blob: bytes, vectors: np.ndarray) -> Any:
    """An NNDescent from pack_graph's bytes and the segment's vectors (in segment row order).
    Also reads the earlier format, a whole pickled NNDescent."""
    obj = pickle.loads(blob)  # imports pynndescent on first use
    if not (isinstance(obj, dict) and obj.get("format") == _GRAPH_FORMAT):
        return obj
    from pynndescent import NNDescent

    state = obj["state"]
    order = np.asarray(state["_vertex_order"])
    if len(order) != len(vectors):
        raise ValueError(f"graph has {len(order)} vertices, segment {len(vectors)} vectors")
    state["_raw_data"] = np.ascontiguousarray(vectors[order], dtype=np.float32)
    index = NNDescent.__new__(NNDescent)
    index.__setstate__(state)
    return index


def _init_worker(numba_cache_dir: str | None, threads: int) -> None:
    if numba_cache_dir:
        os.environ.setdefault("NUMBA_CACHE_DIR", numba_cache_dir)
    os.environ["NUMBA_NUM_THREADS"] = str(max(1, threads))
    with contextlib.suppress(OSError):  # builds are background work: yield the CPU to requests
        os.nice(5)


def _warm(dim: int) -> float:
    """Compile the build path on a tiny random set so the first real seal is not delayed."""
    t0 = time.perf_counter()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((400, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    build_graph(x, BuildParams(sample_size=20, max_attempts=1))
    return time.perf_counter() - t0


class IndexBuilder:
    """Client side of the build worker. Thread-safe; `build` blocks its calling thread only."""

    def __init__(
        self,
        params: BuildParams | None = None,
        numba_cache_dir: Path | None = None,
        threads: int = 1,
    ) -> None:
        self.params = params or BuildParams(n_jobs=threads)
        self._numba_cache_dir = str(numba_cache_dir) if numba_cache_dir else None
        self._threads = threads
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None
        self._closed = False
        self.builds = 0
        self.pending = 0
        self.last_build_seconds = 0.0

    def _get_pool(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._closed:
                raise BuildAborted("the index builder is closed")
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    max_workers=1,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_init_worker,
                    initargs=(self._numba_cache_dir, self._threads),
                )
            return self._pool

    def warm_up(self, dim: int = 384) -> None:
        """Start the worker and compile the build code in the background (returns at once)."""
        self._get_pool().submit(_warm, dim)

    def build(self, vectors: np.ndarray, params: BuildParams | None = None) -> BuildResult:
        """Build one segment graph in the worker; blocks the caller until done."""
        p = params or self.params
        with self._lock:
            self.pending += 1
        try:
            for attempt in range(2):  # one retry if the worker died (e.g. killed for memory)
                pool = self._get_pool()
                try:
                    result: BuildResult = self._wait(pool, pool.submit(build_graph, vectors, p))
                    break
                except BrokenProcessPool:
                    with self._lock:
                        if self._closed:
                            raise BuildAborted("the index builder was closed during a build") from None
                        if self._pool is pool:
                            self._pool = None
                    if attempt == 1:
                        raise
            self.builds += 1
            self.last_build_seconds = result.build_seconds
            return result
        finally:
            with self._lock:
                self.pending -= 1

    def _wait(self, pool: ProcessPoolExecutor, fut: Future[BuildResult]) -> BuildResult:
        """The build's result; BuildAborted as soon as the builder is closed. A worker that was
        still being spawned when close() ran is not in the pool's process table yet, so close()
        could not end it: it is ended here, once it is there."""
        while True:
            try:
                return fut.result(timeout=CLOSE_POLL_SECONDS)
            except FutureTimeout:
                if self._closed:
                    fut.cancel()
                    _terminate_workers(pool)
                    raise BuildAborted("the index builder was closed during a build") from None

    def close(self) -> None:
        """Stop at once: a build under way is abandoned (its worker is terminated) and raises
        BuildAborted in its caller, so that a shutdown never waits for one. What it would have
        sealed is still in storage and is sealed again after the next start."""
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is None:
            return
        _terminate_workers(pool)
        pool.shutdown(wait=False, cancel_futures=True)


def _terminate_workers(pool: ProcessPoolExecutor) -> None:
    """ProcessPoolExecutor has no public way to stop a running task (terminate_workers comes with
    Python 3.14): end the worker processes themselves; the pool then winds down."""
    processes = getattr(pool, "_processes", None) or {}
    for process in list(processes.values()):
        with contextlib.suppress(Exception):
            process.terminate()
