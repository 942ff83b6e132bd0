"""The AsyncClient an adapter talks through: the caller's, or one it makes and owns."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

from engram._async.client import AsyncClient
from engram._config import TransportName, parse_url


class Connection:
    """An :class:`engram.AsyncClient` for an adapter.

    Either the caller passes a client (it stays theirs: :meth:`aclose` leaves it open), or the
    adapter makes one from ``url`` / ``api_key`` / ``transport`` on first use, inside the running
    event loop. A framework may drive the adapter from a fresh event loop per call (LlamaIndex's
    sync methods run each call with ``asyncio.run``); connections cannot move between loops, so
    an own client belongs to one loop: a call in another loop makes another client, and each one
    is closed when its loop shuts down (see :func:`_closed_at_loop_shutdown`) or by :meth:`aclose`.
    """

    def __init__(
        self,
        client: AsyncClient | None,
        url: str | None,
        api_key: str | None,
        transport: TransportName | None,
    ) -> None:
        if client is not None:
            if not isinstance(client, AsyncClient):
                raise TypeError(f"client must be an engram.AsyncClient, not {type(client).__name__}")
            if url is not None or api_key is not None or transport is not None:
                raise ValueError("pass either client or url/api_key/transport, not both")
            self.url = client.url
            self.transport: TransportName | None = None
        else:
            # Parsed now so that a bad address fails where it is given, not at the first call.
            self.url = parse_url(url, transport).url
            self.transport = transport
        self._given = client
        self._api_key = api_key
        self._own: AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closer: AsyncGenerator[None, None] | None = None

    async def client(self) -> AsyncClient:
        """The client to call, made for the running event loop when it is ours."""
        if self._given is not None:
            return self._given
        loop = asyncio.get_running_loop()
        if self._own is None or self._loop is not loop:
            own = AsyncClient(self.url, api_key=self._api_key, transport=self.transport)
            closer = _closed_at_loop_shutdown(own)
            await closer.__anext__()
            # The previous loop's client, if any, is closed by that loop's shutdown.
            self._own, self._loop, self._closer = own, loop, closer
        return self._own

    async def aclose(self) -> None:
        """Close the client made here for the running loop (a caller's client is left open)."""
        closer, loop = self._closer, self._loop
        self._own = self._loop = self._closer = None
        if closer is not None and loop is asyncio.get_running_loop():
            await closer.aclose()


async def _closed_at_loop_shutdown(client: AsyncClient) -> AsyncGenerator[None, None]:
    """Closes ``client`` when it is closed: by ``Connection.aclose``, or by the event loop's
    ``shutdown_asyncgens()`` (``asyncio.run`` calls it before it closes the loop)."""
    try:
        yield
    finally:
        await client.aclose()
