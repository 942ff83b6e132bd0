"""RocksDB storage (rocksdict): column families, encrypted values, group-committed synced writes.

* Keys are never encrypted and never hold user content: they are built from (quoted) agent ids,
  generated memory ids, version numbers and fixed names. Every value is sealed by `Cipher` with
  (column family, key) as associated data.
* Every acknowledged write is in the WAL and fsynced. Concurrent writers enqueue their batch and
  wait on a future; one writer thread merges everything queued into one synced WriteBatch, so
  N concurrent callers cost about one fsync instead of N.
* Change events (events.py) ride in the batch of the change they describe; their positions are
  assigned when the batch is enqueued, under one lock, so positions follow commit order.
* Opening: an existing directory is first opened read-only to verify the key check value; a wrong
  key raises WrongEncryptionKey before anything is written.
* rocksdict keeps the DB lock while any column-family object, iterator or checkpoint is alive, so
  every such object is owned here and dropped before close().
"""

from __future__ import annotations

import contextlib
import gc
import logging
import queue
import threading
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rocksdict import (
    AccessType,
    BlockBasedOptions,
    Cache,
    Checkpoint,
    DBRecoveryMode,
    Options,
    Rdict,
    ReadOptions,
    WriteBatch,
    WriteOptions,
)

from . import clock
from .crypto import Cipher
from .errors import DataCorrupted, EngineError, FailedPrecondition, WrongEncryptionKey

log = logging.getLogger(__name__)

CF_RECORDS = "records"
CF_VECTORS = "vectors"
CF_SNAPSHOTS = "snapshots"
CF_META = "meta"
CF_LINKS = "links"
CF_HISTORY = "history"
CF_API_KEYS = "api_keys"
CF_ID_INDEX = "id_index"
CF_JOURNAL = "journal"  # per-agent change log since the last catalogue snapshot (ids only)
CF_EVENTS = "events"  # the change stream (events.py): position + agent token -> sealed event
COLUMN_FAMILIES = (
    CF_RECORDS,
    CF_VECTORS,
    CF_SNAPSHOTS,
    CF_META,
    CF_LINKS,
    CF_HISTORY,
    CF_API_KEYS,
    CF_ID_INDEX,
    CF_JOURNAL,
    CF_EVENTS,
)

# The layout of keys and values; engine/migrations.py brings older data directories up to it.
SCHEMA_VERSION = 3
KEY_CHECK = b"key_check"
KEY_SCHEMA = b"schema_version"
KEY_ROTATION = b"key_rotation"  # present while `engram-server rotate-key` is under way (rotation.py)
_CHECK_PLAINTEXT = b"engram-key-check-v1"
# Snapshots are split into chunks: RocksDB handles big values poorly, and a chunk must stay under
# glibc's largest mmap threshold (32 MiB) so that its read, decrypt and free reuse the same heap
# pages. Buffers above it are mapped fresh each time: 32 MiB chunks spent most of an agent's load
# in page faults (copies ran at 1 GB/s, against 20 GB/s for 4 MiB ones).
CHUNK_BYTES = 4 * 1024 * 1024
_MAX_GROUP_BYTES = 64 * 1024 * 1024


def corruption(exc: BaseException, where: str) -> DataCorrupted | None:
    """RocksDB's own checks (block checksums, file sizes, manifest) report corruption as a
    generic error whose message starts with "Corruption"; that error as DataCorrupted."""
    text = str(exc)
    if "Corruption" not in text and "checksum" not in text.lower():
        return None
    return DataCorrupted(f"{where}: RocksDB reports corruption on disk ({text.splitlines()[0][:300]})")


def key_check_plaintext(key_id: str) -> bytes:
    """The key check value: sealed under the data directory's key, it tells a wrong key apart."""
    return _CHECK_PLAINTEXT + b":" + key_id.encode()


@dataclass
class Batch:
    """Writes that commit atomically. Values are sealed when added, in the caller's thread."""

    cipher: Cipher
    ops: list[tuple[int, str, bytes, bytes]] = field(default_factory=list)  # (op, cf, key, value/end)
    nbytes: int = 0
    # Change events (events.py): (key suffix, plaintext); keyed by position when enqueued.
    events: list[tuple[bytes, bytes]] = field(default_factory=list)

    PUT, DELETE, RANGE = 0, 1, 2

    def put(self, cf: str, key: bytes, plaintext: bytes, compress: bool = True) -> None:
        sealed = self.cipher.seal(cf, key, plaintext, compress)
        self.ops.append((self.PUT, cf, key, sealed))
        self.nbytes += len(key) + len(sealed)

    def put_sealed(self, cf: str, key: bytes, sealed: bytes) -> None:
        self.ops.append((self.PUT, cf, key, sealed))
        self.nbytes += len(key) + len(sealed)

    def delete(self, cf: str, key: bytes) -> None:
        self.ops.append((self.DELETE, cf, key, b""))
        self.nbytes += len(key)

    def delete_prefix(self, cf: str, prefix: bytes) -> None:
        """Deletes every key starting with prefix, including keys written by earlier batches
        still in the queue (range deletes apply in commit order)."""
        self.ops.append((self.RANGE, cf, prefix, prefix_end(prefix)))
        self.nbytes += 2 * len(prefix)

    def add_event(self, key_suffix: bytes, plaintext: bytes) -> None:
        self.events.append((key_suffix, plaintext))

    def extend(self, other: Batch) -> None:
        self.ops.extend(other.ops)
        self.nbytes += other.nbytes
        self.events.extend(other.events)

    def __len__(self) -> int:
        return len(self.ops)


def event_key(position: int, suffix: bytes) -> bytes:
    """An event's key: its position (8 bytes, big-endian: key order is position order), then the
    suffix (the agent's token prefix, so a scan can skip other agents' events unopened)."""
    return position.to_bytes(8, "big") + suffix


def event_position_of(key: bytes) -> int:
    return int.from_bytes(key[:8], "big")


def prefix_end(prefix: bytes) -> bytes:
    """The smallest key greater than every key that starts with prefix."""
    p = bytearray(prefix)
    while p and p[-1] == 0xFF:
        p.pop()
    if not p:
        return b"\xff" * (len(prefix) + 8)
    p[-1] += 1
    return bytes(p)


class _GroupCommitter:
    """One thread; merges every queued batch into one synced WriteBatch."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._q: queue.SimpleQueue[tuple[Batch, Future[None]] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="engram-commit", daemon=True)
        self.groups = 0
        self.batches = 0
        self._thread.start()

    def submit(self, batch: Batch) -> Future[None]:
        fut: Future[None] = Future()
        self._q.put((batch, fut))
        return fut

    def stop(self) -> None:
        self._q.put(None)
        self._thread.join()

    def _run(self) -> None:
        while True:
            item = self._q.get()
            if item is None:
                return
            group = [item]
            size = item[0].nbytes
            stop = False
            while size < _MAX_GROUP_BYTES:
                try:
                    nxt = self._q.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                group.append(nxt)
                size += nxt[0].nbytes
            try:
                self._storage._write_now([b for b, _ in group])
                for _, f in group:
                    f.set_result(None)
            except BaseException as exc:
                log.error("storage write failed: %s", type(exc).__name__)
                for _, f in group:
                    f.set_exception(EngineError(f"storage write failed: {type(exc).__name__}"))
            self.groups += 1
            self.batches += len(group)
            if stop:
                return


# Memtables are the bulk of RocksDB's memory: by default each of the column families may hold
# 64 MB (twice, while one flushes) before anything reaches disk, so a long-running server's RSS
# creeps up by hundreds of MB with no leak. A shared budget flushes the fullest family instead.
# The same holds for the block cache: without one given, every column family gets its own.
MEMTABLE_BUDGET_BYTES = 16 << 20  # all column families together
MEMTABLE_BYTES = 8 << 20  # one column family's memtable
BLOCK_CACHE_BYTES = 32 << 20  # shared by all column families


def column_family_options(cache: Cache | None = None) -> Options:
    """A column family's options; `cache` is the block cache shared by the serving database
    (short-lived read-only opens for checks and backups keep RocksDB's default)."""
    opts = Options(raw_mode=True)
    opts.set_write_buffer_size(MEMTABLE_BYTES)
    # Every acknowledged write is synced: only the record being written at a crash may be torn.
    # Anything else wrong in the WAL is corruption, refused at open rather than replayed up to
    # it and silently dropped after it (RocksDB's default, point-in-time recovery).
    opts.set_wal_recovery_mode(DBRecoveryMode.tolerate_corrupted_tail_records())
    opts.set_paranoid_checks(True)
    if cache is not None:
        table = BlockBasedOptions()
        table.set_block_cache(cache)
        opts.set_block_based_table_factory(table)
    return opts


class Storage:
    """The encrypted key-value store. Thread-safe."""

    def __init__(self, path: Path, cipher: Cipher) -> None:
        self.path = Path(path)
        self.cipher = cipher
        self._db: Rdict | None = None
        self._cfs: dict[str, Rdict] = {}
        self._handles: dict[str, Any] = {}
        self._committer: _GroupCommitter | None = None
        self._closed = False
        self._wopts = WriteOptions()
        self._no_fill = ReadOptions()
        self._no_fill.fill_cache(False)  # type: ignore[call-arg]  # the stub omits the flag
        self._wopts.sync = True
        self._event_lock = threading.Lock()
        self.event_position = 0  # the last position given to an event
        self.durable_event_position = 0  # the last position known written
        self.event_listeners: list[Callable[[int], None]] = []  # called with durable positions

    # --- open / close --------------------------------------------------------------------------
    @classmethod
    def open(cls, path: Path, cipher: Cipher, *, rotating: bool = False) -> Storage:
        """Open (or create) the database. `rotating` is for the key rotation tool only: it may
        open a directory whose rotation is unfinished, which everything else refuses."""
        s = cls(path, cipher)
        path = Path(path)
        existing = (path / "CURRENT").exists()
        if existing:
            s._verify_read_only(rotating)
        path.mkdir(parents=True, exist_ok=True)
        cache = Cache(BLOCK_CACHE_BYTES)
        opts = column_family_options(cache)  # the default column family's, plus the database's
        opts.create_if_missing(True)
        opts.create_missing_column_families(True)
        opts.set_keep_log_file_num(5)
        opts.increase_parallelism(2)
        opts.set_db_write_buffer_size(MEMTABLE_BUDGET_BYTES)
        try:
            families = {n: column_family_options(cache) for n in COLUMN_FAMILIES}
            s._db = Rdict(str(path), options=opts, column_families=families)
        except Exception as exc:
            if "lock" in str(exc).lower():
                raise FailedPrecondition(f"data directory {path} is in use by another process") from None
            raise _open_error(path, exc) from None
        for name in COLUMN_FAMILIES:
            s._cfs[name] = s._db.get_column_family(name)
            s._handles[name] = s._db.get_column_family_handle(name)
        s._committer = _GroupCommitter(s)
        last = s.last_key(CF_EVENTS, b"")
        s.event_position = s.durable_event_position = event_position_of(last) if last is not None else 0
        try:
            if not existing or s.get_raw(CF_META, KEY_CHECK) is None:
                s._verify_key_check_absent_or_ok()
                b = s.batch()
                b.put(CF_META, KEY_CHECK, key_check_plaintext(cipher.key_id))
                b.put(CF_META, KEY_SCHEMA, str(SCHEMA_VERSION).encode())
                s.write(b)
        except BaseException:
            s.close()
            raise
        return s

    @classmethod
    def verify(cls, path: Path, cipher: Cipher) -> None:
        """The start-up checks (key check value, unfinished rotation, schema) without opening
        the database for writing: works while another process serves it."""
        cls(path, cipher)._verify_read_only()

    def _verify_read_only(self, rotating: bool = False) -> None:
        """Check the key against an existing directory without writing to it."""
        try:
            names = Rdict.list_cf(str(self.path))
            cfs = {n: column_family_options() for n in names if n != "default"}
            db = Rdict(
                str(self.path), options=Options(raw_mode=True), column_families=cfs, access_type=AccessType.read_only()
            )
        except Exception as exc:
            raise _open_error(self.path, exc) from None
        try:
            check = None
            schema = None
            rotation = None
            if CF_META in names:
                meta = db.get_column_family(CF_META)
                check = meta.get(KEY_CHECK)
                schema = meta.get(KEY_SCHEMA)
                rotation = meta.get(KEY_ROTATION)
                del meta
        finally:
            db.close()
            del db
            gc.collect()
        if rotation is not None and not rotating:
            # Values are under two keys until the rotation ends: serving now would fail reads.
            raise FailedPrecondition(
                f"a key rotation of {self.path} was interrupted: some values are under the old key, some "
                "under the new one. Finish it by running `engram-server rotate-key` again with the same "
                "current and new keys; nothing was changed."
            )
        if check is not None:
            self._open_check(check)
        if schema is not None:
            try:
                version = int(self.cipher.open(CF_META, KEY_SCHEMA, schema))
            except DataCorrupted:
                raise WrongEncryptionKey("schema version value does not open with this key") from None
            if version > SCHEMA_VERSION:
                raise FailedPrecondition(
                    f"data directory {self.path} has schema version {version}; this server supports up to "
                    f"{SCHEMA_VERSION}: upgrade the server"
                )

    def _open_check(self, sealed: bytes) -> None:
        try:
            plain = self.cipher.open(CF_META, KEY_CHECK, sealed)
        except DataCorrupted:
            raise WrongEncryptionKey(
                f"the encryption key (key id {self.cipher.key_id}) does not open the data directory {self.path}: "
                "it was created with another key. Nothing was changed. Configure the original key "
                "(--encryption-key / ENGRAM_ENCRYPTION_KEY / the key file)."
            ) from None
        if not plain.startswith(_CHECK_PLAINTEXT):
            raise WrongEncryptionKey(f"the key check value in {self.path} is not recognised")

    def _verify_key_check_absent_or_ok(self) -> None:
        raw = self.get_raw(CF_META, KEY_CHECK)
        if raw is not None:
            self._open_check(raw)

    def schema_version(self) -> int:
        raw = self.get(CF_META, KEY_SCHEMA)
        return int(raw) if raw is not None else SCHEMA_VERSION

    def set_schema_version(self, version: int) -> None:
        b = self.batch()
        b.put(CF_META, KEY_SCHEMA, str(version).encode())
        self.write(b)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._committer is not None:
            self._committer.stop()
            self._committer = None
        self._cfs.clear()
        self._handles.clear()
        if self._db is not None:
            with contextlib.suppress(Exception):  # already durable through synced writes
                self._db.flush_wal(True)
            self._db.close()
            self._db = None
        gc.collect()  # drop stray iterators so the lock is released now, not at some later GC

    @property
    def closed(self) -> bool:
        return self._closed

    # --- reads ---------------------------------------------------------------------------------
    def _cf(self, cf: str) -> Rdict:
        try:
            return self._cfs[cf]
        except KeyError:
            raise EngineError("storage is closed") from None

    def get_raw(self, cf: str, key: bytes) -> bytes | None:
        try:
            v = self._cf(cf).get(key)
        except DataCorrupted:
            raise
        except Exception as exc:
            raise _read_error(cf, exc) from None
        return bytes(v) if v is not None else None

    def get(self, cf: str, key: bytes) -> bytes | None:
        """Decrypted value, None when absent; DataCorrupted when tampered or corrupted on disk."""
        raw = self.get_raw(cf, key)
        if raw is None:
            return None
        return self.cipher.open(cf, key, raw)

    def multi_get(self, cf: str, keys: list[bytes]) -> list[bytes | None]:
        c = self._cf(cf)
        try:
            raws: Any = c.get(list[Any](keys)) if keys else []
        except Exception as exc:
            raise _read_error(cf, exc) from None
        return [None if r is None else self.cipher.open(cf, k, r) for k, r in zip(keys, raws, strict=True)]

    def multi_get_each(self, cf: str, keys: list[bytes]) -> list[bytes | DataCorrupted | None]:
        """multi_get that reports a corrupted value in its place instead of failing the lot."""
        out: list[bytes | DataCorrupted | None] = []
        for k in keys:
            try:
                out.append(self.get(cf, k))
            except DataCorrupted as exc:
                out.append(exc)
        return out

    def scan_raw(self, cf: str, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """(key, sealed value) for keys starting with prefix, in key order. DataCorrupted when the
        scan meets a corrupted block: never a silently shortened scan."""
        it = self._cf(cf).iter()
        try:
            it.seek(prefix)
            while it.valid():
                k = it.key()
                if not k.startswith(prefix):
                    return
                yield k, it.value()
                it.next()
            _check_iterator(it, cf)
        finally:
            del it

    def scan_at_snapshot(
        self, cf: str, start: bytes, *, fill_cache: bool = True
    ) -> Generator[tuple[bytes, bytes], None, None]:
        """(key, decrypted value) from `start` on, in key order, every value as of the moment the
        scan began (a RocksDB snapshot): a value stored under several keys is never read half
        before and half after a rewrite. The caller stops when it has what it needs (close the
        generator to release the snapshot at once). fill_cache=False for values read once in a
        while (snapshot chunks), which would evict the records' blocks from the block cache."""
        snap = self._cf(cf).snapshot()
        it = snap.iter(None if fill_cache else self._no_fill)
        try:
            it.seek(start)
            while it.valid():
                k = it.key()
                yield k, self.cipher.open(cf, k, it.value())
                it.next()
            _check_iterator(it, cf)
        finally:
            del it, snap

    def scan(self, cf: str, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        for k, v in self.scan_raw(cf, prefix):
            yield k, self.cipher.open(cf, k, v)

    def scan_keys(self, cf: str, prefix: bytes) -> list[bytes]:
        return [k for k, _ in self.scan_raw(cf, prefix)]

    def last_key(self, cf: str, prefix: bytes) -> bytes | None:
        it = self._cf(cf).iter()
        try:
            it.seek_for_prev(prefix_end(prefix))
            if it.valid():
                k: bytes = it.key()
                if k.startswith(prefix):
                    return k
            return None
        finally:
            del it

    # --- writes --------------------------------------------------------------------------------
    def batch(self) -> Batch:
        return Batch(self.cipher)

    def write(self, batch: Batch) -> None:
        """Durable (synced) when it returns."""
        self.write_async(batch).result()

    def write_async(self, batch: Batch) -> Future[None]:
        committer = self._committer
        if committer is None:
            raise EngineError("storage is closed")
        replay = clock.current()
        if replay is not None and replay.mark is not None:
            batch.put(CF_META, *replay.mark)  # the log position commits with the change (clock.py)
        if not batch.events:
            return committer.submit(batch)
        with self._event_lock:  # positions in enqueue order, which is commit order
            for suffix, plaintext in batch.events:
                self.event_position += 1
                batch.put(CF_EVENTS, event_key(self.event_position, suffix), plaintext)
            batch.events = []
            last = self.event_position
            fut = committer.submit(batch)
        fut.add_done_callback(lambda f: self._events_written(last) if f.exception() is None else None)
        return fut

    def _events_written(self, position: int) -> None:
        with self._event_lock:
            if position <= self.durable_event_position:
                return
            self.durable_event_position = position
        for listener in list(self.event_listeners):
            try:
                listener(position)
            except Exception:
                log.exception("a change-stream listener failed")

    def _write_now(self, batches: list[Batch]) -> None:
        assert self._db is not None
        wb = WriteBatch(raw_mode=True)
        for b in batches:
            for op, cf, key, val in b.ops:
                h = self._handles[cf]
                if op == Batch.PUT:
                    wb.put(key, val, h)
                elif op == Batch.DELETE:
                    wb.delete(key, h)
                else:
                    wb.delete_range(key, val, h)
        self._db.write(wb, self._wopts)

    @property
    def commit_stats(self) -> tuple[int, int]:
        c = self._committer
        return (c.groups, c.batches) if c is not None else (0, 0)

    # --- maintenance ---------------------------------------------------------------------------
    def flush_and_compact(self) -> None:
        """Flush memtables and compact every column family (tests, purges)."""
        assert self._db is not None
        for name in COLUMN_FAMILIES:
            cf = self._cfs[name]
            cf.flush(True)
            cf.compact_range(None, None)
        self._db.flush(True)

    def bytes_on_disk(self) -> int:
        return sum(p.stat().st_size for p in self.path.glob("*") if p.is_file())

    def checkpoint(self, target_dir: str | Path) -> None:
        """A consistent copy (hard links where possible) of the live database."""
        target = Path(target_dir)
        if target.exists() and any(target.iterdir()):
            raise FailedPrecondition(f"checkpoint target {target} exists and is not empty")
        if target.exists():
            target.rmdir()  # RocksDB creates it itself
        target.parent.mkdir(parents=True, exist_ok=True)
        assert self._db is not None
        cp = Checkpoint(self._db)
        try:
            cp.create_checkpoint(str(target))
        finally:
            del cp


def _check_iterator(it: Any, cf: str) -> None:
    """An iterator stops (valid() False) both at the end and on an error: tell them apart."""
    try:
        it.status()
    except Exception as exc:
        raise _read_error(cf, exc) from None


def _read_error(cf: str, exc: BaseException) -> EngineError:
    return corruption(exc, f"reading {cf}") or EngineError(f"reading {cf} failed: {type(exc).__name__}")


def _open_error(path: Path, exc: BaseException) -> EngineError:
    """Why a data directory does not open, for an operator: corruption says so, with what to do."""
    found = corruption(exc, f"data directory {path}")
    if found is not None:
        return DataCorrupted(
            f"{found}. Nothing was changed. Restore the directory from a backup "
            "(`engram-server verify --data-dir BACKUP` checks one first)."
        )
    text = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
    return FailedPrecondition(f"cannot open data directory {path}: {text}")


class SnapshotView:
    """The indexes' SnapshotStore: encrypted named blobs in the snapshots CF, chunked.

    Layout: ``name`` → header (chunk count), ``name\\x00NNNNNN`` → chunks. Header and chunks go
    in one batch, so a reader sees the old or the new snapshot, never a mix.
    """

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    def get(self, name: str) -> bytes | bytearray | None:
        """The blob, or None. Header and chunks are read from one RocksDB snapshot (a rewrite
        meanwhile is not seen), one chunk at a time into one growing buffer: each chunk's
        buffers are freed before the next is read, so they reuse the same pages (see
        CHUNK_BYTES), and growing a large bytearray is a remap, not a copy. The header sorts
        right before its chunks (`\\x00` is the smallest byte)."""
        key = name.encode()
        with contextlib.closing(self.storage.scan_at_snapshot(CF_SNAPSHOTS, key, fill_cache=False)) as items:
            first = next(items, None)
            if first is None or first[0] != key:
                return None
            n = int(first[1])
            out = bytearray()
            for i in range(n):
                k, part = next(items, (b"", b""))
                if k != key + b"\x00%06d" % i:
                    raise DataCorrupted(f"snapshot {name} is missing chunks")
                if n == 1:
                    return part  # one chunk: no copy
                out += part
            return out

    def put(self, name: str, data: bytes, compress: bool = True) -> None:
        """compress=False for blobs that do not compress (float32 vectors): saves the zstd work
        on write and, more to the point, on every load."""
        key = name.encode()
        b = self.storage.batch()
        b.delete_prefix(CF_SNAPSHOTS, key + b"\x00")
        mv = memoryview(data)
        n = max(1, -(-len(data) // CHUNK_BYTES))
        for i in range(n):
            chunk = bytes(mv[i * CHUNK_BYTES : (i + 1) * CHUNK_BYTES])
            b.put(CF_SNAPSHOTS, key + b"\x00%06d" % i, chunk, compress=compress)
        b.put(CF_SNAPSHOTS, key, str(n).encode())
        self.storage.write(b)

    def delete(self, name: str) -> None:
        key = name.encode()
        b = self.storage.batch()
        b.delete(CF_SNAPSHOTS, key)
        b.delete_prefix(CF_SNAPSHOTS, key + b"\x00")
        self.storage.write(b)

    def names(self, prefix: str) -> list[str]:
        return [k.decode() for k in self.storage.scan_keys(CF_SNAPSHOTS, prefix.encode()) if b"\x00" not in k]
