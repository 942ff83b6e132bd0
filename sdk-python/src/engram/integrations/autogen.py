"""AutoGen memory kept in Engram: :class:`EngramMemory` implements ``autogen_core.memory.Memory``.

Install with ``pip install 'engram-memory-client[autogen]'`` (``autogen-core`` 0.7)::

    from autogen_core.memory import MemoryContent, MemoryMimeType
    from engram.integrations.autogen import EngramMemory

    memory = EngramMemory("travel-agent", url="http://127.0.0.1:3300", api_key="...")
    await memory.add(MemoryContent(content="The user prefers window seats", mime_type=MemoryMimeType.TEXT))
    agent = AssistantAgent("assistant", model_client=..., memory=[memory])

Every memory of one ``EngramMemory`` belongs to one Engram agent (``agent_id``); ``session_id``
and ``tags`` narrow it further (what is added carries them, what is queried or cleared must match
them). The server embeds and ranks: no embedding model runs in the AutoGen process.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Sequence
from typing import Any, Literal, Self, TypeVar

from pydantic import BaseModel, Field

from engram import _convert
from engram._async.client import AsyncClient
from engram._config import TransportName
from engram.integrations._connection import Connection

try:
    from autogen_core import CancellationToken, Component
    from autogen_core.memory import (
        Memory,
        MemoryContent,
        MemoryMimeType,
        MemoryQueryResult,
        UpdateContextResult,
    )
    from autogen_core.model_context import ChatCompletionContext
    from autogen_core.models import AssistantMessage, LLMMessage, SystemMessage, UserMessage
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "engram.integrations.autogen needs autogen-core: pip install 'engram-memory-client[autogen]'"
    ) from exc

__all__ = ["EngramMemory", "EngramMemoryConfig"]

T = TypeVar("T")

MIME_TYPE_KEY = "mime_type"
"""The metadata key that keeps a memory's MIME type (next to the caller's own metadata)."""

_TEXT_TYPES = {MemoryMimeType.TEXT.value, MemoryMimeType.MARKDOWN.value}
_JSON_TYPE = MemoryMimeType.JSON.value


class EngramMemoryConfig(BaseModel):
    """The component configuration of :class:`EngramMemory` (``dump_component`` /
    ``load_component``). It never holds the API key as dumped: a loaded component reads
    ``ENGRAM_API_KEY`` unless the configuration you load sets ``api_key``."""

    agent_id: str = Field(min_length=1, description="The Engram agent that owns the memories.")
    url: str | None = Field(default=None, description="Server address; default ENGRAM_URL, else http://127.0.0.1:3300.")
    api_key: str | None = Field(
        default=None, exclude=True, repr=False, description="API key; default ENGRAM_API_KEY. Never dumped."
    )
    transport: Literal["rest", "grpc"] | None = Field(default=None, description="Override the URL scheme's transport.")
    name: str | None = Field(default=None, description="Name of this memory instance.")
    top_k: int = Field(default=5, ge=1, description="Memories returned by a query.")
    min_score: float = Field(default=0.0, ge=0.0, description="Drop results scoring below this.")
    session_id: str = Field(default="", description="Store into and query only this session.")
    tags: list[str] = Field(default_factory=list, description="Tags added to every memory and required on query.")
    memory_type: Literal["episodic", "semantic", "procedural", "working"] | None = Field(
        default=None, description="Kind of the stored memories (server default: episodic)."
    )
    duplicate_policy: Literal["off", "exact", "near"] | None = Field(
        default=None, description="What the server does with a duplicate (server default: exact)."
    )
    duplicate_threshold: float | None = Field(
        default=None, ge=0.0, le=1.0, description="Cosine similarity from which 'near' merges."
    )
    query_messages: int = Field(
        default=1, ge=1, description="update_context queries with the text of this many latest messages."
    )


class EngramMemory(Memory, Component[EngramMemoryConfig]):
    """An AutoGen ``Memory`` whose contents live in an Engram server.

    * :meth:`add` stores a ``MemoryContent`` (``text/plain``, ``text/markdown`` or
      ``application/json``) as one memory, keeping its MIME type and metadata.
    * :meth:`query` recalls the most relevant memories (hybrid vector and keyword search, ranked
      by the server); a blank query lists the latest ones.
    * :meth:`update_context` queries with the latest message(s) of the model context and adds
      the results to it as one ``SystemMessage``, as AutoGen's own memories do.
    * :meth:`clear` deletes the memories in scope; :meth:`close` closes the client made here.

    Args:
        agent_id: The Engram agent that owns the memories.
        client: An :class:`engram.AsyncClient` to use (left open by :meth:`close`); or else
        url: Server address (default ``ENGRAM_URL``, else ``http://127.0.0.1:3300``),
        api_key: API key (default ``ENGRAM_API_KEY``),
        transport: ``"rest"`` or ``"grpc"`` to override the URL scheme's choice.
        name: Name of this memory instance (default ``engram:<agent_id>``).
        top_k: How many memories :meth:`query` returns.
        min_score: Drop results scoring below this.
        session_id: Store into, query and clear only this session of the agent.
        tags: Added to every stored memory; a query or clear matches only memories with all of them.
        memory_type: ``episodic`` (server default), ``semantic``, ``procedural`` or ``working``.
        duplicate_policy: ``off``, ``exact`` (server default: the same text is merged into the
            memory that has it) or ``near`` (also merge near-identical text).
        duplicate_threshold: Cosine similarity from which ``near`` merges (server default 0.95).
        query_messages: :meth:`update_context` queries with the text of this many latest user
            and assistant messages.

    Bad arguments raise ``ValueError`` (a ``pydantic.ValidationError``) or ``TypeError`` at once.
    """

    component_type = "memory"
    component_provider_override = "engram.integrations.autogen.EngramMemory"
    component_config_schema = EngramMemoryConfig

    def __init__(
        self,
        agent_id: str,
        *,
        client: AsyncClient | None = None,
        url: str | None = None,
        api_key: str | None = None,
        transport: TransportName | None = None,
        name: str | None = None,
        top_k: int = 5,
        min_score: float = 0.0,
        session_id: str = "",
        tags: Sequence[str] = (),
        memory_type: Literal["episodic", "semantic", "procedural", "working"] | None = None,
        duplicate_policy: Literal["off", "exact", "near"] | None = None,
        duplicate_threshold: float | None = None,
        query_messages: int = 1,
    ) -> None:
        if isinstance(tags, str):
            raise TypeError("tags must be a sequence of strings, not a string")
        self._config = EngramMemoryConfig(
            agent_id=agent_id, url=url, transport=transport, name=name, top_k=top_k,
            min_score=min_score, session_id=session_id, tags=list(tags), memory_type=memory_type,
            duplicate_policy=duplicate_policy, duplicate_threshold=duplicate_threshold,
            query_messages=query_messages,
        )
        self._connection = Connection(client, url, api_key, transport)

    # --- properties -------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The name of this memory instance."""
        return self._config.name or f"engram:{self._config.agent_id}"

    @property
    def agent_id(self) -> str:
        """The Engram agent that owns the memories."""
        return self._config.agent_id

    # --- Memory -----------------------------------------------------------------------------

    async def add(self, content: MemoryContent, cancellation_token: CancellationToken | None = None) -> None:
        """Store ``content`` as one memory of the agent.

        Text and Markdown are stored as they are; JSON (a dict, or a string holding JSON) as
        compact JSON text, given back as a dict by :meth:`query`. The MIME type is kept in the
        memory's metadata under ``"mime_type"``, next to ``content.metadata`` (which must be
        JSON). Images and binary content raise ``ValueError``: Engram embeds text.
        """
        text, mime_type = _content_text(content)
        metadata = dict(content.metadata or {})
        try:
            json.dumps(metadata)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"MemoryContent.metadata must be JSON-serialisable: {exc}") from None
        metadata[MIME_TYPE_KEY] = mime_type
        c = self._config
        client = await self._connection.client()
        await _cancellable(
            client.store(
                c.agent_id, text, metadata=metadata, tags=c.tags, session_id=c.session_id,
                memory_type=c.memory_type, duplicate_policy=c.duplicate_policy,
                duplicate_threshold=c.duplicate_threshold,
            ),
            cancellation_token,
        )

    async def query(
        self,
        query: str | MemoryContent = "",
        cancellation_token: CancellationToken | None = None,
        **kwargs: Any,
    ) -> MemoryQueryResult:
        """The memories most relevant to ``query``, best first.

        Each result has the stored content and MIME type, and the stored metadata plus
        ``"score"`` (the server's relevance score) and ``"memory_id"``. A blank query returns
        the latest memories (without ``"score"``).

        Args:
            query: Text, or a ``MemoryContent`` holding text, Markdown or JSON.
            cancellation_token: Cancels the request.
            top_k: This call's number of results (default: the instance's).
            min_score: This call's minimum score (default: the instance's).
        """
        top_k = kwargs.pop("top_k", self._config.top_k)
        min_score = kwargs.pop("min_score", self._config.min_score)
        if kwargs:
            raise TypeError(f"EngramMemory.query() got unexpected keyword arguments: {', '.join(sorted(kwargs))}")
        if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1:
            raise ValueError(f"top_k must be a positive integer, not {top_k!r}")
        if not isinstance(min_score, int | float) or isinstance(min_score, bool):
            raise TypeError(f"min_score must be a number, not {type(min_score).__name__}")
        text = query if isinstance(query, str) else _content_text(query)[0]
        c = self._config
        client = await self._connection.client()
        if not text.strip():
            page = await _cancellable(
                client.list(c.agent_id, page_size=top_k, filter=self._filter()), cancellation_token
            )
            return MemoryQueryResult(
                results=[_memory_content(m.content, _convert.plain(m.metadata), m.id, None) for m in page.memories]
            )
        found = await _cancellable(
            client.recall(c.agent_id, text, top_k=top_k, filter=self._filter(), min_score=float(min_score)),
            cancellation_token,
        )
        return MemoryQueryResult(
            results=[
                _memory_content(hit.content, _convert.plain(hit.metadata), hit.id, hit.score)
                for hit in found.memories
            ]
        )

    async def update_context(self, model_context: ChatCompletionContext) -> UpdateContextResult:
        """Query with the latest message(s) and add what is found to ``model_context``.

        The query is the text of the last ``query_messages`` user and assistant messages
        (system messages, such as another memory's, and tool calls are not part of it). When
        something is found it is added as one ``SystemMessage`` listing the memories, best
        first; the result holds them too.
        """
        messages = await model_context.get_messages()
        query = _query_text(messages, self._config.query_messages)
        if not query:
            return UpdateContextResult(memories=MemoryQueryResult(results=[]))
        found = await self.query(query)
        if found.results:
            lines = [f"{i}. {_display(m)}" for i, m in enumerate(found.results, 1)]
            text = "\nRelevant memory content (most relevant first):\n" + "\n".join(lines) + "\n"
            await model_context.add_message(SystemMessage(content=text))
        return UpdateContextResult(memories=found)

    async def clear(self) -> None:
        """Delete every memory in this instance's scope.

        With a ``session_id`` or ``tags``, the memories of the agent that match them (the
        ForgetMemories RPC); without, the whole agent (DeleteAgent: every memory, link and
        version of ``agent_id``). Needs a key that may write to the agent.
        """
        c = self._config
        client = await self._connection.client()
        scope = self._filter()
        if scope is None:
            await client.delete_agent(c.agent_id)
        else:
            await client.forget(c.agent_id, filter=scope)

    async def close(self) -> None:
        """Close the client made by this instance (a client you passed in stays open)."""
        await self._connection.aclose()

    # --- component configuration -----------------------------------------------------------

    def _to_config(self) -> EngramMemoryConfig:
        # The API key stays out of dumped configurations (they get saved and shared).
        return self._config.model_copy(update={"url": self._connection.url, "api_key": None})

    @classmethod
    def _from_config(cls, config: EngramMemoryConfig) -> Self:
        c = config
        return cls(
            c.agent_id, url=c.url, api_key=c.api_key,
            transport=c.transport, name=c.name, top_k=c.top_k, min_score=c.min_score,
            session_id=c.session_id, tags=c.tags, memory_type=c.memory_type,
            duplicate_policy=c.duplicate_policy, duplicate_threshold=c.duplicate_threshold,
            query_messages=c.query_messages,
        )

    # --- helpers ----------------------------------------------------------------------------

    def _filter(self) -> dict[str, Any] | None:
        scope: dict[str, Any] = {}
        if self._config.session_id:
            scope["session_id"] = self._config.session_id
        if self._config.tags:
            scope["tags_all"] = self._config.tags
        return scope or None


async def _cancellable(call: Awaitable[T], token: CancellationToken | None) -> T:
    """Await ``call``; cancelling ``token`` cancels it (``asyncio.CancelledError``)."""
    if token is None:
        return await call
    task = asyncio.ensure_future(call)
    token.link_future(task)
    return await task


def _mime(value: MemoryMimeType | str) -> str:
    return value.value if isinstance(value, MemoryMimeType) else str(value)


def _content_text(content: MemoryContent) -> tuple[str, str]:
    """The text to store for ``content``, and its MIME type as a string."""
    if not isinstance(content, MemoryContent):
        raise TypeError(f"expected an autogen_core.memory.MemoryContent, not {type(content).__name__}")
    mime_type = _mime(content.mime_type)
    value = content.content
    if mime_type in _TEXT_TYPES:
        if not isinstance(value, str):
            raise TypeError(f"{mime_type} content must be a str, not {type(value).__name__}")
        return value, mime_type
    if mime_type == _JSON_TYPE:
        if isinstance(value, str):
            try:
                json.loads(value)
            except ValueError as exc:
                raise ValueError(f"application/json content is not valid JSON: {exc}") from None
            return value, mime_type
        if isinstance(value, dict):
            try:
                return json.dumps(value, ensure_ascii=False, separators=(",", ":")), mime_type
            except (TypeError, ValueError) as exc:
                raise TypeError(f"application/json content must be JSON-serialisable: {exc}") from None
        raise TypeError(f"application/json content must be a dict or a str, not {type(value).__name__}")
    raise ValueError(
        f"EngramMemory stores text/plain, text/markdown and application/json content, not {mime_type}: "
        "Engram embeds text"
    )


def _memory_content(text: str, metadata: dict[str, Any], memory_id: str, score: float | None) -> MemoryContent:
    """A query result: the stored content with its MIME type, metadata, id and score."""
    mime_type = str(metadata.pop(MIME_TYPE_KEY, MemoryMimeType.TEXT.value))
    value: str | dict[str, Any] = text
    if mime_type == _JSON_TYPE:
        try:
            decoded = json.loads(text)
        except ValueError:
            decoded = None
        if isinstance(decoded, dict):
            value = decoded
    try:
        kind: MemoryMimeType | str = MemoryMimeType(mime_type)
    except ValueError:
        kind = mime_type
    metadata["memory_id"] = memory_id
    if score is not None:
        metadata["score"] = score
    return MemoryContent(content=value, mime_type=kind, metadata=metadata)


def _display(memory: MemoryContent) -> str:
    value = memory.content
    return json.dumps(value, ensure_ascii=False) if isinstance(value, dict) else str(value)


def _message_text(message: LLMMessage) -> str:
    """The text of a user or assistant message ("" for anything else)."""
    if isinstance(message, UserMessage):
        if isinstance(message.content, str):
            return message.content
        return "\n".join(part for part in message.content if isinstance(part, str))
    if isinstance(message, AssistantMessage) and isinstance(message.content, str):
        return message.content
    return ""


def _query_text(messages: Sequence[LLMMessage], count: int) -> str:
    """The text of the last ``count`` user/assistant messages that have text, oldest first."""
    texts: list[str] = []
    for message in reversed(messages):
        text = _message_text(message).strip()
        if text:
            texts.append(text)
            if len(texts) == count:
                break
    return "\n".join(reversed(texts))
