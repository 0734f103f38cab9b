"""Transfers on the store's own I/O path: the async variants give the sync results,
transfers run on a cluster through a URL store, and a store's retry_deadline bounds them."""

from __future__ import annotations

import io
import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import redis.asyncio

import topologies
from redis_chat_history import (
    AsyncChatHistoryStore,
    ChatHistoryStore,
    aclose_shared_clients,
    close_shared_clients,
)
from redis_chat_history._sessions_core import Unchanged, delete_flow
from redis_chat_history.embedded import EmbeddedRedis
from redis_chat_history.transfer import (
    TransferSummary,
    aexport_sessions,
    aimport_sessions,
    amigrate_sessions,
    export_sessions,
    import_sessions,
    migrate_sessions,
)
from topologies import Cluster

PASSWORD = "cluster-s3cret"
#: What a failing transfer may take beyond retry_deadline: the first attempt's read (the
#: URL's 0.5 s socket timeout) plus scheduling slack on a loaded machine.
TOLERANCE = 1.5


def records(count: int, tag: str = "m") -> list[dict[str, Any]]:
    return [
        {"type": "human" if i % 2 == 0 else "ai", "data": {"content": f"{tag}{i}"}}
        for i in range(count)
    ]


def seed(store: ChatHistoryStore) -> None:
    """Sessions with messages, a ttl, metadata and an owner index entry."""
    store.append("plain", records(7))
    store.append("ünï/{tag} *?", records(3, "u"))
    store.create_session("owned", owner="alice", title="Hello")
    store.append("owned", records(4, "o"))


def results(summary: TransferSummary) -> dict[str, Any]:
    """A summary without its timing."""
    data = summary.to_dict()
    data.pop("seconds")
    return data


def lists(client: redis.Redis) -> dict[bytes, list[bytes]]:
    return {
        key: client.lrange(key, 0, -1)
        for key in sorted(client.scan_iter(_type="list"))  # type: ignore[no-untyped-call]
    }


# --- async variants ------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["native", "community", "memorystore"])
async def test_async_export_import_match_sync(
    client: redis.Redis, aclient: redis.asyncio.Redis, layout: str
) -> None:
    """aexport writes the file export writes; aimport restores what import restores."""
    sync_store = ChatHistoryStore(client, layout=layout)
    async_store = AsyncChatHistoryStore(aclient, layout=layout)
    seed(sync_store)
    before = lists(client)

    sync_out, async_out = io.StringIO(), io.StringIO()
    exported = export_sessions(sync_store, sync_out, chunk_size=2)
    aexported = await aexport_sessions(async_store, async_out, chunk_size=2)
    assert results(aexported) == results(exported)
    assert aexported.ok and aexported.sessions == 3
    assert sorted(async_out.getvalue().splitlines()) == sorted(sync_out.getvalue().splitlines())

    client.flushdb()
    imported = await aimport_sessions(async_store, io.BytesIO(async_out.getvalue().encode()))
    assert imported.ok, imported.problems
    assert (imported.sessions, imported.messages) == (3, 14)
    assert lists(client) == before
    info = sync_store.session_info("owned")
    assert info is not None and (info.owner, info.title) == ("alice", "Hello")
    assert [s.session_id for s in sync_store.owner_sessions("alice").sessions] == ["owned"]

    again = await aimport_sessions(async_store, io.StringIO(async_out.getvalue()))
    same = import_sessions(sync_store, io.StringIO(sync_out.getvalue()))
    assert results(again) == results(same)
    assert (again.messages, again.already_present) == (0, 14)


async def test_async_migrate_move_matches_sync(
    client: redis.Redis, aclient: redis.asyncio.Redis
) -> None:
    """amigrate --move copies, verifies, restores metadata and deletes as migrate does."""
    seed(ChatHistoryStore(client, layout="community"))
    source = AsyncChatHistoryStore(aclient, layout="community")
    target = AsyncChatHistoryStore(aclient, layout="native")
    summary = await amigrate_sessions(source, target, move=True, chunk_size=3)
    assert summary.ok, summary.problems
    assert (summary.sessions, summary.messages, summary.moved) == (3, 14, 3)
    native = ChatHistoryStore(client, layout="native")
    assert native.messages("owned") == records(4, "o")
    assert [s.session_id for s in native.owner_sessions("alice").sessions] == ["owned"]
    assert list(ChatHistoryStore(client, layout="community").session_ids()) == []
    # The sync migration back gives the same counts.
    back = migrate_sessions(
        ChatHistoryStore(client, layout="native"),
        ChatHistoryStore(client, layout="community"),
        move=True,
        chunk_size=3,
    )
    assert (back.sessions, back.messages, back.moved) == (3, 14, 3)


@pytest.mark.parametrize("layout", ["native", "community"])
async def test_a_guarded_delete_keeps_a_session_that_changed(
    client: redis.Redis, aclient: redis.asyncio.Redis, layout: str
) -> None:
    """The delete a move makes (delete_flow with unless_changed) removes the session only
    while its list is as verified: same length, same first and last element."""
    sync_store = ChatHistoryStore(client, layout=layout)
    store = AsyncChatHistoryStore(aclient, layout=layout)
    sync_store.create_session("s", owner="carol")
    sync_store.append("s", records(3))
    key = store.config.layout.messages_key("s")
    elements = client.lrange(key, 0, -1)
    seen = Unchanged(3, elements[0], elements[-1])
    sync_store.append("s", records(1, "late"))

    flow = delete_flow(store.config, ["s"], unless_changed={"s": seen})
    assert await store._drive(flow) == 0
    assert sync_store.count("s") == 4
    assert [s.session_id for s in sync_store.owner_sessions("carol").sessions] == ["s"]

    elements = client.lrange(key, 0, -1)
    now = Unchanged(4, elements[0], elements[-1])
    assert sync_store._drive(delete_flow(sync_store.config, ["s"], unless_changed={"s": now})) == 1
    assert client.exists(key, store.config.layout.meta_key("s")) == 0
    assert sync_store.owner_sessions("carol").sessions == ()
    assert client.zcard(store.config.layout.owner_index_key("carol")) == 0


# --- a cluster through a URL store ---------------------------------------------------------


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with topologies.cluster(tmp_path_factory.mktemp("cluster"), password=PASSWORD) as running:
        yield running


@pytest.fixture
def cluster_url(cluster: Cluster) -> Iterator[str]:
    with cluster.client() as admin:
        admin.flushall()
    yield f"redis://:{PASSWORD}@127.0.0.1:{cluster.ports[0]}/0"
    close_shared_clients()


@pytest.mark.timeout(120)
def test_transfers_on_a_cluster_through_a_url_store(cluster_url: str) -> None:
    """Export, import and migrate --move across the cluster's slots, by URL."""
    community = ChatHistoryStore(url=cluster_url, layout="community")
    ids = [f"s{n}" for n in range(12)]
    for session_id in ids:
        community.append(session_id, records(5, session_id))
    community.create_session("owned", owner="bob")
    community.append("owned", records(2))
    out = io.StringIO()
    exported = export_sessions(community, out, chunk_size=2)
    assert exported.ok and (exported.sessions, exported.messages) == (13, 62)

    native = ChatHistoryStore(url=cluster_url, layout="native")
    imported = import_sessions(native, io.StringIO(out.getvalue()), chunk_size=2)
    assert imported.ok and (imported.sessions, imported.messages) == (13, 62)
    assert native.messages("s3") == records(5, "s3")

    memorystore = ChatHistoryStore(url=cluster_url, layout="memorystore")
    moved = migrate_sessions(community, memorystore, move=True, chunk_size=2)
    assert moved.ok, moved.problems
    assert (moved.sessions, moved.moved) == (13, 13)
    assert list(community.session_ids()) == []
    assert memorystore.messages("owned") == records(2)
    assert [s.session_id for s in memorystore.owner_sessions("bob").sessions] == ["owned"]


@pytest.mark.timeout(120)
async def test_async_export_on_a_cluster(cluster_url: str) -> None:
    ChatHistoryStore(url=cluster_url).append("a", records(3))
    out = io.StringIO()
    summary = await aexport_sessions(AsyncChatHistoryStore(url=cluster_url), out)
    await aclose_shared_clients()
    assert summary.ok and (summary.sessions, summary.messages) == (1, 3)


# --- retry_deadline ------------------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[EmbeddedRedis]:
    """A server of our own, so stopping it disturbs no other test."""
    with EmbeddedRedis() as started:
        yield started
        os.kill(started.pid, signal.SIGCONT)


def export_of(count: int) -> str:
    with EmbeddedRedis() as source:
        store = ChatHistoryStore(url=source.url, layout="native")
        for n in range(count):
            store.append(f"s{n}", records(20, f"s{n}-"))
        out = io.StringIO()
        export_sessions(store, out)
        close_shared_clients()
        return out.getvalue()


def freezing_after(lines: list[str], after: int, server: EmbeddedRedis) -> Iterator[str]:
    """The lines, with the server frozen (SIGSTOP) after ``after`` of them."""
    for number, line in enumerate(lines):
        if number == after:
            os.kill(server.pid, signal.SIGSTOP)
        yield line


def url_of(server: EmbeddedRedis) -> str:
    return f"redis://127.0.0.1:{server.port}/0?cluster=no&socket_timeout=0.5"


@pytest.mark.timeout(60)
def test_an_import_into_a_stopped_server_fails_within_the_deadline(server: EmbeddedRedis) -> None:
    """The server stops answering half way: the import gives up after the store's
    retry_deadline instead of hanging."""
    lines = export_of(10).splitlines(keepends=True)
    store = ChatHistoryStore(url=url_of(server), retry_deadline=1)
    started = time.monotonic()
    with pytest.raises((redis.ConnectionError, redis.TimeoutError)):
        import_sessions(store, freezing_after(lines, len(lines) // 2, server), chunk_size=5)
    assert time.monotonic() - started < 1 + TOLERANCE
    close_shared_clients()


@pytest.mark.timeout(60)
def test_an_import_rides_out_a_short_outage(server: EmbeddedRedis) -> None:
    """Frozen for a second mid-way, within the deadline: the import completes, exactly."""
    lines = export_of(10).splitlines(keepends=True)
    store = ChatHistoryStore(url=url_of(server), retry_deadline=10)

    def thaw() -> None:
        time.sleep(1.0)
        os.kill(server.pid, signal.SIGCONT)

    thawing = threading.Thread(target=thaw)

    def with_outage() -> Iterator[str]:
        for number, line in enumerate(freezing_after(lines, len(lines) // 2, server)):
            if number == len(lines) // 2:
                thawing.start()
            yield line

    summary = import_sessions(store, with_outage(), chunk_size=5)
    thawing.join()
    assert summary.ok, summary.problems
    assert (summary.sessions, summary.messages) == (10, 200)
    assert all(store.count(f"s{n}") == 20 for n in range(10))
    close_shared_clients()


@pytest.mark.timeout(60)
async def test_an_async_import_into_a_stopped_server_fails_within_the_deadline(
    server: EmbeddedRedis,
) -> None:
    lines = export_of(10).splitlines(keepends=True)
    store = AsyncChatHistoryStore(url=url_of(server), retry_deadline=1)
    started = time.monotonic()
    with pytest.raises((redis.ConnectionError, redis.TimeoutError)):
        await aimport_sessions(store, freezing_after(lines, len(lines) // 2, server))
    assert time.monotonic() - started < 1 + TOLERANCE
    os.kill(server.pid, signal.SIGCONT)
    await aclose_shared_clients()
