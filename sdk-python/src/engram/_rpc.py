"""Shape of one RPC, as described by ``_api.py`` (generated from the proto files)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import betterproto2

from engram._gen.engram import v1 as _pb


@dataclass(frozen=True)
class RpcSpec:
    """One RPC of the Engram API: its gRPC path, streaming shape and ``google.api.http`` rule."""

    service: str
    name: str
    request: str
    response: str
    client_streaming: bool
    server_streaming: bool
    http_method: str
    http_path: str
    http_body: str
    doc: str

    @property
    def grpc_path(self) -> str:
        return f"/engram.v1.{self.service}/{self.name}"

    @cached_property
    def request_type(self) -> type[betterproto2.Message]:
        cls: type[betterproto2.Message] = getattr(_pb, self.request)
        return cls

    @cached_property
    def response_type(self) -> type[betterproto2.Message]:
        cls: type[betterproto2.Message] = getattr(_pb, self.response)
        return cls

    @cached_property
    def path_params(self) -> tuple[str, ...]:
        """Field paths bound in the HTTP path template, e.g. ``("memory.id",)``."""
        return tuple(re.findall(r"\{([^}=]+)(?:=[^}]*)?\}", self.http_path))

    def expand_path(self, values: dict[str, Any]) -> str:
        """The HTTP path with the path parameters taken from the proto JSON ``values``."""
        from urllib.parse import quote

        def sub(match: re.Match[str]) -> str:
            value: Any = values
            for part in match.group(1).split("="):
                for key in part.split("."):
                    value = value.get(key, "") if isinstance(value, dict) else ""
                break
            return quote(str(value), safe="")

        return re.sub(r"\{([^}]+)\}", sub, self.http_path)


def rpc(name: str) -> RpcSpec:
    """The spec of the RPC called ``name`` (e.g. ``"StoreMemory"``)."""
    from engram._api import RPCS

    for spec in RPCS:
        if spec.name == name:
            return spec
    raise KeyError(name)
