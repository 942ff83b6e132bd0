"""Engine test fixtures: real RocksDB in tmp dirs, real encryption, a tiny fake embedder."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from engram_server.engine.engine import Engine

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from support import KEY, FakeEmbedder, make_config, open_engine

__all__ = ["KEY", "FakeEmbedder", "make_config", "open_engine"]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def engine(data_dir: Path) -> Iterator[Engine]:
    eng = Engine.open(make_config(data_dir), embedder=FakeEmbedder())
    yield eng
    eng.close()
