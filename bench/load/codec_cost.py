"""What the server's message handling costs per recall, without the network: a 10-hit
RecallResponse built in place from engine records, its binary encoding, its JSON (the server's
writer and protobuf's json_format for comparison), and a RecallRequest's decoding.

    .venv/bin/python -m bench.load.codec_cost [--rounds 2000]

Medians of `--rounds` timed runs, in microseconds.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from engram_server import pb
from engram_server.engine import models as m
from engram_server.service import convert as cv
from engram_server.transport.grpc import decode
from engram_server.transport.json_codec import JsonWriter, reference_dict


def _result(n: int = 10) -> m.RecallResult:
    hits = []
    for i in range(n):
        mem = m.Memory(
            id=f"0199b7c2a1f27c3e8a1b2c3d4e5f6a7{i}",
            agent_id="agent-1",
            content="The user prefers window seats on long flights, especially across the Atlantic.",
            memory_type=m.MemoryType.SEMANTIC,
            importance=0.8,
            tags=["travel", "preferences"],
            metadata={"dia_id": f"D1:{i}", "source": "chat"},
            session_id="session_3",
            event_time=1_700_000_000.25 + i,
            created_at=1_700_000_001.5 + i,
            updated_at=1_700_000_001.5 + i,
            access_count=3,
            last_accessed_at=1_700_000_100.125,
            embedding_model="all-MiniLM-L6-v2/int8",
        )
        hits.append(m.ScoredMemory(mem, 0.83 - i / 100, 0.71, 5.2))
    return m.RecallResult(hits, 30, 7.5)


def _median_us(fn: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2000)
    args = parser.parse_args()
    result = _result()
    response = cv.recall_result_to_pb(result)
    request = pb.RecallRequest(agent_id="agent-1", query="which seat does the user like?", top_k=10)
    wire = request.SerializeToString()
    writer = JsonWriter()
    rows = [
        ("build RecallResponse (10 hits)", lambda: cv.recall_result_to_pb(result)),
        ("encode (binary)", response.SerializeToString),
        ("JSON: JsonWriter", lambda: writer.to_dict(response)),
        ("JSON: json_format.MessageToDict", lambda: reference_dict(response)),
        ("decode RecallRequest (binary)", lambda: decode(pb.RecallRequest, wire)),
    ]
    print(f"{'step':36}{'median µs':>12}")
    for name, fn in rows:
        fn()  # warm caches
        print(f"{name:36}{_median_us(fn, args.rounds):>12.1f}")


if __name__ == "__main__":
    main()
