"""Model Context Protocol server: Engram's RPCs as MCP tools, over stdio (``engram mcp``).

Nothing here is hand-kept per tool. Each tool is derived at run time from the API:

* its **name** is the RPC name in snake_case (``StoreMemory`` → ``store_memory``);
* its **description** is the RPC's proto comment;
* its **input schema** is built from the request message of the generated code (field types
  from betterproto2's metadata, descriptions and ``Required.`` markers from the proto comments
  in ``engram._api``), output-only fields left out;
* a call builds that request message from the arguments and sends it through the SDK's
  :class:`engram.AsyncClient`, answering the response message as JSON.

The configured agent id is injected into every request that has an ``agent_id`` field, and the
field is removed from the schemas, so the assistant never has to pass it (nor can it reach
another agent). Profiles: ``default`` (store, recall, get, update, forget, list) keeps the
assistant's context small; ``all`` exposes every unary RPC.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import betterproto2

from engram import _convert
from engram._api import ENUM_DOCS, FIELD_DOCS, MESSAGE_DOCS, RPCS
from engram._async.client import AsyncClient
from engram._rpc import RpcSpec
from engram.errors import EngramError

if TYPE_CHECKING:
    import mcp.types as mcp_types

PROFILES: dict[str, tuple[str, ...]] = {
    "default": ("StoreMemory", "Recall", "GetMemory", "UpdateMemory", "ForgetMemories", "ListMemories"),
    "all": tuple(s.name for s in RPCS if not s.client_streaming and not s.server_streaming),
}
"""RPCs exposed per profile. Streaming RPCs (export, import) are left to the CLI."""

_SCALARS: dict[str, dict[str, Any]] = {
    betterproto2.TYPE_BOOL: {"type": "boolean"},
    betterproto2.TYPE_STRING: {"type": "string"},
    betterproto2.TYPE_BYTES: {"type": "string", "contentEncoding": "base64"},
    betterproto2.TYPE_FLOAT: {"type": "number"},
    betterproto2.TYPE_DOUBLE: {"type": "number"},
}
_INTS = {"int32", "int64", "uint32", "uint64", "sint32", "sint64", "fixed32", "fixed64",
         "sfixed32", "sfixed64"}


def tool_name(spec: RpcSpec) -> str:
    """``StoreMemory`` → ``store_memory``; ``Recall`` → ``recall``."""
    return betterproto2.casing.snake_case(spec.name)


def _doc(message: str, field: str) -> str:
    return FIELD_DOCS.get(message, {}).get(field, "")


def _is_output_only(message: str, field: str) -> bool:
    return "Output only." in _doc(message, field)


def message_schema(
    cls: type[betterproto2.Message], *, omit: frozenset[str] = frozenset(), depth: int = 0
) -> dict[str, Any]:
    """JSON Schema of a message's proto3 JSON form (snake_case names, short enum names)."""
    name = cls.__name__
    hints = cls._type_hints()
    properties: dict[str, Any] = {}
    required: list[str] = []
    for field, meta in cls._betterproto.meta_by_field_name.items():  # type: ignore[arg-type]
        if field in omit or _is_output_only(name, field):
            continue
        schema = _field_schema(meta, hints[field], depth)
        doc = _doc(name, field)
        if doc:
            schema["description"] = doc
            if doc.startswith("Required."):
                required.append(field)
        properties[field] = schema
    out: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        out["required"] = required
    if MESSAGE_DOCS.get(name) and depth:
        out["description"] = MESSAGE_DOCS[name]
    return out


def _field_schema(meta: Any, hint: Any, depth: int) -> dict[str, Any]:
    if meta.proto_type == betterproto2.TYPE_MAP:
        value = _single_schema(meta.map_meta[1].proto_type, hint.__args__[1], depth)
        return {"type": "object", "additionalProperties": value}
    inner = hint.__args__[0] if (meta.repeated or meta.optional) and hasattr(hint, "__args__") else hint
    single = _single_schema(meta.proto_type, inner, depth)
    if meta.repeated:
        return {"type": "array", "items": single}
    return single


def _single_schema(proto_type: str, cls: Any, depth: int) -> dict[str, Any]:
    if proto_type in _SCALARS:
        return dict(_SCALARS[proto_type])
    if proto_type in _INTS:
        return {"type": "integer"}
    if proto_type == betterproto2.TYPE_ENUM:
        names = [m.name.lower() for m in cls if m.value != 0]
        doc = "; ".join(
            f"{m.name.lower()}: {ENUM_DOCS.get(f'{cls.__name__}.{_full_enum_name(cls, m)}', '')}"
            for m in cls if m.value != 0
        )
        return {"type": "string", "enum": names, "description": doc}
    if cls is datetime.datetime:
        return {"type": "string", "format": "date-time"}
    name = getattr(cls, "__name__", "")
    if name == "Struct":
        return {"type": "object", "additionalProperties": True}
    if name == "FieldMask":
        return {"type": "array", "items": {"type": "string"},
                "description": "Names of the fields to change."}
    if isinstance(cls, type) and issubclass(cls, betterproto2.Message) and depth < 4:
        return message_schema(cls, depth=depth + 1)
    return {"type": "object"}


def _full_enum_name(cls: Any, member: Any) -> str:
    names: dict[int, str] = cls.betterproto_value_to_renamed_proto_names()
    return names[member.value]


@dataclass(frozen=True)
class ToolDef:
    """One MCP tool and the RPC it calls."""

    name: str
    description: str
    input_schema: dict[str, Any]
    spec: RpcSpec


def build_tools(profile: str = "default", *, agent_id: str | None = None) -> list[ToolDef]:
    """The tools of a profile; with ``agent_id`` the ``agent_id`` argument is injected, not asked."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}: expected one of {', '.join(PROFILES)}")
    omit = frozenset({"agent_id"}) if agent_id else frozenset()
    tools = []
    for name in PROFILES[profile]:
        spec = next(s for s in RPCS if s.name == name)
        schema = message_schema(spec.request_type, omit=omit)
        description = spec.doc.replace("\n", " ")
        if agent_id and "agent_id" in spec.request_type._betterproto.meta_by_field_name:  # type: ignore[arg-type]
            description += f" (Works on the memories of agent `{agent_id}`.)"
        tools.append(ToolDef(tool_name(spec), description, schema, spec))
    return tools


def build_request(tool: ToolDef, arguments: Mapping[str, Any], agent_id: str | None) -> betterproto2.Message:
    """The request message of a tool call (the configured agent id injected)."""
    args = dict(arguments)
    fields = tool.spec.request_type._betterproto.meta_by_field_name  # type: ignore[arg-type]
    if agent_id and "agent_id" in fields:
        args["agent_id"] = agent_id
    if isinstance(args.get("update_mask"), list):
        args["update_mask"] = {"paths": args["update_mask"]}
    if tool.spec.name == "UpdateMemory" and isinstance(args.get("memory"), dict) and "update_mask" not in args:
        args["update_mask"] = {"paths": [k for k in args["memory"] if k != "id"]}
    message = _convert.message_of(tool.spec.request_type, args)
    assert message is not None
    return message


async def call_tool(
    client: AsyncClient, tool: ToolDef, arguments: Mapping[str, Any], agent_id: str | None
) -> dict[str, Any]:
    """Run a tool through the SDK client and return the response as proto3 JSON."""
    request = build_request(tool, arguments, agent_id)
    response = await client._call(tool.spec.name, request, tool.spec.response_type, client.timeout)
    return _convert.to_json_dict(response)


def create_server(client: AsyncClient, *, profile: str = "default", agent_id: str | None = None) -> Any:
    """An ``mcp`` low-level server exposing the profile's tools, bound to ``client``."""
    import mcp.types as types
    from mcp.server.lowlevel import Server

    from engram._version import __version__

    tools = {t.name: t for t in build_tools(profile, agent_id=agent_id)}

    async def on_list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(
            tools=[
                types.Tool(name=t.name, description=t.description, input_schema=t.input_schema)
                for t in tools.values()
            ]
        )

    async def on_call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        tool = tools.get(params.name)
        if tool is None:
            return _error_result(f"unknown tool {params.name!r}")
        try:
            result = await call_tool(client, tool, params.arguments or {}, agent_id)
        except EngramError as exc:
            return _error_result(f"{exc.code}: {exc.message}")
        except (ValueError, TypeError, KeyError) as exc:
            return _error_result(f"INVALID_ARGUMENT: {exc}")
        text = json.dumps(result, ensure_ascii=False, indent=1)
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=text)], structured_content=result
        )

    instructions = (
        "Long-term memory. Call `recall` before answering to find what you already know, and "
        "`store_memory` to remember durable facts, preferences and decisions."
    )
    return Server(
        "engram",
        version=__version__,
        instructions=instructions,
        on_list_tools=on_list_tools,
        on_call_tool=on_call_tool,
    )


def _error_result(message: str) -> mcp_types.CallToolResult:
    import mcp.types as types

    return types.CallToolResult(content=[types.TextContent(type="text", text=message)], is_error=True)


async def serve_stdio(client: AsyncClient, *, profile: str = "default", agent_id: str | None = None) -> None:
    """Serve MCP over stdin/stdout until the client closes the stream."""
    from mcp.server.stdio import stdio_server

    server = create_server(client, profile=profile, agent_id=agent_id)
    async with client, stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())
