"""Both drivers for classes that serve the sync and the async API at once (the LangGraph
saver and store): LangGraph may call ``get_state`` on an async checkpointer or ``ainvoke``
on a sync one, so each needs a sync and an async driver over the same server, whichever
client the user gave."""

from __future__ import annotations

import asyncio
from typing import Any

import redis
import redis.asyncio
import redis.cluster

from ._async_driver import AsyncDriver
from ._clients import AsyncClient, SyncClient, async_twin, redact_url
from ._sync_driver import SyncDriver
from .errors import InvalidOptionError
from .settings import StoreSettings

__all__ = ["TwinDriven", "TwinDrivers"]


class TwinDrivers:
    """A URL's shared clients, or the user's client and its twin for the other API (an
    asyncio twin of a sync client; an asyncio client alone has no sync side)."""

    def __init__(self, settings: StoreSettings, conn: Any, what: str) -> None:
        """``conn``: a URL or a redis-py client (sync, asyncio, or cluster); ``what``
        names the caller's object in errors ("saver", "store")."""
        self._settings = settings
        self._what = what
        self.url: str | None = None
        self._given_sync: SyncClient | None = None
        self._given_async: AsyncClient | None = None
        if isinstance(conn, str):
            self.url = conn
        elif isinstance(conn, (redis.Redis, redis.cluster.RedisCluster)):
            self._given_sync = conn
        elif isinstance(conn, (redis.asyncio.Redis, redis.asyncio.RedisCluster)):
            self._given_async = conn
        else:
            raise InvalidOptionError(
                f"expected a redis-py client or a URL, not {type(conn).__name__}"
            )
        self._sync: SyncDriver | None = None
        self._async: tuple[asyncio.AbstractEventLoop, AsyncDriver] | None = None

    def shown(self) -> str:
        """Where it connects, for reprs: the URL without its password, or "client"."""
        return repr(redact_url(self.url)) if self.url is not None else "client"

    def sync(self) -> SyncDriver:
        """The sync driver (made on first use)."""
        if self._sync is None:
            if self.url is not None:
                self._sync = SyncDriver.with_settings(self._settings, url=self.url)
            elif self._given_sync is not None:
                self._sync = SyncDriver.with_settings(self._settings, client=self._given_sync)
            else:
                raise InvalidOptionError(
                    f"the sync API of a {self._what} over an asyncio client needs a URL or "
                    "a sync client"
                )
        return self._sync

    def for_loop(self) -> AsyncDriver:
        """The async driver of the running event loop (a new one per loop)."""
        loop = asyncio.get_running_loop()
        if self._async is None or self._async[0] is not loop:
            if self.url is not None:
                driver = AsyncDriver.with_settings(self._settings, url=self.url)
            elif self._given_async is not None:
                driver = AsyncDriver.with_settings(self._settings, client=self._given_async)
            else:
                assert self._given_sync is not None
                twin = async_twin(self._given_sync)
                driver = AsyncDriver.with_settings(self._settings, client=twin)
            self._async = (loop, driver)
        return self._async[1]


class TwinDriven:
    """What the LangGraph saver and store share on top of :class:`TwinDrivers`: their
    drivers, and the ``setup`` langgraph-checkpoint-redis's classes have."""

    _drivers: TwinDrivers

    def _sync_driver(self) -> SyncDriver:
        return self._drivers.sync()

    def _async_driver(self) -> AsyncDriver:
        return self._drivers.for_loop()

    def setup(self) -> None:
        """Nothing to create (no indexes); kept for langgraph-checkpoint-redis's API."""

    async def asetup(self) -> None:
        """Async twin of :meth:`setup`."""
