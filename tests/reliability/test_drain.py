"""SIGTERM under load: /health turns 503 "stopping" at once, every call sent before the server
stopped accepting is answered (zero client errors in flight), and the process exits 0 within
drain_delay + shutdown_timeout."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import grpc
import httpx

from bench.common import ROOT_KEY, ServerProcess
from engram_server import pb

from .conftest import STRESS

HEADERS = {"authorization": f"Bearer {ROOT_KEY}"}
DRAIN_DELAY = 1.0
SHUTDOWN_TIMEOUT = 10.0
CLIENTS = 6 if STRESS else 4


def test_sigterm_under_load_drains_every_call_in_flight(data_dir: Path, encryption_key: str) -> None:
    server = ServerProcess(
        data_dir=data_dir,
        encryption_key=encryption_key,
        extra_args=["--drain-delay", str(DRAIN_DELAY), "--shutdown-timeout", str(SHUTDOWN_TIMEOUT)],
    )
    server.start()
    assert server.proc is not None
    calls: list[tuple[float, float, str]] = []  # (sent, answered, outcome)
    lock = threading.Lock()
    done = threading.Event()

    def record(sent: float, outcome: str) -> None:
        with lock:
            calls.append((sent, time.monotonic(), outcome))

    def grpc_client(i: int) -> None:
        channel = grpc.insecure_channel(server.grpc_target)
        store = channel.unary_unary("/engram.v1.MemoryService/StoreMemory", lambda m: m.SerializeToString(), None)
        recall = channel.unary_unary("/engram.v1.MemoryService/Recall", lambda m: m.SerializeToString(), None)
        md = (("authorization", f"Bearer {ROOT_KEY}"),)
        n = 0
        while not done.is_set():
            sent = time.monotonic()
            try:
                if n % 2:
                    recall(pb.RecallRequest(agent_id=f"d{i}", query="note about the drain", top_k=5), metadata=md)
                else:
                    store(pb.StoreMemoryRequest(agent_id=f"d{i}", content=f"note {n} about the drain"), metadata=md)
                record(sent, "ok")
            except grpc.RpcError as exc:
                record(sent, f"grpc {exc.code().name}")
            n += 1
        channel.close()

    def rest_client(i: int) -> None:
        with httpx.Client(base_url=server.base_url, headers=HEADERS, timeout=30) as http:
            n = 0
            while not done.is_set():
                sent = time.monotonic()
                try:
                    r = http.post("/v1/memories", json={"agent_id": f"r{i}", "content": f"rest note {n}"})
                    record(sent, "ok" if r.status_code == 200 else f"http {r.status_code}")
                except httpx.HTTPError as exc:
                    record(sent, f"connection {type(exc).__name__}")
                n += 1

    threads = [threading.Thread(target=grpc_client, args=(i,)) for i in range(CLIENTS // 2)]
    threads += [threading.Thread(target=rest_client, args=(i,)) for i in range(CLIENTS - CLIENTS // 2)]
    for t in threads:
        t.start()
    time.sleep(2.0)
    term_at = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    health = httpx.get(f"{server.base_url}/health", timeout=5)  # within the drain delay
    assert health.status_code == 503 and health.json()["status"] == "stopping", health.text
    code = server.proc.wait(DRAIN_DELAY + SHUTDOWN_TIMEOUT + 15)
    exited_in = time.monotonic() - term_at
    done.set()
    for t in threads:
        t.join(30)
    server.proc = None
    assert code == 0, server.log_path.read_text()[-3000:] if server.log_path else code
    assert exited_in < DRAIN_DELAY + SHUTDOWN_TIMEOUT + 5, exited_in

    # Every call sent while the server still accepted was answered, and answered well.
    accepting_until = term_at + DRAIN_DELAY - 0.1
    in_flight = [c for c in calls if c[0] < accepting_until]
    failed = [c for c in in_flight if c[2] != "ok"]
    assert len(in_flight) > 20, len(in_flight)
    assert not failed, failed[:5]
    print(f"drain: {len(in_flight)} calls sent while accepting, {len(failed)} failed; exited {exited_in:.2f} s after SIGTERM")
    log = server.log_path.read_text() if server.log_path else ""
    assert "Traceback" not in log and "KeyError" not in log, log[-3000:]
