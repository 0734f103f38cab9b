"""Sessions that know who they belong to: metadata, per-owner listings, repair.

The behaviour tests run against the sync and the async store in every layout; a small
part runs on a real 3+3 Redis Cluster, where a session and its owner's index live in
different slots.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio
import redis.asyncio.cluster
from redis.crc import key_slot

import topologies
from conftest import Awaited
from redis_chat_history import (
    MAX_SESSION_ID_LENGTH,
    MAX_TITLE_LENGTH,
    AsyncChatHistoryStore,
    ChatHistoryStore,
    InvalidOptionError,
    InvalidSessionIdError,
    NotDurableError,
    OwnerConflictError,
    ReindexReport,
    SessionPage,
    WrongTypeError,
    _core,
)
from redis_chat_history._sessions_core import MAX_PAGE_SIZE
from redis_chat_history.layouts import CommunityLayout, MemorystoreLayout, NativeLayout

ODD_IDS = ["plain", "{tag}", "a}b", "}", "{}", "}{", "x{}y", "{", "%7B", "a*b?[c]", "ünï-会话"]
LAYOUTS = [NativeLayout(), CommunityLayout(), MemorystoreLayout(), CommunityLayout("{app}:")]


def record(text: str) -> dict[str, Any]:
    return {"type": "human", "data": {"content": text, "type": "human"}}


def ids(page: SessionPage) -> list[str]:
    return [info.session_id for info in page.sessions]


async def all_pages(store: Any, owner: str, limit: int) -> list[list[str]]:
    """Every page of the owner's listing, following the cursors."""
    pages, cursor = [], None
    while True:
        page = await store.owner_sessions(owner, limit=limit, cursor=cursor)
        pages.append(ids(page))
        cursor = page.next_cursor
        if cursor is None:
            return pages


def ms(client: Any, key: str, field: str = "last_activity") -> int:
    return int(client.hget(key, field))


def snapshot(client: Any) -> dict[bytes, tuple[bytes | None, int]]:
    """Every key's serialized value and ttl, to prove nothing changed."""
    return {key: (client.dump(key), client.ttl(key)) for key in client.scan_iter()}


async def create_in_order(store: Any, owner: str, session_ids: list[str]) -> None:
    """Create sessions one by one, each at least a millisecond after the previous one."""
    for session_id in session_ids:
        await store.create_session(session_id, owner=owner)
        await asyncio.sleep(0.002)


# ------------------------------------------------------------------------------ key names


@pytest.mark.parametrize("session_id", ODD_IDS)
@pytest.mark.parametrize("layout", LAYOUTS, ids=repr)
def test_metadata_lives_in_the_session_slot(layout: Any, session_id: str) -> None:
    """The metadata hash shares the list's slot and is none of the session's other keys."""
    messages, meta = layout.messages_key(session_id), layout.meta_key(session_id)
    assert key_slot(meta.encode()) == key_slot(messages.encode())
    assert meta not in (messages, layout.token_key(session_id))
    assert layout.session_id_of(meta) is None or layout.name == "memorystore"


@pytest.mark.parametrize("owner", ODD_IDS)
@pytest.mark.parametrize("layout", LAYOUTS, ids=repr)
def test_owner_index_keys_round_trip(layout: Any, owner: str) -> None:
    """An owner's index key names the owner back, and is never a session's list key."""
    index = layout.owner_index_key(owner)
    assert layout.owner_of_index_key(index) == owner
    assert layout.session_id_of(index) is None
    assert layout.owner_of_index_key(layout.messages_key(owner)) is None
    if not isinstance(layout, NativeLayout):
        assert "\x1f" in index  # no valid session id contains it


def test_owners_spread_over_slots() -> None:
    """Each owner's index has its own hash tag, so owners spread over the cluster."""
    layout = NativeLayout()
    slots = {key_slot(layout.owner_index_key(f"user-{n}").encode()) for n in range(50)}
    assert len(slots) > 40


# ------------------------------------------------------------------------- create and read


async def test_create_session_sets_metadata_and_lists_it(store: Any) -> None:
    """A created session has an owner, a title and times, and shows in the owner's list."""
    info = await store.create_session("s1", owner="alice", title="Trip to Lisbon")
    assert (info.session_id, info.owner, info.title, info.message_count) == (
        "s1", "alice", "Trip to Lisbon", 0,
    )  # fmt: skip
    assert info.created is not None and info.created.tzinfo is not None
    assert info.created == info.last_activity
    assert await store.session_info("s1") == info
    page = await store.owner_sessions("alice")
    assert page.sessions == (info,) and page.next_cursor is None
    assert ids(await store.owner_sessions("bob")) == []


async def test_create_session_is_idempotent_and_keeps_values(store: Any, client: Any) -> None:
    """Creating again changes nothing that is set: created, owner and title stay."""
    first = await store.create_session("s", owner="alice", title="first")
    await asyncio.sleep(0.002)
    again = await store.create_session("s", owner="alice", title="second")
    assert again == first
    assert (await store.create_session("s")).owner == "alice"
    assert ids(await store.owner_sessions("alice")) == ["s"]


async def test_another_owner_is_refused_without_naming_the_owner(store: Any, client: Any) -> None:
    """Claiming someone else's session raises OwnerConflictError and changes nothing."""
    await store.create_session("s", owner="alice", title="mine")
    await store.append("s", [record("hello")])
    before = snapshot(client)
    with pytest.raises(OwnerConflictError, match="another owner") as caught:
        await store.create_session("s", owner="mallory", title="theirs")
    assert "alice" not in str(caught.value)
    assert snapshot(client) == before
    assert ids(await store.owner_sessions("mallory")) == []


async def test_an_unowned_session_can_be_claimed(store: Any) -> None:
    """A session with metadata but no owner takes the first owner named."""
    await store.create_session("s", title="draft")
    assert ids(await store.owner_sessions("bob")) == []
    claimed = await store.create_session("s", owner="bob")
    assert (claimed.owner, claimed.title) == ("bob", "draft")
    assert ids(await store.owner_sessions("bob")) == ["s"]


async def test_sessions_without_metadata_still_have_info(store: Any) -> None:
    """Messages stored before metadata existed count; creating keeps them."""
    assert await store.session_info("never") is None
    await store.append("old", [record("a"), record("b"), record("c")])
    info = await store.session_info("old")
    assert info is not None and info.message_count == 3
    assert (info.owner, info.title, info.created, info.last_activity) == (None, None, None, None)
    adopted = await store.create_session("old", owner="alice")
    assert adopted.message_count == 3 and adopted.created is not None
    assert [m["data"]["content"] for m in await store.messages("old")] == ["a", "b", "c"]


async def test_created_without_messages_counts_as_existing(store: Any) -> None:
    """A created session with no messages yet reads as an empty session with metadata."""
    await store.create_session("empty", owner="alice")
    info = await store.session_info("empty")
    assert info is not None and info.message_count == 0 and info.owner == "alice"
    assert await store.messages("empty") == []


# ------------------------------------------------------------------------------ appending


async def test_append_without_metadata_writes_none(store: Any, client: Any) -> None:
    """Sessions nobody created keep exactly the keys they had: list and retry tokens."""
    await store.append("s", [record("a")])
    layout = store.config.layout
    keys = {key.decode() for key in client.scan_iter()}
    assert keys == {layout.messages_key("s"), layout.token_key("s")}


async def test_append_moves_the_session_to_the_top(store: Any, client: Any) -> None:
    """Every append updates last_activity and the index; listings are newest first."""
    await create_in_order(store, "alice", ["s1", "s2", "s3"])
    assert ids(await store.owner_sessions("alice")) == ["s3", "s2", "s1"]
    before = await store.session_info("s1")
    assert await store.append("s1", [record("hi")]) == 1
    after = await store.session_info("s1")
    assert after.last_activity > before.last_activity and after.created == before.created
    page = await store.owner_sessions("alice")
    assert ids(page) == ["s1", "s3", "s2"]
    assert page.sessions[0].message_count == 1
    layout = store.config.layout
    score = client.zscore(layout.owner_index_key("alice"), "s1")
    assert score == ms(client, layout.meta_key("s1"))


async def test_retried_append_reports_the_owner(store: Any, client: Any) -> None:
    """A retry of an applied batch (same token) is skipped but still names the owner, so
    the index is refreshed even when the first reply was lost."""
    await store.create_session("s", owner="alice")
    plan = _core.plan_append(store.config, "s", [record("a")], idempotency_key="fixed-token")
    assert plan is not None
    (call,) = plan.calls
    keys = call.keys
    first = client.eval(call.script.text, len(keys), *keys, *call.args)
    retry = client.eval(call.script.text, len(keys), *keys, *call.args)
    assert first[:3] == [1, 1, b"alice"] and retry[:3] == [0, 1, b"alice"]
    assert retry[3] == first[3] == ms(client, store.config.layout.meta_key("s"))
    assert await store.count("s") == 1


async def test_not_durable_append_still_refreshes_the_index(
    make_store: Any, client: Any, topology: str
) -> None:
    """NotDurableError (written, not as durable as asked) comes after the index refresh."""
    if topology != "standalone":
        pytest.skip("needs a server without replicas")
    store = make_store(layout="native")
    await create_in_order(store, "alice", ["s1", "s2"])
    with pytest.raises(NotDurableError):
        await store.append("s1", [record("a")], durability="replicas=1,timeout_ms=10")
    assert ids(await store.owner_sessions("alice")) == ["s1", "s2"]


async def test_max_messages_and_metadata_together(make_store: Any, layout_name: str) -> None:
    """Trimming counts only messages; the metadata stays beside them."""
    store = make_store(layout=layout_name, max_messages=2)
    await store.create_session("s", owner="alice", title="t")
    await store.append("s", [record("a"), record("b"), record("c")])
    info = (await store.owner_sessions("alice")).sessions[0]
    assert (info.message_count, info.title) == (2, "t")


# ---------------------------------------------------------------------------------- paging


async def test_pages_walk_every_session_once(store: Any) -> None:
    """Cursors page through all of an owner's sessions, newest first, without repeats."""
    names = [f"s{n}" for n in range(7)]
    await create_in_order(store, "alice", names)
    await store.create_session("other", owner="bob")
    pages = await all_pages(store, "alice", limit=3)
    assert pages == [["s6", "s5", "s4"], ["s3", "s2", "s1"], ["s0"]]
    assert await all_pages(store, "alice", limit=7) == [names[::-1]]
    assert await all_pages(store, "alice", limit=100) == [names[::-1]]


async def test_pages_split_equal_times_correctly(store: Any, client: Any) -> None:
    """Sessions active in the same millisecond are neither lost nor repeated across pages."""
    names = ["a", "b", "c", "d", "e"]
    for name in names:
        await store.create_session(name, owner="alice")
    layout = store.config.layout
    for name in names:  # the same instant for all of them, in index and metadata
        client.zadd(layout.owner_index_key("alice"), {name: 1000})
        client.hset(layout.meta_key(name), "last_activity", 1000)
    client.zadd(layout.owner_index_key("alice"), {"z": 999})
    client.hset(layout.meta_key("z"), mapping={"session": "z", "owner": "alice",
                                               "created": 999, "last_activity": 999})  # fmt: skip
    for limit in (1, 2, 3):
        pages = await all_pages(store, "alice", limit=limit)
        assert [name for page in pages for name in page] == ["e", "d", "c", "b", "a", "z"]


async def test_cursors_carry_any_session_id(store: Any) -> None:
    """Ids with colons, braces, glob characters or invisible characters page correctly."""
    names = ["a:b:c", "{x}", "a*b?[c]", "ünï-会话", "soft\u00adhyphen", "9:99"]
    await create_in_order(store, "owner:{1}", names)
    pages = await all_pages(store, "owner:{1}", limit=1)
    assert pages == [[name] for name in names[::-1]]


async def test_gone_sessions_are_skipped_removed_and_the_page_refilled(
    store: Any, client: Any
) -> None:
    """Entries whose session vanished (expired, deleted behind our back) or changed owner
    are skipped, removed from the index, and the page is still full."""
    await create_in_order(store, "alice", [f"s{n}" for n in range(6)])
    layout = store.config.layout
    client.delete(layout.meta_key("s5"), layout.meta_key("s4"))  # as if they had expired
    client.hset(layout.meta_key("s3"), "owner", "mallory")
    page = await store.owner_sessions("alice", limit=3)
    assert ids(page) == ["s2", "s1", "s0"] and page.next_cursor is None
    index = layout.owner_index_key("alice")
    assert sorted(m.decode() for m in client.zrange(index, 0, -1)) == ["s0", "s1", "s2"]


async def test_index_entries_lagging_behind_are_moved_up(store: Any, client: Any) -> None:
    """An entry scored older than its session's metadata (a lost index write) is moved to
    the session's last activity when listed."""
    await create_in_order(store, "alice", ["s1", "s2"])
    layout = store.config.layout
    index = layout.owner_index_key("alice")
    client.zadd(index, {"s2": 5})
    assert ids(await store.owner_sessions("alice")) == ["s1", "s2"]  # the index decides order
    assert client.zscore(index, "s2") == ms(client, layout.meta_key("s2"))
    assert ids(await store.owner_sessions("alice")) == ["s2", "s1"]


async def test_a_lost_index_entry_comes_back_with_the_next_append(store: Any, client: Any) -> None:
    """An append re-adds a missing entry, so an index write lost to a crash heals."""
    await store.create_session("s", owner="alice")
    client.delete(store.config.layout.owner_index_key("alice"))
    assert ids(await store.owner_sessions("alice")) == []
    await store.append("s", [record("a")])
    assert ids(await store.owner_sessions("alice")) == ["s"]


# ------------------------------------------------------------------------------------- ttl


async def test_metadata_and_index_share_the_session_ttl(
    make_store: Any, layout_name: str, client: Any
) -> None:
    """create_session and appends give the metadata the list's ttl; the index outlives
    them; renaming is not activity and leaves ttls alone."""
    store = make_store(layout=layout_name, ttl=100)
    layout = store.config.layout
    meta, messages = layout.meta_key("s"), layout.messages_key("s")
    index = layout.owner_index_key("alice")
    await store.create_session("s", owner="alice")
    assert 95 <= client.ttl(meta) <= 100 and 95 <= client.ttl(index) <= 100
    client.expire(meta, 5)
    client.expire(index, 5)
    await store.append("s", [record("a")])
    assert 95 <= client.ttl(meta) <= 100 and 95 <= client.ttl(messages) <= 100
    assert 95 <= client.ttl(index) <= 100
    client.expire(meta, 50)
    client.expire(messages, 50)
    await store.rename_session("s", "renamed")
    assert client.ttl(meta) <= 50 and client.ttl(messages) <= 50


async def test_without_ttl_everything_persists(store: Any, client: Any) -> None:
    """Without a ttl neither the metadata nor the owner index expire."""
    await store.create_session("s", owner="alice")
    await store.append("s", [record("a")])
    layout = store.config.layout
    assert client.ttl(layout.meta_key("s")) == -1
    assert client.ttl(layout.owner_index_key("alice")) == -1


async def test_expired_session_leaves_the_listing(make_store: Any, client: Any) -> None:
    """When the ttl expires a session its metadata goes with it, the listing no longer
    shows it and its index entry is removed; sessions kept longer stay listed."""
    forever, short = make_store(layout="native"), make_store(layout="native", ttl=1)
    await forever.create_session("keep", owner="alice")
    await short.create_session("brief", owner="alice")
    await short.append("brief", [record("a")])
    assert sorted(ids(await short.owner_sessions("alice"))) == ["brief", "keep"]
    await asyncio.sleep(1.2)
    assert ids(await short.owner_sessions("alice")) == ["keep"]
    index = short.config.layout.owner_index_key("alice")
    assert client.zscore(index, "brief") is None
    assert client.exists(short.config.layout.meta_key("brief")) == 0


async def test_index_of_expired_sessions_expires_too(make_store: Any, client: Any) -> None:
    """An owner whose sessions all expired leaves no index behind."""
    store = make_store(layout="native", ttl=1)
    await store.create_session("brief", owner="alice")
    await asyncio.sleep(1.2)
    assert client.exists(store.config.layout.owner_index_key("alice")) == 0


# --------------------------------------------------------------------- rename, clear, delete


async def test_rename_session(store: Any, client: Any) -> None:
    """Renaming changes the title only; an unknown session is reported, not created."""
    created = await store.create_session("s", owner="alice", title="old")
    await asyncio.sleep(0.002)
    assert await store.rename_session("s", "new") is True
    renamed = await store.session_info("s")
    assert renamed.title == "new" and renamed.last_activity == created.last_activity
    assert await store.rename_session("s", "") is True
    assert (await store.session_info("s")).title == ""
    assert await store.rename_session("nobody", "x") is False
    assert client.exists(store.config.layout.meta_key("nobody")) == 0


async def test_renaming_a_session_without_metadata_gives_it_some(store: Any, client: Any) -> None:
    """A session with only messages gets metadata (no owner) that expires with its list."""
    await store.append("old", [record("a")])
    layout = store.config.layout
    client.expire(layout.messages_key("old"), 50)
    assert await store.rename_session("old", "Named later") is True
    info = await store.session_info("old")
    assert (info.title, info.owner, info.message_count) == ("Named later", None, 1)
    assert 0 < client.ttl(layout.meta_key("old")) <= 50


async def test_clear_keeps_the_session_listed(store: Any) -> None:
    """clear() empties the messages; the session keeps its metadata and place."""
    await store.create_session("s", owner="alice", title="t")
    await store.append("s", [record("a")])
    assert await store.clear("s") is True
    page = await store.owner_sessions("alice")
    assert ids(page) == ["s"] and page.sessions[0].message_count == 0


async def test_delete_removes_metadata_and_index_entries(store: Any, client: Any) -> None:
    """delete() removes list, tokens, metadata and index entries, and counts sessions that
    had either messages or metadata."""
    await store.create_session("owned", owner="alice")
    await store.append("owned", [record("a")])
    await store.append("plain", [record("b")])
    await store.create_session("empty", owner="bob")
    assert await store.delete("owned", "plain", "empty", "nobody") == 3
    assert list(client.scan_iter()) == []
    assert ids(await store.owner_sessions("alice")) == []


async def test_delete_session(store: Any, client: Any) -> None:
    """delete_session() deletes one session and says whether it existed."""
    await create_in_order(store, "alice", ["s1", "s2"])
    assert await store.delete_session("s1") is True
    assert await store.delete_session("s1") is False
    assert ids(await store.owner_sessions("alice")) == ["s2"]
    assert client.zcard(store.config.layout.owner_index_key("alice")) == 1


# -------------------------------------------------------------------------------- reindex


async def test_reindex_rebuilds_indexes_and_drops_stale_entries(store: Any, client: Any) -> None:
    """reindex() restores lost indexes from metadata and removes entries of gone sessions."""
    await create_in_order(store, "alice", ["a1", "a2", "a3"])
    await create_in_order(store, "bob", ["b1"])
    await store.append("plain", [record("x")])  # no metadata: not indexed
    layout = store.config.layout
    client.delete(layout.owner_index_key("alice"))
    client.zadd(layout.owner_index_key("bob"), {"ghost": 1, "a1": 2})
    report = await store.reindex()
    assert report == ReindexReport(indexed=4, removed=2)
    assert ids(await store.owner_sessions("alice")) == ["a3", "a2", "a1"]
    assert client.zcard(layout.owner_index_key("bob")) == 1
    assert await store.reindex() == ReindexReport(indexed=4, removed=0)


async def test_reindex_one_owner(store: Any, client: Any) -> None:
    """reindex(owner) rebuilds and prunes that owner's index only."""
    await create_in_order(store, "alice", ["a1", "a2"])
    await create_in_order(store, "bob", ["b1"])
    layout = store.config.layout
    client.delete(layout.owner_index_key("alice"), layout.owner_index_key("bob"))
    assert await store.reindex("alice") == ReindexReport(indexed=2, removed=0)
    assert ids(await store.owner_sessions("alice")) == ["a2", "a1"]
    assert client.exists(layout.owner_index_key("bob")) == 0


async def test_reindex_in_small_batches(make_store: Any, client: Any) -> None:
    """reindex reads metadata in batches; the result does not depend on the batch size."""
    store = make_store(layout="native")
    await create_in_order(store, "alice", [f"s{n}" for n in range(7)])
    client.delete(store.config.layout.owner_index_key("alice"))
    assert await store.reindex(batch=2) == ReindexReport(indexed=7, removed=0)
    assert len(ids(await store.owner_sessions("alice", limit=10))) == 7


async def test_layouts_keep_their_own_owners(make_store: Any, client: Any) -> None:
    """Native and community stores on one database list and repair only their sessions."""
    native, community = make_store(layout="native"), make_store(layout="community")
    await native.create_session("n", owner="alice")
    await community.create_session("c", owner="alice")
    assert ids(await native.owner_sessions("alice")) == ["n"]
    assert ids(await community.owner_sessions("alice")) == ["c"]
    client.delete(native.config.layout.owner_index_key("alice"))
    assert await native.reindex() == ReindexReport(indexed=1, removed=0)
    assert ids(await native.owner_sessions("alice")) == ["n"]


async def test_decoding_clients_work_too(layout_name: str, redis_url: str, topology: str) -> None:
    """Clients with decode_responses=True read and write the same metadata."""
    if topology != "standalone":
        pytest.skip("the user's own decoding client is a standalone one")
    sync = ChatHistoryStore(redis.Redis.from_url(redis_url, decode_responses=True),
                            layout=layout_name)  # fmt: skip
    with sync:
        sync.create_session("s", owner="ünï", title="é 🙂")
        sync.append("s", [record("a")])
    astore = AsyncChatHistoryStore(
        redis.asyncio.Redis.from_url(redis_url, decode_responses=True), layout=layout_name
    )
    async with astore:
        page = await astore.owner_sessions("ünï")
        assert [(i.session_id, i.title, i.message_count) for i in page.sessions] == [
            ("s", "é 🙂", 1)
        ]
        assert await astore.reindex() == ReindexReport(indexed=1, removed=0)
        assert await astore.delete("s") == 1


# ------------------------------------------------------------------------------ bad input

BAD_OWNERS = [
    (42, "owner must be a str, not int"),
    (b"alice", "owner must be a str, not bytes"),
    ("", "owner must not be empty"),
    ("a\nb", r"owner contains the control character U\+000A at position 1"),
    ("x\u2028", r"U\+2028"),
    ("lone\ud800", r"U\+D800"),
    ("x" * (MAX_SESSION_ID_LENGTH + 1), f"the limit is {MAX_SESSION_ID_LENGTH}"),
]


@pytest.mark.parametrize(("owner", "message"), BAD_OWNERS)
async def test_bad_owner_is_rejected(store: Any, client: Any, owner: Any, message: str) -> None:
    """An unusable owner id is refused before anything is sent."""
    await store.create_session("keep", owner="alice")
    before = snapshot(client)
    with pytest.raises(InvalidOptionError, match=message):
        await store.create_session("s", owner=owner)
    with pytest.raises(InvalidOptionError, match=message):
        await store.owner_sessions(owner)
    with pytest.raises(InvalidOptionError, match=message):
        await store.reindex(owner)
    assert snapshot(client) == before


BAD_TITLES = [
    (42, "title must be a str, not int"),
    (["t"], "title must be a str, not list"),
    ("x" * (MAX_TITLE_LENGTH + 1), f"{MAX_TITLE_LENGTH + 1} characters long; the limit is "
                                   f"{MAX_TITLE_LENGTH}"),
    ("tab\there", r"title contains the control character U\+0009 at position 3"),
    ("nul\x00", r"U\+0000"),
]  # fmt: skip


@pytest.mark.parametrize(("title", "message"), BAD_TITLES)
async def test_bad_title_is_rejected(store: Any, client: Any, title: Any, message: str) -> None:
    """An unusable title is refused by create_session and rename_session alike."""
    await store.create_session("s", owner="alice", title="fine")
    before = snapshot(client)
    with pytest.raises(InvalidOptionError, match=message):
        await store.create_session("new", owner="alice", title=title)
    with pytest.raises(InvalidOptionError, match=message):
        await store.rename_session("s", title)
    assert snapshot(client) == before
    assert (await store.session_info("s")).title == "fine"


async def test_longest_title_is_accepted(store: Any) -> None:
    """A title of exactly MAX_TITLE_LENGTH characters is stored whole."""
    title = "é" * MAX_TITLE_LENGTH
    assert (await store.create_session("s", title=title)).title == title


@pytest.mark.parametrize(
    ("options", "message"),
    [({"limit": 0}, "between 1 and"), ({"limit": MAX_PAGE_SIZE + 1}, "between 1 and"),
     ({"limit": True}, "limit must be an int"), ({"limit": "5"}, "limit must be an int"),
     ({"cursor": "garbage"}, "not a next_cursor"), ({"cursor": 5}, "not a next_cursor"),
     ({"cursor": "12:"}, "not a next_cursor"), ({"cursor": ":s"}, "not a next_cursor"),
     ({"cursor": "12:a\nb"}, "not a next_cursor")],
)  # fmt: skip
async def test_bad_paging_options(store: Any, options: dict[str, Any], message: str) -> None:
    """Page sizes and cursors are checked with a clear message."""
    with pytest.raises(InvalidOptionError, match=message):
        await store.owner_sessions("alice", **options)


async def test_bad_session_ids_are_rejected(store: Any, client: Any) -> None:
    """The new methods check session ids like every other one."""
    for call in (
        lambda: store.create_session("", owner="alice"),
        lambda: store.session_info("a\nb"),
        lambda: store.rename_session(42, "t"),
        lambda: store.delete_session(None),
    ):
        with pytest.raises(InvalidSessionIdError):
            await call()
    assert list(client.scan_iter()) == []


async def test_wrong_type_metadata_key(store: Any, client: Any) -> None:
    """A metadata key of another type is named in WrongTypeError and left untouched;
    appends still succeed, since the messages are what they store."""
    meta = store.config.layout.meta_key("s")
    client.set(meta, b"precious")
    for call in (lambda: store.session_info("s"), lambda: store.create_session("s"),
                 lambda: store.rename_session("s", "t")):  # fmt: skip
        with pytest.raises(WrongTypeError) as caught:
            await call()
        assert (caught.value.key, caught.value.expected) == (meta, "hash")
    assert await store.append("s", [record("a")]) == 1
    assert client.get(meta) == b"precious"


async def test_wrong_type_owner_index(store: Any, client: Any, caplog: Any) -> None:
    """An owner index of another type is named in WrongTypeError by create and listing;
    an append to one of its sessions still succeeds and logs what it could not do."""
    await store.create_session("s", owner="alice")
    index = store.config.layout.owner_index_key("alice")
    client.delete(index)
    client.set(index, b"precious")
    with pytest.raises(WrongTypeError) as caught:
        await store.owner_sessions("alice")
    assert (caught.value.key, caught.value.expected) == (index, "sorted set")
    with pytest.raises(WrongTypeError):
        await store.create_session("s", owner="alice")
    with caplog.at_level(logging.WARNING, logger="redis_chat_history"):
        assert await store.append("s", [record("a")]) == 1
    assert "could not refresh the owner index" in caplog.text
    assert client.get(index) == b"precious"


# ------------------------------------------------------------------------ Redis Cluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[topologies.Cluster]:
    """A 3-master + 3-replica cluster for this module's cluster tests."""
    with topologies.cluster(Path(tmp_path_factory.mktemp("session-index-cluster"))) as running:
        yield running


@pytest.fixture
async def cluster_store(
    cluster: topologies.Cluster, request: pytest.FixtureRequest
) -> AsyncIterator[Any]:
    """A sync or async store on the emptied cluster, wrapped like the other stores."""
    admin = cluster.client()
    admin.flushall()
    admin.close()
    if request.param == "sync":
        store: Any = ChatHistoryStore(cluster.client(), layout="native")
    else:
        store = AsyncChatHistoryStore(
            redis.asyncio.cluster.RedisCluster(
                startup_nodes=[
                    redis.asyncio.cluster.ClusterNode(node.host, node.port)
                    for node in cluster.startup_nodes
                ]
            ),
            layout="native",
        )
    yield Awaited(store)
    if request.param == "sync":
        store.close()
    else:
        await store.aclose()


@pytest.mark.parametrize("cluster_store", ["sync", "async"], indirect=True)
async def test_cluster_listing_delete_and_reindex(
    cluster: topologies.Cluster, cluster_store: Any
) -> None:
    """On a cluster an owner's sessions sit on several masters and the index on another
    slot; listing, paging, delete and reindex work across them."""
    store = cluster_store
    names = [f"chat-{n}" for n in range(9)]
    layout = store.config.layout
    masters = {cluster.master_for_key(layout.meta_key(name)) for name in names}
    assert len(masters) > 1  # the sessions really are spread out
    await create_in_order(store, "alice", names)
    for name in names[:3]:
        await store.append(name, [record(name)])
    assert await all_pages(store, "alice", limit=4) == [
        ["chat-2", "chat-1", "chat-0", "chat-8"],
        ["chat-7", "chat-6", "chat-5", "chat-4"],
        ["chat-3"],
    ]
    assert await store.delete("chat-0", "chat-5") == 2
    assert await store.delete_session("chat-8") is True
    listed = [name for page in await all_pages(store, "alice", limit=3) for name in page]
    assert listed == ["chat-2", "chat-1", "chat-7", "chat-6", "chat-4", "chat-3"]
    with cluster.client() as admin:
        admin.delete(layout.owner_index_key("alice"))
        admin.zadd(layout.owner_index_key("alice"), {"ghost": 1})
    assert await store.reindex() == ReindexReport(indexed=6, removed=1)
    assert ids(await store.owner_sessions("alice", limit=10)) == listed
