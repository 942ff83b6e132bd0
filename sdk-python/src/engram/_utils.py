"""Small helpers with a sync and an async flavour (``scripts/unasync.py`` maps one to the other)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import TypeVar

import betterproto2

T = TypeVar("T")

AsyncRequests = Iterable[betterproto2.Message] | AsyncIterable[betterproto2.Message]
"""What an async client-streaming call accepts."""

Requests = Iterable[betterproto2.Message]
"""What a sync client-streaming call accepts."""


async def async_sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


def sleep(seconds: float) -> None:
    time.sleep(seconds)


async def aiter_requests(requests: AsyncRequests) -> AsyncIterator[betterproto2.Message]:
    """Iterate a sync or an async iterable of messages."""
    if isinstance(requests, AsyncIterable):
        async for message in requests:
            yield message
    else:
        for message in requests:
            yield message


def iter_requests(requests: Requests) -> Iterator[betterproto2.Message]:
    yield from requests


@asynccontextmanager
async def aclosing(stream: AsyncIterator[T]) -> AsyncIterator[AsyncIterator[T]]:
    """Close a stream on exit (an async generator: its call is cancelled now, not whenever it is
    garbage-collected). An iterator without ``aclose`` is left as it is."""
    try:
        yield stream
    finally:
        close = getattr(stream, "aclose", None)
        if close is not None:
            await close()


@contextmanager
def closing(stream: Iterator[T]) -> Iterator[Iterator[T]]:
    """Close a stream on exit (a generator); an iterator without ``close`` is left as it is."""
    try:
        yield stream
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()
