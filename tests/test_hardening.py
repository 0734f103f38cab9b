"""Defects found when the project was attacked (issue 8): side keys that two sessions
shared, deletes of keys of another type, retries after NotDurableError, client clocks,
eviction, huge ttls, deep nesting, non-UTF-8 elements, out-of-range positions."""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any

import pytest
import redis
import redis.asyncio
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.messages import HumanMessage
from redis.crc import key_slot

from redis_chat_history import (
    AsyncChatHistoryStore,
    ChatHistoryStore,
    CommunityLayout,
    CorruptMessageError,
    InvalidMessageError,
    InvalidOptionError,
    MemorystoreChatMessageHistory,
    MemorystoreLayout,
    NativeLayout,
    NotDurableError,
    RedisChatMessageHistory,
    WrongTypeError,
    _core,
)
from redis_chat_history._validate import MAX_TTL_SECONDS
from redis_chat_history.codec import MAX_NESTING_DEPTH
from redis_chat_history.durability import Durability, resolve_durability
from redis_chat_history.layouts import Layout, legacy_side_key


def record(text: str) -> dict[str, Any]:
    return {"type": "human", "data": {"content": text}}


def texts(records: list[dict[str, Any]]) -> list[str]:
    return [r["data"]["content"] for r in records]


# ------------------------------------------------------- 1. every key names one session


def old_name(key: str, part: str) -> str:
    name = legacy_side_key(key, part)
    assert name is not None
    return name


def session_keys(layout: Layout, session_id: str) -> set[str]:
    return {
        layout.messages_key(session_id),
        layout.token_key(session_id),
        layout.meta_key(session_id),
    }


LAYOUTS = [
    MemorystoreLayout(),
    CommunityLayout(),
    CommunityLayout(""),
    CommunityLayout("{app}:"),
    CommunityLayout("{"),
    CommunityLayout("}"),
    CommunityLayout("a}b{"),
    NativeLayout(),
    NativeLayout("tenant:7"),
]
IDS = st.text(alphabet="{}%:ab\x1f\u00e9", min_size=1, max_size=8).filter(
    lambda text: "\x1f" not in text
) | st.sampled_from(["{chat-1}", "chat-1", "{}", "}{", "{a}b", "a}", "%7B", "{%7B}"])


@pytest.mark.parametrize("layout", LAYOUTS, ids=repr)
@settings(max_examples=300, deadline=None)
@given(first=IDS, second=IDS)
def test_no_two_sessions_share_a_key(layout: Layout, first: str, second: str) -> None:
    """(layout, session id) -> key is injective for every key a session has, each
    session's keys share one cluster slot, and no owner index is a session's key."""
    keys = session_keys(layout, first)
    assert len(keys) == 3
    assert len({key_slot(key.encode()) for key in keys}) == 1
    owner_keys = {layout.owner_index_key(first), layout.owner_index_key(second)}
    assert not owner_keys & (keys | session_keys(layout, second))
    if first != second:
        assert not keys & session_keys(layout, second)
        assert len(owner_keys) == 2


def test_ids_that_shared_metadata_before_are_apart(client: redis.Redis) -> None:
    """Memorystore ids ``chat-1`` and ``{chat-1}`` once shared their metadata hash: another
    user's session showed up in alice's list under her title, and deleting it deleted it."""
    store = ChatHistoryStore(client, layout="memorystore")
    store.create_session("chat-1", owner="alice", title="alice's chat")
    store.append("chat-1", [record("hi")])
    store.create_session("{chat-1}", owner="bob", title="bob's chat")  # no OwnerConflictError
    assert [s.session_id for s in store.owner_sessions("alice").sessions] == ["chat-1"]
    assert [s.title for s in store.owner_sessions("bob").sessions] == ["bob's chat"]
    assert store.delete("{chat-1}") == 1
    info = store.session_info("chat-1")
    assert info is not None and (info.owner, info.title, info.message_count) == (
        "alice",
        "alice's chat",
        1,
    )


@pytest.mark.parametrize("layout_name", ["community", "memorystore"])
async def test_metadata_under_the_old_name_is_adopted(
    make_store: Any, client: redis.Redis, layout_name: str
) -> None:
    """A metadata hash written by 0.1.0 is found, and renamed on touch, but only by the
    session its ``session`` field names."""
    store = make_store(layout=layout_name)
    layout = store.config.layout
    await store.append("s1", [record("a")])
    old = old_name(layout.messages_key("s1"), "meta")
    fields = {"session": "s1", "owner": "alice", "title": "T", "created": 1, "last_activity": 2}
    client.hset(old, mapping=fields)
    info = await store.session_info("s1")
    assert info is not None and (info.owner, info.title) == ("alice", "T")
    assert not client.exists(old) and client.hget(layout.meta_key("s1"), "owner") == b"alice"
    # The appending path adopts too, and moves the session up in its owner's index.
    client.rename(layout.meta_key("s1"), old)
    await store.append("s1", [record("b")])
    assert not client.exists(old) and client.exists(layout.meta_key("s1"))
    assert [s.session_id for s in (await store.owner_sessions("alice")).sessions] == ["s1"]
    # A shared old name belongs to whoever its session field names: "{s2}" cannot take it.
    client.hset(old_name(layout.messages_key("s2"), "meta"), mapping={"session": "s2"})
    assert await store.session_info("{s2}") is None
    assert client.exists(old_name(layout.messages_key("s2"), "meta"))


async def test_reindex_adopts_old_metadata(make_store: Any, client: redis.Redis) -> None:
    """reindex() finds 0.1.0 metadata keys by SCAN and indexes their sessions."""
    store = make_store(layout="memorystore")
    await store.append("s1", [record("a")])
    old = old_name("s1", "meta")
    client.hset(old, mapping={"session": "s1", "owner": "alice", "last_activity": 5})
    report = await store.reindex()
    assert report.indexed == 1 and not client.exists(old)
    assert [s.session_id for s in (await store.owner_sessions("alice")).sessions] == ["s1"]


def test_old_token_sets_still_stop_a_resend(client: redis.Redis) -> None:
    """A token recorded under the 0.1.0 name is still recognised, and deleted with the
    session."""
    store = ChatHistoryStore(client, layout="community")
    old = old_name("message_store:s", "tokens")
    client.zadd(old, {"sent-by-0.1.0": 1})
    client.pexpire(old, 600_000)
    assert store.append("s", [record("a")], idempotency_key="sent-by-0.1.0") == 0
    assert store.append("s", [record("a")]) == 1
    assert store.delete("s") == 1 and not client.exists(old)


# --------------------------------------------------- 2. keys of another type are kept


async def test_clear_and_delete_leave_keys_of_another_type(store: Any, client: redis.Redis) -> None:
    """clear() and delete() refuse a hash at the list key and a string at the metadata
    key: WrongTypeError naming the key, and nothing deleted."""
    layout = store.config.layout
    key = layout.messages_key("user:42")
    client.hset(key, "name", "the application's own hash")
    for operation in (store.clear, store.delete, store.delete_session):
        with pytest.raises(WrongTypeError) as caught:
            await operation("user:42")
        assert caught.value.key == key
        assert client.hgetall(key) == {b"name": b"the application's own hash"}
    await store.append("other", [record("a")])
    await store.append("s", [record("b")])
    client.set(layout.meta_key("s"), "not a hash")
    with pytest.raises(WrongTypeError) as caught:
        await store.delete("other", "s")
    assert caught.value.key == layout.meta_key("s")
    assert client.get(layout.meta_key("s")) == b"not a hash"
    assert await store.count("s") == 1  # the refused session is left whole ...
    assert await store.count("other") == 0  # ... and the others are deleted


@pytest.mark.parametrize("kind", ["community", "memorystore"])
async def test_langchain_clear_keeps_a_hash(
    kind: str, redis_url: str, client: redis.Redis, track: Any
) -> None:
    """The drop-ins' clear()/aclear() raise WrongTypeError instead of deleting a hash."""
    if kind == "community":
        history: Any = track(RedisChatMessageHistory("user:42", url=redis_url))
    else:
        history = track(MemorystoreChatMessageHistory(redis.Redis.from_url(redis_url), "user:42"))
    client.hset(history.key, "name", "kept")
    with pytest.raises(WrongTypeError):
        history.clear()
    with pytest.raises(WrongTypeError):
        await history.aclear()
    assert client.hgetall(history.key) == {b"name": b"kept"}


# -------------------------------------------------- 3. retrying after NotDurableError


async def test_retry_after_not_durable_stores_once(store: Any) -> None:
    """NotDurableError carries the append's idempotency key; retrying with it waits again
    and stores nothing twice (the server here has no replica, so every try times out)."""
    level = "replicas=1,timeout_ms=10"
    with pytest.raises(NotDurableError) as caught:
        await store.append("s", [record("a")], durability=level)
    key = caught.value.idempotency_key
    assert key and key in str(caught.value)
    for _retry in range(3):
        with pytest.raises(NotDurableError):
            await store.append("s", [record("a")], durability=level, idempotency_key=key)
    assert texts(await store.messages("s")) == ["a"]


async def test_caller_idempotency_keys(store: Any) -> None:
    """A client message id names a batch: sent again, even by a new store, it is not
    stored twice; another key is another batch. Bad keys are refused."""
    assert await store.append("s", [record("a")], idempotency_key="msg-1") == 1
    assert await store.append("s", [record("a")], idempotency_key="msg-1") == 1
    assert await store.append("s", [record("b")], idempotency_key="msg-2") == 2
    for bad in ("", 7, "x" * (_core.MAX_IDEMPOTENCY_KEY_LENGTH + 1), "new\nline"):
        with pytest.raises(InvalidOptionError, match="idempotency_key"):
            await store.append("s", [record("c")], idempotency_key=bad)
    assert texts(await store.messages("s")) == ["a", "b"]


async def test_langchain_idempotency_key(redis_url: str, track: Any) -> None:
    """The drop-ins take idempotency_key= on add_messages and aadd_messages."""
    history = track(RedisChatMessageHistory("s", url=redis_url))
    for _ in range(2):
        history.add_messages([HumanMessage("hi")], idempotency_key="m1")
        await history.aadd_messages([HumanMessage("hi")], idempotency_key="m1")
    assert [m.content for m in history.messages] == ["hi"]


# ------------------------------------------------------------ 4. clocks do not matter


def test_client_clock_skew_keeps_exactly_once(
    client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer whose clock is 11 minutes ahead no longer prunes other writers' fresh
    tokens: tokens are scored and pruned by the server's clock."""
    store = ChatHistoryStore(client, layout="native")
    store.append("s", [record("a")], idempotency_key="from-honest-writer")
    ahead = time.time_ns() + 11 * 60 * 10**9
    monkeypatch.setattr(time, "time_ns", lambda: ahead)
    monkeypatch.setattr(time, "time", lambda: ahead / 1e9)
    for n in range(3 * _core.PRUNE_EVERY):  # some of these prune the token set
        store.append("s", [record(f"skewed {n}")])
    assert client.zscore(store.config.layout.token_key("s"), "from-honest-writer") is not None
    count = store.count("s")
    assert store.append("s", [record("a")], idempotency_key="from-honest-writer") == count
    seconds, micros = client.time()
    score = client.zscore(store.config.layout.token_key("s"), "from-honest-writer")
    assert score is not None and abs(score - (seconds * 1000 + micros // 1000)) < 60_000


# ------------------------------------------------------------------------ 5. eviction


@pytest.fixture
def policy(client: redis.Redis) -> Any:
    """Set the test server's maxmemory-policy; restored afterwards."""
    before = client.config_get("maxmemory-policy")["maxmemory-policy"]
    yield lambda name: client.config_set("maxmemory-policy", name)
    client.config_set("maxmemory-policy", before)


def test_volatile_policy_cannot_evict_tokens(
    policy: Any, redis_url: str, client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """Under volatile-* only keys with a ttl are evicted, so the token set of a session
    without ttl gets none (it used to be the only volatile key, evicted first)."""
    policy("volatile-lru")
    with caplog.at_level(logging.WARNING, "redis_chat_history"):
        store = ChatHistoryStore(redis.Redis.from_url(redis_url), layout="native")
        store.append("s", [record("a")])
        assert client.pttl(store.config.layout.token_key("s")) == -1
        assert not caplog.records
        with_ttl = ChatHistoryStore(redis.Redis.from_url(redis_url), layout="native", ttl=60)
        with_ttl.append("t", [record("a")])
        with_ttl.append("t", [record("b")])
    assert client.pttl(with_ttl.config.layout.token_key("t")) > 0
    assert [r.getMessage() for r in caplog.records if "volatile-lru" in r.getMessage()]
    assert len(caplog.records) == 1  # once per client
    store.close()
    with_ttl.close()


def test_allkeys_policy_warns_once(
    policy: Any, redis_url: str, client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """Under allkeys-* nothing can be protected: the store says so once per client."""
    policy("allkeys-lru")
    connection = redis.Redis.from_url(redis_url)
    with caplog.at_level(logging.WARNING, "redis_chat_history"):
        for session in ("a", "b", "c"):
            ChatHistoryStore(connection, layout="native").append(session, [record("x")])
    assert len(caplog.records) == 1 and "allkeys-lru" in caplog.records[0].getMessage()
    assert client.pttl(NativeLayout().token_key("a")) > 0
    connection.close()


# ----------------------------------------------------------------------- 6. huge ttls


@pytest.mark.parametrize("ttl", [MAX_TTL_SECONDS + 1, 10**14, 10**17, timedelta(days=10**6)])
def test_huge_ttl_is_refused_before_writing(ttl: Any, client: redis.Redis) -> None:
    with pytest.raises(InvalidOptionError, match=str(MAX_TTL_SECONDS)):
        ChatHistoryStore(client, ttl=ttl)
    with pytest.raises(InvalidOptionError, match=str(MAX_TTL_SECONDS)):
        RedisChatMessageHistory("s", ttl=ttl)
    assert client.dbsize() == 0


def test_longest_ttl_works(client: redis.Redis) -> None:
    store = ChatHistoryStore(client, ttl=MAX_TTL_SECONDS)
    assert store.append("s", [record("a")]) == 1
    assert client.ttl(store.config.layout.messages_key("s")) > MAX_TTL_SECONDS - 60


# -------------------------------------------------------------------- 8. deep nesting


def nested(depth: int) -> dict[str, Any]:
    """A record whose nesting depth (record and data included) is ``depth``."""
    value: Any = "leaf"
    for _ in range(depth - 2):
        value = [value]
    return {"type": "human", "data": {"content": value}}


async def test_deep_nesting_is_refused_on_write(store: Any, client: redis.Redis) -> None:
    assert await store.append("s", [nested(MAX_NESTING_DEPTH)]) == 1
    for depth in (MAX_NESTING_DEPTH + 1, 5000):
        with pytest.raises(InvalidMessageError, match=f"more than {MAX_NESTING_DEPTH} levels"):
            await store.append("s", [record("ok"), nested(depth)])
    assert await store.count("s") == 1


async def test_deep_stored_element_is_corrupt_and_skippable(
    store: Any, client: redis.Redis
) -> None:
    """One element nested 1000 levels deep (written by someone else) no longer makes the
    session unreadable: CorruptMessageError, and strict=False skips it."""
    await store.append("s", [record("before")])
    key = store.config.layout.messages_key("s")
    deep = b'{"type": "human", "data": {"content": ' + b"[" * 1000 + b"]" * 1000 + b"}}"
    client.lpush(key, deep) if store.config.layout.newest_first else client.rpush(key, deep)
    await store.append("s", [record("after")])
    with pytest.raises(CorruptMessageError, match="levels deep") as caught:
        await store.messages("s")
    assert caught.value.key == key
    with pytest.warns(RuntimeWarning, match="levels deep"):
        assert texts(await store.messages("s", strict=False)) == ["before", "after"]


# ------------------------------------------------- 10. non-UTF-8 with decode_responses


@pytest.mark.parametrize("layout_name", ["community", "memorystore", "native"])
async def test_non_utf8_element_through_a_decoding_client(
    redis_url: str, client: redis.Redis, layout_name: str
) -> None:
    """A decode_responses=True client reading one non-UTF-8 element gets
    CorruptMessageError naming key and index (skipped with strict=False), not a raw
    UnicodeDecodeError, sync and async."""
    sync = ChatHistoryStore(redis.Redis.from_url(redis_url, decode_responses=True),
                            layout=layout_name)  # fmt: skip
    sync.append("s", [record("a"), record("b")])
    key = sync.config.layout.messages_key("s")
    client.lset(key, 0, b'{"type": "human", "data": {"content": "\xff"}}')
    bad_index = 0
    aclient = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    asynchronous = AsyncChatHistoryStore(aclient, layout=layout_name)
    for read in (sync.messages, asynchronous.messages):
        with pytest.raises(CorruptMessageError) as caught:
            result = read("s")
            await result if not isinstance(result, list) else None
        assert (caught.value.key, caught.value.index) == (key, bad_index)
        with pytest.warns(RuntimeWarning):
            result = read("s", strict=False)
            found = await result if not isinstance(result, list) else result
        assert len(found) == 1
    sync.close()
    await asynchronous.aclose()


# ------------------------------------------------------------- 13-15. options, setter


def test_wait_without_timeout_is_refused() -> None:
    """WAIT/WAITAOF with timeout 0 block forever; such a level is refused."""
    for level in ("replicas=1,timeout_ms=0", "fsync,timeout_ms=0"):
        with pytest.raises(InvalidOptionError, match="timeout_ms must be at least 1"):
            resolve_durability(level)
    with pytest.raises(InvalidOptionError):
        Durability(replicas=2, timeout_ms=0)
    assert resolve_durability("timeout_ms=0").waits is False  # nothing to wait for


@pytest.mark.parametrize("option", ["last", "start", "stop"])
async def test_positions_beyond_64_bits_are_refused(store: Any, option: str) -> None:
    await store.append("s", [record("a")])
    for value in (2**63, 2**64, 10**30):
        with pytest.raises(InvalidOptionError, match=option):
            await store.messages("s", **{option: value})
    assert texts(await store.messages("s", **{option: 2**63 - 1})) == (
        [] if option == "start" else ["a"]
    )


async def test_bad_times_in_metadata_do_not_break_a_listing(
    store: Any, client: redis.Redis
) -> None:
    """One metadata hash with an out-of-range last_activity is listed without the time
    instead of raising OverflowError for the whole owner listing."""
    for session in ("good", "bad"):
        await store.create_session(session, owner="alice")
    client.hset(store.config.layout.meta_key("bad"), "last_activity", "9" * 20)
    client.hset(store.config.layout.meta_key("bad"), "created", "9" * 16)
    page = await store.owner_sessions("alice")
    by_id = {info.session_id: info for info in page.sessions}
    assert set(by_id) == {"good", "bad"}
    assert by_id["bad"].last_activity is None and by_id["bad"].created is None
    assert by_id["good"].last_activity is not None


def test_assigning_messages_raises_like_upstream(redis_url: str, client: redis.Redis) -> None:
    for history in (
        RedisChatMessageHistory("s", url=redis_url),
        MemorystoreChatMessageHistory(client, "s"),
    ):
        with pytest.raises(NotImplementedError, match="Use the 'add_messages' instead"):
            history.messages = [HumanMessage("x")]


def test_huge_ttl_in_an_import_file_is_a_bad_line(client: redis.Redis) -> None:
    """A ttl over the limit in an import file is reported with its line number, nothing of
    that session is written, and the rest of the file is imported."""
    import json

    from redis_chat_history.transfer import import_sessions

    element = json.dumps(record("a"))
    lines = [
        json.dumps({"format": "redis-chat-history", "version": 1, "layout": "native"}),
        json.dumps({"session": "huge", "ttl": 10**14}),
        json.dumps({"session": "huge", "index": 0, "raw": element}),
        json.dumps({"session": "fine", "ttl": 60}),
        json.dumps({"session": "fine", "index": 0, "raw": element}),
        json.dumps({"end": True, "sessions": 2, "messages": 2}),
    ]
    store = ChatHistoryStore(client, layout="native")
    summary = import_sessions(store, lines)
    assert [problem.line for problem in summary.problems] == [2]
    assert str(MAX_TTL_SECONDS) in summary.problems[0].reason
    assert store.count("huge") == 0 and store.count("fine") == 1
    assert 0 < client.ttl(store.config.layout.messages_key("fine")) <= 60


# ------------------------------------------------------- 24. every key a session can have


@pytest.mark.parametrize("layout_name", ["community", "memorystore", "native"])
def test_every_key_a_session_can_have(client: redis.Redis, layout_name: str) -> None:
    """What the README lists, and nothing else: a drop-in append leaves the list and a
    token set that expires within 10 minutes; metadata adds a hash and the owner index."""
    store = ChatHistoryStore(client, layout=layout_name)
    layout = store.config.layout
    store.append("s", [record("a")])
    assert set(client.scan_iter()) == {
        layout.messages_key("s").encode(),
        layout.token_key("s").encode(),
    }
    assert 0 < client.pttl(layout.token_key("s")) <= _core.TOKEN_WINDOW_MS
    store.create_session("s", owner="alice")
    assert set(client.scan_iter()) == {
        key.encode()
        for key in (
            layout.messages_key("s"),
            layout.token_key("s"),
            layout.meta_key("s"),
            layout.owner_index_key("alice"),
        )
    }


def test_restore_and_delete_leave_no_old_metadata_behind(client: redis.Redis) -> None:
    """Restoring metadata (import, migrate) adopts a 0.1.0 hash instead of writing beside
    it, and delete removes a 0.1.0 leftover of the session, so a deleted session's old
    owner and title cannot come back with its next message."""
    from redis_chat_history._sessions_core import restore_flow

    store = ChatHistoryStore(client, layout="memorystore")
    old = old_name("s", "meta")
    client.hset(old, mapping={"session": "s", "owner": "alice", "title": "old", "created": 1})
    store._drive(restore_flow(store.config, "s", {"title": "restored"}, ttl=None, overwrite=False))
    assert not client.exists(old)
    assert client.hget(store.config.layout.meta_key("s"), "owner") == b"alice"
    client.hset(old, mapping={"session": "s", "owner": "mallory", "title": "leftover"})
    assert store.delete("s") == 1
    assert not client.exists(old)
    store.append("s", [record("new")])
    info = store.session_info("s")
    assert info is not None and info.owner is None and info.title is None
    client.hset(old, mapping={"session": "{s}", "owner": "bob"})  # another session's
    assert store.delete("s") == 1 and client.exists(old)
