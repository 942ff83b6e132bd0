"""`engram mcp` tested with an MCP client session from the `mcp` package, over stdio."""

from __future__ import annotations

import json
import sys

import pytest

from engram.mcp_server import PROFILES, TOOLS_LIST_BUDGET, build_request, build_tools, tools_list_json

from .conftest import Server

mcp = pytest.importorskip("mcp")


def test_tools_are_derived_from_the_proto() -> None:
    tools = {t.name: t for t in build_tools("default", agent_id="a1")}
    assert set(tools) == {"store_memory", "recall", "get_memory", "update_memory", "forget_memories",
                          "list_memories", "consolidate_memories"}
    store = tools["store_memory"]
    assert store.description.startswith("Stores one memory")
    assert "agent_id" not in store.input_schema["properties"]  # injected from configuration
    assert store.input_schema["required"] == ["content"]
    assert store.input_schema["properties"]["memory_type"]["enum"] == ["episodic", "semantic", "procedural",
                                                                       "working"]
    assert store.input_schema["properties"]["tags"] == {"type": "array", "items": {"type": "string"},
                                                        "description": "Labels to filter by."}
    unscoped = {t.name: t for t in build_tools("all")}
    assert "agent_id" in unscoped["recall"].input_schema["required"]
    assert len(unscoped) == len(PROFILES["all"]) and "export_memories" not in unscoped
    assert "created_at" not in tools["update_memory"].input_schema["properties"]["memory"]["properties"]


def test_tools_list_stays_within_its_budget() -> None:
    """The default tools enter the assistant's context on every turn: 12,123 bytes before they were
    made compact. Growing past the budget is a decision to take in docs/mcp.md, not by drift."""
    for agent_id in (None, "a1"):
        size = len(tools_list_json("default", agent_id=agent_id).encode())
        assert size <= TOOLS_LIST_BUDGET, f"tools/list is {size} bytes (agent_id={agent_id})"
    assert TOOLS_LIST_BUDGET <= 7100  # docs/mcp.md states this figure


def test_schemas_say_each_thing_once() -> None:
    tools = {t.name: t for t in build_tools("default")}
    text = tools_list_json("default")
    assert "Required." not in text and "\\n" not in text and "additionalProperties" not in text
    recall = tools["recall"].input_schema
    assert recall["required"] == ["agent_id", "query"]
    assert "description" not in recall["properties"]["agent_id"]  # explained once, in the instructions
    filter_fields = recall["properties"]["filter"]["properties"]
    assert all("description" not in f for f in filter_fields.values())  # the names say it
    assert tools["forget_memories"].input_schema["required"] == ["agent_id", "filter"]
    update = tools["update_memory"].input_schema["properties"]
    assert "update_mask" not in update and "agent_id" not in update["memory"]["properties"]


def test_store_takes_a_key_and_a_policy_and_consolidate_previews_by_default() -> None:
    tools = {t.name: t for t in build_tools("default", agent_id="a1")}
    store = tools["store_memory"].input_schema["properties"]
    assert store["key"]["description"] == (
        "Optional upsert key: when the agent has a memory with this key, it is replaced by this one.")
    assert store["duplicate_policy"]["enum"] == ["off", "exact", "near"]
    assert "duplicate_threshold" not in store  # a knob for programs (OMITTED_FIELDS)
    consolidate = tools["consolidate_memories"]
    assert consolidate.description == (
        "Finds near-duplicate memories of an agent and merges each group into one memory.")
    assert consolidate.input_schema["properties"] == {
        "dry_run": {"type": "boolean", "description": "List the groups without merging anything.", "default": True}}
    assert build_request(consolidate, {}, "a1").dry_run is True
    assert build_request(consolidate, {"dry_run": False}, "a1").dry_run is False
    with pytest.raises(ValueError, match="similarity_threshold"):
        build_request(consolidate, {"similarity_threshold": 0.5}, "a1")


def test_update_mask_is_derived_from_the_fields_sent() -> None:
    tool = next(t for t in build_tools("default", agent_id="a1") if t.name == "update_memory")
    request = build_request(tool, {"memory": {"id": "m1", "tags": [], "importance": 0.9}}, "a1")
    assert request.update_mask.paths == ["tags", "importance"]
    assert request.agent_id == "a1"


def test_configured_agent_is_injected_into_nested_requests() -> None:
    tool = next(t for t in build_tools("all", agent_id="a1") if t.name == "batch_store_memories")
    item = tool.input_schema["properties"]["requests"]["items"]
    assert "agent_id" not in item["properties"] and item["required"] == ["content"]
    request = build_request(tool, {"requests": [{"content": "x", "agent_id": "other"}]}, "a1")
    assert [r.agent_id for r in request.requests] == ["a1"]


@pytest.mark.server
@pytest.mark.anyio
async def test_mcp_stdio_session(server: Server, agent_id: str) -> None:
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    params = StdioServerParameters(
        command=sys.executable, args=["-m", "engram.cli", "mcp"],
        env={"ENGRAM_URL": server.http_url, "ENGRAM_API_KEY": server.api_key, "ENGRAM_AGENT_ID": agent_id,
             "ENGRAM_CONFIG": "/nonexistent/engram.toml"},
    )
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        listed = await session.list_tools()
        names = {t.name for t in listed.tools}
        assert names == {"store_memory", "recall", "get_memory", "update_memory", "forget_memories",
                         "list_memories", "consolidate_memories"}

        stored = await session.call_tool("store_memory", {"content": "The MCP user loves green tea",
                                                          "tags": ["mcp"], "memory_type": "semantic"})
        assert not stored.is_error, stored.content
        memory = json.loads(stored.content[0].text)["memory"]
        assert memory["agent_id"] == agent_id

        found = await session.call_tool("recall", {"query": "what drink does the user like?", "top_k": 3})
        hits = json.loads(found.content[0].text)["memories"]
        assert hits[0]["id"] == memory["id"]

        got = await session.call_tool("get_memory", {"id": memory["id"]})
        assert json.loads(got.content[0].text)["memory"]["content"] == "The MCP user loves green tea"

        updated = await session.call_tool("update_memory", {"memory": {"id": memory["id"], "importance": 0.9}})
        assert json.loads(updated.content[0].text)["memory"]["version"] == 2

        missing = await session.call_tool("get_memory", {"id": "nope"})
        assert missing.is_error and "NOT_FOUND" in missing.content[0].text

        keyed = await session.call_tool("store_memory", {"content": "Timezone: Europe/Paris", "key": "tz"})
        rekeyed = await session.call_tool("store_memory", {"content": "Timezone: Asia/Tokyo", "key": "tz"})
        first, second = json.loads(keyed.content[0].text), json.loads(rekeyed.content[0].text)
        assert second["outcome"] == "STORE_OUTCOME_REPLACED" and second["memory"]["id"] == first["memory"]["id"]
        await session.call_tool("store_memory", {"content": "The MCP user loves GREEN tea!", "duplicate_policy": "off"})
        preview = json.loads((await session.call_tool("consolidate_memories", {})).content[0].text)
        assert preview["dry_run"] is True and preview["groups"][0]["keep_id"] == memory["id"]
        assert (await session.call_tool("get_memory", {"id": memory["id"]})).is_error is False
        merged = json.loads((await session.call_tool("consolidate_memories", {"dry_run": False})).content[0].text)
        assert merged["merged_count"] == 1
