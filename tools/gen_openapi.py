"""Generate the OpenAPI 3.1 document of Engram's REST surface from the compiled proto.

Input: the descriptor set (``server/src/engram_server/_gen/engram.binpb``, with source info).
Every ``google.api.http`` rule, ``additional_bindings`` included, becomes one operation:

* path parameters come from the ``{field.path}`` variables of the template;
* for rules without a body (GET, DELETE), and for ``body: "<field>"`` rules, every other leaf
  field of the request is a query parameter, flattened with dots (``filter.tags_any``);
* ``body: "*"`` sends the whole request message; ``body: "<field>"`` sends that field;
* streaming methods use ``application/x-ndjson`` (one JSON message per line);
* schemas follow the proto3 JSON mapping: proto field names, int64 as strings, enums by name,
  ``Timestamp`` as RFC 3339, ``FieldMask`` as a comma-separated string, ``Struct`` as an object;
* descriptions are the proto comments;
* the error body's ``code`` names and the HTTP status of each come from the status code table
  (``tools/gen_codes.py``, read from ``google/rpc/code.proto``).

The output is deterministic (sorted keys, two-space indent), so ``make check-generate`` can
diff it. Usage: ``python -m tools.gen_openapi DESCRIPTOR_SET OUT.json``.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2

from tools import gen_codes
from tools.gen_codes import StatusCode
from tools.protos import API_PACKAGE, Api, Fdp, HttpBinding, Method, is_map, type_name

JSON = dict[str, Any]

_INT64 = {"type": "string", "format": "int64", "pattern": "^-?[0-9]+$"}
_UINT64 = {"type": "string", "format": "uint64", "pattern": "^[0-9]+$"}

SCALARS: dict[int, JSON] = {
    Fdp.TYPE_DOUBLE: {"type": "number", "format": "double"},
    Fdp.TYPE_FLOAT: {"type": "number", "format": "float"},
    Fdp.TYPE_INT64: _INT64,
    Fdp.TYPE_SINT64: _INT64,
    Fdp.TYPE_SFIXED64: _INT64,
    Fdp.TYPE_UINT64: _UINT64,
    Fdp.TYPE_FIXED64: _UINT64,
    Fdp.TYPE_INT32: {"type": "integer", "format": "int32"},
    Fdp.TYPE_SINT32: {"type": "integer", "format": "int32"},
    Fdp.TYPE_SFIXED32: {"type": "integer", "format": "int32"},
    Fdp.TYPE_UINT32: {"type": "integer", "format": "int64", "minimum": 0, "maximum": 4294967295},
    Fdp.TYPE_FIXED32: {"type": "integer", "format": "int64", "minimum": 0, "maximum": 4294967295},
    Fdp.TYPE_BOOL: {"type": "boolean"},
    Fdp.TYPE_STRING: {"type": "string"},
    Fdp.TYPE_BYTES: {"type": "string", "format": "byte", "contentEncoding": "base64"},
}

# Well-known types, inlined per the proto3 JSON mapping.
WELL_KNOWN: dict[str, JSON] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string", "pattern": "^-?[0-9]+(\\.[0-9]{1,9})?s$"},
    "google.protobuf.FieldMask": {
        "type": "string",
        "description": "Comma-separated field paths (`content,tags`); lowerCamelCase or snake_case.",
    },
    "google.protobuf.Struct": {"type": "object", "additionalProperties": True},
    "google.protobuf.Value": {"description": "Any JSON value."},
    "google.protobuf.ListValue": {"type": "array", "items": {}},
    "google.protobuf.Empty": {"type": "object"},
    "google.protobuf.Any": {
        "type": "object",
        "properties": {"@type": {"type": "string"}},
        "required": ["@type"],
        "additionalProperties": True,
    },
    "google.protobuf.DoubleValue": {"type": ["number", "null"], "format": "double"},
    "google.protobuf.FloatValue": {"type": ["number", "null"], "format": "float"},
    "google.protobuf.Int64Value": {"type": ["string", "null"], "format": "int64"},
    "google.protobuf.UInt64Value": {"type": ["string", "null"], "format": "uint64"},
    "google.protobuf.Int32Value": {"type": ["integer", "null"], "format": "int32"},
    "google.protobuf.UInt32Value": {"type": ["integer", "null"], "format": "int64", "minimum": 0},
    "google.protobuf.BoolValue": {"type": ["boolean", "null"]},
    "google.protobuf.StringValue": {"type": ["string", "null"]},
    "google.protobuf.BytesValue": {"type": ["string", "null"], "format": "byte"},
}
# Well-known types that a URL query string can carry (as their JSON string or scalar).
QUERY_WELL_KNOWN = {
    name
    for name in WELL_KNOWN
    if name not in {"google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue",
                    "google.protobuf.Empty", "google.protobuf.Any"}
}  # fmt: skip

NDJSON = "application/x-ndjson"
_VARIABLE = re.compile(r"\{([^}=]+)(=[^}]*)?\}")


def path_parameter_names(fields: list[str]) -> dict[str, str]:
    """OpenAPI names of path variables: the last part of the field path (``memory.id`` → ``id``).

    OpenAPI treats templates that differ only in variable names as the same path, so
    ``PATCH /v1/memories/{memory.id}`` must be written ``/v1/memories/{id}`` to sit beside
    ``GET /v1/memories/{id}``. The full field path is kept when the short names would collide.
    """
    short = {f: f.rsplit(".", 1)[-1] for f in fields}
    if len(set(short.values())) != len(fields):
        return {f: f for f in fields}
    return short


def schema_ref(full_name: str) -> JSON:
    return {"$ref": f"#/components/schemas/{full_name}"}


def _first_sentence(text: str) -> str:
    flat = " ".join(text.split())
    match = re.match(r"(.+?\.)(\s|$)", flat)
    return match.group(1) if match else flat


class OpenApiBuilder:
    def __init__(self, api: Api, codes: list[StatusCode]) -> None:
        self.api = api
        self.codes = codes
        self.components: dict[str, JSON] = {}

    # -- schemas -----------------------------------------------------------------------------

    def field_schema(self, f: descriptor_pb2.FieldDescriptorProto, *, ignore_label: bool = False) -> JSON:
        """The JSON schema of a field's value (arrays and maps included unless ``ignore_label``)."""
        if not ignore_label and is_map(self.api, f):
            entry = self.api.messages[type_name(f)].proto
            value = next(x for x in entry.field if x.name == "value")
            return {"type": "object", "additionalProperties": self.field_schema(value)}
        if f.type in (Fdp.TYPE_MESSAGE, Fdp.TYPE_GROUP, Fdp.TYPE_ENUM):
            item = self.named_schema(type_name(f))
        else:
            item = dict(SCALARS[f.type])
        if not ignore_label and f.label == Fdp.LABEL_REPEATED:
            return {"type": "array", "items": item}
        return item

    def named_schema(self, full_name: str) -> JSON:
        """A ``$ref`` to a message or enum component (created on first use), or an inline WKT."""
        if full_name in WELL_KNOWN:
            return dict(WELL_KNOWN[full_name])
        if full_name not in self.components:
            self.components[full_name] = {}  # placeholder: breaks recursion
            if full_name in self.api.enums:
                self.components[full_name] = self._enum_component(full_name)
            else:
                self.components[full_name] = self._message_component(full_name)
        return schema_ref(full_name)

    def _enum_component(self, full_name: str) -> JSON:
        enum = self.api.enums[full_name]
        lines = [enum.comment] if enum.comment else []
        lines.append("")
        for v in enum.proto.value:
            note = " ".join(enum.value_comments.get(v.name, "").split())
            lines.append(f"* `{v.name}`" + (f": {note}" if note else ""))
        return {
            "type": "string",
            "enum": [v.name for v in enum.proto.value],
            "description": "\n".join(lines).strip(),
        }

    def _message_component(self, full_name: str) -> JSON:
        msg = self.api.messages[full_name]
        properties: JSON = {}
        oneofs: dict[int, list[str]] = {}
        for f in msg.proto.field:
            schema = self.field_schema(f)
            notes = [msg.field_comments.get(f.name, "")]
            if f.HasField("oneof_index"):
                if f.proto3_optional:
                    notes.append("Optional: leaving it out differs from sending the zero value.")
                else:
                    oneofs.setdefault(f.oneof_index, []).append(f.name)
            text = "\n\n".join(n for n in notes if n)
            if text:
                schema = {**schema, "description": text}
            properties[f.name] = schema
        component: JSON = {"type": "object", "properties": properties}
        description = msg.comment
        for index, names in sorted(oneofs.items()):
            oneof_name = msg.proto.oneof_decl[index].name
            description += f"\n\nAt most one of {', '.join(f'`{n}`' for n in names)} may be set (`{oneof_name}`)."
        if description.strip():
            component["description"] = description.strip()
        return component

    # -- parameters --------------------------------------------------------------------------

    def resolve_field_path(self, message: str, dotted: str) -> descriptor_pb2.FieldDescriptorProto:
        current = message
        found: descriptor_pb2.FieldDescriptorProto | None = None
        for part in dotted.split("."):
            msg = self.api.messages[current].proto
            found = next((f for f in msg.field if f.name == part), None)
            if found is None:
                raise ValueError(f"{message}: no field {dotted!r} (http rule path variable)")
            current = type_name(found)
        assert found is not None
        return found

    def query_parameters(self, message: str, prefix: str, skip: set[str], seen: tuple[str, ...]) -> list[JSON]:
        params: list[JSON] = []
        msg = self.api.messages[message]
        for f in msg.proto.field:
            name = f"{prefix}{f.name}"
            if name in skip or is_map(self.api, f):
                continue
            description = msg.field_comments.get(f.name, "")
            target = type_name(f)
            if f.type == Fdp.TYPE_MESSAGE and target not in WELL_KNOWN:
                if f.label == Fdp.LABEL_REPEATED or target in seen:
                    continue  # not representable in a query string
                params.extend(self.query_parameters(target, f"{name}.", skip, (*seen, target)))
                continue
            if f.type == Fdp.TYPE_MESSAGE and target not in QUERY_WELL_KNOWN:
                continue
            param: JSON = {"name": name, "in": "query", "required": False, "schema": self.field_schema(f)}
            if f.label == Fdp.LABEL_REPEATED:
                param.update(style="form", explode=True)
            if description:
                param["description"] = description
            params.append(param)
        return params

    # -- operations --------------------------------------------------------------------------

    def operation(self, method: Method, binding: HttpBinding, index: int) -> tuple[str, JSON]:
        request = method.input_type
        path_fields = [m.group(1) for m in _VARIABLE.finditer(binding.path)]
        names = path_parameter_names(path_fields)
        path = _VARIABLE.sub(lambda m: "{" + names[m.group(1)] + "}", binding.path)
        parameters: list[JSON] = []
        for dotted in path_fields:
            f = self.resolve_field_path(request, dotted)
            parent = dotted.rsplit(".", 1)[0] if "." in dotted else ""
            owner = type_name(self.resolve_field_path(request, parent)) if parent else request
            param: JSON = {"name": names[dotted], "in": "path", "required": True, "schema": self.field_schema(f)}
            comment = self.api.messages[owner].field_comments.get(f.name, "")
            if names[dotted] != dotted:
                comment = f"Sets the request field `{dotted}`. {comment}".strip()
            if comment:
                param["description"] = comment
            parameters.append(param)

        description = method.comment
        if not binding.primary:
            primary = method.bindings[0]
            description += f"\n\nAlias of `{primary.verb.upper()} {primary.path}`."
        description += f"\n\ngRPC: `{method.grpc_path}`."
        op: JSON = {
            "operationId": f"{method.service}_{method.name}" + ("" if index == 0 else f"_{index + 1}"),
            "tags": [method.service],
            "summary": _first_sentence(method.comment),
            "description": description.strip(),
        }

        if binding.body:
            if binding.body == "*":
                body_schema = self.named_schema(request)
            else:
                body_schema = self.field_schema(self.resolve_field_path(request, binding.body))
            content_type = NDJSON if method.client_streaming else "application/json"
            note = "One request message per line." if method.client_streaming else ""
            op["requestBody"] = {"required": True, "content": {content_type: {"schema": body_schema}}}
            if note:
                op["requestBody"]["description"] = note
        if binding.body != "*":
            skip = set(path_fields) | ({binding.body} if binding.body else set())
            parameters.extend(self.query_parameters(request, "", skip, (request,)))
        if parameters:
            op["parameters"] = parameters

        if binding.response_body:
            response_schema = self.field_schema(self.resolve_field_path(method.output_type, binding.response_body))
        else:
            response_schema = self.named_schema(method.output_type)
        out_type = NDJSON if method.server_streaming else "application/json"
        ok_description = "A stream of responses, one JSON message per line." if method.server_streaming else "OK"
        op["responses"] = {
            "200": {"description": ok_description, "content": {out_type: {"schema": response_schema}}},
            "default": {"$ref": "#/components/responses/Error"},
        }
        return path, op

    def build(self) -> JSON:
        paths: dict[str, JSON] = {}
        tags = []
        for service in self.api.api_services():
            tags.append({"name": service.name, "description": service.comment})
            for method in service.methods:
                if not method.bindings:
                    raise ValueError(f"{method.grpc_path} has no google.api.http rule")
                for index, binding in enumerate(method.bindings):
                    path, op = self.operation(method, binding, index)
                    item = paths.setdefault(path, {})
                    if binding.verb in item:
                        raise ValueError(f"two rules map {binding.verb.upper()} {path}")
                    item[binding.verb] = op
        schemas = dict(self.components)
        schemas["Error"] = {
            "type": "object",
            "description": "The body of every REST error (a `google.rpc.Status` in JSON).",
            "properties": {
                "code": {
                    "type": "string",
                    "enum": [c.name for c in self.codes],
                    "description": "The gRPC status code name (`google.rpc.Code`).",
                },
                "message": {"type": "string", "description": "What went wrong, for a person to read."},
                "details": {
                    "type": "array",
                    "items": {"type": "object", "additionalProperties": True},
                    "description": "Typed error details (`google.rpc.*` messages with an `@type`).",
                },
            },
            "required": ["code", "message"],
        }
        return {
            "openapi": "3.1.0",
            "info": {
                "title": "Engram API",
                "version": API_PACKAGE.rsplit(".", 1)[-1],
                "description": (
                    "The REST/JSON surface of Engram, the self-hosted long-term memory server for AI agents. "
                    "Generated from the `google.api.http` rules of `proto/engram/v1/*.proto`; the same RPCs are "
                    "served over gRPC, gRPC-Web and Connect. JSON uses proto field names (snake_case); "
                    "lowerCamelCase is accepted on input. Enums are written by full name; the short lowercase "
                    "form (`semantic`) is accepted on input."
                ),
                "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
            },
            "servers": [{"url": "http://127.0.0.1:3300", "description": "A local engram-server"}],
            "security": [{"bearerAuth": []}],
            "tags": tags,
            "paths": paths,
            "components": {
                "schemas": schemas,
                "responses": {
                    "Error": {
                        "description": self.error_description(),
                        "content": {"application/json": {"schema": schema_ref("Error")}},
                    }
                },
                "securitySchemes": {
                    "bearerAuth": {"type": "http", "scheme": "bearer", "description": "An Engram API key."}
                },
            },
        }


    def error_description(self) -> str:
        """Which HTTP status each gRPC code of an error body comes with (google/rpc/code.proto)."""
        by_status: dict[int, list[str]] = {}
        for c in self.codes:
            if c.name != "OK":
                by_status.setdefault(c.http_status, []).append(f"`{c.name}`")
        statuses = "; ".join(f"{status} {', '.join(names)}" for status, names in sorted(by_status.items()))
        return (
            "An error. The HTTP status follows from the body's gRPC code (`google/rpc/code.proto`): "
            f"{statuses}; and 413 `RESOURCE_EXHAUSTED` for a request body over the size limit (see contracts.md)."
        )


def render(api: Api, codes: list[StatusCode]) -> str:
    """The OpenAPI document as deterministic JSON text (trailing newline included)."""
    return json.dumps(OpenApiBuilder(api, codes).build(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    codes = gen_codes.load(Path(__file__).resolve().parent.parent)
    Path(argv[1]).write_text(render(Api(Path(argv[0]).read_bytes()), codes), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
