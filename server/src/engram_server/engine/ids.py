"""Memory ids the server mints."""

from __future__ import annotations

import os
import threading
import time

from . import clock

_lock = threading.Lock()
_last_ms = 0
_seq = 0


def new_id() -> str:
    """UUIDv7 as 32 hex characters: time-ordered (ms), monotonic within this process.

    A write replayed from a cluster log (clock.replaying) mints the same ids on every node: the
    write's time, and a counter and random bits derived from its op id."""
    global _last_ms, _seq
    replay = clock.current()
    if replay is not None:
        ms = int(replay.ts * 1000)
        bits = replay.next_random()
        value = (ms << 80) | (0x7 << 76) | ((replay.minted & 0xFFF) << 64) | (0b10 << 62) | (bits & ((1 << 62) - 1))
        return f"{value:032x}"
    with _lock:
        ms = int(time.time() * 1000)
        if ms <= _last_ms:
            ms = _last_ms
            _seq += 1
            if _seq >= 1 << 12:  # 4096 ids in one millisecond: borrow the next one
                ms += 1
                _seq = 0
        else:
            _seq = 0
        _last_ms = ms
        seq = _seq
    rand = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms << 80) | (0x7 << 76) | (seq << 64) | (0b10 << 62) | rand
    return f"{value:032x}"
