"""The change log behind WatchMemories: every created, updated, deleted and expired memory.

An event is written in the same atomic batch as the change it describes (`EventLog.add` puts it
in the batch; storage gives it a position when the batch is enqueued), so a change is in the log
exactly when it is durable, and positions follow commit order. A watcher reads the log from its
cursor on, then waits for `Storage.event_listeners` to say more is durable: it sees every change
once, in order, across restarts.

Keys: `position (8 bytes, big-endian) + the first 16 characters of the agent's token`; no
identifier appears in a key, and a watcher of one agent skips the others' events without opening
them. Values: the event, sealed like every value (a created or updated event carries the memory,
so a consumer needs no second read).

Retention: maintenance drops events older than `event_retention_seconds`, and the oldest beyond
`max_retained_events`; the highest dropped position is kept (`events_pruned_through`), so a cursor
older than what is retained is told apart (the watcher must resynchronise) from one that is
simply up to date. Deleting an agent drops its events too: nothing it stored outlives it there.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import fields

import orjson

from . import clock
from .errors import OutOfRange
from .models import EventPage, EventType, Memory, MemoryEvent, MemoryType
from .storage import CF_EVENTS, CF_META, Batch, Storage, event_key, event_position_of

log = logging.getLogger(__name__)

META_PRUNED_THROUGH = b"events_pruned_through"
SUFFIX_CHARS = 16  # of the agent token, in each event key
SCAN_LIMIT = 4096  # events one read looks at (delivered or not)
_MEMORY_FIELDS = tuple(f.name for f in fields(Memory))


def agent_suffix(qa: str) -> bytes:
    return qa[:SUFFIX_CHARS].encode()


class EventLog:
    def __init__(self, storage: Storage, retention_seconds: float, max_events: int) -> None:
        self._storage = storage
        self.retention_seconds = retention_seconds
        self.max_events = max_events
        raw = storage.get(CF_META, META_PRUNED_THROUGH)
        self.pruned_through = int(raw) if raw is not None else 0

    @property
    def enabled(self) -> bool:
        return self.retention_seconds > 0

    @property
    def position(self) -> int:
        """The last position known durable: "now", for a watcher that starts from now."""
        return self._storage.durable_event_position

    # --- writing ---------------------------------------------------------------------------------
    def add(
        self,
        b: Batch,
        qa: str,
        type: EventType,
        agent_id: str,
        memory_id: str,
        version: int,
        memory: Memory | None = None,
        t: float | None = None,
    ) -> None:
        """Log a change in the batch that makes it (a no-op when the change stream is off)."""
        if not self.enabled:
            return
        d: dict[str, object] = {
            "t": type.value,
            "a": agent_id,
            "m": memory_id,
            "v": version,
            "ts": t if t is not None else clock.now(),
        }
        if memory is not None:
            r = {name: getattr(memory, name) for name in _MEMORY_FIELDS}
            r["memory_type"] = memory.memory_type.value
            d["r"] = r
        try:
            payload = orjson.dumps(d)
        except TypeError:  # an integer beyond 64 bits in metadata: the json module writes it
            import json

            payload = json.dumps(d, separators=(",", ":"), ensure_ascii=False).encode()
        b.add_event(agent_suffix(qa), payload)

    def add_many(
        self, b: Batch, qa: str, type: EventType, agent_id: str, items: Iterable[tuple[str, int]], t: float
    ) -> None:
        """Log (memory id, version) deletions or expiries of one agent."""
        for memory_id, version in items:
            self.add(b, qa, type, agent_id, memory_id, version, None, t)

    # --- reading ---------------------------------------------------------------------------------
    def check_cursor(self, after: int) -> None:
        """OutOfRange when events after `after` were already dropped: the watcher missed some."""
        if after < self.pruned_through:
            raise OutOfRange(
                f"cursor {after} is older than the retained changes (they start after {self.pruned_through}); "
                "resynchronise with ExportMemories, then watch from the cursor of a new watch"
            )

    def read(
        self,
        after: int,
        limit: int,
        suffix: bytes | None = None,
        allow: Callable[[str], bool] | None = None,
    ) -> EventPage:
        """Up to `limit` events after position `after`: of one agent (`suffix`, its token's) or of
        the agents `allow` accepts (None: every agent). Looks at most at SCAN_LIMIT events; the
        page's position is the last one looked at, so a watcher's cursor moves past the others'."""
        self.check_cursor(after)
        events: list[MemoryEvent] = []
        position = after
        scanned = 0
        gen = self._storage.scan_at_snapshot(CF_EVENTS, event_key(after + 1, b""), fill_cache=False)
        try:
            for key, value in gen:
                position = event_position_of(key)
                scanned += 1
                if suffix is None or key[8:] == suffix:
                    ev = decode(position, value)
                    if allow is None or allow(ev.agent_id):
                        events.append(ev)
                if len(events) >= limit or scanned >= SCAN_LIMIT:
                    break
        finally:
            gen.close()
        return EventPage(events, position)

    # --- retention -------------------------------------------------------------------------------
    def prune(self, now: float | None = None) -> int:
        """Drop events past retention (age, then count). Returns how many positions were dropped."""
        now = time.time() if now is None else now
        cutoff_time = now - self.retention_seconds if self.enabled else float("inf")
        keep_from = self.position - self.max_events + 1  # the oldest position the count allows
        upto = self.pruned_through
        gen = self._storage.scan_at_snapshot(CF_EVENTS, event_key(self.pruned_through + 1, b""), fill_cache=False)
        try:
            for key, value in gen:
                position = event_position_of(key)
                if position >= keep_from and decode(position, value).time >= cutoff_time:
                    break
                upto = position
        finally:
            gen.close()
        if upto <= self.pruned_through:
            return 0
        b = self._storage.batch()
        b.ops.append((Batch.RANGE, CF_EVENTS, event_key(self.pruned_through + 1, b""), event_key(upto + 1, b"")))
        b.put(CF_META, META_PRUNED_THROUGH, str(upto).encode())
        self._storage.write(b)
        dropped = upto - self.pruned_through
        self.pruned_through = upto
        return dropped

    def purge_agent(self, b: Batch, qa: str) -> int:
        """Put the deletion of every event of an agent in b (its agent is being erased)."""
        suffix = agent_suffix(qa)
        n = 0
        for key in self._storage.scan_keys(CF_EVENTS, b""):
            if key[8:] == suffix:
                b.delete(CF_EVENTS, key)
                n += 1
        return n


def decode(position: int, value: bytes) -> MemoryEvent:
    try:
        d = orjson.loads(value)
    except orjson.JSONDecodeError:  # an integer beyond 64 bits (written by the json module)
        import json

        d = json.loads(value)
    r = d.get("r")
    memory = None
    if r is not None:
        r["memory_type"] = MemoryType(r["memory_type"])
        memory = Memory(**r)
    return MemoryEvent(
        position=position,
        type=EventType(d["t"]),
        agent_id=d["a"],
        memory_id=d["m"],
        time=float(d["ts"]),
        version=int(d["v"]),
        memory=memory,
    )
