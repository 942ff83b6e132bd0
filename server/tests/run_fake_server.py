"""Test helper: `engram-server serve` with the in-memory FakeEngine (only while the engine is unfinished)."""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from fake_engine import FakeEngine  # noqa: E402

from engram_server import logs  # noqa: E402
from engram_server.cli import build_parser  # noqa: E402
from engram_server.config import load  # noqa: E402
from engram_server.server import serve  # noqa: E402

if __name__ == "__main__":
    started = time.perf_counter()
    args = build_parser().parse_args(sys.argv[1:])
    values = {k: v for k, v in vars(args).items() if k not in ("command", "config", "target")}
    cfg = load(values, config_file=args.config)
    cfg.validate()
    logs.setup(cfg.log_level)
    serve(cfg, FakeEngine(), started)
