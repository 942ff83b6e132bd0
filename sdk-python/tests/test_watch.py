"""The change stream (WatchMemories) against real engram-servers, over REST and over gRPC.

Most tests use the session server. Restarts, a short heartbeat interval and a tiny retention
need servers of their own (:class:`ServerProcess`): a restart keeps the data directory and port.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import engram
from engram import errors
from engram.models import MemoryEvent, MemoryEventType

from .conftest import Server, ServerProcess

pytestmark = pytest.mark.server


def _take(watch: engram.Watch, n: int) -> list[MemoryEvent]:
    return list(itertools.islice(watch, n))


def _in_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    """Run ``fn`` in a daemon thread; its result (or exception) lands in the list."""
    box: list[Any] = []

    def run() -> None:
        try:
            box.append(fn())
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            box.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, box


def _wait_until(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


# --- against the session server -------------------------------------------------------------


def test_watch_delivers_created_updated_deleted_in_order(client: engram.Client, agent_id: str) -> None:
    stored = client.store(agent_id, "Watched memory").memory
    assert stored is not None
    client.update(stored.id, agent_id=agent_id, content="Watched memory, edited")
    client.delete(stored.id, agent_id=agent_id)

    with client.watch(agent_id, start_after="0") as watch:
        events = _take(watch, 3)
        assert watch.cursor == events[-1].cursor
    assert watch.closed
    assert [e.type for e in events] == [MemoryEventType.CREATED, MemoryEventType.UPDATED, MemoryEventType.DELETED]
    assert [e.version for e in events] == [1, 2, 2]
    assert all(e.memory_id == stored.id and e.agent_id == agent_id and e.time is not None for e in events)
    assert events[0].memory is not None and events[0].memory.content == "Watched memory"
    assert events[1].memory is not None and events[1].memory.content == "Watched memory, edited"
    assert events[2].memory is None
    cursors = [int(e.cursor) for e in events]
    assert cursors == sorted(set(cursors))
    assert list(watch) == []  # a closed watch yields nothing more


def test_watch_resumes_after_a_cursor(client: engram.Client, agent_id: str) -> None:
    for text in ("first", "second", "third"):
        client.store(agent_id, text)
    with client.watch(agent_id, start_after="0") as watch:
        first = _take(watch, 1)
        resume = watch.cursor
    assert resume == first[0].cursor
    with client.watch(agent_id, start_after=resume) as watch:
        rest = _take(watch, 2)
    assert [e.memory.content for e in first + rest if e.memory] == ["first", "second", "third"]


def test_watch_from_now_sees_only_new_changes(client: engram.Client, agent_id: str) -> None:
    client.store(agent_id, "before the watch")
    watch = client.watch(agent_id)
    thread, box = _in_thread(lambda: _take(watch, 1))
    # The call is opened by the thread: store until the watch has seen one of the stores.
    n = 0
    while thread.is_alive() and n < 50:
        client.store(agent_id, f"after the watch {n}", duplicate_policy="off")
        n += 1
        thread.join(0.2)
    watch.close()
    assert not thread.is_alive()
    (event,) = box[0]
    assert event.type == MemoryEventType.CREATED and event.memory.content.startswith("after the watch")


def test_watch_responses_is_the_raw_stream(client: engram.Client, agent_id: str) -> None:
    client.store(agent_id, "raw")
    stream = client.watch_responses(agent_id, start_after="0")
    first = next(iter(stream))
    stream.close()  # type: ignore[attr-defined]
    assert [e.type for e in first.events] == [MemoryEventType.CREATED]
    assert first.cursor == first.events[-1].cursor


def test_malformed_cursor_is_invalid_argument(client: engram.Client, agent_id: str) -> None:
    started = time.monotonic()
    with pytest.raises(errors.InvalidArgument), client.watch(agent_id, start_after="yesterday") as watch:
        next(watch)
    assert time.monotonic() - started < 5  # not retried
    with pytest.raises(TypeError, match="start_after"):
        client.watch(agent_id, start_after=0)  # type: ignore[arg-type]


def test_watch_of_a_forbidden_agent_is_refused(client: engram.Client, server: Server, agent_id: str) -> None:
    key = client.create_api_key("pinned " + agent_id, "read_only", agent_ids=[agent_id]).key
    pinned = engram.Client(client.url, api_key=key, transport=client.transport)  # type: ignore[arg-type]
    with pinned, pytest.raises(errors.PermissionDenied), pinned.watch(agent_id + "-other", start_after="0") as watch:
        next(watch)


@pytest.mark.anyio
async def test_async_watch(server: Server, transport: str, agent_id: str) -> None:
    async with engram.AsyncClient(server.url(transport), api_key=server.api_key) as client:
        stored = await client.store(agent_id, "async watched")
        await client.delete(stored.memory.id, agent_id=agent_id)  # type: ignore[union-attr]
        events = []
        async with client.watch(agent_id, start_after="0") as watch:
            async for event in watch:
                events.append(event)
                if len(events) == 2:
                    break
            assert watch.cursor == events[-1].cursor
        assert [e.type for e in events] == [MemoryEventType.CREATED, MemoryEventType.DELETED]
        assert [e async for e in watch] == []


# --- a server restarted under a running watch -------------------------------------------------


@pytest.fixture(scope="module")
def restartable(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("restart"))
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


def _restart_and_store(proc: ServerProcess, agent_id: str, texts: list[str]) -> None:
    proc.restart()
    # A fresh client: the watch's own connection is the one under test.
    with engram.Client(proc.http_url, api_key=proc.api_key) as writer:
        for text in texts:
            writer.store(agent_id, text)


@pytest.mark.parametrize("transport", ["rest", "grpc"])
def test_watch_resumes_after_server_restart(restartable: ServerProcess, transport: str, agent_id: str) -> None:
    """Stop the server under a running watch, start it again on the same data, store more: the
    watch reconnects from its cursor and delivers every change once, in order."""
    with engram.Client(restartable.url(transport), api_key=restartable.api_key) as client:
        client.store(agent_id, "one")
        client.store(agent_id, "two")
        watch = client.watch(agent_id, start_after="0", reconnect_timeout=60)
        seen: list[MemoryEvent] = []

        def consume() -> None:
            for event in watch:
                seen.append(event)
                if len(seen) == 4:
                    return

        thread, box = _in_thread(consume)
        _wait_until(lambda: len(seen) == 2)
        _restart_and_store(restartable, agent_id, ["three", "four"])
        thread.join(60)
        watch.close()
        assert not thread.is_alive() and box == [None], box
    assert [e.memory.content for e in seen if e.memory] == ["one", "two", "three", "four"]
    cursors = [int(e.cursor) for e in seen]
    assert cursors == sorted(set(cursors))  # no gap in order, no duplicate
    assert watch.reconnects >= 1


@pytest.mark.anyio
@pytest.mark.parametrize("transport", ["rest", "grpc"])
async def test_async_watch_resumes_after_server_restart(
    restartable: ServerProcess, transport: str, agent_id: str
) -> None:
    import anyio.to_thread

    async with engram.AsyncClient(restartable.url(transport), api_key=restartable.api_key) as client:
        await client.store(agent_id, "one")
        seen: list[MemoryEvent] = []
        async with client.watch(agent_id, start_after="0", reconnect_timeout=60) as watch:
            async for event in watch:
                seen.append(event)
                if len(seen) == 1:
                    await anyio.to_thread.run_sync(_restart_and_store, restartable, agent_id, ["two", "three"])
                if len(seen) == 3:
                    break
    assert [e.memory.content for e in seen if e.memory] == ["one", "two", "three"]
    assert watch.reconnects >= 1


def test_gives_up_after_reconnect_timeout(server_process: ServerProcess, agent_id: str) -> None:
    proc = server_process
    proc.start()
    with engram.Client(proc.http_url, api_key=proc.api_key) as client:
        client.store(agent_id, "only")
        with client.watch(agent_id, start_after="0", reconnect_timeout=1.0) as watch:
            assert _take(watch, 1)[0].memory.content == "only"  # type: ignore[union-attr]
            proc.stop()
            started = time.monotonic()
            with pytest.raises(errors.Unavailable):
                next(watch)
            assert time.monotonic() - started < 10


def test_server_down_at_the_start_fails_fast(tmp_path: Path) -> None:
    proc = ServerProcess(tmp_path)  # never started: nothing listens on its port
    with engram.Client(proc.http_url, api_key="k" * 20, retry=engram.Retry(attempts=2, backoff=0.01)) as client:
        with pytest.raises(errors.Unavailable, match="cannot connect"), client.watch() as watch:
            next(watch)
        assert watch.reconnects == 1


# --- heartbeats, on a server that sends them every 0.3 s --------------------------------------


@pytest.fixture(scope="module")
def fast_heartbeats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("heartbeat"), heartbeat=0.3)
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.mark.parametrize("transport", ["rest", "grpc"])
def test_heartbeats_move_the_cursor_and_are_never_events(
    fast_heartbeats: ServerProcess, transport: str, agent_id: str
) -> None:
    with engram.Client(fast_heartbeats.url(transport), api_key=fast_heartbeats.api_key) as client:
        raw = client.watch_responses(agent_id)
        beats = list(itertools.islice(raw, 2))  # nothing happens: two heartbeats
        raw.close()  # type: ignore[attr-defined]
        assert [b.events for b in beats] == [[], []] and all(b.cursor.isdigit() for b in beats)

        watch = client.watch(agent_id)
        thread, box = _in_thread(lambda: _take(watch, 1))
        _wait_until(lambda: watch.cursor != "")  # a heartbeat arrived; the thread still waits
        other = client.store(agent_id + "-other", "another agent's change")
        assert other.memory is not None
        # The next heartbeat carries a cursor past the other agent's change, which is not shown.
        other_cursor = int(client.watch_responses(agent_id + "-other", start_after="0").__next__().cursor)
        _wait_until(lambda: int(watch.cursor) >= other_cursor)
        assert thread.is_alive() and box == []
        mine = client.store(agent_id, "my change").memory
        thread.join(10)
        watch.close()
        (event,) = box[0]
        assert event.memory_id == mine.id and int(event.cursor) > other_cursor  # type: ignore[union-attr]


def test_close_from_another_thread_ends_the_iteration(fast_heartbeats: ServerProcess, agent_id: str) -> None:
    with engram.Client(fast_heartbeats.http_url, api_key=fast_heartbeats.api_key) as client:
        watch = client.watch(agent_id)
        thread, box = _in_thread(lambda: list(watch))
        _wait_until(lambda: watch.cursor != "")
        watch.close()
        thread.join(5)
        assert not thread.is_alive() and box == [[]]


# --- a cursor past retention ------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["rest", "grpc"])
def test_cursor_past_retention_raises_cursor_expired(tmp_path: Path, transport: str, agent_id: str) -> None:
    proc = ServerProcess(tmp_path, "--max-retained-events", "1", "--maintenance-interval", "0.1")
    try:
        proc.start()
        with engram.Client(proc.url(transport), api_key=proc.api_key) as client:
            for text in ("a", "b", "c"):
                client.store(agent_id, text)

            def expired() -> bool:
                try:
                    next(iter(client.watch_responses(agent_id, start_after="1")))
                except errors.CursorExpired:
                    return True
                return False

            _wait_until(expired)  # once maintenance has dropped the oldest changes
            # "0" is never out of range: it replays what is retained (the last change)
            first = next(iter(client.watch_responses(agent_id, start_after="0")))
            assert [e.memory.content for e in first.events if e.memory] == ["c"]
            with pytest.raises(errors.CursorExpired) as info, client.watch(agent_id, start_after="1") as watch:
                next(watch)
            error = info.value
            assert isinstance(error, errors.OutOfRange) and error.code == "OUT_OF_RANGE"
            assert error.cursor == "1" and "export()" in error.message and error.from_server
    finally:
        proc.stop()
