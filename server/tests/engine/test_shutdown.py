"""Closing never waits for index work: a graph build under way (here the worker's first build,
which also compiles pynndescent, tens of seconds) is abandoned, the close returns at once and
releases the data directory, and the next start has every memory and seals again."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from conftest import open_engine
from engram_server.engine.models import NewMemory, RecallMode, RecallQuery


def test_close_abandons_a_graph_build_and_the_next_start_seals_again(data_dir: Path) -> None:
    eng = open_engine(data_dir, seal_threshold=500)
    ids = []
    for start in range(0, 1500, 250):
        batch = [NewMemory("bulk", f"bulk memory number {i} about topic {i % 37}") for i in range(start, start + 250)]
        ids += [m.id for m, _ in eng.store_batch(batch)]
    rounds = threading.Thread(target=eng.run_maintenance)  # seals three segments: builds start
    rounds.start()
    deadline = time.monotonic() + 30
    while eng.stats().index_builds_pending == 0:
        assert time.monotonic() < deadline, "no build started"
        time.sleep(0.05)
    t0 = time.monotonic()
    eng.close()
    closed_in = time.monotonic() - t0
    rounds.join(30)
    assert not rounds.is_alive()
    assert closed_in < 10, f"close waited {closed_in:.1f} s for index work"

    eng = open_engine(data_dir, seal_threshold=500)  # the lock was released
    try:
        assert eng.list_memories("bulk", page_size=1).total_size == 1500
        hit = eng.recall(RecallQuery("bulk", "bulk memory number 1234", top_k=1, mode=RecallMode.KEYWORD))
        assert hit.memories[0].memory.id == ids[1234]
        eng.run_maintenance()
        assert eng.wait_for_indexes("bulk", 300)
        s = eng.stats()
        assert s.vectors_indexed + s.vectors_exact == 1500
    finally:
        eng.close()
