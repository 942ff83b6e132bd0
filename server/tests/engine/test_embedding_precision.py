"""The bundled model's precision is part of its id: `auto` keeps what a data directory's vectors
were made with, and an explicit other precision is a model change, never silent mixing."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from engram_server.engine.config import EngineConfig
from engram_server.engine.engine import Engine
from engram_server.engine.errors import FailedPrecondition, InvalidArgument
from engram_server.engine.models import NewMemory, RecallQuery

KEY = bytes.fromhex(secrets.token_hex(32))


def _open(data: Path, precision: str) -> Engine:
    return Engine.open(EngineConfig(data_dir=data, encryption_key=KEY, embedding_precision=precision), background=False)


def test_auto_keeps_the_stored_precision_and_a_switch_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with _open(data, "float32") as eng:
        m, _ = eng.store(NewMemory("a", "the deploy key lives in the vault"))
        assert m.embedding_model == "all-MiniLM-L6-v2"
    with _open(data, "auto") as eng:
        assert eng.embedding_model == "all-MiniLM-L6-v2"
        n, _ = eng.store(NewMemory("a", "staging runs on Fridays"))
        assert n.embedding_model == "all-MiniLM-L6-v2"
        hits = eng.recall(RecallQuery(agent_id="a", query="where is the deploy key", top_k=1, mode="vector"))
        assert hits.memories[0].memory.id == m.id
    with pytest.raises(FailedPrecondition, match="all-MiniLM-L6-v2-int8"):
        _open(data, "int8")


def test_a_new_data_dir_gets_int8(tmp_path: Path) -> None:
    with _open(tmp_path / "data", "auto") as eng:
        m, _ = eng.store(NewMemory("a", "hello"))
        assert eng.embedding_model == m.embedding_model == "all-MiniLM-L6-v2-int8"


def test_an_unknown_precision_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="embedding_precision"):
        _open(tmp_path / "data", "fp16")
