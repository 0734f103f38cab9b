"""Refusals other than a wrong key type reach the caller as Redis's own errors, not WRONGTYPE."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis

from redis_chat_history import ChatHistoryStore, WrongTypeError
from redis_chat_history.embedded import EmbeddedRedis


def record(text: str) -> dict[str, object]:
    return {"type": "human", "data": {"content": text}}


@pytest.fixture
def server() -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis() as started:
        yield started


def test_out_of_memory_is_not_reported_as_wrong_type(server: EmbeddedRedis) -> None:
    """Over maxmemory (noeviction) the caller gets OOM, and nothing is left behind."""
    store = ChatHistoryStore(server.client(), retry_deadline=0)
    store.append("s", [record("fits")])
    with server.client() as admin:
        admin.config_set("maxmemory", "1")
        try:
            # Redis 7 raises OutOfMemoryError; 6.2 prefixes script errors, so match the text.
            with pytest.raises(redis.ResponseError, match="maxmemory") as caught:
                store.append("s", [record("x" * 10_000)])
            assert not isinstance(caught.value, WrongTypeError)
        finally:
            admin.config_set("maxmemory", "0")
    assert [r["data"]["content"] for r in store.messages("s")] == ["fits"]
    store.close()


def test_no_replicas_is_not_reported_as_wrong_type(server: EmbeddedRedis) -> None:
    """With min-replicas-to-write and no replica the caller gets NOREPLICAS."""
    store = ChatHistoryStore(server.client(), retry_deadline=0)
    with server.client() as admin:
        admin.config_set("min-replicas-to-write", "1")
        try:
            with pytest.raises(redis.ResponseError, match="NOREPLICAS") as caught:
                store.append("s", [record("a")])
            assert not isinstance(caught.value, WrongTypeError)
        finally:
            admin.config_set("min-replicas-to-write", "0")
    assert store.count("s") == 0
    store.close()


def test_writing_to_a_replica_says_read_only(server: EmbeddedRedis) -> None:
    """An append sent to a replica raises Redis's READONLY error."""
    with EmbeddedRedis(extra_args=["--replicaof", "127.0.0.1", str(server.port)]) as replica:
        with replica.client() as probe:
            deadline = time.monotonic() + 15
            while probe.info("replication").get("master_link_status") != "up":
                assert time.monotonic() < deadline
                time.sleep(0.05)
        store = ChatHistoryStore(replica.client(), retry_deadline=0)
        with pytest.raises(redis.ResponseError, match=r"(?i)read.?only") as caught:
            store.append("s", [record("a")])
        assert not isinstance(caught.value, WrongTypeError)
        store.close()
