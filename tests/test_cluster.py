"""The store on a real 3-master + 3-replica Redis Cluster: durability levels on the slot
owner's connection, exactly-once appends across MOVED/ASK/TRYAGAIN while a slot migrates,
and session ids chosen to break slotting and globbing."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from redis.crc import key_slot

import topologies
from redis_chat_history import (
    AsyncChatHistoryStore,
    ChatHistoryStore,
    DurabilityUnsupportedError,
    InvalidSessionIdError,
    NotDurableError,
    aclose_shared_clients,
    close_shared_clients,
)
from redis_chat_history.embedded import find_server_binary, server_version
from redis_chat_history.layouts import hash_slot, resolve_layout
from topologies import Cluster

pytestmark = pytest.mark.timeout(120)

PASSWORD = "cluster-s3cret"
LAYOUTS = ["native", "community", "memorystore"]
ODD_IDS = [
    "}", "{}", "a}b", "{", "{a}", "a{b}c", "}{", "*", "[x]", "a?b", "\\", "%7B", "%",
    "x" * 10_240, "é" * 10_240, "{" + "y" * 10_000 + "}",
]  # fmt: skip


def record(text: str) -> dict[str, Any]:
    return {"type": "human", "data": {"content": text, "type": "human"}}


def texts(messages: list[dict[str, Any]]) -> list[str]:
    return [message["data"]["content"] for message in messages]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with topologies.cluster(tmp_path_factory.mktemp("cluster"), password=PASSWORD) as running:
        yield running


@pytest.fixture
def url(cluster: Cluster) -> Iterator[str]:
    """A URL naming one node (the store finds the rest), on an emptied cluster."""
    with cluster.client() as admin:
        admin.flushall(target_nodes=redis.RedisCluster.PRIMARIES)
    yield f"redis://:{PASSWORD}@127.0.0.1:{cluster.ports[0]}/0"
    close_shared_clients()


def replica_has(cluster: Cluster, key: str, length: int) -> bool:
    """Whether the replica of the key's master already holds ``length`` elements."""
    (replica,) = cluster.replicas_of(cluster.master_for_key(key))
    with cluster.node_client(replica) as node:
        node.execute_command("READONLY")
        return int(node.llen(key)) == length


# ------------------------------------------------------------------------- durability levels


def test_replicated_appends_are_on_the_replica_when_acknowledged(
    cluster: Cluster, url: str
) -> None:
    """replicas=1 works on a cluster: WAIT runs on the slot owner's connection, so every
    acknowledged append of sessions spread over all three masters is already replicated."""
    store = ChatHistoryStore(url=url, durability="replicas=1,timeout_ms=5000")
    layout = resolve_layout("native")
    owners = set()
    for number in range(12):
        session_id = f"replicated-{number}"
        key = layout.messages_key(session_id)
        owners.add(cluster.master_for_key(key))
        for length in (1, 2):
            assert store.append(session_id, [record(f"{number}.{length}")]) == length
            assert replica_has(cluster, key, length), session_id
    assert len(owners) == 3


async def test_async_replicated_appends(cluster: Cluster, url: str) -> None:
    store = AsyncChatHistoryStore(url=url, durability="replicas=1,timeout_ms=5000")
    try:
        for number in range(6):
            session_id = f"async-replicated-{number}"
            assert await store.append(session_id, [record("a"), record("b")]) == 2
            assert replica_has(cluster, resolve_layout("native").messages_key(session_id), 2)
        assert await store.count("async-replicated-0") == 2
    finally:
        await aclose_shared_clients()


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_frozen_replica_means_not_durable_but_stored_once(
    cluster: Cluster, url: str, kind: str
) -> None:
    """With the owner's only replica SIGSTOPped the level cannot be met: the caller gets
    NotDurableError and the message is stored exactly once."""
    session_id = f"frozen-{kind}"
    key = resolve_layout("native").messages_key(session_id)
    (replica,) = cluster.replicas_of(cluster.master_for_key(key))
    level = "replicas=1,timeout_ms=300"

    async def append_async(text: str) -> int:
        store = AsyncChatHistoryStore(url=url, durability=level)
        try:
            return await store.append(session_id, [record(text)])
        finally:
            await aclose_shared_clients()

    def append(text: str) -> int:
        if kind == "async":
            return asyncio.run(append_async(text))
        return ChatHistoryStore(url=url, durability=level).append(session_id, [record(text)])

    assert append("first") == 1
    pid = cluster.nodes[replica].pid
    os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(NotDurableError, match="replicas=1"):
            append("second")
        assert 0.3 <= time.monotonic() - started < 2.0
    finally:
        os.kill(pid, signal.SIGCONT)
    store = ChatHistoryStore(url=url)
    assert texts(store.messages(session_id)) == ["first", "second"]


def test_fsync_on_a_cluster_is_checked_on_a_primary(url: str) -> None:
    """fsync needs WAITAOF (7.2+): refused before writing on older servers, kept otherwise."""
    store = ChatHistoryStore(url=url, durability="fsync")
    if server_version(find_server_binary()) < (7, 2, 0):
        with pytest.raises(DurabilityUnsupportedError, match="WAITAOF"):
            store.append("fsynced", [record("x")])
        assert store.count("fsynced") == 0
    else:
        assert store.append("fsynced", [record("x")]) == 1


# ----------------------------------------------------------------------- slot migration


def ids_in_one_slot(count: int, prefix: str) -> tuple[int, list[str]]:
    """``count`` native-layout session ids whose keys all hash to one slot."""
    by_slot: dict[int, list[str]] = {}
    layout = resolve_layout("native")
    number = 0
    while True:
        session_id = f"{prefix}-{number}"
        found = by_slot.setdefault(key_slot(layout.messages_key(session_id).encode()), [])
        found.append(session_id)
        if len(found) == count:
            return key_slot(layout.messages_key(session_id).encode()), found
        number += 1


class SlotMigration:
    """Moves one slot from its master to another, one step at a time, as redis-cli does."""

    def __init__(self, cluster: Cluster, slot: int) -> None:
        self.cluster, self.slot = cluster, slot
        masters = [port for port in cluster.running if cluster.replicas_of(port)]
        self.source = next(port for port in masters if self._owns(port))
        self.target = next(port for port in masters if port != self.source)

    def _owns(self, port: int) -> bool:
        with self.cluster.node_client(port) as node:
            return any(
                start <= self.slot <= end and int(owner[1]) == port
                for start, end, owner, *_ in node.execute_command("CLUSTER", "SLOTS")
            )

    def _node_id(self, port: int) -> str:
        with self.cluster.node_client(port, decode_responses=True) as node:
            return str(node.execute_command("CLUSTER", "MYID"))

    def begin(self) -> None:
        """Mark the slot importing on the target and migrating on the source."""
        with self.cluster.node_client(self.target) as target:
            target.execute_command(
                "CLUSTER", "SETSLOT", self.slot, "IMPORTING", self._node_id(self.source)
            )
        with self.cluster.node_client(self.source) as source:
            source.execute_command(
                "CLUSTER", "SETSLOT", self.slot, "MIGRATING", self._node_id(self.target)
            )

    def move_keys(self) -> int:
        """MIGRATE every key of the slot to the target; the number moved."""
        moved = 0
        with self.cluster.node_client(self.source) as source:
            while keys := source.execute_command("CLUSTER", "GETKEYSINSLOT", self.slot, 100):
                source.execute_command(
                    "MIGRATE", "127.0.0.1", self.target, "", 0, 5000,
                    "AUTH", PASSWORD, "KEYS", *keys,
                )  # fmt: skip
                moved += len(keys)
        return moved

    def finish(self) -> None:
        """Give the slot to the target: target first, then every other master."""
        target_id = self._node_id(self.target)
        masters = [port for port in self.cluster.running if self.cluster.replicas_of(port)]
        for port in [self.target, *(p for p in masters if p != self.target)]:
            with self.cluster.node_client(port) as node:
                node.execute_command("CLUSTER", "SETSLOT", self.slot, "NODE", target_id)


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_appends_follow_a_slot_migration_exactly_once(
    cluster: Cluster, url: str, kind: str
) -> None:
    """Appends before, during and after a slot migration are each stored exactly once and
    in order, with and without a durability level, on the slot's new owner.

    During the migration an append meets ASK (its keys moved) and then TRYAGAIN (a
    multi-key script needs all its keys on one node, and a session's metadata key does
    not exist yet), so it waits, retried within ``retry_deadline``, until the slot is
    handed over; then MOVED sends it to the new owner. A brand-new session waits too.
    """
    slot, (plain, durable, new) = ids_in_one_slot(3, f"migrating-{kind}")
    migration = SlotMigration(cluster, slot)
    levels = {plain: "none", durable: "replicas=1,timeout_ms=5000", new: "none"}
    asyncio.run(migrate_while_appending(kind, url, migration, levels))

    reader = ChatHistoryStore(url=url)
    for session_id in (plain, durable):
        assert texts(reader.messages(session_id)) == ["before", "during", "after"], session_id
    assert texts(reader.messages(new)) == ["during"]
    assert cluster.master_for_key(resolve_layout("native").messages_key(plain)) == (
        migration.target
    )
    assert replica_has(cluster, resolve_layout("native").messages_key(durable), 3)
    with cluster.node_client(migration.source) as source:
        assert source.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot) == 0


async def migrate_while_appending(
    kind: str, url: str, migration: SlotMigration, levels: dict[str, str]
) -> None:
    """Drive the migration steps (in a worker thread) around appends of the given kind."""
    stores: dict[str, Any] = {
        session_id: (ChatHistoryStore if kind == "sync" else AsyncChatHistoryStore)(
            url=url, durability=level
        )
        for session_id, level in levels.items()
    }

    async def append(session_id: str, text: str) -> int:
        store = stores[session_id]
        if kind == "sync":
            return int(await asyncio.to_thread(store.append, session_id, [record(text)]))
        return int(await store.append(session_id, [record(text)]))

    plain, durable, new = levels
    try:
        for session_id in (plain, durable):
            assert await append(session_id, "before") == 1
        await asyncio.to_thread(migration.begin)
        assert await asyncio.to_thread(migration.move_keys) >= 4
        during = {sid: asyncio.create_task(append(sid, "during")) for sid in levels}
        await asyncio.sleep(0.5)
        written = {sid: task.result() for sid, task in during.items() if task.done()}
        assert not written, f"written while the slot was split: {written}"
        await asyncio.to_thread(migration.finish)
        counts = await asyncio.wait_for(asyncio.gather(*during.values()), timeout=15)
        assert dict(zip(during, counts, strict=True)) == {plain: 2, durable: 2, new: 1}
        for session_id in (plain, durable):
            assert await append(session_id, "after") == 3
    finally:
        await aclose_shared_clients()
        # redis.asyncio closes connections of nodes dropped by a slot-map refresh in
        # background tasks; let them finish before asyncio.run closes the loop.
        await asyncio.sleep(0.2)


def test_writers_under_load_survive_a_slot_migration(cluster: Cluster, url: str) -> None:
    """Four threads append continuously while their slot migrates key by key; afterwards
    every acknowledged append is stored exactly once and in order."""
    slot, sessions = ids_in_one_slot(4, "busy-slot")
    migration = SlotMigration(cluster, slot)
    store = ChatHistoryStore(url=url)
    durable = ChatHistoryStore(url=url, durability="replicas=1,timeout_ms=5000")
    acked: dict[str, list[int]] = {session_id: [] for session_id in sessions}
    errors: list[BaseException] = []
    stop = threading.Event()

    def write(session_id: str, writer: ChatHistoryStore) -> None:
        seq = 0
        while not stop.is_set():
            try:
                writer.append(session_id, [record(str(seq))])
                acked[session_id].append(seq)
            except BaseException as error:
                errors.append(error)
                return
            seq += 1

    threads = [
        threading.Thread(target=write, args=(sid, durable if i % 2 else store))
        for i, sid in enumerate(sessions)
    ]
    for thread in threads:
        thread.start()
    time.sleep(0.3)
    migration.begin()
    time.sleep(0.3)
    migration.move_keys()
    time.sleep(0.3)
    migration.finish()
    time.sleep(0.5)
    stop.set()
    for thread in threads:
        thread.join(timeout=20)
    assert not errors, errors
    for session_id in sessions:
        stored = [int(text) for text in texts(store.messages(session_id))]
        assert stored == acked[session_id] == list(range(len(stored))), session_id
        assert len(stored) > 10
    assert cluster.master_for_key(resolve_layout("native").messages_key(sessions[0])) == (
        migration.target
    )


# ----------------------------------------------------------------------------- odd ids


@pytest.mark.parametrize("layout", LAYOUTS)
def test_ids_that_break_slotting_and_globbing(url: str, layout: str) -> None:
    """Every odd id keeps its keys in one slot (the append script and a durability level
    work), reads back as itself, and is listed exactly, also by prefix."""
    store = ChatHistoryStore(url=url, layout=layout)
    durable = ChatHistoryStore(url=url, layout=layout, durability="replicas=1,timeout_ms=5000")
    resolved = resolve_layout(layout)
    for session_id in ODD_IDS:
        assert hash_slot(resolved.messages_key(session_id)) == hash_slot(
            resolved.token_key(session_id)
        )
        assert store.append(session_id, [record("one")]) == 1
        assert durable.append(session_id, [record("two")]) == 2
        assert texts(store.messages(session_id)) == ["one", "two"]
        assert texts(store.messages(session_id, last=1)) == ["two"]
        assert store.count(session_id) == 2
        listed = list(store.session_ids(session_id))
        assert session_id in listed
        assert all(other.startswith(session_id) for other in listed), listed
    assert sorted(store.session_ids()) == sorted(ODD_IDS)
    assert sorted(store.session_ids("{")) == sorted(i for i in ODD_IDS if i.startswith("{"))
    assert sorted(store.session_ids("*")) == ["*"]
    assert sorted(store.session_ids("[x")) == ["[x]"]
    for session_id in ODD_IDS:
        assert store.clear(session_id)
    assert list(store.session_ids()) == []


async def test_odd_ids_async(url: str) -> None:
    store = AsyncChatHistoryStore(url=url, durability="replicas=1,timeout_ms=5000")
    try:
        for session_id in ODD_IDS:
            assert await store.append(session_id, [record(session_id[:8])]) == 1
        found = [session_id async for session_id in store.session_ids()]
        assert sorted(found) == sorted(ODD_IDS)
        assert await store.delete(*ODD_IDS) == len(ODD_IDS)
    finally:
        await aclose_shared_clients()


@pytest.mark.parametrize("session_id", ["a\nb", "x" * 16_385, "", "tab\there"])
def test_ids_refused_on_a_cluster_write_nothing(url: str, session_id: str) -> None:
    store = ChatHistoryStore(url=url)
    with pytest.raises(InvalidSessionIdError):
        store.append(session_id, [record("x")])
    assert list(store.session_ids()) == []
