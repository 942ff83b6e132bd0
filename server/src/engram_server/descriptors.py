"""The compiled API: the services of the generated modules → methods and their HTTP rules.

Read once at start-up. The REST routes and the gRPC method table both come from here, so the
proto stays the single source of truth.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

GEN_DIR = Path(__file__).parent / "_gen"
OPENAPI = GEN_DIR / "openapi.json"
PACKAGE = "engram.v1"


@dataclass
class HttpBinding:
    method: str  # GET, POST, ...
    path: str  # template, e.g. /v1/memories/{memory.id}
    body: str  # "" (no body), "*" or a field name


@dataclass
class MethodInfo:
    service: str  # MemoryService
    name: str  # StoreMemory
    input_type: str  # engram.v1.StoreMemoryRequest
    output_type: str
    client_streaming: bool
    server_streaming: bool
    bindings: list[HttpBinding] = field(default_factory=list)

    @property
    def path(self) -> str:
        return f"/{PACKAGE}.{self.service}/{self.name}"

    @property
    def full_name(self) -> str:
        return f"{self.service}/{self.name}"

    @property
    def snake_name(self) -> str:
        return re.sub(r"(?<!^)(?=[A-Z])", "_", self.name).lower()

    @property
    def kind(self) -> str:
        if self.client_streaming and self.server_streaming:
            return "bidi"
        if self.client_streaming:
            return "client_stream"
        if self.server_streaming:
            return "server_stream"
        return "unary"


class Api:
    """The engram.v1 services as the generated modules describe them (the default pool)."""

    def __init__(self) -> None:
        from google.api import annotations_pb2

        from ._gen.engram.v1 import service_pb2

        self.methods: dict[str, MethodInfo] = {}
        for svc in service_pb2.DESCRIPTOR.services_by_name.values():
            for m in svc.methods:
                info = MethodInfo(
                    service=svc.name,
                    name=m.name,
                    input_type=m.input_type.full_name,
                    output_type=m.output_type.full_name,
                    client_streaming=m.client_streaming,
                    server_streaming=m.server_streaming,
                )
                options = m.GetOptions()
                if options.HasExtension(annotations_pb2.http):
                    rule = options.Extensions[annotations_pb2.http]
                    for r in [rule, *rule.additional_bindings]:
                        kind = r.WhichOneof("pattern")
                        if kind == "custom":
                            verb, tmpl = r.custom.kind.upper(), r.custom.path
                        elif kind:
                            verb, tmpl = kind.upper(), getattr(r, kind)
                        else:
                            continue
                        info.bindings.append(HttpBinding(verb, tmpl, r.body))
                self.methods[info.path] = info

    @cached_property
    def service_names(self) -> list[str]:
        return sorted({m.service for m in self.methods.values()})


_API: Api | None = None


def api() -> Api:
    global _API
    if _API is None:
        _API = Api()
    return _API
