"""WatchMemories over the wire (a real server subprocess): every change once and in order, across a
restart, within a key's scope; REST as Server-Sent Events; streams released when clients leave."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator

import grpc
import httpx
import pytest
from engram._gen.engram import v1 as pb

from .conftest import ROOT_KEY, GrpcStub, ServerProcess, authed

AUTH = {"authorization": f"Bearer {ROOT_KEY}"}
CREATED, UPDATED, DELETED, EXPIRED = (
    pb.MemoryEventType.CREATED,
    pb.MemoryEventType.UPDATED,
    pb.MemoryEventType.DELETED,
    pb.MemoryEventType.EXPIRED,
)


@pytest.fixture
def fast_server(tmp_path) -> Iterator[ServerProcess]:
    """A server whose maintenance runs every 0.2 s (expiries are logged within it)."""
    s = ServerProcess(tmp_path, ["--maintenance-interval", "0.2"])
    s.wait_healthy()
    yield s
    s.stop()


def stub(server: ServerProcess, key: str = ROOT_KEY) -> tuple[GrpcStub, grpc.Channel]:
    ch = grpc.insecure_channel(server.target)
    return GrpcStub(authed(ch, key), "MemoryService"), ch


class Collector:
    """Reads a watch stream on a thread until told to stop; keeps (type, memory id, version)."""

    def __init__(self, call: grpc.Call) -> None:
        self.call = call
        self.events: list[pb.MemoryEvent] = []
        self.cursor = ""
        self.error: grpc.RpcError | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for resp in self.call:
                self.events += list(resp.events)
                self.cursor = resp.cursor
        except grpc.RpcError as err:
            self.error = err

    def wait_for(self, n: int, timeout: float = 20) -> list[tuple[int, str, int]]:
        deadline = time.monotonic() + timeout
        while len(self.events) < n and time.monotonic() < deadline:
            time.sleep(0.02)
        return [(e.type, e.memory_id, e.version) for e in self.events]

    def stop(self) -> None:
        self.call.cancel()
        self.thread.join(5)


def test_a_watcher_sees_writes_deletes_and_expiries_once_in_order(fast_server):
    mem, ch = stub(fast_server)
    try:
        watch = Collector(mem.watch_memories(pb.WatchMemoriesRequest(agent_id="w")))
        time.sleep(0.3)  # the watch starts "from now": give it time to be in place
        a = mem.store_memory(pb.StoreMemoryRequest(agent_id="w", content="alpha")).memory.id
        batch = mem.batch_store_memories(
            pb.BatchStoreMemoriesRequest(
                requests=[pb.StoreMemoryRequest(agent_id="w", content=f"burst {i}") for i in range(20)]
            )
        )
        ids = [m.id for m in batch.memories]
        mem.update_memory(pb.UpdateMemoryRequest(memory=pb.Memory(id=a, agent_id="w", content="alpha 2")))
        again = mem.store_memory(pb.StoreMemoryRequest(agent_id="w", content="Alpha 2."))  # an exact duplicate
        assert again.outcome == pb.StoreOutcome.MERGED
        mem.delete_memory(pb.DeleteMemoryRequest(id=ids[0], agent_id="w"))
        brief = mem.store_memory(pb.StoreMemoryRequest(agent_id="w", content="brief", ttl_seconds=1)).memory.id
        mem.store_memory(pb.StoreMemoryRequest(agent_id="other", content="not watched"))
        expected = (
            [(CREATED, a, 1)]
            + [(CREATED, i, 1) for i in ids]
            + [(UPDATED, a, 2), (UPDATED, a, 3), (DELETED, ids[0], 1), (CREATED, brief, 1), (EXPIRED, brief, 1)]
        )
        assert watch.wait_for(len(expected)) == expected
        time.sleep(0.5)
        assert len(watch.events) == len(expected)  # nothing twice, nothing of the other agent
        assert watch.events[1].memory.content == "burst 0" and watch.events[-1].memory is None
        positions = [int(e.cursor) for e in watch.events]
        assert positions == sorted(set(positions))
        watch.stop()
    finally:
        ch.close()


def test_a_watch_resumes_after_a_restart_without_gaps_or_repeats(tmp_path):
    server = ServerProcess(tmp_path)
    server.wait_healthy()
    mem, ch = stub(server)
    first = [mem.store_memory(pb.StoreMemoryRequest(agent_id="r", content=f"before {i}")).memory.id for i in range(5)]
    watch = Collector(mem.watch_memories(pb.WatchMemoriesRequest(agent_id="r", start_after="0")))
    assert [e[1] for e in watch.wait_for(5)] == first
    cursor = watch.cursor
    server.stop()  # the stream ends when the server stops
    watch.thread.join(10)
    ch.close()
    server = ServerProcess(tmp_path)
    server.wait_healthy()
    try:
        mem, ch = stub(server)
        later = [
            mem.store_memory(pb.StoreMemoryRequest(agent_id="r", content=f"after {i}")).memory.id for i in range(3)
        ]
        resumed = Collector(mem.watch_memories(pb.WatchMemoriesRequest(agent_id="r", start_after=cursor)))
        assert [e[1] for e in resumed.wait_for(3)] == later
        time.sleep(0.3)
        assert len(resumed.events) == 3
        resumed.stop()
        ch.close()
    finally:
        server.stop()


def test_a_pinned_key_watches_only_its_agents(server):
    root, ch = stub(server)
    admin = GrpcStub(authed(ch, ROOT_KEY), "AdminService")
    key = admin.create_api_key(
        pb.CreateApiKeyRequest(name="pinned watcher", role=pb.ApiKeyRole.READ_ONLY, agent_ids=["mine"])
    ).key
    pinned, ch2 = stub(server, key)
    try:
        watch = Collector(pinned.watch_memories(pb.WatchMemoriesRequest()))  # every agent it may see
        time.sleep(0.3)
        root.store_memory(pb.StoreMemoryRequest(agent_id="theirs", content="secret of another tenant"))
        mine = root.store_memory(pb.StoreMemoryRequest(agent_id="mine", content="visible")).memory.id
        assert watch.wait_for(1) == [(CREATED, mine, 1)]
        time.sleep(0.3)
        assert all(e.agent_id == "mine" for e in watch.events)
        watch.stop()
        with pytest.raises(grpc.RpcError) as err:
            next(iter(pinned.watch_memories(pb.WatchMemoriesRequest(agent_id="theirs"))))
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    finally:
        ch.close()
        ch2.close()


def sse_events(resp: httpx.Response, n: int) -> list[tuple[str, dict]]:
    out = []
    for block in _sse_blocks(resp):
        if "data" in block:
            out.append((block.get("id", ""), json.loads(block["data"])))
            if len(out) >= n:
                break
    return out


def _sse_blocks(resp: httpx.Response) -> Iterator[dict[str, str]]:
    block: dict[str, str] = {}
    for line in resp.iter_lines():
        if not line:
            if block:
                yield block
            block = {}
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        block[field] = value.lstrip(" ")


def test_rest_streams_server_sent_events_and_resumes_with_last_event_id(server):
    with httpx.Client(base_url=server.base_url, headers=AUTH, timeout=30) as http:
        ids = [
            http.post("/v1/memories", json={"agent_id": "sse", "content": f"sse {i}"}).json()["memory"]["id"]
            for i in range(3)
        ]
        headers = {"accept": "text/event-stream"}
        params = {"agent_id": "sse", "start_after": "0"}
        with http.stream("GET", "/v1/memories:watch", params=params, headers=headers) as resp:
            assert resp.status_code == 200 and resp.headers["content-type"] == "text/event-stream"
            ((first_id, first),) = sse_events(resp, 1)
        assert [e["memory_id"] for e in first["events"]] == ids and first_id == first["cursor"]
        cursor_after_first = first["events"][0]["cursor"]
        resume = {**headers, "last-event-id": cursor_after_first}
        with http.stream("GET", "/v1/memories:watch", params={"agent_id": "sse"}, headers=resume) as resp:
            ((_, rest),) = sse_events(resp, 1)
        assert [e["memory_id"] for e in rest["events"]] == ids[1:]
        # without Accept: newline-delimited JSON, headers sent before any change happens
        t0 = time.monotonic()
        with http.stream("GET", "/v1/memories:watch", params={"agent_id": "sse"}) as resp:
            assert resp.headers["content-type"] == "application/x-ndjson"
            assert time.monotonic() - t0 < 5
        bad = http.get("/v1/memories:watch", params={"agent_id": "sse", "start_after": "soon"}, headers=headers)
        assert bad.status_code == 400 and "start_after" in bad.text


def _watchers(http: httpx.Client) -> float:
    text = http.get("/metrics").text
    m = re.search(r"^engram_watchers (\S+)$", text, re.M)
    assert m, "engram_watchers metric missing"
    return float(m.group(1))


def test_watch_streams_are_released_when_clients_leave(server):
    with httpx.Client(base_url=server.base_url, headers=AUTH, timeout=30) as http:
        base = _watchers(http)
        for _ in range(50):  # opened and dropped, as by clients that crash or time out
            with http.stream("GET", "/v1/memories:watch", params={"agent_id": "gone"}) as resp:
                assert resp.status_code == 200
        mem, ch = stub(server)
        for _ in range(50):
            call = mem.watch_memories(pb.WatchMemoriesRequest(agent_id="gone"))
            call.cancel()
        ch.close()
        deadline = time.monotonic() + 10
        while _watchers(http) > base and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _watchers(http) == base


def test_consolidate_over_rest(server):
    with httpx.Client(base_url=server.base_url, headers=AUTH, timeout=30) as http:
        for text in ("The user is allergic to peanuts", "the user is allergic to peanuts!"):
            body = {"agent_id": "cons", "content": text, "duplicate_policy": "DUPLICATE_POLICY_OFF"}
            http.post("/v1/memories", json=body).raise_for_status()
        dry = http.post("/v1/memories:consolidate", json={"agent_id": "cons", "dry_run": True}).json()
        assert len(dry["groups"]) == 1 and dry.get("merged_count", 0) == 0 and dry["dry_run"] is True
        done = http.post("/v1/memories:consolidate", json={"agent_id": "cons"}).json()
        assert done["merged_count"] == 1
        assert http.get("/v1/memories", params={"agent_id": "cons"}).json()["total_size"] == 1


@pytest.mark.anyio
async def test_heartbeats_carry_the_cursor_and_a_stopping_server_ends_the_stream(app, engine, monkeypatch):
    """In process, with a short heartbeat: an idle watch still answers, with the cursor past the
    changes of agents it does not show; when the server begins to stop, the stream ends."""
    from engram_server import pb as spb
    from engram_server.auth import ROOT
    from engram_server.service import memory_service
    from engram_server.service.base import CallContext

    monkeypatch.setattr(memory_service, "WATCH_HEARTBEAT_SECONDS", 0.2)
    monkeypatch.setattr(memory_service, "WATCH_STOP_CHECK_SECONDS", 0.05)
    await app.startup()
    svc = app.registry.services["MemoryService"]
    method = app.registry.get("/engram.v1.MemoryService/WatchMemories")
    ctx = CallContext(method=method.info, transport="grpc", principal=ROOT)
    from engram_server.engine.models import NewMemory

    engine.store(NewMemory("elsewhere", "a change of another agent"))
    stream = await svc.watch_memories(spb.WatchMemoriesRequest(agent_id="idle", start_after="0"), ctx)
    it = stream.__aiter__()
    beat = await it.__anext__()
    assert list(beat.events) == [] and beat.cursor == "1"
    app.state.stopping = True
    with pytest.raises(StopAsyncIteration):
        await it.__anext__()


def test_zero_replays_what_is_retained_and_older_cursors_are_out_of_range(tmp_path):
    server = ServerProcess(tmp_path, ["--max-retained-events", "2", "--maintenance-interval", "0.1"])
    server.wait_healthy()
    mem, ch = stub(server)
    try:
        store = mem.store_memory
        ids = [store(pb.StoreMemoryRequest(agent_id="p", content=f"kept or not {i}")).memory.id for i in range(5)]
        time.sleep(1.0)  # maintenance drops all but the last 2 changes
        watch = Collector(mem.watch_memories(pb.WatchMemoriesRequest(agent_id="p", start_after="0")))
        assert [e[1] for e in watch.wait_for(2)] == ids[3:]
        watch.stop()
        with pytest.raises(grpc.RpcError) as err:
            next(iter(mem.watch_memories(pb.WatchMemoriesRequest(agent_id="p", start_after="1"))))
        assert err.value.code() == grpc.StatusCode.OUT_OF_RANGE and "ExportMemories" in err.value.details()
    finally:
        ch.close()
        server.stop()


def test_the_first_response_comes_at_once_with_the_starting_cursor(server):
    mem, ch = stub(server)
    try:
        t0 = time.monotonic()
        call = mem.watch_memories(pb.WatchMemoriesRequest(agent_id="quiet-now"))
        first = next(iter(call))
        assert time.monotonic() - t0 < 5 and list(first.events) == [] and first.cursor.isdigit()
        call.cancel()
    finally:
        ch.close()
