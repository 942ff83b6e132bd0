"""kill -9 durability and a concurrency hammer with invariants afterwards."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from conftest import open_engine
from engram_server.engine.errors import NotFound
from engram_server.engine.models import MemoryFilter, MemoryPatch, NewMemory, RecallQuery

WRITER = r"""
import sys, threading
sys.path.insert(0, sys.argv[2])
from conftest import open_engine
from engram_server.engine.models import NewMemory
eng = open_engine(__import__("pathlib").Path(sys.argv[1]))
lock = threading.Lock()
def work(t):
    i = 0
    while True:
        m, _ = eng.store(NewMemory(f"agent-{t % 3}", f"writer {t} item {i}"))
        with lock:
            print(m.agent_id, m.id, flush=True)
        i += 1
threads = [threading.Thread(target=work, args=(t,), daemon=True) for t in range(8)]
print("started", flush=True)
for th in threads: th.start()
for th in threads: th.join()
"""


def test_kill_9_loses_no_acknowledged_write(data_dir: Path, tmp_path: Path) -> None:
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    here = str(Path(__file__).parent)
    for iteration in range(3):
        proc = subprocess.Popen([sys.executable, str(script), str(data_dir), here], stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        try:
            assert proc.stdout.readline().strip() == "started"
            time.sleep(random.uniform(0.3, 1.2))
        finally:
            proc.send_signal(signal.SIGKILL)
            out, _ = proc.communicate()
        # The last line may be cut by the kill (a partial print): only newline-terminated ones count.
        acked = [line.split() for line in out.split("\n")[:-1] if line.count(" ") == 1]
        assert acked, "the writer acknowledged nothing"
        eng = open_engine(data_dir)
        try:
            for agent_id, mid in acked:
                assert eng.get(agent_id, mid).agent_id == agent_id
            total = sum(eng.list_memories(f"agent-{a}").total_size for a in range(3))
            assert total >= len(acked)
            assert eng.recall(RecallQuery(acked[-1][0], "writer item", top_k=3)).memories
        finally:
            eng.close()
        print(f"iteration {iteration}: {len(acked)} acknowledged, {total} present")


def test_concurrency_hammer(data_dir: Path) -> None:
    eng = open_engine(data_dir)
    stop = time.monotonic() + 4.0
    errors: list[BaseException] = []
    live: dict[str, str] = {}
    deleted: set[str] = set()
    lock = threading.Lock()
    id_locks: dict[str, threading.Lock] = {}

    def writer(t: int) -> None:
        rnd = random.Random(t)
        try:
            while time.monotonic() < stop:
                op = rnd.random()
                with lock:
                    pool = list(live)
                if op < 0.5 or not pool:
                    m, _ = eng.store(NewMemory("hammer", f"thread {t} word{rnd.randint(0, 50)}", tags=[f"t{t}"]))
                    with lock:
                        live[m.id] = m.content
                elif op < 0.75:
                    mid = rnd.choice(pool)
                    text = f"updated by {t} word{rnd.randint(0, 50)}"
                    with lock:
                        mlock = id_locks.setdefault(mid, threading.Lock())
                    # Two updates of one memory must land in the engine and in this model in the
                    # same order; other ids, stores, deletes and reads still race freely.
                    with mlock:
                        try:
                            eng.update("hammer", mid, MemoryPatch(content=text))
                            with lock:
                                if mid in live:
                                    live[mid] = text
                        except NotFound:
                            pass
                else:
                    mid = rnd.choice(pool)
                    with lock:
                        if mid not in live:
                            continue
                        del live[mid]  # claim before deleting: no update races the bookkeeping
                        deleted.add(mid)
                    eng.delete("hammer", mid)
        except BaseException as exc:
            errors.append(exc)

    def reader(t: int) -> None:
        try:
            while time.monotonic() < stop:
                eng.recall(RecallQuery("hammer", f"word{t}", top_k=5, filter=MemoryFilter(tags_any=["t1", "t2"])))
                page = eng.list_memories("hammer", page_size=20)
                assert len(page.memories) <= 20
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(6)]
    threads += [threading.Thread(target=reader, args=(t,)) for t in range(3)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors[:3]

    def check(e: object) -> None:
        from engram_server.engine.engine import Engine

        assert isinstance(e, Engine)
        assert e.list_memories("hammer", page_size=1).total_size == len(live)
        for mid, content in live.items():
            assert e.get("hammer", mid).content == content
        assert e.index_sizes("hammer") == (len(live), len(live))
        for mid in list(deleted)[:50]:
            try:
                e.get("hammer", mid)
                raise AssertionError("deleted memory is back")
            except NotFound:
                pass

    check(eng)
    eng.run_maintenance()
    eng.close()
    eng = open_engine(data_dir)
    try:
        check(eng)
    finally:
        eng.close()
