"""Fixtures for the reliability suite: real servers over real data directories."""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench.common import ServerProcess  # noqa: E402 - the one server launcher of all harnesses

# `make stress` sets ENGRAM_STRESS=1: the long forms of each test.
STRESS = os.environ.get("ENGRAM_STRESS") == "1"


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def encryption_key() -> str:
    return secrets.token_hex(32)


@pytest.fixture
def server(data_dir: Path, encryption_key: str) -> Iterator[ServerProcess]:
    proc = ServerProcess(data_dir=data_dir, encryption_key=encryption_key)
    proc.start()
    yield proc
    proc.stop()
