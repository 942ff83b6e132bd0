"""Each session's memories in time order, so recall can find a memory's neighbours.

A conversation stored one turn per memory splits facts across turns: the question is in one,
the answer in the next ("What's your favourite?" / "Coconut ice cream"). Recall lets a hit lend
part of its relevance to the memories just before and after it in the same session
(`fusion.spread_session_context`); this index answers "who are they".

Order is (event_time, created_at, id): ids the engine assigns are time-ordered, so memories of
one batch keep their request order. Membership is kept for every session (a set per session,
cheap at load time); the sorted order of a session is built on its first lookup and then kept
up to date, so loading 100k memories costs no sorting and an agent that never recalls near a
session never pays for it. Callers hold the agent's lock.
"""

from __future__ import annotations

from sortedcontainers import SortedList

from .catalogue import Entry

_Key = tuple[float, float, str]


def _key(e: Entry) -> _Key:
    return (e.event_time, e.created_at, e.id)


class SessionIndex:
    def __init__(self) -> None:
        self._members: dict[str, set[str]] = {}  # session -> ids
        self._ordered: dict[str, SortedList] = {}  # session -> keys, for sessions looked up

    def __bool__(self) -> bool:
        """Whether any memory has a session (read without the lock: a stale answer only
        means one recall without session context for a memory stored concurrently)."""
        return bool(self._members)

    def put(self, e: Entry, old: Entry | None) -> None:
        if old is not None:
            self.remove(old)
        if not e.session:
            return
        self._members.setdefault(e.session, set()).add(e.id)
        ordered = self._ordered.get(e.session)
        if ordered is not None:
            ordered.add(_key(e))

    def remove(self, e: Entry) -> None:
        if not e.session:
            return
        members = self._members.get(e.session)
        if members is None:
            return
        members.discard(e.id)
        ordered = self._ordered.get(e.session)
        if ordered is not None:
            ordered.discard(_key(e))
        if not members:
            del self._members[e.session]
            self._ordered.pop(e.session, None)

    def _order(self, session: str, entries: dict[str, Entry]) -> SortedList | None:
        ordered = self._ordered.get(session)
        if ordered is None:
            ids = self._members.get(session)
            if ids is None:
                return None
            ordered = self._ordered[session] = SortedList(_key(entries[i]) for i in ids if i in entries)
        return ordered

    def previous(self, session: str, key: _Key, entries: dict[str, Entry]) -> str | None:
        """The id just before `key` (event_time, created_at, id) in the session, or None.
        `key` need not be a member (a memory about to be stored)."""
        if not session:
            return None
        ordered = self._order(session, entries)
        if not ordered:
            return None
        pos = ordered.bisect_left(key)
        return ordered[pos - 1][2] if pos > 0 else None

    def neighbours(self, e: Entry, entries: dict[str, Entry], radius: int = 1) -> list[str]:
        """Ids up to `radius` places before and after e in its session, nearest first."""
        if not e.session or e.session not in self._members:
            return []
        ordered = self._order(e.session, entries)
        assert ordered is not None
        pos = ordered.bisect_left(_key(e))
        if pos >= len(ordered) or ordered[pos][2] != e.id:
            return []
        out: list[str] = []
        for d in range(1, radius + 1):
            if pos - d >= 0:
                out.append(ordered[pos - d][2])
            if pos + d < len(ordered):
                out.append(ordered[pos + d][2])
        return out
