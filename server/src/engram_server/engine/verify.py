"""`engram-server verify`: check a data directory (or a backup) value by value.

Works on a directory a server is serving (a read-only RocksDB instance takes no lock). Checks:

* RocksDB's own: every block of every table file is read with its checksum verified; a scan that
  stops on an error is a problem, never a shorter scan;
* ours: every value authenticates under the key for its (column family, key), as a read would;
* structure: every memory record has a vector, an id-index entry per record, and the agents'
  memory counts add up to the records.

A problem names what it can: the agent and the memory id when they are readable elsewhere (agent
records, catalogue snapshots, readable records), otherwise the storage key's tokens.
"""

from __future__ import annotations

import gc
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from rocksdict import AccessType, Options, Rdict, ReadOptions

from .catalogue import load_snapshot
from .crypto import Cipher
from .errors import DataCorrupted
from .keyspace import Keyspace
from .migrations import NAMING_SECRET
from .storage import (
    CF_ID_INDEX,
    CF_META,
    CF_RECORDS,
    CF_SNAPSHOTS,
    CF_VECTORS,
    COLUMN_FAMILIES,
    Storage,
    column_family_options,
    corruption,
)

_MAX_PROBLEMS = 1000  # listed; the count goes on


@dataclass
class VerifyReport:
    path: Path
    values: dict[str, int] = field(default_factory=dict)  # column family → values checked
    problems: list[str] = field(default_factory=list)
    problem_count: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.problem_count == 0

    @property
    def total_values(self) -> int:
        return sum(self.values.values())

    def problem(self, text: str) -> None:
        self.problem_count += 1
        if len(self.problems) < _MAX_PROBLEMS:
            self.problems.append(text)


def verify(db_path: Path, cipher: Cipher) -> VerifyReport:
    """Check every value of the database at db_path (a data directory's db/)."""
    started = time.perf_counter()
    Storage.verify(Path(db_path), cipher)  # key check value, schema, unfinished rotation
    report = VerifyReport(Path(db_path))
    db = _open_read_only(Path(db_path))
    try:
        names = _Names(db, cipher)
        keys = {cf: _check_column_family(db, cf, cipher, names, report) for cf in COLUMN_FAMILIES}
        _check_structure(keys, names, report)
    finally:
        db.close()
        del db
        gc.collect()
    report.seconds = time.perf_counter() - started
    return report


def _open_read_only(path: Path) -> Rdict:
    names = Rdict.list_cf(str(path))
    opts = Options(raw_mode=True)
    opts.set_max_open_files(-1)  # a serving server may delete table files after compacting
    cfs = {n: column_family_options() for n in names if n != "default"}
    return Rdict(str(path), options=opts, column_families=cfs, access_type=AccessType.read_only())


def _check_column_family(db: Rdict, cf: str, cipher: Cipher, names: _Names, report: VerifyReport) -> set[bytes]:
    """Authenticate every value; the keys seen (records, vectors and id index, for the
    structure checks; empty for the others)."""
    seen: set[bytes] = set()
    keep = cf in (CF_RECORDS, CF_VECTORS, CF_ID_INDEX)
    try:
        family = db.get_column_family(cf)
    except Exception:
        report.values[cf] = 0
        return seen
    opts = ReadOptions()
    opts.set_verify_checksums(True)
    opts.fill_cache(False)  # type: ignore[call-arg]  # the stub omits the flag
    it = family.iter(opts)
    count = 0
    try:
        it.seek_to_first()
        while it.valid():
            k, v = it.key(), it.value()
            count += 1
            if keep:
                seen.add(k)
            if not cipher.opens(cf, k, v):
                what = names.record(k) if cf in (CF_RECORDS, CF_VECTORS) else f"key {_show(k)}"
                report.problem(f"{cf}: a value fails authentication (corrupted or moved): {what}")
            it.next()
        try:
            it.status()
        except Exception as exc:
            found = corruption(exc, cf) or DataCorrupted(f"{cf}: {exc}")
            report.problem(f"{found}; the scan of {cf} stopped after {count} values")
    finally:
        del it, family
    report.values[cf] = count
    return seen


class _Names:
    """Agent ids and memory ids for the tokens in keys, from what is readable."""

    def __init__(self, db: Rdict, cipher: Cipher) -> None:
        self.agents: dict[str, str] = {}  # agent token → agent id
        self.memories: dict[bytes, str] = {}  # record key → memory id
        self.counts: dict[str, int] = {}  # agent token → memory count in its agent record
        try:
            meta = db.get_column_family(CF_META)
            secret_sealed = meta.get(NAMING_SECRET)
        except Exception:
            return
        if secret_sealed is None or not cipher.opens(CF_META, NAMING_SECRET, secret_sealed):
            return
        space = Keyspace(cipher.open(CF_META, NAMING_SECRET, secret_sealed))
        snapshots = db.get_column_family(CF_SNAPSHOTS)
        it = meta.iter()
        try:
            it.seek(b"agent/")
            while it.valid() and it.key().startswith(b"agent/"):
                try:
                    info = json.loads(cipher.open(CF_META, it.key(), it.value()))
                except (DataCorrupted, ValueError):
                    it.next()
                    continue
                keys = space.agent(info["agent_id"])
                self.agents[keys.qa] = info["agent_id"]
                self.counts[keys.qa] = int(info.get("count", 0))
                for mid in _catalogue_ids(snapshots, cipher, keys.catalogue_snapshot):
                    self.memories[keys.record(mid)] = mid
                it.next()
        finally:
            del it, meta, snapshots

    def record(self, key: bytes) -> str:
        qa = key.split(b"\x00", 1)[0].decode(errors="replace")
        agent = self.agents.get(qa, f"<agent token {qa}>")
        mid = self.memories.get(key, f"<memory token {key[len(qa) + 1 :].decode(errors='replace')}>")
        return f"memory {mid} of agent {agent}"


def _catalogue_ids(snapshots: Rdict, cipher: Cipher, name: str) -> list[str]:
    """The memory ids in an agent's catalogue snapshot (header + chunks, see SnapshotView)."""
    key = name.encode()
    try:
        header = snapshots.get(key)
        if header is None:
            return []
        n = int(cipher.open(CF_SNAPSHOTS, key, header))
        parts = []
        for i in range(n):
            chunk_key = key + b"\x00%06d" % i
            parts.append(cipher.open(CF_SNAPSHOTS, chunk_key, snapshots.get(chunk_key) or b""))
        snap = load_snapshot(b"".join(parts))
        return [e.id for e in snap.entries] if snap is not None else []
    except Exception:  # an unreadable snapshot is reported by its own scan
        return []


def _check_structure(keys: dict[str, set[bytes]], names: _Names, report: VerifyReport) -> None:
    records, vectors = keys[CF_RECORDS], keys[CF_VECTORS]
    for k in sorted(records - vectors):
        report.problem(f"{names.record(k)} has no vector")
    for k in sorted(vectors - records):
        report.problem(f"a vector without a record: {names.record(k)}")
    if len(keys[CF_ID_INDEX]) != len(records):
        report.problem(f"the id index has {len(keys[CF_ID_INDEX])} entries for {len(records)} memory records")
    per_agent = Counter(k.split(b"\x00", 1)[0].decode(errors="replace") for k in records)
    for qa, expected in names.counts.items():
        if per_agent.get(qa, 0) != expected:
            agent = names.agents.get(qa, qa)
            report.problem(
                f"agent {agent}: its record counts {expected} memories, storage holds {per_agent.get(qa, 0)}"
            )


def _show(key: bytes) -> str:
    return key.replace(b"\x00", b"/").decode("utf-8", "replace")[:200]
