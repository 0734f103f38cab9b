"""AsyncChatHistoryStore: the asyncio twin of :class:`~redis_chat_history.ChatHistoryStore`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, TypeVar

import redis.asyncio
import redis.asyncio.cluster
from redis.asyncio.cluster import PipelineCommand
from redis.client import NEVER_DECODE
from redis.exceptions import (
    AskError,
    ClusterDownError,
    ClusterError,
    ConnectionError,
    MovedError,
    NoScriptError,
    RedisClusterException,
    RedisError,
    ResponseError,
    TimeoutError,
)

from . import _core
from . import _sessions_core as _sessions
from ._clients import (
    async_client_for_url,
    cached_async_client,
    call_budget,
    is_transient,
    redact_url,
)
from ._sessions_core import ReindexReport, SessionInfo, SessionPage
from .codec import DEFAULT_MAX_MESSAGE_BYTES, Record
from .durability import Durability, DurabilityUnsupportedError, resolve_durability
from .errors import ChatHistoryError, InvalidOptionError
from .layouts import Layout

__all__ = ["AsyncChatHistoryStore"]

T = TypeVar("T")
logger = logging.getLogger("redis_chat_history")
AsyncClient = redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster
# Replies as bytes even from a decode_responses=True client (see _core.Call.raw).
_RAW = {NEVER_DECODE: True}


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
        self._stale_slots = False

    @classmethod
    def _from_config(
        cls, client: AsyncClient | None, config: _core.StoreConfig, url: str | None = None
    ) -> AsyncChatHistoryStore:
        """A store over an already validated config (used by the LangChain classes)."""
        store = cls.__new__(cls)
        store.config, store._url, store._client = config, url, client
        store._version, store._stale_slots = None, False
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
        idempotency_key: str | None = None,
    ) -> int:
        """Append records (oldest first) atomically, exactly once; return the message count.

        ``durability`` overrides the store's level for this call (see Durability); if it is
        not reached in time NotDurableError says the records were written all the same.
        ``idempotency_key`` (a client message id, say) names the batch: sent again within
        10 minutes it is not stored twice, even by another process or after a restart.
        Without one, only redis-py's own re-sends of this call are recognised.
        """
        level = self.config.durability if durability is None else resolve_durability(durability)
        await self._check_durability(level)
        plan = _core.plan_append(
            self.config, session_id, records, durability=level, idempotency_key=idempotency_key
        )
        if plan is None:
            return await self.count(session_id)
        result = await self._run(plan)
        return result if isinstance(result, int) else await self._after_append(session_id, result)

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
        """Delete whole sessions (messages, metadata, owner index entries); return how
        many existed."""
        return await self._drive(_sessions.delete_flow(self.config, session_ids))

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

    # Sessions that know who they belong to (metadata and per-owner indexes). The index
    # of an owner is another key than the session's own ones (another slot on a cluster),
    # so it is written after the session, and checked and repaired when read.

    async def create_session(
        self, session_id: str, *, owner: str | None = None, title: str | None = None
    ) -> SessionInfo:
        """Give a session metadata (owner, title, created and last-activity times) and
        list it under its owner. Idempotent: what is already set is kept (use
        rename_session to change the title); naming another owner than the session's
        raises OwnerConflictError. Messages already stored stay."""
        return await self._drive(_sessions.create_flow(self.config, session_id, owner, title))

    async def session_info(self, session_id: str) -> SessionInfo | None:
        """The session's owner, title, times and message count; None if it does not exist."""
        return await self._run(_sessions.plan_session_info(self.config, session_id))

    async def rename_session(self, session_id: str, title: str) -> bool:
        """Set the session's title; False if there is no such session."""
        return await self._run(_sessions.plan_rename(self.config, session_id, title))

    async def owner_sessions(
        self, owner: str, *, limit: int = 20, cursor: str | None = None
    ) -> SessionPage:
        """One page of the owner's sessions, most recently active first, in O(limit)
        without SCAN. Pass the page's ``next_cursor`` as ``cursor`` for the next one."""
        return await self._drive(_sessions.owner_sessions_flow(self.config, owner, limit, cursor))

    async def delete_session(self, session_id: str) -> bool:
        """Delete one session (messages, metadata, owner index entry); True if it existed."""
        return await self.delete(session_id) == 1

    async def reindex(self, owner: str | None = None, *, batch: int = 500) -> ReindexReport:
        """Rebuild owner indexes from the sessions' metadata and drop stale entries (all
        owners, or only ``owner``). The repair path: it SCANs every metadata key."""
        if owner is not None:
            _sessions.check_owner(owner)
        layout, client = self.config.layout, await self._connection()
        seen: set[str] = set()
        keys: list[str] = []
        indexed = 0
        pattern = layout.meta_scan_pattern()
        async for key in client.scan_iter(match=pattern, count=batch, _type="hash"):
            name = _text(key)
            if name not in seen:  # SCAN may return a key more than once
                seen.add(name)
                keys.append(name)
            if len(keys) >= batch:
                indexed += await self._drive(_sessions.reindex_flow(self.config, keys, owner))
                keys = []
        indexed += await self._drive(_sessions.reindex_flow(self.config, keys, owner))
        owners = {owner} if owner is not None else set()
        if owner is None:
            pattern = layout.owner_index_scan_pattern()
            async for key in client.scan_iter(match=pattern, count=batch, _type="zset"):
                found = layout.owner_of_index_key(_text(key))
                if found is not None:
                    owners.add(found)
        removed = 0
        for each in sorted(owners):
            removed += await self._drive(_sessions.prune_index_flow(self.config, each))
        return ReindexReport(indexed=indexed, removed=removed)

    async def _after_append(self, session_id: str, outcome: _core.AppendOutcome) -> int:
        """Refresh the owner's index after an append to an owned session (best effort: the
        messages are stored), then report a durability level that was not reached."""
        if outcome.touched is not None:
            owner, last_activity = outcome.touched
            refresh = _sessions.plan_touch_index(self.config, owner, session_id, last_activity)
            await self._best_effort(_sessions.BestEffort(refresh, "refresh the owner index"))
        if outcome.not_durable is not None:
            raise outcome.not_durable
        return outcome.message_count

    async def _drive(self, flow: _sessions.Flow[T]) -> T:
        """Run a multi-round-trip operation: send each plan the flow yields and give it
        the result, until it returns."""
        reply: Any = None
        while True:
            try:
                step = flow.send(reply)
            except StopIteration as done:
                result: T = done.value
                return result
            if isinstance(step, _sessions.BestEffort):
                reply = await self._best_effort(step)
            else:
                reply = await self._run(step)

    async def _best_effort(self, step: _sessions.BestEffort) -> Any:
        """Run a plan whose failure must not fail the operation; log it and return None."""
        try:
            return await self._run(step.plan)
        except (RedisError, ChatHistoryError) as error:
            logger.warning(
                "could not %s (%s: %s); the next write or reindex() repairs it",
                step.purpose,
                type(error).__name__,
                error,
            )
            return None

    async def _run(self, plan: _core.Plan[T]) -> T:
        """Send the plan, again after transient errors until ``retry_deadline`` seconds after
        the call started; an attempt after a failure is cut off at the deadline."""
        with call_budget(_core.RetryTimer(self.config.retry_deadline)) as timer:
            while True:
                try:
                    if not timer.failed:
                        return await self._run_once(plan)
                    try:
                        return await asyncio.wait_for(self._run_once(plan), max(timer.left(), 0))
                    except asyncio.TimeoutError as cut:
                        raise TimeoutError("no reply before the retry deadline") from cut
                except RedisError as error:
                    if not is_transient(error):
                        raise
                    timer.failed = True
                    delay = timer.next_delay()
                    if delay is None:
                        raise
                    await asyncio.sleep(delay)

    async def _run_once(self, plan: _core.Plan[T]) -> T:
        client = await self._connection()
        try:
            if plan.records_tokens:
                plan = await self._token_policy(client, plan)
            if plan.same_connection and isinstance(client, redis.asyncio.cluster.RedisCluster):
                replies = await self._send_to_slot_owner(client, plan)
            elif len(plan.calls) == 1:
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

    async def _token_policy(self, client: AsyncClient, plan: _core.Plan[T]) -> _core.Plan[T]:
        """The append to send on this server: learns its eviction policy first (one INFO
        per client, inside the call's retries and deadline); see _core.EvictionWatch."""
        if not _core.EVICTION.knows(client, self._url):
            try:
                info = await self._info(client, "memory")
            except ResponseError:  # INFO refused (ACL) or renamed away
                info = None
            except RedisClusterException as error:  # not a RedisError: make it retryable
                raise ConnectionError(f"cannot reach the cluster: {error}") from error
            _core.EVICTION.learn(client, self._url, info)
        return _core.EVICTION.applied(plan, client, self._url, self.config.ttl)

    @staticmethod
    async def _info(client: AsyncClient, section: str) -> Any:
        """An INFO section of the server (of a cluster's default node)."""
        if isinstance(client, redis.asyncio.cluster.RedisCluster):
            return await client.info(section, target_nodes=client.get_default_node())
        return await client.info(section)

    async def _check_durability(self, level: Durability) -> None:
        if not level.waits:
            return
        if level.fsync and self._version is None:
            info = await self._info(await self._connection(), "server")
            self._version = _core.server_version(info)
        problem = _core.durability_problem(level, version=self._version)
        if problem:
            raise DurabilityUnsupportedError(problem)

    async def _send_to_slot_owner(
        self, client: redis.asyncio.cluster.RedisCluster, plan: _core.Plan[Any]
    ) -> list[Any]:
        """Send the plan's calls on one connection to the primary that owns ``keys[0]``
        (see ChatHistoryStore._send_to_slot_owner)."""
        await client.initialize()  # a no-op once the client has its slot map
        if self._stale_slots:
            try:
                await client.nodes_manager.initialize()
            except RedisClusterException as error:  # not a RedisError: make it retryable
                raise ConnectionError(f"cannot refresh the cluster's slot map: {error}") from error
            self._stale_slots = False
        node = client.get_node_from_key(plan.keys[0])
        calls = plan.calls
        for _redirect in range(_core.MAX_REDIRECTS):
            if node is None:
                self._stale_slots = True
                raise ClusterDownError(f"no primary is known for {plan.keys[0]!r}")
            try:
                replies = await self._send_on_node(node, calls)
                return replies[len(replies) - len(plan.calls) :]
            except MovedError:
                await client.nodes_manager.initialize()
                node, calls = client.get_node_from_key(plan.keys[0]), plan.calls
            except AskError as redirect:
                node = client.get_node(host=redirect.host, port=redirect.port) or node
                calls = (_core.Call(("ASKING",)), *plan.calls)
            except (ConnectionError, TimeoutError):
                self._stale_slots = True
                raise
        raise ClusterError(f"more than {_core.MAX_REDIRECTS} redirections for {plan.keys[0]!r}")

    @staticmethod
    async def _send_on_node(
        node: redis.asyncio.cluster.ClusterNode, calls: Sequence[_core.Call]
    ) -> list[Any]:
        """Send calls in order on one of a cluster node's connections, in one round trip."""
        for attempt in range(2):
            commands = [
                PipelineCommand(position, *_command(call)) for position, call in enumerate(calls)
            ]
            await node.execute_pipeline(commands)
            errors = [c.result for c in commands if isinstance(c.result, Exception)]
            if not errors:
                return [command.result for command in commands]
            if attempt or not all(isinstance(e, NoScriptError) for e in errors):
                raise next(e for e in errors if not isinstance(e, NoScriptError))
            for script in {call.script for call in calls if call.script is not None}:
                await node.execute_command("SCRIPT", "LOAD", script.text)
        raise AssertionError("unreachable")

    @staticmethod
    async def _send_pipeline(client: AsyncClient, calls: Sequence[_core.Call]) -> list[Any]:
        """Send calls on one connection in one round trip (loading scripts if needed)."""
        for attempt in range(2):
            async with client.pipeline(transaction=False) as pipe:
                for call in calls:
                    if call.script is None:
                        pipe.execute_command(*call.args, **(_RAW if call.raw else {}))
                    else:
                        pipe.execute_command(
                            "EVALSHA", call.script.sha, len(call.keys), *call.keys, *call.args
                        )
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
            return await client.execute_command(*call.args, **(_RAW if call.raw else {}))
        keys = call.keys
        try:
            return await client.evalsha(call.script.sha, len(keys), *keys, *call.args)
        except NoScriptError:
            return await client.eval(call.script.text, len(keys), *keys, *call.args)


def _command(call: _core.Call) -> tuple[Any, ...]:
    """The wire arguments of a call."""
    if call.script is None:
        return call.args
    return ("EVALSHA", call.script.sha, len(call.keys), *call.keys, *call.args)
