"""Retries with a fake transport: idempotent calls retry on UNAVAILABLE, stores without id never."""

from __future__ import annotations

from typing import Any

import betterproto2
import httpx
import pytest

import engram
from engram import errors
from engram._config import Timeout
from engram._gen.engram import v1 as pb
from engram._rpc import RpcSpec

FAST = engram.Retry(attempts=4, backoff=0.001, max_backoff=0.002)


class FlakyTransport(engram.Transport):
    """Fails ``failures`` times with ``error``, then answers an empty response."""

    name = "fake"

    def __init__(self, failures: int, error: errors.EngramError) -> None:
        self.failures = failures
        self.error = error
        self.calls: list[str] = []

    def unary(self, spec: RpcSpec, request: betterproto2.Message, timeout: Timeout) -> betterproto2.Message:
        self.calls.append(spec.name)
        if len(self.calls) <= self.failures:
            raise self.error
        return spec.response_type()


class AsyncFlakyTransport(engram.AsyncTransport):
    name = "fake"

    def __init__(self, failures: int, error: errors.EngramError) -> None:
        self.failures = failures
        self.error = error
        self.calls: list[str] = []

    async def unary(self, spec: RpcSpec, request: betterproto2.Message, timeout: Timeout) -> betterproto2.Message:
        self.calls.append(spec.name)
        if len(self.calls) <= self.failures:
            raise self.error
        return spec.response_type()


def unavailable() -> errors.EngramError:
    return errors.Unavailable("down", from_server=False)


def test_idempotent_call_is_retried_until_success() -> None:
    fake = FlakyTransport(2, unavailable())
    with engram.Client(transport=fake, retry=FAST) as client:
        client.recall("a", "q")
    assert fake.calls == ["Recall"] * 3


def test_gives_up_after_attempts() -> None:
    fake = FlakyTransport(10, unavailable())
    client = engram.Client(transport=fake, retry=FAST)
    with pytest.raises(errors.Unavailable):
        client.get("m")
    assert len(fake.calls) == 4


def test_store_without_id_is_never_retried() -> None:
    fake = FlakyTransport(1, unavailable())
    with pytest.raises(errors.Unavailable):
        engram.Client(transport=fake, retry=FAST).store("a", "x")
    assert fake.calls == ["StoreMemory"]


def test_store_with_client_id_is_retried() -> None:
    fake = FlakyTransport(1, unavailable())
    engram.Client(transport=fake, retry=FAST).store("a", "x", id="m-1")
    assert fake.calls == ["StoreMemory"] * 2


def test_batch_store_retried_only_when_every_item_has_an_id() -> None:
    fake = FlakyTransport(1, unavailable())
    with pytest.raises(errors.Unavailable):
        engram.Client(transport=fake, retry=FAST).batch_store([{"agent_id": "a", "content": "x"}])
    fake = FlakyTransport(1, unavailable())
    engram.Client(transport=fake, retry=FAST).batch_store([{"agent_id": "a", "content": "x", "id": "1"}])
    assert len(fake.calls) == 2


@pytest.mark.parametrize("method", ["update", "delete", "delete_agent"])
def test_non_idempotent_writes_are_not_retried(method: str) -> None:
    fake = FlakyTransport(1, unavailable())
    client = engram.Client(transport=fake, retry=FAST)
    with pytest.raises(errors.Unavailable):
        getattr(client, method)("x")
    assert len(fake.calls) == 1


def test_other_codes_are_not_retried() -> None:
    fake = FlakyTransport(1, errors.NotFound("nope"))
    with pytest.raises(errors.NotFound):
        engram.Client(transport=fake, retry=FAST).get("m")
    assert len(fake.calls) == 1


def test_retry_disabled() -> None:
    fake = FlakyTransport(1, unavailable())
    with pytest.raises(errors.Unavailable):
        engram.Client(transport=fake, retry=None).get("m")
    assert len(fake.calls) == 1


@pytest.mark.anyio
async def test_async_client_retries_too() -> None:
    fake = AsyncFlakyTransport(2, unavailable())
    async with engram.AsyncClient(transport=fake, retry=FAST) as client:
        await client.list("a")
    assert fake.calls == ["ListMemories"] * 3
    fake = AsyncFlakyTransport(1, unavailable())
    with pytest.raises(errors.Unavailable):
        await engram.AsyncClient(transport=fake, retry=FAST).store("a", "x")
    assert fake.calls == ["StoreMemory"]


def test_backoff_grows_with_jitter_and_honours_retry_after() -> None:
    policy = engram.Retry(attempts=10, backoff=1.0, max_backoff=8.0, jitter=0.5)
    err = unavailable()
    delays = [policy.delay(err, n) for n in range(5)]
    for n, d in enumerate(delays):
        base = min(8.0, 2.0**n)
        assert d is not None and base * 0.5 <= d <= base
    assert policy.delay(err, 9) is None  # attempts used up
    slow = errors.Unavailable("busy", retry_after=6.0)
    assert policy.delay(slow, 0) == 6.0
    assert policy.delay(errors.Internal("x"), 0) is None


def test_connection_refused_is_unavailable_and_retried_over_rest() -> None:
    attempts = []

    def handler(request: httpx.Request) -> httpx.Response:
        attempts.append(request.url.path)
        if len(attempts) < 3:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200, json={"status": "healthy", "version": "x"})

    client = engram.Client("http://test", http_transport=httpx.MockTransport(handler), retry=FAST)
    assert client.health().status == "healthy"
    assert len(attempts) == 3
    attempts.clear()
    with pytest.raises(errors.Unavailable) as info:
        engram.Client("http://test", http_transport=httpx.MockTransport(handler), retry=None).health()
    assert info.value.from_server is False


def test_per_call_timeout_overrides_client_default() -> None:
    seen: list[Any] = []

    class Recorder(engram.Transport):
        def unary(self, spec: RpcSpec, request: betterproto2.Message, timeout: Timeout) -> betterproto2.Message:
            seen.append(timeout)
            return spec.response_type()

    client = engram.Client(transport=Recorder(), timeout=7)
    client.health()
    client.health(timeout=1.5)
    client.health(timeout=None)
    client.health(timeout=engram.Timeout(3, connect=1))
    assert [t.timeout for t in seen] == [7.0, 1.5, None, 3]
    assert isinstance(pb.HealthResponse(), betterproto2.Message)
