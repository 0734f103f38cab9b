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
import logging
import threading
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.connection
import redis.asyncio.retry
import redis.asyncio.sentinel
import redis.cluster
import redis.connection
import redis.sentinel
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import (
    AuthenticationError,
    ClusterError,
    ConnectionError,
    ResponseError,
    TimeoutError,
    TryAgainError,
)
from redis.retry import Retry

from .urls import ParsedUrl, SentinelTarget, parse_url, warn_if_unverified

T = TypeVar("T")
logger = logging.getLogger("redis_chat_history")

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_SOCKET_TIMEOUT",
    "async_client_for_url",
    "aclose_shared_clients",
    "async_twin",
    "cached_async_client",
    "client_for_url",
    "close_shared_clients",
    "default_retry",
    "is_transient",
    "redact_url",
]

DEFAULT_SOCKET_TIMEOUT = 5.0
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_RETRIES = 10
HEALTH_CHECK_INTERVAL = 30

SyncClient = redis.Redis | redis.cluster.RedisCluster
AsyncClient = redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster


# Errors after which a whole plan is sent again until the store's retry deadline.
# ClusterError covers CLUSTERDOWN and "TTL exhausted" (redirections that outlasted the
# client's own retries, e.g. TRYAGAIN while a slot migrates).
TRANSIENT_ERRORS = (ConnectionError, TimeoutError, ClusterError, TryAgainError)


def is_transient(error: BaseException) -> bool:
    """A connection loss, timeout or cluster reconfiguration, but not a rejected password."""
    return isinstance(error, TRANSIENT_ERRORS) and not isinstance(error, AuthenticationError)


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


def _direct_options(parsed: ParsedUrl, shown: str) -> dict[str, Any]:
    query = dict(parse_qsl(urlsplit(parsed.url).query))
    warn_if_unverified(shown, query)
    return _url_options()


def _sentinel_settings(target: SentinelTarget, shown: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Connection settings for the master and for the sentinels themselves."""
    connection = {**_url_options(), **target.options}
    tls = {name: value for name, value in connection.items() if name.startswith("ssl_")}
    if target.ssl:
        warn_if_unverified(shown, connection)
    master = {
        **connection, "db": target.db, "username": target.username,
        "password": target.password, "ssl": target.ssl,
    }  # fmt: skip
    sentinels = {
        name: value for name, value in connection.items() if name.startswith("socket_")
    } | ({"ssl": True, **tls} if target.ssl else {})
    if target.sentinel_password:
        sentinels["password"] = target.sentinel_password
    return master, sentinels


def _probe_is_cluster(info: dict[str, Any]) -> bool:
    return str(info.get("cluster_enabled", 0)) == "1"


def _build_sync(url: str) -> SyncClient:
    parsed, shown = parse_url(url), redact_url(url)
    if parsed.sentinel is not None:
        target = parsed.sentinel
        master, sentinels = _sentinel_settings(target, shown)
        manager = redis.sentinel.Sentinel(
            list(target.sentinels), sentinel_kwargs=sentinels, retry=default_retry(), **master
        )
        master_client: redis.Redis = manager.master_for(target.service)
        return master_client
    options = _direct_options(parsed, shown)
    cluster = parsed.cluster
    if cluster is None:
        cluster = _detect_cluster(parsed.url, options)
    if cluster:
        return redis.cluster.RedisCluster.from_url(parsed.url, **options)
    return redis.Redis.from_url(parsed.url, retry=default_retry(), **options)


def _detect_cluster(url: str, options: dict[str, Any]) -> bool:
    """Ask the server once whether it runs in cluster mode (INFO cluster)."""
    with redis.Redis.from_url(url, retry=default_retry(), **options) as probe:
        try:
            return _probe_is_cluster(probe.info("cluster"))
        except ResponseError as exc:  # INFO denied (ACL) or renamed: assume a plain server
            logger.info("cannot tell if %s is a cluster (%s); assuming it is not",
                        redact_url(url), exc)  # fmt: skip
            return False


_sync_lock = threading.Lock()
_sync_clients: dict[str, SyncClient] = {}


def client_for_url(url: str) -> SyncClient:
    """The process-wide shared client for ``url``, made on first use.

    A TCP URL without ``cluster=`` is probed once with ``INFO cluster``; a sentinel URL
    gives a client that follows the current master.
    """
    client = _sync_clients.get(url)
    if client is None:
        with _sync_lock:
            client = _sync_clients.get(url)
            if client is None:
                client = _sync_clients[url] = _build_sync(url)
    return client


_async_lock = threading.Lock()
# event loop -> {url -> client}; entries vanish with their loop.
_async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, AsyncClient]] = (
    weakref.WeakKeyDictionary()
)


async def _build_async(url: str) -> AsyncClient:
    parsed, shown = parse_url(url), redact_url(url)
    if parsed.sentinel is not None:
        target = parsed.sentinel
        master, sentinels = _sentinel_settings(target, shown)
        manager = redis.asyncio.sentinel.Sentinel(
            list(target.sentinels), sentinel_kwargs=sentinels,
            retry=_async_retry(default_retry()), **master,
        )  # fmt: skip
        async_master: redis.asyncio.Redis = manager.master_for(target.service)
        return async_master
    options = _direct_options(parsed, shown)
    cluster = parsed.cluster
    if cluster is None:
        probe = redis.asyncio.Redis.from_url(
            parsed.url, retry=_async_retry(default_retry()), **options
        )
        try:
            cluster = _probe_is_cluster(await probe.info("cluster"))
        except ResponseError as exc:
            logger.info("cannot tell if %s is a cluster (%s); assuming it is not", shown, exc)
            cluster = False
        finally:
            await probe.aclose(close_connection_pool=True)
    if cluster:
        return redis.asyncio.cluster.RedisCluster.from_url(parsed.url, **options)
    return redis.asyncio.Redis.from_url(parsed.url, retry=_async_retry(default_retry()), **options)


def cached_async_client(url: str) -> AsyncClient | None:
    """The shared asyncio client for ``url`` on the running loop, if one was made."""
    with _async_lock:
        return _async_clients.get(asyncio.get_running_loop(), {}).get(url)


async def async_client_for_url(url: str) -> AsyncClient:
    """The shared asyncio client for ``url`` on the running event loop, made on first use."""
    client = cached_async_client(url)
    if client is not None:
        return client
    built = await _build_async(url)
    loop = asyncio.get_running_loop()
    with _async_lock:
        clients = _async_clients.setdefault(loop, {})
        client = clients.setdefault(url, built)
    if client is not built:  # another task won the race
        await built.aclose()
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
    if isinstance(pool, redis.sentinel.SentinelConnectionPool):
        return _sentinel_twin(pool)
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


def _sentinel_twin(pool: redis.sentinel.SentinelConnectionPool) -> redis.asyncio.Redis:
    """An asyncio client asking the same sentinels for the same service (master or replica),
    with the same connection settings for the sentinels and for the data nodes."""
    manager = pool.sentinel_manager
    addresses = [
        (sentinel.connection_pool.connection_kwargs["host"],
         sentinel.connection_pool.connection_kwargs["port"])
        for sentinel in manager.sentinels
    ]  # fmt: skip
    ssl = issubclass(pool.connection_class, redis.connection.SSLConnection)
    data_cls = (
        redis.asyncio.sentinel.SentinelManagedSSLConnection
        if ssl
        else redis.asyncio.sentinel.SentinelManagedConnection
    )
    data_kwargs = _twin_kwargs(dict(manager.connection_kwargs), data_cls)
    sentinel_cls = (
        redis.asyncio.connection.SSLConnection
        if manager.sentinel_kwargs.get("ssl")
        else redis.asyncio.connection.Connection
    )
    sentinel_kwargs = _twin_kwargs(dict(manager.sentinel_kwargs), sentinel_cls)
    if "ssl" in manager.sentinel_kwargs:
        sentinel_kwargs["ssl"] = manager.sentinel_kwargs["ssl"]
    twin_manager = redis.asyncio.sentinel.Sentinel(
        addresses, sentinel_kwargs=sentinel_kwargs, **data_kwargs, **({"ssl": True} if ssl else {})
    )
    if pool.is_master:
        master: redis.asyncio.Redis = twin_manager.master_for(pool.service_name)
        return master
    replica: redis.asyncio.Redis = twin_manager.slave_for(pool.service_name)
    return replica


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
        for sentinel in _sentinels_of(client):
            sentinel.close()


def _sentinels_of(client: Any) -> list[Any]:
    """The clients a Sentinel-managed client keeps open to the sentinels themselves."""
    manager = getattr(getattr(client, "connection_pool", None), "sentinel_manager", None)
    return list(manager.sentinels) if manager is not None else []


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
        for sentinel in _sentinels_of(client):
            await sentinel.aclose()
