"""One behaviour suite, run against the sync and the async store in every layout."""

from __future__ import annotations

from typing import Any

import pytest
import redis
import redis.asyncio

from redis_chat_history import (
    AsyncChatHistoryStore,
    ChatHistoryStore,
    CorruptMessageError,
    WrongTypeError,
)
from redis_chat_history.layouts import resolve_layout


def record(text: str, kind: str = "human") -> dict[str, Any]:
    return {"type": kind, "data": {"content": text, "type": kind}}


def texts(records: list[dict[str, Any]]) -> list[str]:
    return [r["data"]["content"] for r in records]


async def test_append_returns_count_and_reads_in_order(store: Any) -> None:
    """Appends return the new count and reads come back oldest first."""
    assert await store.append("s", [record("a")]) == 1
    assert await store.append("s", [record("b"), record("c")]) == 3
    assert texts(await store.messages("s")) == ["a", "b", "c"]
    assert await store.count("s") == 3


async def test_empty_batch_needs_no_write(store: Any, client: redis.Redis) -> None:
    """An empty batch writes nothing and returns the current count."""
    assert await store.append("s", []) == 0
    assert client.dbsize() == 0


async def test_missing_session_reads_empty(store: Any) -> None:
    """A session that was never written reads as empty."""
    assert await store.messages("nobody") == []
    assert await store.messages("nobody", last=5) == []
    assert await store.count("nobody") == 0


async def test_last_k_is_chronological(store: Any) -> None:
    """``last=k`` returns the newest k messages, oldest of them first."""
    await store.append("s", [record(str(i)) for i in range(10)])
    assert texts(await store.messages("s", last=3)) == ["7", "8", "9"]
    assert texts(await store.messages("s", last=1)) == ["9"]
    assert texts(await store.messages("s", last=50)) == [str(i) for i in range(10)]
    assert await store.messages("s", last=0) == []


@pytest.mark.parametrize(
    ("start", "stop", "expected"),
    [(0, None, list(range(10))), (2, 5, [2, 3, 4]), (8, None, [8, 9]), (5, 50, [5, 6, 7, 8, 9]),
     (12, None, []), (3, 3, []), (0, 1, [0])],
)  # fmt: skip
async def test_range_is_chronological(
    store: Any, start: int, stop: int | None, expected: list[int]
) -> None:
    """``start``/``stop`` select chronological positions, whatever the on-disk order."""
    await store.append("s", [record(str(i)) for i in range(10)])
    got = await store.messages("s", start=start, stop=stop)
    assert texts(got) == [str(i) for i in expected]


async def test_on_disk_order_matches_layout(store: Any, client: redis.Redis) -> None:
    """Community lists are newest first, memorystore and native lists oldest first."""
    await store.append("s", [record("old"), record("new")])
    key = store.config.layout.messages_key("s")
    head = client.lindex(key, 0)
    assert b'"new"' in head if store.config.layout.newest_first else b'"old"' in head


async def test_clear_removes_messages_and_tokens(store: Any, client: redis.Redis) -> None:
    """``clear`` deletes the session's list and its retry tokens, and only those."""
    await store.append("s", [record("a")])
    await store.append("other", [record("b")])
    assert await store.clear("s") is True
    assert await store.clear("s") is False
    assert await store.messages("s") == []
    layout = store.config.layout
    assert client.exists(layout.messages_key("s"), layout.token_key("s")) == 0
    assert texts(await store.messages("other")) == ["b"]


async def test_delete_counts_existing_sessions(store: Any) -> None:
    """``delete`` removes several sessions and counts those that existed."""
    for sid in ("a", "b", "c"):
        await store.append(sid, [record(sid)])
    assert await store.delete("a", "b", "zzz") == 2
    assert await store.session_ids_list() == ["c"]


async def test_ttl_is_set_and_refreshed_on_write(make_store: Any, layout_name: str,
                                                 client: redis.Redis) -> None:  # fmt: skip
    """A ttl expires the whole session; every append restarts it."""
    store = make_store(layout=layout_name, ttl=100)
    await store.append("s", [record("a")])
    key = store.config.layout.messages_key("s")
    client.expire(key, 5)
    await store.append("s", [record("b")])
    assert 95 <= client.ttl(key) <= 100
    assert 95 <= client.ttl(store.config.layout.token_key("s")) <= 600


async def test_no_ttl_leaves_list_persistent(store: Any, client: redis.Redis) -> None:
    """Without a ttl the list never expires; the token set expires on its own."""
    await store.append("s", [record("a")])
    assert client.ttl(store.config.layout.messages_key("s")) == -1
    assert 0 < client.ttl(store.config.layout.token_key("s")) <= 600


async def test_max_messages_keeps_newest(make_store: Any, layout_name: str) -> None:
    """``max_messages`` drops the oldest messages in the same atomic step as the append."""
    store = make_store(layout=layout_name, max_messages=3)
    await store.append("s", [record(str(i)) for i in range(5)])
    assert texts(await store.messages("s")) == ["2", "3", "4"]
    assert await store.append("s", [record("5")]) == 3
    assert texts(await store.messages("s")) == ["3", "4", "5"]


async def test_large_batch_is_one_atomic_append(store: Any) -> None:
    """Batches larger than Lua's unpack limit still land whole and in order."""
    batch = [record(str(i)) for i in range(9000)]
    assert await store.append("s", batch) == 9000
    got = await store.messages("s")
    assert texts(got) == [str(i) for i in range(9000)]


async def test_session_ids_lists_each_session_once(store: Any) -> None:
    """``session_ids`` finds every session, filtered by a literal prefix."""
    for sid in ("user:1/a", "user:1/b", "user:2/a", "u*", "u?x", "[u]"):
        await store.append(sid, [record(sid)])
    assert sorted(await store.session_ids_list()) == sorted(
        ["user:1/a", "user:1/b", "user:2/a", "u*", "u?x", "[u]"]
    )
    assert sorted(await store.session_ids_list("user:1/")) == ["user:1/a", "user:1/b"]
    assert await store.session_ids_list("u*") == ["u*"]
    assert await store.session_ids_list("[u") == ["[u]"]
    assert await store.session_ids_list("nope") == []


async def test_corrupt_element_names_key_and_index(store: Any, client: redis.Redis) -> None:
    """A corrupt stored value raises CorruptMessageError naming key and LINDEX index."""
    await store.append("s", [record("a"), record("b"), record("c")])
    key = store.config.layout.messages_key("s")
    client.lset(key, 1, b"{not json")
    with pytest.raises(CorruptMessageError) as caught:
        await store.messages("s")
    assert caught.value.key == key and caught.value.index == 1
    assert client.lindex(key, caught.value.index) == b"{not json"


async def test_non_record_json_is_corrupt(store: Any, client: redis.Redis) -> None:
    """Valid JSON that is not a message record is reported as corrupt too."""
    await store.append("s", [record("a"), record("b")])
    key = store.config.layout.messages_key("s")
    client.lset(key, 0, b'["a list"]')
    with pytest.raises(CorruptMessageError, match="record"):
        await store.messages("s")


async def test_non_strict_read_skips_with_warning(store: Any, client: redis.Redis) -> None:
    """``strict=False`` skips corrupt entries with a warning and returns the rest."""
    await store.append("s", [record("a"), record("b"), record("c")])
    client.lset(store.config.layout.messages_key("s"), 1, b"\xff\xfe")
    with pytest.warns(RuntimeWarning, match="corrupt message"):
        got = await store.messages("s", strict=False)
    assert len(got) == 2


async def test_windowed_read_skips_older_corruption(store: Any, client: redis.Redis) -> None:
    """``last=k`` reads only k elements, so corruption further back does not matter."""
    await store.append("s", [record(str(i)) for i in range(5)])
    layout = store.config.layout
    oldest = -1 if layout.newest_first else 0
    client.lset(layout.messages_key("s"), oldest, b"garbage")
    assert texts(await store.messages("s", last=4)) == ["1", "2", "3", "4"]
    with pytest.raises(CorruptMessageError):
        await store.messages("s")


async def test_corrupt_index_in_windowed_read(store: Any, client: redis.Redis) -> None:
    """The index in the error of a windowed read still points at the bad element."""
    await store.append("s", [record(str(i)) for i in range(6)])
    key = store.config.layout.messages_key("s")
    client.lset(key, 2, b"garbage")
    with pytest.raises(CorruptMessageError) as caught:
        await store.messages("s", last=6)
    assert client.lindex(key, caught.value.index) == b"garbage"


@pytest.mark.parametrize("kind", ["string", "hash"])
async def test_wrong_type_key_is_reported_and_untouched(
    store: Any, client: redis.Redis, kind: str
) -> None:
    """A list key holding another type raises WrongTypeError and stays as it was."""
    key = store.config.layout.messages_key("s")
    if kind == "string":
        client.set(key, b"precious")
    else:
        client.hset(key, "field", "precious")
    before = client.dump(key)
    with pytest.raises(WrongTypeError) as caught:
        await store.append("s", [record("a")])
    assert caught.value.key == key
    # With a durability level the script is pipelined with WAIT (errors get a prefix).
    with pytest.raises(WrongTypeError) as caught:
        await store.append("s", [record("a")], durability="replicas=1,timeout_ms=10")
    assert caught.value.key == key
    with pytest.raises(WrongTypeError):
        await store.messages("s")
    with pytest.raises(WrongTypeError):
        await store.count("s")
    assert client.dump(key) == before
    assert client.exists(store.config.layout.token_key("s")) == 0


async def test_wrong_type_token_key_is_reported(store: Any, client: redis.Redis) -> None:
    """A token key of the wrong type fails the append before anything is written."""
    token_key = store.config.layout.token_key("s")
    client.set(token_key, b"x")
    with pytest.raises(WrongTypeError) as caught:
        await store.append("s", [record("a")])
    assert caught.value.key == token_key
    assert client.exists(store.config.layout.messages_key("s")) == 0


async def test_decode_responses_client(
    make_store: Any, layout_name: str, redis_url: str, topology: str
) -> None:
    """Clients created with ``decode_responses=True`` read and write the same data."""
    bytes_store = make_store(layout=layout_name)
    await bytes_store.append("s", [record("é 🙂")])
    if topology == "standalone":  # the user's own decoding clients
        sync = ChatHistoryStore(redis.Redis.from_url(redis_url, decode_responses=True),
                                layout=layout_name)  # fmt: skip
        astore = AsyncChatHistoryStore(
            redis.asyncio.Redis.from_url(redis_url, decode_responses=True), layout=layout_name
        )
    else:  # decoding asked for in the URL, through cluster/sentinel/TLS handling
        separator = "&" if "?" in redis_url else "?"
        decoding_url = f"{redis_url}{separator}decode_responses=yes"
        sync = ChatHistoryStore(url=decoding_url, layout=layout_name)
        astore = AsyncChatHistoryStore(url=decoding_url, layout=layout_name)
    assert texts(sync.messages("s")) == ["é 🙂"]
    sync.append("s", [record("two")])
    assert list(sync.session_ids()) == ["s"]
    sync.close()
    async with astore:
        assert texts(await astore.messages("s")) == ["é 🙂", "two"]
        assert await astore.append("s", [record("three")]) == 3
        assert isinstance((await astore.messages("s"))[0]["data"]["content"], str)


async def test_layouts_do_not_see_each_other(make_store: Any) -> None:
    """Native and community stores on one database keep separate sessions."""
    native, community = make_store(layout="native"), make_store(layout="community")
    await native.append("s", [record("native")])
    await community.append("s", [record("community")])
    assert texts(await native.messages("s")) == ["native"]
    assert texts(await community.messages("s")) == ["community"]
    assert await native.session_ids_list() == ["s"]
    assert await community.session_ids_list() == ["s"]


def test_layout_names_resolve() -> None:
    """Layouts can be named by string."""
    assert resolve_layout("langchain-community").name == "community"
