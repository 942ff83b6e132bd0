"""Storage keys: how agent ids, memory ids and relations become RocksDB keys.

Values are encrypted; keys cannot be (RocksDB orders and seeks by them). So no identifier a
client chose appears in a key: each is replaced by a keyed hash (BLAKE2b with a 256-bit secret,
16 bytes, written as 32 hex characters), a token that cannot be computed, or reversed, without
the secret. The secret is random per data directory and stored in the meta column family,
sealed like every value: a copied data directory without its encryption key shows no ids, only
tokens; a key rotation re-seals the secret and leaves every key as it is.

Tokens are per agent: the same memory id in two agents gives two unrelated record keys. The one
place where a memory id's token does not depend on its agent is the id index (`id_index`:
memory id → the agents holding it), which answers "which agent has this id?" for calls that do
not name the agent; two agents using the same client-chosen id share its prefix there.

Layout (the agent's `qa` is its token; `m(x)` the token of memory id x within that agent):

    records, vectors   qa \\0 m(id)
    history            qa \\0 m(id) \\0 v <version, 10 digits>      earlier versions
                       qa \\0 m(id) \\0 m m(merged id)              memories merged into it
    links              qa \\0 m(source) \\0 m(target) \\0 r(relation)
    journal            qa \\0 <sequence, 16 digits>
    id_index           i(id) \\0 qa  → agent id
    meta               agent/qa (the agent record), idxseq/qa
    snapshots          cat/qa, vec/qa/..., kw/qa/...
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

SECRET_BYTES = 32
TOKEN_BYTES = 16


class Keyspace:
    def __init__(self, secret: bytes) -> None:
        if len(secret) != SECRET_BYTES:
            raise ValueError(f"the key-naming secret must be {SECRET_BYTES} bytes")
        self._secret = secret

    @staticmethod
    def new_secret() -> bytes:
        return os.urandom(SECRET_BYTES)

    def token(self, kind: bytes, value: str) -> str:
        """A keyed hash of value; `kind` keeps tokens of different things apart."""
        h = hashlib.blake2b(value.encode("utf-8"), key=self._secret, person=kind, digest_size=TOKEN_BYTES)
        return h.hexdigest()

    def agent(self, agent_id: str) -> AgentKeys:
        return AgentKeys(self, self.token(b"agent", agent_id))

    # --- the id index ----------------------------------------------------------------------
    def id_prefix(self, memory_id: str) -> bytes:
        return self.token(b"id", memory_id).encode() + b"\x00"

    def id_entry(self, memory_id: str, qa: str) -> bytes:
        return self.id_prefix(memory_id) + qa.encode()


@dataclass(frozen=True)
class AgentKeys:
    """The keys of one agent's data."""

    space: Keyspace
    qa: str  # the agent's token

    def memory(self, memory_id: str) -> str:
        return self.space.token(b"memory", self.qa + "\x00" + memory_id)

    @property
    def prefix(self) -> bytes:
        """Every key of this agent in records, vectors, history, links and journal."""
        return self.qa.encode() + b"\x00"

    def record(self, memory_id: str) -> bytes:
        """In records and vectors."""
        return self.prefix + self.memory(memory_id).encode()

    def history_prefix(self, memory_id: str) -> bytes:
        return self.record(memory_id) + b"\x00"

    def history(self, memory_id: str, version: int) -> bytes:
        return self.history_prefix(memory_id) + b"v%010d" % version

    def merged(self, keeper_id: str, merged_id: str) -> bytes:
        return self.history_prefix(keeper_id) + b"m" + self.memory(merged_id).encode()

    def link(self, source_id: str, target_id: str, relation: str) -> bytes:
        rel = self.space.token(b"relation", relation)
        return self.prefix + f"{self.memory(source_id)}\x00{self.memory(target_id)}\x00{rel}".encode()

    def journal(self, seq: int) -> bytes:
        return self.prefix + b"%016d" % seq

    @property
    def meta_agent(self) -> bytes:
        return b"agent/" + self.qa.encode()

    @property
    def meta_index_seq(self) -> bytes:
        return b"idxseq/" + self.qa.encode()

    @property
    def catalogue_snapshot(self) -> str:
        return f"cat/{self.qa}"

    @property
    def snapshot_prefixes(self) -> tuple[str, ...]:
        """The names of the agent's index snapshots start with these (vector_index, keyword_index)."""
        return (f"vec/{self.qa}/", f"kw/{self.qa}/")
