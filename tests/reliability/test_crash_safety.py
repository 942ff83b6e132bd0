"""kill -9 under concurrent writes: every acknowledged write survives, the database reopens.

Writers store memories over gRPC from several threads and record each id the server
acknowledged; at a random moment the server gets SIGKILL. After a restart on the same data
directory every acknowledged memory must be there with its exact content, and the server must
serve reads and writes. 5 iterations in `make test`, 25 in `make stress`.
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import pytest

import engram
from bench.common import ROOT_KEY, ServerProcess

from .conftest import STRESS

ITERATIONS = 25 if STRESS else 5
WRITERS = 8


def _client(server: ServerProcess) -> engram.Client:
    # No retries: a call that fails while the server dies must stay unacknowledged.
    return engram.Client(f"grpc://{server.grpc_target}", api_key=ROOT_KEY, retry=engram.Retry(attempts=1), timeout=10)


def _write_until_killed(server: ServerProcess, acked: dict[str, str], stop: threading.Event, writer: int) -> None:
    with _client(server) as client:
        n = 0
        while not stop.is_set():
            content = f"crash-test writer {writer} item {n} {random.random()}"
            try:
                resp = client.store(f"crash-{writer % 3}", content)
            except engram.EngramError:
                break  # the server died mid-call: that write was never acknowledged
            acked[resp.memory.id] = content
            n += 1


@pytest.mark.parametrize("iteration", range(ITERATIONS))
def test_acknowledged_writes_survive_sigkill(tmp_path: Path, encryption_key: str, iteration: int) -> None:
    data_dir = tmp_path / "data"
    acked: dict[str, str] = {}
    rng = random.Random(iteration)
    for _round in range(2):  # kill twice on the same directory: recovery of a recovered database
        server = ServerProcess(data_dir=data_dir, encryption_key=encryption_key)
        server.start()
        stop = threading.Event()
        threads = [
            threading.Thread(target=_write_until_killed, args=(server, acked, stop, w), daemon=True)
            for w in range(WRITERS)
        ]
        for t in threads:
            t.start()
        time.sleep(rng.uniform(0.5, 2.5))
        assert server.proc is not None
        server.proc.kill()  # SIGKILL: no flush, no shutdown hook
        server.proc.wait()
        stop.set()
        for t in threads:
            t.join(timeout=15)
    assert acked, "no write was acknowledged before the kill; the test proved nothing"

    server = ServerProcess(data_dir=data_dir, encryption_key=encryption_key)
    server.start()
    try:
        with _client(server) as client:
            lost = []
            for memory_id, content in acked.items():
                try:
                    got = client.get(memory_id)
                except engram.EngramError as err:
                    lost.append((memory_id, err.code))
                    continue
                assert got.memory.content == content, f"{memory_id} came back changed"
            assert not lost, f"{len(lost)} of {len(acked)} acknowledged writes lost: {lost[:5]}"
            # and it still serves: a write and a recall that sees it
            stored = client.store("crash-after", "written after recovery")
            found = client.recall("crash-after", "after recovery")
            assert found.memories and found.memories[0].id == stored.memory.id
    finally:
        server.stop()
    print(f"iteration {iteration}: {len(acked)} acknowledged writes, 0 lost")
