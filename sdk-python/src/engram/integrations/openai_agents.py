"""Conversation history of the OpenAI Agents SDK kept in Engram: :class:`EngramSession`.

Install with the ``openai-agents`` extra (``pip install 'engram-memory-client[openai-agents]'``)::

    from agents import Agent, Runner
    from engram.integrations.openai_agents import EngramSession

    session = EngramSession("conversation-42", engram.AsyncClient(api_key="..."), agent_id="user-7")
    await Runner.run(agent, "What did I tell you about my cat?", session=session)

``EngramSession`` implements the SDK's ``Session`` protocol (``get_items``, ``add_items``,
``pop_item``, ``clear_session``); the runner calls it, and so can you.

How a session maps onto Engram:

* A session is the memories of one Engram agent (``agent_id=``, default ``openai-agents``) whose
  ``session_id`` is the session's id: one agent per user (or per application) holds all their
  conversations, and Engram's recall and its session context work across them. Session ids are
  1 to 256 characters.
* Each item is one memory, stored with the duplicate policy ``off`` (saying "yes" twice is two
  items, not one merged memory) and the tag ``openai-agents``; the session only ever reads,
  pops and clears memories with that tag, so other memories of the agent are left alone.
* The item itself is kept exactly, as JSON text, in the memory's metadata (``{"item": "<JSON>"}``);
  the memory's content is a readable rendering that Engram embeds and recalls
  (``user: What is my cat called?``, ``function call get_weather({"city": "Paris"})``). An item
  too large for the metadata (16 KiB by default) is kept as JSON in the content instead (32 KiB by
  default); a larger one is refused with ``ValueError``.
* Order is the memories' ``event_time``, set by the server when they are stored; the items of
  one ``add_items`` call are stored in one batch and keep their order.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, cast

try:
    from agents.memory import SessionSettings
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "engram.integrations.openai_agents needs the OpenAI Agents SDK: "
        "pip install 'engram-memory-client[openai-agents]'"
    ) from exc

from engram._async.client import AsyncClient
from engram._gen.engram import v1 as pb
from engram._sync.client import Client
from engram.errors import NotFound
from engram.integrations._plan import ClosingMixin, Plan, Runner, call

if TYPE_CHECKING:
    from agents.items import TResponseInputItem

__all__ = ["DEFAULT_AGENT_ID", "TAG", "EngramSession", "item_text"]

DEFAULT_AGENT_ID = "openai-agents"
"""The agent that holds the sessions unless ``agent_id=`` says otherwise."""

TAG = "openai-agents"
"""Every memory a session writes carries this tag."""

_MAX_SESSION_ID = 256


class _Limits(NamedTuple):
    max_page_size: int
    max_batch_size: int
    max_content_bytes: int
    max_metadata_bytes: int


_DEFAULT_LIMITS = _Limits(max_page_size=1000, max_batch_size=256, max_content_bytes=32_768, max_metadata_bytes=16_384)
# What the metadata costs beyond the item's JSON ({"item": ...} in the server's binary encoding).
_METADATA_OVERHEAD = 32


def _parts_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        texts = []
        for part in content:
            if isinstance(part, Mapping):
                text = part.get("text") or part.get("refusal") or part.get("transcript")
                texts.append(text if isinstance(text, str) else f"[{part.get('type', 'part')}]")
            elif isinstance(part, str):
                texts.append(part)
        return " ".join(t for t in texts if t)
    return json.dumps(content, ensure_ascii=False, default=str)


def item_text(item: Mapping[str, Any]) -> str:
    """The readable text of a session item, which Engram embeds: ``role: text`` for a message,
    ``function call name(arguments)`` for a tool call, ``function output: ...`` for its result,
    the summary of a reasoning item, else the item as JSON."""
    kind = item.get("type")
    role = item.get("role")
    text = ""
    if isinstance(role, str) and kind in (None, "message"):
        text = f"{role}: {_parts_text(item.get('content'))}"
    elif kind == "function_call":
        text = f"function call {item.get('name', '')}({item.get('arguments', '')})"
    elif isinstance(kind, str) and kind.endswith("_call_output"):
        text = f"{kind.removesuffix('_call_output').replace('_', ' ')} output: {_parts_text(item.get('output'))}"
    elif kind == "reasoning":
        text = "reasoning: " + _parts_text(item.get("summary"))
    if not text.strip() or text.endswith(": "):
        text = json.dumps(item, ensure_ascii=False, default=str)
    return text


def _clip(text: str, max_bytes: int) -> str:
    data = text.encode()
    return text if len(data) <= max_bytes else data[:max_bytes].decode(errors="ignore")


class EngramSession(ClosingMixin):
    """An OpenAI Agents SDK ``Session`` whose items are Engram memories (see the module docstring).

    Args:
        session_id: The conversation's id (1 to 256 characters).
        client: An ``engram.AsyncClient`` (or a sync ``engram.Client``, run in a worker thread).
            When none is given, the session makes one from ``url`` and ``api_key`` on first use and
            closes it in :meth:`aclose` (or at the end of ``async with``).
        url: Server address when no client is given (default ``ENGRAM_URL``, else
            ``http://127.0.0.1:3300``).
        api_key: API key when no client is given (default ``ENGRAM_API_KEY``).
        agent_id: The Engram agent that holds the session's memories.
        session_settings: The SDK's ``SessionSettings`` (or a dict of them): ``limit`` is how
            many of the latest items ``get_items()`` returns when called without a limit.
        ttl_seconds: When above 0, each item expires this many seconds after it is added.
    """

    session_id: str
    session_settings: SessionSettings | None

    def __init__(
        self,
        session_id: str,
        client: AsyncClient | Client | None = None,
        *,
        url: str | None = None,
        api_key: str | None = None,
        agent_id: str = DEFAULT_AGENT_ID,
        session_settings: SessionSettings | Mapping[str, Any] | None = None,
        ttl_seconds: int = 0,
    ) -> None:
        if not isinstance(session_id, str) or not session_id.strip():
            raise ValueError(f"session_id is a non-empty string, not {session_id!r}")
        if len(session_id) > _MAX_SESSION_ID:
            raise ValueError(f"session_id is {len(session_id)} characters; the limit is {_MAX_SESSION_ID}")
        if not isinstance(agent_id, str) or not agent_id:
            raise ValueError(f"agent_id is a non-empty string, not {agent_id!r}")
        if isinstance(ttl_seconds, bool) or not isinstance(ttl_seconds, int) or ttl_seconds < 0:
            raise ValueError(f"ttl_seconds is an integer >= 0, not {ttl_seconds!r}")
        if isinstance(session_settings, Mapping):
            session_settings = SessionSettings(**session_settings)
        elif session_settings is not None and not isinstance(session_settings, SessionSettings):
            raise TypeError(f"session_settings is a SessionSettings or a dict, not {type(session_settings).__name__}")
        self._runner = Runner("EngramSession", client, None, url, api_key)
        self.session_id = session_id
        self.agent_id = agent_id
        self.session_settings = session_settings if session_settings is not None else SessionSettings()
        self.ttl_seconds = ttl_seconds
        self._limits_cache: _Limits | None = None

    def __repr__(self) -> str:
        return f"<EngramSession {self.session_id!r} agent_id={self.agent_id!r}>"

    @property
    def _filter(self) -> dict[str, Any]:
        return {"session_id": self.session_id, "tags_all": [TAG]}

    # --- Session ----------------------------------------------------------------------------

    async def get_items(self, limit: int | None = None) -> list[TResponseInputItem]:
        """The session's items, oldest first.

        Args:
            limit: Only the latest this many (still oldest first). ``None``: the session
                settings' ``limit``, and when that is unset too, every item; 0: none; a negative
                limit: every item.
        """
        if limit is None and self.session_settings is not None:
            limit = self.session_settings.limit
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)):
            raise ValueError(f"limit is an integer or None, not {limit!r}")
        return await self._runner.arun(self._get_items(limit))

    async def add_items(self, items: list[TResponseInputItem]) -> None:
        """Append ``items`` (in their order) to the session."""
        if not isinstance(items, Sequence) or isinstance(items, (str, bytes)):
            raise TypeError(f"items is a list of session items, not {type(items).__name__}")
        encoded: list[tuple[Mapping[str, Any], str]] = []
        for i, item in enumerate(items):
            if not isinstance(item, Mapping):
                raise TypeError(f"items[{i}] is a dict (a response input item), not {type(item).__name__}")
            try:
                text = json.dumps(item, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"items[{i}] is not JSON: {exc}") from None
            encoded.append((item, text))
        if encoded:
            await self._runner.arun(self._add_items(encoded))

    async def pop_item(self) -> TResponseInputItem | None:
        """Remove the latest item and return it (``None`` when the session is empty)."""
        return await self._runner.arun(self._pop_item())

    async def clear_session(self) -> None:
        """Delete every item of the session."""
        await self._runner.arun(self._clear())

    # --- plans ------------------------------------------------------------------------------

    def _limits(self) -> Plan[_Limits]:
        if self._limits_cache is None:
            (info,) = yield [call("server_info")]
            limits = info.limits or pb.ServerLimits()
            self._limits_cache = _Limits(
                max_page_size=limits.max_page_size or _DEFAULT_LIMITS.max_page_size,
                max_batch_size=limits.max_batch_size or _DEFAULT_LIMITS.max_batch_size,
                max_content_bytes=limits.max_content_bytes or _DEFAULT_LIMITS.max_content_bytes,
                max_metadata_bytes=limits.max_metadata_bytes or _DEFAULT_LIMITS.max_metadata_bytes,
            )
        return self._limits_cache

    @staticmethod
    def _item(memory: pb.Memory) -> TResponseInputItem | None:
        meta = memory.metadata.to_dict() if memory.metadata is not None else {}
        if not isinstance(meta, dict):
            return None
        text = memory.content if meta.get("item_in_content") is True else meta.get("item")
        if not isinstance(text, str):
            return None
        try:
            item = json.loads(text)
        except ValueError:
            return None
        return cast("TResponseInputItem", item) if isinstance(item, dict) else None

    def _get_items(self, limit: int | None) -> Plan[list[TResponseInputItem]]:
        if limit == 0:
            return []
        limits = yield from self._limits()
        latest = limit is not None and limit > 0
        size = min(limit, limits.max_page_size) if limit is not None and latest else limits.max_page_size
        items: list[TResponseInputItem] = []
        token = ""
        while True:
            (page,) = yield [
                call("list", self.agent_id, filter=self._filter, page_size=size, page_token=token,
                     order_by="event_time desc" if latest else "event_time asc")
            ]
            items.extend(item for m in page.memories if (item := self._item(m)) is not None)
            token = page.next_page_token
            if not token or (limit is not None and latest and len(items) >= limit):
                break
        if latest:
            items = items[:limit]
            items.reverse()
        return items

    def _add_items(self, encoded: list[tuple[Mapping[str, Any], str]]) -> Plan[None]:
        limits = yield from self._limits()
        requests = []
        for i, (item, text) in enumerate(encoded):
            size = len(text.encode())
            if size + _METADATA_OVERHEAD <= limits.max_metadata_bytes:
                content = _clip(item_text(item), limits.max_content_bytes)
                metadata: dict[str, Any] = {"item": text}
            elif size <= limits.max_content_bytes:
                content, metadata = text, {"item_in_content": True}
            else:
                raise ValueError(
                    f"items[{i}] is {size} bytes of JSON: the server keeps at most {limits.max_content_bytes}"
                )
            requests.append({
                "agent_id": self.agent_id, "content": content, "metadata": metadata, "tags": [TAG],
                "session_id": self.session_id, "duplicate_policy": "off", "ttl_seconds": self.ttl_seconds,
            })
        # One batch per call keeps the items in order (the ids of a batch follow the request);
        # batches of one call follow each other.
        for start in range(0, len(requests), limits.max_batch_size):
            yield [call("batch_store", requests[start : start + limits.max_batch_size])]

    def _pop_item(self) -> Plan[TResponseInputItem | None]:
        while True:
            (page,) = yield [
                call("list", self.agent_id, filter=self._filter, page_size=1, order_by="event_time desc")
            ]
            if not page.memories:
                return None
            memory = page.memories[0]
            (deleted,) = yield [call("delete", memory.id, agent_id=self.agent_id, tolerate=(NotFound,))]
            item = self._item(memory)
            if deleted is not None and item is not None:
                return item
            # Popped by someone else meanwhile, or not an item: look again.

    def _clear(self) -> Plan[None]:
        yield [call("forget", self.agent_id, filter=self._filter)]
