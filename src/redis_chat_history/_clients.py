"""Building and sharing redis-py clients.

``redis.Redis.from_url`` sets no socket timeout and no retry, and LangChain builds a new
history object per request. Clients made here from a URL get timeouts, keepalive and a
retry policy, and are shared: one per URL per process, and for asyncio one per URL per
event loop, each built once even when many callers ask for it at the same time. A sync
client passed in by the user gets an asyncio twin with the same connection settings, so
async methods use redis.asyncio instead of a thread pool.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import contextvars
import copy
import inspect
import logging
import threading
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar, cast
from urllib.parse import parse_qsl, unquote_plus, urlsplit

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.connection
import redis.asyncio.retry
import redis.asyncio.sentinel
import redis.cluster
import redis.connection
import redis.sentinel
from redis.backoff import AbstractBackoff, ExponentialWithJitterBackoff
from redis.driver_info import DriverInfo
from redis.exceptions import (
    AuthenticationError,
    ClusterError,
    ConnectionError,
    ResponseError,
    TimeoutError,
    TryAgainError,
)
from redis.retry import AbstractRetry, Retry

from ._plan import RetryTimer
from ._version import __version__
from .urls import ParsedUrl, SentinelTarget, parse_url, warn_if_unverified

T = TypeVar("T")
logger = logging.getLogger("redis_chat_history")

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_SOCKET_TIMEOUT",
    "async_client_for_url",
    "async_client_now",
    "aclose_shared_clients",
    "async_twin",
    "cached_async_client",
    "call_budget",
    "client_for_url",
    "close_shared_clients",
    "default_retry",
    "is_transient",
    "new_sync_client",
    "redact_url",
    "retry_parts",
]

DEFAULT_SOCKET_TIMEOUT = 5.0
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_RETRIES = 10
HEALTH_CHECK_INTERVAL = 30

SyncClient = redis.Redis | redis.cluster.RedisCluster
AsyncClient = redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster

# What connections announce with CLIENT SETINFO, given explicitly: otherwise redis-py
# reads its version from the installed package metadata (8.0: for every connection).
_REDIS_PY = DriverInfo(name="redis-py", lib_version=redis.__version__)
_DRIVER_INFO = DriverInfo(name="redis-py", lib_version=redis.__version__).add_upstream_driver(
    "redis-chat-history", __version__
)


# Errors after which a whole plan is sent again until the store's retry deadline.
# ClusterError covers CLUSTERDOWN and "TTL exhausted" (redirections that outlasted the
# client's own retries, e.g. TRYAGAIN while a slot migrates).
TRANSIENT_ERRORS = (ConnectionError, TimeoutError, ClusterError, TryAgainError)


def is_transient(error: BaseException) -> bool:
    """A connection loss, timeout or cluster reconfiguration, but not a rejected password."""
    return isinstance(error, TRANSIENT_ERRORS) and not isinstance(error, AuthenticationError)


# The RetryTimer of the store call running in this thread or task, if any.
_budget: contextvars.ContextVar[RetryTimer | None] = contextvars.ContextVar(
    "redis_chat_history_call_budget", default=None
)


class call_budget:  # noqa: N801 - used as a function: ``with call_budget(timer) as timer:``
    """Bound redis-py's own retries and waits inside the store call by ``timer``'s deadline:
    they stop there, and once an attempt has failed (``timer.failed``) no wait runs past it.
    (A class rather than a generator: it wraps every operation, and this is cheaper.)"""

    __slots__ = ("_timer", "_token")

    def __init__(self, timer: RetryTimer) -> None:
        self._timer = timer

    def __enter__(self) -> RetryTimer:
        self._token = _budget.set(self._timer)
        return self._timer

    def __exit__(self, *exc_info: object) -> None:
        _budget.reset(self._token)


def _retryable(error: Exception, also: Callable[[Exception], bool] | None) -> bool:
    # AuthenticationError is a ConnectionError, but retrying cannot fix a wrong password.
    if isinstance(error, AuthenticationError) or (also is not None and not also(error)):
        return False
    budget = _budget.get()
    if budget is None:
        return True
    budget.failed = True
    return budget.left() > 0


class _BudgetBackoff(AbstractBackoff):
    """A backoff whose waits end at the running store call's deadline."""

    def __init__(self, backoff: AbstractBackoff) -> None:
        self.backoff = backoff

    def reset(self) -> None:
        self.backoff.reset()

    def compute(self, failures: int) -> float:
        budget = _budget.get()
        wait = self.backoff.compute(failures)
        return wait if budget is None else max(0.0, min(wait, budget.left()))


class _Retry(Retry):
    """redis-py's Retry, except that a rejected password fails at once and that, inside a
    store call, retries stop at the call's deadline."""

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
    1 s on connection errors and timeouts), minus retrying a rejected password, and within
    a store call's retry deadline."""
    return _Retry(_BudgetBackoff(ExponentialWithJitterBackoff(base=0.01, cap=1)), DEFAULT_RETRIES)


class _BudgetReads:
    """Mixed into the connection class of clients made from URLs: once an attempt of the
    running store call has failed, a reply is awaited at most until the call's deadline."""

    socket_timeout: float | None

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        budget = _budget.get()
        if budget is not None and budget.failed and "timeout" not in kwargs:
            left = max(budget.left(), 0.01)
            if self.socket_timeout is None or left < self.socket_timeout:
                kwargs["timeout"] = left
        return super().read_response(*args, **kwargs)  # type: ignore[misc]


_budget_classes: dict[type, type] = {}


def _with_budget_reads(pool: Any) -> None:
    cls = pool.connection_class
    if cls not in _budget_classes:
        _budget_classes[cls] = type(cls.__name__, (_BudgetReads, cls), {})
    pool.connection_class = _budget_classes[cls]


def _url_options() -> dict[str, Any]:
    return {
        "socket_timeout": DEFAULT_SOCKET_TIMEOUT,
        "socket_connect_timeout": DEFAULT_CONNECT_TIMEOUT,
        "socket_keepalive": True,
        "health_check_interval": HEALTH_CHECK_INTERVAL,
        "driver_info": _DRIVER_INFO,
    }


# Query options whose value is a secret: password=, sentinel_password=, ssl_password=, ...
_SECRET_OPTION_WORDS = ("password", "passwd", "pwd", "secret", "token", "auth", "credential")


def _is_secret_option(name: str) -> bool:
    decoded = unquote_plus(name).lower()
    return any(word in decoded for word in _SECRET_OPTION_WORDS)


def _query_secrets(text: str, start: int) -> list[tuple[int, int]]:
    """Spans of secret option values in the query that begins after ``text[start]``.

    An item without ``=`` right after a secret one is the rest of that secret (a password
    holding an unencoded ``&``)."""
    spans, position, in_secret = [], start + 1, False
    for item in text[start + 1 :].split("&"):
        name, equals, _value = item.partition("=")
        if equals:
            in_secret = _is_secret_option(name)
            if in_secret:
                spans.append((position + len(name) + 1, position + len(item)))
        elif in_secret and item:
            spans.append((position, position + len(item)))
        position += len(item) + 1
    return spans


def redact_url(url: str) -> str:
    """``url`` with every credential shown as ``***``: the password of the userinfo and any
    query option named like a password, secret or token (``password=``,
    ``sentinel_password=``, ``ssl_password=``, also percent-encoded names).

    It does not rely on urlsplit, which ends the host part at an unencoded ``#``, ``?`` or
    ``/`` in a password. Where a secret ends is not always knowable (a ``?`` before the last
    ``@`` may start the query or be part of the password): every reading is applied, so
    more may be hidden, never less.
    """
    scheme_end = url.find("://")
    begin = scheme_end + 3 if scheme_end >= 0 else 0
    at = url.rfind("@", begin)
    spans: list[tuple[int, int]] = []
    if at >= 0:
        colon = url.find(":", begin, at)
        if colon >= 0:
            spans.append((colon + 1, at))
    for query_start in {url.find("?", begin), url.find("?", max(at, begin))}:
        if query_start >= 0:
            spans += _query_secrets(url, query_start)
    hidden = [False] * len(url)
    for first, last in spans:
        hidden[first:last] = [True] * (last - first)
    shown: list[str] = []
    for position, char in enumerate(url):
        if not hidden[position]:
            shown.append(char)
        elif position == 0 or not hidden[position - 1]:
            shown.append("***")
    return "".join(shown)


def _direct_options(parsed: ParsedUrl, shown: str) -> dict[str, Any]:
    query = dict(parse_qsl(urlsplit(parsed.url).query))
    warn_if_unverified(shown, query)
    options = _url_options()
    if urlsplit(parsed.url).scheme == "unix":  # keepalive is a TCP option
        del options["socket_keepalive"]
    return options


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
    sentinels = (
        {name: value for name, value in connection.items() if name.startswith("socket_")}
        | {"driver_info": connection["driver_info"]}
        | ({"ssl": True, **tls} if target.ssl else {})
    )
    if target.sentinel_password:
        sentinels["password"] = target.sentinel_password
    return master, sentinels


def _probe_is_cluster(info: dict[str, Any]) -> bool:
    return str(info.get("cluster_enabled", 0)) == "1"


def new_sync_client(url: str) -> SyncClient:
    """A new client for ``url``, shared with no one (the CLI's, closed when it ends): our
    timeouts, keepalive, retry policy and, for a TCP URL without ``cluster=``, the cluster
    probe (one INFO, on the connection the client then keeps)."""
    parsed, shown = parse_url(url), redact_url(url)
    if parsed.sentinel is not None:
        target = parsed.sentinel
        master, sentinels = _sentinel_settings(target, shown)
        manager = redis.sentinel.Sentinel(
            list(target.sentinels), sentinel_kwargs={**sentinels, "retry": default_retry()},
            retry=default_retry(), **master,
        )  # fmt: skip
        master_client: redis.Redis = manager.master_for(target.service)
        _with_budget_reads(master_client.connection_pool)
        return master_client
    options = _direct_options(parsed, shown)
    cluster = _known_cluster(url, parsed)
    if cluster:
        return redis.cluster.RedisCluster.from_url(parsed.url, **options)
    client = redis.Redis.from_url(parsed.url, retry=default_retry(), **options)
    _with_budget_reads(client.connection_pool)
    if cluster is None:
        try:
            cluster = _probe(client, shown)
        except BaseException:
            client.close()
            raise
        _remember_cluster(url, cluster)
        if cluster:
            client.close()
            return redis.cluster.RedisCluster.from_url(parsed.url, **options)
    return client


def _probe(client: redis.Redis, shown: str) -> bool:
    """Ask the server whether it runs in cluster mode (INFO cluster)."""
    try:
        return _probe_is_cluster(client.info("cluster"))
    except ResponseError as exc:
        return _not_known(shown, exc)


async def _aprobe(client: redis.asyncio.Redis, shown: str) -> bool:
    """The asyncio twin of :func:`_probe`."""
    try:
        return _probe_is_cluster(await client.info("cluster"))
    except ResponseError as exc:
        return _not_known(shown, exc)


def _not_known(shown: str, exc: ResponseError) -> bool:
    """INFO was denied (ACL) or renamed: assume a plain server."""
    logger.info("cannot tell if %s is a cluster (%s); assuming it is not", shown, exc)
    return False


#: How many clients made from URLs are kept per process (the least recently used beyond
#: that is dropped and its idle connections closed).
MAX_SHARED_CLIENTS = 64

_sync_lock = threading.Lock()
_sync_clients: collections.OrderedDict[str, SyncClient] = collections.OrderedDict()
# URL -> the build in progress in some thread, which the others asking for it wait for.
_sync_builds: dict[str, concurrent.futures.Future[SyncClient]] = {}


def client_for_url(url: str) -> SyncClient:
    """The process-wide shared client for ``url``, made on first use.

    A TCP URL without ``cluster=`` is probed once with ``INFO cluster``; a sentinel URL
    gives a client that follows the current master. Threads asking at the same time wait
    for one build (a failed build fails them all; the next call tries again). At most
    MAX_SHARED_CLIENTS are kept.
    """
    with _sync_lock:
        client = _sync_clients.get(url)
        if client is not None:
            _sync_clients.move_to_end(url)
            return client
        pending = _sync_builds.get(url)
        building = pending is None
        if pending is None:
            pending = _sync_builds[url] = concurrent.futures.Future()
    if not building:
        return pending.result()
    try:
        client = new_sync_client(url)  # outside the lock: it may probe a slow server
    except BaseException as error:
        with _sync_lock:
            del _sync_builds[url]
        pending.set_exception(error)
        raise
    with _sync_lock:
        del _sync_builds[url]
        _sync_clients[url] = client
        dropped = [
            _sync_clients.popitem(last=False)[1]
            for _ in range(len(_sync_clients) - MAX_SHARED_CLIENTS)
        ]
    pending.set_result(client)
    for old in dropped:
        _close_idle(old)
    return client


def _close_idle(client: SyncClient) -> None:
    """Close a dropped client's idle connections. One busy in another thread's call is left
    to finish; it is closed when the dropped client is garbage (redis-py disconnects it)."""
    if isinstance(client, redis.cluster.RedisCluster):
        pools = [
            n.redis_connection.connection_pool for n in client.get_nodes() if n.redis_connection
        ]
    else:
        pools = [client.connection_pool]
    pools += [sentinel.connection_pool for sentinel in _sentinels_of(client)]
    for pool in pools:
        pool.disconnect(inuse_connections=False)


_async_lock = threading.Lock()
# event loop -> {url -> client}, least recently used first; entries vanish with their loop.
_async_clients: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, collections.OrderedDict[str, AsyncClient]
] = weakref.WeakKeyDictionary()
# event loop -> {url -> the task building its client}; an entry leaves when its build ends.
_async_builds: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[str, asyncio.Task[AsyncClient]]
] = weakref.WeakKeyDictionary()


async def _close_at_loop_end() -> AsyncIterator[None]:
    """Suspended for the life of its event loop. ``asyncio.run()`` (like every loop that
    ends with ``shutdown_asyncgens()``) closes it at the end, which closes the clients
    made for that loop, so none is left for the garbage collector."""
    try:
        yield
    finally:
        await aclose_shared_clients()


def _watch_loop() -> None:
    """Make sure the running loop closes what we make for it when it ends. (A loop that
    takes no attributes gets no guard: close its clients with aclose_shared_clients().)"""
    loop = asyncio.get_running_loop()
    if getattr(loop, "_redis_chat_history_guard", None) is not None:
        return
    guard = _close_at_loop_end()
    try:  # the loop holds its guard: a cycle the garbage collector can take with the loop
        loop._redis_chat_history_guard = guard  # type: ignore[attr-defined]
    except AttributeError:
        return
    # Run it to its yield now (it awaits nothing before): the loop's first-iteration
    # hook registers it for shutdown_asyncgens().
    with contextlib.suppress(StopIteration):
        guard.__anext__().send(None)  # type: ignore[attr-defined]


async def _aclose(client: Any) -> None:
    """Close an asyncio client we made, with its pool and any sentinel connections."""
    if isinstance(client, redis.asyncio.Redis):
        await client.aclose(close_connection_pool=True)
    else:
        await client.aclose()
    for sentinel in _sentinels_of(client):
        await sentinel.aclose()


def _make_async(parsed: ParsedUrl, shown: str, cluster: bool) -> AsyncClient:
    """An asyncio client for a parsed URL (no I/O: connections open on first use)."""
    if parsed.sentinel is not None:
        target = parsed.sentinel
        master, sentinels = _sentinel_settings(target, shown)
        manager = redis.asyncio.sentinel.Sentinel(
            list(target.sentinels),
            sentinel_kwargs={**sentinels, "retry": _async_retry(default_retry())},
            retry=_async_retry(default_retry()), **master,
        )  # fmt: skip
        async_master: redis.asyncio.Redis = manager.master_for(target.service)
        return async_master
    options = _direct_options(parsed, shown)
    if cluster:
        return redis.asyncio.cluster.RedisCluster.from_url(parsed.url, **options)
    return redis.asyncio.Redis.from_url(parsed.url, retry=_async_retry(default_retry()), **options)


def _known_cluster(url: str, parsed: ParsedUrl) -> bool | None:
    """Whether the URL names a cluster, if known without asking the server."""
    if parsed.sentinel is not None:
        return False
    return parsed.cluster if parsed.cluster is not None else _cluster_urls.get(url)


async def _build_async(url: str) -> AsyncClient:
    parsed, shown = parse_url(url), redact_url(url)
    cluster = _known_cluster(url, parsed)
    if cluster is not None:
        return _make_async(parsed, shown, cluster)
    client = _make_async(parsed, shown, False)
    try:
        cluster = await _aprobe(cast("redis.asyncio.Redis", client), shown)
    except BaseException:
        await _aclose(client)
        raise
    _remember_cluster(url, cluster)
    if cluster:
        await _aclose(client)
        return _make_async(parsed, shown, True)
    return client


# Whether each URL without cluster= named a cluster, once probed: later event loops (an
# asyncio.run() per request, say) make their client without asking again.
_cluster_urls: dict[str, bool] = {}


def _remember_cluster(url: str, cluster: bool) -> None:
    if len(_cluster_urls) >= 1024:
        _cluster_urls.clear()
    _cluster_urls[url] = cluster


def async_client_now(url: str) -> AsyncClient:
    """The shared asyncio client for ``url`` on the running loop, made now if there is
    none yet, without awaiting: whether an unprobed TCP URL names a cluster is then
    learned with a blocking INFO (once per process, through the sync client)."""
    loop = asyncio.get_running_loop()
    cached = cached_async_client(url)
    if cached is not None:
        return cached
    parsed = parse_url(url)
    cluster = _known_cluster(url, parsed)
    if cluster is None:
        cluster = isinstance(client_for_url(url), redis.cluster.RedisCluster)
        _remember_cluster(url, cluster)
    _watch_loop()
    client, dropped = _keep(loop, url, _make_async(parsed, redact_url(url), cluster))
    for old in dropped:  # closed in the background: this function cannot await
        closing = loop.create_task(_aclose(old))
        _closing.add(closing)
        closing.add_done_callback(_closing.discard)
    return client


# Closes of dropped clients still running (asyncio keeps only weak references to tasks).
_closing: set[asyncio.Task[None]] = set()


def cached_async_client(url: str) -> AsyncClient | None:
    """The shared asyncio client for ``url`` on the running loop, if one was made."""
    with _async_lock:
        clients = _async_clients.get(asyncio.get_running_loop())
        return None if clients is None else clients.get(url)


async def async_client_for_url(url: str) -> AsyncClient:
    """The shared asyncio client for ``url`` on the running event loop, made on first use.

    Tasks asking at the same time await one build (a failed build fails them all; the
    next call tries again). At most MAX_SHARED_CLIENTS are kept per loop; a dropped one is
    closed (a call still using it fails with a connection error, which the stores retry
    on a fresh client). All are closed when the loop ends through ``asyncio.run()``."""
    loop = asyncio.get_running_loop()
    with _async_lock:
        clients = _async_clients.get(loop)
        client = None if clients is None else clients.get(url)
        if clients is not None and client is not None:
            clients.move_to_end(url)
            return client
        builds = _async_builds.setdefault(loop, {})
        build = builds.get(url)
        if build is None:
            build = builds[url] = loop.create_task(_build_shared(loop, url))
            build.add_done_callback(_retrieve)
    _watch_loop()
    # A waiter that is cancelled leaves the build running for the others.
    return await asyncio.shield(build)


async def _build_shared(loop: asyncio.AbstractEventLoop, url: str) -> AsyncClient:
    """Build the client for ``url`` on ``loop`` and keep it (the task all callers await)."""
    try:
        built = await _build_async(url)
    finally:  # nothing awaits between this and _keep: no caller sees neither
        with _async_lock:
            _async_builds.get(loop, {}).pop(url, None)
    client, dropped = _keep(loop, url, built)
    for old in dropped:
        await _aclose(old)
    return client


def _keep(
    loop: asyncio.AbstractEventLoop, url: str, built: AsyncClient
) -> tuple[AsyncClient, list[AsyncClient]]:
    """Keep ``built`` as the URL's client on the loop, unless one is there already; return
    the client kept and those to close (``built`` if not kept, the least recently used
    beyond MAX_SHARED_CLIENTS)."""
    with _async_lock:
        clients = _async_clients.setdefault(loop, collections.OrderedDict())
        client = clients.setdefault(url, built)
        clients.move_to_end(url)
        dropped = [clients.popitem(last=False)[1] for _ in range(len(clients) - MAX_SHARED_CLIENTS)]
    return client, dropped if client is built else [*dropped, built]


def _retrieve(build: asyncio.Task[AsyncClient]) -> None:
    """Mark a failed build's error as seen, so asyncio does not log it as never retrieved
    when every caller waiting for it was cancelled."""
    if not build.cancelled():
        build.exception()


def retry_parts(
    retry: AbstractRetry[Exception],
) -> tuple[AbstractBackoff, int, tuple[type[Exception], ...], Callable[[Exception], bool] | None]:
    """A redis-py Retry's backoff, retry count, retried error types and extra checker.

    redis-py has getters for the count and (from 8.1) the checker only; the backoff and
    the error types are its private ``_backoff`` and ``_supported_errors``, read here and
    nowhere else (test_clients.py fails if redis-py renames them)."""
    checker = getattr(retry, "is_retryable", None)
    return retry._backoff, retry.get_retries(), tuple(retry._supported_errors), checker


def _async_retry(retry: AbstractRetry[Exception] | None) -> redis.asyncio.retry.Retry | None:
    """The asyncio Retry doing what the sync ``retry`` does."""
    if retry is None:
        return None
    backoff, retries, errors, checker = retry_parts(retry)
    twin = _AsyncRetry if isinstance(retry, _Retry) else redis.asyncio.retry.Retry
    extra = {} if checker is None else {"is_retryable": checker}
    return twin(copy.deepcopy(backoff), retries, errors, **extra)


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
    if "driver_info" in accepted and not {"driver_info", "lib_name", "lib_version"} & set(out):
        out["driver_info"] = _REDIS_PY  # redis-py's default, without the metadata lookup
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
    # The first known class up the MRO: URL clients use a subclass (_BudgetReads).
    async_cls = next(
        (_CONNECTION_TWINS[k] for k in pool.connection_class.__mro__ if k in _CONNECTION_TWINS),
        None,
    )
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
    if ssl:
        data_kwargs["ssl"] = True
    twin_manager = redis.asyncio.sentinel.Sentinel(
        addresses, sentinel_kwargs=sentinel_kwargs, **data_kwargs
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
    """An asyncio client with ``client``'s connection settings, shared per event loop and
    closed when the loop ends through ``asyncio.run()`` (see _close_at_loop_end)."""
    loop = asyncio.get_running_loop()
    _watch_loop()
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
    made from URLs and the twins of sync clients. ``asyncio.run()`` does this by itself
    when its loop ends; call it yourself before a loop you manage ends."""
    loop = asyncio.get_running_loop()
    with _async_lock:
        clients: list[AsyncClient] = list(_async_clients.pop(loop, {}).values())
        clients += list(_twins.pop(loop, {}).values())
    for client in clients:
        await _aclose(client)
