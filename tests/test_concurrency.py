"""Many writers on one session: nothing lost, nothing doubled, each writer's order kept.

With ``max_messages`` the server's own command stream (MONITOR) gives the global order the
appends ran in, so the test can check that the survivors are exactly its newest N.
"""

from __future__ import annotations

import asyncio
import re
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from itertools import pairwise
from typing import Any

import pytest
import redis
import redis.asyncio

from redis_chat_history import AsyncChatHistoryStore, ChatHistoryStore
from redis_chat_history.embedded import EmbeddedRedis

pytestmark = pytest.mark.timeout(120)

LAYOUTS = ["native", "community", "memorystore"]
Id = tuple[int, int]
_ID = re.compile(r"w(\d+)-s(\d+)")


def record(writer: int, seq: int) -> dict[str, Any]:
    return {"type": "human", "data": {"content": f"w{writer}-s{seq}", "type": "human"}}


def ids_of(records: list[dict[str, Any]]) -> list[Id]:
    """(writer, sequence number) of each record, in the order given."""
    found = []
    for item in records:
        match = _ID.fullmatch(item["data"]["content"])
        assert match is not None, item
        found.append((int(match[1]), int(match[2])))
    return found


def assert_complete(ids: list[Id], per_writer: dict[int, int]) -> None:
    """Every (writer, seq) is present exactly once and each writer's messages are in order."""
    expected = {(w, s) for w, count in per_writer.items() for s in range(count)}
    assert len(ids) == len(expected)
    assert len(set(ids)) == len(ids), "duplicated messages"
    assert set(ids) == expected, "missing or foreign messages"
    for writer, count in per_writer.items():
        assert [s for w, s in ids if w == writer] == list(range(count)), f"writer {writer}"


def assert_interleaved(ids: list[Id], writers: int) -> None:
    """The writers really overlapped: their messages alternate, not one block per writer."""
    switches = sum(1 for a, b in pairwise(ids) if a[0] != b[0])
    assert switches >= 2 * writers, f"only {switches} writer switches"


def assert_newest_kept(kept: list[Id], order: list[Id], cap: int) -> None:
    """``kept`` is the newest ``cap`` messages of the global append order, oldest first."""
    assert len(order) == len(set(order)), "the server ran a push twice"
    assert len(kept) == min(cap, len(order))
    assert kept == order[-cap:]


@contextmanager
def server_push_order(server: EmbeddedRedis) -> Iterator[list[Id]]:
    """Collect, via MONITOR, the message ids that LPUSH/RPUSH inside scripts received,
    in the order the server ran them. The list is complete once the block exits."""
    order: list[Id] = []
    stop_word = f"stop-monitor-{uuid.uuid4().hex}"
    watcher = server.client()
    with watcher.monitor() as monitor:

        def collect() -> None:
            for event in monitor.listen():
                command = event["command"]
                if command == f"ECHO {stop_word}":
                    return
                if event["client_type"] == "lua" and command.startswith(("RPUSH ", "LPUSH ")):
                    order.extend((int(w), int(s)) for w, s in _ID.findall(command))

        thread = threading.Thread(target=collect, daemon=True)
        thread.start()
        try:
            yield order
        finally:
            with server.client() as admin:
                admin.echo(stop_word)
            thread.join(timeout=30)
    watcher.close()
    assert not thread.is_alive(), "MONITOR never saw the stop word"


def write_from_threads(store: ChatHistoryStore, writers: int, per_writer: int) -> None:
    """``writers`` threads, released together, each appending its messages one by one;
    the count each append returns must grow for every writer."""
    start = threading.Barrier(writers)

    def write(writer: int) -> None:
        start.wait()
        counts = [store.append("s", [record(writer, seq)]) for seq in range(per_writer)]
        if store.config.max_messages is None:
            assert all(a < b for a, b in pairwise(counts)), counts
        assert all(1 <= c <= writers * per_writer for c in counts)

    with ThreadPoolExecutor(writers) as pool:
        for future in [pool.submit(write, w) for w in range(writers)]:
            future.result()


@pytest.mark.parametrize("layout", LAYOUTS)
def test_threads_share_one_store(redis_url: str, layout: str) -> None:
    """8 threads x 500 appends through one store: 4000 messages, each once, in writer order."""
    with ChatHistoryStore(redis.Redis.from_url(redis_url), layout=layout) as store:
        write_from_threads(store, writers=8, per_writer=500)
        assert store.count("s") == 4000
        ids = ids_of(store.messages("s"))
        assert_complete(ids, dict.fromkeys(range(8), 500))
        assert_interleaved(ids, 8)


def batches(writer: int, count: int) -> list[list[dict[str, Any]]]:
    """The writer's messages cut into batches of 1 to 4 (size depends on the writer)."""
    size = 1 + writer % 4
    return [
        [record(writer, s) for s in range(i, min(i + size, count))] for i in range(0, count, size)
    ]


async def write_from_tasks(store: AsyncChatHistoryStore, tasks: int, per_task: int) -> None:
    """``tasks`` asyncio tasks, released together, each appending its batches in turn."""
    start = asyncio.Event()

    async def write(writer: int) -> list[int]:
        await start.wait()
        return [await store.append("s", batch) for batch in batches(writer, per_task)]

    running = [asyncio.create_task(write(t)) for t in range(tasks)]
    await asyncio.sleep(0)
    start.set()
    for counts in await asyncio.gather(*running):
        if store.config.max_messages is None:
            assert all(a < b for a, b in pairwise(counts)), counts


@pytest.mark.parametrize("layout", LAYOUTS)
async def test_tasks_share_one_store(aclient: redis.asyncio.Redis, layout: str) -> None:
    """100 asyncio tasks x 20 messages (in batches) through one store: each stored once."""
    store = AsyncChatHistoryStore(aclient, layout=layout)
    await write_from_tasks(store, tasks=100, per_task=20)
    assert await store.count("s") == 2000
    ids = ids_of(await store.messages("s"))
    assert_complete(ids, dict.fromkeys(range(100), 20))
    assert_interleaved(ids, 100)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_threads_with_max_messages_keep_newest(
    redis_server: EmbeddedRedis, redis_url: str, layout: str
) -> None:
    """Concurrent capped appends never leave more than N and keep the newest N."""
    cap, writers, per_writer = 50, 8, 150
    with ChatHistoryStore(
        redis.Redis.from_url(redis_url), layout=layout, max_messages=cap
    ) as store:
        key = store.config.layout.messages_key("s")
        done = threading.Event()
        seen: list[int] = []

        def watch() -> None:
            with redis.Redis.from_url(redis_url) as reader:
                while not done.is_set():
                    seen.append(reader.llen(key))
                    seen.append(len(store.messages("s")))

        with ThreadPoolExecutor(1) as pool:
            watcher = pool.submit(watch)
            with server_push_order(redis_server) as order:
                write_from_threads(store, writers, per_writer)
            done.set()
            watcher.result()
        assert len(order) == writers * per_writer
        assert seen and max(seen) <= cap
        kept = ids_of(store.messages("s"))
        assert store.count("s") == cap
        assert_newest_kept(kept, order, cap)


@pytest.mark.parametrize("layout", LAYOUTS)
async def test_tasks_with_max_messages_keep_newest(
    redis_server: EmbeddedRedis, redis_url: str, aclient: redis.asyncio.Redis, layout: str
) -> None:
    """Capped appends from 100 tasks never leave more than N and keep the newest N."""
    cap, tasks, per_task = 30, 100, 12
    store = AsyncChatHistoryStore(aclient, layout=layout, max_messages=cap)
    key = store.config.layout.messages_key("s")
    seen: list[int] = []
    done = asyncio.Event()

    async def watch() -> None:
        reader = redis.asyncio.Redis.from_url(redis_url)
        try:
            while not done.is_set():
                seen.append(await reader.llen(key))
                await asyncio.sleep(0)
        finally:
            await reader.aclose()

    with server_push_order(redis_server) as order:
        watcher = asyncio.create_task(watch())
        try:
            await write_from_tasks(store, tasks, per_task)
        finally:
            done.set()
            await watcher
    assert len(order) == tasks * per_task
    assert seen and max(seen) <= cap
    assert await store.count("s") == cap
    assert_newest_kept(ids_of(await store.messages("s")), order, cap)
