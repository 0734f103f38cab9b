"""The asyncio shell's engine: it drives the core's flows, and does nothing else.

A flow yields steps (see ``_plan``); the driver sends each plan in one round trip (on a
cluster, on one connection to the slot's primary when the plan asks for it), retries it
after transient errors until the operation's retry deadline, answers scans and INFO, and
hands every result back. The asyncio driver is the source; the sync one is generated from
it by ``scripts/unasync.py``, so the two cannot drift. What differs between them lives in
the two small io modules, whose functions have the same names.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any, TypeVar

from redis.exceptions import (
    AskError,
    ClusterError,
    ConnectionError,
    MovedError,
    NoScriptError,
    RedisClusterException,
    RedisError,
    ResponseError,
    SlotNotCoveredError,
    TimeoutError,
)

from . import _async_io as _io
from ._base import StoreBase
from ._clients import call_budget, is_transient
from ._plan import (
    MAX_REDIRECTS,
    BestEffort,
    Call,
    Flow,
    Info,
    OnTarget,
    Plan,
    RetryTimer,
    Scan,
    Topology,
    text,
    translate_error,
)
from .errors import ChatHistoryError

__all__ = ["AsyncDriver"]

T = TypeVar("T")
logger = logging.getLogger("redis_chat_history")
Scans = dict[Scan, AsyncIterator[Any]]


def _retryable(error: Exception) -> bool:
    """Whether an operation is tried again after ``error``: a connection loss, timeout or
    cluster reconfiguration (a slot no node is known to serve yet included)."""
    return isinstance(error, SlotNotCoveredError) or is_transient(error)


class AsyncDriver(StoreBase[_io.Client]):
    """Drives core flows over the store's client (see the module docstring)."""

    async def _drive(
        self,
        flow: Flow[T],
        target: AsyncDriver | None = None,
        *,
        deadline_per_step: bool = False,
    ) -> T:
        """Run one operation: answer each step its flow yields, until it returns. A step
        that fails has its error raised inside the flow, which may handle it. One retry
        deadline covers the whole operation, or each step with ``deadline_per_step`` (a
        transfer runs for minutes). OnTarget steps are answered by ``target``."""
        scans: Scans = {}
        reply: Any = None
        error: Exception | None = None
        timer = RetryTimer(self.config.retry_deadline)
        try:
            while True:
                try:
                    step = flow.send(reply) if error is None else flow.throw(error)
                except StopIteration as done:
                    result: T = done.value
                    return result
                driver = self
                if isinstance(step, OnTarget):
                    driver, step = target or self, step.step
                if deadline_per_step:
                    timer = RetryTimer(driver.config.retry_deadline)
                try:
                    with call_budget(timer):
                        if isinstance(step, Plan):  # the common step, answered inline
                            reply = await driver._run(step, timer)
                        else:
                            reply = await driver._answer(step, timer, scans)
                    error = None
                except Exception as exc:  # raised inside the flow
                    reply, error = None, exc
        finally:
            flow.close()
            for keys in scans.values():
                await keys.aclose()  # type: ignore[attr-defined]

    async def _answer(
        self, step: BestEffort | Scan | Info | Topology, timer: RetryTimer, scans: Scans
    ) -> Any:
        """The result of a step other than a plan."""
        if isinstance(step, BestEffort):
            return await self._best_effort(step, timer)
        if isinstance(step, Scan):
            return await self._scan(step, scans)
        if isinstance(step, Topology):
            return await self._is_cluster(timer)
        return await self._info(step, timer)

    async def _scan_batches(self, scan: Scan) -> AsyncIterator[list[str]]:
        """The batches of keys a scan finds, for listings that hand them on as they come."""
        scans: Scans = {}
        try:
            while batch := await self._scan(scan, scans):
                yield batch
        finally:
            for keys in scans.values():
                await keys.aclose()  # type: ignore[attr-defined]

    async def _run(self, plan: Plan[T], timer: RetryTimer) -> T:
        """Send the plan, again after transient errors with backoff until the timer's
        deadline; once an attempt has failed, the next is cut off at the deadline."""
        while True:
            try:
                if not timer.failed:
                    return await self._run_once(plan)
                return await _io.cut_off(self._run_once(plan), timer.left())
            except (RedisError, RedisClusterException) as error:
                await self._before_retry(error, timer)

    async def _before_retry(self, error: Exception, timer: RetryTimer) -> None:
        """Wait before trying again after ``error``, or raise it: when it is not transient,
        or the deadline has passed."""
        if not _retryable(error):
            raise error
        if isinstance(error, SlotNotCoveredError):
            self._stale_slots = True
        timer.failed = True
        delay = timer.next_delay()
        if delay is None:
            raise error
        await _io.sleep(delay)

    async def _best_effort(self, step: BestEffort, timer: RetryTimer) -> Any:
        """Run a plan whose failure must not fail the operation; log it and return None."""
        try:
            return await self._run(step.plan, timer)
        except (RedisError, RedisClusterException, ChatHistoryError) as error:
            logger.warning(
                "could not %s (%s: %s); the next write or reindex() repairs it",
                step.purpose,
                type(error).__name__,
                error,
            )
            return None

    async def _connection(self) -> _io.Client:
        if self._client is not None:
            return self._client
        return await _io.shared_client(self._url or "")

    async def _run_once(self, plan: Plan[T]) -> T:
        client = self._client
        if client is None:  # inline: this is every operation's path
            client = await _io.shared_client(self._url or "")
        try:
            if plan.same_connection_as is not None and isinstance(client, _io.ClusterClient):
                replies = await self._send_to_slot_owner(client, plan, plan.same_connection_as)
            elif len(plan.calls) == 1:
                replies = [await self._send(client, plan.calls[0])]
            elif not plan.calls:
                replies = []
            else:
                replies = await _io.send_pipeline(client, plan.calls)
        except ResponseError as exc:
            error = translate_error(str(exc), plan)
            if error is None:
                raise
            raise error from exc
        return plan.parse(replies)

    async def _scan(self, scan: Scan, scans: Scans) -> list[str]:
        """The next batch of keys the scan finds (every primary of a cluster)."""
        keys = scans.get(scan)
        if keys is None:
            client = await self._connection()
            keys = scans[scan] = client.scan_iter(
                match=scan.match, count=scan.count, _type=scan.type
            )
        batch: list[str] = []
        async for key in keys:
            batch.append(text(key))
            if len(batch) >= scan.count:
                break
        return batch

    async def _is_cluster(self, timer: RetryTimer) -> bool:
        """Whether the client is a cluster client (making a URL's client may probe the
        server: asked again after transient errors until the deadline)."""
        while True:
            try:
                return isinstance(await self._connection(), _io.ClusterClient)
            except (RedisError, RedisClusterException) as error:
                await self._before_retry(error, timer)

    async def _info(self, step: Info, timer: RetryTimer) -> Any:
        """An INFO section, asked again after transient errors until the deadline."""
        while True:
            try:
                return await self._info_once(step.section)
            except (RedisError, RedisClusterException) as error:
                await self._before_retry(error, timer)

    async def _info_once(self, section: str) -> Any:
        """An INFO section of the server (of a cluster's default node); None if refused."""
        client = await self._connection()
        try:
            if isinstance(client, _io.ClusterClient):
                return await client.info(section, target_nodes=client.get_default_node())
            return await client.info(section)
        except ResponseError:  # INFO refused (ACL) or renamed away
            return None
        except RedisClusterException as error:  # not a RedisError: make it retryable
            raise ConnectionError(f"cannot reach the cluster: {error}") from error

    async def _send_to_slot_owner(
        self, client: _io.ClusterClient, plan: Plan[Any], key: str
    ) -> list[Any]:
        """Send the plan's calls on one connection to the primary that owns ``key``.

        A cluster client spreads keyless commands such as WAIT over every primary, so the
        calls go through the owner's own connection instead. MOVED refreshes the slot map
        and ASK sends the calls to the importing node behind ASKING; a lost connection
        also refreshes the map before the plan is tried again, so a failover is followed.
        """
        await _io.ready(client)
        if self._stale_slots:
            try:
                await client.nodes_manager.initialize()
            except RedisClusterException as error:  # not a RedisError: make it retryable
                raise ConnectionError(f"cannot refresh the cluster's slot map: {error}") from error
            self._stale_slots = False
        node = client.get_node_from_key(key)
        calls = plan.calls
        for _redirect in range(MAX_REDIRECTS):
            if node is None:  # typed as possible by redis.asyncio (it raises instead)
                raise SlotNotCoveredError(f"no primary is known for {key!r}")
            try:
                replies = await _io.send_on_node(client, node, calls)
                return replies[len(replies) - len(plan.calls) :]
            except MovedError:
                await client.nodes_manager.initialize()
                node, calls = client.get_node_from_key(key), plan.calls
            except AskError as redirect:
                node = client.get_node(host=redirect.host, port=redirect.port) or node
                calls = (Call(("ASKING",)), *plan.calls)
            except (ConnectionError, TimeoutError):
                self._stale_slots = True
                raise
        raise ClusterError(f"more than {MAX_REDIRECTS} redirections for {key!r}")

    @staticmethod
    async def _send(client: _io.Client, call: Call) -> Any:
        command: Any = client.execute_command  # typed in one flavour of redis-py only
        if call.script is None:
            return await command(*call.args, **_io.options(call))
        try:  # EVALSHA as a plain command, so the reply of a raw call stays bytes
            return await command(*call.wire(), **_io.options(call))
        except NoScriptError:
            keys = call.keys
            args = ("EVAL", call.script.text, len(keys), *keys, *call.args)
            return await command(*args, **_io.options(call))
