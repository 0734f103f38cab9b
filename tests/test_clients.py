"""Clients built from URLs: timeouts, retries, sharing, asyncio twins, and no leaked secrets."""

from __future__ import annotations

import asyncio
import importlib.metadata
import logging
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio
import redis.asyncio.retry
import redis.asyncio.sentinel
import redis.retry
import redis.sentinel
import redis.utils
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import AuthenticationError, ConnectionError, TimeoutError

from redis_chat_history import (
    AsyncChatHistoryStore,
    ChatHistoryStore,
    MemorystoreChatMessageHistory,
    RedisChatMessageHistory,
    __version__,
    aclose_shared_clients,
    close_shared_clients,
)
from redis_chat_history._clients import (
    MAX_SHARED_CLIENTS,
    _async_retry,
    async_client_for_url,
    async_twin,
    client_for_url,
    default_retry,
    new_sync_client,
    retry_parts,
)
from redis_chat_history.embedded import EmbeddedRedis
from topologies import tls_server

PASSWORD = "s3cret-Pa55"


@pytest.fixture(scope="module")
def auth_server() -> Iterator[EmbeddedRedis]:
    """A server that requires a password."""
    with EmbeddedRedis(extra_args=["--requirepass", PASSWORD]) as server:
        yield server


def test_url_clients_have_timeouts_and_retries(redis_url: str) -> None:
    """Unlike ``Redis.from_url``, our URL clients never block forever and retry."""
    client = client_for_url(redis_url)
    kwargs = client.connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] == 5.0 and kwargs["socket_connect_timeout"] == 5.0
    retry = client.get_retry()
    assert retry is not None and retry.get_retries() == 10
    assert (
        redis.Redis.from_url(redis_url).connection_pool.connection_kwargs.get("socket_timeout")
        is None
    )  # the gap we close


def test_histories_share_one_pool_per_url(redis_url: str) -> None:
    """A history per request reuses the process-wide client for its URL."""
    first = RedisChatMessageHistory("a", url=redis_url)
    second = RedisChatMessageHistory("b", url=redis_url)
    assert first.redis_client is second.redis_client
    assert ChatHistoryStore(url=redis_url).client is first.redis_client


async def test_async_clients_are_shared_per_event_loop(redis_url: str) -> None:
    """In one loop the async client is shared; another loop gets its own."""
    here = await async_client_for_url(redis_url)
    assert await async_client_for_url(redis_url) is here
    assert (await here.ping()) is True

    def in_other_loop() -> object:
        async def build() -> object:
            client = await async_client_for_url(redis_url)
            await client.ping()
            await client.aclose()
            return client

        return asyncio.run(build())

    other = await asyncio.to_thread(in_other_loop)
    assert other is not here
    await here.aclose()


@pytest.mark.parametrize("decode_responses", [False, True])
async def test_async_twin_keeps_connection_settings(
    auth_server: EmbeddedRedis, decode_responses: bool
) -> None:
    """The asyncio twin of a user's sync client uses its host, password and decoding."""
    sync = redis.Redis(
        port=auth_server.port, password=PASSWORD, decode_responses=decode_responses, db=0
    )
    twin = async_twin(sync)
    assert isinstance(twin, redis.asyncio.Redis)
    assert async_twin(sync) is twin
    await twin.set("k", "v")
    assert await twin.get("k") == ("v" if decode_responses else b"v")
    history = MemorystoreChatMessageHistory(sync, "twin-session")
    await history.aclear()
    await history.aadd_messages([])
    history.add_user_message("sync write")
    assert [m.content for m in await history.aget_messages()] == ["sync write"]
    await history.aclear()
    await twin.aclose()
    sync.close()


def test_password_urls_work_and_never_show(auth_server: EmbeddedRedis) -> None:
    """A password in the URL authenticates but appears in no repr or error."""
    url = f"redis://:{PASSWORD}@127.0.0.1:{auth_server.port}/0"
    history = RedisChatMessageHistory("secret-session", url=url)
    history.add_user_message("hi")
    assert [m.content for m in history.messages] == ["hi"]
    store = ChatHistoryStore(url=url)
    for shown in (repr(history), str(history), repr(store), repr(history.store),
                  repr(ChatHistoryStore(redis.Redis.from_url(url))),
                  repr(AsyncChatHistoryStore(url=url))):  # fmt: skip
        assert PASSWORD not in shown, shown
    bad_url = f"redis://:wrong-{PASSWORD}@127.0.0.1:{auth_server.port}/0"
    with pytest.raises(redis.AuthenticationError) as caught:
        RedisChatMessageHistory("s", url=bad_url).messages  # noqa: B018
    assert PASSWORD not in str(caught.value)
    history.clear()


@pytest.mark.parametrize("tls", [False, True])
async def test_async_twin_of_a_sentinel_managed_client(tls: bool) -> None:
    """A client from Sentinel.master_for / slave_for gets an asyncio twin that asks the same
    sentinels (with their own settings) for the same service, with the data nodes' settings
    (TLS included); nothing connects until it is used."""
    extra: dict[str, Any] = {"ssl": True, "ssl_ca_certs": "/ca.pem"} if tls else {}
    manager = redis.sentinel.Sentinel(
        [("127.0.0.1", 26379), ("127.0.0.2", 26380)],
        sentinel_kwargs={"password": "sentinel-secret", **extra},
        password="data-secret", socket_timeout=3, **extra,
    )  # fmt: skip
    try:
        twin = async_twin(manager.master_for("mymaster"))
        pool = twin.connection_pool
        assert isinstance(pool, redis.asyncio.sentinel.SentinelConnectionPool)
        assert pool.service_name == "mymaster" and pool.is_master
        expected = "SentinelManagedSSLConnection" if tls else "SentinelManagedConnection"
        assert pool.connection_class.__name__ == expected
        assert pool.connection_kwargs["password"] == "data-secret"
        assert pool.connection_kwargs["socket_timeout"] == 3
        sentinels = [s.connection_pool for s in pool.sentinel_manager.sentinels]
        assert [(p.connection_kwargs["host"], p.connection_kwargs["port"]) for p in sentinels] == [
            ("127.0.0.1", 26379), ("127.0.0.2", 26380),
        ]  # fmt: skip
        assert all(p.connection_kwargs["password"] == "sentinel-secret" for p in sentinels)
        assert all(
            issubclass(p.connection_class, redis.asyncio.SSLConnection) is tls for p in sentinels
        )
        assert not async_twin(manager.slave_for("mymaster")).connection_pool.is_master
    finally:
        await aclose_shared_clients()


@pytest.mark.parametrize("value", ["false", "False", "0"])
def test_host_name_checks_turned_off_in_the_url_are_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, value: str
) -> None:
    """``ssl_check_hostname=false`` (a string in a URL) turns host name checking off on a real
    TLS connection, and the warning the README promises is logged."""
    with tls_server(tmp_path) as server:
        url = (f"rediss://127.0.0.1:{server.port}/0?ssl_ca_certs={server.ca_file}"
               f"&ssl_check_hostname={value}")  # fmt: skip
        with caplog.at_level(logging.WARNING, logger="redis_chat_history"):
            store = ChatHistoryStore(url=url, retry_deadline=0)
            assert store.count("s") == 0
        assert store.client.connection_pool.make_connection().check_hostname is False
        close_shared_clients()
    warned = [r.getMessage() for r in caplog.records if "TLS verification is OFF" in r.getMessage()]
    assert len(warned) == 1 and f"ssl_check_hostname={value}" in warned[0], warned


def test_the_url_client_cache_is_bounded_and_closes_what_it_drops(redis_url: str) -> None:
    """A rotating URL (here a client name per tenant) keeps at most MAX_SHARED_CLIENTS
    clients; dropped ones close their connections, and the newest still work."""
    close_shared_clients()
    admin = redis.Redis.from_url(redis_url)
    before = len(admin.client_list())
    separator = "&" if "?" in redis_url else "?"
    urls = [f"{redis_url}{separator}cluster=no&client_name=tenant{n}" for n in range(100)]
    for url in urls:
        assert ChatHistoryStore(url=url).count("s") == 0
    names = [c["name"] for c in admin.client_list() if c["name"].startswith("tenant")]
    assert len(names) <= MAX_SHARED_CLIENTS, len(names)
    assert len(admin.client_list()) - before <= MAX_SHARED_CLIENTS
    assert set(names) >= {f"tenant{n}" for n in range(100 - MAX_SHARED_CLIENTS // 2, 100)}
    close_shared_clients()
    admin.close()


def test_each_asyncio_run_closes_what_it_made(redis_url: str) -> None:
    """The README's async snippets (a store from a URL, a LangChain history from a URL, the
    asyncio twin of a sync client), each in its own asyncio.run(), 20 times: no connection
    is left open and nothing warns, with every warning an error."""
    script = Path(__file__).with_name("readme_async_snippets.py")
    result = subprocess.run(
        [sys.executable, "-W", "error", str(script), redis_url, "20"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Warning" not in result.stderr and "Exception ignored" not in result.stderr, (
        result.stderr[-2000:]
    )
    assert int(result.stdout) == 1  # only the connection that counted


async def test_the_async_url_client_cache_is_bounded(redis_url: str) -> None:
    """Per event loop, at most MAX_SHARED_CLIENTS URL clients are kept; dropped ones are
    closed, and a store whose client was dropped still works (it gets a fresh one)."""
    admin = redis.Redis.from_url(redis_url)
    separator = "&" if "?" in redis_url else "?"
    urls = [f"{redis_url}{separator}cluster=no&client_name=atenant{n}" for n in range(100)]
    first = AsyncChatHistoryStore(url=urls[0])
    for url in urls:
        assert await AsyncChatHistoryStore(url=url).count("s") == 0
    names = [c["name"] for c in admin.client_list() if c["name"].startswith("atenant")]
    assert len(names) <= MAX_SHARED_CLIENTS, len(names)
    assert await first.append("s", [{"type": "human", "data": {"content": "x"}}]) == 1
    await aclose_shared_clients()
    assert not [c for c in admin.client_list() if c["name"].startswith("atenant")]
    admin.close()


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".")[:2])


def _server_counts(admin: redis.Redis) -> Callable[[], tuple[int, int]]:
    """A function giving the connections the server accepted and the INFO commands it ran
    since it was made (less its own INFO calls)."""

    def read() -> tuple[int, int]:
        connections = admin.info("stats")["total_connections_received"]
        return connections, admin.info("commandstats")["cmdstat_info"]["calls"]

    connections, infos = read()
    readings = [0]

    def since() -> tuple[int, int]:
        readings[0] += 1
        now_connections, now_infos = read()
        return now_connections - connections, now_infos - infos - 2 * readings[0]

    return since


async def test_concurrent_first_uses_on_one_loop_build_one_client(redis_url: str) -> None:
    """50 tasks asking for a URL's client at once await one build: one client, one INFO
    (the cluster probe), and its connection is the first the client uses, so 50 concurrent
    commands open 50 connections in all."""
    admin = redis.Redis.from_url(redis_url)
    url = f"{redis_url}?client_name=single-flight"
    since = _server_counts(admin)
    clients = await asyncio.gather(*(async_client_for_url(url) for _ in range(50)))
    assert all(client is clients[0] for client in clients)
    assert since() == (1, 1)
    assert await asyncio.gather(*(client.ping() for client in clients)) == [True] * 50
    assert since() == (50, 1)
    await aclose_shared_clients()
    admin.close()


def test_concurrent_first_uses_from_threads_build_one_client(redis_url: str) -> None:
    """Threads asking for a URL's client at once wait for one build (one INFO)."""
    admin = redis.Redis.from_url(redis_url)
    url = f"{redis_url}?client_name=single-flight-threads"
    since = _server_counts(admin)
    start = threading.Barrier(8)
    got: list[object] = []

    def ask() -> None:
        start.wait()
        got.append(client_for_url(url))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(got) == 8 and all(client is got[0] for client in got)
    assert since() == (1, 1)
    close_shared_clients()
    admin.close()


async def test_a_failed_build_fails_its_waiters_and_the_next_call_tries_again() -> None:
    """While the server rejects the URL's password, every task waiting for the build gets
    the error from one attempt (one connection); once the password is right, the next
    call builds the client, sync and async alike."""
    with EmbeddedRedis(extra_args=["--requirepass", PASSWORD]) as server:
        admin = server.client(password=PASSWORD)
        url = f"redis://:later-{PASSWORD}@127.0.0.1:{server.port}/0"
        since = _server_counts(admin)
        outcomes = await asyncio.gather(
            *(async_client_for_url(url) for _ in range(10)), return_exceptions=True
        )
        assert all(isinstance(outcome, AuthenticationError) for outcome in outcomes), outcomes
        assert since()[0] == 1
        with pytest.raises(AuthenticationError):
            client_for_url(url)
        admin.config_set("requirepass", f"later-{PASSWORD}")
        client = await async_client_for_url(url)
        assert await client.ping() is True
        assert await async_client_for_url(url) is client
        assert client_for_url(url).ping() is True
        await aclose_shared_clients()
        close_shared_clients()
        admin.close()


async def test_new_connections_read_no_package_metadata(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Connections of URL clients and of asyncio twins announce the library with versions
    known up front: opening them reads no installed-package metadata (redis-py would, per
    connection in 8.0, to find its own version for CLIENT SETINFO)."""
    lookups: list[str] = []
    real_version = importlib.metadata.version

    def counted(name: str) -> str:
        lookups.append(name)
        return real_version(name)

    monkeypatch.setattr(importlib.metadata, "version", counted)
    cached = getattr(redis.utils.get_lib_version, "cache_clear", None)
    if cached is not None:  # redis-py 8.1+ caches the lookup per process
        cached()
    url = f"{redis_url}?client_name=no-metadata"
    client = await async_client_for_url(url)
    assert await asyncio.gather(*(client.ping() for _ in range(5))) == [True] * 5
    sync = new_sync_client(url)
    connections = [sync.connection_pool.get_connection() for _ in range(3)]
    for connection in connections:
        sync.connection_pool.release(connection)
    plain = redis.Redis.from_url(redis_url)
    twin = async_twin(plain)
    assert await asyncio.gather(*(twin.ping() for _ in range(3))) == [True] * 3
    assert lookups == []
    ours = [c for c in plain.client_list() if c["name"] == "no-metadata"]
    assert lookups == ["redis"]  # the control: plain's first connection looked it up
    if _version(plain.info("server")["redis_version"]) >= (7, 2):  # CLIENT SETINFO
        expected = f"redis-py(redis-chat-history_v{__version__})"
        assert {(c["lib-name"], c["lib-ver"]) for c in ours} == {(expected, redis.__version__)}
    sync.close()
    plain.close()
    await aclose_shared_clients()


def test_retry_parts_reads_redis_py_retry_internals() -> None:
    """retry_parts is the one place that reads redis-py's private Retry fields; this fails
    when redis-py renames them. The asyncio copy of a Retry made from its parts keeps the
    count, the error types and (a copy of) the backoff."""
    backoff = ExponentialBackoff(cap=2, base=0.1)
    errors = (ConnectionError, TimeoutError)
    for retry_class in (redis.retry.Retry, redis.asyncio.retry.Retry):
        retry = retry_class(backoff, 7, errors)
        assert {"_backoff", "_supported_errors"} <= set(vars(retry))
        assert retry_parts(retry) == (backoff, 7, errors, None)
        assert retry_parts(retry_class(NoBackoff(), 0))[1] == 0
    sync_retry = default_retry()
    copied = _async_retry(sync_retry)
    assert isinstance(copied, redis.asyncio.retry.Retry)
    backoff_copy, retries, supported, _checker = retry_parts(copied)
    assert (retries, supported) == retry_parts(sync_retry)[1:3]
    assert type(backoff_copy) is type(retry_parts(sync_retry)[0])
    assert backoff_copy is not retry_parts(sync_retry)[0]


async def test_async_store_client_before_the_first_operation(redis_url: str) -> None:
    """An asyncio store's ``client`` works before any operation made it: it is the URL's
    shared client on this loop, which the operations then use (no second client)."""
    store = AsyncChatHistoryStore(url=f"{redis_url}?client_name=client-first")
    client = store.client
    assert await client.ping()
    await store.append("s", [{"type": "human", "data": {"content": "hi"}}])
    assert store.client is client
    assert await async_client_for_url(f"{redis_url}?client_name=client-first") is client
    await aclose_shared_clients()


def test_later_event_loops_do_not_probe_the_url_again(redis_url: str) -> None:
    """Whether a URL names a cluster is asked once per process: an asyncio.run() per
    request makes its client without another INFO."""
    admin = redis.Redis.from_url(redis_url)
    url = f"{redis_url}?client_name=probe-once"

    async def request() -> None:
        await AsyncChatHistoryStore(url=url).count("s")

    asyncio.run(request())
    since = _server_counts(admin)
    for _ in range(3):
        asyncio.run(request())
    assert since()[1] == 0  # no INFO in the three later loops
    admin.close()
