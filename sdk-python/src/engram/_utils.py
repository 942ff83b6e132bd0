"""Small helpers with a sync and an async flavour (``scripts/unasync.py`` maps one to the other)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator

import betterproto2

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
