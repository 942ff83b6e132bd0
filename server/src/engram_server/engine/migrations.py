"""Bringing a data directory to the current layout (storage.SCHEMA_VERSION) before it serves.

Version 1 → 2: identifiers out of the keys (keyspace.py). Version 1 wrote agent ids
(percent-encoded), memory ids and memory ids of merged memories into keys, and kept one global
id index (memory id → agent). Version 2 writes keyed-hash tokens instead, and the id index holds
one entry per (id, agent): ids are per agent.

Version 2 → 3: the change stream's column family (`events`, created empty when the directory
opens) and two fields a record may carry (`key`); catalogue snapshots of version 2 are rebuilt
from the records when each agent first loads. Nothing is moved: the step only records the version,
so that an older server refuses the directory instead of misreading it.

The migration moves every key of version 1 to its version-2 key. A value is sealed with its key
as associated data, so each moved value is opened and sealed again for its new key (`Cipher.rekey`,
nothing is decompressed). Each batch puts the new keys and deletes the old ones atomically, and
is synced: a crash leaves every value under exactly one of its two keys, and running the
migration again (the next start) moves what is left. Old keys are told from new ones by their
agent token: the tokens of the directory's agents are known from the agent records (each holds
its agent id, whichever key it is under), and anything else is a version-1 token.
"""

from __future__ import annotations

import json
import logging
from urllib.parse import quote, unquote

from . import codec
from .errors import DataCorrupted, FailedPrecondition
from .keyspace import AgentKeys, Keyspace
from .storage import (
    CF_HISTORY,
    CF_ID_INDEX,
    CF_JOURNAL,
    CF_LINKS,
    CF_META,
    CF_RECORDS,
    CF_SNAPSHOTS,
    CF_VECTORS,
    SCHEMA_VERSION,
    Storage,
)

log = logging.getLogger(__name__)

NAMING_SECRET = b"key_naming_secret"
_BATCH_OPS = 2000
_BATCH_BYTES = 16 << 20


def prepare(storage: Storage) -> Keyspace:
    """Migrate the data directory to the current schema if needed; its Keyspace."""
    version = storage.schema_version()
    if version > SCHEMA_VERSION:
        raise FailedPrecondition(f"data directory schema version {version} is newer than supported {SCHEMA_VERSION}")
    secret = storage.get(CF_META, NAMING_SECRET)
    if secret is None:
        if version >= 2 and next(storage.scan_raw(CF_META, b"agent/"), None) is not None:
            raise DataCorrupted(
                "the data directory's key-naming secret is missing: its memories cannot be found (restore a backup)"
            )
        secret = Keyspace.new_secret()
        b = storage.batch()
        b.put(CF_META, NAMING_SECRET, secret)
        storage.write(b)
    keyspace = Keyspace(secret)
    if version < 2:
        log.info("migrating data directory schema 1 -> 2: identifiers out of the storage keys")
        moved = _v1_to_v2(storage, keyspace)
        storage.set_schema_version(2)
        log.info("migration to schema 2 done: %d values moved", moved)
    if version < 3:
        storage.set_schema_version(3)
    return keyspace


class _Mover:
    """Batches of (put under the new key, delete the old one), each atomic and synced."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.batch = storage.batch()
        self.moved = 0

    def move(self, cf: str, old: bytes, new: bytes, sealed: bytes) -> None:
        b = self.batch
        b.put_sealed(cf, new, self.storage.cipher.rekey(cf, old, new, sealed))
        b.delete(cf, old)
        self.moved += 1
        if len(b) >= _BATCH_OPS or b.nbytes >= _BATCH_BYTES:
            self.flush()

    def flush(self) -> None:
        if len(self.batch):
            self.storage.write(self.batch)
            self.batch = self.storage.batch()


class _Agents:
    """Which agent token is old (version 1), and the version-2 keys of its agent."""

    def __init__(self, storage: Storage, keyspace: Keyspace) -> None:
        self.keyspace = keyspace
        ids = {json.loads(v)["agent_id"] for _, v in storage.scan(CF_META, b"agent/")}
        self.new_tokens = {keyspace.agent(a).qa.encode() for a in ids}

    def of(self, old_qa: bytes) -> AgentKeys | None:
        """The new keys of the agent whose version-1 token is old_qa; None for a new token."""
        if old_qa in self.new_tokens:
            return None
        agent_id = unquote(old_qa.decode("utf-8"))
        if quote(agent_id, safe="").encode() != old_qa:
            log.warning("leaving a key with an unknown agent token alone: %r", old_qa[:64])
            return None
        return self.keyspace.agent(agent_id)


def _v1_to_v2(storage: Storage, keyspace: Keyspace) -> int:
    agents = _Agents(storage, keyspace)
    mover = _Mover(storage)
    for cf in (CF_RECORDS, CF_VECTORS, CF_HISTORY, CF_LINKS, CF_JOURNAL):
        for key, sealed in storage.scan_raw(cf, b""):
            qa, _, rest = key.partition(b"\x00")
            keys = agents.of(qa)
            if keys is None:
                continue
            new = _agent_key(storage, cf, key, sealed, keys, rest)
            mover.move(cf, key, new, sealed)
    for key, sealed in storage.scan_raw(CF_ID_INDEX, b""):
        if b"\x00" in key:  # already (id token, agent token)
            continue
        agent_id = storage.cipher.open(CF_ID_INDEX, key, sealed).decode()
        mover.move(CF_ID_INDEX, key, keyspace.id_entry(key.decode(), keyspace.agent(agent_id).qa), sealed)
    for prefix in (b"agent/", b"idxseq/"):
        for key, sealed in storage.scan_raw(CF_META, prefix):
            keys = agents.of(key[len(prefix) :])
            if keys is not None:
                mover.move(CF_META, key, prefix + keys.qa.encode(), sealed)
    for prefix in (b"cat/", b"vec/", b"kw/"):
        for key, sealed in storage.scan_raw(CF_SNAPSHOTS, prefix):
            rest = key[len(prefix) :]
            end = min((i for i in (rest.find(b"/"), rest.find(b"\x00")) if i >= 0), default=len(rest))
            keys = agents.of(rest[:end])
            if keys is not None:
                mover.move(CF_SNAPSHOTS, key, prefix + keys.qa.encode() + rest[end:], sealed)
    mover.flush()
    return mover.moved


def _agent_key(storage: Storage, cf: str, key: bytes, sealed: bytes, keys: AgentKeys, rest: bytes) -> bytes:
    """The version-2 key of one version-1 key of an agent (`rest`: what followed its token)."""
    if cf in (CF_RECORDS, CF_VECTORS):
        return keys.record(rest.decode())
    if cf == CF_JOURNAL:
        return keys.prefix + rest
    if cf == CF_HISTORY:
        mid, _, suffix = rest.partition(b"\x00")
        if suffix.startswith(b"m"):
            return keys.merged(mid.decode(), suffix[1:].decode())
        return keys.history_prefix(mid.decode()) + suffix
    # links: source \0 target \0 hash of the relation, which the value holds in full
    link = codec.link_from_bytes(storage.cipher.open(cf, key, sealed))
    return keys.link(link.source_id, link.target_id, link.relation)
