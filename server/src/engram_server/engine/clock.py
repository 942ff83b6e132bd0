"""Wall-clock time and minted ids, replayable.

Cluster mode (engram_server.cluster) materialises every write by applying it from the shard's log
on each owner. For the owners to end in the same state, a write applied from the log must see the
time at which it was received and mint the same ids everywhere: `replaying(Replay(...))` sets both
for the calls made inside it (in this thread, and in the worker threads that ServiceBase.run
hands the context to). Outside it, `now()` is the wall clock and ids are random UUIDv7s.

A replayed write also carries its log position (`mark`): Storage adds it to every batch the write
commits, so the position is durable in the same RocksDB write as the change itself.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass
class Replay:
    ts: float  # the write's time, as received
    seed: bytes  # ids minted by the write derive from it (the write's op id)
    mark: tuple[bytes, bytes] | None = None  # (meta key, value) committed with each batch
    secret: bytes = b""  # secrets the write mints (API keys) derive from it; travels encrypted
    minted: int = 0

    def next_random(self) -> int:
        self.minted += 1
        digest = hashlib.blake2b(self.seed + self.minted.to_bytes(8, "big"), digest_size=8).digest()
        return int.from_bytes(digest, "big")


_REPLAY: ContextVar[Replay | None] = ContextVar("engram_replay", default=None)


def now() -> float:
    r = _REPLAY.get()
    return r.ts if r is not None else time.time()


def current() -> Replay | None:
    return _REPLAY.get()


@contextmanager
def replaying(replay: Replay) -> Iterator[Replay]:
    token = _REPLAY.set(replay)
    try:
        yield replay
    finally:
        _REPLAY.reset(token)
