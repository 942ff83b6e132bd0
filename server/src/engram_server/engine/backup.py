"""Consistent backups of a data directory, also while a server is serving it (`engram-server backup`).

A running server holds RocksDB's lock, so the backup opens a *read-only* instance (which takes no
lock): it sees the database as of that moment — every synced write, WAL included — and keeps its
table files open (max_open_files = -1), so the server compacting and deleting them meanwhile
does not disturb the copy. Every key and its still-sealed value is then copied into a fresh
database at the target: the copy needs the same key to be read, and it comes out compacted.

Nothing corrupted is copied silently. Every block read is checksum-verified by RocksDB, a scan
that stops on an error fails the backup (instead of ending early, which a plain iteration
does), and every value is authenticated with the key before it is written. The finished copy
is then verified as `engram-server verify` would (every value, the structure) and its counts
compared with what was copied; only then does the command report success. On any failure the
partial copy is removed and the command fails, naming the problem.

Restore: stop the server, then point `--data-dir` at the backup (or move it into place).
"""

from __future__ import annotations

import gc
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from rocksdict import AccessType, Options, Rdict, ReadOptions, WriteBatch, WriteOptions

from .crypto import Cipher
from .errors import DataCorrupted, FailedPrecondition
from .storage import CF_META, COLUMN_FAMILIES, KEY_CHECK, Storage, column_family_options, corruption
from .verify import verify

log = logging.getLogger(__name__)

_BATCH_BYTES = 8 * 1024 * 1024
_OPEN_ATTEMPTS = 5  # a compaction can delete a table file between reading the manifest and opening it


@dataclass
class BackupReport:
    target: Path
    values: dict[str, int] = field(default_factory=dict)  # column family → values copied
    bytes_copied: int = 0
    seconds: float = 0.0

    @property
    def total_values(self) -> int:
        return sum(self.values.values())


def backup(db_path: Path, target_data_dir: Path, cipher: Cipher) -> BackupReport:
    """Copy the database at `db_path` (a data directory's `db/`) into a new data directory
    `target_data_dir` (its `db/` is created). The key is verified first: a wrong key refuses."""
    started = time.perf_counter()
    target = Path(target_data_dir)
    if target.exists() and any(target.iterdir()):
        raise FailedPrecondition(f"backup target {target} exists and is not empty")
    if not (Path(db_path) / "CURRENT").exists():
        raise FailedPrecondition(f"no database at {db_path}")
    # The same checks as a server start (key check value, unfinished key rotation, schema), read-only.
    Storage.verify(Path(db_path), cipher)

    source = _open_read_only(Path(db_path))
    report = BackupReport(target=target)
    created = not target.exists()
    try:
        try:
            report.values, report.bytes_copied = _copy(source, target / "db", cipher)
        finally:
            source.close()
            del source
            gc.collect()
        _verify(target / "db", cipher, report.values)
    except BaseException:
        # No half-written backup is left to be mistaken for a good one.
        shutil.rmtree(target / "db", ignore_errors=True)
        if created:
            shutil.rmtree(target, ignore_errors=True)
        raise
    report.seconds = time.perf_counter() - started
    return report


def _open_read_only(path: Path) -> Rdict:
    opts = Options(raw_mode=True)
    opts.set_max_open_files(-1)  # keep every table file open: the server may delete them after compacting
    for attempt in range(1, _OPEN_ATTEMPTS + 1):
        try:
            names = Rdict.list_cf(str(path))
            cfs = {n: column_family_options() for n in names if n != "default"}
            return Rdict(str(path), options=opts, column_families=cfs, access_type=AccessType.read_only())
        except Exception as exc:
            if attempt == _OPEN_ATTEMPTS:
                raise FailedPrecondition(f"cannot open {path} for a backup: {type(exc).__name__}: {exc}") from None
            time.sleep(0.1 * attempt)
    raise AssertionError("unreachable")


def _copy(source: Rdict, target_db: Path, cipher: Cipher) -> tuple[dict[str, int], int]:
    target_db.parent.mkdir(parents=True, exist_ok=True)
    opts = Options(raw_mode=True)
    opts.create_if_missing(True)
    opts.create_missing_column_families(True)
    dest = Rdict(str(target_db), options=opts, column_families={n: column_family_options() for n in COLUMN_FAMILIES})
    wopts = WriteOptions()
    # Flushed (and synced) into table files below; a failed backup is discarded anyway. The stub
    # declares a method, but at run time it is a property.
    wopts.disable_wal = True  # type: ignore[method-assign,assignment]
    counts: dict[str, int] = {}
    copied = 0
    try:
        for name in COLUMN_FAMILIES:
            counts[name] = 0
            try:
                src_cf = source.get_column_family(name)
            except Exception:
                continue  # an older directory without this family
            handle = dest.get_column_family_handle(name)
            batch, size = WriteBatch(raw_mode=True), 0
            ropts = ReadOptions()
            ropts.set_verify_checksums(True)
            ropts.fill_cache(False)  # type: ignore[call-arg]  # the stub omits the flag
            it = src_cf.iter(ropts)
            it.seek_to_first()
            while it.valid():
                k, v = it.key(), it.value()
                if not cipher.opens(name, k, v):
                    raise DataCorrupted(
                        f"{name}: value {counts[name] + 1} fails authentication (corrupted or moved); "
                        "run `engram-server verify` on the data directory for the list"
                    )
                batch.put(k, v, handle)
                size += len(k) + len(v)
                counts[name] += 1
                if size >= _BATCH_BYTES:
                    dest.write(batch, wopts)
                    copied += size
                    batch, size = WriteBatch(raw_mode=True), 0
                it.next()
            try:
                it.status()  # valid() is False at the end and on an error alike
            except Exception as exc:
                raise corruption(exc, f"{name} after {counts[name]} values") or DataCorrupted(
                    f"reading {name} failed after {counts[name]} values: {exc}"
                ) from None
            if size:
                dest.write(batch, wopts)
                copied += size
            del it, src_cf, handle
        for name in COLUMN_FAMILIES:
            cf = dest.get_column_family(name)
            cf.flush(True)
            del cf
        dest.flush(True)
    finally:
        dest.close()
        del dest
        gc.collect()
    return counts, copied


def _verify(target_db: Path, cipher: Cipher, expected: dict[str, int]) -> None:
    copy = Storage.open(target_db, cipher)
    try:
        if copy.get(CF_META, KEY_CHECK) is None:  # raises when the copy does not open with the key
            raise FailedPrecondition(f"backup {target_db} has no key check value")
    finally:
        copy.close()
    report = verify(target_db, cipher)
    for name, count in expected.items():
        if report.values.get(name, 0) != count:
            raise FailedPrecondition(
                f"backup {target_db}: {name} holds {report.values.get(name, 0)} values, {count} were copied"
            )
    if not report.ok:
        raise DataCorrupted(f"backup {target_db} fails verification: {'; '.join(report.problems[:5])}")
