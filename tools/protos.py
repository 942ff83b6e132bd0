"""Compile ``proto/`` with the pinned protoc (grpcio-tools) and read the result.

Every generator in ``tools/`` starts from the same descriptor set: the one the server ships as
``_gen/engram.binpb``. This module builds it and offers a typed view of it: messages, enums and
services by full name, the leading comment of every element, and the ``google.api.http`` rules of
every method (including ``additional_bindings``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import grpc_tools
from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor_pb2

# The Engram API; everything else is reached through imports.
API_PACKAGE = "engram.v1"
WKT_INCLUDE = Path(grpc_tools.__file__).parent / "_proto"

Fdp = descriptor_pb2.FieldDescriptorProto


def proto_files(repo: Path) -> list[str]:
    """The API's .proto files, relative to ``proto/``, sorted (stable protoc input order)."""
    return sorted(p.relative_to(repo / "proto").as_posix() for p in (repo / "proto" / "engram").rglob("*.proto"))


def run_protoc(repo: Path, args: list[str], files: list[str], *, import_names: bool = False) -> None:
    """Run the pinned protoc (grpcio-tools) on ``files`` (relative to ``proto/``); raise on failure.

    With ``import_names``, ``files`` are names as imported (``google/rpc/code.proto``), looked up
    on the include path (``proto/``, ``proto/third_party``, the well-known types).

    protoc runs in a scratch directory holding an empty ``ruff.toml``: betterproto2-compiler
    formats its output with ``ruff`` from the working directory, and no ruff configuration of the
    repository or the user may change generated code. Include paths are absolute; the names in the
    output stay relative to ``proto/`` (``engram/v1/messages.proto``), so output is path-free.
    """
    proto = repo / "proto"
    includes = [f"-I{proto}", f"-I{proto / 'third_party'}", f"-I{WKT_INCLUDE}"]
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    with tempfile.TemporaryDirectory(prefix="engram-protoc-") as scratch:
        (Path(scratch) / "ruff.toml").write_text("", encoding="utf-8")
        inputs = files if import_names else [str(proto / f) for f in files]
        cmd = [sys.executable, "-m", "grpc_tools.protoc", *includes, *args, *inputs]
        proc = subprocess.run(cmd, cwd=scratch, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"protoc failed ({proc.returncode}):\n{proc.stderr}")


def build_descriptor_set(repo: Path, out: Path) -> bytes:
    """Write the descriptor set (imports and source info included) to ``out``; return its bytes."""
    out.parent.mkdir(parents=True, exist_ok=True)
    run_protoc(
        repo,
        ["--include_imports", "--include_source_info", f"--descriptor_set_out={out.resolve()}"],
        proto_files(repo),
    )
    return out.read_bytes()


def compile_imported(repo: Path, name: str) -> bytes:
    """The descriptor set (source info included) of one file by its import name, e.g.
    ``google/rpc/code.proto`` (a vendored file that the Engram API does not import)."""
    with tempfile.TemporaryDirectory(prefix="engram-protoc-") as tmp:
        out = Path(tmp) / "file.binpb"
        run_protoc(repo.resolve(), ["--include_source_info", f"--descriptor_set_out={out}"], [name], import_names=True)
        return out.read_bytes()


@dataclass(frozen=True)
class HttpBinding:
    """One REST route of a method: ``verb`` (lowercase), path template and body selector."""

    verb: str
    path: str
    body: str
    response_body: str
    primary: bool


@dataclass(frozen=True)
class Method:
    service: str  # short service name, e.g. "MemoryService"
    name: str
    input_type: str  # full name without the leading dot
    output_type: str
    client_streaming: bool
    server_streaming: bool
    comment: str
    bindings: tuple[HttpBinding, ...]

    @property
    def grpc_path(self) -> str:
        return f"/{API_PACKAGE}.{self.service}/{self.name}"


@dataclass
class Service:
    name: str
    full_name: str
    file: str
    comment: str
    methods: list[Method] = field(default_factory=list)


@dataclass(frozen=True)
class Message:
    full_name: str
    file: str
    proto: descriptor_pb2.DescriptorProto
    comment: str
    field_comments: dict[str, str]


@dataclass(frozen=True)
class Enum:
    full_name: str
    file: str
    proto: descriptor_pb2.EnumDescriptorProto
    comment: str
    value_comments: dict[str, str]


def _clean_comment(text: str) -> str:
    lines = [line[1:] if line.startswith(" ") else line for line in text.strip("\n").split("\n")]
    return "\n".join(line.rstrip() for line in lines).strip()


def _binding(rule: http_pb2.HttpRule, primary: bool) -> HttpBinding:
    pattern = rule.WhichOneof("pattern")
    if pattern is None:
        raise ValueError("google.api.http rule without a pattern")
    if pattern == "custom":
        verb, path = rule.custom.kind.lower(), rule.custom.path
    else:
        verb, path = pattern, getattr(rule, pattern)
    return HttpBinding(verb=verb, path=path, body=rule.body, response_body=rule.response_body, primary=primary)


class Api:
    """The compiled API: every file of a descriptor set, indexed by full name."""

    def __init__(self, data: bytes) -> None:
        self.fds = descriptor_pb2.FileDescriptorSet.FromString(data)
        self.messages: dict[str, Message] = {}
        self.enums: dict[str, Enum] = {}
        self.services: list[Service] = []
        for fd in self.fds.file:
            comments = {
                tuple(loc.path): _clean_comment(loc.leading_comments)
                for loc in fd.source_code_info.location
                if loc.leading_comments
            }
            prefix = fd.package
            for i, msg in enumerate(fd.message_type):
                self._add_message(fd.name, f"{prefix}.{msg.name}", msg, (4, i), comments)
            for i, enum in enumerate(fd.enum_type):
                self._add_enum(fd.name, f"{prefix}.{enum.name}", enum, (5, i), comments)
            for si, svc in enumerate(fd.service):
                service = Service(svc.name, f"{prefix}.{svc.name}", fd.name, comments.get((6, si), ""))
                for mi, m in enumerate(svc.method):
                    rule = m.options.Extensions[annotations_pb2.http]
                    bindings: list[HttpBinding] = []
                    if m.options.HasExtension(annotations_pb2.http):
                        bindings.append(_binding(rule, True))
                        bindings.extend(_binding(extra, False) for extra in rule.additional_bindings)
                    service.methods.append(
                        Method(
                            service=svc.name,
                            name=m.name,
                            input_type=m.input_type.lstrip("."),
                            output_type=m.output_type.lstrip("."),
                            client_streaming=m.client_streaming,
                            server_streaming=m.server_streaming,
                            comment=comments.get((6, si, 2, mi), ""),
                            bindings=tuple(bindings),
                        )
                    )
                self.services.append(service)

    def _add_message(
        self,
        file: str,
        full_name: str,
        msg: descriptor_pb2.DescriptorProto,
        path: tuple[int, ...],
        comments: dict[tuple[int, ...], str],
    ) -> None:
        field_comments = {f.name: comments.get((*path, 2, i), "") for i, f in enumerate(msg.field)}
        self.messages[full_name] = Message(full_name, file, msg, comments.get(path, ""), field_comments)
        for i, nested in enumerate(msg.nested_type):
            self._add_message(file, f"{full_name}.{nested.name}", nested, (*path, 3, i), comments)
        for i, enum in enumerate(msg.enum_type):
            self._add_enum(file, f"{full_name}.{enum.name}", enum, (*path, 4, i), comments)

    def _add_enum(
        self,
        file: str,
        full_name: str,
        enum: descriptor_pb2.EnumDescriptorProto,
        path: tuple[int, ...],
        comments: dict[tuple[int, ...], str],
    ) -> None:
        value_comments = {v.name: comments.get((*path, 2, i), "") for i, v in enumerate(enum.value)}
        self.enums[full_name] = Enum(full_name, file, enum, comments.get(path, ""), value_comments)

    def api_services(self) -> list[Service]:
        """Services of the Engram API package, in declaration order."""
        return [s for s in self.services if s.full_name.startswith(API_PACKAGE + ".")]

    def methods(self) -> list[Method]:
        return [m for s in self.api_services() for m in s.methods]


def type_name(f: descriptor_pb2.FieldDescriptorProto) -> str:
    """The field's message or enum full name without the leading dot ('' for scalars)."""
    return str(f.type_name).lstrip(".")


def is_map(api: Api, f: descriptor_pb2.FieldDescriptorProto) -> bool:
    if f.type != Fdp.TYPE_MESSAGE or f.label != Fdp.LABEL_REPEATED:
        return False
    msg = api.messages.get(type_name(f))
    return msg is not None and msg.proto.options.map_entry


def load(path: Path) -> Api:
    return Api(path.read_bytes())
