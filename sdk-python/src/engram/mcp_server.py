"""Model Context Protocol server: Engram's RPCs as MCP tools, over stdio (``engram mcp``) or
Streamable HTTP (``engram mcp --http``, :mod:`engram.mcp_http`).

Nothing here is hand-kept per tool. Each tool is derived at run time from the API:

* its **name** is the RPC name in snake_case (``StoreMemory`` → ``store_memory``);
* its **description** is the first sentence of the RPC's proto comment, up to its colon;
* its **input schema** is built from the request message of the generated code (field types
  from betterproto2's metadata, ``required`` from the ``Required.`` markers of the proto comments
  in ``engram._api``), with the first sentence of each top-level field's comment; output-only
  fields, field masks and nested descriptions are left out (:func:`message_schema`);
* a call builds that request message from the arguments and sends it through the SDK's
  :class:`engram.AsyncClient`, answering the response message as JSON.

The tool list enters the assistant's context on every turn: :data:`TOOLS_LIST_BUDGET` caps it.
The configured agent id is injected into every request (and nested request) that has an
``agent_id`` field, and the field is removed from the schemas, so the assistant never has to pass
it (nor can it reach another agent). Profiles: ``default`` (store, recall, get, update, forget,
list, consolidate) keeps the assistant's context small; ``all`` exposes every unary RPC. A few
fields are left out of a tool (:data:`OMITTED_FIELDS`) or given a safer default
(:data:`TOOL_DEFAULTS`: ``consolidate_memories`` is a dry run unless told otherwise).
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import betterproto2

from engram import _convert
from engram._api import FIELD_DOCS, RPCS
from engram._async.client import AsyncClient
from engram._rpc import RpcSpec
from engram.errors import EngramError

if TYPE_CHECKING:
    import mcp.types as mcp_types

PROFILES: dict[str, tuple[str, ...]] = {
    "default": ("StoreMemory", "Recall", "GetMemory", "UpdateMemory", "ForgetMemories", "ListMemories",
                "ConsolidateMemories"),
    "all": tuple(s.name for s in RPCS if not s.client_streaming and not s.server_streaming),
}
"""RPCs exposed per profile. Streaming RPCs (export, import, watch) are left to the CLI."""

OMITTED_FIELDS: dict[str, frozenset[str]] = {
    # Similarity thresholds are tuning knobs for programs and operators (the server's setting
    # applies): a model lowering one would merge, and delete, memories that are not duplicates.
    "StoreMemory": frozenset({"duplicate_threshold"}),
    "ConsolidateMemories": frozenset({"similarity_threshold"}),
}
"""Request fields a tool leaves out of its schema (the server's default applies)."""

TOOL_DEFAULTS: dict[str, dict[str, Any]] = {
    # Merging deletes memories: an assistant previews unless it asks for the merge explicitly.
    "ConsolidateMemories": {"dry_run": True},
}
"""Arguments a tool fills in when the call does not pass them, shown as the schema's ``default``."""

TOOLS_LIST_BUDGET = 7100
"""Most bytes the ``tools/list`` result of the ``default`` profile may take (compact JSON, as sent;
without an agent id, the larger case): 12,123 bytes before the schemas were made compact, 6,320
after; 7,038 with the upsert key and duplicate policy of ``store_memory``, the ``keys`` filter and
the ``consolidate_memories`` tool (raised from 6,500: the new fields of StoreMemoryRequest and
MemoryFilter alone had taken the list to 7,061 before the tool was added). ``tests/test_mcp.py``
and ``tests/test_mcp_http.py`` check it; docs/mcp.md states it."""

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


_REQUIRED_PREFIX = re.compile(r"^Required(?:\.\s*|,\s*)")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z`])")
_ASIDE = re.compile(r" \([^()]*\)")


def brief(doc: str) -> str:
    """The first sentence of a proto comment, on one line, without the ``Required.`` marker and
    without parenthesised asides (``unique within the agent (another agent may ...)``).

    Tool descriptions travel in the assistant's context on every turn, so each says only what a
    model needs to call the tool; the JSON Schema carries the rest (``required``, types, enums).
    """
    text = " ".join(doc.split())
    text = _REQUIRED_PREFIX.sub("", text)
    text = _SENTENCE_END.split(text, maxsplit=1)[0]
    text = _ASIDE.sub("", text)
    return text[:1].upper() + text[1:]


def _tool_description(doc: str) -> str:
    """The RPC comment's first sentence, up to its colon (``Stores one memory: embeds ...`` →
    ``Stores one memory.``): what the tool does; how the server does it is not the model's concern."""
    text = brief(doc)
    head, colon, _ = text.partition(": ")
    return head.rstrip(".") + "." if colon else text


def message_schema(
    cls: type[betterproto2.Message], *, omit: frozenset[str] = frozenset(), depth: int = 0
) -> dict[str, Any]:
    """JSON Schema of a message's proto3 JSON form (snake_case names, short enum names), compact.

    Left out: output-only fields; ``FieldMask`` fields (the mask is derived from the fields sent,
    see :func:`build_request`); ``agent_id`` inside nested non-request messages (the request's own
    ``agent_id`` names the agent). Descriptions are :func:`brief`; enum values are explained on
    top-level fields only.
    """
    name = cls.__name__
    hints = cls._type_hints()
    properties: dict[str, Any] = {}
    required: list[str] = []
    for field, meta in cls._betterproto.meta_by_field_name.items():  # type: ignore[arg-type]
        if field in omit or _is_output_only(name, field) or _is_field_mask(hints[field]):
            continue
        if depth and field == "agent_id" and not name.endswith("Request"):
            continue
        schema = _field_schema(meta, hints[field], depth, omit)
        doc = _doc(name, field)
        if doc and not depth and field != "agent_id":
            schema["description"] = brief(doc)
        if doc.startswith("Required"):
            required.append(field)
        properties[field] = schema
    out: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        out["required"] = required
    return out


def _is_field_mask(hint: Any) -> bool:
    inner = getattr(hint, "__args__", (hint,))[0]
    return getattr(inner, "__name__", "") == "FieldMask"


def _field_schema(meta: Any, hint: Any, depth: int, omit: frozenset[str]) -> dict[str, Any]:
    if meta.proto_type == betterproto2.TYPE_MAP:
        value = _single_schema(meta.map_meta[1].proto_type, hint.__args__[1], depth, omit)
        return {"type": "object", "additionalProperties": value}
    inner = hint.__args__[0] if (meta.repeated or meta.optional) and hasattr(hint, "__args__") else hint
    single = _single_schema(meta.proto_type, inner, depth, omit)
    if meta.repeated:
        return {"type": "array", "items": single}
    return single


def _single_schema(proto_type: str, cls: Any, depth: int, omit: frozenset[str]) -> dict[str, Any]:
    if proto_type in _SCALARS:
        return dict(_SCALARS[proto_type])
    if proto_type in _INTS:
        return {"type": "integer"}
    if proto_type == betterproto2.TYPE_ENUM:
        return {"type": "string", "enum": [m.name.lower() for m in cls if m.value != 0]}
    if cls is datetime.datetime:
        return {"type": "string", "format": "date-time"}
    name = getattr(cls, "__name__", "")
    if name == "Struct":
        return {"type": "object"}
    if isinstance(cls, type) and issubclass(cls, betterproto2.Message) and depth < 4:
        nested_omit = omit & {"agent_id"} if cls.__name__.endswith("Request") else frozenset()
        return message_schema(cls, omit=nested_omit, depth=depth + 1)
    return {"type": "object"}


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
        for field in OMITTED_FIELDS.get(name, ()):
            schema["properties"].pop(field, None)
        for field, value in TOOL_DEFAULTS.get(name, {}).items():
            schema["properties"][field]["default"] = value
        tools.append(ToolDef(tool_name(spec), _tool_description(spec.doc), schema, spec))
    return tools


def _inject_agent(cls: type[betterproto2.Message], args: dict[str, Any], agent_id: str) -> dict[str, Any]:
    """``args`` with ``agent_id`` set on the request and on every nested request (batch calls)."""
    fields = cls._betterproto.meta_by_field_name  # type: ignore[arg-type]
    out = dict(args)
    if "agent_id" in fields:
        out["agent_id"] = agent_id
    hints = cls._type_hints()
    for field in fields:
        hint = hints[field]
        inner = getattr(hint, "__args__", (hint,))[0]
        if not (isinstance(inner, type) and issubclass(inner, betterproto2.Message)
                and inner.__name__.endswith("Request")):
            continue
        value = out.get(field)
        if isinstance(value, list):
            out[field] = [_inject_agent(inner, v, agent_id) if isinstance(v, dict) else v for v in value]
        elif isinstance(value, dict):
            out[field] = _inject_agent(inner, value, agent_id)
    return out


def build_request(tool: ToolDef, arguments: Mapping[str, Any], agent_id: str | None) -> betterproto2.Message:
    """The request message of a tool call (the configured agent id injected).

    ``update_mask`` is not in the schema: it is derived from the fields of ``memory`` that were
    sent (a field sent empty is cleared), as REST does with the fields present in the body.
    """
    args = _inject_agent(tool.spec.request_type, dict(arguments), agent_id) if agent_id else dict(arguments)
    for field in OMITTED_FIELDS.get(tool.spec.name, ()):
        if field in args:
            raise ValueError(f"{tool.name} takes no {field!r}")
    for field, value in TOOL_DEFAULTS.get(tool.spec.name, {}).items():
        if args.get(field) is None:
            args[field] = value
    if isinstance(args.get("update_mask"), list):
        args["update_mask"] = {"paths": args["update_mask"]}
    if tool.spec.name == "UpdateMemory" and isinstance(args.get("memory"), dict) and "update_mask" not in args:
        args["update_mask"] = {"paths": [k for k in args["memory"] if k not in ("id", "agent_id")]}
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


ClientFor = Callable[[Any], AbstractAsyncContextManager[AsyncClient]]
"""Given a tool call's request context, the SDK client to send its RPC with (HTTP mode: a client
holding the calling MCP client's own API key, see :mod:`engram.mcp_http`)."""


def create_server(
    client: AsyncClient | ClientFor, *, profile: str = "default", agent_id: str | None = None
) -> Any:
    """An ``mcp`` low-level server exposing the profile's tools.

    ``client`` is the SDK client every call goes through (stdio), or a function giving the client
    for a call from its request context (HTTP, where each MCP client's key is forwarded).
    """
    import mcp.types as types
    from mcp.server.lowlevel import Server

    from engram._version import __version__

    tools = {t.name: t for t in build_tools(profile, agent_id=agent_id)}
    listed = types.ListToolsResult(
        tools=[types.Tool(name=t.name, description=t.description, input_schema=t.input_schema)
               for t in tools.values()]
    )
    client_for: ClientFor = (lambda ctx: nullcontext(client)) if isinstance(client, AsyncClient) else client

    async def on_list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        return listed

    async def on_call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        tool = tools.get(params.name)
        if tool is None:
            return _error_result(f"unknown tool {params.name!r}")
        try:
            async with client_for(ctx) as call_client:
                result = await call_tool(call_client, tool, params.arguments or {}, agent_id)
        except EngramError as exc:
            return _error_result(f"{exc.code}: {exc.message}")
        except (ValueError, TypeError, KeyError) as exc:
            return _error_result(f"INVALID_ARGUMENT: {exc}")
        text = json.dumps(result, ensure_ascii=False, indent=1)
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=text)], structured_content=result
        )

    return Server(
        "engram",
        version=__version__,
        instructions=instructions(agent_id),
        on_list_tools=on_list_tools,
        on_call_tool=on_call_tool,
    )


def instructions(agent_id: str | None) -> str:
    """What the server tells the assistant once, at initialisation (not repeated per tool)."""
    text = (
        "Long-term memory. Call `recall` before answering to find what you already know, and "
        "`store_memory` to remember durable facts, preferences and decisions."
    )
    if agent_id:
        return text + f" The tools work on the memories of agent `{agent_id}`."
    return text + " `agent_id` names the agent (memory namespace) a tool works on."


def tools_list_json(profile: str = "default", *, agent_id: str | None = None) -> str:
    """The ``tools/list`` result as the server sends it (compact JSON): what enters the assistant's
    context. Its size is budgeted (``TOOLS_LIST_BUDGET``)."""
    import mcp.types as types

    result = types.ListToolsResult(
        tools=[types.Tool(name=t.name, description=t.description, input_schema=t.input_schema)
               for t in build_tools(profile, agent_id=agent_id)]
    )
    return result.model_dump_json(by_alias=True, exclude_none=True)


def _error_result(message: str) -> mcp_types.CallToolResult:
    import mcp.types as types

    return types.CallToolResult(content=[types.TextContent(type="text", text=message)], is_error=True)


async def serve_stdio(client: AsyncClient, *, profile: str = "default", agent_id: str | None = None) -> None:
    """Serve MCP over stdin/stdout until the client closes the stream."""
    from mcp.server.stdio import stdio_server

    server = create_server(client, profile=profile, agent_id=agent_id)
    async with client, stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())
