"""Our own tests of the LangGraph checkpointers (redis_chat_history.langgraph), on real
servers, for what langgraph-checkpoint-conformance does not cover: real graphs and forks,
ttl on every key, idempotent re-sends, the order of pending writes, bad input, prune,
copy, delete, odd thread ids (one slot on a cluster), listing across threads.

Every saver test runs in four modes: RedisSaver's sync methods, AsyncRedisSaver's async
methods, and the cross cases (sync methods of an AsyncRedisSaver over a URL, async
methods of a RedisSaver).
"""

from __future__ import annotations

import asyncio
import inspect
import operator
import os
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Annotated, Any

import pytest

pytest.importorskip("langgraph.checkpoint.base")

import redis
import redis.asyncio
from langgraph.channels.delta import DeltaChannel
from langgraph.checkpoint.base import Checkpoint, empty_checkpoint
from langgraph.graph import END, START, StateGraph
from typing_extensions import TypedDict

from both_apis import Both
from redis_chat_history import aclose_shared_clients
from redis_chat_history.embedded import EmbeddedRedis
from redis_chat_history.errors import (
    CorruptCheckpointError,
    InvalidCheckpointError,
    InvalidOptionError,
    WrongTypeError,
)
from redis_chat_history.langgraph import AsyncRedisSaver, RedisSaver
from redis_chat_history.layouts import encode_tag, hash_slot

pytestmark = pytest.mark.timeout(60)

PARTS = ("idx", "ord", "cp", "cv", "blob", "md", "w", "wi")
MINUTE_MS = 60_000

#: mode -> (saver class, whether the async methods are used)
MODES: dict[str, tuple[type, bool]] = {
    "sync": (RedisSaver, False),
    "async": (AsyncRedisSaver, True),
    "sync-on-async": (AsyncRedisSaver, False),
    "async-on-sync": (RedisSaver, True),
}


@pytest.fixture(params=list(MODES))
async def make(request: pytest.FixtureRequest, redis_url: str) -> AsyncIterator[Any]:
    """Build a saver over the deployment's URL, wrapped in Both for the mode."""
    cls, use_async = MODES[request.param]

    def build(**options: Any) -> Both:
        return Both(cls(redis_url, **options), use_async)

    yield build
    await aclose_shared_clients()


def cfg(thread: Any, ns: str | None = None, checkpoint_id: str | None = None) -> Any:
    """A config; without ns, list() covers every namespace (get_tuple reads ns "")."""
    configurable: dict[str, Any] = {"thread_id": thread}
    if ns is not None:
        configurable["checkpoint_ns"] = ns
    if checkpoint_id is not None:
        configurable["checkpoint_id"] = checkpoint_id
    return {"configurable": configurable}


def make_checkpoint(values: dict[str, Any], versions: dict[str, str]) -> Checkpoint:
    checkpoint = empty_checkpoint()
    checkpoint["channel_values"] = dict(values)
    checkpoint["channel_versions"] = dict(versions)
    return checkpoint


def keys_of(thread: str, prefix: str = "lg") -> list[str]:
    return [f"{prefix}:{{{encode_tag(thread)}}}:{part}" for part in PARTS]


def key_of(thread: str, part: str, prefix: str = "lg") -> str:
    return keys_of(thread, prefix)[PARTS.index(part)]


def stored_keys(client: Any, prefix: str = "lg") -> set[str]:
    """The keys under the prefix but the thread registry (tested on its own: its scores
    are the time of the last put, so a re-send changes them)."""
    found = {key.decode() for key in client.scan_iter(match=f"{prefix}:*", count=1000)}
    return found - {f"{prefix}:threads"}


def snapshot(client: Any, prefix: str = "lg") -> dict[str, Any]:
    """Every key under the prefix with its contents (key names without the prefix)."""
    found: dict[str, Any] = {}
    for key in sorted(stored_keys(client, prefix)):
        kind = client.type(key)
        if kind == b"hash":
            found[key[len(prefix) :]] = ("hash", client.hgetall(key))
        elif kind == b"zset":
            found[key[len(prefix) :]] = ("zset", client.zrange(key, 0, -1, withscores=True))
        else:
            found[key[len(prefix) :]] = (kind, client.dump(key))
    return found


async def put_chain(
    saver: Both,
    thread: Any,
    ns: str = "",
    steps: int = 3,
    metadata: dict[str, Any] | None = None,
    writes: bool = True,
) -> list[dict[str, Any]]:
    """``steps`` checkpoints: the first sets channels a and b, later ones change a only
    (so the newest refers to b's first blob). Each checkpoint gets one write of its own."""
    config = cfg(thread, ns)
    values: dict[str, Any] = {}
    versions: dict[str, str] = {}
    saved = []
    for step in range(steps):
        changed = {"a": f"{ns}a{step}"} if step else {"a": f"{ns}a0", "b": f"{ns}b0"}
        new_versions = {channel: f"{step + 1:05d}" for channel in changed}
        values.update(changed)
        versions.update(new_versions)
        config = await saver.put(
            config,
            make_checkpoint(values, versions),
            {"source": "loop", "step": step, **(metadata or {})},
            new_versions,
        )
        if writes:
            await saver.put_writes(config, [("a", f"{ns}w{step}")], f"task{step}")
        saved.append(config)
    return saved


def ids(tuples: list[Any]) -> list[str]:
    return [t.config["configurable"]["checkpoint_id"] for t in tuples]


# 1. Real graphs.


class State(TypedDict):
    items: Annotated[list[str], operator.add]


def counting_node(state: State) -> dict[str, list[str]]:
    return {"items": [f"n{len(state['items'])}"]}


def counting_graph(saver: Any) -> Any:
    builder = StateGraph(State)
    builder.add_node("node", counting_node)
    builder.add_edge(START, "node")
    builder.add_edge("node", END)
    return builder.compile(checkpointer=saver)


async def test_graph_remembers_history_update_and_fork(make: Any) -> None:
    """A StateGraph with an operator.add channel remembers across invokes; get_state,
    get_state_history(limit), update_state; a fork from an older checkpoint leaves the
    original branch's checkpoints as they were."""
    saver = make()
    graph = Both(counting_graph(saver.target), saver.use_async)
    config = cfg("g1")
    assert await graph.invoke({"items": ["a"]}, config) == {"items": ["a", "n1"]}
    assert await graph.invoke({"items": ["b"]}, config) == {"items": ["a", "n1", "b", "n3"]}
    assert (await graph.get_state(config)).values == {"items": ["a", "n1", "b", "n3"]}
    assert (await graph.invoke({"items": ["x"]}, cfg("g2")))["items"] == ["x", "n1"]

    await graph.update_state(config, {"items": ["u"]})
    latest = await graph.get_state(config)
    assert latest.values == {"items": ["a", "n1", "b", "n3", "u"]}

    history = await graph.get_state_history(config)
    assert len(history) >= 5
    assert history[0].config == latest.config
    limited = await graph.get_state_history(config, limit=2)
    assert [s.config for s in limited] == [s.config for s in history[:2]]
    before = [(s.config, s.values, s.next) for s in history]

    # Fork from the end of the first invoke.
    fork_from = next(s for s in history if s.values == {"items": ["a", "n1"]} and not s.next)
    forked = await graph.invoke({"items": ["f"]}, fork_from.config)
    assert forked == {"items": ["a", "n1", "f", "n3"]}
    assert (await graph.get_state(config)).values == {"items": ["a", "n1", "f", "n3"]}
    # The original branch: every checkpoint still reads as before the fork.
    for old_config, values, next_nodes in before:
        again = await graph.get_state(old_config)
        assert (again.values, again.next) == (values, next_nodes)
    assert (await graph.get_state(cfg("g2"))).values == {"items": ["x", "n1"]}


async def test_create_agent_remembers(make: Any) -> None:
    """langchain's create_agent with a deterministic fake model keeps the conversation."""
    agents = pytest.importorskip("langchain.agents")
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage, HumanMessage

    saver = make()
    model = GenericFakeChatModel(messages=iter([AIMessage("first"), AIMessage("second")]))
    agent = Both(agents.create_agent(model, tools=[], checkpointer=saver.target), saver.use_async)
    config = cfg("agent")
    await agent.invoke({"messages": [HumanMessage("one")]}, config)
    result = await agent.invoke({"messages": [HumanMessage("two")]}, config)
    assert [m.content for m in result["messages"]] == ["one", "first", "two", "second"]
    state = await agent.get_state(config)
    assert [m.content for m in state.values["messages"]] == ["one", "first", "two", "second"]
    assert (await agent.get_state(cfg("other"))).values == {}


# 2. TTL.


def assert_ttls(client: Any, low: int = 0, high: int = MINUTE_MS, prefix: str = "lg") -> None:
    keys = stored_keys(client, prefix)
    assert keys
    ttls = {key: client.pttl(key) for key in keys}
    assert all(low < ttl <= high for ttl in ttls.values()), ttls


def shorten(client: Any, ms: int = 5000, prefix: str = "lg") -> None:
    for key in stored_keys(client, prefix):
        client.pexpire(key, ms)


async def test_ttl_on_every_key_and_refresh_on_read(make: Any, client: Any) -> None:
    """With a ttl every call leaves every key of the thread with it; with
    refresh_on_read, get_tuple and list extend it again."""
    saver = make(ttl={"default_ttl": 1, "refresh_on_read": True})
    (first,) = await put_chain(saver, "t", steps=1, writes=False)
    assert stored_keys(client) >= {key_of("t", p) for p in ("idx", "ord", "cp", "cv", "md")}
    assert_ttls(client)
    await saver.put_writes(first, [("a", 1), ("b", 2)], "task")
    assert stored_keys(client) == set(keys_of("t"))
    assert_ttls(client)
    for read in (
        lambda: saver.get_tuple(cfg("t")),
        lambda: saver.get_tuple(first),
        lambda: saver.list(cfg("t")),
        lambda: saver.list(None),
        lambda: saver.put_writes(first, [("a", 3)], "task2"),
        lambda: put_chain(saver, "t", ns="inner", steps=1),
    ):
        shorten(client)
        await read()
        assert_ttls(client, low=5000)


async def test_ttl_without_refresh_on_read(make: Any, client: Any) -> None:
    """refresh_on_read False: reads leave the ttl alone, writes set it."""
    saver = make(ttl={"default_ttl": 1, "refresh_on_read": False})
    (first,) = await put_chain(saver, "t", steps=1)
    assert stored_keys(client) == set(keys_of("t"))
    assert_ttls(client)
    shorten(client)
    assert (await saver.get_tuple(cfg("t"))) is not None
    assert len(await saver.list(cfg("t"))) == 1
    assert len(await saver.list(None)) == 1
    assert_ttls(client, high=5000)
    await saver.put_writes(first, [("b", 1)], "other")
    assert_ttls(client, low=5000)


async def test_no_ttl_means_no_expiry(make: Any, client: Any) -> None:
    saver = make()
    await put_chain(saver, "t", steps=2)
    assert {client.pttl(key) for key in stored_keys(client)} == {-1}


@pytest.mark.parametrize(
    "ttl",
    [
        {"default_ttl": 0},
        {"default_ttl": -1},
        {"default_ttl": "1"},
        {"default_ttl": True},
        {"default_ttl": float("nan")},
        {"default_ttl": float("inf")},
        {"default_ttl": 100 * 365 * 24 * 60 + 1},
        {"default_ttl": 1, "refresh_on_read": "yes"},
        {"default_ttl": 1, "bogus": 1},
        {"ttl": 1},
    ],
)
@pytest.mark.parametrize("cls", [RedisSaver, AsyncRedisSaver])
def test_bad_ttl_dicts(cls: type, ttl: dict[str, Any]) -> None:
    with pytest.raises(InvalidOptionError):
        cls("redis://127.0.0.1:1/0", ttl=ttl)


@pytest.mark.parametrize("ttl", [5, "60"])
@pytest.mark.parametrize("cls", [RedisSaver, AsyncRedisSaver])
def test_non_mapping_ttl(cls: type, ttl: Any) -> None:
    with pytest.raises(InvalidOptionError):
        cls("redis://127.0.0.1:1/0", ttl=ttl)


async def test_new_version_without_value_reads_as_unset(make: Any) -> None:
    """A channel in new_versions without a value is stored as empty and read as unset."""
    saver = make()
    checkpoint = make_checkpoint({"a": 1}, {"a": "00001", "gone": "00001"})
    saved = await saver.put(cfg("t", ""), checkpoint, {}, {"a": "00001", "gone": "00001"})
    found = await saver.get_tuple(saved)
    assert found.checkpoint["channel_values"] == {"a": 1}
    assert found.checkpoint["channel_versions"] == {"a": "00001", "gone": "00001"}


# 3. Idempotency.


async def test_put_and_put_writes_twice_are_idempotent(make: Any, client: Any) -> None:
    saver = make()
    (first,) = await put_chain(saver, "t", steps=1, writes=False)
    checkpoint = make_checkpoint({"a": 1, "b": [1, 2]}, {"a": "00002", "b": "00002"})
    args = (first, checkpoint, {"source": "loop", "step": 1}, {"a": "00002", "b": "00002"})
    second = await saver.put(*args)
    once = snapshot(client)
    assert await saver.put(*args) == second
    assert snapshot(client) == once

    writes = [("a", {"x": 1}), ("b", "text"), ("__error__", "boom")]
    await saver.put_writes(second, writes, "task", "path")
    once = snapshot(client)
    await saver.put_writes(second, writes, "task", "path")
    assert snapshot(client) == once
    assert (await saver.get_tuple(second)).pending_writes == [
        ("task", "__error__", "boom"),
        ("task", "a", {"x": 1}),
        ("task", "b", "text"),
    ]


@pytest.mark.parametrize("special", ["__error__", "__interrupt__"])
async def test_regular_writes_first_wins_special_last_wins(make: Any, special: str) -> None:
    saver = make()
    (config,) = await put_chain(saver, "t", steps=1, writes=False)
    await saver.put_writes(config, [("a", "first"), ("b", "first")], "task")
    await saver.put_writes(config, [("a", "second"), ("b", "second")], "task")
    await saver.put_writes(config, [(special, "first")], "task")
    await saver.put_writes(config, [(special, "second")], "task")
    pending = (await saver.get_tuple(config)).pending_writes
    assert sorted(pending) == sorted(
        [("task", "a", "first"), ("task", "b", "first"), ("task", special, "second")]
    )


# 4. Order of pending writes.


async def test_pending_writes_ordered_by_path_task_idx(make: Any) -> None:
    saver = make()
    (config,) = await put_chain(saver, "t", steps=1, writes=False)
    calls = [
        ("b", "t1", 2),
        ("a", "t2", 12),  # idx 10 and 11 sort after 2 (numerically)
        ("", "t9", 1),
        ("a", "t3", 3),
    ]  # task ids are unique (the field is task and idx): by path, then task, then idx
    for path, task, count in calls:
        await saver.put_writes(
            config, [(f"c{i}", f"{path}/{task}/{i}") for i in range(count)], task, path
        )
    expected = [
        (task, f"c{i}", f"{path}/{task}/{i}")
        for path, task, count in sorted(calls)
        for i in range(count)
    ]
    assert (await saver.get_tuple(config)).pending_writes == expected
    assert (await saver.list(cfg("t")))[0].pending_writes == expected


# 5. Bad input.


async def test_nul_characters_are_refused_and_nothing_written(make: Any, client: Any) -> None:
    saver = make()
    checkpoint = make_checkpoint({"a": 1}, {"a": "00001"})
    with pytest.raises(InvalidCheckpointError):
        await saver.put(cfg("t", "bad\0ns"), checkpoint, {}, {"a": "00001"})
    bad_channel = make_checkpoint({"a\0b": 1}, {"a\0b": "00001"})
    with pytest.raises(InvalidCheckpointError):
        await saver.put(cfg("t"), bad_channel, {}, {"a\0b": "00001"})
    old_channel = make_checkpoint({"a": 1}, {"a": "00001", "o\0ld": "00001"})
    with pytest.raises(InvalidCheckpointError):
        await saver.put(cfg("t"), old_channel, {}, {"a": "00001"})
    with pytest.raises(InvalidCheckpointError):
        await saver.get_tuple(cfg("t", "bad\0ns"))
    with pytest.raises(InvalidCheckpointError):
        await saver.list(cfg("t", "bad\0ns"))
    assert stored_keys(client) == set()

    (config,) = await put_chain(saver, "t", steps=1, writes=False)
    before = snapshot(client)
    bad_writes: list[tuple[dict[str, Any], list[tuple[str, Any]], str, str]] = [
        (config, [("ok", 1), ("bad\0channel", 2)], "task", ""),
        (config, [("ok", 1)], "bad\0task", ""),
        (config, [("ok", 1)], "task", "bad\0path"),
        (cfg("t", "bad\0ns", config["configurable"]["checkpoint_id"]), [("ok", 1)], "task", ""),
    ]
    for write_config, writes, task_id, task_path in bad_writes:
        with pytest.raises(InvalidCheckpointError):
            await saver.put_writes(write_config, writes, task_id, task_path)
    assert snapshot(client) == before


async def test_missing_thread_id(make: Any, client: Any) -> None:
    saver = make()
    checkpoint = make_checkpoint({"a": 1}, {"a": "00001"})
    configs: list[dict[str, Any]] = [{"configurable": {}}, {"configurable": {"thread_id": ""}}, {}]
    for config in configs:
        with pytest.raises(InvalidCheckpointError):
            await saver.put(config, checkpoint, {}, {"a": "00001"})
        with pytest.raises(InvalidCheckpointError):
            await saver.get_tuple(config)
        with pytest.raises(InvalidCheckpointError):
            await saver.put_writes(
                {"configurable": {**config.get("configurable", {}), "checkpoint_id": "x"}},
                [("a", 1)],
                "task",
            )
    assert stored_keys(client) == set()


async def test_wrong_type_key_is_named_and_untouched(make: Any, client: Any) -> None:
    saver = make()
    await put_chain(saver, "fine", steps=1)
    fine = snapshot(client)
    key = key_of("t", "cp")
    client.set(key, b"not a hash")
    config = cfg("t", checkpoint_id="1f0")
    checkpoint = make_checkpoint({"a": 1}, {"a": "00001"})
    calls: list[Callable[[], Any]] = [
        lambda: saver.put(cfg("t"), checkpoint, {}, {"a": "00001"}),
        lambda: saver.get_tuple(cfg("t")),
        lambda: saver.get_tuple(config),
        lambda: saver.list(cfg("t")),
        lambda: saver.put_writes(config, [("a", 1)], "task"),
        lambda: saver.prune(["t"]),
    ]
    for call in calls:
        with pytest.raises(WrongTypeError) as caught:
            await call()
        assert caught.value.key == key
        assert client.get(key) == b"not a hash"
        assert stored_keys(client) == {key} | {f"lg{k}" for k in fine}
    assert snapshot(client, "lg") == {**fine, key[2:]: (b"string", client.dump(key))}


@pytest.mark.parametrize("garbage", [b"garbage", b"msgpack\0\xc1\xc1"])
async def test_corrupt_blob_names_key_and_field(make: Any, client: Any, garbage: bytes) -> None:
    saver = make()
    await put_chain(saver, "bad", steps=1)
    await put_chain(saver, "good", steps=2)
    blob = key_of("bad", "blob")
    field = b"\0b\x0000001"
    assert client.hexists(blob, field)
    client.hset(blob, field, garbage)
    reads: list[Callable[[], Any]] = [
        lambda: saver.get_tuple(cfg("bad")),
        lambda: saver.list(cfg("bad")),
    ]
    for read in reads:
        with pytest.raises(CorruptCheckpointError) as caught:
            await read()
        assert caught.value.key == blob
        assert "b" in caught.value.field
        assert client.hget(blob, field) == garbage
    good = await saver.get_tuple(cfg("good"))
    assert good.checkpoint["channel_values"] == {"a": "a1", "b": "b0"}
    assert len(await saver.list(cfg("good"))) == 2


async def test_corrupt_checkpoint_payload(make: Any, client: Any) -> None:
    saver = make()
    (config,) = await put_chain(saver, "bad", steps=1)
    cp = key_of("bad", "cp")
    (field,) = client.hkeys(cp)
    client.hset(cp, field, b"json\0{not json")
    with pytest.raises(CorruptCheckpointError) as caught:
        await saver.get_tuple(config)
    assert caught.value.key == cp
    assert config["configurable"]["checkpoint_id"] in caught.value.field


# 6. Prune.


async def test_prune_keep_latest(make: Any, client: Any) -> None:
    saver = make()
    main = await put_chain(saver, "t", steps=3)
    inner = await put_chain(saver, "t", ns="inner", steps=2)
    await put_chain(saver, "other", steps=2)
    other = snapshot(client, "lg:{other}")
    latest_main = await saver.get_tuple(main[-1])
    latest_inner = await saver.get_tuple(inner[-1])
    blob = key_of("t", "blob")
    blobs_before = client.hlen(blob)
    assert blobs_before == 4 + 3  # main: a x3, b; inner: a x2, b

    await saver.prune(["t"])

    assert ids(await saver.list(cfg("t", ""))) == [main[-1]["configurable"]["checkpoint_id"]]
    assert ids(await saver.list(cfg("t", "inner"))) == [inner[-1]["configurable"]["checkpoint_id"]]
    assert len(await saver.list(cfg("t"))) == 2
    for before, config in ((latest_main, main[-1]), (latest_inner, inner[-1])):
        after = await saver.get_tuple(config)
        assert after.checkpoint == before.checkpoint
        assert after.metadata == before.metadata
        assert after.pending_writes == before.pending_writes != []
        assert before.parent_config is not None
        assert after.parent_config is None
        assert (await saver.get_tuple(before.parent_config)) is None
    assert client.hlen(blob) == 4  # a and b of each namespace's newest
    assert client.hlen(key_of("t", "w")) == 2
    assert client.zcard(key_of("t", "wi")) == 2
    assert client.hlen(key_of("t", "cp")) == 2
    assert client.zcard(key_of("t", "ord")) == 2
    assert snapshot(client, "lg:{other}") == other


async def test_prune_keeps_parent_when_kept(make: Any, client: Any) -> None:
    """A single checkpoint per namespace: prune changes nothing."""
    saver = make()
    await put_chain(saver, "t", steps=1)
    before = snapshot(client)
    await saver.prune(["t"])
    assert snapshot(client) == before


async def test_prune_delete_empty_and_delta(make: Any, client: Any) -> None:
    saver = make()
    await put_chain(saver, "t", steps=2)
    await put_chain(saver, "t", ns="inner", steps=2)
    await put_chain(saver, "keep", steps=2)
    keep = snapshot(client, "lg:{keep}")
    before = snapshot(client)
    await saver.prune([])
    assert snapshot(client) == before
    with pytest.raises(InvalidOptionError):
        await saver.prune(["t"], strategy="everything")
    assert snapshot(client) == before
    await saver.prune(["t"], strategy="delete")
    assert stored_keys(client) == set(keys_of("keep"))
    assert snapshot(client, "lg:{keep}") == keep

    await put_chain(saver, "delta", steps=2, metadata={"counters_since_delta_snapshot": {"a": 1}})
    delta = snapshot(client, "lg:{delta}")
    with pytest.raises(NotImplementedError):
        await saver.prune(["delta"])
    assert snapshot(client, "lg:{delta}") == delta
    await saver.prune(["delta"], strategy="delete")
    assert stored_keys(client) == set(keys_of("keep"))


# 7. Copy.


def without_thread(tuples: list[Any]) -> list[Any]:
    def strip(config: Any) -> Any:
        if config is None:
            return None
        return {k: v for k, v in config["configurable"].items() if k != "thread_id"}

    return [
        (strip(t.config), t.checkpoint, t.metadata, strip(t.parent_config), t.pending_writes)
        for t in tuples
    ]


async def test_copy_thread(make: Any, client: Any) -> None:
    saver = make()
    await put_chain(saver, "src", steps=3)
    await put_chain(saver, "src", ns="inner", steps=2)
    await put_chain(saver, "dst", steps=1, metadata={"old": True})
    source = snapshot(client, "lg:{src}")
    listing = await saver.list(cfg("src"))
    assert len(listing) == 5

    await saver.copy_thread("src", "dst")

    assert snapshot(client, "lg:{src}") == source
    assert snapshot(client, "lg:{dst}") == source
    copied = await saver.list(cfg("dst"))
    assert without_thread(copied) == without_thread(listing)
    assert all(t.config["configurable"]["thread_id"] == "dst" for t in copied)
    assert await saver.list(cfg("dst"), filter={"old": True}) == []
    assert {c: len(await saver.list(cfg("dst", c))) for c in ("", "inner")} == {"": 3, "inner": 2}


async def test_copy_missing_source_leaves_target(make: Any, client: Any) -> None:
    """Copying a thread that does not exist does nothing (the target is left as it was)."""
    saver = make()
    await put_chain(saver, "dst", steps=2)
    before = snapshot(client)
    await saver.copy_thread("missing", "dst")
    assert snapshot(client) == before


async def test_copy_keeps_ttl(make: Any, client: Any) -> None:
    saver = make(ttl={"default_ttl": 1})
    await put_chain(saver, "src", steps=2)
    await saver.copy_thread("src", "dst")
    assert stored_keys(client, "lg:{dst}") == set(keys_of("dst"))
    assert_ttls(client, prefix="lg:{dst}")
    assert_ttls(client, prefix="lg:{src}")


# 8. Delete, odd thread ids.


ODD_IDS = ["{", "%7B", "{brace", "close}", "{both}", "per%cent", "%257B", "ünïcødé 💬", "a:b{c}d%e"]


async def test_delete_thread(make: Any, client: Any) -> None:
    saver = make()
    await put_chain(saver, "t", steps=2)
    await put_chain(saver, "t", ns="inner", steps=1)
    await put_chain(saver, "other", steps=2)
    other = snapshot(client, "lg:{other}")
    assert stored_keys(client) == set(keys_of("t")) | set(keys_of("other"))
    await saver.delete_thread("t")
    assert stored_keys(client) == set(keys_of("other"))
    assert snapshot(client, "lg:{other}") == other
    assert await saver.get_tuple(cfg("t")) is None
    assert await saver.list(cfg("t")) == []
    await saver.delete_thread("never-existed")
    assert snapshot(client, "lg:{other}") == other


async def test_odd_thread_ids(make: Any, client: Any) -> None:
    saver = make()
    for thread in ODD_IDS:
        await put_chain(saver, thread, steps=2)
        await put_chain(saver, thread, ns="sub", steps=1)
    stored = stored_keys(client)
    for thread in ODD_IDS:
        keys = keys_of(thread)
        assert set(keys) <= stored
        assert len({hash_slot(key) for key in keys}) == 1
        tag = keys[0][len("lg:{") : -len("}:idx")]
        assert "{" not in tag and "}" not in tag
        found = await saver.get_tuple(cfg(thread))
        assert found.config["configurable"]["thread_id"] == thread
        assert found.checkpoint["channel_values"] == {"a": "a1", "b": "b0"}
        assert len(await saver.list(cfg(thread))) == 3
    everything = await saver.list(None)
    assert sorted({t.config["configurable"]["thread_id"] for t in everything}) == sorted(ODD_IDS)
    for thread in ODD_IDS[:3]:
        await saver.delete_thread(thread)
    assert stored_keys(client) == {key for thread in ODD_IDS[3:] for key in keys_of(thread)}
    await saver.copy_thread(ODD_IDS[3], ODD_IDS[0])
    assert len(await saver.list(cfg(ODD_IDS[0]))) == 3


async def test_int_thread_id(make: Any) -> None:
    """LangGraph accepts non-str thread ids; they are stored as their text."""
    saver = make()
    await put_chain(saver, 42, steps=2)
    assert (await saver.get_tuple(cfg(42))).config["configurable"]["thread_id"] == 42
    assert (await saver.get_tuple(cfg("42"))) is not None


# 9. Listing.


async def test_list_across_threads_and_prefixes(make: Any, client: Any) -> None:
    saver = make()
    other = make(prefix="lg2")
    nested = make(prefix="lg:x")
    globby = make(prefix="l?")  # glob characters in the prefix match only themselves
    for thread in ("a", "b", "c"):
        await put_chain(saver, thread, steps=2)
    await put_chain(saver, "a", ns="inner", steps=1)
    await put_chain(other, "z", steps=2)
    await put_chain(nested, "y", steps=1)
    assert await globby.list(None) == []
    await put_chain(globby, "q", steps=1)
    assert {t.config["configurable"]["thread_id"] for t in await globby.list(None)} == {"q"}
    everything = await saver.list(None)
    assert len(everything) == 7
    assert {t.config["configurable"]["thread_id"] for t in everything} == {"a", "b", "c"}
    assert {t.config["configurable"]["thread_id"] for t in await other.list(None)} == {"z"}
    assert {t.config["configurable"]["thread_id"] for t in await nested.list(None)} == {"y"}
    assert client.exists(*keys_of("q", "l?")) == len(PARTS)
    assert len(await saver.list(None, limit=3)) == 3
    assert len(await saver.list(None, filter={"step": 1})) == 3


async def test_list_filter_before_limit(make: Any) -> None:
    saver = make()
    await put_chain(saver, "t", steps=2, metadata={"user": "u1", "tags": {"k": [1, 2]}})
    await put_chain(saver, "t", steps=2, metadata={"user": "u2", "tags": {"k": [3]}})
    u1 = await put_chain(saver, "t", steps=1, metadata={"user": "u1", "tags": {"k": [3]}})
    await put_chain(saver, "other", steps=1, metadata={"user": "u1", "tags": {"k": [3]}})

    listing = await saver.list(cfg("t"))
    assert len(listing) == 5
    assert ids(listing) == sorted(ids(listing), reverse=True)  # newest first

    by_user = await saver.list(cfg("t"), filter={"user": "u1"})
    assert [t.metadata["step"] for t in by_user] == [0, 1, 0]
    by_tags = await saver.list(cfg("t"), filter={"tags": {"k": [3]}})
    assert [t.metadata["user"] for t in by_tags] == ["u1", "u2", "u2"]
    both = await saver.list(cfg("t"), filter={"user": "u1", "tags": {"k": [3]}})
    assert ids(both) == [u1[0]["configurable"]["checkpoint_id"]]
    assert await saver.list(cfg("t"), filter={"user": "nobody"}) == []
    assert await saver.list(cfg("t"), filter={"absent": "x"}) == []
    assert len(await saver.list(cfg("t"), filter={"absent": None})) == 5
    assert len(await saver.list(None, filter={"user": "u1", "tags": {"k": [3]}})) == 2

    assert ids(await saver.list(cfg("t"), limit=2)) == ids(listing)[:2]
    assert ids(await saver.list(cfg("t"), before=listing[1].config)) == ids(listing)[2:]
    assert ids(await saver.list(cfg("t"), before=listing[1].config, limit=2)) == ids(listing)[2:4]
    assert (
        ids(await saver.list(cfg("t"), before=listing[0].config, filter={"user": "u1"}, limit=1))
        == ids(by_user)[1:2]
    )


async def test_list_many_checkpoints_pages(make: Any) -> None:
    """More checkpoints than one script page (64) come back, newest first, with before."""
    saver = make()
    saved = await put_chain(saver, "t", steps=150, writes=False)
    listing = await saver.list(cfg("t"))
    expected = [c["configurable"]["checkpoint_id"] for c in reversed(saved)]
    assert ids(listing) == expected
    assert ids(await saver.list(cfg("t"), limit=100)) == expected[:100]
    assert ids(await saver.list(cfg("t"), before=saved[100])) == expected[50:]
    odd = await saver.list(cfg("t"), filter={"step": 149})
    assert ids(odd) == expected[:1]


# 10. Lost replies: redis-py re-sends after a timeout (the recipe of test_exactly_once).


@pytest.fixture
def lost_reply(topology: str) -> Any:
    if topology != "standalone":
        pytest.skip("the lost-reply recipe needs DEBUG SLEEP on the standalone server")
    import test_exactly_once

    return test_exactly_once


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
async def test_lost_reply_put_and_put_writes_stored_once(
    lost_reply: Any, redis_server: EmbeddedRedis, redis_url: str, client: Any, use_async: bool
) -> None:
    """put and put_writes re-sent by redis-py after a lost reply store what one send does."""
    flaky = lost_reply.flaky(redis_server, use_async)
    saver = Both((AsyncRedisSaver if use_async else RedisSaver)(redis_client=flaky), use_async)
    reference = Both(RedisSaver(redis_url, prefix="ref"), False)
    try:
        first = make_checkpoint({"a": 1, "b": 2}, {"a": "00001", "b": "00001"})
        second = make_checkpoint({"a": [3], "b": 2}, {"a": "00002", "b": "00001"})
        metadata = {"source": "loop", "step": 1}
        for target in (reference, saver):  # the scripts are loaded before the sleep
            await target.put(
                cfg("t"), first, {"source": "input", "step": 0}, dict(first["channel_versions"])
            )
        parent = cfg("t", checkpoint_id=first["id"])
        child = cfg("t", checkpoint_id=second["id"])
        writes = [("a", "w0"), ("__interrupt__", "stop"), ("b", {"x": 1})]

        await reference.put(parent, second, metadata, {"a": "00002"})
        lost_reply.reset_stats(redis_server)
        with lost_reply.server_asleep(redis_server):
            await saver.put(parent, second, metadata, {"a": "00002"})
        assert lost_reply.calls_of(redis_server, "evalsha") >= 2, "the put was not re-sent"
        assert snapshot(client, "lg") == snapshot(client, "ref")

        await reference.put_writes(child, writes, "task", "path")
        lost_reply.reset_stats(redis_server)
        with lost_reply.server_asleep(redis_server):
            await saver.put_writes(child, writes, "task", "path")
        assert lost_reply.calls_of(redis_server, "evalsha") >= 2, "put_writes was not re-sent"
        assert snapshot(client, "lg") == snapshot(client, "ref")
        assert (await saver.get_tuple(child)).pending_writes == [
            ("task", "__interrupt__", "stop"),
            ("task", "a", "w0"),
            ("task", "b", {"x": 1}),
        ]
    finally:
        if use_async:
            await flaky.aclose()
        else:
            flaky.close()
        await aclose_shared_clients()


# Constructors and clients.


async def test_from_conn_string_and_given_clients(redis_url: str, topology: str) -> None:
    with RedisSaver.from_conn_string(redis_url) as saver:
        await put_chain(Both(saver, False), "sync", steps=1)
        assert len(await Both(saver, True).list(cfg("sync"))) == 1
    async with AsyncRedisSaver.from_conn_string(redis_url) as asaver:
        assert len(await Both(asaver, True).list(None)) == 1
        assert len(await Both(asaver, False).list(None)) == 1
    if topology == "standalone":
        sync_client = redis.Redis.from_url(redis_url)
        async_client = redis.asyncio.Redis.from_url(redis_url)
        try:
            given = RedisSaver(redis_client=sync_client)
            assert len(await Both(given, True).list(cfg("sync"))) == 1  # the asyncio twin
            agiven = AsyncRedisSaver(redis_client=async_client)
            assert len(await Both(agiven, True).list(cfg("sync"))) == 1
            with pytest.raises(InvalidOptionError):
                agiven.get_tuple(cfg("sync"))
        finally:
            sync_client.close()
            await async_client.aclose()
    await aclose_shared_clients()
    with pytest.raises(InvalidOptionError):
        RedisSaver()
    with pytest.raises(InvalidOptionError):
        RedisSaver(redis_url, redis_client=object())
    with pytest.raises(InvalidOptionError):
        RedisSaver(redis_url, prefix="a{b}")


async def test_channel_name_with_record_separator(make: Any, client: Any) -> None:
    """A channel name with \\x1e either round-trips or is refused with nothing written."""
    saver = make()
    odd = "a\x1eb"
    checkpoint = make_checkpoint({odd: 1, "c": 2}, {odd: "00001", "c": "00001"})
    try:
        saved = await saver.put(cfg("t", ""), checkpoint, {}, {odd: "00001", "c": "00001"})
    except InvalidCheckpointError:
        assert stored_keys(client) == set()
        return
    assert (await saver.get_tuple(saved)).checkpoint["channel_values"] == {odd: 1, "c": 2}


# --- DeltaChannel walks and delete_for_runs -------------------------------------------------


def _extend(current: Any, writes: Sequence[Any]) -> list[Any]:
    out = list(current or [])
    for write in writes:
        out.extend(write)
    return out


class DeltaState(TypedDict):
    items: Annotated[list[Any], DeltaChannel(_extend, snapshot_frequency=3)]


def _delta_graph() -> Any:
    def first(state: DeltaState) -> dict[str, Any]:
        return {"items": [f"a{len(state['items'])}"]}

    def second(state: DeltaState) -> dict[str, Any]:
        return {"items": [f"b{len(state['items'])}"]}

    builder = StateGraph(DeltaState)
    builder.add_node("first", first)
    builder.add_node("second", second)
    builder.add_edge(START, "first")
    builder.add_edge("first", "second")
    builder.add_edge("second", END)
    return builder


async def test_delta_channel_history_equals_in_memory(make: Any) -> None:
    """A DeltaChannel graph over 7 invokes: state, history and the delta walk (one round
    trip here) equal InMemorySaver's, from the newest checkpoint and from older ones."""
    from langgraph.checkpoint.memory import InMemorySaver

    builder = _delta_graph()
    ours = make(prefix=f"d{os.urandom(3).hex()}")
    reference = InMemorySaver()
    config = cfg("delta")
    graphs = {
        "ours": (builder.compile(checkpointer=ours.target), ours),
        "memory": (builder.compile(checkpointer=reference), Both(reference, ours.use_async)),
    }
    seen: dict[str, Any] = {}
    for name, (graph, saver) in graphs.items():
        run = Both(graph, saver.use_async)
        for turn in range(7):
            await run.invoke({"items": [f"in{turn}"]}, config)
        history = await run.get_state_history(config)
        walks = []
        for snapshot in history[:6]:
            walk = await saver.get_delta_channel_history(
                config=snapshot.config, channels=["items", "missing"]
            )
            walks.append(
                {
                    channel: (entry.get("seed"), [(c, v) for _t, c, v in entry["writes"]])
                    for channel, entry in walk.items()
                }
            )
        seen[name] = ([s.values for s in history], walks)
    assert seen["ours"] == seen["memory"]
    assert await ours.get_delta_channel_history(config=config, channels=[]) == {}


async def test_delete_for_runs_across_threads(make: Any, client: Any) -> None:
    """delete_for_runs removes a run's checkpoints and writes in every thread (found through
    the run's thread set, which goes too) and leaves other runs alone."""
    saver = make(prefix="runs")
    stored = {}
    for thread in ("t1", "t2"):
        for run in ("r1", "r2"):
            checkpoint = make_checkpoint({"c": f"{thread}{run}"}, {"c": f"0000{len(stored)}"})
            metadata: dict[str, Any] = {"source": "loop", "step": 1, "run_id": run}
            saved = await saver.put(
                cfg(thread, "", stored.get(thread)),
                checkpoint,
                metadata,
                {"c": checkpoint["channel_versions"]["c"]},
            )
            await saver.put_writes(saved, [("c", run)], "task")
            stored[thread] = saved["configurable"]["checkpoint_id"]
    assert client.exists("runs:run:{r1}") == 1
    await saver.delete_for_runs(["r1", "nothing"])
    for thread in ("t1", "t2"):
        left = await saver.list(cfg(thread))
        assert [item.metadata["run_id"] for item in left] == ["r2"]
        assert left[0].pending_writes == [("task", "c", "r2")]
        assert left[0].parent_config is None  # its parent (run r1) went
    assert client.exists("runs:run:{r1}") == 0
    await saver.delete_for_runs([])


async def test_import_messages_starts_a_thread_an_agent_continues(make: Any) -> None:
    """A chat session's messages imported as a thread's starting state: a create_agent
    agent sees them before the new question, as after update_state(as_node="model"); a
    thread with checkpoints is refused."""
    agents = pytest.importorskip("langchain.agents")
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage, HumanMessage

    seen: list[list[str]] = []

    class Recording(GenericFakeChatModel):
        def _generate(self, messages: Any, *args: Any, **kwargs: Any) -> Any:
            seen.append([str(m.content) for m in messages])
            return super()._generate(messages, *args, **kwargs)

    saver = make(prefix=f"imp{os.urandom(3).hex()}")
    old = [HumanMessage("hi, I'm Bob"), AIMessage("Hello Bob")]
    saved = await saver.import_messages("bob", old)
    assert saved["configurable"]["thread_id"] == "bob"
    with pytest.raises(InvalidCheckpointError):
        await saver.import_messages("bob", old)
    agent = agents.create_agent(
        Recording(messages=iter([AIMessage("You are Bob")])), [], checkpointer=saver.target
    )
    run = Both(agent, saver.use_async)
    config = cfg("bob")
    state = await run.get_state(config)
    assert state.next == () and [m.content for m in state.values["messages"]] == [
        "hi, I'm Bob",
        "Hello Bob",
    ]
    out = await run.invoke({"messages": [HumanMessage("what is my name?")]}, config)
    assert seen == [["hi, I'm Bob", "Hello Bob", "what is my name?"]]
    assert [m.content for m in out["messages"]][-1] == "You are Bob"


def test_sync_and_async_methods_mirror_each_other() -> None:
    """Every saver method has its asyncio twin (``a`` + name) with the same parameters, on
    both classes (the twins are written by hand, so this keeps them from drifting)."""
    pairs = [
        "get_tuple",
        "list",
        "put",
        "put_writes",
        "delete_thread",
        "delete_for_runs",
        "copy_thread",
        "prune",
        "get_delta_channel_history",
        "import_messages",
        "list_threads",
        "setup",
    ]
    for cls in (RedisSaver, AsyncRedisSaver):
        for name in pairs:
            sync, twin = getattr(cls, name), getattr(cls, f"a{name}")
            assert list(inspect.signature(sync).parameters) == list(
                inspect.signature(twin).parameters
            ), name
            assert inspect.iscoroutinefunction(twin) or inspect.isasyncgenfunction(twin), name


async def test_large_values_are_stored_compressed(make: Any, client: Any) -> None:
    """Values of at least compress_over bytes are stored zlib-compressed (the stored type
    says so) and read back unchanged; compress_over=None stores them as they are; a
    damaged compressed value is a CorruptCheckpointError naming key and field."""
    big = "the same conversation again " * 400  # ~11 KB
    for over, compressed in ((4096, True), (None, False)):
        saver = make(prefix=f"z{os.urandom(3).hex()}", compress_over=over)
        checkpoint = make_checkpoint({"messages": big}, {"messages": "00001"})
        saved = await saver.put(cfg("t", ""), checkpoint, {}, {"messages": "00001"})
        blob_key = f"{saver.target.prefix}:{{t}}:blob"
        stored = client.hget(blob_key, b"\0messages\x0000001")
        assert stored.startswith(b"z:") is compressed
        assert len(stored) < len(big) // 4 if compressed else len(stored) > len(big)
        found = await saver.get_tuple(saved)
        assert found.checkpoint["channel_values"]["messages"] == big
        if compressed:
            client.hset(blob_key, b"\0messages\x0000001", stored[:20] + b"garbage")
            with pytest.raises(CorruptCheckpointError) as caught:
                await saver.get_tuple(saved)
            assert caught.value.key == blob_key
    for bad in (0, -1, True, 1.5, "4096"):
        with pytest.raises(InvalidOptionError):
            RedisSaver("redis://127.0.0.1:1/0", compress_over=bad)


async def test_durability_waits_and_says_when_not_reached(
    make: Any, client: Any, topology: str
) -> None:
    """With durability="replicas=1" every put and put_writes is followed by WAIT on the
    thread's connection: on a server without replicas NotDurableError says the level was
    not reached, and the checkpoint is stored all the same; "none" does not wait."""
    if topology != "standalone":
        pytest.skip("the standalone server has no replica; other deployments may")
    from redis_chat_history.errors import NotDurableError

    saver = make(prefix="dur", durability="replicas=1,timeout_ms=50")
    checkpoint = make_checkpoint({"c": 1}, {"c": "00001"})
    with pytest.raises(NotDurableError):
        await saver.put(cfg("t", ""), checkpoint, {"run_id": "r"}, {"c": "00001"})
    found = await saver.get_tuple(cfg("t", ""))
    assert found is not None and found.checkpoint["channel_values"] == {"c": 1}
    assert client.smembers("dur:run:{r}") == {b"t"}
    with pytest.raises(NotDurableError):
        await saver.put_writes(found.config, [("c", 2)], "task")
    assert (await saver.get_tuple(found.config)).pending_writes == [("task", "c", 2)]
    relaxed = make(prefix="dur", durability="none")
    await relaxed.put(cfg("t2", ""), checkpoint, {}, {"c": "00001"})
    with pytest.raises(InvalidOptionError):
        RedisSaver("redis://127.0.0.1:1/0", durability="replicas=x")


async def test_thread_registry_lists_newest_first_and_forgets_deleted(
    make: Any, client: Any
) -> None:
    """Every put records its thread in the registry (newest put first, no SCAN);
    delete_thread, prune(strategy="delete") and copy_thread keep it true; a thread that
    expired is dropped from the registry when a listing meets it."""
    saver = make(prefix="reg")
    checkpoint = make_checkpoint({"c": 1}, {"c": "00001"})
    for thread in ("a", "b", "c"):
        await saver.put(cfg(thread, ""), checkpoint, {}, {"c": "00001"})
        await asyncio.sleep(0.002)
    listed = await saver.list_threads()
    assert [thread for thread, _ in listed] == ["c", "b", "a"]
    assert listed[0][1] >= listed[1][1] >= listed[2][1] > time.time() - 60
    assert [thread for thread, _ in await saver.list_threads(limit=2)] == ["c", "b"]
    await saver.delete_thread("b")
    await saver.copy_thread("a", "d")
    assert [thread for thread, _ in await saver.list_threads()] == ["d", "c", "a"]
    await saver.prune(["d"], strategy="delete")
    client.delete(*keys_of("c", "reg"))  # as if it had expired
    assert [thread for thread, _ in await saver.list_threads()] == ["a"]
    assert client.zrange("reg:threads", 0, -1) == [b"a"]
    with pytest.raises(InvalidOptionError):
        await saver.list_threads(limit=0)


def owned(thread: Any, owner: Any) -> Any:
    """A config whose ``configurable`` names an owner (LangGraph copies it to metadata)."""
    return {"configurable": {"thread_id": thread, "checkpoint_ns": "", "user_id": owner}}


def listed(threads: list[tuple[str, float]]) -> list[str]:
    return [thread for thread, _when in threads]


async def test_owner_index_lists_each_owners_threads_and_stays_true(make: Any, client: Any) -> None:
    """With owner_key, each put also indexes its thread under the owner its metadata names
    (newest first); delete_thread and prune(delete) remove the entry at once, copy_thread
    indexes the copy under the source's owner, and a listing drops the entries of threads
    that expired or now name another owner."""
    prefix = f"own{os.urandom(3).hex()}"
    saver = make(prefix=prefix, owner_key="user_id")
    checkpoint = make_checkpoint({"c": 1}, {"c": "00001"})
    for thread, owner in (("t1", "alice"), ("t2", "alice"), ("t3", "bob"), ("t5", 42)):
        await saver.put(owned(thread, owner), checkpoint, {}, {"c": "00001"})
        await asyncio.sleep(0.002)
    await saver.put(cfg("t6", ""), checkpoint, {}, {"c": "00001"})  # no owner: not indexed
    assert listed(await saver.list_threads(owner="alice")) == ["t2", "t1"]
    assert listed(await saver.list_threads(owner="bob")) == ["t3"]
    assert listed(await saver.list_threads(owner="42")) == ["t5"]
    assert listed(await saver.list_threads(owner="alice", limit=1)) == ["t2"]
    assert listed(await saver.list_threads()) == ["t6", "t5", "t3", "t2", "t1"]
    alice = f"{prefix}:owner:{{alice}}:threads"
    assert client.ttl(alice) == -1  # no ttl configured

    await saver.delete_thread("t1")
    assert client.zrange(alice, 0, -1) == [b"t2"]
    await saver.copy_thread("t3", "t4")
    assert listed(await saver.list_threads(owner="bob")) == ["t4", "t3"]
    await saver.prune(["t4"], strategy="delete")
    assert client.zrange(f"{prefix}:owner:{{bob}}:threads", 0, -1) == [b"t3"]

    # A put naming no owner hides t2 from alice's listing but keeps its entry (a listing
    # with another owner key must not wipe an index); once t2 names bob, alice's listing
    # drops it and bob's has it; an expired thread goes.
    await saver.put(cfg("t2", ""), checkpoint, {}, {"c": "00001"})
    assert listed(await saver.list_threads(owner="alice")) == []
    assert client.zrange(alice, 0, -1) == [b"t2"]
    await saver.put(owned("t2", "bob"), checkpoint, {}, {"c": "00001"})
    assert listed(await saver.list_threads(owner="alice")) == []
    assert client.exists(alice) == 0
    client.delete(*keys_of("t3", prefix))
    assert listed(await saver.list_threads(owner="bob")) == ["t2"]

    with pytest.raises(InvalidOptionError):
        await saver.list_threads(owner="")
    with pytest.raises(InvalidOptionError):
        await saver.list_threads(owner="a\nb")
    with pytest.raises(InvalidOptionError):
        await make(prefix=prefix).list_threads(owner="bob")
    with pytest.raises(InvalidOptionError):
        make(prefix=prefix, owner_key="")


async def test_owner_index_from_a_graph_and_import(make: Any, client: Any) -> None:
    """``configurable={"user_id": ...}`` of a graph run indexes the thread; an imported
    conversation carries its owner in the metadata as a run would; owners are refused
    without owner_key, and odd owner values are simply not indexed."""
    prefix = f"own{os.urandom(3).hex()}"
    saver = make(prefix=prefix, owner_key="user_id")
    graph = Both(counting_graph(saver.target), saver.use_async)
    run = {"configurable": {"thread_id": "g1", "user_id": "zed"}}
    await graph.invoke({"items": ["x"]}, run)
    await graph.invoke({"items": ["y"]}, run)
    assert listed(await saver.list_threads(owner="zed")) == ["g1"]

    from langchain_core.messages import AIMessage, HumanMessage

    await saver.import_messages("imp", [HumanMessage("hi"), AIMessage("hello")], owner="zed")
    assert listed(await saver.list_threads(owner="zed")) == ["imp", "g1"]
    imported = await saver.get_tuple(cfg("imp"))
    assert imported.metadata["user_id"] == "zed"
    with pytest.raises(InvalidOptionError):
        await saver.import_messages("imp2", [HumanMessage("hi")], owner="")
    with pytest.raises(InvalidOptionError):
        await make(prefix=prefix).import_messages("imp3", [HumanMessage("hi")], owner="zed")

    checkpoint = make_checkpoint({"c": 1}, {"c": "00001"})
    for odd in ("", "x\ty", True, 1.5):
        await saver.put(owned(f"odd-{odd!r}", odd), checkpoint, {}, {"c": "00001"})
    assert {key.decode() for key in client.scan_iter(match=f"{prefix}:owner:*")} == {
        f"{prefix}:owner:{{zed}}:threads"
    }


@pytest.mark.parametrize("refresh", [True, False])
async def test_owner_index_expiry_follows_the_threads(
    make: Any, client: Any, refresh: bool
) -> None:
    """Threads that expire a ttl after their last put take their owner's index with
    them (it gets the same ttl at each put); threads whose reads refresh the ttl can
    outlive any put, so then the index has none (stale entries go when listed)."""
    prefix = f"own{os.urandom(3).hex()}"
    saver = make(
        prefix=prefix, owner_key="user_id", ttl={"default_ttl": 1, "refresh_on_read": refresh}
    )
    checkpoint = make_checkpoint({"c": 1}, {"c": "00001"})
    await saver.put(owned("t", "ann"), checkpoint, {}, {"c": "00001"})
    index_ttl = client.pttl(f"{prefix}:owner:{{ann}}:threads")
    if refresh:
        assert index_ttl == -1
    else:
        assert MINUTE_MS - 5000 < index_ttl <= MINUTE_MS
    assert listed(await saver.list_threads(owner="ann")) == ["t"]


def test_registry_prune_spares_an_entry_a_put_rescored(client: Any) -> None:
    """A listing removes a stale entry only if its score is still the one it saw: a put
    in between re-scored it, so the thread is alive and stays listed."""
    from redis_chat_history._sessions_core import PRUNE_INDEX_SCRIPT

    key = f"reg{os.urandom(3).hex()}:threads"
    client.zadd(key, {"a": 5, "b": 7})
    assert client.eval(PRUNE_INDEX_SCRIPT.text, 1, key, "a", 4, "b", 7) == 1
    assert client.zrange(key, 0, -1) == [b"a"]
    client.delete(key)


async def test_encrypted_serializer(make: Any, client: Any) -> None:
    """With langgraph's EncryptedSerializer (AES) checkpoints, blobs and writes round-trip
    and no value is stored readable, compressed or not (encrypted data does not compress,
    so it is kept as it is); the metadata JSON kept for filters is plaintext (documented)."""
    from langgraph.checkpoint.serde.encrypted import EncryptedSerializer

    serde = EncryptedSerializer.from_pycryptodome_aes(key=os.urandom(16))
    saver = make(prefix="enc", serde=serde)
    secret = "the launch code is 0000 " * 300  # ~7 KB: over compress_over
    checkpoint = make_checkpoint({"c": secret}, {"c": "00001"})
    saved = await saver.put(cfg("t", ""), checkpoint, {"source": "loop"}, {"c": "00001"})
    await saver.put_writes(saved, [("c", secret)], "task")
    found = await saver.get_tuple(saved)
    assert found.checkpoint["channel_values"] == {"c": secret}
    assert found.pending_writes == [("task", "c", secret)]
    for key in keys_of("t", "enc"):
        raw = client.hgetall(key) if client.type(key) == b"hash" else {}
        for field, value in raw.items():
            if key.endswith(":md"):
                continue
            assert b"launch code" not in value, (key, field)
            assert not value.startswith(b"z:"), "encrypted data stored compressed"
    assert (await saver.list(cfg("t"), filter={"source": "loop"}))[0].config == found.config
