"""What the asyncio shell does differently from the sync one: each function here has a
twin of the same name and signature in ``_sync_io``; the shell itself
(``_async_driver``, ``async_store``) is written once and translated (scripts/unasync.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from typing import Any, TypeVar

import redis.asyncio
import redis.asyncio.cluster
from redis.asyncio.cluster import ClusterNode, PipelineCommand
from redis.exceptions import NoScriptError, TimeoutError

from ._clients import AsyncClient, async_client_for_url, async_client_now
from ._plan import Call
from ._sync_io import options

__all__ = [
    "Client",
    "ClusterClient",
    "current_client",
    "cut_off",
    "options",
    "ready",
    "send_on_node",
    "send_pipeline",
    "shared_client",
    "sleep",
]

T = TypeVar("T")
Client = AsyncClient
ClusterClient = redis.asyncio.cluster.RedisCluster
sleep = asyncio.sleep


async def shared_client(url: str) -> Client:
    """The shared client for the URL on this event loop (made by the first use)."""
    return await async_client_for_url(url)


def current_client(given: Client | None, url: str | None) -> Client:
    """The client in use: the one given, or the URL's shared client on the running loop
    (made now if no operation has made it yet; see _clients.async_client_now)."""
    return given if given is not None else async_client_now(url or "")


async def ready(client: ClusterClient) -> None:
    """Make sure a cluster client has its slot map (a no-op once it has)."""
    await client.initialize()


async def cut_off(call: Awaitable[T], seconds: float) -> T:
    """The call's result, or TimeoutError once ``seconds`` have passed."""
    try:
        return await asyncio.wait_for(call, max(seconds, 0))
    except asyncio.TimeoutError as cut:
        raise TimeoutError("no reply before the retry deadline") from cut


async def send_on_node(
    client: ClusterClient, node: ClusterNode, calls: Sequence[Call]
) -> list[Any]:
    """Send calls in order on one of a cluster node's connections, in one round trip."""
    for attempt in range(2):
        commands = [
            PipelineCommand(position, *call.wire(), **options(call))
            for position, call in enumerate(calls)
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


async def send_pipeline(client: Client, calls: Sequence[Call]) -> list[Any]:
    """Send calls on one connection in one round trip (loading scripts if needed)."""
    for attempt in range(2):
        async with client.pipeline(transaction=False) as pipe:
            for call in calls:
                pipe.execute_command(*call.wire(), **options(call))
            try:
                return await pipe.execute()
            except NoScriptError:
                if attempt:
                    raise
        for script in {call.script for call in calls if call.script is not None}:
            await client.script_load(script.text)
    raise AssertionError("unreachable")
