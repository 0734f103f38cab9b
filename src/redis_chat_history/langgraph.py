"""LangGraph checkpointers on plain Redis: ``RedisSaver`` and ``AsyncRedisSaver``.

No modules (RedisJSON, RediSearch): core commands and Lua, so they run on Memorystore,
ElastiCache, Valkey and open-source Redis, standalone, Sentinel or cluster. Each saver
call is one script in one round trip (see ``_checkpoint_core`` for the keys), retried
through failovers like the chat stores' calls, and idempotent when re-sent.

Switching from langgraph-checkpoint-redis is an import change: the same constructor
(``redis_url``, ``redis_client``, ``connection_args``, ``ttl``) and ``from_conn_string``.
Both classes serve the sync and the async API (``graph.get_state`` on an
``AsyncRedisSaver``, ``ainvoke`` on a ``RedisSaver``).

The long-term memory store, ``RedisStore`` and ``AsyncRedisStore``, lives in
:mod:`.langgraph_store` and is imported here too, so both come from one module.
"""

from __future__ import annotations

import builtins
import random
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any, cast

import redis
import redis.asyncio
import redis.cluster
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    DeltaChannelHistory,
    PendingWrite,
    empty_checkpoint,
    get_checkpoint_id,
    get_checkpoint_metadata,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

from . import _checkpoint_core as core
from ._async_driver import AsyncDriver
from ._plan import run_plan
from ._sync_driver import SyncDriver
from ._twin_drivers import TwinDriven, TwinDrivers
from ._validate import check_ttl_minutes
from .durability import Durability, resolve_durability
from .errors import InvalidCheckpointError, InvalidOptionError
from .langgraph_store import AsyncRedisStore, RedisStore
from .settings import StoreSettings

__all__ = ["AsyncRedisSaver", "AsyncRedisStore", "RedisSaver", "RedisStore"]


def _ttl_settings(ttl: Mapping[str, Any] | None) -> tuple[int, bool]:
    """``ttl={"default_ttl": minutes, "refresh_on_read": bool}`` as (ms, refresh)."""
    if ttl is None:
        return 0, False
    if not isinstance(ttl, Mapping):
        raise InvalidOptionError(f"ttl must be a dict like {{'default_ttl': 60}}, not {ttl!r}")
    unknown = set(ttl) - {"default_ttl", "refresh_on_read"}
    if unknown:
        raise InvalidOptionError(f"unknown ttl option(s): {sorted(unknown)}")
    minutes = ttl.get("default_ttl")
    refresh = ttl.get("refresh_on_read", False)
    if minutes is None:
        return 0, False
    if not isinstance(refresh, bool):
        raise InvalidOptionError(f"ttl['refresh_on_read'] must be a bool, got {refresh!r}")
    return check_ttl_minutes("ttl['default_ttl']", minutes), refresh


class _SaverBase(TwinDriven, BaseCheckpointSaver[str]):
    """What both savers share: keys, (de)serialization, and both APIs over two drivers."""

    def __init__(
        self,
        redis_url: str | None = None,
        *,
        redis_client: Any = None,
        connection_args: Mapping[str, Any] | None = None,
        ttl: Mapping[str, Any] | None = None,
        prefix: str = "lg",
        serde: SerializerProtocol | None = None,
        retry_deadline: float = 15.0,
        compress_over: int | None = 4096,
        durability: Durability | str | None = None,
        owner_key: str | None = None,
    ) -> None:
        super().__init__(serde=serde)
        if owner_key is not None and (not isinstance(owner_key, str) or not owner_key):
            raise InvalidOptionError(f"owner_key must be None or a non-empty str: {owner_key!r}")
        #: The metadata key naming a thread's owner (e.g. "user_id", which LangGraph
        #: copies from ``configurable``); with it, each owner's threads are indexed.
        self.owner_key = owner_key
        if compress_over is not None and (
            isinstance(compress_over, bool)
            or not isinstance(compress_over, int)
            or compress_over < 1
        ):
            raise InvalidOptionError(
                f"compress_over must be None or bytes >= 1, got {compress_over!r}"
            )
        self.compress_over = compress_over
        self.durability = resolve_durability(durability)
        if (redis_url is None) == (redis_client is None):
            raise InvalidOptionError("pass either redis_url or redis_client, not both or neither")
        if connection_args and redis_client is not None:
            raise InvalidOptionError("connection_args go with redis_url, not redis_client")
        if not isinstance(prefix, str) or not prefix or "{" in prefix or "}" in prefix:
            raise InvalidOptionError(f"prefix must be a non-empty str without braces: {prefix!r}")
        self.prefix = prefix
        self._ttl_ms, self._refresh = _ttl_settings(ttl)
        self.ttl = dict(ttl) if ttl else None
        settings = StoreSettings.build(retry_deadline=retry_deadline)
        conn: Any = redis_url if redis_client is None else redis_client
        if connection_args:
            conn = redis.Redis.from_url(redis_url or "", **connection_args)
        self._drivers = TwinDrivers(settings, conn, "saver")

    def __repr__(self) -> str:
        where = "redis_url=" + self._drivers.shown() if self._drivers.url else "redis_client"
        return f"{type(self).__name__}({where}, prefix={self.prefix!r})"

    # Plans and results.

    def _dumps(self, value: Any) -> tuple[str, bytes]:
        """A value as the serializer writes it, compressed when large (compress_over)."""
        return core.compress(self.serde.dumps_typed(value), self.compress_over)

    def _keys(self, thread_id: str) -> core.ThreadKeys:
        return core.ThreadKeys(self.prefix, thread_id)

    @staticmethod
    def _ns(config: RunnableConfig) -> str:
        return core.check_name("checkpoint_ns", config["configurable"].get("checkpoint_ns", ""))

    def _put_plan(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> tuple[Any, RunnableConfig]:
        thread_id = core.thread_of(config)
        ns = self._ns(config)
        copy = checkpoint.copy()
        values: dict[str, Any] = copy.pop("channel_values")  # type: ignore[misc]
        blobs = []
        for channel, version in new_versions.items():
            core.check_name("channel", channel)
            typed = self._dumps(values[channel]) if channel in values else ("empty", b"")
            blobs.append((channel, version, typed))
        stored_metadata = get_checkpoint_metadata(config, metadata)
        payload = self._dumps((copy, stored_metadata))
        plan = core.plan_put(
            self._keys(thread_id),
            ns,
            checkpoint["id"],
            get_checkpoint_id(config),
            payload,
            stored_metadata,
            checkpoint["channel_versions"],
            blobs,
            self._ttl_ms,
            round(time.time() * 1000),
            core.owner_of(stored_metadata, self.owner_key),
            0 if self._refresh else self._ttl_ms,
        )
        saved: RunnableConfig = {
            "configurable": {
                "thread_id": config["configurable"]["thread_id"],
                "checkpoint_ns": ns,
                "checkpoint_id": checkpoint["id"],
            }
        }
        return plan, saved

    def _writes_plan(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str,
    ) -> Any:
        thread_id = core.thread_of(config)
        ns = self._ns(config)
        checkpoint_id = config["configurable"].get("checkpoint_id")
        if not checkpoint_id:
            raise InvalidCheckpointError("put_writes needs config['configurable']['checkpoint_id']")
        core.check_name("task_id", task_id)
        core.check_name("task_path", task_path)
        encoded = []
        for idx, (channel, value) in enumerate(writes):
            core.check_name("channel", channel)
            encoded.append((WRITES_IDX_MAP.get(channel, idx), channel, self._dumps(value)))
        return core.plan_put_writes(
            self._keys(thread_id), ns, checkpoint_id, task_id, task_path, encoded, self._ttl_ms
        )

    def _tuple(
        self, thread_id: Any, keys: core.ThreadKeys, stored: core.StoredTuple
    ) -> CheckpointTuple:
        key_names = keys.keys
        where = f"{stored.ns}/{stored.checkpoint_id}"
        checkpoint, metadata = core.loads(self.serde, stored.payload, key_names[2], where)
        values = {
            channel: core.loads(self.serde, typed, key_names[4], f"{stored.ns}/{channel}")
            for channel, typed in stored.blobs
        }
        pending = [
            (task_id, channel, core.loads(self.serde, typed, key_names[6], where))
            for task_id, channel, typed, _path, _idx in stored.writes
        ]
        config: RunnableConfig = {
            "configurable": {
                "thread_id": thread_id,
                "checkpoint_ns": stored.ns,
                "checkpoint_id": stored.checkpoint_id,
            }
        }
        parent: RunnableConfig | None = None
        if stored.parent_id:
            parent = {
                "configurable": {
                    "thread_id": thread_id,
                    "checkpoint_ns": stored.ns,
                    "checkpoint_id": stored.parent_id,
                }
            }
        return CheckpointTuple(
            config=config,
            checkpoint=cast("Checkpoint", {**checkpoint, "channel_values": values}),
            metadata=metadata,
            parent_config=parent,
            pending_writes=pending,
        )

    def _get_plan(self, config: RunnableConfig) -> tuple[Any, core.ThreadKeys]:
        keys = self._keys(core.thread_of(config))
        plan = core.plan_get(keys, self._ns(config), get_checkpoint_id(config), self._refresh_ms)
        return plan, keys

    def _delta_plan(self, config: RunnableConfig, channels: Sequence[str]) -> Any:
        keys = self._keys(core.thread_of(config))
        return core.plan_delta_walk(
            keys, self._ns(config), get_checkpoint_id(config), channels
        ), keys

    def _delta_history(
        self, keys: core.ThreadKeys, channels: Sequence[str], chain: list[core.Ancestor]
    ) -> dict[str, DeltaChannelHistory]:
        """Each channel's writes oldest first along the walked chain, and its seed (the
        value at the ancestor that ends its walk), as InMemorySaver builds them."""
        blob_key, writes_key = keys.keys[4], keys.keys[6]
        collected: dict[str, list[PendingWrite]] = {channel: [] for channel in channels}
        seeds: dict[str, Any] = {}
        for ancestor in chain:
            for task_id, channel, typed, _path, _idx in reversed(ancestor.writes):
                if channel in collected and channel not in seeds:
                    value = core.loads(self.serde, typed, writes_key, ancestor.checkpoint_id)
                    collected[channel].append((task_id, channel, value))
            for channel, typed in ancestor.seeds.items():
                seeds[channel] = core.loads(
                    self.serde, typed, blob_key, f"{channel}@{ancestor.checkpoint_id}"
                )
        result: dict[str, DeltaChannelHistory] = {}
        for channel in channels:
            history: DeltaChannelHistory = {"writes": list(reversed(collected[channel]))}
            if channel in seeds:
                history["seed"] = seeds[channel]
            result[channel] = history
        return result

    def _import_plan(
        self,
        thread_id: Any,
        messages: Sequence[Any],
        checkpoint_ns: str,
        channel: str,
        owner: str | None,
    ) -> tuple[Any, RunnableConfig]:
        """The checkpoint that starts a thread with ``messages`` in ``channel``: what
        ``agent.update_state(config, {"messages": messages}, as_node="model")`` stores for
        a new ``create_agent`` thread, made without the graph."""
        from langgraph.graph.message import add_messages  # the langgraph package itself

        checkpoint = empty_checkpoint()
        version = self.get_next_version(None, None)
        checkpoint["channel_values"] = {channel: add_messages([], list(messages))}
        checkpoint["channel_versions"] = {channel: version}
        config: RunnableConfig = {
            "configurable": {"thread_id": thread_id, "checkpoint_ns": checkpoint_ns}
        }
        metadata: CheckpointMetadata = {"source": "update", "step": -1, "parents": {}}
        if owner is not None:
            if self.owner_key is None:
                raise InvalidOptionError("an owner needs the saver's owner_key= option")
            if core.owner_of({"owner": owner}, "owner") != owner:
                raise InvalidOptionError(
                    f"owner must be a non-empty str without control characters: {owner!r}"
                )
            metadata[self.owner_key] = owner  # type: ignore[literal-required]
        return self._put_plan(config, checkpoint, metadata, {channel: version})

    def _owner_arg(self, owner: str | None) -> tuple[str, str] | None:
        """``list_threads(owner=)`` as the core's (owner key, owner)."""
        if owner is None:
            return None
        if self.owner_key is None:
            raise InvalidOptionError("listing by owner needs the saver's owner_key= option")
        if not isinstance(owner, str) or core.owner_of({"o": owner}, "o") != owner:
            raise InvalidOptionError(
                f"owner must be a non-empty str without control characters: {owner!r}"
            )
        return (self.owner_key, owner)

    @property
    def _refresh_ms(self) -> int:
        return self._ttl_ms if self._refresh else 0

    @staticmethod
    def _filters(filter: Mapping[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
        """The filters a script can check (JSON scalars), and all of them."""
        scalar = {
            name: value
            for name, value in (filter or {}).items()
            if value is None or isinstance(value, (str, int, float, bool))
        }
        return scalar, dict(filter or {})

    def get_next_version(self, current: str | int | float | None, channel: None) -> str:
        """A version unique per branch: replaying or forking never reuses one, so a
        branch's blobs are never overwritten (as InMemorySaver and Postgres do)."""
        if current is None:
            current_v = 0
        elif isinstance(current, int):
            current_v = current
        else:
            current_v = int(str(current).split(".")[0])
        return f"{current_v + 1:032}.{random.random():016}"


class _SyncApi(_SaverBase):
    """The sync half of both savers."""

    def _sync_write(self, plan: Any) -> None:
        driver = self._sync_driver()
        driver._drive(core.write_flow(plan, self.durability, driver._server()))

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        plan, keys = self._get_plan(config)
        stored = self._sync_driver()._drive(run_plan(plan))
        return (
            None
            if stored is None
            else self._tuple(config["configurable"]["thread_id"], keys, stored)
        )

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        driver = self._sync_driver()
        threads = (
            [config["configurable"]["thread_id"]]
            if config
            else driver._drive(core.thread_ids_flow(self.prefix))
        )
        left = limit
        for thread_id in threads:
            for item in self._list_thread(driver, thread_id, config, filter, before, left):
                yield item
                if left is not None:
                    left -= 1
                    if left <= 0:
                        return

    def _list_thread(
        self,
        driver: SyncDriver,
        thread_id: Any,
        config: RunnableConfig | None,
        filter: dict[str, Any] | None,
        before: RunnableConfig | None,
        limit: int | None,
    ) -> Iterator[CheckpointTuple]:
        configurable = (config or {}).get("configurable", {})
        if configurable.get("checkpoint_id"):
            found = self.get_tuple({"configurable": {**configurable, "thread_id": thread_id}})
            if found is not None and _passes(found, filter, before):
                yield found
            return
        listing = _Listing(self, thread_id, configurable, filter, before)
        cursor, left = "", limit
        while left is None or left > 0:
            page = driver._drive(run_plan(listing.page_plan(cursor, left)))
            for item in listing.passing(page):
                yield item
                if left is not None:
                    left -= 1
                    if left <= 0:
                        return
            if not page.cursor:
                return
            cursor = page.cursor

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        plan, saved = self._put_plan(config, checkpoint, metadata, new_versions)
        self._sync_write(plan)
        return saved

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        self._sync_write(self._writes_plan(config, writes, task_id, task_path))

    def delete_thread(self, thread_id: str) -> None:
        self._sync_driver()._drive(core.delete_flow(self._keys(str(thread_id)), self.owner_key))

    def get_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        """The DeltaChannel writes along the checkpoint's parent chain, in one round trip
        however deep the chain (the base class walks one round trip per ancestor)."""
        if not channels:
            return {}
        plan, keys = self._delta_plan(config, channels)
        return self._delta_history(keys, channels, self._sync_driver()._drive(run_plan(plan)))

    def import_messages(
        self,
        thread_id: Any,
        messages: Sequence[Any],
        *,
        checkpoint_ns: str = "",
        channel: str = "messages",
        owner: str | None = None,
    ) -> RunnableConfig:
        """Start a new thread with a conversation (e.g. a chat session's
        ``history.messages``), so a ``create_agent`` agent continues it. A thread that
        already has a checkpoint in the namespace is refused (InvalidCheckpointError).
        ``owner`` (with the saver's ``owner_key``) is stored in the checkpoint's metadata
        under that key, as ``configurable={"user_id": ...}`` would put it there, and
        indexes the thread under its owner."""
        if self.get_tuple(
            {"configurable": {"thread_id": thread_id, "checkpoint_ns": checkpoint_ns}}
        ):
            raise InvalidCheckpointError(f"thread {thread_id!r} already has checkpoints")
        plan, saved = self._import_plan(thread_id, messages, checkpoint_ns, channel, owner)
        self._sync_write(plan)
        return saved

    def list_threads(
        self, *, limit: int | None = None, owner: str | None = None
    ) -> builtins.list[tuple[str, float]]:
        """The threads under this prefix, newest put first, as (thread id, Unix time of
        the last put), from the registry every put updates (no SCAN). With ``owner`` (and
        the saver's ``owner_key``), only the threads whose newest checkpoint names that
        owner, from the owner's own index."""
        flow = core.threads_flow(self.prefix, _check_limit(limit), self._owner_arg(owner))
        found = self._sync_driver()._drive(flow)
        return [(thread, ms / 1000) for thread, ms in found]

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete every checkpoint (with its writes) that these runs wrote, in any thread,
        through a per-run thread set (no keyspace scan)."""
        self._sync_driver()._drive(core.delete_runs_flow(self.prefix, run_ids))

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        flow = core.copy_flow(
            self._keys(str(source_thread_id)), self._keys(str(target_thread_id)), self.owner_key
        )
        self._sync_driver()._drive(flow)

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        _check_strategy(strategy)
        for thread_id in thread_ids:
            keys = self._keys(str(thread_id))
            if strategy == "delete":
                self._sync_driver()._drive(core.delete_flow(keys, self.owner_key))
            elif self._sync_driver()._drive(run_plan(core.plan_prune(keys))) is None:
                raise NotImplementedError(_DELTA_PRUNE.format(thread_id))


class _AsyncApi(_SaverBase):
    """The asyncio half of both savers."""

    async def _async_write(self, plan: Any) -> None:
        driver = self._async_driver()
        await driver._drive(core.write_flow(plan, self.durability, driver._server()))

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        plan, keys = self._get_plan(config)
        stored = await self._async_driver()._drive(run_plan(plan))
        return (
            None
            if stored is None
            else self._tuple(config["configurable"]["thread_id"], keys, stored)
        )

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        driver = self._async_driver()
        threads = (
            [config["configurable"]["thread_id"]]
            if config
            else await driver._drive(core.thread_ids_flow(self.prefix))
        )
        left = limit
        for thread_id in threads:
            async for item in self._alist_thread(driver, thread_id, config, filter, before, left):
                yield item
                if left is not None:
                    left -= 1
                    if left <= 0:
                        return

    async def _alist_thread(
        self,
        driver: AsyncDriver,
        thread_id: Any,
        config: RunnableConfig | None,
        filter: dict[str, Any] | None,
        before: RunnableConfig | None,
        limit: int | None,
    ) -> AsyncIterator[CheckpointTuple]:
        configurable = (config or {}).get("configurable", {})
        if configurable.get("checkpoint_id"):
            found = await self.aget_tuple(
                {"configurable": {**configurable, "thread_id": thread_id}}
            )
            if found is not None and _passes(found, filter, before):
                yield found
            return
        listing = _Listing(self, thread_id, configurable, filter, before)
        cursor, left = "", limit
        while left is None or left > 0:
            page = await driver._drive(run_plan(listing.page_plan(cursor, left)))
            for item in listing.passing(page):
                yield item
                if left is not None:
                    left -= 1
                    if left <= 0:
                        return
            if not page.cursor:
                return
            cursor = page.cursor

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        plan, saved = self._put_plan(config, checkpoint, metadata, new_versions)
        await self._async_write(plan)
        return saved

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        await self._async_write(self._writes_plan(config, writes, task_id, task_path))

    async def adelete_thread(self, thread_id: str) -> None:
        flow = core.delete_flow(self._keys(str(thread_id)), self.owner_key)
        await self._async_driver()._drive(flow)

    async def aget_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        if not channels:
            return {}
        plan, keys = self._delta_plan(config, channels)
        chain = await self._async_driver()._drive(run_plan(plan))
        return self._delta_history(keys, channels, chain)

    async def aimport_messages(
        self,
        thread_id: Any,
        messages: Sequence[Any],
        *,
        checkpoint_ns: str = "",
        channel: str = "messages",
        owner: str | None = None,
    ) -> RunnableConfig:
        """Async twin of :meth:`import_messages`."""
        existing = await self.aget_tuple(
            {"configurable": {"thread_id": thread_id, "checkpoint_ns": checkpoint_ns}}
        )
        if existing:
            raise InvalidCheckpointError(f"thread {thread_id!r} already has checkpoints")
        plan, saved = self._import_plan(thread_id, messages, checkpoint_ns, channel, owner)
        await self._async_write(plan)
        return saved

    async def alist_threads(
        self, *, limit: int | None = None, owner: str | None = None
    ) -> builtins.list[tuple[str, float]]:
        """Async twin of :meth:`list_threads`."""
        flow = core.threads_flow(self.prefix, _check_limit(limit), self._owner_arg(owner))
        return [(thread, ms / 1000) for thread, ms in await self._async_driver()._drive(flow)]

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        await self._async_driver()._drive(core.delete_runs_flow(self.prefix, run_ids))

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        flow = core.copy_flow(
            self._keys(str(source_thread_id)), self._keys(str(target_thread_id)), self.owner_key
        )
        await self._async_driver()._drive(flow)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        _check_strategy(strategy)
        for thread_id in thread_ids:
            keys = self._keys(str(thread_id))
            if strategy == "delete":
                await self._async_driver()._drive(core.delete_flow(keys, self.owner_key))
            elif await self._async_driver()._drive(run_plan(core.plan_prune(keys))) is None:
                raise NotImplementedError(_DELTA_PRUNE.format(thread_id))


_DELTA_PRUNE = (
    "thread {!r} has DeltaChannel checkpoints: keep_latest would lose the history their "
    "values are rebuilt from (as PostgresSaver, refused); use strategy='delete'"
)


class _Listing:
    """One thread's part of a listing: the plan of each page (the scripts filter scalar
    metadata), and the checkpoints of a page that pass every filter."""

    def __init__(
        self,
        saver: _SaverBase,
        thread_id: Any,
        configurable: Mapping[str, Any],
        filter: Mapping[str, Any] | None,
        before: RunnableConfig | None,
    ) -> None:
        self.saver, self.thread_id = saver, thread_id
        self.keys = saver._keys(str(thread_id))
        self.ns = configurable.get("checkpoint_ns")
        if self.ns is not None:
            core.check_name("checkpoint_ns", self.ns)
        self.scalar, self.everything = saver._filters(filter)
        self.before_id = get_checkpoint_id(before) if before else None

    def page_plan(self, cursor: str, left: int | None) -> Any:
        wanted = 64 if left is None else min(left, 64)
        return core.plan_list_page(
            self.keys, self.ns, self.before_id, cursor, wanted, self.scalar, self.saver._refresh_ms
        )

    def passing(self, page: core.ListPage) -> builtins.list[CheckpointTuple]:
        found = (self.saver._tuple(self.thread_id, self.keys, stored) for stored in page.found)
        return [item for item in found if _passes(item, self.everything, None)]


def _check_limit(limit: Any) -> int | None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise InvalidOptionError(f"limit must be None or an int >= 1, got {limit!r}")
    return limit


def _check_strategy(strategy: str) -> None:
    if strategy not in ("keep_latest", "delete"):
        raise InvalidOptionError(f"strategy must be 'keep_latest' or 'delete', got {strategy!r}")


def _passes(
    item: CheckpointTuple, filter: Mapping[str, Any] | None, before: RunnableConfig | None
) -> bool:
    """Whether a checkpoint passes ``filter`` (each key's value equal, a missing key
    counting as None, as InMemorySaver has it; the scripts compare JSON scalars by type,
    so ``1`` does not match ``True``, as in Postgres) and ``before`` (an older id)."""
    if before is not None:
        before_id = get_checkpoint_id(before)
        if before_id and item.config["configurable"]["checkpoint_id"] >= before_id:
            return False
    metadata = item.metadata or {}
    return all(metadata.get(name) == value for name, value in (filter or {}).items())


class RedisSaver(_SyncApi, _AsyncApi):
    """A LangGraph checkpointer on plain Redis, over ``redis_url`` or a sync
    ``redis_client`` (``redis.Redis``/``RedisCluster``); its async methods use an asyncio
    twin of the client. ``ttl={"default_ttl": minutes, "refresh_on_read": bool}``; our
    own options are keyword-only: ``prefix`` (key prefix, default ``"lg"``), ``serde``,
    ``retry_deadline``, ``compress_over`` (values of at least this many bytes are stored
    zlib-compressed; default 4096, None: never), ``durability`` (e.g. ``"replicas=1"``:
    each write waits for a replica, as the chat appends do; NotDurableError if not
    reached, the write being stored)."""

    @classmethod
    @contextmanager
    def from_conn_string(cls, redis_url: str, **options: Any) -> Iterator[RedisSaver]:
        """A saver over ``redis_url`` (shared client per URL), as a context manager."""
        saver = cls(redis_url, **options)
        saver.setup()
        yield saver


class AsyncRedisSaver(_SyncApi, _AsyncApi):
    """:class:`RedisSaver` for asyncio code: the same keys and options; ``redis_client``
    may be a ``redis.asyncio`` client (its sync API then needs ``redis_url``)."""

    @classmethod
    @asynccontextmanager
    async def from_conn_string(
        cls, redis_url: str, **options: Any
    ) -> AsyncIterator[AsyncRedisSaver]:
        """A saver over ``redis_url`` (shared clients per URL), as an async context manager."""
        saver = cls(redis_url, **options)
        await saver.asetup()
        yield saver
