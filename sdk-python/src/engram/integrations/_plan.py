"""Adapter logic written once, run on a sync ``engram.Client`` or an ``engram.AsyncClient``.

Frameworks want both flavours of one memory interface (LangGraph's ``batch`` and ``abatch``).
Rather than writing each operation twice, an adapter writes it as a *plan*: a generator that
yields lists of client calls (:class:`Call`, or nested plans) and receives their results, in
order. :func:`run_sync` carries out each list one call after the other on a ``Client``;
:func:`run_async` runs each list concurrently on an ``AsyncClient``. Both clients have the same
methods (the sync one is generated from the async one), so a plan names them by name.

A call that fails raises its error inside the plan, where it may be caught; ``tolerate`` lists
errors that answer ``None`` instead.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

from engram.errors import EngramError

if TYPE_CHECKING:
    from engram._async.client import AsyncClient
    from engram._sync.client import Client

T = TypeVar("T")


@dataclass(frozen=True)
class Call:
    """One client method call: ``getattr(client, method)(*args, **kwargs)``."""

    method: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    tolerate: tuple[type[EngramError], ...] = ()


Step: TypeAlias = "Sequence[Call | Plan[Any]]"
Plan: TypeAlias = Generator["Step", list[Any], T]
"""A generator that yields steps (lists of calls or sub-plans) and returns its result."""


def call(method: str, *args: Any, tolerate: tuple[type[EngramError], ...] = (), **kwargs: Any) -> Call:
    """A :class:`Call` of ``method`` with these arguments."""
    return Call(method, args, kwargs, tolerate)


def _invoke(client: Client, item: Call | Plan[Any]) -> Any:
    if not isinstance(item, Call):
        return run_sync(client, item)
    try:
        return getattr(client, item.method)(*item.args, **item.kwargs)
    except item.tolerate:
        return None


async def _ainvoke(client: AsyncClient, item: Call | Plan[Any]) -> Any:
    if not isinstance(item, Call):
        return await run_async(client, item)
    try:
        return await getattr(client, item.method)(*item.args, **item.kwargs)
    except item.tolerate:
        return None


def run_sync(client: Client, plan: Plan[T]) -> T:
    """Carry out ``plan`` on a sync client, one call after the other."""
    results: list[Any] | None = None
    error: Exception | None = None
    while True:
        try:
            step = plan.throw(error) if error is not None else plan.send(results)  # type: ignore[arg-type]
        except StopIteration as stop:
            value: T = stop.value
            return value
        error = None
        try:
            results = [_invoke(client, item) for item in step]
        except Exception as exc:  # noqa: BLE001 - raised inside the plan, which may handle it
            error = exc


async def run_async(client: AsyncClient, plan: Plan[T]) -> T:
    """Carry out ``plan`` on an async client, the calls of each step concurrently."""
    results: list[Any] | None = None
    error: Exception | None = None
    while True:
        try:
            step = plan.throw(error) if error is not None else plan.send(results)  # type: ignore[arg-type]
        except StopIteration as stop:
            value: T = stop.value
            return value
        error = None
        try:
            if len(step) == 1:
                results = [await _ainvoke(client, step[0])]
            else:
                results = list(await asyncio.gather(*(_ainvoke(client, item) for item in step)))
        except Exception as exc:  # noqa: BLE001 - raised inside the plan, which may handle it
            error = exc


class Runner:
    """The clients of an adapter, and which one carries out a plan.

    Given a ``Client``, sync calls use it and async calls run it in a worker thread; given an
    ``AsyncClient``, async calls use it and sync calls are refused (a sync call cannot wait for
    an event loop); given both, each flavour uses its own; given neither, both are made on
    first use from ``url`` and ``api_key`` (``ENGRAM_URL`` and ``ENGRAM_API_KEY`` by default)
    and closed by :meth:`close` / :meth:`aclose`.
    """

    def __init__(
        self,
        owner: str,
        client: Client | AsyncClient | None,
        async_client: AsyncClient | None,
        url: str | None,
        api_key: str | None,
    ) -> None:
        from engram._async.client import AsyncClient
        from engram._sync.client import Client

        if isinstance(client, AsyncClient):
            if async_client is not None:
                raise TypeError(f"{owner}: client= is an AsyncClient and async_client= is given too")
            client, async_client = None, client
        if client is not None and not isinstance(client, Client):
            raise TypeError(f"{owner}: client= must be an engram.Client or engram.AsyncClient, "
                            f"not {type(client).__name__}")
        if async_client is not None and not isinstance(async_client, AsyncClient):
            raise TypeError(f"{owner}: async_client= must be an engram.AsyncClient, "
                            f"not {type(async_client).__name__}")
        if (client is not None or async_client is not None) and (url is not None or api_key is not None):
            raise TypeError(f"{owner}: give either a client or url=/api_key=, not both")
        self._owner = owner
        self._client = client
        self._async_client = async_client
        self._owns = client is None and async_client is None
        self._url = url
        self._api_key = api_key
        self._lock = threading.Lock()  # sync calls may come from several threads (graph nodes)
        self._async_loop: asyncio.AbstractEventLoop | None = None

    def _sync(self) -> Client:
        with self._lock:
            if self._client is None:
                if not self._owns:
                    raise RuntimeError(
                        f"{self._owner} was given an engram.AsyncClient only: use its async methods, or give "
                        "it a sync engram.Client as well (client=Client(...), async_client=AsyncClient(...))"
                    )
                from engram._sync.client import Client

                self._client = Client(self._url, api_key=self._api_key)
            return self._client

    def _async(self) -> AsyncClient | None:
        if self._owns:
            # A client made here belongs to the event loop that made it: a later loop (another
            # asyncio.run) gets its own.
            loop = asyncio.get_running_loop()
            if self._async_client is None or self._async_loop is not loop:
                from engram._async.client import AsyncClient

                self._async_client, self._async_loop = AsyncClient(self._url, api_key=self._api_key), loop
        return self._async_client

    def run(self, plan: Plan[T]) -> T:
        """Carry out ``plan`` with the sync client."""
        return run_sync(self._sync(), plan)

    async def arun(self, plan: Plan[T]) -> T:
        """Carry out ``plan`` with the async client (or the sync one in a worker thread)."""
        client = self._async()
        if client is not None:
            return await run_async(client, plan)
        return await asyncio.to_thread(run_sync, self._sync(), plan)

    def close(self) -> None:
        """Close the sync client this runner made (a client given to it is the caller's to close)."""
        with self._lock:
            client, self._client = (self._client, None) if self._owns else (None, self._client)
        if client is not None:
            client.close()

    async def aclose(self) -> None:
        """Close the clients this runner made."""
        self.close()
        if self._owns and self._async_client is not None:
            client, self._async_client, self._async_loop = self._async_client, None, None
            await client.aclose()


class ClosingMixin:
    """``with`` / ``async with`` support for an adapter that holds a :class:`Runner`."""

    _runner: Runner

    def close(self) -> None:
        """Close the clients this object made from ``url`` / ``api_key`` (not those given to it)."""
        self._runner.close()

    async def aclose(self) -> None:
        """Close the clients this object made from ``url`` / ``api_key`` (not those given to it)."""
        await self._runner.aclose()

    def __enter__(self: T) -> T:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    async def __aenter__(self: T) -> T:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
