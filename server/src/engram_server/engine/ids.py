"""Identifiers and storage-key building blocks. Keys carry ids only, never user content."""

from __future__ import annotations

import os
import threading
import time
from urllib.parse import quote

_lock = threading.Lock()
_last_ms = 0
_seq = 0


def new_id() -> str:
    """UUIDv7 as 32 hex characters: time-ordered (ms), monotonic within this process."""
    global _last_ms, _seq
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


def agent_key(agent_id: str) -> str:
    """The agent's storage token: percent-encoded so it never contains '/', NUL or spaces
    (prefix scans of one agent can then never reach another)."""
    return quote(agent_id, safe="")


def rec_key(qa: str, memory_id: str) -> bytes:
    return f"{qa}\x00{memory_id}".encode()


def agent_prefix(qa: str) -> bytes:
    return f"{qa}\x00".encode()
