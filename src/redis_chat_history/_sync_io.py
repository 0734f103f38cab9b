"""What the sync shell does differently from the asyncio one: each function here has a
twin of the same name and signature in ``_async_io``; the shell itself (``_sync_driver``,
``store``) is generated from the asyncio one (scripts/unasync.py).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, TypeVar

import redis
import redis.cluster
from redis.client import NEVER_DECODE
from redis.cluster import ClusterNode
from redis.exceptions import NoScriptError

from ._clients import SyncClient, client_for_url
from ._plan import Call

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
Client = SyncClient
ClusterClient = redis.cluster.RedisCluster
sleep = time.sleep

_RAW = {NEVER_DECODE: True}
_DEFAULT: dict[str, Any] = {}


def options(call: Call) -> dict[str, Any]:
    """redis-py's options for a call: replies as bytes even from a decode_responses=True
    client when it asks for them raw (see Call.raw)."""
    return _RAW if call.raw else _DEFAULT


def shared_client(url: str) -> Client:
    """The process's shared client for the URL (made by the first use)."""
    return client_for_url(url)


def current_client(given: Client | None, url: str | None) -> Client:
    """The client in use: the one given, or the shared one for the URL (made on first
    use, which probes a TCP URL once for cluster mode)."""
    return given if given is not None else shared_client(url or "")


def ready(client: ClusterClient) -> None:
    """A sync cluster client has its slot map from the start."""


def cut_off(call: T, seconds: float) -> T:
    """The result of a call made already: sync calls are cut off at the deadline by the
    reads of clients made from URLs (see _clients.call_budget)."""
    return call


def send_on_node(client: ClusterClient, node: ClusterNode, calls: Sequence[Call]) -> list[Any]:
    """Send calls in order on one connection of a cluster node, in one round trip."""
    return send_pipeline(client.get_redis_connection(node), calls)


def send_pipeline(
    client: redis.Redis | redis.cluster.RedisCluster, calls: Sequence[Call]
) -> list[Any]:
    """Send calls on one connection in one round trip (loading scripts if needed)."""
    for attempt in range(2):
        with client.pipeline(transaction=False) as pipe:
            for call in calls:
                pipe.execute_command(*call.wire(), **options(call))
            try:
                return pipe.execute()
            except NoScriptError:
                if attempt:
                    raise
        for script in {call.script for call in calls if call.script is not None}:
            client.script_load(script.text)
    raise AssertionError("unreachable")
