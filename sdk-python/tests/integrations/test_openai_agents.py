"""EngramSession (engram.integrations.openai_agents) against a real server and the real Agents SDK.

The SDK ships no test suite for sessions; these tests drive the ``Session`` protocol directly
(get_items, add_items, pop_item, clear_session, session settings) over REST and gRPC, and run
the SDK's own ``Runner`` with the session and a scripted model (a ``Model`` that answers from
its input: no model is called).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from agents import Agent, ModelResponse, Runner, Usage, set_tracing_disabled
from agents.items import TResponseInputItem
from agents.memory import Session, SessionSettings
from agents.models.interface import Model
from openai.types.responses import ResponseOutputMessage, ResponseOutputText

import engram
from engram.integrations.openai_agents import TAG, EngramSession, item_text

from ..conftest import Server

pytestmark = [pytest.mark.server, pytest.mark.anyio]


@pytest.fixture
def agent() -> str:
    return "oa-" + uuid.uuid4().hex[:12]


@pytest.fixture
async def aclient(server: Server, transport: str) -> AsyncIterator[engram.AsyncClient]:
    async with engram.AsyncClient(server.url(transport), api_key=server.api_key) as client:
        yield client


@pytest.fixture
def admin(server: Server) -> Iterator[engram.Client]:
    with engram.Client(server.http_url, api_key=server.api_key) as client:
        yield client


def _user(text: str) -> TResponseInputItem:
    return {"role": "user", "content": text}


def _assistant(text: str) -> TResponseInputItem:
    return {
        "type": "message", "role": "assistant", "id": "msg_" + uuid.uuid4().hex, "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


CALL: TResponseInputItem = {
    "type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": '{"city": "Paris"}',
}
OUTPUT: TResponseInputItem = {"type": "function_call_output", "call_id": "call_1", "output": "sunny, 21 °C"}


async def test_implements_the_session_protocol(aclient: engram.AsyncClient, agent: str) -> None:
    session: Session = EngramSession("s1", aclient, agent_id=agent)
    assert isinstance(session, Session)
    assert session.session_id == "s1"
    assert session.session_settings == SessionSettings()


async def test_add_get_pop_clear(aclient: engram.AsyncClient, agent: str) -> None:
    session = EngramSession("conversation-1", aclient, agent_id=agent)
    assert await session.get_items() == []
    assert await session.pop_item() is None
    items = [_user("hi"), _assistant("hello!"), _user("hi"), CALL, OUTPUT, _assistant("It is sunny in Paris.")]
    await session.add_items(items[:2])
    await session.add_items([])
    await session.add_items(items[2:])
    assert await session.get_items() == items  # in order, exact, repeated items kept
    assert await session.get_items(limit=2) == items[-2:]
    assert await session.get_items(limit=100) == items
    assert await session.get_items(limit=0) == []
    assert await session.get_items(limit=-1) == items
    assert await session.pop_item() == items[-1]
    assert await session.pop_item() == items[-2]
    assert await session.get_items() == items[:-2]
    await session.add_items([_user("more")])
    assert (await session.get_items(limit=1)) == [_user("more")]
    await session.clear_session()
    assert await session.get_items() == []
    assert await session.pop_item() is None
    await session.clear_session()


async def test_sessions_are_separate(aclient: engram.AsyncClient, agent: str, admin: engram.Client) -> None:
    one = EngramSession("one", aclient, agent_id=agent)
    two = EngramSession("two", aclient, agent_id=agent)
    other_agent = EngramSession("one", aclient, agent_id=agent + "-b")
    await one.add_items([_user("first session")])
    await two.add_items([_user("second session")])
    await other_agent.add_items([_user("another agent")])
    # A memory of the same session not written by EngramSession is neither read nor cleared.
    admin.store(agent, "a fact stored by someone else", session_id="one")
    assert await one.get_items() == [_user("first session")]
    assert await two.get_items() == [_user("second session")]
    assert await other_agent.get_items() == [_user("another agent")]
    await one.clear_session()
    assert await one.get_items() == []
    assert await two.get_items() == [_user("second session")]
    assert await other_agent.get_items() == [_user("another agent")]
    assert [m.content for m in admin.list(agent, filter={"session_id": "one"}).memories] == [
        "a fact stored by someone else"
    ]
    admin.delete_agent(agent + "-b")


async def test_memories_are_readable_and_recallable(aclient: engram.AsyncClient, agent: str,
                                                    admin: engram.Client) -> None:
    session = EngramSession("weather", aclient, agent_id=agent)
    await session.add_items([_user("What's the weather in Paris?"), CALL, OUTPUT, _assistant("Sunny, 21 °C.")])
    memories = admin.list(agent, order_by="event_time asc").memories
    assert [m.content for m in memories] == [
        "user: What's the weather in Paris?",
        'function call get_weather({"city": "Paris"})',
        "function output: sunny, 21 °C",
        "assistant: Sunny, 21 °C.",
    ]
    assert all(m.session_id == "weather" and m.tags == [TAG] for m in memories)
    hits = admin.recall(agent, "Paris weather question", top_k=1).memories
    assert hits[0].content == "user: What's the weather in Paris?"
    # Exactly the same item twice is two memories (the duplicate policy is off).
    await session.add_items([_user("ok"), _user("ok")])
    assert (await session.get_items())[-2:] == [_user("ok"), _user("ok")]


def test_item_text() -> None:
    parts = [{"type": "input_text", "text": "look"}, {"type": "input_image", "image_url": "x"}]
    assert item_text({"role": "user", "content": parts}) == "user: look [input_image]"
    assert item_text({"type": "reasoning", "id": "r", "summary": [{"type": "summary_text", "text": "think"}]}) \
        == "reasoning: think"
    assert item_text({"type": "computer_call_output", "call_id": "c", "output": "done"}) == "computer output: done"
    assert item_text({"role": "user", "content": ""}) == '{"role": "user", "content": ""}'
    assert item_text({"type": "web_search_call", "id": "w"}) == '{"type": "web_search_call", "id": "w"}'


async def test_many_items_keep_their_order(aclient: engram.AsyncClient, agent: str) -> None:
    session = EngramSession("long", aclient, agent_id=agent)
    items = [_user(f"message {i}") for i in range(300)]  # more than one batch (256)
    await session.add_items(items)
    assert await session.get_items() == items
    assert await session.get_items(limit=257) == items[-257:]


async def test_large_items(aclient: engram.AsyncClient, agent: str, admin: engram.Client) -> None:
    session = EngramSession("big", aclient, agent_id=agent)
    big = {"type": "function_call_output", "call_id": "c", "output": "x" * 20_000}  # over the metadata limit
    await session.add_items([_user("before"), big, _user("after")])  # type: ignore[list-item]
    assert await session.get_items() == [_user("before"), big, _user("after")]
    assert await session.pop_item() == _user("after")
    assert await session.pop_item() == big
    with pytest.raises(ValueError, match="bytes of JSON"):
        await session.add_items([{"type": "function_call_output", "call_id": "c", "output": "x" * 40_000}])
    assert len(admin.list(agent).memories) == 1  # nothing of the refused call was stored


async def test_session_settings_limit(aclient: engram.AsyncClient, agent: str) -> None:
    session = EngramSession("limited", aclient, agent_id=agent, session_settings={"limit": 2})
    await session.add_items([_user(str(i)) for i in range(5)])
    assert await session.get_items() == [_user("3"), _user("4")]
    assert len(await session.get_items(limit=4)) == 4
    unlimited = EngramSession("limited", aclient, agent_id=agent, session_settings=SessionSettings())
    assert len(await unlimited.get_items()) == 5


async def test_ttl(aclient: engram.AsyncClient, agent: str, admin: engram.Client) -> None:
    session = EngramSession("ephemeral", aclient, agent_id=agent, ttl_seconds=600)
    await session.add_items([_user("soon gone")])
    (memory,) = admin.list(agent).memories
    assert memory.expires_at is not None


async def test_sync_client_and_url(server: Server, agent: str) -> None:
    with engram.Client(server.http_url, api_key=server.api_key) as client:
        session = EngramSession("sync", client, agent_id=agent)
        await session.add_items([_user("from a worker thread")])
        assert await session.get_items() == [_user("from a worker thread")]
    async with EngramSession("sync", url=server.grpc_url, api_key=server.api_key, agent_id=agent) as own:
        assert await own.get_items() == [_user("from a worker thread")]


async def test_bad_input(aclient: engram.AsyncClient, agent: str) -> None:
    for bad in ("", "  ", "x" * 257, 5):
        with pytest.raises(ValueError, match="session_id"):
            EngramSession(bad, aclient)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ttl_seconds"):
        EngramSession("s", aclient, ttl_seconds=-1)
    with pytest.raises(TypeError, match="session_settings"):
        EngramSession("s", aclient, session_settings=3)  # type: ignore[arg-type]
    session = EngramSession("s", aclient, agent_id=agent)
    with pytest.raises(TypeError, match="list"):
        await session.add_items("hello")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"items\[1\]"):
        await session.add_items([_user("ok"), "not an item"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="not JSON"):
        await session.add_items([{"role": "user", "content": float("inf")}])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="limit"):
        await session.get_items(limit="3")  # type: ignore[arg-type]
    with pytest.raises(engram.InvalidArgument, match="agent_id"):
        await EngramSession("s", aclient, agent_id="bad agent id").add_items([_user("x")])
    assert await session.get_items() == []


# --- the SDK's Runner with the session ------------------------------------------------------


class EchoModel(Model):
    """A scripted model: answers how many items it was given and what the user said last."""

    def __init__(self) -> None:
        self.inputs: list[list[Any]] = []

    async def get_response(self, system_instructions: Any, input: Any, model_settings: Any, tools: Any,
                           output_schema: Any, handoffs: Any, tracing: Any, **kwargs: Any) -> ModelResponse:
        items = [{"role": "user", "content": input}] if isinstance(input, str) else list(input)
        self.inputs.append(items)
        said = [i.get("content") for i in items if i.get("role") == "user"]
        text = f"{len(items)} items; you said {said[-1]!r}"
        message = ResponseOutputMessage(
            id="msg_" + uuid.uuid4().hex, type="message", role="assistant", status="completed",
            content=[ResponseOutputText(type="output_text", text=text, annotations=[])],
        )
        return ModelResponse(output=[message], usage=Usage(), response_id=None)

    def stream_response(self, *args: Any, **kwargs: Any) -> Any:  # pragma: no cover - not streamed here
        raise NotImplementedError


async def test_runner_keeps_history_in_engram(aclient: engram.AsyncClient, agent: str) -> None:
    set_tracing_disabled(True)
    model = EchoModel()
    assistant = Agent(name="echo", instructions="Echo.", model=model)
    session = EngramSession("run-1", aclient, agent_id=agent)
    first = await Runner.run(assistant, "My cat is called Miso.", session=session)
    assert first.final_output == "1 items; you said 'My cat is called Miso.'"
    second = await Runner.run(assistant, "What is my cat called?", session=session)
    assert second.final_output == "3 items; you said 'What is my cat called?'"
    # The model saw the history the session gave back: the first turn, then the new question.
    assert [i.get("content") for i in model.inputs[1] if i.get("role") == "user"] == [
        "My cat is called Miso.", "What is my cat called?",
    ]
    history = await session.get_items()
    assert len(history) == 4
    assert history[0] == {"role": "user", "content": "My cat is called Miso."}
    # A new session object on the same id (another process, later) continues the conversation.
    again = EngramSession("run-1", aclient, agent_id=agent)
    third = await Runner.run(assistant, "And my name?", session=again)
    assert third.final_output == "5 items; you said 'And my name?'"
