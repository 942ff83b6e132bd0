"""Consistent backups of a data directory, also while a server is serving it (`engram-server backup`).

A running server holds RocksDB's lock, so the backup opens a *read-only* instance (which takes no
lock): it sees the database as of that moment — every synced write, WAL included — and keeps its
table files open (max_open_files = -1), so the server compacting and deleting them meanwhile
does not disturb the copy. Every key and its still-sealed value is then copied into a fresh
database at the target: nothing is decrypted, the copy needs the same key to be read, and it
comes out compacted. The copy is verified (per column family counts, key check value) before
the command reports success.

Restore: stop the server, then point `--data-dir` at the backup (or move it into place).
"""

from __future__ import annotations

import gc
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from rocksdict import AccessType, Options, Rdict, WriteBatch, WriteOptions

from .crypto import Cipher
from .errors import FailedPrecondition
from .storage import CF_META, COLUMN_FAMILIES, KEY_CHECK, Storage, column_family_options

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
    try:
        report.values, report.bytes_copied = _copy(source, target / "db")
    finally:
        source.close()
        del source
        gc.collect()
    _verify(target / "db", cipher, report.values)
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


def _copy(source: Rdict, target_db: Path) -> tuple[dict[str, int], int]:
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
            it = src_cf.iter()
            it.seek_to_first()
            while it.valid():
                k, v = it.key(), it.value()
                batch.put(k, v, handle)
                size += len(k) + len(v)
                counts[name] += 1
                if size >= _BATCH_BYTES:
                    dest.write(batch, wopts)
                    copied += size
                    batch, size = WriteBatch(raw_mode=True), 0
                it.next()
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
        check = copy.get(CF_META, KEY_CHECK)  # raises when the copy does not open with the key
        if check is None:
            raise FailedPrecondition(f"backup {target_db} has no key check value")
        for name, count in expected.items():
            found = sum(1 for _ in copy.scan_raw(name, b""))
            if found != count:
                raise FailedPrecondition(f"backup {target_db}: {name} holds {found} values, {count} were copied")
    finally:
        copy.close()
