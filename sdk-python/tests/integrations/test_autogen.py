"""engram.integrations.autogen.EngramMemory against a real server, driven through AutoGen's
``Memory`` interface (autogen-core's own types; no model is called)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

pytest.importorskip("autogen_core", reason="needs the autogen extra")

from autogen_core import CancellationToken, Image
from autogen_core.memory import ListMemory, Memory, MemoryContent, MemoryMimeType
from autogen_core.model_context import BufferedChatCompletionContext, UnboundedChatCompletionContext
from autogen_core.models import AssistantMessage, FunctionExecutionResultMessage, SystemMessage, UserMessage
from pydantic import ValidationError

import engram
from engram.integrations.autogen import EngramMemory, EngramMemoryConfig

from ..conftest import Server

pytestmark = [pytest.mark.server, pytest.mark.anyio]

TEXT = MemoryMimeType.TEXT


@pytest.fixture
async def memory(server: Server, transport: str, agent_id: str) -> AsyncIterator[EngramMemory]:
    m = EngramMemory(agent_id, url=server.url(transport), api_key=server.api_key)
    yield m
    await m.close()


@pytest.fixture
async def client(server: Server, transport: str) -> AsyncIterator[engram.AsyncClient]:
    async with engram.AsyncClient(server.url(transport), api_key=server.api_key) as c:
        yield c


async def test_is_an_autogen_memory(memory: EngramMemory, agent_id: str) -> None:
    assert isinstance(memory, Memory)
    assert memory.name == f"engram:{agent_id}" and memory.agent_id == agent_id


async def test_add_keeps_mime_type_and_metadata(memory: EngramMemory, client: engram.AsyncClient) -> None:
    await memory.add(MemoryContent(content="The user prefers window seats on flights", mime_type=TEXT,
                                   metadata={"source": "chat", "turn": 3}))
    await memory.add(MemoryContent(content="# Diet\n* vegetarian, no mushrooms", mime_type=MemoryMimeType.MARKDOWN))
    await memory.add(MemoryContent(content={"home_airport": "LIS", "loyalty": ["TAP", "Star Alliance"]},
                                   mime_type=MemoryMimeType.JSON))
    await memory.add(MemoryContent(content='{"meal": "vegetarian"}', mime_type="application/json"))

    seats = (await memory.query("Which seat does the user like on a plane?")).results[0]
    assert seats.content == "The user prefers window seats on flights"
    assert seats.mime_type == TEXT
    assert seats.metadata is not None
    assert seats.metadata["source"] == "chat" and seats.metadata["turn"] == 3
    assert seats.metadata["score"] > 0 and seats.metadata["memory_id"]
    assert "mime_type" not in seats.metadata

    diet = (await memory.query(MemoryContent(content="vegetarian diet mushrooms", mime_type=TEXT))).results[0]
    assert diet.mime_type == MemoryMimeType.MARKDOWN
    assert isinstance(diet.content, str) and diet.content.startswith("# Diet")

    airport = (await memory.query("home airport loyalty TAP", top_k=1)).results
    assert len(airport) == 1
    assert airport[0].mime_type == MemoryMimeType.JSON
    assert airport[0].content == {"home_airport": "LIS", "loyalty": ["TAP", "Star Alliance"]}

    # What Engram holds: the text, with the MIME type next to the caller's metadata.
    stored = await client.get(seats.metadata["memory_id"])
    assert stored.memory is not None
    assert stored.memory.content == "The user prefers window seats on flights"
    assert engram._convert.plain(stored.memory.metadata) == {"source": "chat", "turn": 3, "mime_type": "text/plain"}


async def test_update_context_adds_a_system_message(memory: EngramMemory) -> None:
    await memory.add(MemoryContent(content="The user is allergic to peanuts", mime_type=TEXT))
    await memory.add(MemoryContent(content="The user's favourite colour is green", mime_type=TEXT))
    context = BufferedChatCompletionContext(buffer_size=10)
    await context.add_message(UserMessage(content="Suggest a snack without peanuts, I have an allergy", source="user"))

    result = await memory.update_context(context)

    assert result.memories.results
    assert result.memories.results[0].content == "The user is allergic to peanuts"
    messages = await context.get_messages()
    assert len(messages) == 2 and isinstance(messages[-1], SystemMessage)
    assert "1. The user is allergic to peanuts" in messages[-1].content


async def test_update_context_queries_with_the_latest_messages_only(server: Server, agent_id: str) -> None:
    memory = EngramMemory(agent_id, url=server.http_url, api_key=server.api_key, top_k=1, query_messages=2)
    try:
        await memory.add(MemoryContent(content="Project Falcon ships on March 3", mime_type=TEXT))
        context = UnboundedChatCompletionContext()
        await context.add_message(UserMessage(content="Tell me about the weather", source="user"))
        await context.add_message(AssistantMessage(content="When does Project Falcon ship?", source="a"))
        await context.add_message(UserMessage(content=["what", Image.from_base64(_PNG), "date again?"], source="user"))
        # Another memory's system message is not part of the query.
        await context.add_message(SystemMessage(content="Relevant memory content: the weather is sunny"))
        result = await memory.update_context(context)
        assert [m.content for m in result.memories.results] == ["Project Falcon ships on March 3"]
    finally:
        await memory.close()


async def test_update_context_without_text_changes_nothing(memory: EngramMemory) -> None:
    await memory.add(MemoryContent(content="anything", mime_type=TEXT))
    empty = UnboundedChatCompletionContext()
    assert (await memory.update_context(empty)).memories.results == []
    assert await empty.get_messages() == []
    tools = UnboundedChatCompletionContext(initial_messages=[FunctionExecutionResultMessage(content=[])])
    assert (await memory.update_context(tools)).memories.results == []
    assert len(await tools.get_messages()) == 1


async def test_query_options(memory: EngramMemory) -> None:
    for i in range(4):
        await memory.add(MemoryContent(content=f"note {i} about the garden", mime_type=TEXT))
    assert len((await memory.query("garden", top_k=2)).results) == 2
    assert (await memory.query("garden", min_score=1e9)).results == []
    latest = (await memory.query("")).results  # a blank query lists the latest memories
    assert [m.content for m in latest] == [f"note {i} about the garden" for i in (3, 2, 1, 0)]
    assert latest[0].metadata is not None and "score" not in latest[0].metadata
    with pytest.raises(TypeError, match="unexpected keyword arguments: k"):
        await memory.query("garden", k=3)
    with pytest.raises(ValueError, match="top_k"):
        await memory.query("garden", top_k=0)


async def test_duplicates_are_merged_by_default(server: Server, agent_id: str, client: engram.AsyncClient) -> None:
    merged = EngramMemory(agent_id, url=server.http_url, api_key=server.api_key)
    kept = EngramMemory(agent_id + "-off", url=server.http_url, api_key=server.api_key, duplicate_policy="off")
    try:
        for m in (merged, kept):
            for _ in range(3):
                await m.add(MemoryContent(content="The office wifi password is on the fridge", mime_type=TEXT))
        assert (await client.list(agent_id)).total_size == 1
        assert (await client.list(agent_id + "-off")).total_size == 3
    finally:
        await merged.close()
        await kept.close()


async def test_scope_by_session_and_tags(server: Server, agent_id: str, client: engram.AsyncClient) -> None:
    url, key = server.http_url, server.api_key
    trip = EngramMemory(agent_id, url=url, api_key=key, session_id="trip-1", tags=["travel"], memory_type="semantic")
    other = EngramMemory(agent_id, url=url, api_key=key, session_id="trip-2")
    try:
        await trip.add(MemoryContent(content="Hotel in Porto is booked for May", mime_type=TEXT))
        await other.add(MemoryContent(content="Hotel in Madrid is booked for June", mime_type=TEXT))
        assert [m.content for m in (await trip.query("hotel booking")).results] == ["Hotel in Porto is booked for May"]
        stored = (await client.list(agent_id, filter={"session_id": "trip-1"})).memories[0]
        assert stored.tags == ["travel"] and stored.memory_type == engram.MemoryType.SEMANTIC

        await trip.clear()  # only its session and tags
        assert [m.content for m in (await client.list(agent_id)).memories] == ["Hotel in Madrid is booked for June"]
        await other.clear()
        assert (await client.list(agent_id)).total_size == 0
    finally:
        await trip.close()
        await other.close()


async def test_clear_without_scope_erases_the_agent(memory: EngramMemory, client: engram.AsyncClient,
                                                    agent_id: str) -> None:
    await memory.add(MemoryContent(content="to be cleared", mime_type=TEXT))
    await memory.clear()
    assert (await client.list(agent_id)).total_size == 0
    assert (await memory.query("cleared")).results == []


async def test_a_passed_client_stays_open(client: engram.AsyncClient, agent_id: str) -> None:
    memory = EngramMemory(agent_id, client=client)
    await memory.add(MemoryContent(content="shared client", mime_type=TEXT))
    await memory.close()
    assert (await client.list(agent_id)).total_size == 1


async def test_cancellation_token(memory: EngramMemory, client: engram.AsyncClient, agent_id: str) -> None:
    token = CancellationToken()
    token.cancel()
    with pytest.raises(asyncio.CancelledError):
        await memory.add(MemoryContent(content="never stored", mime_type=TEXT), cancellation_token=token)
    with pytest.raises(asyncio.CancelledError):
        await memory.query("anything", cancellation_token=token)
    live = CancellationToken()
    await memory.add(MemoryContent(content="stored", mime_type=TEXT), cancellation_token=live)
    assert [m.content for m in (await client.list(agent_id)).memories] == ["stored"]


async def test_bad_content_is_refused_clearly(memory: EngramMemory) -> None:
    with pytest.raises(ValueError, match="not image/\\*"):
        await memory.add(MemoryContent(content=Image.from_base64(_PNG), mime_type=MemoryMimeType.IMAGE))
    with pytest.raises(ValueError, match="not application/octet-stream"):
        await memory.add(MemoryContent(content=b"\x00\x01", mime_type=MemoryMimeType.BINARY))
    with pytest.raises(TypeError, match="must be a str"):
        await memory.add(MemoryContent(content=b"bytes", mime_type=TEXT))
    with pytest.raises(ValueError, match="not valid JSON"):
        await memory.add(MemoryContent(content="{not json", mime_type=MemoryMimeType.JSON))
    with pytest.raises(TypeError, match="metadata must be JSON"):
        await memory.add(MemoryContent(content="x", mime_type=TEXT, metadata={"when": object()}))
    with pytest.raises(TypeError, match="MemoryContent"):
        await memory.add("plain string")  # type: ignore[arg-type]


async def test_bad_arguments_are_refused_at_once(server: Server) -> None:
    with pytest.raises(ValidationError, match="agent_id"):
        EngramMemory("")
    with pytest.raises(ValidationError, match="top_k"):
        EngramMemory("a", top_k=0)
    with pytest.raises(ValidationError, match="duplicate_policy"):
        EngramMemory("a", duplicate_policy="sometimes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="tags"):
        EngramMemory("a", tags="travel")
    with pytest.raises(ValueError, match="invalid port"):
        EngramMemory("a", url="http://127.0.0.1:notaport")
    async with engram.AsyncClient(server.http_url, api_key=server.api_key) as c:
        with pytest.raises(ValueError, match="either client or url"):
            EngramMemory("a", client=c, url=server.http_url)


async def test_component_config_round_trip(server: Server, agent_id: str, monkeypatch: pytest.MonkeyPatch) -> None:
    memory = EngramMemory(agent_id, url=server.grpc_url, api_key=server.api_key, top_k=2, tags=["t"],
                          session_id="s", duplicate_policy="near", duplicate_threshold=0.9)
    dumped = memory.dump_component()
    assert dumped.provider == "engram.integrations.autogen.EngramMemory"
    assert dumped.component_type == "memory"
    assert dumped.config["url"] == server.grpc_url and "api_key" not in dumped.config
    assert server.api_key not in dumped.model_dump_json()

    # Loaded from JSON with the key from the environment, or from a config that names it.
    monkeypatch.setenv("ENGRAM_API_KEY", server.api_key)
    loaded = Memory.load_component(json.loads(dumped.model_dump_json()))
    assert isinstance(loaded, EngramMemory)
    assert loaded._to_config() == memory._to_config()
    await loaded.add(MemoryContent(content="loaded from a component config", mime_type=TEXT))
    monkeypatch.delenv("ENGRAM_API_KEY")
    explicit = EngramMemory._from_config(EngramMemoryConfig(agent_id=agent_id, url=server.http_url,
                                                            api_key=server.api_key, session_id="s", tags=["t"]))
    assert [m.content for m in (await explicit.query("component config")).results] == ["loaded from a component config"]
    for m in (memory, loaded, explicit):
        await m.close()


async def test_same_interface_as_list_memory(memory: EngramMemory) -> None:
    """What AutoGen's own ListMemory returns for the same calls, EngramMemory returns too."""
    reference = ListMemory()
    content = MemoryContent(content="The user's name is Ada", mime_type=TEXT)
    for m in (reference, memory):
        await m.add(content)
        context = UnboundedChatCompletionContext()
        await context.add_message(UserMessage(content="What is my name?", source="user"))
        result = await m.update_context(context)
        assert [r.content for r in result.memories.results] == ["The user's name is Ada"]
        assert "The user's name is Ada" in str((await context.get_messages())[-1].content)
        await m.clear()
        assert (await m.query("name")).results == []
        await m.close()


def test_import_needs_no_framework_for_the_package() -> None:
    import engram.integrations

    assert engram.integrations.__doc__


# A 1x1 PNG.
_PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
