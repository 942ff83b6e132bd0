"""LlamaIndex long-term memory kept in Engram: :class:`EngramMemoryBlock` is a memory block of
``llama_index.core.memory.Memory``.

Install with ``pip install 'engram-memory-client[llamaindex]'`` (``llama-index-core`` 0.14)::

    from llama_index.core.memory import Memory
    from engram.integrations.llamaindex import EngramMemoryBlock

    memory = Memory.from_defaults(
        session_id="chat-1",
        token_limit=4000,
        memory_blocks=[EngramMemoryBlock(agent_id="support-bot", url="http://127.0.0.1:3300", api_key="...")],
    )

Messages that leave the short-term queue (the ``Memory`` flushes the oldest ones once the chat
history passes its token budget) are stored in Engram, one memory per message with its role.
Each time the ``Memory`` is read, the block recalls what is relevant to the latest messages and
the ``Memory`` puts it into the system message. The server embeds and ranks: no embedding model
runs in the LlamaIndex process.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, PrivateAttr, field_validator

from engram import _convert
from engram._async.client import AsyncClient
from engram.integrations._connection import Connection

try:
    from llama_index.core.base.llms.types import ChatMessage, MessageRole, TextBlock
    from llama_index.core.memory import BaseMemoryBlock
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "engram.integrations.llamaindex needs llama-index-core: pip install 'engram-memory-client[llamaindex]'"
    ) from exc

__all__ = ["EngramMemoryBlock"]

ROLE_KEY = "role"
"""The metadata key that keeps the role of a stored message."""

_INSTRUCTION_ROLES = {MessageRole.SYSTEM, MessageRole.DEVELOPER}
# Store at most this many messages per BatchStoreMemories call.
_BATCH = 100


class EngramMemoryBlock(BaseMemoryBlock[str]):
    """A LlamaIndex memory block whose long-term memory lives in an Engram server.

    * ``aput`` (``_aput``) stores each message that has text as one memory of ``agent_id``:
      the text as content, the role in the metadata (``"role"``), the LlamaIndex session id as
      the memory's ``session_id``.
    * ``aget`` (``_aget``) recalls the ``top_k`` memories most relevant to the text of the last
      ``retrieval_context_window`` messages (system and developer messages left out) and returns
      them one per line, ``role: text``, best first; ``""`` when nothing is found.

    Pass either ``client`` (an :class:`engram.AsyncClient`, which stays yours) or ``url`` /
    ``api_key`` / ``transport`` (default ``ENGRAM_URL`` / ``ENGRAM_API_KEY``), from which the
    block makes its own client in the running event loop. Bad arguments raise ``ValueError``
    (a ``pydantic.ValidationError``) at once.
    """

    name: str = Field(default="engram_memory", description="The name of the memory block.")
    agent_id: str = Field(min_length=1, description="The Engram agent that owns the memories.")
    url: str | None = Field(default=None, description="Server address; default ENGRAM_URL, else http://127.0.0.1:3300.")
    api_key: str | None = Field(
        default=None, exclude=True, repr=False, description="API key; default ENGRAM_API_KEY. Never serialised."
    )
    transport: Literal["rest", "grpc"] | None = Field(default=None, description="Override the URL scheme's transport.")
    client: AsyncClient | None = Field(default=None, exclude=True, description="An engram.AsyncClient to use.")
    top_k: int = Field(default=5, ge=1, description="Memories recalled per read.")
    min_score: float = Field(default=0.0, ge=0.0, description="Drop results scoring below this.")
    retrieval_context_window: int = Field(
        default=5, ge=1, description="How many of the latest messages make up the recall query."
    )
    session_scoped: bool = Field(
        default=False,
        description="Recall only the memories of the Memory's session (default: every session of the agent).",
    )
    tags: list[str] = Field(default_factory=list, description="Tags added to every memory and required on recall.")
    memory_type: Literal["episodic", "semantic", "procedural", "working"] | None = Field(
        default=None, description="Kind of the stored memories (server default: episodic)."
    )
    duplicate_policy: Literal["off", "exact", "near"] | None = Field(
        default=None, description="What the server does with a duplicate (server default: exact)."
    )
    duplicate_threshold: float | None = Field(
        default=None, ge=0.0, le=1.0, description="Cosine similarity from which 'near' merges."
    )

    _connection: Connection = PrivateAttr()

    @field_validator("tags", mode="before")
    @classmethod
    def _tags_not_a_string(cls, value: Any) -> Any:
        if isinstance(value, str):
            raise ValueError("tags must be a list of strings, not a string")
        return value

    def model_post_init(self, context: Any, /) -> None:
        super().model_post_init(context)
        self._connection = Connection(self.client, self.url, self.api_key, self.transport)

    async def _aget(
        self, messages: list[ChatMessage] | None = None, session_id: str | None = None, **block_kwargs: Any
    ) -> str:
        """The memories relevant to the latest messages, one per line (``role: text``)."""
        query = _query_text(messages or [], self.retrieval_context_window)
        if not query:
            return ""
        client = await self._connection.client()
        found = await client.recall(
            self.agent_id, query, top_k=self.top_k, min_score=self.min_score, filter=self._filter(session_id)
        )
        lines = []
        for hit in found.memories:
            role = _convert.plain(hit.metadata).get(ROLE_KEY)
            lines.append(f"{role}: {hit.content}" if isinstance(role, str) and role else hit.content)
        return "\n".join(lines)

    async def _aput(self, messages: list[ChatMessage]) -> None:
        """Store each message that has text as one memory (its role in the metadata)."""
        items = []
        for message in messages:
            text = _message_text(message)
            if not text.strip():
                continue
            # Memory.aput puts the session id into each message's additional_kwargs.
            session = message.additional_kwargs.get("session_id")
            items.append({
                "agent_id": self.agent_id,
                "content": text,
                "metadata": {ROLE_KEY: _role(message)},
                "session_id": session if isinstance(session, str) else "",
                "tags": self.tags,
                "memory_type": self.memory_type,
                "duplicate_policy": self.duplicate_policy,
                "duplicate_threshold": self.duplicate_threshold,
            })
        if not items:
            return
        client = await self._connection.client()
        for start in range(0, len(items), _BATCH):
            await client.batch_store(items[start : start + _BATCH])

    async def aclose(self) -> None:
        """Close the client made by this block (a client you passed in stays open)."""
        await self._connection.aclose()

    def _filter(self, session_id: str | None) -> dict[str, Any] | None:
        scope: dict[str, Any] = {}
        if self.session_scoped and session_id:
            scope["session_id"] = session_id
        if self.tags:
            scope["tags_all"] = self.tags
        return scope or None


def _role(message: ChatMessage) -> str:
    role = message.role
    return role.value if isinstance(role, MessageRole) else str(role)


def _message_text(message: ChatMessage) -> str:
    """The text blocks of a message, joined."""
    return "".join(block.text for block in message.blocks if isinstance(block, TextBlock))


def _query_text(messages: list[ChatMessage], window: int) -> str:
    """The text of the last ``window`` messages, without system and developer instructions."""
    texts = [
        text
        for message in messages[-window:]
        if message.role not in _INSTRUCTION_ROLES and (text := _message_text(message).strip())
    ]
    return "\n".join(texts)
