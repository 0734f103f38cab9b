"""Appends survive redis-py's retry after a lost reply: stored exactly once, in order.

The recipe: a second connection parks the server in ``DEBUG SLEEP``; the append sent
meanwhile times out on the client, redis-py retries it on a fresh connection, and when
the server wakes it runs both the original command and the retry. A plain RPUSH is
therefore stored twice (the baseline test shows it), while our appends must not be.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import redis
import redis.asyncio
import redis.asyncio.retry
from langchain_core.messages import AIMessage, HumanMessage, message_to_dict
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.retry import Retry

from redis_chat_history import AsyncChatHistoryStore, ChatHistoryStore, RedisChatMessageHistory
from redis_chat_history.embedded import EmbeddedRedis

pytestmark = pytest.mark.timeout(60)

SLEEP_SECONDS = 1
CLIENT_TIMEOUT = 0.3
LAYOUTS = ["native", "community", "memorystore"]


def sync_retry() -> Retry:
    """redis-py's default retry policy, spelled out so the tests do not rely on defaults."""
    return Retry(ExponentialWithJitterBackoff(base=0.01, cap=1), 10)


def async_retry() -> redis.asyncio.retry.Retry:
    """The asyncio twin of :func:`sync_retry`."""
    return redis.asyncio.retry.Retry(ExponentialWithJitterBackoff(base=0.01, cap=1), 10)


def flaky(redis_server: EmbeddedRedis, use_async: bool) -> Any:
    """A client (asyncio or sync) that times out fast and retries: a reply lost to a
    timeout is answered by redis-py re-sending the command."""
    if use_async:
        return redis.asyncio.Redis(
            host="127.0.0.1", port=redis_server.port, socket_timeout=CLIENT_TIMEOUT,
            retry=async_retry(),
        )  # fmt: skip
    return redis_server.client(socket_timeout=CLIENT_TIMEOUT, retry=sync_retry())


def record(text: str) -> dict[str, Any]:
    return {"type": "human", "data": {"content": text, "type": "human"}}


@contextmanager
def server_asleep(server: EmbeddedRedis) -> Iterator[None]:
    """Run ``DEBUG SLEEP`` from a background thread; enter once the server is really blocked.

    On exit it waits for the sleep to end, so the test's reads see the woken server.
    """
    sleeper = server.client()
    probe = server.client(socket_timeout=0.05, retry=Retry(NoBackoff(), 0))
    sleeper.ping()
    probe.ping()
    errors: list[BaseException] = []

    def sleep() -> None:
        try:
            sleeper.execute_command("DEBUG", "SLEEP", str(SLEEP_SECONDS))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=sleep, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 5
        while True:
            try:
                probe.ping()
            except redis.TimeoutError:
                break
            if errors:
                raise errors[0]
            assert time.monotonic() < deadline, "the server never blocked in DEBUG SLEEP"
            time.sleep(0.005)
        yield
    finally:
        thread.join(timeout=SLEEP_SECONDS + 10)
        sleeper.close()
        probe.close()
    assert not thread.is_alive(), "DEBUG SLEEP never returned"
    if errors:
        raise errors[0]


def reset_stats(server: EmbeddedRedis) -> None:
    with server.client() as admin:
        admin.config_resetstat()


def calls_of(server: EmbeddedRedis, command: str) -> int:
    """How often the server executed ``command`` since the last CONFIG RESETSTAT."""
    with server.client() as admin:
        stats = admin.info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


@pytest.fixture
def flaky_client(redis_server: EmbeddedRedis, redis_url: str) -> Iterator[redis.Redis]:
    """A connected client that times out fast and retries, on an empty database."""
    client = redis_server.client(socket_timeout=CLIENT_TIMEOUT, retry=sync_retry())
    client.ping()
    yield client
    client.close()


@pytest.fixture
async def flaky_aclient(
    redis_server: EmbeddedRedis, redis_url: str
) -> AsyncIterator[redis.asyncio.Redis]:
    """The asyncio twin of ``flaky_client``."""
    client = redis.asyncio.Redis(
        host="127.0.0.1", port=redis_server.port, socket_timeout=CLIENT_TIMEOUT,
        retry=async_retry(),
    )  # fmt: skip
    await client.ping()
    yield client
    await client.aclose()


def test_plain_rpush_is_duplicated(redis_server: EmbeddedRedis, flaky_client: redis.Redis) -> None:
    """Baseline: the recipe really loses a reply, so a plain RPUSH lands twice."""
    with server_asleep(redis_server):
        flaky_client.rpush("plain", b"payload")
    assert flaky_client.lrange("plain", 0, -1).count(b"payload") >= 2


async def test_plain_rpush_is_duplicated_async(
    redis_server: EmbeddedRedis, flaky_aclient: redis.asyncio.Redis
) -> None:
    """Baseline for redis.asyncio: the retried RPUSH lands twice."""
    with server_asleep(redis_server):
        await flaky_aclient.rpush("plain", b"payload")
    assert (await flaky_aclient.lrange("plain", 0, -1)).count(b"payload") >= 2


def check_stored_once(
    server: EmbeddedRedis, client: redis.Redis, layout: Any, session: str, expected: list[Any]
) -> None:
    """The list and the token set hold each append once, though EVALSHA reached the server twice."""
    assert calls_of(server, "evalsha") >= 2, "the append was not retried"
    assert client.llen(layout.messages_key(session)) == len(expected)
    assert client.zcard(layout.token_key(session)) == 2


@pytest.mark.parametrize("batch_size", [1, 3])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_append_is_stored_once(
    redis_server: EmbeddedRedis, flaky_client: redis.Redis, layout: str, batch_size: int
) -> None:
    """A retried sync append stores its batch once, after what was there, in order."""
    store = ChatHistoryStore(flaky_client, layout=layout)
    first = record("before")
    batch = [record(f"retried {i}") for i in range(batch_size)]
    assert store.append("s", [first]) == 1
    reset_stats(redis_server)
    with server_asleep(redis_server):
        assert store.append("s", batch) == 1 + batch_size
    assert store.messages("s") == [first, *batch]
    assert store.count("s") == 1 + batch_size
    check_stored_once(redis_server, flaky_client, store.config.layout, "s", [first, *batch])


@pytest.mark.parametrize("batch_size", [1, 3])
@pytest.mark.parametrize("layout", LAYOUTS)
async def test_async_append_is_stored_once(
    redis_server: EmbeddedRedis,
    flaky_aclient: redis.asyncio.Redis,
    client: redis.Redis,
    layout: str,
    batch_size: int,
) -> None:
    """A retried asyncio append stores its batch once, after what was there, in order."""
    store = AsyncChatHistoryStore(flaky_aclient, layout=layout)
    first = record("before")
    batch = [record(f"retried {i}") for i in range(batch_size)]
    assert await store.append("s", [first]) == 1
    reset_stats(redis_server)
    with server_asleep(redis_server):
        assert await store.append("s", batch) == 1 + batch_size
    assert await store.messages("s") == [first, *batch]
    assert await store.count("s") == 1 + batch_size
    check_stored_once(redis_server, client, store.config.layout, "s", [first, *batch])


def langchain_batch() -> list[Any]:
    return [HumanMessage("what is 2 + 2?", id="h1"), AIMessage("4", id="a1")]


def test_langchain_add_messages_is_stored_once(
    redis_server: EmbeddedRedis, flaky_client: redis.Redis
) -> None:
    """RedisChatMessageHistory.add_messages on a retrying client stores the batch once."""
    history = RedisChatMessageHistory("lc", client=flaky_client)
    history.add_message(HumanMessage("hello", id="h0"))
    reset_stats(redis_server)
    with server_asleep(redis_server):
        history.add_messages(langchain_batch())
    expected = [HumanMessage("hello", id="h0"), *langchain_batch()]
    assert [message_to_dict(m) for m in history.messages] == [message_to_dict(m) for m in expected]
    check_stored_once(redis_server, flaky_client, history.store.config.layout, "lc", expected)


async def test_langchain_aadd_messages_is_stored_once(
    redis_server: EmbeddedRedis,
    flaky_client: redis.Redis,
    flaky_aclient: redis.asyncio.Redis,
) -> None:
    """RedisChatMessageHistory.aadd_messages on a retrying asyncio client stores it once."""
    history = RedisChatMessageHistory("lc", client=flaky_client, async_client=flaky_aclient)
    await history.aadd_messages([HumanMessage("hello", id="h0")])
    reset_stats(redis_server)
    with server_asleep(redis_server):
        await history.aadd_messages(langchain_batch())
    expected = [HumanMessage("hello", id="h0"), *langchain_batch()]
    assert [message_to_dict(m) for m in await history.aget_messages()] == [
        message_to_dict(m) for m in expected
    ]
    check_stored_once(redis_server, flaky_client, history.store.config.layout, "lc", expected)
