"""The public surface is exactly ``__all__`` (like httpx's test_exported_members)."""

from __future__ import annotations

import engram
import engram.errors
import engram.models
from engram._gen.engram import v1 as pb


def test_all_exports_exist_and_nothing_else_is_public() -> None:
    exported = set(engram.__all__)
    assert len(exported) == len(engram.__all__), "duplicates in engram.__all__"
    for name in exported:
        assert hasattr(engram, name), name
    public = {
        name for name in dir(engram)
        if not name.startswith("_")
        and name not in {"errors", "models", "cli", "mcp_server", "mcp_http", "integrations"}  # submodules
    }
    assert public == exported - {"__version__"}


def test_own_classes_present_as_engram_members() -> None:
    assert engram.Client.__module__ == "engram"
    assert engram.AsyncClient.__module__ == "engram"
    assert engram.NotFound.__module__ == "engram"


def test_errors_all() -> None:
    for name in engram.errors.__all__:
        assert hasattr(engram.errors, name)
    for name in dir(engram.errors):
        obj = getattr(engram.errors, name)
        if isinstance(obj, type) and issubclass(obj, engram.EngramError):
            assert name in engram.errors.__all__
            assert name in engram.__all__


def test_models_reexport_every_generated_message() -> None:
    generated = {n for n in pb.__all__ if not n.endswith(("Stub", "AsyncStub"))}
    assert generated <= set(engram.models.__all__)
    for name in engram.models.__all__:
        assert hasattr(engram.models, name)
