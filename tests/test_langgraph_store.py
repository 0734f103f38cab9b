"""Our own tests of the LangGraph store (redis_chat_history.langgraph_store), on real
servers: InMemoryStore's semantics on shared data (filters, listings, order, pages),
TTL on items and index keys, bad input with clear errors and nothing else touched,
WRONGTYPE and corrupt items, a cluster, and exact vector search against a brute-force
reference. LangGraph's own store tests run on it through scripts/store_suite.sh.

Each behaviour test runs in four modes: RedisStore's sync API, AsyncRedisStore's async
API, and each class serving the other API.
"""

from __future__ import annotations

import asyncio
import math
import random
from array import array
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("langgraph.store.base")

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.cluster
from langgraph.graph import END, START, StateGraph
from langgraph.store.base import BaseStore, GetOp, InvalidNamespaceError, PutOp, SearchOp
from langgraph.store.memory import InMemoryStore
from typing_extensions import TypedDict

import topologies
from both_apis import Both
from redis_chat_history import _vectors, aclose_shared_clients
from redis_chat_history.errors import (
    CorruptItemError,
    InvalidItemError,
    InvalidOptionError,
    WrongTypeError,
)
from redis_chat_history.langgraph_store import AsyncRedisStore, RedisStore

pytestmark = pytest.mark.timeout(60)

MODES: dict[str, tuple[type, bool]] = {
    "sync": (RedisStore, False),
    "async": (AsyncRedisStore, True),
    "sync-on-async": (AsyncRedisStore, False),
    "async-on-sync": (RedisStore, True),
}


@pytest.fixture(params=list(MODES))
async def make(request: pytest.FixtureRequest, redis_url: str) -> AsyncIterator[Any]:
    cls, use_async = MODES[request.param]

    def build(**options: Any) -> Both:
        return Both(cls(redis_url, **options), use_async)

    yield build
    await aclose_shared_clients()


def nested(depth: int) -> dict[str, Any]:
    """A value ``depth`` dicts deep (its innermost holds ``x: 1``)."""
    value: dict[str, Any] = {"x": 1}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def item_key(namespace: tuple[str, ...], key: str, prefix: str = "lgstore", depth: int = 2) -> str:
    shard = ".".join(namespace[:depth])
    path = "".join(f"{label}." for label in namespace)
    return f"{prefix}:{{{shard}}}:i:{path}.{key}"


def keys_of(items: list[Any]) -> list[tuple[tuple[str, ...], str]]:
    return [(item.namespace, item.key) for item in items]


# 1. Items.


async def test_put_get_update_delete(make: Any) -> None:
    store = make()
    ns = ("memories", "u1")
    await store.put(ns, "a", {"text": "hello", "n": 1})
    first = await store.get(ns, "a")
    assert first.value == {"text": "hello", "n": 1}
    assert first.namespace == ns and first.key == "a"
    assert first.created_at == first.updated_at
    assert first.created_at.tzinfo is not None
    await store.put(ns, "a", {"text": "bye"})
    second = await store.get(ns, "a")
    assert second.value == {"text": "bye"}
    assert second.created_at == first.created_at
    assert second.updated_at > first.updated_at
    await store.delete(ns, "a")
    assert await store.get(ns, "a") is None
    assert await store.search(ns) == []
    assert await store.list_namespaces() == []


async def test_batch_reads_see_the_state_before_its_puts_and_results_keep_op_order(
    make: Any, client: Any
) -> None:
    store = make()
    ns = ("a", "b")
    await store.put(ns, "k", {"v": 0})
    results = await store.batch(
        [
            PutOp(ns, "k", {"v": 1}),
            GetOp(ns, "k"),
            SearchOp(ns),
            PutOp(ns, "k", {"v": 2}),
            PutOp(ns, "other", {"v": 3}),
            GetOp(ns, "other"),
        ]
    )
    assert results[0] is None and results[3] is None and results[4] is None
    assert results[1].value == {"v": 0}
    assert [item.value for item in results[2]] == [{"v": 0}]
    assert results[5] is None
    assert (await store.get(ns, "k")).value == {"v": 2}
    assert (await store.get(ns, "other")).value == {"v": 3}


async def test_puts_to_one_shard_are_one_script_call(make: Any, client: Any) -> None:
    store = make()
    await store.put(("warm", "up"), "k", {"v": 0})  # scripts loaded
    before = _script_calls(client)
    await store.batch([PutOp(("s", "1"), f"k{i}", {"i": i}) for i in range(5)])
    assert _script_calls(client) - before == 1


def _script_calls(client: Any) -> int:
    stats = client.info("commandstats")
    return sum(
        int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in ("evalsha", "eval")
    )


class Turn(TypedDict):
    user: str
    text: str
    remembered: list[str]


async def test_graph_nodes_read_and_write_memories(redis_url: str) -> None:
    """A compiled graph hands the store to its nodes (sync and async), as create_agent's
    tools get it; memories persist across invocations."""

    def remember(state: Turn, *, store: BaseStore) -> dict[str, Any]:
        namespace = ("memories", state["user"])
        store.put(namespace, str(len(store.search(namespace))), {"text": state["text"]})
        return {"remembered": [item.value["text"] for item in store.search(namespace)]}

    async def aremember(state: Turn, *, store: BaseStore) -> dict[str, Any]:
        namespace = ("memories", state["user"])
        await store.aput(
            namespace, str(len(await store.asearch(namespace))), {"text": state["text"]}
        )
        return {"remembered": [item.value["text"] for item in await store.asearch(namespace)]}

    for node, store in ((remember, RedisStore(redis_url)), (aremember, AsyncRedisStore(redis_url))):
        builder = StateGraph(Turn)
        builder.add_node("remember", node)
        builder.add_edge(START, "remember")
        builder.add_edge("remember", END)
        graph = builder.compile(store=store)
        user = node.__name__
        if node is remember:
            graph.invoke({"user": user, "text": "likes tea", "remembered": []})
            out = graph.invoke({"user": user, "text": "lives in Oslo", "remembered": []})
        else:
            await graph.ainvoke({"user": user, "text": "likes tea", "remembered": []})
            out = await graph.ainvoke({"user": user, "text": "lives in Oslo", "remembered": []})
        assert out["remembered"] == ["likes tea", "lives in Oslo"]
    await aclose_shared_clients()


# 2. Search and listings, against InMemoryStore on the same data.

NAMESPACES = [
    ("a",),
    ("a", "b"),
    ("ab",),
    ("a", "c", "d"),
    ("a", "b", "e"),
    ("users", "1", "prefs"),
    ("users", "2"),
    ("a-", "x"),
]


def dataset() -> list[tuple[tuple[str, ...], str, dict[str, Any]]]:
    rng = random.Random(7)
    rows = []
    for ns in NAMESPACES:
        for i in range(6):
            value: dict[str, Any] = {
                "i": i,
                "even": i % 2 == 0,
                "color": rng.choice(["red", "green", None]),
                "score": rng.choice([1, 2.5, 3, "4", True]),
                "nested": {"level": i % 3, "tags": ["x", str(i)]},
                "list": [1, i],
            }
            if i == 3:
                del value["color"]
            rows.append((ns, f"k{i}", value))
    return rows


FILTERS: list[dict[str, Any]] = [
    {},
    {"even": True},
    {"color": "red"},
    {"color": None},
    {"color": {"$ne": "red"}},
    {"i": {"$gte": 2, "$lt": 5}},
    {"score": {"$gt": 2}},
    {"score": 1},
    {"nested": {"level": 1}},
    {"nested": {"level": {"$lte": 1}}},
    {"nested.level": 2},
    {"list": [1, 4]},
    {"nested": {"tags": ["x", "2"]}},
    {"i": {"$eq": 3}, "even": False},
]


async def test_search_filters_order_and_pages_match_in_memory(make: Any) -> None:
    store = make()
    reference = InMemoryStore()
    for ns, key, value in dataset():
        await store.put(ns, key, value)
        reference.put(ns, key, value)
    for prefix in [(), ("a",), ("a", "b"), ("users",), ("users", "1"), ("zz",)]:
        for filter in FILTERS:
            if "nested.level" in filter:
                continue  # a dotted path: our extension (InMemoryStore reads the literal key)
            want = keys_of(reference.search(prefix, filter=filter, limit=1000))
            got = keys_of(await store.search(prefix, filter=filter, limit=1000))
            assert got == want, (prefix, filter)
            paged = []
            for offset in range(0, len(want) + 3, 3):
                paged += keys_of(await store.search(prefix, filter=filter, limit=3, offset=offset))
            assert paged == want, (prefix, filter)


async def test_dotted_filter_paths(make: Any) -> None:
    store = make()
    await store.put(("d", "1"), "k", {"a": {"b": {"c": 1}}})
    await store.put(("d", "1"), "literal", {"a.b": 2, "a": {"b": 3}})
    assert keys_of(await store.search(("d",), filter={"a.b.c": 1})) == [(("d", "1"), "k")]
    assert keys_of(await store.search(("d",), filter={"a.b": 2})) == [(("d", "1"), "literal")]


async def test_update_keeps_the_place_and_recreate_moves_last(make: Any) -> None:
    store = make()
    ns = ("o", "1")
    for key in "abc":
        await store.put(ns, key, {"k": key})
    await store.put(ns, "a", {"k": "a2"})
    assert [item.key for item in await store.search(ns)] == ["a", "b", "c"]
    await store.delete(ns, "a")
    await store.put(ns, "a", {"k": "a3"})
    assert [item.key for item in await store.search(ns)] == ["b", "c", "a"]


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"prefix": ("a",)},
        {"prefix": ("a", "b")},
        {"suffix": ("x",)},
        {"prefix": ("a", "*")},
        {"suffix": ("*", "prefs")},
        {"prefix": ("*",), "suffix": ("b",)},
        {"max_depth": 1},
        {"prefix": ("a",), "max_depth": 2},
        {"limit": 2, "offset": 1},
        {"prefix": ("users",), "limit": 1, "offset": 1},
        {"max_depth": 1, "limit": 2, "offset": 1},
    ],
)
async def test_list_namespaces_matches_in_memory(make: Any, options: dict[str, Any]) -> None:
    store = make()
    reference = InMemoryStore()
    for ns, key, value in dataset():
        await store.put(ns, key, value)
        reference.put(ns, key, value)
    assert await store.list_namespaces(**options) == reference.list_namespaces(**options)


# 3. TTL.


async def test_ttl_on_item_and_index_keys(make: Any, client: Any) -> None:
    store = make()
    ns = ("t", "1")
    await store.put(ns, "k", {"v": 1}, ttl=1)
    for key in (
        item_key(ns, "k"),
        "lgstore:{t.1}:n:t.1.",
        "lgstore:{t.1}:ns",
        "lgstore:{t.1}:clock",
    ):
        assert 55_000 < client.pttl(key) <= 60_000, key
    await store.put(ns, "forever", {"v": 2})
    assert client.pttl(item_key(ns, "forever")) == -1
    assert client.pttl("lgstore:{t.1}:n:t.1.") == -1  # an item without ttl lives there now
    assert client.pttl(item_key(ns, "k")) > 55_000


async def test_refresh_on_read_and_not(make: Any, client: Any) -> None:
    store = make()
    ns = ("t", "2")
    await store.put(ns, "k", {"v": 1}, ttl=1)
    client.pexpire(item_key(ns, "k"), 5_000)
    await store.get(ns, "k", refresh_ttl=False)
    assert client.pttl(item_key(ns, "k")) <= 5_000
    await store.search(ns, refresh_ttl=False)
    assert client.pttl(item_key(ns, "k")) <= 5_000
    await store.search(ns)
    assert client.pttl(item_key(ns, "k")) > 55_000
    client.pexpire(item_key(ns, "k"), 5_000)
    await store.get(ns, "k")
    assert client.pttl(item_key(ns, "k")) > 55_000


async def test_ttl_config_default_and_refresh_off(make: Any, client: Any) -> None:
    store = make(ttl={"default_ttl": 2, "refresh_on_read": False})
    ns = ("t", "3")
    await store.put(ns, "k", {"v": 1})
    assert 115_000 < client.pttl(item_key(ns, "k")) <= 120_000
    client.pexpire(item_key(ns, "k"), 5_000)
    await store.get(ns, "k")
    assert client.pttl(item_key(ns, "k")) <= 5_000
    await store.put(ns, "none", {"v": 1}, ttl=None)
    assert client.pttl(item_key(ns, "none")) == -1


async def test_expired_items_are_never_returned_and_their_index_goes(
    make: Any, client: Any
) -> None:
    store = make()
    await store.put(("e", "1"), "gone", {"v": 1}, ttl=0.001)  # 60 ms
    await store.put(("e", "1"), "kept", {"v": 2})
    await store.put(("e", "2"), "gone", {"v": 3}, ttl=0.001)
    await asyncio.sleep(0.15)
    assert await store.get(("e", "1"), "gone") is None
    assert keys_of(await store.search(("e",))) == [(("e", "1"), "kept")]
    assert await store.list_namespaces() == [("e", "1")]
    assert client.zrange("lgstore:{e.1}:n:e.1.", 0, -1) == [b"kept"]
    assert not client.exists("lgstore:{e.2}:n:e.2.", "lgstore:{e.2}:ns")
    assert client.zrange("lgstore:namespaces", 0, -1) == [b"e.1."]


# 4. Bad input, wrong types, corrupt items.


@pytest.mark.parametrize(
    "namespace", [(), ("a.b",), ("a", ""), ("a\x00",), (1,), ("langgraph", "x")]
)
async def test_bad_namespaces_are_refused(make: Any, client: Any, namespace: Any) -> None:
    store = make()
    with pytest.raises(InvalidNamespaceError):
        await store.put(namespace, "k", {"v": 1})
    assert client.dbsize() == 0


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ({"when": object()}, "not JSON-serialisable"),
        ({"x": float("nan")}, "not JSON-serialisable"),
        ({"big": "x" * 2000}, "over max_value_bytes"),
        ("not a dict", "must be a dict"),
        (nested(300), "nested more than 256"),
        (nested(100_000), "nested more than 256"),
    ],
    ids=["object", "nan", "big", "not-a-dict", "nested-300", "nested-100000"],
)
async def test_bad_values_write_nothing_of_the_batch(
    make: Any, client: Any, value: Any, reason: str
) -> None:
    store = make(max_value_bytes=1000)
    await store.put(("ok", "1"), "k", {"v": 1})
    before = {key: client.dump(key) for key in client.scan_iter(count=1000)}
    with pytest.raises(InvalidItemError, match=reason):
        await store.batch([PutOp(("ok", "1"), "k2", {"v": 2}), PutOp(("ok", "1"), "bad", value)])
    assert {key: client.dump(key) for key in client.scan_iter(count=1000)} == before


async def test_deep_values_up_to_the_limit_and_corrupt_deep_ones(make: Any, client: Any) -> None:
    """A value nested as deep as the limit round-trips and filters; one written deeper by
    someone else is reported as corrupt, naming its key, and other items still read."""
    store = make()
    deep = {"kind": "deep", "tree": nested(250)}
    await store.put(("deep", "1"), "ok", deep)
    assert (await store.get(("deep", "1"), "ok")).value == deep
    assert [item.key for item in await store.search(("deep",), filter={"kind": "deep"})] == ["ok"]
    await store.put(("deep", "1"), "bad", {"v": 1})
    client.hset(item_key(("deep", "1"), "bad"), "value", "[" * 5000 + "]" * 5000)
    with pytest.raises(CorruptItemError, match="bad"):
        await store.get(("deep", "1"), "bad")
    with pytest.raises(CorruptItemError, match="bad"):
        await store.search(("deep", "1"))
    assert (await store.get(("deep", "1"), "ok")).value == deep


async def test_bad_options_and_filters(make: Any) -> None:
    store = make()
    with pytest.raises(InvalidOptionError):
        await store.put(("x", "1"), "k", {"v": 1}, ttl=-1)
    with pytest.raises(InvalidOptionError, match="unsupported operator"):
        await store.search(("x",), filter={"v": {"$in": [1]}})
    with pytest.raises(InvalidOptionError, match="needs a number"):
        await store.search(("x",), filter={"v": {"$gt": "abc"}})
    with pytest.raises(InvalidOptionError, match="2\\*\\*53"):
        await store.search(("x",), filter={"v": 2**60})
    with pytest.raises(InvalidOptionError):
        RedisStore("redis://localhost", prefix="a{b}")
    with pytest.raises(InvalidOptionError):
        RedisStore("redis://localhost", shard_depth=0)
    with pytest.raises(InvalidOptionError):
        RedisStore("redis://localhost", ttl={"default_ttl": 0})
    with pytest.raises(InvalidOptionError):
        RedisStore(object())


async def test_wrong_type_keys_are_named_and_untouched(make: Any, client: Any) -> None:
    store = make()
    await store.put(("w", "1"), "fine", {"v": 1})
    key = item_key(("w", "1"), "clash")
    client.set(key, "precious")
    with pytest.raises(WrongTypeError, match="clash"):
        await store.put(("w", "1"), "clash", {"v": 2})
    with pytest.raises(WrongTypeError, match="clash"):
        await store.get(("w", "1"), "clash")
    assert client.get(key) == b"precious"
    assert (await store.get(("w", "1"), "fine")).value == {"v": 1}
    client.delete(key)
    client.zadd("lgstore:{w.1}:n:w.1.", {"clash": 1})  # a member whose item is a string
    client.set(key, "precious")
    with pytest.raises(WrongTypeError, match="clash"):
        await store.search(("w", "1"))
    assert client.get(key) == b"precious"
    client.set("lgstore:namespaces", "precious")
    with pytest.raises(WrongTypeError, match="lgstore:namespaces"):
        await store.list_namespaces()
    assert client.get("lgstore:namespaces") == b"precious"


async def test_a_batch_across_shards_is_all_or_nothing(
    make: Any, client: Any, topology: str
) -> None:
    """A batch's puts to several shards are one script on one server: a key of the wrong
    type in one shard refuses the whole batch, before anything is written. On a cluster
    each shard's puts are one script (the shards are other slots): the refused shard is
    untouched, and the others are applied."""
    store = make()
    clash = item_key(("s", "2"), "clash")
    client.set(clash, "precious")
    ops = [
        PutOp(("s", "1"), "a", {"v": 1}),
        PutOp(("s", "3"), "b", {"v": 2}),
        PutOp(("s", "2"), "clash", {"v": 3}),
        PutOp(("s", "2"), "c", {"v": 4}),
    ]
    with pytest.raises(WrongTypeError, match="clash"):
        await store.batch(ops)
    assert client.get(clash) == b"precious"
    assert await store.get(("s", "2"), "c") is None
    applied = [await store.get(("s", shard), key) for shard, key in (("1", "a"), ("3", "b"))]
    if topology == "cluster":
        assert [item.value for item in applied] == [{"v": 1}, {"v": 2}]
    else:
        assert applied == [None, None]
        assert await store.list_namespaces() == []
    client.delete(clash)
    await store.batch(ops)  # once the clash is gone, the same batch applies whole
    found = await store.search(("s",))
    assert sorted((tuple(item.namespace), item.key) for item in found) == [
        (("s", "1"), "a"),
        (("s", "2"), "c"),
        (("s", "2"), "clash"),
        (("s", "3"), "b"),
    ]


async def test_corrupt_items_name_their_key(make: Any, client: Any) -> None:
    store = make()
    await store.put(("c", "1"), "bad", {"v": 1})
    await store.put(("c", "1"), "good", {"v": 2})
    key = item_key(("c", "1"), "bad")
    client.hset(key, "value", "{not json")
    with pytest.raises(CorruptItemError, match=r"c\.1\.\.bad"):
        await store.get(("c", "1"), "bad")
    with pytest.raises(CorruptItemError, match=r"c\.1\.\.bad"):
        await store.search(("c", "1"))
    with pytest.raises(CorruptItemError, match=r"c\.1\.\.bad"):
        await store.search(("c", "1"), filter={"v": 2})
    assert (await store.get(("c", "1"), "good")).value == {"v": 2}
    assert client.hget(key, "value") == b"{not json"


# 5. Clients and constructors.


async def test_from_conn_string_and_given_clients(redis_url: str, topology: str) -> None:
    with RedisStore.from_conn_string(redis_url) as store:
        store.put(("f", "1"), "k", {"v": 1})
    async with AsyncRedisStore.from_conn_string(redis_url) as astore:
        assert (await astore.aget(("f", "1"), "k")).value == {"v": 1}
    await aclose_shared_clients()
    if topology != "standalone":
        return  # the given plain clients below need a standalone server (URLs work anywhere)
    sync_client = redis.Redis.from_url(redis_url, decode_responses=True)
    async_client = redis.asyncio.Redis.from_url(redis_url)
    try:
        on_sync = RedisStore(sync_client)
        assert on_sync.get(("f", "1"), "k").value == {"v": 1}
        assert (await on_sync.aget(("f", "1"), "k")).value == {"v": 1}
        assert RedisStore(redis_url=redis_url).get(("f", "1"), "k").value == {"v": 1}
        with pytest.raises(InvalidOptionError, match="one of"):
            AsyncRedisStore(redis_url, redis_client=async_client)
        on_async = AsyncRedisStore(redis_client=async_client)
        await on_async.aput(("f", "1"), "k2", {"v": 2})
        assert [item.key for item in await on_async.asearch(("f",))] == ["k", "k2"]
        with pytest.raises(InvalidOptionError, match="sync API"):
            on_async.get(("f", "1"), "k")
    finally:
        sync_client.close()
        await async_client.aclose()
        await aclose_shared_clients()


# 6. Lost replies: redis-py re-sends a batch after a timeout (test_exactly_once's recipe).


@pytest.fixture
def lost_reply(topology: str) -> Any:
    if topology != "standalone":
        pytest.skip("the lost-reply recipe needs DEBUG SLEEP on the standalone server")
    import test_exactly_once

    return test_exactly_once


def shape(client: Any, prefix: str) -> dict[str, Any]:
    """The store's keys and contents, leaving out what a re-send changes: clocks,
    stamps, scores (the order they give is checked through search)."""
    found: dict[str, Any] = {}
    for key in client.scan_iter(match=f"{prefix}:*", count=1000):
        name, kind = key.decode()[len(prefix) :], client.type(key)
        if kind == b"hash":
            fields = client.hgetall(key)
            found[name] = {f: v for f, v in fields.items() if f not in (b"created", b"updated")}
        elif kind == b"zset":
            found[name] = client.zrange(key, 0, -1)
        elif not name.endswith(":clock"):
            found[name] = client.get(key)
    return found


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
async def test_lost_reply_batch_applies_once(
    lost_reply: Any, redis_server: Any, redis_url: str, client: Any, use_async: bool
) -> None:
    """A batch of puts and a delete re-sent after a lost reply leaves what one send does."""
    flaky = lost_reply.flaky(redis_server, use_async)
    store = Both((AsyncRedisStore if use_async else RedisStore)(flaky), use_async)
    reference = Both(RedisStore(redis_url, prefix="ref"), False)
    ops = [
        PutOp(("l", "1"), "a", {"v": 1}, ttl=1),
        PutOp(("l", "1"), "b", {"v": 2}),
        PutOp(("l", "2"), "c", {"v": 3}),
        PutOp(("l", "1"), "old", None),
    ]
    try:
        for target in (reference, store):  # scripts loaded before the sleep
            await target.put(("l", "1"), "old", {"v": 0})
            await target.put(("l", "1"), "a", {"v": 0})
        await reference.batch(ops)
        lost_reply.reset_stats(redis_server)
        with lost_reply.server_asleep(redis_server):
            await store.batch(ops)
        assert lost_reply.calls_of(redis_server, "evalsha") >= 2, "the batch was not re-sent"
        assert shape(client, "lgstore") == shape(client, "ref")
        assert keys_of(await store.search(("l",))) == keys_of(await reference.search(("l",)))
        first = await reference.get(("l", "1"), "a")
        again = await store.get(("l", "1"), "a")
        assert again.value == first.value == {"v": 1}
        new = await store.get(("l", "2"), "c")
        assert new.created_at < new.updated_at  # the re-send updated it, keeping created
    finally:
        if use_async:
            await flaky.aclose()
        else:
            flaky.close()
        await aclose_shared_clients()


# 7. Cluster.


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[topologies.Cluster]:
    with topologies.cluster(
        Path(tmp_path_factory.mktemp("store-cluster")), replicas_per_master=0
    ) as running:
        yield running


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
async def test_cluster_shards_fan_out_and_listings(
    cluster: topologies.Cluster, use_async: bool
) -> None:
    admin = cluster.client()
    admin.flushall()
    if use_async:
        conn: Any = redis.asyncio.cluster.RedisCluster(
            startup_nodes=[
                redis.asyncio.cluster.ClusterNode(node.host, node.port)
                for node in cluster.startup_nodes
            ]
        )
        store = Both(AsyncRedisStore(conn), True)
    else:
        conn = cluster.client()
        store = Both(RedisStore(conn), False)
    reference = InMemoryStore()
    try:
        for ns, key, value in dataset():
            await store.put(ns, key, value)
            reference.put(ns, key, value)
        slots = {admin.keyslot(key) for key in admin.scan_iter(match="lgstore:{*}:ns", count=1000)}
        assert len(slots) > 3
        for prefix in [(), ("a",), ("users", "1", "prefs")]:
            for filter in FILTERS[:6]:
                want = keys_of(reference.search(prefix, filter=filter, limit=100))
                assert keys_of(await store.search(prefix, filter=filter, limit=100)) == want
                page = keys_of(await store.search(prefix, filter=filter, limit=4, offset=2))
                assert page == want[2:6]
        assert await store.list_namespaces() == reference.list_namespaces()
        assert await store.list_namespaces(prefix=("a",), max_depth=2) == (
            reference.list_namespaces(prefix=("a",), max_depth=2)
        )
        await store.delete(("users", "2"), "k0")
        assert await store.get(("users", "2"), "k0") is None
        embed = WordVectors(dims=8)
        vectors = Both(
            (AsyncRedisStore if use_async else RedisStore)(
                conn, prefix="vec", index={"dims": 8, "embed": embed, "fields": ["t"]}
            ),
            use_async,
        )
        for user, words in (("u1", "apple pie"), ("u2", "apple car"), ("u3", "boat")):
            await vectors.put(("mem", user), "k", {"t": words})
        found = await vectors.search(("mem",), query="apple pie", limit=2)
        assert [item.namespace for item in found] == [("mem", "u1"), ("mem", "u2")]
        assert found[0].score == pytest.approx(1.0, abs=1e-6)
    finally:
        admin.close()
        if use_async:
            await conn.aclose()
        else:
            conn.close()


# 8. Vector search, exact, against a brute-force reference.


class WordVectors:
    """A deterministic embedder: each word a fixed random vector, a text their sum."""

    def __init__(self, dims: int = 24) -> None:
        self.dims = dims
        self.calls = 0

    def _word(self, word: str) -> list[float]:
        rng = random.Random(word)
        return [rng.gauss(0, 1) for _ in range(self.dims)]

    def _one(self, text: str) -> list[float]:
        total = [0.0] * self.dims
        for word in text.split():
            total = [a + b for a, b in zip(total, self._word(word), strict=True)]
        return total

    def __call__(self, texts: list[str]) -> list[list[float]]:
        self.calls += 1
        return [self._one(text) for text in texts]


def cosine(a: list[float], b: list[float]) -> float:
    na, nb = math.sqrt(sum(x * x for x in a)), math.sqrt(sum(x * x for x in b))
    return 0.0 if na == 0 or nb == 0 else sum(x * y for x, y in zip(a, b, strict=True)) / na / nb


@pytest.fixture(params=["numpy", "python"])
def scoring(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Score query= searches with numpy (the vectors extra), or in pure Python without it."""
    if request.param == "python":
        monkeypatch.setattr(_vectors, "numpy", None)
    elif _vectors.numpy is None:
        pytest.skip("numpy is not installed (the vectors extra)")
    return str(request.param)


def test_numpy_and_python_scores_agree() -> None:
    """Both ways of scoring give each item its best cosine over its vectors, None for
    items without usable vectors, in double precision (equal to 1e-12)."""
    if _vectors.numpy is None:
        pytest.skip("numpy is not installed (the vectors extra)")
    rng = random.Random(7)
    dims = 48

    def unit() -> list[float]:
        raw = [rng.gauss(0, 1) for _ in range(dims)]
        norm = math.sqrt(sum(x * x for x in raw))
        return [x / norm for x in raw]

    packed: list[bytes | None] = []
    for i in range(300):
        vectors = [unit() for _ in range(i % 4)]
        packed.append(array("f", [x for v in vectors for x in v]).tobytes() or None)
    packed += [b"\x00" * 12, None, b""]  # the wrong length, missing, empty
    query = unit()
    with_numpy = _vectors.best_scores(packed, query, dims)
    numpy, _vectors.numpy = _vectors.numpy, None
    try:
        in_python = _vectors.best_scores(packed, query, dims)
    finally:
        _vectors.numpy = numpy
    assert [s is None for s in with_numpy] == [s is None for s in in_python]
    assert sum(s is not None for s in in_python) == 225
    for a, b in zip(with_numpy, in_python, strict=True):
        assert a == b or abs(a - b) < 1e-12  # type: ignore[operator]


async def test_vector_search_equals_brute_force(make: Any, scoring: str) -> None:
    embed = WordVectors()
    store = make(index={"dims": embed.dims, "embed": embed, "fields": ["title", "tags[*]"]})
    rng = random.Random(3)
    words = ["apple", "pear", "car", "boat", "red", "blue", "fast", "slow"]
    docs = {}
    for i in range(40):
        value = {
            "title": " ".join(rng.sample(words, 3)),
            "tags": rng.sample(words, rng.randint(0, 2)),
            "n": i,
        }
        docs[f"d{i}"] = value
        await store.put(("v", "1"), f"d{i}", value, index=False if i % 10 == 9 else None)
    for query in ["apple car", "blue boat fast", "pear"]:
        q = embed._one(query)
        expected = []
        for key, value in docs.items():
            if int(key[1:]) % 10 == 9:
                continue
            texts = [value["title"], *value["tags"]]
            expected.append((max(cosine(q, embed._one(t)) for t in texts), key))
        expected.sort(key=lambda pair: -pair[0])
        got = await store.search(("v", "1"), query=query, limit=100)
        reference = dict((key, score) for score, key in expected)
        # float32 storage may order near-ties (texts with the same words) differently
        assert {item.key for item in got[: len(expected)]} == set(reference)
        for item, (score, _key) in zip(got, expected, strict=False):
            assert item.score == pytest.approx(score, abs=1e-5)
            assert item.score == pytest.approx(reference[item.key], abs=1e-5)
        assert [item.score for item in got[len(expected) :]] == [None] * 4
        pages = []
        for offset in range(0, 44, 5):
            pages += await store.search(("v", "1"), query=query, limit=5, offset=offset)
        assert [item.key for item in pages] == [item.key for item in got]
        filtered = await store.search(("v",), query=query, filter={"n": {"$lt": 20}}, limit=100)
        assert [item.key for item in filtered] == [item.key for item in got if item.value["n"] < 20]


async def test_per_put_index_paths_and_reindex_on_update(make: Any, client: Any) -> None:
    embed = WordVectors(dims=8)
    store = make(index={"dims": 8, "embed": embed, "fields": ["missing"]})
    await store.put(("p", "1"), "k", {"a": "apple", "b": "boat"}, index=["a", "b"])
    assert len(client.hget(item_key(("p", "1"), "k"), "vec")) == 2 * 8 * 4
    await store.put(("p", "1"), "k", {"a": "apple"})  # the store's fields: nothing to embed
    assert client.hget(item_key(("p", "1"), "k"), "vec") is None
    [only] = await store.search(("p",), query="apple")
    assert only.score is None


async def test_query_search_refreshes_only_the_returned_items(make: Any, client: Any) -> None:
    embed = WordVectors(dims=8)
    store = make(index={"dims": 8, "embed": embed, "fields": ["t"]})
    ns = ("r", "1")
    for key, words in (("best", "apple pie"), ("other", "car boat"), ("third", "red slow")):
        await store.put(ns, key, {"t": words}, ttl=1)
        client.pexpire(item_key(ns, key), 5_000)
    [top] = await store.search(ns, query="apple pie", limit=1)
    assert top.key == "best" and top.score == pytest.approx(1.0, abs=1e-6)
    assert client.pttl(item_key(ns, "best")) > 55_000
    assert client.pttl(item_key(ns, "other")) <= 5_000
    assert client.pttl(item_key(ns, "third")) <= 5_000
    await store.search(ns, query="car boat", limit=1, refresh_ttl=False)
    assert client.pttl(item_key(ns, "other")) <= 5_000


async def test_fan_out_search_refreshes_only_the_page(make: Any, client: Any) -> None:
    store = make()
    for user in ("u1", "u2"):
        for key in ("a", "b"):
            await store.put(("f", user), key, {"v": 1}, ttl=1)
            client.pexpire(item_key(("f", user), key), 5_000)
    page = await store.search(("f",), limit=1, offset=1)  # shorter than the shard depth
    assert keys_of(page) == [(("f", "u1"), "b")]
    assert client.pttl(item_key(("f", "u1"), "b")) > 55_000
    for namespace, key in ((("f", "u1"), "a"), (("f", "u2"), "a"), (("f", "u2"), "b")):
        assert client.pttl(item_key(namespace, key)) <= 5_000


async def test_vector_search_on_a_decode_responses_client(redis_url: str, topology: str) -> None:
    """The packed vectors come back as bytes even from a decode_responses=True client."""
    if redis_url.startswith("redis+sentinel"):
        pytest.skip("a given plain client needs the server's own URL, not Sentinel's")
    embed = WordVectors(dims=8)
    kind: Any = redis.cluster.RedisCluster if topology == "cluster" else redis.Redis
    decoding = kind.from_url(redis_url, decode_responses=True)
    try:
        store = RedisStore(decoding, index={"dims": 8, "embed": embed, "fields": ["t"]})
        store.put(("d", "1"), "a", {"t": "apple"})
        store.put(("d", "1"), "b", {"t": "boat"})
        found = store.search(("d",), query="apple")
        assert [item.key for item in found] == ["a", "b"]
        assert all(item.score is not None for item in found)
        assert [item.key for item in await store.asearch(("d", "1"), query="boat")] == ["b", "a"]
    finally:
        decoding.close()
        await aclose_shared_clients()


async def test_create_agent_keeps_memories_across_threads(make: Any, redis_url: str) -> None:
    """The README's use: ``create_agent(..., checkpointer=saver, store=store)``; a tool
    stores a fact about the user in one conversation, and another conversation's tool finds
    it by semantic search (a fake model calls the tools)."""
    agents = pytest.importorskip("langchain.agents")
    from langchain.tools import ToolRuntime, tool
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage, HumanMessage

    from redis_chat_history.langgraph import RedisSaver

    class ToolCallingFake(GenericFakeChatModel):
        def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
            return self

    def remember(fact: str, runtime: Any) -> str:
        """Remember a fact about the user."""
        user = runtime.config["configurable"]["user_id"]
        runtime.store.put(("memories", user), f"fact-{len(fact)}", {"text": fact})
        return "remembered"

    def recall(question: str, runtime: Any) -> str:
        """Recall what is known about the user."""
        user = runtime.config["configurable"]["user_id"]
        found = runtime.store.search(("memories", user), query=question, limit=1)
        return found[0].value["text"] if found else "nothing"

    # Real annotations (this module's are strings): the tool injects a ToolRuntime.
    remember.__annotations__ = {"fact": str, "runtime": ToolRuntime, "return": str}
    recall.__annotations__ = {"question": str, "runtime": ToolRuntime, "return": str}

    def call(name: str, **args: Any) -> AIMessage:
        return AIMessage("", tool_calls=[{"name": name, "args": args, "id": f"call-{name}"}])

    store = make(index={"dims": 24, "embed": WordVectors(), "fields": ["text"]})
    model = ToolCallingFake(
        messages=iter(
            [
                call("remember", fact="likes ramen noodles"),
                AIMessage("Noted."),
                call("recall", question="ramen"),
                AIMessage("You like ramen."),
            ]
        )
    )
    saver = RedisSaver(redis_url, prefix="agent-saver")
    agent = Both(
        agents.create_agent(
            model, [tool(remember), tool(recall)], checkpointer=saver, store=store.target
        ),
        store.use_async,
    )
    await agent.invoke(
        {"messages": [HumanMessage("I like ramen noodles")]},
        {"configurable": {"thread_id": "first", "user_id": "u1"}},
    )
    out = await agent.invoke(
        {"messages": [HumanMessage("what do I like?")]},
        {"configurable": {"thread_id": "second", "user_id": "u1"}},
    )
    assert [m.content for m in out["messages"]][-2:] == ["likes ramen noodles", "You like ramen."]
    assert [item.key for item in await store.search(("memories",))] == ["fact-19"]


ODD_KEYS = ["", "{x}", "a.b", "..", "\n\x00", "ключ 🙂", "k" * 10_000, "%7B", "}{", " "]
ODD_NAMESPACES = [("u", "{a}"), ("u", "%7B"), ("u", "x y\t"), ("ü", "🙂"), ("a",), ("a", "b", "c")]


async def test_odd_keys_and_labels_behave_as_in_memory(make: Any) -> None:
    """Keys and labels with braces, percent signs, dots (keys), NUL and control
    characters, non-ASCII text, or 10,000 characters are stored, found and listed as
    InMemoryStore does (braces cannot move an item out of its shard's slot)."""
    store, reference = make(), InMemoryStore()
    for namespace in ODD_NAMESPACES:
        for key in ODD_KEYS:
            value = {"k": key, "ns": list(namespace)}
            await store.put(namespace, key, value)
            reference.put(namespace, key, value)
    for namespace in ODD_NAMESPACES:
        for key in ODD_KEYS:
            assert (await store.get(namespace, key)).value == {"k": key, "ns": list(namespace)}
        found = [item.key for item in await store.search(namespace, limit=100)]
        assert found == [item.key for item in reference.search(namespace, limit=100)]
    everything = await store.search((), limit=1000)
    assert sorted((tuple(i.namespace), i.key) for i in everything) == sorted(
        (tuple(i.namespace), i.key) for i in reference.search((), limit=1000)
    )
    assert sorted(await store.list_namespaces(limit=100)) == sorted(
        reference.list_namespaces(limit=100)
    )
    await store.delete(("u", "{a}"), "{x}")
    assert await store.get(("u", "{a}"), "{x}") is None
    assert (await store.get(("u", "{a}"), "}{")).value["k"] == "}{"


# Findings of a review, each a test that failed before its fix.


async def test_a_batch_mixing_lasting_and_expiring_items_keeps_the_lasting_one_listed(
    make: Any, client: Any
) -> None:
    """An item without ttl put in the same batch as one with a ttl keeps its index keys
    (the namespace's item set, the shard's namespaces and clock) for good."""
    store = make()
    ns = ("m", "u1", "a")
    await store.batch(
        [
            PutOp(ns, "forever", {"v": 1}, ttl=None),
            PutOp(ns, "short", {"v": 2}, ttl=0.001),
            PutOp(("m", "u1", "b"), "other", {"v": 3}, ttl=0.001),
        ]
    )
    lasting = [b"ns", b"clock", b"n:m.u1.a.", b"i:m.u1.a..forever"]
    for part in lasting:
        assert client.pttl(b"lgstore:{m.u1}:" + part) == -1, part
    await asyncio.sleep(0.15)
    assert [item.key for item in await store.search(ns)] == ["forever"]
    assert [item.key for item in await store.search(("m",))] == ["forever"]
    assert await store.list_namespaces() == [ns]


async def test_a_store_with_another_shard_depth_refuses_the_keys(
    make: Any, client: Any, redis_url: str
) -> None:
    """The first put records the shard depth under the prefix; a store (or the CLI) made
    with another depth refuses to read or write there, rather than reading live
    namespaces as empty and dropping them from the registry."""
    await make(shard_depth=1).put(("memories", "u1"), "food", {"v": 1})
    assert client.get("lgstore:shard_depth") == b"1"
    registry = client.zrange("lgstore:namespaces", 0, -1)
    other = make()
    for call in (
        other.list_namespaces(),
        other.search(("memories",)),
        other.put(("memories", "u2"), "k", {"v": 2}),
    ):
        with pytest.raises(InvalidOptionError, match="shard_depth=1"):
            await call
    assert client.zrange("lgstore:namespaces", 0, -1) == registry
    assert [item.key for item in await make(shard_depth=1).search(("memories",))] == ["food"]


async def test_a_registry_of_the_wrong_type_refuses_before_anything_is_written(
    make: Any, client: Any
) -> None:
    client.set("lgstore:namespaces", "precious")
    with pytest.raises(WrongTypeError, match="lgstore:namespaces"):
        await make().put(("a", "b"), "k", {"v": 1})
    assert {key for key in client.scan_iter()} == {b"lgstore:namespaces"}
    assert client.get("lgstore:namespaces") == b"precious"


@pytest.mark.parametrize("ttl", [float("inf"), 2e12, 100 * 365 * 24 * 60 + 1, float("nan")])
async def test_ttls_beyond_a_century_are_refused(make: Any, client: Any, ttl: float) -> None:
    store = make()
    with pytest.raises(InvalidOptionError, match="100 years"):
        await store.batch([PutOp(("t", "1"), "a", {"v": 1}), PutOp(("t", "1"), "b", {}, ttl=ttl)])
    assert client.dbsize() == 0
    with pytest.raises(InvalidOptionError):
        RedisStore("redis://localhost", ttl={"default_ttl": ttl})
    await store.put(("t", "1"), "c", {"v": 1}, ttl=100 * 365 * 24 * 60)  # the limit itself
    assert client.pttl(item_key(("t", "1"), "c")) > 3_000_000_000_000


async def test_corrupt_stamps_and_ttls_are_named_and_leave_the_batch_unapplied(
    make: Any, client: Any
) -> None:
    store = make()
    for key in ("x", "y", "z"):
        await store.put(("c", "1"), key, {"v": 0}, ttl=60)
    client.hset(item_key(("c", "1"), "y"), "created", "garbage")
    with pytest.raises(CorruptItemError, match="created"):
        await store.batch([PutOp(("c", "1"), "x", {"v": 1}), PutOp(("c", "1"), "y", {"v": 1})])
    assert (await store.get(("c", "1"), "x")).value == {"v": 0}
    with pytest.raises(CorruptItemError, match=r"c\.1\.\.y"):
        await store.search(("c", "1"))
    client.hset(item_key(("c", "1"), "y"), "created", "1")
    client.hset(item_key(("c", "1"), "z"), "ttl", "1.5")
    with pytest.raises(CorruptItemError, match="ttl"):
        await store.get(("c", "1"), "z")
    found = await store.search(("c", "1"), filter={"v": 0})  # read, just not refreshed
    assert sorted(item.key for item in found) == ["x", "y", "z"]


async def test_text_that_is_not_utf8_is_refused(make: Any, client: Any) -> None:
    store = make()
    with pytest.raises(InvalidItemError, match="UTF-8"):
        await store.put(("a", "b"), "k", {"v": "\ud800"})
    with pytest.raises(InvalidItemError, match="UTF-8"):
        await store.put(("a", "b"), "\udc80", {"v": 1})
    with pytest.raises(InvalidNamespaceError, match="UTF-8"):
        await store.put(("a", "\udc80"), "k", {"v": 1})
    with pytest.raises(InvalidNamespaceError, match="UTF-8"):
        await store.search(("\udc80",))
    with pytest.raises(InvalidItemError, match="must be str"):
        await store.batch([PutOp(("a", "b"), ["unhashable"], {"v": 1})])  # type: ignore[arg-type]
    assert client.dbsize() == 0


async def test_deep_filters_and_bad_max_depth_are_refused(make: Any) -> None:
    store = make()
    deep: Any = 1
    for _ in range(100):
        deep = {"a": deep}
    with pytest.raises(InvalidOptionError, match="nested more than 64"):
        await store.search(("x",), filter={"f": deep})
    with pytest.raises(InvalidOptionError, match=r"meta\.score"):
        await store.search(("x",), filter={"meta": {"score": {"$in": [1]}}})
    with pytest.raises(InvalidOptionError, match="max_depth"):
        await store.list_namespaces(max_depth="2")


async def test_negative_max_depth_past_one_chunk_matches_in_memory(make: Any) -> None:
    """More namespaces than one liveness chunk (256), truncated to a negative depth."""
    store, reference = make(), InMemoryStore()
    ops = [PutOp(("a", f"x{i:03d}"), "k", {"v": i}) for i in range(300)]
    ops.append(PutOp(("b",), "k", {"v": 0}))
    await store.batch(ops)
    reference.batch(ops)
    for limit, offset in ((1, 0), (2, 0), (5, 1)):
        got = await store.list_namespaces(max_depth=-1, limit=limit, offset=offset)
        assert got == reference.list_namespaces(max_depth=-1, limit=limit, offset=offset)


def test_on_a_cluster_new_namespaces_are_registered_after_their_script() -> None:
    """The flow, driven by hand (redis-free): on a cluster the registry is another node's,
    and a pipeline may reach it before the shard's script; a listing in between could
    drop a namespace the script then creates. So once the scripts reply, the namespaces
    they added to their shards are registered again, in a step of their own."""
    from redis_chat_history import _store_core as core
    from redis_chat_history._plan import Plan, Topology
    from redis_chat_history._store_batch import batch_flow

    keys = core.StoreKeys("lgstore", 2)
    shape = core.ServerShape()
    puts = [core.Put(("m", "u1"), "k", '{"v": 1}', 0), core.Put(("m", "u2"), "k", "{}", 0)]
    flow = batch_flow(keys, puts, shape)
    assert isinstance(next(flow), Topology)
    first = flow.send(True)  # a cluster
    assert [call.args for call in first.calls] == [
        ("GET", "lgstore:shard_depth"),
        ("TYPE", "lgstore:namespaces"),
    ]
    writes = flow.send(first.parse([None, b"none"]))
    assert isinstance(writes, Plan) and not shape.one_server
    scripts = [call for call in writes.calls if call.script is not None]
    assert len(scripts) == 2  # one per shard (slot)
    replies = []
    for call in writes.calls:
        replies.append(
            [1, b"m.u1."]
            if call.keys == scripts[0].keys and call.script
            else [1]
            if call.script
            else 1
        )
    follow_up = flow.send(writes.parse(replies))
    assert [call.args for call in follow_up.calls] == [("ZADD", "lgstore:namespaces", 0, "m.u1.")]
    with pytest.raises(StopIteration) as done:
        flow.send(follow_up.parse([1]))
    assert done.value.value == [None, None] and shape.depth_recorded
