"""AsyncChatHistoryStore: the asyncio twin of :class:`~redis_chat_history.ChatHistoryStore`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, TypeVar

import redis.asyncio
import redis.asyncio.cluster
from redis.exceptions import NoScriptError, RedisError, ResponseError

from . import _core
from ._clients import async_client_for_url, cached_async_client, is_transient, redact_url
from .codec import DEFAULT_MAX_MESSAGE_BYTES, Record
from .durability import Durability, DurabilityUnsupportedError, resolve_durability
from .errors import InvalidOptionError
from .layouts import Layout

__all__ = ["AsyncChatHistoryStore"]

T = TypeVar("T")
AsyncClient = redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster


def _text(key: bytes | str) -> str:
    return key.decode("utf-8", "surrogateescape") if isinstance(key, bytes) else key


class AsyncChatHistoryStore:
    """The asyncio twin of ChatHistoryStore: same methods, awaited.

    Pass a ``redis.asyncio`` client (``Redis`` or ``RedisCluster``) or ``url=``; URL
    clients are shared per URL and event loop and get timeouts and a retry policy.
    Appends are atomic and exactly-once even when redis-py retries them.
    """

    def __init__(
        self,
        client: AsyncClient | None = None,
        *,
        url: str | None = None,
        layout: Layout | str = "native",
        ttl: Any = None,
        max_messages: int | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        strict: bool = True,
        retry_deadline: float = 15.0,
        durability: Durability | str | None = None,
    ) -> None:
        if (client is None) == (url is None):
            raise InvalidOptionError("pass either a redis client or url=, not both or neither")
        self.config = _core.StoreConfig.build(
            layout, ttl, max_messages, max_message_bytes, strict, retry_deadline, durability
        )
        self._url = url
        self._client = client
        self._version: tuple[int, ...] | None = None

    @classmethod
    def _from_config(
        cls, client: AsyncClient | None, config: _core.StoreConfig, url: str | None = None
    ) -> AsyncChatHistoryStore:
        """A store over an already validated config (used by the LangChain classes)."""
        store = cls.__new__(cls)
        store.config, store._url, store._client = config, url, client
        store._version = None
        return store

    def __repr__(self) -> str:
        where = redact_url(self._url) if self._url else repr(self._client)
        return f"AsyncChatHistoryStore({where}, layout={self.config.layout!r})"

    @property
    def client(self) -> AsyncClient:
        """The client in use: the one given, or the shared one for the URL on this event
        loop (made by the first operation, which may probe the server for cluster mode)."""
        if self._client is not None:
            return self._client
        client = cached_async_client(self._url or "")
        if client is None:
            raise RuntimeError("the URL's client is made by the first operation on this loop")
        return client

    async def _connection(self) -> AsyncClient:
        if self._client is not None:
            return self._client
        return await async_client_for_url(self._url or "")

    async def __aenter__(self) -> AsyncChatHistoryStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the client if this store was given it; shared URL clients stay open."""
        if self._client is not None:
            await self._client.aclose()

    async def append(
        self,
        session_id: str,
        records: Sequence[Mapping[str, Any]],
        *,
        durability: Durability | str | None = None,
    ) -> int:
        """Append records (oldest first) atomically, exactly once; return the message count.

        ``durability`` overrides the store's level for this call (see Durability); if it is
        not reached in time NotDurableError says the records were written all the same.
        """
        level = self.config.durability if durability is None else resolve_durability(durability)
        await self._check_durability(level)
        plan = _core.plan_append(self.config, session_id, records, durability=level)
        return await self.count(session_id) if plan is None else await self._run(plan)

    async def messages(
        self,
        session_id: str,
        *,
        last: int | None = None,
        start: int = 0,
        stop: int | None = None,
        strict: bool | None = None,
        convert: Callable[[Record], T] | None = None,
    ) -> list[Any]:
        """Messages in chronological order: all, positions ``[start, stop)``, or the newest
        ``last`` (reading only those from Redis). ``convert`` maps each record."""
        return await self._run(
            _core.plan_read(
                self.config,
                session_id,
                start=start,
                stop=stop,
                last=last,
                strict=strict,
                convert=convert,
            )
        )

    async def count(self, session_id: str) -> int:
        """How many messages the session holds."""
        return await self._run(_core.plan_count(self.config, session_id))

    async def clear(self, session_id: str) -> bool:
        """Remove the session's messages; True if it had any."""
        return await self._run(_core.plan_clear(self.config, session_id))

    async def delete(self, *session_ids: str) -> int:
        """Delete whole sessions; return how many existed."""
        return await self._run(_core.plan_delete(self.config, session_ids))

    async def session_ids(self, prefix: str = "", *, batch: int = 500) -> AsyncIterator[str]:
        """Iterate the ids of stored sessions (SCAN, so never blocking the server) whose id
        starts with ``prefix``, taken literally. Each id is yielded once."""
        layout, seen = self.config.layout, set()
        pattern = layout.scan_pattern(prefix)
        client = await self._connection()
        async for key in client.scan_iter(match=pattern, count=batch, _type="list"):
            session_id = layout.session_id_of(_text(key))
            if session_id is not None and session_id.startswith(prefix) and session_id not in seen:
                seen.add(session_id)
                yield session_id

    async def _run(self, plan: _core.Plan[T]) -> T:
        timer: _core.RetryTimer | None = None
        while True:
            try:
                return await self._run_once(plan)
            except RedisError as error:
                if not is_transient(error):
                    raise
                timer = timer or _core.RetryTimer(self.config.retry_deadline)
                delay = timer.next_delay()
                if delay is None:
                    raise
                await asyncio.sleep(delay)

    async def _run_once(self, plan: _core.Plan[T]) -> T:
        client = await self._connection()
        try:
            if len(plan.calls) == 1:
                replies = [await self._send(client, plan.calls[0])]
            elif not plan.calls:
                replies = []
            else:
                replies = await self._send_pipeline(client, plan.calls)
        except ResponseError as exc:
            error = _core.translate_error(str(exc), plan.keys)
            if error is None:
                raise
            raise error from exc
        return plan.parse(replies)

    async def _check_durability(self, level: Durability) -> None:
        if not level.waits:
            return
        client = await self._connection()
        if level.fsync and self._version is None:
            self._version = _core.server_version(await client.info("server"))
        cluster = isinstance(client, redis.asyncio.cluster.RedisCluster)
        problem = _core.durability_problem(level, cluster=cluster, version=self._version)
        if problem:
            raise DurabilityUnsupportedError(problem)

    @staticmethod
    async def _send_pipeline(client: AsyncClient, calls: Sequence[_core.Call]) -> list[Any]:
        """Send calls on one connection in one round trip (loading scripts if needed)."""
        for attempt in range(2):
            async with client.pipeline(transaction=False) as pipe:
                for call in calls:
                    if call.script is None:
                        pipe.execute_command(*call.args)
                    else:
                        pipe.evalsha(call.script.sha, len(call.keys), *call.keys, *call.args)
                try:
                    return await pipe.execute()
                except NoScriptError:
                    if attempt:
                        raise
            for script in {call.script for call in calls if call.script is not None}:
                await client.script_load(script.text)
        raise AssertionError("unreachable")

    @staticmethod
    async def _send(client: AsyncClient, call: _core.Call) -> Any:
        if call.script is None:
            return await client.execute_command(*call.args)
        keys = call.keys
        try:
            return await client.evalsha(call.script.sha, len(keys), *keys, *call.args)
        except NoScriptError:
            return await client.eval(call.script.text, len(keys), *keys, *call.args)
