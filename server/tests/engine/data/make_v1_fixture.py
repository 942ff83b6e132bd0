"""Writes the schema-1 data directory that test_migrations.py upgrades (v1-datadir.tar.gz).

It must run on the engine of schema 1 (commit dd01114 and earlier), from that checkout:

    git worktree add /tmp/v1 dd01114 && cd /tmp/v1 && make .venv/.engram-setup
    cd server && ../.venv/bin/python /path/to/make_v1_fixture.py /path/to/v1-datadir.tar.gz

Agents with ids that percent-encoding changes, client-chosen memory ids, history, links, a
merged memory, an expiry, access counts and index/catalogue snapshots: every kind of key.
The expected contents are written next to the data (expected.json inside the archive).
"""

from __future__ import annotations

import json
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path.cwd() / "tests" / "engine"))
from conftest import FakeEmbedder, make_config  # the schema-1 test embedder
from engram_server.engine.engine import Engine
from engram_server.engine.models import MemoryPatch, NewMemory, RecallQuery

KEY = bytes(range(32))


def main(out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        eng = Engine.open(make_config(data, encryption_key=KEY), embedder=FakeEmbedder())
        expected: dict[str, dict[str, str]] = {}
        for n, agent in enumerate(("plain-agent", "user@example.com", "team:a.b_c")):
            mems = expected.setdefault(agent, {})
            for i in range(12):
                m, _ = eng.store(NewMemory(agent, f"{agent} remembers fact number {i} about kites", tags=[f"t{i % 3}"]))
                mems[m.id] = m.content
            m, _ = eng.store(NewMemory(agent, f"{agent} chose this id", id=f"client-{n}"))  # ids were global
            mems[m.id] = m.content
        a = "plain-agent"
        ids = list(expected[a])
        eng.update(ids[0], MemoryPatch(content="plain-agent rewrote fact zero about boats"))
        expected[a][ids[0]] = "plain-agent rewrote fact zero about boats"
        eng.link(a, ids[1], ids[2], "caused_by", 0.5)
        eng.store(NewMemory(a, "plain-agent remembers fact number 3 about kites"))  # a near-duplicate
        eng.consolidate(a, 0.99, dry_run=False)  # merges dup (or its twin) into one keeper
        expected[a] = {m.id: m.content for m in eng.export(a)}
        eng.recall(RecallQuery(a, "kites", top_k=3))
        eng.run_maintenance()  # catalogue and index snapshots, flushed access counts
        eng.store(NewMemory(a, "plain-agent stored after the snapshots", id="late-1"))
        expected[a]["late-1"] = "plain-agent stored after the snapshots"
        eng.close()
        (data / "expected.json").write_text(json.dumps(expected, indent=1, sort_keys=True))
        with tarfile.open(out, "w:gz") as tar:
            tar.add(data, arcname="data")
    print(f"wrote {out} at {time.strftime('%Y-%m-%d %H:%M')}")


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve())
