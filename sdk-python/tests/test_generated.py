"""Generated files are fresh, and the clients cover the API exactly."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import pytest

import engram
from engram._api import RPCS

SDK = Path(__file__).resolve().parents[1]


def test_sync_client_is_generated_from_async() -> None:
    """The sync client is the unasync'd async client (qdrant-style consistency check)."""
    result = subprocess.run([sys.executable, str(SDK / "scripts" / "unasync.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_api_table_is_fresh() -> None:
    pytest.importorskip("grpc_tools")
    result = subprocess.run([sys.executable, str(SDK / "scripts" / "generate_api.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def _rpc_methods(cls: type) -> dict[str, str]:
    found = {}
    for name, fn in inspect.getmembers(cls, callable):
        rpc = getattr(fn, "__engram_rpc__", None)
        if rpc:
            found[rpc] = name
    return found


@pytest.mark.parametrize("cls", [engram.Client, engram.AsyncClient])
def test_one_method_per_rpc(cls: type) -> None:
    methods = _rpc_methods(cls)
    assert set(methods) == {spec.name for spec in RPCS}
    for spec in RPCS:
        doc = getattr(cls, methods[spec.name]).__doc__
        assert doc.startswith(spec.doc), spec.name  # docstring opens with the proto comment


def test_sync_and_async_signatures_match() -> None:
    for name, fn in inspect.getmembers(engram.AsyncClient, inspect.isfunction):
        if name.startswith("_") and name not in ("__init__",):
            continue
        sync_name = {"aclose": "close"}.get(name, name)
        sync_fn = getattr(engram.Client, sync_name)
        a = inspect.signature(fn)
        s = inspect.signature(sync_fn)
        assert list(a.parameters) == list(s.parameters), name
        for p in a.parameters.values():
            assert p.default == s.parameters[p.name].default, (name, p.name)
        if inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn):
            assert not inspect.iscoroutinefunction(sync_fn)
