"""Riding out outages longer than redis-py's own retries, without duplicating appends."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import redis.asyncio
import redis.asyncio.retry
from redis.backoff import NoBackoff
from redis.retry import Retry

from redis_chat_history import (
    AsyncChatHistoryStore,
    ChatHistoryStore,
    InvalidOptionError,
    aclose_shared_clients,
    close_shared_clients,
)
from redis_chat_history._plan import RetryTimer
from redis_chat_history.embedded import EmbeddedRedis


def record(text: str) -> dict[str, object]:
    return {"type": "human", "data": {"content": text}}


def test_retry_timer_backs_off_until_the_deadline() -> None:
    """Delays double from 50 ms up to 1 s and stop at the deadline."""
    now = [0.0]
    timer = RetryTimer(3.0, clock=lambda: now[0])
    delays = []
    while (delay := timer.next_delay()) is not None:
        delays.append(delay)
        now[0] += delay
    assert delays[:5] == [0.05, 0.1, 0.2, 0.4, 0.8]
    assert sum(delays) == pytest.approx(3.0)
    assert RetryTimer(0.0, clock=lambda: 0.0).next_delay() is None


@pytest.mark.parametrize("deadline", [-1, "15", True, float("inf")])
def test_bad_retry_deadline(client: redis.Redis, deadline: object) -> None:
    """The deadline must be a finite number of seconds."""
    with pytest.raises(InvalidOptionError, match="retry_deadline"):
        ChatHistoryStore(client, retry_deadline=deadline)  # type: ignore[arg-type]


@pytest.fixture
def server() -> Iterator[EmbeddedRedis]:
    """A server of our own, so pausing it disturbs no other test."""
    with EmbeddedRedis() as started:
        yield started


def paused(server: EmbeddedRedis, seconds: float) -> threading.Thread:
    """Freeze the server process (SIGSTOP) now and thaw it after ``seconds``."""
    os.kill(server.pid, signal.SIGSTOP)

    def thaw() -> None:
        time.sleep(seconds)
        os.kill(server.pid, signal.SIGCONT)

    thread = threading.Thread(target=thaw)
    thread.start()
    return thread


def impatient_client(server: EmbeddedRedis) -> redis.Redis:
    """A client that gives up after one 0.3 s timeout: redis-py itself retries nothing."""
    return redis.Redis(port=server.port, socket_timeout=0.3, retry=Retry(NoBackoff(), 0))


@pytest.mark.parametrize("layout", ["native", "community"])
def test_append_rides_out_an_outage_exactly_once(server: EmbeddedRedis, layout: str) -> None:
    """A 1.5 s freeze outlasts redis-py's retries; the store retries and stores once."""
    store = ChatHistoryStore(impatient_client(server), layout=layout, retry_deadline=10)
    store.append("s", [record("before")])
    thread = paused(server, 1.5)
    started = time.monotonic()
    assert store.append("s", [record("during")]) == 2
    assert time.monotonic() - started >= 1.0
    thread.join()
    assert [r["data"]["content"] for r in store.messages("s")] == ["before", "during"]
    store.close()


def test_without_a_deadline_the_outage_surfaces(server: EmbeddedRedis) -> None:
    """``retry_deadline=0`` hands the timeout to the caller at once."""
    store = ChatHistoryStore(impatient_client(server), retry_deadline=0)
    store.append("s", [record("before")])
    thread = paused(server, 1.0)
    with pytest.raises(redis.TimeoutError):
        store.messages("s")
    thread.join()
    store.close()


async def test_async_append_rides_out_an_outage_exactly_once(server: EmbeddedRedis) -> None:
    """The asyncio store retries the same way, and the append lands once."""
    client = redis.asyncio.Redis(
        port=server.port, socket_timeout=0.3, retry=redis.asyncio.retry.Retry(NoBackoff(), 0)
    )
    async with AsyncChatHistoryStore(client, retry_deadline=10) as store:
        await store.append("s", [record("before")])
        thread = paused(server, 1.5)
        assert await store.append("s", [record("during")]) == 2
        thread.join()
        assert [r["data"]["content"] for r in await store.messages("s")] == ["before", "during"]


def test_a_wrong_password_is_not_retried(server: EmbeddedRedis) -> None:
    """Authentication failures are final: no waiting for the deadline."""
    with server.client() as admin:
        admin.config_set("requirepass", "right")
    store = ChatHistoryStore(
        redis.Redis(port=server.port, password="wrong", retry=Retry(NoBackoff(), 0)),
        retry_deadline=10,
    )
    started = time.monotonic()
    with pytest.raises(redis.AuthenticationError):
        store.count("s")
    assert time.monotonic() - started < 2
    store.close()


#: What a call may take beyond retry_deadline: the first attempt's read (the URL's 0.5 s
#: socket timeout below) plus scheduling slack on a loaded machine.
TOLERANCE = 1.5


@pytest.fixture
def frozen(server: EmbeddedRedis) -> Iterator[str]:
    """A URL of a server that accepts connections but never answers (SIGSTOP)."""
    os.kill(server.pid, signal.SIGSTOP)
    yield f"redis://127.0.0.1:{server.port}/0?cluster=no&socket_timeout=0.5"
    os.kill(server.pid, signal.SIGCONT)


CLOSED = "redis://127.0.0.1:1/0?cluster=no&socket_timeout=0.5"


# A read, and a first append (which also learns the server's eviction policy).
OPERATIONS = {"count": ("s",), "append": ("s", [record("a")])}


def timed_sync(url: str, deadline: float, operation: str = "count") -> float:
    store = ChatHistoryStore(url=url, retry_deadline=deadline)
    started = time.monotonic()
    with pytest.raises((redis.ConnectionError, redis.TimeoutError)):
        getattr(store, operation)(*OPERATIONS[operation])
    return time.monotonic() - started


def timed_async(url: str, deadline: float, operation: str = "count") -> float:
    async def call() -> float:
        store = AsyncChatHistoryStore(url=url, retry_deadline=deadline)
        started = time.monotonic()
        with pytest.raises((redis.ConnectionError, redis.TimeoutError)):
            await getattr(store, operation)(*OPERATIONS[operation])
        took = time.monotonic() - started
        await aclose_shared_clients()
        return took

    return asyncio.run(call())


@pytest.mark.parametrize("deadline", [0, 1])
@pytest.mark.parametrize("timed", [timed_sync, timed_async])
def test_the_deadline_bounds_a_call_to_a_closed_port(timed: Any, deadline: float) -> None:
    """Nothing listens: the call gives up within the deadline (redis-py's own retries
    included) plus the tolerance."""
    took = timed(CLOSED, deadline)
    assert took < deadline + TOLERANCE, took
    close_shared_clients()


@pytest.mark.parametrize("operation", ["count", "append"])
@pytest.mark.parametrize("deadline", [0, 1])
@pytest.mark.parametrize("timed", [timed_sync, timed_async])
def test_the_deadline_bounds_a_call_to_a_frozen_server(
    frozen: str, timed: Any, deadline: float, operation: str
) -> None:
    """The server accepts but never answers: the first attempt waits its socket timeout,
    later ones no longer than the deadline; a first append's eviction-policy INFO too."""
    took = timed(frozen, deadline, operation)
    assert took < deadline + TOLERANCE, took
    close_shared_clients()


@pytest.mark.slow
@pytest.mark.parametrize("url", ["closed", "frozen"])
def test_the_default_deadline_bounds_a_call(request: pytest.FixtureRequest, url: str) -> None:
    """With the default 15 s a call to a dead server ends within 15 s plus the tolerance."""
    target = CLOSED if url == "closed" else request.getfixturevalue("frozen")
    store = ChatHistoryStore(url=target)
    started = time.monotonic()
    with pytest.raises((redis.ConnectionError, redis.TimeoutError)):
        store.count("s")
    assert 14 < time.monotonic() - started < 15 + TOLERANCE
    close_shared_clients()


def test_a_slow_url_does_not_block_other_urls(
    frozen: str, redis_url: str, client: redis.Redis
) -> None:
    """Making the client of a URL that hangs (its cluster probe waits for a frozen server)
    does not hold up another thread's calls through a client already made."""
    working = ChatHistoryStore(url=f"{redis_url}?cluster=no", retry_deadline=0)
    assert working.count("s") == 0
    # No cluster=: the client is probed with INFO first, which waits 3 s for its reply.
    hanging = frozen.replace("cluster=no&", "").replace("socket_timeout=0.5", "socket_timeout=3")

    def hang() -> None:
        with contextlib.suppress(redis.RedisError):
            ChatHistoryStore(url=hanging, retry_deadline=0).count("s")

    blocked = threading.Thread(target=hang, daemon=True)
    blocked.start()
    time.sleep(0.3)
    started = time.monotonic()
    assert working.count("s") == 0
    assert time.monotonic() - started < 0.5
    blocked.join(30)
    close_shared_clients()
