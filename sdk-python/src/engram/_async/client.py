"""The async Engram client.

``engram/_sync/client.py`` (the sync ``Client``) is generated from this file by
``scripts/unasync.py``; edit this one.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

import betterproto2
import httpx

from engram import _convert
from engram._async.transports import AsyncGrpcTransport, AsyncRestTransport, AsyncTransport
from engram._async.watch import AsyncWatch
from engram._config import (
    DEFAULT_RETRY,
    DEFAULT_TIMEOUT,
    USE_CLIENT_DEFAULT,
    Retry,
    Timeout,
    TimeoutTypes,
    TransportName,
    UseClientDefault,
    parse_url,
    resolve_api_key,
)
from engram._docs import rpc_method
from engram._gen.engram import v1 as pb
from engram._gen.google.protobuf import FieldMask
from engram._requests import (
    FilterTypes,
    Metadata,
    PerCallTimeout,
    Time,
    import_request,
    recall_request,
    store_request,
)
from engram._rpc import rpc
from engram._utils import AsyncRequests, aclosing, aiter_requests, async_sleep
from engram.errors import CursorExpired, EngramError, OutOfRange

R = TypeVar("R", bound=betterproto2.Message)



class AsyncClient:
    """Async client of an Engram server, over gRPC or REST.

    Every RPC of the API is one method that returns the RPC's response message (from
    ``engram.models``); streams and pages come as async iterators. Use it as an async context
    manager, or call :meth:`aclose`::

        async with engram.AsyncClient("http://127.0.0.1:3300", api_key="...") as client:
            stored = await client.store("agent-1", "The user prefers dark mode")
            found = await client.recall("agent-1", "UI preferences")

    Args:
        url: Server address: ``host:port`` (taken as ``http://``), ``http(s)://host:port``
            (REST) or ``grpc(s)://host:port`` (gRPC), with or without a trailing slash; IPv6 in
            brackets (``[::1]:3300``). Default: ``ENGRAM_URL``, else ``http://127.0.0.1:3300``.
        api_key: API key; default ``ENGRAM_API_KEY``.
        transport: ``"rest"`` or ``"grpc"`` to override the URL scheme's choice, or a transport
            object (a subclass of the transport base, for tests).
        timeout: Default timeout of every call: seconds, a :class:`engram.Timeout`, or None.
            Default ``Timeout(30, connect=5, stream=None)``.
        retry: Retry policy of idempotent calls: a :class:`engram.Retry`, a number of attempts,
            or None for no retries. Default ``Retry(attempts=3)``.
        headers: Extra HTTP headers (REST only).
        http_transport: An ``httpx`` transport for REST, e.g. ``httpx.ASGITransport(app)`` to
            call an in-process server, or ``httpx.MockTransport``.
        grpc_options: Extra grpcio channel options.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        api_key: str | None = None,
        transport: TransportName | AsyncTransport | None = None,
        timeout: TimeoutTypes = DEFAULT_TIMEOUT,
        retry: Retry | int | None = DEFAULT_RETRY,
        headers: Mapping[str, str] | None = None,
        http_transport: httpx.AsyncBaseTransport | None = None,
        grpc_options: Iterable[tuple[str, Any]] = (),
    ) -> None:
        self.timeout = Timeout.coerce(timeout)
        self.retry = Retry.coerce(retry)
        key = resolve_api_key(api_key)
        if isinstance(transport, AsyncTransport):
            self._transport: AsyncTransport = transport
            self.url = url or ""
            return
        endpoint = parse_url(url, transport)
        self.url = endpoint.url
        if endpoint.transport == "grpc":
            self._transport = AsyncGrpcTransport(endpoint, key, options=grpc_options)
        else:
            self._transport = AsyncRestTransport(
                endpoint, key, headers=headers, transport=http_transport
            )

    @property
    def transport(self) -> str:
        """``"rest"`` or ``"grpc"`` (or the name of a custom transport)."""
        return self._transport.name

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url or self.transport}>"

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections. The client cannot be used afterwards."""
        await self._transport.aclose()

    # --- plumbing ---------------------------------------------------------------------------

    def _timeout(self, timeout: PerCallTimeout) -> Timeout:
        return self.timeout if isinstance(timeout, UseClientDefault) else Timeout.coerce(timeout)

    async def _call(
        self,
        name: str,
        request: betterproto2.Message,
        response_type: type[R],
        timeout: PerCallTimeout,
        *,
        idempotent: bool = True,
    ) -> R:
        spec = rpc(name)
        limits = self._timeout(timeout)
        # The timeout bounds the retries too: no retry starts after it has passed.
        deadline = None if limits.timeout is None else time.monotonic() + limits.timeout
        attempt = 0
        while True:
            try:
                response = await self._transport.unary(spec, request, limits)
                break
            except EngramError as exc:
                delay = self.retry.delay(exc, attempt) if idempotent else None
                if delay is None or (deadline is not None and time.monotonic() + delay >= deadline):
                    raise
                attempt += 1
                await async_sleep(delay)
        if not isinstance(response, response_type):  # pragma: no cover - transport bug
            raise TypeError(f"{name} answered {type(response).__name__}")
        return response

    # --- MemoryService ----------------------------------------------------------------------

    @rpc_method("StoreMemory")
    async def store(
        self,
        agent_id: str,
        content: str,
        *,
        memory_type: pb.MemoryType | str | None = None,
        importance: float | None = None,
        tags: Sequence[str] = (),
        metadata: Metadata = None,
        session_id: str = "",
        event_time: Time = None,
        ttl_seconds: int = 0,
        expires_at: Time = None,
        id: str = "",
        key: str = "",
        duplicate_policy: pb.DuplicatePolicy | str | None = None,
        duplicate_threshold: float | None = None,
        timeout: PerCallTimeout = USE_CLIENT_DEFAULT,
    ) -> pb.StoreMemoryResponse:
        """Args:
            agent_id: The agent that owns the memory.
            content: The text to remember.
            memory_type: ``episodic`` (default), ``semantic``, ``procedural`` or ``working``.
            importance: From 0 to 1; the server uses 0.5 when omitted.
            tags: Labels to filter by.
            metadata: Arbitrary JSON metadata.
            session_id: Conversation or task run the memory belongs to.
            event_time: When the remembered thing happened; defaults to now.
            ttl_seconds: Seconds until the memory expires; 0 means never.
            expires_at: When the memory expires (exclusive with ``ttl_seconds``).
            id: Client-chosen id. With an id the call is idempotent and retried on failure.
            key: Upsert key: the agent's memory with this key is replaced (exclusive with
                ``id``). Retried on failure, like ``id``.
            duplicate_policy: ``off``, ``exact`` or ``near``: what the server does when the agent
                already holds the same memory (default: the server's, ``exact``).
            duplicate_threshold: Cosine similarity from which ``near`` merges (default 0.95).
            timeout: This call's timeout (default: the client's).

        Returns:
            ``StoreMemoryResponse`` with ``memory``, ``created`` and ``outcome`` (created,
            unchanged, merged into a duplicate, or replaced by key).
        """
        request = store_request(
            agent_id, content, memory_type=memory_type, importance=importance, tags=tags,
            metadata=metadata, session_id=session_id, event_time=event_time,
            ttl_seconds=ttl_seconds, expires_at=expires_at, id=id, key=key,
            duplicate_policy=duplicate_policy, duplicate_threshold=duplicate_threshold,
        )
        return await self._call(
            "StoreMemory", request, pb.StoreMemoryResponse, timeout, idempotent=bool(id or key)
        )

    @rpc_method("BatchStoreMemories")
    async def batch_store(
        self,
        memories: Sequence[pb.StoreMemoryRequest | Mapping[str, Any]],
        *,
        timeout: PerCallTimeout = USE_CLIENT_DEFAULT,
    ) -> pb.BatchStoreMemoriesResponse:
        """Args:
            memories: ``StoreMemoryRequest`` messages, or dicts of :meth:`store`'s arguments
                (``{"agent_id": ..., "content": ..., "tags": [...], "key": ...,
                "duplicate_policy": "near"}``).
            timeout: This call's timeout.

        Returns:
            ``BatchStoreMemoriesResponse`` with ``memories``, ``created_count`` and
            ``outcomes`` (one ``StoreOutcome`` per item, in order).

        Retried only when every item has an ``id`` or a ``key``.
        """
        requests = [
            m if isinstance(m, pb.StoreMemoryRequest) else store_request(**_store_kwargs(m))
            for m in memories
        ]
        return await self._call(
            "BatchStoreMemories",
            pb.BatchStoreMemoriesRequest(requests=requests),
            pb.BatchStoreMemoriesResponse,
            timeout,
            idempotent=bool(requests) and all(r.id or r.key for r in requests),
        )

    @rpc_method("GetMemory")
    async def get(
        self, id: str, *, agent_id: str = "", timeout: PerCallTimeout = USE_CLIENT_DEFAULT
    ) -> pb.GetMemoryResponse:
        """Args:
            id: The memory id.
            agent_id: When set, the memory must belong to this agent.
            timeout: This call's timeout.
        """
        return await self._call(
            "GetMemory", pb.GetMemoryRequest(id=id, agent_id=agent_id), pb.GetMemoryResponse, timeout
        )

    @rpc_method("UpdateMemory")
    async def update(
        self,
        id: str,
        *,
        agent_id: str = "",
        content: str | None = None,
        memory_type: pb.MemoryType | str | None = None,
        importance: float | None = None,
        tags: Sequence[str] | None = None,
        metadata: Metadata = None,
        session_id: str | None = None,
        event_time: Time = None,
        expires_at: Time = None,
        ttl_seconds: int = 0,
        timeout: PerCallTimeout = USE_CLIENT_DEFAULT,
    ) -> pb.UpdateMemoryResponse:
        """Only the arguments you pass are changed (they form the ``update_mask``), so
        ``tags=[]`` clears the tags and ``importance=0.0`` sets it to zero.

        Args:
            id: The memory to update.
            agent_id: When set, the memory must belong to this agent.
            content: New text (re-embedded).
            memory_type: New kind.
            importance: New importance, 0 to 1.
            tags: New tags (replacing the old ones).
            metadata: New metadata (replacing the old).
            session_id: New session id.
            event_time: New event time.
            expires_at: New expiry time.
            ttl_seconds: Expire this many seconds from now (0 leaves the expiry unchanged).
            timeout: This call's timeout.
        """
        memory = pb.Memory(id=id)
        paths: builtins.list[str] = []
        if content is not None:
            memory.content = content
            paths.append("content")
        if memory_type is not None:
            memory.memory_type = _convert.enum_value(pb.MemoryType, memory_type)
            paths.append("memory_type")
        if importance is not None:
            memory.importance = float(importance)
            paths.append("importance")
        if tags is not None:
            memory.tags = builtins.list(tags)
            paths.append("tags")
        if metadata is not None:
            memory.metadata = _convert.struct_of(metadata)
            paths.append("metadata")
        if session_id is not None:
            memory.session_id = session_id
            paths.append("session_id")
        if event_time is not None:
            memory.event_time = _convert.timestamp_of(event_time)
            paths.append("event_time")
        if expires_at is not None:
            memory.expires_at = _convert.timestamp_of(expires_at)
            paths.append("expires_at")
        request = pb.UpdateMemoryRequest(
            memory=memory,
            update_mask=FieldMask(paths=paths) if paths else None,
            agent_id=agent_id,
            ttl_seconds=ttl_seconds,
        )
        return await self._call("UpdateMemory", request, pb.UpdateMemoryResponse, timeout, idempotent=False)

    @rpc_method("DeleteMemory")
    async def delete(
        self, id: str, *, agent_id: str = "", timeout: PerCallTimeout = USE_CLIENT_DEFAULT
    ) -> pb.DeleteMemoryResponse:
        """Args:
            id: The memory id.
            agent_id: When set, the memory must belong to this agent.
            timeout: This call's timeout.
        """
        return await self._call(
            "DeleteMemory", pb.DeleteMemoryRequest(id=id, agent_id=agent_id),
            pb.DeleteMemoryResponse, timeout, idempotent=False,
        )

    @rpc_method("ListMemories")
    async def list(
        self,
        agent_id: str,
        *,
        page_size: int = 0,
        page_token: str = "",
        filter: FilterTypes = None,
        order_by: str = "",
        timeout: PerCallTimeout = USE_CLIENT_DEFAULT,
    ) -> pb.ListMemoriesResponse:
        """Args:
            agent_id: The agent whose memories to list.
            page_size: 1 to the server's ``max_page_size``; 0 means 50.
            page_token: ``next_page_token`` of the previous page.
            filter: Only memories matching this filter.
            order_by: ``created_at desc`` (default), ``created_at asc``, ``updated_at desc|asc``,
                ``importance desc|asc``, ``event_time desc|asc``.
            timeout: This call's timeout.

        See :meth:`iter_memories` to walk every page.
        """
        request = pb.ListMemoriesRequest(
            agent_id=agent_id, page_size=page_size, page_token=page_token,
            filter=_convert.filter_of(filter), order_by=order_by,
        )
        return await self._call("ListMemories", request, pb.ListMemoriesResponse, timeout)

    async def iter_memories(
        self,
        agent_id: str,
        *,
        page_size: int = 100,
        filter: FilterTypes = None,
        order_by: str = "",
        timeout: PerCallTimeout = USE_CLIENT_DEFAULT,
    ) -> AsyncIterator[pb.Memory]:
        """Every memory of an agent matching ``filter``, fetching page after page (ListMemories).

        Args:
            agent_id: The agent whose memories to list.
            page_size: Memories per request.
            filter: Only memories matching this filter.
            order_by: As in :meth:`list`.
            timeout: Timeout of each page request.
        """
        token = ""
        while True:
            page = await self.list(
                agent_id, page_size=page_size, page_token=token, filter=filter,
                order_by=order_by, timeout=timeout,
            )
            for memory in page.memories:
                yield memory
            token = page.next_page_token
            if not token:
                return

    @rpc_method("Recall")
    async def recall(
        self,
        agent_id: str,
        query: str,
        *,
        top_k: int = 10,
        filter: FilterTypes = None,
        mode: pb.RecallMode | str | None = None,
        explain: bool = False,
        include_associated: bool = False,
        min_score: float = 0.0,
        timeout: PerCallTimeout = USE_CLIENT_DEFAULT,
    ) -> pb.RecallResponse:
        """Args:
            agent_id: The agent whose memories to search.
            query: What to recall, in natural language or keywords.
            top_k: How many memories to return (1 to the server's ``max_top_k``).
            filter: Only memories matching this filter; applied before ``top_k``.
            mode: ``hybrid`` (default), ``vector`` or ``keyword``.
            explain: Return the parts of each score in ``explanation``.
            include_associated: Also return memories linked to the results (one hop).
            min_score: Drop results scoring below this.
            timeout: This call's timeout.
        """
        return await self._call(
            "Recall",
            recall_request(
                agent_id, query, top_k=top_k, filter=filter, mode=mode, explain=explain,
                include_associated=include_associated, min_score=min_score,
            ),
            pb.RecallResponse,
            timeout,
        )

    @rpc_method("BatchRecall")
    async def batch_recall(
        self,
        queries: Sequence[pb.RecallRequest | Mapping[str, Any]],
        *,
        timeout: PerCallTimeout = USE_CLIENT_DEFAULT,
    ) -> pb.BatchRecallResponse:
        """Args:
            queries: ``RecallRequest`` messages, or dicts of :meth:`recall`'s arguments
                (``{"agent_id": ..., "query": ..., "top_k": 5}``).
            timeout: This call's timeout.
        """
        requests = [q if isinstance(q, pb.RecallRequest) else recall_request(**q) for q in queries]
        return await self._call(
            "BatchRecall", pb.BatchRecallRequest(requests=requests), pb.BatchRecallResponse, timeout
        )

    @rpc_method("ForgetMemories")
    async def forget(
        self,
        agent_id: str,
        *,
        filter: FilterTypes,
        dry_run: bool = False,
        timeout: PerCallTimeout = USE_CLIENT_DEFAULT,
    ) -> pb.ForgetMemoriesResponse:
        """Args:
            agent_id: The agent whose memories to forget.
            filter: The memories to delete; must not be empty.
            dry_run: Only count and list what would be deleted.
            timeout: This call's timeout.
        """
        request = pb.ForgetMemoriesRequest(
            agent_id=agent_id, filter=_convert.filter_of(filter), dry_run=dry_run
        )
        return await self._call(
            "ForgetMemories", request, pb.ForgetMemoriesResponse, timeout, idempotent=dry_run
        )

    @rpc_method("ConsolidateMemories")
    async def consolidate(
        self,
        agent_id: str,
        *,
        dry_run: bool = False,
        similarity_threshold: float | None = None,
        timeout: PerCallTimeout = USE_CLIENT_DEFAULT,
    ) -> pb.ConsolidateMemoriesResponse:
        """Args:
            agent_id: The agent whose memories to consolidate.
            dry_run: Only list the groups of duplicates, merge nothing (needs only a read key).
            similarity_threshold: Cosine similarity from 0.5 to 1 from which two memories are
                duplicates (default: the server's ``duplicate_threshold``, 0.95).
            timeout: This call's timeout.

        Returns:
            ``ConsolidateMemoriesResponse`` with ``groups`` (each ``keep_id``, the
            ``duplicate_ids`` merged into it and their ``min_similarity``), ``merged_count``
            (0 on a dry run) and ``dry_run``. Only a dry run is retried automatically.
        """
        request = pb.ConsolidateMemoriesRequest(
            agent_id=agent_id, dry_run=dry_run,
            similarity_threshold=None if similarity_threshold is None else float(similarity_threshold),
        )
        return await self._call(
            "ConsolidateMemories", request, pb.ConsolidateMemoriesResponse, timeout, idempotent=dry_run
        )

    @rpc_method("GetMemoryHistory")
    async def history(
        self, id: str, *, agent_id: str = "", timeout: PerCallTimeout = USE_CLIENT_DEFAULT
    ) -> pb.GetMemoryHistoryResponse:
        """Args:
            id: The memory id.
            agent_id: When set, the memory must belong to this agent.
            timeout: This call's timeout.
        """
        return await self._call(
            "GetMemoryHistory", pb.GetMemoryHistoryRequest(id=id, agent_id=agent_id),
            pb.GetMemoryHistoryResponse, timeout,
        )

    @rpc_method("LinkMemories")
    async def link(
        self,
        agent_id: str,
        source_id: str,
        target_id: str,
        *,
        relation: str = "",
        weight: float | None = None,
        timeout: PerCallTimeout = USE_CLIENT_DEFAULT,
    ) -> pb.LinkMemoriesResponse:
        """Args:
            agent_id: The agent both memories belong to.
            source_id: The memory the link starts from.
            target_id: The memory the link points to.
            relation: What the link means; the server defaults to ``related_to``.
            weight: Strength from 0 to 1; the server defaults to 1.
            timeout: This call's timeout.
        """
        request = pb.LinkMemoriesRequest(
            agent_id=agent_id, source_id=source_id, target_id=target_id, relation=relation,
            weight=weight,
        )
        return await self._call("LinkMemories", request, pb.LinkMemoriesResponse, timeout, idempotent=False)

    @rpc_method("UnlinkMemories")
    async def unlink(
        self,
        agent_id: str,
        source_id: str,
        target_id: str,
        *,
        relation: str = "",
        timeout: PerCallTimeout = USE_CLIENT_DEFAULT,
    ) -> pb.UnlinkMemoriesResponse:
        """Args:
            agent_id: The agent both memories belong to.
            source_id: The memory the link starts from.
            target_id: The memory the link points to.
            relation: Remove only links with this relation; empty removes all.
            timeout: This call's timeout.
        """
        request = pb.UnlinkMemoriesRequest(
            agent_id=agent_id, source_id=source_id, target_id=target_id, relation=relation
        )
        return await self._call(
            "UnlinkMemories", request, pb.UnlinkMemoriesResponse, timeout, idempotent=False
        )

    @rpc_method("GetMemoryGraph")
    async def graph(
        self,
        agent_id: str,
        id: str,
        *,
        depth: int = 0,
        relations: Sequence[str] = (),
        max_nodes: int = 0,
        timeout: PerCallTimeout = USE_CLIENT_DEFAULT,
    ) -> pb.GetMemoryGraphResponse:
        """Args:
            agent_id: The agent the memory belongs to.
            id: The memory to start from.
            depth: Links to follow (0 means 1).
            relations: Follow only these relations; empty follows all.
            max_nodes: Most memories to return (0 means 100).
            timeout: This call's timeout.
        """
        request = pb.GetMemoryGraphRequest(
            agent_id=agent_id, id=id, depth=depth, relations=builtins.list(relations),
            max_nodes=max_nodes,
        )
        return await self._call("GetMemoryGraph", request, pb.GetMemoryGraphResponse, timeout)

    @rpc_method("ExportMemories")
    async def export(
        self,
        agent_id: str,
        *,
        filter: FilterTypes = None,
        timeout: PerCallTimeout = USE_CLIENT_DEFAULT,
    ) -> AsyncIterator[pb.Memory]:
        """Args:
            agent_id: The agent whose memories to export.
            filter: Only memories matching this filter.
            timeout: The stream's timeout (``Timeout.stream``, unlimited by default).

        Yields:
            Each ``Memory`` with every field. Failing to open the stream is retried; a stream
            broken half-way raises (re-run the export, or import what you got: import is
            idempotent by id).
        """
        spec = rpc("ExportMemories")
        request = pb.ExportMemoriesRequest(agent_id=agent_id, filter=_convert.filter_of(filter))
        limits = self._timeout(timeout)
        attempt = 0
        while True:
            received = False
            try:
                async for item in self._transport.server_stream(spec, request, limits):
                    received = True
                    if isinstance(item, pb.ExportMemoriesResponse) and item.memory is not None:
                        yield item.memory
                return
            except EngramError as exc:
                delay = None if received else self.retry.delay(exc, attempt)
                if delay is None:
                    raise
                attempt += 1
                await async_sleep(delay)

    @rpc_method("WatchMemories")
    def watch(
        self,
        agent_id: str = "",
        *,
        start_after: str | None = None,
        reconnect_timeout: float | None = None,
    ) -> AsyncWatch:
        """Args:
            agent_id: The agent whose changes to watch; empty: every agent the key may access.
            start_after: Where to start: ``None`` (or ``""``) for the changes from now on,
                ``"0"`` for every change the server still retains, or a cursor from an
                earlier watch (``watch.cursor``, ``event.cursor``) to continue exactly after it.
            reconnect_timeout: Seconds to keep reopening a broken stream before the error is
                raised (counted from when it broke); ``None`` (the default) keeps trying,
                like a browser's EventSource. Reconnections wait the client's ``retry``
                backoff. Until the first response arrives, the stream is opened like any
                idempotent call (the client's ``retry.attempts``), so a wrong address fails
                fast.

        Returns:
            :class:`AsyncWatch`, an async iterator of ``MemoryEvent`` (``cursor``, ``type``
            created/updated/deleted/expired, ``agent_id``, ``memory_id``, ``time``,
            ``version``, and ``memory`` for created and updated) with ``.cursor`` and
            ``aclose()``; use it as an async context manager. It resumes after its cursor by
            itself when the connection drops, never yields heartbeats, and raises
            :class:`engram.CursorExpired` when its cursor is older than what the server
            retains (resynchronise: export, then watch from now).

        The server's first response comes at once and carries the cursor a watch from now
        starts at, so a watch that breaks before any change resumes where it began.
        """
        return AsyncWatch(
            self, agent_id, start_after=start_after, reconnect_timeout=reconnect_timeout
        )

    async def watch_responses(
        self,
        agent_id: str = "",
        *,
        start_after: str = "",
        timeout: PerCallTimeout = USE_CLIENT_DEFAULT,
    ) -> AsyncIterator[pb.WatchMemoriesResponse]:
        """The raw change stream (WatchMemories): one call, every ``WatchMemoriesResponse`` as
        the server sends it, heartbeats (no ``events``, only the ``cursor``) included. It is not
        reopened when it breaks and not retried; most code wants :meth:`watch`.

        Args:
            agent_id: The agent whose changes to stream; empty: every agent the key may access.
            start_after: ``""`` from now, ``"0"`` everything retained, or a cursor.
            timeout: The call's timeout: over REST ``Timeout.timeout`` bounds each wait for the
                next response (keep it above the 15-second heartbeat interval); the whole
                stream is unlimited unless ``Timeout.stream`` is set.

        Raises:
            CursorExpired: ``start_after`` is older than the changes the server retains.
        """
        spec = rpc("WatchMemories")
        request = pb.WatchMemoriesRequest(agent_id=agent_id, start_after=start_after)
        try:
            stream = self._transport.server_stream(spec, request, self._timeout(timeout))
            async with aclosing(stream):
                async for item in stream:
                    if isinstance(item, pb.WatchMemoriesResponse):
                        yield item
        except OutOfRange as exc:
            if isinstance(exc, CursorExpired):
                raise
            raise CursorExpired(
                f"{exc.message} (engram: changes were missed; read the memories again with "
                "export() and call watch() without start_after)",
                cursor=start_after, details=exc.details, from_server=exc.from_server,
            ) from None

    @rpc_method("ImportMemories")
    async def import_memories(
        self,
        memories: AsyncRequests | Iterable[pb.Memory | Mapping[str, Any]],
        *,
        agent_id: str = "",
        timeout: PerCallTimeout = USE_CLIENT_DEFAULT,
    ) -> pb.ImportMemoriesResponse:
        """Args:
            memories: ``Memory`` messages as exported, dicts in their proto3 JSON form, or
                ``ImportMemoriesRequest`` messages; a sync or an async iterable.
            agent_id: Import into this agent instead of each memory's own ``agent_id``.
            timeout: The stream's timeout (``Timeout.stream``, unlimited by default).

        Not retried automatically (the input may be a one-shot iterator); running the same
        import again is safe, memories whose id exists are skipped.
        """
        return_type = pb.ImportMemoriesResponse
        response = await self._transport.client_stream(
            rpc("ImportMemories"), _import_requests(memories, agent_id), self._timeout(timeout)
        )
        if not isinstance(response, return_type):  # pragma: no cover - transport bug
            raise TypeError("ImportMemories answered " + type(response).__name__)
        return response

    # --- AgentService -----------------------------------------------------------------------

    @rpc_method("ListAgents")
    async def list_agents(
        self,
        *,
        page_size: int = 0,
        page_token: str = "",
        timeout: PerCallTimeout = USE_CLIENT_DEFAULT,
    ) -> pb.ListAgentsResponse:
        """Args:
            page_size: 1 to the server's ``max_page_size``; 0 means 50.
            page_token: ``next_page_token`` of the previous page.
            timeout: This call's timeout.

        See :meth:`iter_agents` to walk every page.
        """
        return await self._call(
            "ListAgents", pb.ListAgentsRequest(page_size=page_size, page_token=page_token),
            pb.ListAgentsResponse, timeout,
        )

    async def iter_agents(
        self, *, page_size: int = 100, timeout: PerCallTimeout = USE_CLIENT_DEFAULT
    ) -> AsyncIterator[pb.Agent]:
        """Every agent, fetching page after page (ListAgents)."""
        token = ""
        while True:
            page = await self.list_agents(page_size=page_size, page_token=token, timeout=timeout)
            for agent in page.agents:
                yield agent
            token = page.next_page_token
            if not token:
                return

    @rpc_method("GetAgent")
    async def get_agent(
        self, agent_id: str, *, timeout: PerCallTimeout = USE_CLIENT_DEFAULT
    ) -> pb.GetAgentResponse:
        """Args:
            agent_id: The agent id.
            timeout: This call's timeout.
        """
        return await self._call(
            "GetAgent", pb.GetAgentRequest(agent_id=agent_id), pb.GetAgentResponse, timeout
        )

    @rpc_method("DeleteAgent")
    async def delete_agent(
        self, agent_id: str, *, timeout: PerCallTimeout = USE_CLIENT_DEFAULT
    ) -> pb.DeleteAgentResponse:
        """Args:
            agent_id: The agent to erase.
            timeout: This call's timeout.
        """
        return await self._call(
            "DeleteAgent", pb.DeleteAgentRequest(agent_id=agent_id), pb.DeleteAgentResponse,
            timeout, idempotent=False,
        )

    # --- AdminService -----------------------------------------------------------------------

    @rpc_method("Health")
    async def health(self, *, timeout: PerCallTimeout = USE_CLIENT_DEFAULT) -> pb.HealthResponse:
        """Args:
            timeout: This call's timeout.
        """
        return await self._call("Health", pb.HealthRequest(), pb.HealthResponse, timeout)

    @rpc_method("GetServerInfo")
    async def server_info(
        self, *, timeout: PerCallTimeout = USE_CLIENT_DEFAULT
    ) -> pb.GetServerInfoResponse:
        """Args:
            timeout: This call's timeout.
        """
        return await self._call(
            "GetServerInfo", pb.GetServerInfoRequest(), pb.GetServerInfoResponse, timeout
        )

    @rpc_method("GetStats")
    async def stats(self, *, timeout: PerCallTimeout = USE_CLIENT_DEFAULT) -> pb.GetStatsResponse:
        """Args:
            timeout: This call's timeout.
        """
        return await self._call("GetStats", pb.GetStatsRequest(), pb.GetStatsResponse, timeout)

    @rpc_method("CreateApiKey")
    async def create_api_key(
        self,
        name: str,
        role: pb.ApiKeyRole | str,
        *,
        agent_ids: Sequence[str] = (),
        agent_id_prefix: str = "",
        ttl_seconds: int = 0,
        timeout: PerCallTimeout = USE_CLIENT_DEFAULT,
    ) -> pb.CreateApiKeyResponse:
        """Args:
            name: A name to recognise the key by.
            role: ``admin``, ``read_write`` or ``read_only``.
            agent_ids: When not empty, the key may only touch these agents.
            agent_id_prefix: When set, the key may only touch agents whose id starts with it.
            ttl_seconds: Seconds until the key expires; 0 means never.
            timeout: This call's timeout.

        Returns:
            ``CreateApiKeyResponse``; its ``key`` (the secret) is shown only this once.
        """
        request = pb.CreateApiKeyRequest(
            name=name, role=_convert.enum_value(pb.ApiKeyRole, role),
            agent_ids=builtins.list(agent_ids), agent_id_prefix=agent_id_prefix,
            ttl_seconds=ttl_seconds,
        )
        return await self._call("CreateApiKey", request, pb.CreateApiKeyResponse, timeout, idempotent=False)

    @rpc_method("ListApiKeys")
    async def list_api_keys(
        self, *, include_revoked: bool = False, timeout: PerCallTimeout = USE_CLIENT_DEFAULT
    ) -> pb.ListApiKeysResponse:
        """Args:
            include_revoked: Include revoked and expired keys.
            timeout: This call's timeout.
        """
        return await self._call(
            "ListApiKeys", pb.ListApiKeysRequest(include_revoked=include_revoked),
            pb.ListApiKeysResponse, timeout,
        )

    @rpc_method("RevokeApiKey")
    async def revoke_api_key(
        self, id: str, *, timeout: PerCallTimeout = USE_CLIENT_DEFAULT
    ) -> pb.RevokeApiKeyResponse:
        """Args:
            id: The key id (not the secret).
            timeout: This call's timeout.
        """
        return await self._call(
            "RevokeApiKey", pb.RevokeApiKeyRequest(id=id), pb.RevokeApiKeyResponse, timeout
        )

    @rpc_method("GetClusterStatus")
    async def cluster_status(
        self, *, timeout: PerCallTimeout = USE_CLIENT_DEFAULT
    ) -> pb.GetClusterStatusResponse:
        """Args:
            timeout: This call's timeout.
        """
        return await self._call(
            "GetClusterStatus", pb.GetClusterStatusRequest(), pb.GetClusterStatusResponse, timeout
        )

    @rpc_method("DrainClusterNode")
    async def drain_cluster_node(
        self, node_id: str, *, timeout: PerCallTimeout = USE_CLIENT_DEFAULT
    ) -> pb.DrainClusterNodeResponse:
        """Args:
            node_id: The node to drain, as :meth:`cluster_status` names it.
            timeout: This call's timeout.
        """
        return await self._call(
            "DrainClusterNode", pb.DrainClusterNodeRequest(node_id=node_id),
            pb.DrainClusterNodeResponse, timeout,
        )

    # --- EmbeddingService -------------------------------------------------------------------

    @rpc_method("Embed")
    async def embed(
        self,
        texts: Sequence[str],
        *,
        input_type: pb.EmbeddingInputType | str | None = None,
        timeout: PerCallTimeout = USE_CLIENT_DEFAULT,
    ) -> builtins.list[builtins.list[float]]:
        """Args:
            texts: The texts to embed.
            input_type: ``document`` (default) or ``query``.
            timeout: This call's timeout.

        Returns:
            One vector (a list of floats, L2-normalised) per text, decoded from the packed
            little-endian float32 bytes; ``numpy.asarray(result, dtype="float32")`` makes a
            matrix of it.
        """
        request = pb.EmbedRequest(
            texts=builtins.list(texts),
            input_type=_convert.enum_value(pb.EmbeddingInputType, input_type),
        )
        response = await self._call("Embed", request, pb.EmbedResponse, timeout)
        return [_convert.decode_vector(e.vector) for e in response.embeddings]


def _store_kwargs(item: Mapping[str, Any]) -> dict[str, Any]:
    """:meth:`AsyncClient.store`'s keyword arguments from a dict, with a clear error for others."""
    if not isinstance(item, Mapping):
        raise TypeError(
            f"batch_store items must be StoreMemoryRequest messages or dicts, not {type(item).__name__}"
        )
    return dict(item)


async def _import_requests(
    memories: AsyncRequests | Iterable[pb.Memory | Mapping[str, Any]], agent_id: str
) -> AsyncIterator[betterproto2.Message]:
    async for item in aiter_requests(memories):  # type: ignore[arg-type]
        yield import_request(item, agent_id)
