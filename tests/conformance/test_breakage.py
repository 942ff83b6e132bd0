"""The suite catches a broken SDK: a Python shim whose SDK "drops" a field fails with a readable diff.

The broken client is the real Python shim with one change, made the way an SDK bug would be: its
store call loses `importance` before sending. The runner must report each affected case as
`FAILED: broken/<transport>/<case>: step N <rpc>: <path>: expected <want>, got <got>` and end
with a failing count.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

BROKEN_SHIM = textwrap.dedent("""
    import importlib.util, sys
    spec = importlib.util.spec_from_file_location("shim", sys.argv[1])
    shim = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(shim)
    store = shim.HANDLERS["MemoryService.StoreMemory"]
    def store_without_importance(client, request):
        return store(client, {k: v for k, v in request.items() if k != "importance"})
    shim.HANDLERS["MemoryService.StoreMemory"] = store_without_importance
    shim.main()
""")


def test_dropping_a_field_fails_with_a_readable_diff(tmp_path: Path) -> None:
    (tmp_path / "broken_shim.py").write_text(BROKEN_SHIM)
    (tmp_path / "clients.yaml").write_text(textwrap.dedent(f"""
        clients:
          broken:
            command: ["{sys.executable}", "{tmp_path / 'broken_shim.py'}",
                      "{REPO / 'conformance' / 'clients' / 'python' / 'shim.py'}"]
            transports: [grpc]
            features: [server_streaming, client_streaming, scoped_keys]
    """))
    proc = subprocess.run(
        [sys.executable, "-m", "conformance", "--clients", str(tmp_path / "clients.yaml"), "--sdk", "broken",
         "--case", "store/*", "--no-report"],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    out = proc.stdout
    assert proc.returncode == 1, out + proc.stderr
    failed = [ln for ln in out.splitlines() if ln.startswith("FAILED: broken/grpc/store/")]
    assert failed, out
    # The diff names the case, the step, the field, what was expected and what came back.
    assert any("MemoryService.StoreMemory: memory.importance: expected 0.95, got 0.5" in ln for ln in failed), failed
    last = out.strip().splitlines()[-1]
    passed, _, failed_count = last.partition(" passed, ")
    assert int(failed_count.split()[0]) == len(failed) and int(passed) > 0, last
