"""Docstrings of client methods, taken from the proto comments (via the generated ``_api``)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from engram._rpc import rpc

F = TypeVar("F", bound=Callable[..., Any])


def rpc_method(name: str) -> Callable[[F], F]:
    """Mark a client method as the one for RPC ``name``; its docstring starts with the RPC's
    proto comment, followed by the method's own (argument) docs."""

    def decorate(fn: F) -> F:
        spec = rpc(name)
        own = inspect.cleandoc(fn.__doc__ or "")
        fn.__doc__ = f"{spec.doc}\n\n{own}\n\n(RPC ``engram.v1.{spec.service}/{spec.name}``)"
        fn.__engram_rpc__ = name  # type: ignore[attr-defined]
        return fn

    return decorate
