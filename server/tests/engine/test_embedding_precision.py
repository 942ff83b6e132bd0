"""The bundled model's precision is part of its id: `auto` keeps what a data directory's vectors
were made with, and an explicit other precision is a model change, never silent mixing."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest
from engram_server.engine.config import EngineConfig
from engram_server.engine.engine import Engine
from engram_server.engine.errors import InvalidArgument
from engram_server.engine.models import NewMemory, RecallQuery
from engram_server.engine.storage import CF_META

KEY = bytes.fromhex(secrets.token_hex(32))


def _open(data: Path, precision: str) -> Engine:
    return Engine.open(EngineConfig(data_dir=data, encryption_key=KEY, embedding_precision=precision), background=False)


def test_auto_keeps_the_stored_precision_and_a_switch_is_reembedded_while_serving(tmp_path: Path) -> None:
    """Both precisions are one model family (their vectors are comparable): switching is not
    refused but re-embedded by the background maintenance, agent by agent."""
    data = tmp_path / "data"
    with _open(data, "float32") as eng:
        m, _ = eng.store(NewMemory("a", "the deploy key lives in the vault"))
        assert m.embedding_model == "all-MiniLM-L6-v2/fp32"
    with _open(data, "auto") as eng:
        assert eng.embedding_model == "all-MiniLM-L6-v2/fp32"
        n, _ = eng.store(NewMemory("a", "staging runs on Fridays"))
        assert n.embedding_model == "all-MiniLM-L6-v2/fp32"
        hits = eng.recall(RecallQuery(agent_id="a", query="where is the deploy key", top_k=1, mode="vector"))
        assert hits.memories[0].memory.id == m.id
    with _open(data, "int8") as eng:
        assert eng.embedding_model == "all-MiniLM-L6-v2/int8"
        hits = eng.recall(RecallQuery(agent_id="a", query="where is the deploy key", top_k=1, mode="vector"))
        assert hits.memories[0].memory.id == m.id  # old and new vectors searched together
        eng.run_maintenance()
        record = eng.storage.get(CF_META, eng.keyspace.agent("a").meta_agent)
        assert record is not None and json.loads(record)["recipe"] == eng.recipe
    with _open(data, "auto") as eng:
        assert eng.embedding_model == "all-MiniLM-L6-v2/int8"  # the directory's now


def test_a_data_dir_of_an_earlier_build_is_served_and_reembedded(tmp_path: Path) -> None:
    """Vectors made by the bundled model's earlier build (exact float32 weights, another id)
    stay usable: the server opens, and re-embeds them in the background."""
    from engram_server.engine import codec
    from engram_server.engine.storage import CF_META
    from engram_server.engine.writes import META_EMBEDDING

    data = tmp_path / "data"
    with _open(data, "int8") as eng:
        m, _ = eng.store(NewMemory("a", "the deploy key lives in the vault"))
        b = eng.storage.batch()
        b.put(CF_META, META_EMBEDDING, codec.dumps({"model_id": "all-MiniLM-L6-v2-int8", "dim": 384}))
        eng.storage.write(b)
    with _open(data, "auto") as eng:
        assert eng.embedding_model == "all-MiniLM-L6-v2/int8"
        hits = eng.recall(RecallQuery(agent_id="a", query="where is the deploy key", top_k=1, mode="vector"))
        assert hits.memories[0].memory.id == m.id


def test_a_new_data_dir_gets_int8(tmp_path: Path) -> None:
    with _open(tmp_path / "data", "auto") as eng:
        m, _ = eng.store(NewMemory("a", "hello"))
        assert eng.embedding_model == m.embedding_model == "all-MiniLM-L6-v2/int8"


def test_an_unknown_precision_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="embedding_precision"):
        _open(tmp_path / "data", "fp16")
