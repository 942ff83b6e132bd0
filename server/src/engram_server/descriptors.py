"""The compiled API: descriptor set (`_gen/engram.binpb`) → methods, HTTP rules, JSON codecs.

Read once at start-up. The REST routes and the gRPC method table both come from here, so the
proto stays the single source of truth.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from google.protobuf.descriptor import Descriptor

GEN_DIR = Path(__file__).parent / "_gen"
DESCRIPTOR_SET = GEN_DIR / "engram.binpb"
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
    """Descriptors of the engram.v1 API and dynamic protobuf classes for proto3 JSON."""

    def __init__(self, path: Path = DESCRIPTOR_SET) -> None:
        from google.api import annotations_pb2, http_pb2  # noqa: F401  (registers the extension)
        from google.protobuf import descriptor_pb2, descriptor_pool

        if not path.exists():
            raise FileNotFoundError(f"descriptor set missing: {path} (run `make generate`)")
        self.fds = descriptor_pb2.FileDescriptorSet.FromString(path.read_bytes())
        self.pool = descriptor_pool.DescriptorPool()
        for fd in self.fds.file:
            self.pool.Add(fd)
        self.methods: dict[str, MethodInfo] = {}
        for fd in self.fds.file:
            if fd.package != PACKAGE:
                continue
            for svc in fd.service:
                for m in svc.method:
                    info = MethodInfo(
                        service=svc.name,
                        name=m.name,
                        input_type=m.input_type.lstrip("."),
                        output_type=m.output_type.lstrip("."),
                        client_streaming=m.client_streaming,
                        server_streaming=m.server_streaming,
                    )
                    if m.options.HasExtension(annotations_pb2.http):
                        rule = m.options.Extensions[annotations_pb2.http]
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
        self._classes: dict[str, Any] = {}

    def message_class(self, full_name: str) -> Any:
        cls = self._classes.get(full_name)
        if cls is None:
            from google.protobuf import message_factory

            cls = message_factory.GetMessageClass(self.pool.FindMessageTypeByName(full_name))
            self._classes[full_name] = cls
        return cls

    def descriptor(self, full_name: str) -> Descriptor:
        found: Descriptor = self.pool.FindMessageTypeByName(full_name)
        return found

    @cached_property
    def service_names(self) -> list[str]:
        return sorted({m.service for m in self.methods.values()})


_API: Api | None = None


def api() -> Api:
    global _API
    if _API is None:
        _API = Api()
    return _API
