"""Key rotation: re-encrypt every stored value under a new key, resumably (`engram-server rotate-key`).

The server must be stopped (RocksDB's lock enforces it). The rotation:

1. records a marker in the meta column family naming the new key's id; while the marker exists
   the server refuses to start (values are under two keys) and says how to finish;
2. walks every column family and re-seals each value still under the old key (a fresh nonce,
   the same associated data, the compressed body carried over), in synced batches: a crash or
   Ctrl-C loses at most the batch in flight, and values already under the new key are skipped
   when the command runs again;
3. in one final batch re-seals the key check value under the new key and deletes the marker, so
   from that moment the old key no longer opens the directory;
4. flushes and compacts every column family, so no file still holds a value sealed with the old
   key (the WAL and SST files that did are deleted by RocksDB).

Backups taken before the rotation stay under the old key: keep the old key as long as those.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .crypto import Cipher
from .errors import DataCorrupted, FailedPrecondition, InvalidArgument
from .storage import CF_META, COLUMN_FAMILIES, KEY_CHECK, KEY_ROTATION, Batch, Storage, key_check_plaintext

DEFAULT_BATCH_VALUES = 2000


@dataclass
class RotationReport:
    old_key_id: str
    new_key_id: str
    rewritten: int = 0  # values re-sealed by this run
    already_rotated: int = 0  # values found under the new key (an interrupted run did them)
    unreadable: int = 0  # values neither key opens (corrupted before the rotation): left as they were
    resumed: bool = False
    nothing_to_do: bool = False  # the directory was already under the new key
    seconds: float = 0.0


class _EitherKey(Cipher):
    """Opens values under the old or the new key (the state of a directory mid-rotation); seals
    under the old one until the rotation's final batch."""

    def __init__(self, old: bytes, new: Cipher) -> None:
        super().__init__(old)
        self._new = new

    def open(self, cf: str, key: bytes, blob: bytes) -> bytes:
        try:
            return super().open(cf, key, blob)
        except DataCorrupted:
            return self._new.open(cf, key, blob)


Progress = Callable[[str, int], None]  # (column family, values re-sealed so far in the run)


def rotate_key(
    db_path: Path,
    old_key: bytes,
    new_key: bytes,
    *,
    batch_values: int = DEFAULT_BATCH_VALUES,
    progress: Progress | None = None,
) -> RotationReport:
    """Re-encrypt the database at `db_path` from `old_key` to `new_key`. Safe to interrupt and
    to run again with the same keys. Raises WrongEncryptionKey when `old_key` opens nothing."""
    if old_key == new_key:
        raise InvalidArgument("the new encryption key is the current key: generate a different one", field="new_key")
    started = time.perf_counter()
    new = Cipher(new_key)
    storage = Storage.open(db_path, _EitherKey(old_key, new), rotating=True)
    report = RotationReport(old_key_id=storage.cipher.key_id, new_key_id=new.key_id)
    try:
        old = Cipher(old_key)
        marker = storage.get_raw(CF_META, KEY_ROTATION)
        check = storage.get_raw(CF_META, KEY_CHECK)
        if marker is None and check is not None and new.opens(CF_META, KEY_CHECK, check):
            report.nothing_to_do = True
            return report
        if marker is not None:
            planned = json.loads(old.open(CF_META, KEY_ROTATION, marker))["new_key_id"]
            if planned != new.key_id:
                raise FailedPrecondition(
                    f"an interrupted rotation to the key with id {planned} must be finished first: "
                    f"run rotate-key again with that key as the new key (given: key id {new.key_id})"
                )
            report.resumed = True
        else:
            start = Batch(old)
            start.put(CF_META, KEY_ROTATION, json.dumps({"new_key_id": new.key_id}).encode())
            storage.write(start)

        for cf in COLUMN_FAMILIES:
            _rotate_family(storage, cf, old, new, report, batch_values, progress)

        finish = Batch(new)
        finish.put(CF_META, KEY_CHECK, key_check_plaintext(new.key_id))
        finish.delete(CF_META, KEY_ROTATION)
        storage.write(finish)
        storage.flush_and_compact()  # drop the SST and WAL files that still hold old-key values
    finally:
        storage.close()
    report.seconds = time.perf_counter() - started
    return report


def _rotate_family(
    storage: Storage,
    cf: str,
    old: Cipher,
    new: Cipher,
    report: RotationReport,
    batch_values: int,
    progress: Progress | None,
) -> None:
    batch = Batch(new)
    # The iterator reads a consistent view: re-sealed values written meanwhile do not disturb it.
    for key, blob in storage.scan_raw(cf, b""):
        if cf == CF_META and key in (KEY_CHECK, KEY_ROTATION):
            continue  # rewritten (or deleted) by the final batch
        if new.opens(cf, key, blob):
            report.already_rotated += 1
            continue
        try:
            batch.put_sealed(cf, key, old.reseal(cf, key, blob, new))
        except DataCorrupted:
            report.unreadable += 1
            continue
        if len(batch) >= batch_values:
            storage.write(batch)
            report.rewritten += len(batch)
            batch = Batch(new)
            if progress is not None:
                progress(cf, report.rewritten)
    if len(batch):
        storage.write(batch)
        report.rewritten += len(batch)
        if progress is not None:
            progress(cf, report.rewritten)
