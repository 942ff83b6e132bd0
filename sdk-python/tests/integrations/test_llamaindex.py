"""engram.integrations.llamaindex.EngramMemoryBlock against a real server, driven through
LlamaIndex's memory (llama-index-core's own Memory and ChatMessage; no model is called)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

pytest.importorskip("llama_index.core", reason="needs the llamaindex extra")

from llama_index.core.async_utils import asyncio_run
from llama_index.core.base.llms.types import ChatMessage, ImageBlock, TextBlock
from llama_index.core.memory import BaseMemoryBlock, Memory
from pydantic import ValidationError

import engram
from engram.integrations.llamaindex import EngramMemoryBlock

from ..conftest import Server

pytestmark = [pytest.mark.server]


def _words(text: str) -> list[str]:
    """A tokenizer for Memory's token counting that needs no download: one token per word."""
    return text.split()


@pytest.fixture
async def client(server: Server, transport: str) -> AsyncIterator[engram.AsyncClient]:
    async with engram.AsyncClient(server.url(transport), api_key=server.api_key) as c:
        yield c


@pytest.fixture
async def block(server: Server, transport: str, agent_id: str) -> AsyncIterator[EngramMemoryBlock]:
    b = EngramMemoryBlock(agent_id=agent_id, url=server.url(transport), api_key=server.api_key)
    yield b
    await b.aclose()


@pytest.mark.anyio
async def test_put_then_get(block: EngramMemoryBlock, client: engram.AsyncClient, agent_id: str) -> None:
    assert isinstance(block, BaseMemoryBlock)
    await block.aput([
        ChatMessage(role="user", content="My dog is called Biscuit and she is a beagle"),
        ChatMessage(role="assistant", content="Nice! Beagles love long walks."),
        ChatMessage(role="assistant", blocks=[]),  # no text: not stored
        ChatMessage(role="user", content="I work night shifts at the hospital"),
    ], session_id="chat-1")

    stored = [m async for m in client.iter_memories(agent_id, order_by="created_at asc")]
    assert [(m.content, engram._convert.plain(m.metadata), m.session_id) for m in stored] == [
        ("My dog is called Biscuit and she is a beagle", {"role": "user"}, "chat-1"),
        ("Nice! Beagles love long walks.", {"role": "assistant"}, "chat-1"),
        ("I work night shifts at the hospital", {"role": "user"}, "chat-1"),
    ]

    text = await block.aget([ChatMessage(role="user", content="What breed is my dog Biscuit?")])
    assert text.splitlines()[0] == "user: My dog is called Biscuit and she is a beagle"
    assert await block.aget([]) == ""
    assert await block.aget(None) == ""
    # System and developer instructions are not part of the query.
    assert await block.aget([ChatMessage(role="system", content="You are a dog expert")]) == ""


@pytest.mark.anyio
async def test_query_uses_the_latest_messages(server: Server, agent_id: str) -> None:
    block = EngramMemoryBlock(agent_id=agent_id, url=server.http_url, api_key=server.api_key,
                              retrieval_context_window=1, top_k=1)
    try:
        await block.aput([ChatMessage(role="user", content="The deploy key rotates every Friday"),
                          ChatMessage(role="user", content="Lunch is at noon in the cafeteria")])
        history = [ChatMessage(role="user", content="When is lunch?"),
                   ChatMessage(role="assistant", content="Which day?"),
                   ChatMessage(role="user", content="When does the deploy key rotate?")]
        assert await block.aget(history) == "user: The deploy key rotates every Friday"
        assert (await block.aget(history[:1])) == "user: Lunch is at noon in the cafeteria"
    finally:
        await block.aclose()


@pytest.mark.anyio
async def test_through_llamaindex_memory(server: Server, transport: str, agent_id: str,
                                         client: engram.AsyncClient) -> None:
    """Messages flushed from the short-term queue land in Engram; later reads recall them."""
    block = EngramMemoryBlock(agent_id=agent_id, url=server.url(transport), api_key=server.api_key)
    memory = Memory.from_defaults(session_id="session-a", token_limit=60, chat_history_token_ratio=0.5,
                                  token_flush_size=20, tokenizer_fn=_words, memory_blocks=[block])
    try:
        turns = [
            ("user", "I am planning a trip to Kyoto in April for the cherry blossoms"),
            ("assistant", "April is a great time for Kyoto, book hotels early"),
            ("user", "My budget for the whole trip is two thousand euros"),
            ("assistant", "That is enough for a week with careful planning"),
            ("user", "I am vegetarian so restaurants matter a lot"),
            ("assistant", "Kyoto has many shojin ryori temple restaurants"),
        ]
        for role, text in turns:
            await memory.aput(ChatMessage(role=role, content=text))

        stored = [m async for m in client.iter_memories(agent_id)]
        assert stored, "the memory flushed nothing into Engram"
        assert {m.session_id for m in stored} == {"session-a"}
        assert any(m.content == turns[0][1] for m in stored)

        messages = await memory.aget(input="Which city am I travelling to?")
        system = messages[0]
        assert system.role == "system" and system.content is not None
        assert "<engram_memory>" in system.content and "user: " + turns[0][1] in system.content
        assert await memory.aget_all()  # the chat history is still LlamaIndex's
    finally:
        await block.aclose()


@pytest.mark.anyio
async def test_scope_by_session_and_tags(server: Server, agent_id: str) -> None:
    url, key = server.http_url, server.api_key
    scoped = EngramMemoryBlock(agent_id=agent_id, url=url, api_key=key, session_scoped=True)
    tagged = EngramMemoryBlock(agent_id=agent_id, url=url, api_key=key, tags=["ops"], memory_type="semantic")
    try:
        await scoped.aput([ChatMessage(role="user", content="The staging database is on port 5433")], session_id="s1")
        await scoped.aput([ChatMessage(role="user", content="The production database is on port 5432")],
                          session_id="s2")
        await tagged.aput([ChatMessage(role="user", content="The metrics database is on port 9090")])
        question = [ChatMessage(role="user", content="Which port is the database on?")]

        assert await scoped.aget(question, session_id="s1") == "user: The staging database is on port 5433"
        assert await tagged.aget(question) == "user: The metrics database is on port 9090"
        unscoped = EngramMemoryBlock(agent_id=agent_id, url=url, api_key=key)
        assert len((await unscoped.aget(question, session_id="s1")).splitlines()) == 3
        await unscoped.aclose()
    finally:
        await scoped.aclose()
        await tagged.aclose()


@pytest.mark.anyio
async def test_duplicates_are_merged(block: EngramMemoryBlock, client: engram.AsyncClient, agent_id: str) -> None:
    for _ in range(3):
        await block.aput([ChatMessage(role="user", content="My favourite tea is genmaicha")])
    assert (await client.list(agent_id)).total_size == 1


@pytest.mark.anyio
async def test_a_passed_client_stays_open(client: engram.AsyncClient, agent_id: str) -> None:
    block = EngramMemoryBlock(agent_id=agent_id, client=client)
    await block.aput([ChatMessage(role="user", content="shared client")])
    await block.aclose()
    assert (await client.list(agent_id)).total_size == 1


def test_sync_memory_runs_each_call_in_a_new_loop(server: Server, agent_id: str) -> None:
    """Memory.put/get run every call with asyncio_run: the block makes a client per event loop."""
    block = EngramMemoryBlock(agent_id=agent_id, url=server.http_url, api_key=server.api_key)
    memory = Memory.from_defaults(token_limit=30, chat_history_token_ratio=0.5, token_flush_size=10,
                                  tokenizer_fn=_words, memory_blocks=[block])
    memory.put(ChatMessage(role="user", content="Remember that the car is parked on level three of the garage"))
    for i in range(6):
        memory.put(ChatMessage(role="assistant" if i % 2 else "user", content=f"filler message number {i} here"))
    messages = memory.get(input="Where is the car parked?")
    assert "user: Remember that the car is parked on level three of the garage" in str(messages[0].content)
    asyncio_run(block.aclose())


def test_bad_arguments_are_refused_at_once(server: Server) -> None:
    with pytest.raises(ValidationError, match="agent_id"):
        EngramMemoryBlock(agent_id="")
    with pytest.raises(ValidationError, match="top_k"):
        EngramMemoryBlock(agent_id="a", top_k=0)
    with pytest.raises(ValidationError, match="duplicate_policy"):
        EngramMemoryBlock(agent_id="a", duplicate_policy="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="tags must be a list"):
        EngramMemoryBlock(agent_id="a", tags="ops")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="invalid port"):
        EngramMemoryBlock(agent_id="a", url="http://127.0.0.1:notaport")
    c = engram.AsyncClient(server.http_url)
    with pytest.raises(ValueError, match="either client or url"):
        EngramMemoryBlock(agent_id="a", client=c, url=server.http_url)


def test_serialises_without_secrets(server: Server) -> None:
    block = EngramMemoryBlock(agent_id="a", url=server.http_url, api_key=server.api_key)
    dumped = block.model_dump()
    assert dumped["agent_id"] == "a" and "api_key" not in dumped and "client" not in dumped
    assert server.api_key not in block.model_dump_json()


@pytest.mark.anyio
async def test_non_text_blocks_are_skipped(block: EngramMemoryBlock, client: engram.AsyncClient,
                                           agent_id: str) -> None:
    await block.aput([ChatMessage(role="user", blocks=[TextBlock(text="see the picture: "),
                                                        ImageBlock(url="https://example.com/cat.png"),
                                                        TextBlock(text="a cat")])])
    assert [m.content for m in (await client.list(agent_id)).memories] == ["see the picture: a cat"]
