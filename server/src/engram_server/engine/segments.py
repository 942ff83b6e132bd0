"""What the vector and the keyword index share: a growing (mutable) part plus sealed segments,
kept as snapshots under one prefix per agent and index.

* `<prefix>manifest`: the sealed segments by name, the tombstones of each (ids deleted since it
  was sealed) and the last segment number;
* `<prefix>seg/<number>`: one sealed segment;
* `<prefix>mutable`: the growing part, so that an agent loads without reading every record.

`SegmentedIndex` owns the names, the manifest, the locks and the maintenance rounds; each index
says how its segments are read, sealed and compacted, and what its mutable snapshot holds.
"""

from __future__ import annotations

import logging
import pickle
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import numpy as np

log = logging.getLogger(__name__)

SNAPSHOT_VERSION = 1


class SnapshotStore(Protocol):
    """Opaque named blobs, durable. The storage layer encrypts them; tests use a dict."""

    def get(self, name: str) -> bytes | bytearray | None: ...
    def put(self, name: str, data: bytes, compress: bool = True) -> None: ...
    def delete(self, name: str) -> None: ...
    def names(self, prefix: str) -> list[str]: ...


class DictSnapshotStore:
    """In-memory SnapshotStore (tests, benchmarks)."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> bytes | None:
        with self._lock:
            return self.data.get(name)

    def put(self, name: str, data: bytes, compress: bool = True) -> None:
        with self._lock:
            self.data[name] = bytes(data)

    def delete(self, name: str) -> None:
        with self._lock:
            self.data.pop(name, None)

    def names(self, prefix: str) -> list[str]:
        with self._lock:
            return sorted(n for n in self.data if n.startswith(prefix))


class Segment(Protocol):
    """A sealed segment as this module sees it: ids by row, and which rows are alive."""

    name: str
    ids: list[str]
    pos: dict[str, int]
    alive: np.ndarray
    persisted: bool


S = TypeVar("S", bound=Segment)


class SegmentedIndex(ABC, Generic[S]):
    kind: ClassVar[str]  # the snapshots' prefix: "vec" or "kw"

    def __init__(
        self, agent_id: str, snapshots: SnapshotStore, seal_threshold: int, compact_dead_fraction: float
    ) -> None:
        self.agent_id = agent_id
        self.snapshots = snapshots
        self.seal_threshold = seal_threshold
        self.compact_dead_fraction = compact_dead_fraction
        self._prefix = f"{self.kind}/{agent_id}/"
        self._lock = threading.RLock()  # the segment list and the mutable part
        self._maint_lock = threading.Lock()  # one maintenance or persist round at a time
        self._segments: list[S] = []
        self._seq = 0
        self._manifest_dirty = False
        self._mutable_version = 0  # bumped on every change of the mutable part
        self._mutable_persisted = -1  # the version the mutable snapshot holds

    # --- what each index provides --------------------------------------------------------------
    @abstractmethod
    def _segment_from_bytes(self, name: str, data: bytes | bytearray) -> S: ...
    @abstractmethod
    def _seal_if_full(self) -> None: ...
    @abstractmethod
    def _compact(self) -> None: ...
    @abstractmethod
    def _mutable_state(self) -> Any:
        """What the mutable snapshot is made of, taken under the lock (cheap: a copy of refs)."""

    @abstractmethod
    def _mutable_snapshot(self, state: Any) -> tuple[bytes, bool]:
        """The snapshot's bytes and whether to compress them, outside the lock."""

    @abstractmethod
    def _clear(self) -> None:
        """Forget the mutable part and every derived count (under the lock; drop)."""

    # --- names ---------------------------------------------------------------------------------
    def _manifest_name(self) -> str:
        return self._prefix + "manifest"

    def _mutable_name(self) -> str:
        return self._prefix + "mutable"

    def _next_name(self) -> str:
        """A new segment's name (caller holds the lock)."""
        self._seq += 1
        return f"{self._prefix}seg/{self._seq:08d}"

    # --- loading -------------------------------------------------------------------------------
    def _read_manifest(self) -> tuple[int, list[S]]:
        """The last segment number and the sealed segments, their tombstones applied. A segment
        whose snapshot is missing is left out: its entries are still in storage, and the caller
        passes them to the mutable part."""
        raw = self.snapshots.get(self._manifest_name())
        if raw is None:
            return 0, []
        manifest = pickle.loads(raw)
        segments: list[S] = []
        for name in manifest.get("segments", []):
            data = self.snapshots.get(name)
            if data is None:
                log.warning("%s segment snapshot %s missing; its entries come from storage", self.kind, name)
                continue
            seg = self._segment_from_bytes(name, data)
            for id_ in manifest.get("tombstones", {}).get(name, []):
                i = seg.pos.get(id_)
                if i is not None:
                    seg.alive[i] = False
            segments.append(seg)
        return int(manifest.get("seq", 0)), segments

    @staticmethod
    def _tombstone_missing(segments: list[S], seen: set[str]) -> None:
        """A load with the complete live set: sealed ids not in it were deleted meanwhile."""
        for seg in segments:
            for i, id_ in enumerate(seg.ids):
                if seg.alive[i] and id_ not in seen:
                    seg.alive[i] = False

    @staticmethod
    def _alive_in(segments: list[S], ids: Iterable[str]) -> set[str]:
        """Those of ids alive in a sealed segment. Usually none: only a seal after the mutable
        snapshot was taken makes one, so intersect first."""
        mine = set(ids)
        return {i for seg in segments for i in mine.intersection(seg.pos) if seg.alive[seg.pos[i]]}

    # --- persistence ---------------------------------------------------------------------------
    def _write_manifest(self) -> None:
        with self._lock:
            segs = [s for s in self._segments if s.persisted]
            manifest = {
                "version": SNAPSHOT_VERSION,
                "seq": self._seq,
                "segments": [s.name for s in segs],
                "tombstones": {s.name: [s.ids[i] for i in np.flatnonzero(~s.alive)] for s in segs},
            }
            self._manifest_dirty = False
        self.snapshots.put(self._manifest_name(), pickle.dumps(manifest, protocol=pickle.HIGHEST_PROTOCOL))

    def _persist_mutable(self) -> None:
        """Write the mutable snapshot when the mutable part changed since the last one."""
        with self._lock:
            version = self._mutable_version
            if version == self._mutable_persisted:
                return
            state = self._mutable_state()
        blob, compress = self._mutable_snapshot(state)
        self.snapshots.put(self._mutable_name(), blob, compress=compress)
        with self._lock:
            self._mutable_persisted = version

    def drop(self) -> None:
        """Delete every snapshot of this agent (agent deletion)."""
        for name in self.snapshots.names(self._prefix):
            self.snapshots.delete(name)
        with self._lock:
            self._segments = []
            self._clear()

    # --- background maintenance ----------------------------------------------------------------
    def maintenance(self) -> None:
        """Seal, compact, persist. Safe to call often; concurrent calls return immediately."""
        if not self._maint_lock.acquire(blocking=False):
            return
        try:
            self._seal_if_full()
            self._compact()
            if self._manifest_dirty:
                self._write_manifest()
            self._persist_mutable()
        finally:
            self._maint_lock.release()

    def persist(self, timeout: float = 30.0) -> bool:
        """Write the manifest (tombstones) and the mutable snapshot, without sealing or
        compacting (shutdown). False when a maintenance round held the index past timeout."""
        if not self._maint_lock.acquire(timeout=timeout):
            return False
        try:
            if self._manifest_dirty:
                self._write_manifest()
            self._persist_mutable()
            return True
        finally:
            self._maint_lock.release()
