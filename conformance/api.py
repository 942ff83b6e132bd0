"""The API as the runner sees it: RPCs, their message types, streaming and HTTP rules, read from
the compiled descriptor set (the same one the server builds its REST routes from)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import betterproto2
from google.api import annotations_pb2
from google.protobuf import descriptor_pb2

from engram._gen.engram import v1 as pb

REPO = Path(__file__).resolve().parent.parent
DESCRIPTOR_SET = REPO / "server" / "src" / "engram_server" / "_gen" / "engram.binpb"


@dataclass(frozen=True)
class HttpRule:
    method: str  # GET, POST, PATCH, PUT, DELETE
    path: str  # template, e.g. /v1/memories/{memory.id}
    body: str  # "", "*" or a field name


@dataclass(frozen=True)
class Rpc:
    name: str  # "MemoryService.StoreMemory"
    input_type: str  # "StoreMemoryRequest"
    output_type: str
    client_streaming: bool
    server_streaming: bool
    http: HttpRule

    @property
    def grpc_path(self) -> str:
        service, method = self.name.split(".")
        return f"/engram.v1.{service}/{method}"


@cache
def rpcs() -> dict[str, Rpc]:
    fds = descriptor_pb2.FileDescriptorSet.FromString(DESCRIPTOR_SET.read_bytes())
    out: dict[str, Rpc] = {}
    for file in fds.file:
        if file.package != "engram.v1":
            continue
        for service in file.service:
            for method in service.method:
                rule = method.options.Extensions[annotations_pb2.http]
                verb = rule.WhichOneof("pattern")
                out[f"{service.name}.{method.name}"] = Rpc(
                    name=f"{service.name}.{method.name}",
                    input_type=method.input_type.rsplit(".", 1)[-1],
                    output_type=method.output_type.rsplit(".", 1)[-1],
                    client_streaming=method.client_streaming,
                    server_streaming=method.server_streaming,
                    http=HttpRule(method=(verb or "post").upper(), path=getattr(rule, verb) if verb else "", body=rule.body),
                )
    return out


def message_class(type_name: str) -> type[betterproto2.Message]:
    cls: type[betterproto2.Message] = getattr(pb, type_name)
    return cls


def normalise(type_name: str, data: Any) -> Any:
    """Canonical proto3 JSON of a message: parse whatever casing and default-omission an
    implementation chose, write snake_case with every default value present."""
    if isinstance(data, list):
        return [normalise(type_name, item) for item in data]
    message = message_class(type_name).from_dict(data)
    return message.to_dict(casing=betterproto2.Casing.SNAKE, include_default_values=True)
