"""LangGraph's long-term memory store on Engram: :class:`EngramStore`, a ``BaseStore``.

Install with the ``langgraph`` extra (``pip install 'engram-memory-client[langgraph]'``)::

    from engram.integrations.langgraph import EngramStore

    store = EngramStore(engram.Client("http://127.0.0.1:3300", api_key="..."))
    store.put(("users", "alice"), "prefs", {"theme": "dark"})
    store.search(("users",), query="which theme?")
    graph = builder.compile(store=store)

How LangGraph's model maps onto Engram's:

* A **namespace** is an Engram agent. Its agent id is ``agent_prefix`` (default ``langgraph:``)
  followed by the labels joined by ``.`` (LangGraph forbids ``.`` in labels), each label written
  with ``A-Z a-z 0-9 _ : -`` as they are and every other character as ``@`` and two upper-case
  hex digits per UTF-8 byte: ``("users", "Zoë Smith")`` is the agent
  ``langgraph:users.Zo@C3@AB@20Smith``. The mapping is one-to-one and reversible
  (:meth:`EngramStore.agent_id_for`, :meth:`EngramStore.namespace_for`), which is how
  ``list_namespaces`` reads the namespaces back from ``ListAgents``. Agent ids are at most 128
  characters, so the labels of one namespace have about 115 to share (a longer one raises
  ``InvalidNamespaceError``). An API key restricted with ``agent_id_prefix="langgraph:"`` gives
  access to the store's namespaces and nothing else.
* A **key** is the memory's upsert key (``Memory.key``): a put replaces the memory with that
  key (same memory id, a new version, the old one in its history), stored with the duplicate
  policy ``off`` (a put is an explicit write, never merged into a look-alike).
* The **value** is kept exactly, as JSON text, in the memory's metadata (``{"namespace": [...],
  "value": "<JSON>"}``; the metadata limit of the server, 16 KiB by default, bounds it). The
  memory's **content**, the text Engram embeds and recalls by, is what ``index`` selects, per
  LangGraph's rules: the store's ``index={"fields": [...]}`` (default ``["$"]``, the whole value
  as JSON) or the put's own ``index=[...]``; the texts of several fields are joined by line
  breaks into one content (Engram keeps one embedding per memory). ``index=False`` stores the
  item unindexed: ``get`` and filtered ``search`` find it, a ``query`` ranks only indexed items
  and lists unindexed ones after them (score ``None``) when there is room, like LangGraph's
  ``InMemoryStore``. Store items carry the tag ``langgraph`` (and ``langgraph:indexed``), and
  the store ignores other memories of the same agents.
* ``search(query=...)`` is Engram's recall (hybrid: vector and keyword) in each namespace under
  the prefix, merged by score (recall scores rank items within a namespace; equal scores of
  two namespaces are ordered by cosine similarity); it ranks at most the server's ``max_top_k`` (100) items per
  namespace, so ``offset + limit`` above that returns fewer. ``filter`` (exact values, nested
  objects, and ``$eq $ne $gt $gte $lt $lte``) is applied by the store to the item values; a
  filtered query recalls among the matching items only. Without a query, items come newest
  first (by ``updated_at``).
* **TTL** (minutes, ``ttl=`` per put or the store's ``ttl={"default_ttl": ...}``) is the
  memory's expiry, rounded up to whole seconds; Engram deletes expired memories itself and never
  returns them. Reads refresh the TTL of the items they return (``refresh_ttl``, default the
  config's ``refresh_on_read``, itself default true) by moving the expiry.
* ``created_at`` is the memory's creation time (kept across puts of the same key) and
  ``updated_at`` the time of the last put (the memory's ``event_time``, which a TTL refresh does
  not move).
"""

from __future__ import annotations

import json
import math
import string
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple

try:
    from langgraph.store.base import (
        BaseStore,
        GetOp,
        IndexConfig,
        InvalidNamespaceError,
        Item,
        ListNamespacesOp,
        MatchCondition,
        Op,
        PutOp,
        Result,
        SearchItem,
        SearchOp,
        TTLConfig,
        get_text_at_path,
    )
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "engram.integrations.langgraph needs LangGraph: pip install 'engram-memory-client[langgraph]'"
    ) from exc

from engram._async.client import AsyncClient
from engram._gen.engram import v1 as pb
from engram._sync.client import Client
from engram.errors import NotFound
from engram.integrations._plan import ClosingMixin, Plan, Runner, Step, call

__all__ = ["DEFAULT_AGENT_PREFIX", "TAG", "TAG_INDEXED", "EngramStore"]

DEFAULT_AGENT_PREFIX = "langgraph:"
"""The agent id prefix of a store's namespaces unless ``agent_prefix=`` says otherwise."""

TAG = "langgraph"
"""Every memory the store writes carries this tag."""
TAG_INDEXED = "langgraph:indexed"
"""...and this one too when it is indexed (its content is the text ``index`` selects)."""

_MAX_AGENT_ID = 128
_AGENT_CHARS = frozenset(string.ascii_letters + string.digits + "._:@-")
_LITERAL = frozenset(string.ascii_letters + string.digits + "_:-")
_HEX = frozenset("0123456789ABCDEF")
_OPERATORS = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte")


class _Limits(NamedTuple):
    max_page_size: int
    max_top_k: int
    max_content_bytes: int


# The server defaults, used when GetServerInfo answers zeros.
_DEFAULT_LIMITS = _Limits(max_page_size=1000, max_top_k=100, max_content_bytes=32_768)


class _Found(NamedTuple):
    """An item read back, with what a TTL refresh needs."""

    item: Item
    memory_id: str
    agent_id: str
    ttl_minutes: float | None
    indexed: bool
    score: float | None = None
    similarity: float = 0.0  # the cosine of a recalled item, to order equal scores of two namespaces


def _encode_label(label: str) -> str:
    return "".join(c if c in _LITERAL else "".join(f"@{b:02X}" for b in c.encode()) for c in label)


def _decode_label(text: str) -> str | None:
    raw = bytearray()
    i = 0
    while i < len(text):
        c = text[i]
        if c == "@":
            digits = text[i + 1 : i + 3]
            if len(digits) != 2 or not set(digits) <= _HEX:
                return None
            raw.append(int(digits, 16))
            i += 3
        elif c in _LITERAL:
            raw.extend(c.encode())
            i += 1
        else:
            return None
    try:
        label = raw.decode()
    except UnicodeDecodeError:
        return None
    return label if label and _encode_label(label) == text else None


def _check_labels(namespace: Sequence[Any], what: str = "namespace") -> tuple[str, ...]:
    """LangGraph's rules for labels: non-empty strings without ``.`` or NUL."""
    if isinstance(namespace, str) or not isinstance(namespace, Sequence):
        raise InvalidNamespaceError(f"a {what} is a tuple of strings, not {type(namespace).__name__}")
    for label in namespace:
        if not isinstance(label, str):
            raise InvalidNamespaceError(
                f"invalid {what} label {label!r} in {tuple(namespace)!r}: labels are strings, "
                f"not {type(label).__name__}"
            )
        if not label:
            raise InvalidNamespaceError(f"invalid {what} {tuple(namespace)!r}: labels must not be empty")
        if "." in label or "\x00" in label:
            raise InvalidNamespaceError(
                f"invalid {what} label {label!r} in {tuple(namespace)!r}: labels must not contain '.' or NUL"
            )
    return tuple(namespace)


def _check_key(key: Any) -> str:
    if not isinstance(key, str) or not key:
        raise ValueError(f"an item key is a non-empty string, not {key!r}")
    return key


def _check_paging(limit: int, offset: int) -> None:
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
        raise ValueError(f"limit must be an integer >= 0, not {limit!r}")
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise ValueError(f"offset must be an integer >= 0, not {offset!r}")


def _check_filter(flt: Any) -> dict[str, Any] | None:
    if flt is None:
        return None
    if not isinstance(flt, Mapping):
        raise ValueError(f"a search filter is a dict of field conditions, not {type(flt).__name__}")

    def walk(condition: Any) -> None:
        if isinstance(condition, Mapping):
            operators = [k for k in condition if isinstance(k, str) and k.startswith("$")]
            if operators and len(operators) != len(condition):
                raise ValueError(f"a filter condition mixes operators and fields: {dict(condition)!r}")
            for k, v in condition.items():
                if k in operators:
                    if k not in _OPERATORS:
                        raise ValueError(
                            f"unsupported filter operator {k!r}: expected one of {' '.join(_OPERATORS)}"
                        )
                else:
                    walk(v)
        elif isinstance(condition, (list, tuple)):
            for v in condition:
                walk(v)

    walk(flt)
    return dict(flt)


def _ordered(a: Any, b: Any) -> tuple[Any, Any] | None:
    """Two values that compare by order: numbers with numbers, strings with strings."""
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool) and not isinstance(b, bool):
        return a, b
    if isinstance(a, str) and isinstance(b, str):
        return a, b
    return None


def _apply_operator(value: Any, operator: str, operand: Any) -> bool:
    if operator == "$eq":
        return bool(value == operand)
    if operator == "$ne":
        return bool(value != operand)
    pair = _ordered(value, operand)
    if pair is None:
        return False  # a missing field, or values of kinds that do not compare
    a, b = pair
    if operator == "$gt":
        return bool(a > b)
    if operator == "$gte":
        return bool(a >= b)
    if operator == "$lt":
        return bool(a < b)
    return bool(a <= b)  # $lte (the filter was checked up front)


def _matches(value: Any, condition: Any) -> bool:
    """LangGraph's filter semantics (as its InMemoryStore): exact values, nested objects, lists
    compared item by item, and the comparison operators."""
    if isinstance(condition, Mapping):
        if any(isinstance(k, str) and k.startswith("$") for k in condition):
            return all(_apply_operator(value, op, operand) for op, operand in condition.items())
        if not isinstance(value, Mapping):
            return False
        return all(_matches(value.get(k), v) for k, v in condition.items())
    if isinstance(condition, (list, tuple)):
        return (
            isinstance(value, (list, tuple))
            and len(value) == len(condition)
            and all(_matches(v, c) for v, c in zip(value, condition, strict=True))
        )
    return bool(value == condition)


def _value_matches(value: Mapping[str, Any], flt: Mapping[str, Any] | None) -> bool:
    return not flt or all(_matches(value.get(k), c) for k, c in flt.items())


def _namespace_matches(namespace: tuple[str, ...], condition: MatchCondition) -> bool:
    path = tuple(condition.path)
    if len(namespace) < len(path):
        return False
    if condition.match_type == "prefix":
        pairs = zip(namespace, path, strict=False)
    elif condition.match_type == "suffix":
        pairs = zip(reversed(namespace), reversed(path), strict=False)
    else:
        raise ValueError(f"unsupported namespace match type {condition.match_type!r}: expected prefix or suffix")
    return all(p == "*" or n == p for n, p in pairs)


def _clip(text: str, max_bytes: int) -> str:
    """``text`` cut to at most ``max_bytes`` UTF-8 bytes, on a character boundary."""
    data = text.encode()
    if len(data) <= max_bytes:
        return text
    return data[:max_bytes].decode(errors="ignore")


def _value_json(op: PutOp) -> str:
    """The item's value as JSON text (exactly what ``get`` gives back)."""
    if not isinstance(op.value, Mapping):
        raise TypeError(f"an item value is a dict, not {type(op.value).__name__}")
    try:
        return json.dumps(dict(op.value), ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"the value of item {op.key!r} in {tuple(op.namespace)!r} is not JSON: {exc}") from None


def _index_paths(index: Any, default: list[str]) -> list[str]:
    """The paths a put embeds: its ``index`` (False: none), else the store's."""
    if index is None:
        return default
    if index is False:
        return []
    if isinstance(index, str) or not isinstance(index, Sequence) or not all(isinstance(p, str) for p in index):
        raise TypeError(f"index is False, None or a list of paths such as ['text'], not {index!r}")
    return list(index)


def _ttl_seconds(ttl: Any) -> int:
    if ttl is None:
        return 0
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not math.isfinite(ttl) or ttl <= 0:
        raise ValueError(f"ttl is a positive number of minutes or None, not {ttl!r}")
    return max(1, math.ceil(ttl * 60))


class EngramStore(ClosingMixin, BaseStore):
    """A LangGraph ``BaseStore`` whose items are Engram memories (see the module docstring).

    Args:
        client: An ``engram.Client`` (sync calls use it; async calls run it in a worker thread)
            or an ``engram.AsyncClient`` (async calls only). When no client is given, the store
            makes both from ``url`` and ``api_key`` on first use and closes them in
            :meth:`close` / :meth:`aclose` (or at the end of a ``with`` / ``async with``).
        async_client: An ``engram.AsyncClient`` for the async methods, next to a sync ``client``.
        url: Server address when no client is given (default ``ENGRAM_URL``, else
            ``http://127.0.0.1:3300``).
        api_key: API key when no client is given (default ``ENGRAM_API_KEY``).
        agent_prefix: Prefix of the agent ids of the namespaces (characters of an agent id:
            ``A-Z a-z 0-9 . _ : @ -``). Two stores with different prefixes on one server do not
            see each other.
        index: Which fields of a value are embedded (``{"fields": ["text", "tags[*]"]}``);
            default ``["$"]``, the whole value as JSON. Engram embeds on the server, with its own
            model: ``embed`` and ``dims`` are not used (``embed`` is refused, so that nobody
            believes their embedding function is in use).
        ttl: LangGraph's ``TTLConfig``: ``default_ttl`` (minutes) for puts without ``ttl=``,
            ``refresh_on_read`` (default true). Engram expires memories itself: there is no sweeper
            to start, and expired items are never returned.
    """

    supports_ttl: bool = True

    def __init__(
        self,
        client: Client | AsyncClient | None = None,
        *,
        async_client: AsyncClient | None = None,
        url: str | None = None,
        api_key: str | None = None,
        agent_prefix: str = DEFAULT_AGENT_PREFIX,
        index: IndexConfig | Mapping[str, Any] | None = None,
        ttl: TTLConfig | None = None,
    ) -> None:
        if not isinstance(agent_prefix, str) or not set(agent_prefix) <= _AGENT_CHARS:
            raise ValueError(
                f"agent_prefix {agent_prefix!r} may only contain the characters of an agent id: A-Z a-z 0-9 . _ : @ -"
            )
        if len(agent_prefix) >= _MAX_AGENT_ID:
            raise ValueError(f"agent_prefix is {len(agent_prefix)} characters: it leaves no room for a namespace")
        fields: list[str] = ["$"]
        if index is not None:
            if not isinstance(index, Mapping):
                raise TypeError(f"index is a dict like {{'fields': ['text']}}, not {type(index).__name__}")
            if index.get("embed") is not None:
                raise ValueError(
                    "EngramStore does not use index['embed']: the Engram server embeds every memory with "
                    "its own model. Give only index={'fields': [...]}"
                )
            given = index.get("fields")
            if given is not None:
                if isinstance(given, str) or not all(isinstance(f, str) for f in given):
                    raise TypeError("index['fields'] is a list of paths such as ['text', 'notes[*].body']")
                fields = list(given) or ["$"]
        if ttl is not None:
            if not isinstance(ttl, Mapping):
                raise TypeError(f"ttl is a TTLConfig dict like {{'default_ttl': 60}}, not {type(ttl).__name__}")
            _ttl_seconds(ttl.get("default_ttl"))  # fails now rather than at the first put
        self._runner = Runner("EngramStore", client, async_client, url, api_key)
        self.agent_prefix = agent_prefix
        self.index_fields = fields
        self.ttl_config = ttl
        self._limits_cache: _Limits | None = None

    def __repr__(self) -> str:
        return f"<EngramStore agent_prefix={self.agent_prefix!r}>"

    # --- namespaces and agents --------------------------------------------------------------

    def agent_id_for(self, namespace: tuple[str, ...]) -> str:
        """The Engram agent id that holds the items of ``namespace``.

        Raises:
            InvalidNamespaceError: The namespace is empty, has an invalid label, or its agent id
                would be longer than 128 characters.
        """
        labels = _check_labels(namespace)
        if not labels:
            raise InvalidNamespaceError("a namespace has at least one label")
        agent_id = self.agent_prefix + ".".join(_encode_label(label) for label in labels)
        if len(agent_id) > _MAX_AGENT_ID:
            raise InvalidNamespaceError(
                f"namespace {labels!r} is too long for Engram: its agent id is {len(agent_id)} characters "
                f"({agent_id[:40]}...), the limit is {_MAX_AGENT_ID}"
            )
        return agent_id

    def namespace_for(self, agent_id: str) -> tuple[str, ...] | None:
        """The namespace an agent id stands for, or ``None`` when it is not one of this store's."""
        if not agent_id.startswith(self.agent_prefix):
            return None
        rest = agent_id[len(self.agent_prefix) :]
        if not rest:
            return None
        labels = []
        for part in rest.split("."):
            label = _decode_label(part)
            if label is None:
                return None
            labels.append(label)
        return tuple(labels)

    # --- BaseStore --------------------------------------------------------------------------

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Execute ``ops`` in one batch (reads see the store as it was before the batch's puts;
        of several puts of one item, the last wins)."""
        return self._runner.run(self._batch(ops))

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """:meth:`batch`, asynchronously (the batch's reads concurrently, then its writes)."""
        return await self._runner.arun(self._batch(ops))

    # --- plans ------------------------------------------------------------------------------

    def _batch(self, ops: Iterable[Op]) -> Plan[list[Result]]:
        ops = list(ops)
        results: list[Result] = [None] * len(ops)
        gets: dict[tuple[str, ...], list[tuple[int, GetOp]]] = {}
        reads: list[tuple[int, Plan[Any]]] = []
        puts: dict[tuple[tuple[str, ...], str], tuple[PutOp, str | None]] = {}
        # Every op is checked before anything is sent.
        for i, op in enumerate(ops):
            if isinstance(op, GetOp):
                _check_key(op.key)
                gets.setdefault(_check_labels(op.namespace), []).append((i, op))
            elif isinstance(op, SearchOp):
                _check_labels(op.namespace_prefix, "namespace prefix")
                _check_paging(op.limit, op.offset)
                _check_filter(op.filter)
                reads.append((i, self._search(op)))
            elif isinstance(op, ListNamespacesOp):
                for condition in op.match_conditions or ():
                    _check_labels([p for p in condition.path if p != "*"], "namespace pattern")
                _check_paging(op.limit, op.offset)
                if op.max_depth is not None and (not isinstance(op.max_depth, int) or op.max_depth < 1):
                    raise ValueError(f"max_depth must be an integer >= 1 or None, not {op.max_depth!r}")
                reads.append((i, self._list_namespaces(op)))
            elif isinstance(op, PutOp):
                self.agent_id_for(op.namespace)
                _check_key(op.key)
                value_json = None if op.value is None else _value_json(op)
                _ttl_seconds(op.ttl)
                _index_paths(op.index, self.index_fields)
                puts.pop((tuple(op.namespace), op.key), None)  # the last put of an item wins
                puts[(tuple(op.namespace), op.key)] = (op, value_json)
            else:
                raise ValueError(f"unknown operation type: {type(op).__name__}")
        step: list[Plan[Any]] = [self._get(ns, group) for ns, group in gets.items()]
        step += [plan for _, plan in reads]
        if step:
            answers = yield step
            for group, found in zip(gets.values(), answers, strict=False):
                for index, get_op in group:
                    results[index] = found.get(get_op.key)
            for (index, _), answer in zip(reads, answers[len(gets) :], strict=True):
                results[index] = answer
        if puts:
            yield [self._put(op, value_json) for op, value_json in puts.values()]
        return results

    def _limits(self) -> Plan[_Limits]:
        if self._limits_cache is None:
            (info,) = yield [call("server_info")]
            limits = info.limits or pb.ServerLimits()
            self._limits_cache = _Limits(
                max_page_size=limits.max_page_size or _DEFAULT_LIMITS.max_page_size,
                max_top_k=limits.max_top_k or _DEFAULT_LIMITS.max_top_k,
                max_content_bytes=limits.max_content_bytes or _DEFAULT_LIMITS.max_content_bytes,
            )
        return self._limits_cache

    def _found(self, memory: pb.Memory | pb.RecalledMemory, namespace: tuple[str, ...]) -> _Found | None:
        """The item a memory holds, or ``None`` for a memory the store did not write."""
        if TAG not in memory.tags or not memory.key or memory.metadata is None:
            return None
        meta = memory.metadata.to_dict()
        if not isinstance(meta, dict) or not isinstance(meta.get("value"), str):
            return None
        try:
            value = json.loads(meta["value"])
        except ValueError:
            return None
        if not isinstance(value, dict):
            return None
        created = memory.created_at or datetime.fromtimestamp(0).astimezone()
        updated = memory.event_time or memory.updated_at or created
        ttl = meta.get("ttl_minutes")
        score = memory.score if isinstance(memory, pb.RecalledMemory) else None
        item: Item
        if score is not None:
            item = SearchItem(namespace, memory.key, value, created, updated, score)
        else:
            item = Item(value=value, key=memory.key, namespace=namespace, created_at=created, updated_at=updated)
        return _Found(
            item, memory.id, memory.agent_id, float(ttl) if isinstance(ttl, (int, float)) else None,
            TAG_INDEXED in memory.tags, score,
            memory.vector_score if isinstance(memory, pb.RecalledMemory) else 0.0,
        )

    def _refresh(self, found: Iterable[_Found]) -> Step:
        """Calls that move the expiry of the items that have a TTL (one deleted meanwhile is skipped)."""
        return [
            call("update", f.memory_id, agent_id=f.agent_id, ttl_seconds=_ttl_seconds(f.ttl_minutes),
                 tolerate=(NotFound,))
            for f in found
            if f.ttl_minutes
        ]

    def _get(self, namespace: tuple[str, ...], ops: list[tuple[int, GetOp]]) -> Plan[dict[str, Item]]:
        if not namespace:
            return {}
        agent_id = self.agent_id_for(namespace)
        limits = yield from self._limits()
        keys = list(dict.fromkeys(op.key for _, op in ops))
        chunks = [keys[i : i + limits.max_page_size] for i in range(0, len(keys), limits.max_page_size)]
        pages = yield [
            call("list", agent_id, filter={"keys": chunk, "tags_all": [TAG]}, page_size=len(chunk))
            for chunk in chunks
        ]
        found = {f.item.key: f for page in pages for m in page.memories if (f := self._found(m, namespace))}
        refresh = {op.key for _, op in ops if op.refresh_ttl}
        step = self._refresh(f for key, f in found.items() if key in refresh)
        if step:
            yield step
        return {key: f.item for key, f in found.items()}

    def _put(self, op: PutOp, value_json: str | None) -> Plan[None]:
        agent_id = self.agent_id_for(op.namespace)
        if op.value is None or value_json is None:
            yield [call("forget", agent_id, filter={"keys": [op.key], "tags_all": [TAG]})]
            return
        limits = yield from self._limits()
        text = None
        paths = _index_paths(op.index, self.index_fields)
        if paths:
            texts = [t for path in paths for t in get_text_at_path(op.value, path) if t.strip()]
            text = "\n".join(texts) or None
        ttl_seconds = _ttl_seconds(op.ttl)
        metadata: dict[str, Any] = {"namespace": list(op.namespace), "value": value_json}
        if ttl_seconds:
            metadata["ttl_minutes"] = op.ttl
        content = text if text is not None else (op.key if op.key.strip() else "(unindexed)")
        yield [
            call(
                "store", agent_id, _clip(content, limits.max_content_bytes),
                tags=[TAG, TAG_INDEXED] if text is not None else [TAG],
                metadata=metadata, key=op.key, duplicate_policy="off", ttl_seconds=ttl_seconds,
            )
        ]

    def _namespaces(self) -> Plan[list[tuple[tuple[str, ...], str]]]:
        """Every namespace of the store that holds memories, with its agent id."""
        limits = yield from self._limits()
        out: list[tuple[tuple[str, ...], str]] = []
        token = ""
        while True:
            (page,) = yield [call("list_agents", page_size=limits.max_page_size, page_token=token)]
            for agent in page.agents:
                namespace = self.namespace_for(agent.agent_id)
                if namespace is not None and agent.memory_count > 0:
                    out.append((namespace, agent.agent_id))
            token = page.next_page_token
            if not token:
                return out

    def _under(self, prefix: tuple[str, ...]) -> Plan[list[tuple[tuple[str, ...], str]]]:
        namespaces = yield from self._namespaces()
        return sorted((ns, a) for ns, a in namespaces if ns[: len(prefix)] == prefix)

    def _list_items(
        self,
        namespace: tuple[str, ...],
        agent_id: str,
        flt: Mapping[str, Any] | None,
        need: int | None,
        indexed: bool | None = None,
    ) -> Plan[list[_Found]]:
        """Items of one namespace matching ``flt``, newest first: the first ``need`` (all when None).
        ``indexed`` keeps only indexed (True) or unindexed (False) ones."""
        limits = yield from self._limits()
        size = limits.max_page_size
        if not flt and need is not None and indexed is None:
            size = max(1, min(need, limits.max_page_size))
        out: list[_Found] = []
        token = ""
        while True:
            (page,) = yield [
                call("list", agent_id, filter={"tags_all": [TAG]}, order_by="event_time desc",
                     page_size=size, page_token=token)
            ]
            for memory in page.memories:
                if indexed is not None and (TAG_INDEXED in memory.tags) != indexed:
                    continue
                found = self._found(memory, namespace)
                if found is not None and _value_matches(found.item.value, flt):
                    out.append(found)
                    if need is not None and len(out) >= need:
                        return out
            token = page.next_page_token
            if not token:
                return out

    def _search(self, op: SearchOp) -> Plan[list[SearchItem]]:
        flt = _check_filter(op.filter)
        need = op.offset + op.limit
        if op.limit == 0:
            return []
        namespaces = yield from self._under(tuple(op.namespace_prefix))
        if not namespaces:
            return []
        if op.query:
            found = yield from self._recall(namespaces, op.query, flt, need)
        else:
            lists = yield [self._list_items(ns, agent_id, flt, need) for ns, agent_id in namespaces]
            found = sorted(
                (f for items in lists for f in items),
                key=lambda f: (f.item.updated_at, f.item.namespace, f.item.key),
                reverse=True,
            )
        page = found[op.offset : need]
        if op.refresh_ttl:
            step = self._refresh(page)
            if step:
                yield step
        return [
            SearchItem(f.item.namespace, f.item.key, f.item.value, f.item.created_at, f.item.updated_at, f.score)
            for f in page
        ]

    def _recall(
        self,
        namespaces: list[tuple[tuple[str, ...], str]],
        query: str,
        flt: Mapping[str, Any] | None,
        need: int,
    ) -> Plan[list[_Found]]:
        """The indexed items best matching ``query`` (and ``flt``), by score, then unindexed ones."""
        limits = yield from self._limits()
        top_k = min(need, limits.max_top_k)
        if flt:
            # The filter runs here, on the values: recall among the ids of the matching items.
            lists = yield [self._list_items(ns, agent_id, flt, None) for ns, agent_id in namespaces]
            recalls = []
            unindexed: list[_Found] = []
            for (ns, agent_id), items in zip(namespaces, lists, strict=True):
                ids = [f.memory_id for f in items if f.indexed]
                unindexed.extend(f for f in items if not f.indexed)
                for i in range(0, len(ids), limits.max_page_size):
                    chunk = ids[i : i + limits.max_page_size]
                    recalls.append((ns, call("recall", agent_id, query, top_k=min(top_k, len(chunk)),
                                             filter={"ids": chunk, "tags_all": [TAG_INDEXED]})))
        else:
            recalls = [
                (ns, call("recall", agent_id, query, top_k=top_k, filter={"tags_all": [TAG_INDEXED]}))
                for ns, agent_id in namespaces
            ]
            unindexed = []
        answers = yield [c for _, c in recalls] if recalls else []
        scored = [
            f
            for (ns, _), answer in zip(recalls, answers, strict=True)
            for memory in answer.memories
            if not memory.associated and (f := self._found(memory, ns)) is not None
        ]
        # Recall scores rank within a namespace (fusion is by rank); between namespaces, equal
        # scores are ordered by cosine similarity.
        scored.sort(key=lambda f: (f.score or 0.0, f.similarity), reverse=True)
        if len(scored) < need:
            if not flt:
                lists = yield [
                    self._list_items(ns, agent_id, None, need - len(scored), indexed=False)
                    for ns, agent_id in namespaces
                ]
                unindexed = [f for items in lists for f in items]
            unindexed.sort(key=lambda f: (f.item.updated_at, f.item.namespace, f.item.key), reverse=True)
            scored.extend(unindexed[: need - len(scored)])
        return scored

    def _list_namespaces(self, op: ListNamespacesOp) -> Plan[list[tuple[str, ...]]]:
        namespaces = yield from self._namespaces()
        names = [ns for ns, _ in namespaces if all(_namespace_matches(ns, c) for c in op.match_conditions or ())]
        if op.max_depth is not None:
            names = [ns[: op.max_depth] for ns in names]
        return sorted(set(names))[op.offset : op.offset + op.limit]
