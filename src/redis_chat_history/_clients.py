"""Building and sharing redis-py clients.

``redis.Redis.from_url`` sets no socket timeout and no retry, and LangChain builds a new
history object per request. Clients made here from a URL get timeouts, keepalive and a
retry policy, and are shared: one per URL per process, and for asyncio one per URL per
event loop. A sync client passed in by the user gets an asyncio twin with the same
connection settings, so async methods use redis.asyncio instead of a thread pool.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import threading
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.connection
import redis.asyncio.retry
import redis.cluster
import redis.connection
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import AuthenticationError
from redis.retry import Retry

T = TypeVar("T")

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_SOCKET_TIMEOUT",
    "async_client_for_url",
    "aclose_shared_clients",
    "async_twin",
    "client_for_url",
    "close_shared_clients",
    "default_retry",
    "redact_url",
]

DEFAULT_SOCKET_TIMEOUT = 5.0
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_RETRIES = 10
HEALTH_CHECK_INTERVAL = 30

SyncClient = redis.Redis | redis.cluster.RedisCluster
AsyncClient = redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster


def _retryable(error: Exception, also: Callable[[Exception], bool] | None) -> bool:
    # AuthenticationError is a ConnectionError, but retrying cannot fix a wrong password.
    return not isinstance(error, AuthenticationError) and (also is None or also(error))


class _Retry(Retry):
    """redis-py's Retry, except that a rejected password fails at once."""

    def call_with_retry(
        self,
        do: Callable[[], T],
        fail: Callable[..., Any],
        is_retryable: Callable[[Exception], bool] | None = None,
        with_failure_count: bool = False,
    ) -> T:
        return super().call_with_retry(
            do, fail, lambda error: _retryable(error, is_retryable), with_failure_count
        )


class _AsyncRetry(redis.asyncio.retry.Retry):
    """The asyncio twin of :class:`_Retry`."""

    async def call_with_retry(
        self,
        do: Callable[[], Awaitable[T]],
        fail: Callable[..., Any],
        is_retryable: Callable[[Exception], bool] | None = None,
        with_failure_count: bool = False,
    ) -> T:
        return await super().call_with_retry(
            do, fail, lambda error: _retryable(error, is_retryable), with_failure_count
        )


def default_retry() -> Retry:
    """redis-py's own default for ``Redis()`` (10 retries, jittered backoff from 10 ms to
    1 s on connection errors and timeouts), minus retrying a rejected password."""
    return _Retry(ExponentialWithJitterBackoff(base=0.01, cap=1), DEFAULT_RETRIES)


def _url_options() -> dict[str, Any]:
    return {
        "socket_timeout": DEFAULT_SOCKET_TIMEOUT,
        "socket_connect_timeout": DEFAULT_CONNECT_TIMEOUT,
        "socket_keepalive": True,
        "health_check_interval": HEALTH_CHECK_INTERVAL,
    }


def redact_url(url: str) -> str:
    """``url`` with any password (userinfo or ``password=`` query) replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    shown = url
    if "@" in parts.netloc:
        userinfo, host = parts.netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{host}" if ":" in userinfo else f"{user}@{host}"
        shown = shown.replace(parts.netloc, netloc, 1)
    if parts.query:
        query = "&".join(
            f"{item.split('=', 1)[0]}=***" if item.split("=", 1)[0].lower() == "password" else item
            for item in parts.query.split("&")
        )
        shown = shown.replace("?" + parts.query, "?" + query, 1)
    return shown


_sync_lock = threading.Lock()
_sync_clients: dict[str, redis.Redis] = {}


def client_for_url(url: str) -> redis.Redis:
    """The process-wide shared client for ``url`` (created on first use, no I/O)."""
    client = _sync_clients.get(url)
    if client is None:
        with _sync_lock:
            client = _sync_clients.get(url)
            if client is None:
                client = redis.Redis.from_url(url, retry=default_retry(), **_url_options())
                _sync_clients[url] = client
    return client


_async_lock = threading.Lock()
# event loop -> {cache key -> client}; entries vanish with their loop.
_async_clients: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[str, redis.asyncio.Redis]
] = weakref.WeakKeyDictionary()


def async_client_for_url(url: str) -> redis.asyncio.Redis:
    """The shared asyncio client for ``url`` on the running event loop."""
    loop = asyncio.get_running_loop()
    with _async_lock:
        clients = _async_clients.setdefault(loop, {})
        client = clients.get(url)
        if client is None:
            client = clients[url] = redis.asyncio.Redis.from_url(
                url, retry=_async_retry(default_retry()), **_url_options()
            )
    return client


def _async_retry(retry: Any) -> redis.asyncio.retry.Retry | None:
    if retry is None:
        return None
    twin = _AsyncRetry if isinstance(retry, _Retry) else redis.asyncio.retry.Retry
    return twin(copy.deepcopy(retry._backoff), retry._retries, retry._supported_errors)


_CONNECTION_TWINS: dict[type, type] = {
    redis.connection.Connection: redis.asyncio.connection.Connection,
    redis.connection.SSLConnection: redis.asyncio.connection.SSLConnection,
    redis.connection.UnixDomainSocketConnection: (
        redis.asyncio.connection.UnixDomainSocketConnection
    ),
}


def _accepted(cls: type) -> set[str]:
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is not None:
            names.update(inspect.signature(init).parameters)
    return names - {"self", "args", "kwargs"}


def _twin_kwargs(kwargs: dict[str, Any], async_cls: type) -> dict[str, Any]:
    accepted = _accepted(async_cls)
    out = {name: value for name, value in kwargs.items() if name in accepted}
    if "retry" in out:
        out["retry"] = _async_retry(out["retry"])
    return out


def _build_twin(client: SyncClient) -> AsyncClient:
    if isinstance(client, redis.cluster.RedisCluster):
        node = client.get_default_node() or client.get_primaries()[0]
        node_pool = node.redis_connection.connection_pool
        kwargs = _twin_kwargs(dict(node_pool.connection_kwargs), redis.asyncio.cluster.RedisCluster)
        for name in ("host", "port", "db", "startup_nodes"):
            kwargs.pop(name, None)
        if issubclass(node_pool.connection_class, redis.connection.SSLConnection):
            kwargs["ssl"] = True
        nodes = [redis.asyncio.cluster.ClusterNode(n.host, n.port) for n in client.get_primaries()]
        return redis.asyncio.cluster.RedisCluster(startup_nodes=nodes, **kwargs)
    pool = client.connection_pool
    async_cls = _CONNECTION_TWINS.get(pool.connection_class)
    if async_cls is None:
        raise TypeError(
            f"cannot derive an asyncio client from connections of type "
            f"{pool.connection_class.__name__}; pass async_client= explicitly"
        )
    kwargs = _twin_kwargs(dict(pool.connection_kwargs), async_cls)
    async_pool = redis.asyncio.ConnectionPool(
        connection_class=async_cls, max_connections=pool.max_connections, **kwargs
    )
    return redis.asyncio.Redis.from_pool(async_pool)


# event loop -> {sync client -> its asyncio twin}; both levels are weak.
_twins: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, weakref.WeakKeyDictionary[Any, AsyncClient]
] = weakref.WeakKeyDictionary()


def async_twin(client: SyncClient) -> AsyncClient:
    """An asyncio client with ``client``'s connection settings, shared per event loop."""
    loop = asyncio.get_running_loop()
    with _async_lock:
        twins = _twins.setdefault(loop, weakref.WeakKeyDictionary())
        twin = twins.get(client)
        if twin is None:
            twin = twins[client] = _build_twin(client)
    return twin


def close_shared_clients() -> None:
    """Close the process-wide clients made from URLs (they reconnect if used again)."""
    with _sync_lock:
        clients = list(_sync_clients.values())
        _sync_clients.clear()
    for client in clients:
        client.close()


async def aclose_shared_clients() -> None:
    """Close the asyncio clients this package made for the running event loop: the ones
    made from URLs and the twins of sync clients. Call it before the loop ends (e.g. at
    application shutdown) so no connection is left for the garbage collector."""
    loop = asyncio.get_running_loop()
    with _async_lock:
        clients: list[AsyncClient] = list(_async_clients.pop(loop, {}).values())
        clients += list(_twins.pop(loop, {}).values())
    for client in clients:
        if isinstance(client, redis.asyncio.Redis):
            await client.aclose(close_connection_pool=True)
        else:
            await client.aclose()
