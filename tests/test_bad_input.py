"""Bad input gets a clear error that names the problem, and leaves all data as it was."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import redis

from redis_chat_history import (
    MAX_SESSION_ID_LENGTH,
    ChatHistoryError,
    ChatHistoryStore,
    InvalidMessageError,
    InvalidOptionError,
    InvalidSessionIdError,
    MessageTooLargeError,
    NativeLayout,
)


def snapshot(client: redis.Redis) -> dict[bytes, tuple[bytes | None, int]]:
    """Every key's serialized value and ttl, to prove nothing changed."""
    return {key: (client.dump(key), client.ttl(key)) for key in client.scan_iter()}


def record(text: str) -> dict[str, Any]:
    return {"type": "human", "data": {"content": text}}


@pytest.fixture
async def seeded(store: Any, client: redis.Redis) -> Any:
    """A store with two sessions already written."""
    await store.append("keep-1", [record("a"), record("b")])
    await store.append("keep-2", [record("c")])
    return store


BAD_IDS = [
    (None, "must be a str"),
    (42, "must be a str"),
    (b"bytes-id", "must be a str"),
    ("", "must not be empty"),
    ("x" * (MAX_SESSION_ID_LENGTH + 1), f"limit is {MAX_SESSION_ID_LENGTH}"),
    ("line\nbreak", r"U\+000A"),
    ("nul\x00", r"U\+0000"),
    ("del\x7f", r"U\+007F"),
    ("sep\u2028", r"U\+2028"),
    ("lone\ud800surrogate", r"U\+D800"),
]


@pytest.mark.parametrize(("session_id", "message"), BAD_IDS)
async def test_bad_session_id_is_rejected_everywhere(
    seeded: Any, client: redis.Redis, session_id: Any, message: str
) -> None:
    """Every operation rejects an unusable session id before touching Redis."""
    before = snapshot(client)
    for operation, args in [
        ("append", ([record("x")],)),
        ("messages", ()),
        ("count", ()),
        ("clear", ()),
    ]:
        with pytest.raises(InvalidSessionIdError, match=message):
            await getattr(seeded, operation)(session_id, *args)
    with pytest.raises(InvalidSessionIdError, match=message):
        await seeded.delete("keep-1", session_id)
    assert snapshot(client) == before


def test_longest_allowed_session_id_works(client: redis.Redis) -> None:
    """An id of exactly the documented limit is accepted."""
    store = ChatHistoryStore(client)
    session_id = "é" * MAX_SESSION_ID_LENGTH
    assert store.append(session_id, [record("x")]) == 1
    assert list(store.session_ids()) == [session_id]


@pytest.mark.parametrize(
    ("batch", "error", "message"),
    [
        ([record("ok"), record("x" * 2_000_000)], MessageTooLargeError,
         "message 1 .* over the limit"),
        ([record("ok"), {"type": "human", "data": {"content": b"bytes"}}], InvalidMessageError,
         "message 1 .* cannot be encoded as JSON"),
        ([record("ok"), {"type": "human", "data": {"tags": {1, 2}}}],
         InvalidMessageError, "cannot be encoded"),
        ([record("ok"), {"data": {"content": "no type"}}], InvalidMessageError,
         "message 1 .* record"),
        ([record("ok"), {"type": "human", "data": "not a dict"}], InvalidMessageError, "record"),
        ([record("ok"), "just text"], InvalidMessageError, "got str"),
        (record("a mapping, not a list"), InvalidMessageError, "sequence of message records"),
        ("text", InvalidMessageError, "sequence of message records"),
    ],
)  # fmt: skip
async def test_bad_batch_writes_nothing(
    seeded: Any, client: redis.Redis, batch: Any, error: type[Exception], message: str
) -> None:
    """A batch with one bad message fails whole; no part of it is stored."""
    before = snapshot(client)
    with pytest.raises(error, match=message):
        await seeded.append("keep-1", batch)
    with pytest.raises(error):
        await seeded.append("new-session", batch)
    assert snapshot(client) == before


async def test_message_size_limit_is_configurable(make_store: Any, client: redis.Redis) -> None:
    """``max_message_bytes`` sets the limit; the error reports size and limit."""
    store = make_store(max_message_bytes=100)
    await store.append("s", [record("short")])
    with pytest.raises(MessageTooLargeError) as caught:
        await store.append("s", [record("y" * 200)])
    assert caught.value.limit == 100 and caught.value.size > 200
    assert await store.count("s") == 1


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"ttl": -1}, "must not be negative"),
        ({"ttl": 1.5}, "must be an int"),
        ({"ttl": "60"}, "must be an int"),
        ({"ttl": True}, "must be an int"),
        ({"ttl": timedelta(seconds=-5)}, "must not be negative"),
        ({"ttl": timedelta(milliseconds=1500)}, "whole seconds"),
        ({"max_messages": 0}, "at least 1"),
        ({"max_messages": -3}, "at least 1"),
        ({"max_messages": 2.0}, "must be an int"),
        ({"max_message_bytes": 0}, "at least 1"),
        ({"layout": "redis-stack"}, "unknown layout"),
        ({"strict": "yes"}, "strict must be a bool"),
    ],
)
def test_bad_options_are_rejected(
    client: redis.Redis, options: dict[str, Any], message: str
) -> None:
    """Store options are validated at construction, with the option named."""
    before = snapshot(client)
    with pytest.raises(InvalidOptionError, match=message):
        ChatHistoryStore(client, **options)
    assert snapshot(client) == before


def test_ttl_accepts_timedelta_and_zero(client: redis.Redis) -> None:
    """A timedelta ttl is whole seconds; 0 means no expiry, as upstream treats it."""
    assert ChatHistoryStore(client, ttl=timedelta(minutes=2)).config.ttl == 120
    assert ChatHistoryStore(client, ttl=0).config.ttl is None


@pytest.mark.parametrize(
    ("read", "message"),
    [({"last": -1}, "last must be"), ({"start": -2}, "start must be"),
     ({"stop": -1}, "stop must be"), ({"last": "3"}, "last must be")],
)  # fmt: skip
async def test_bad_read_arguments(seeded: Any, read: dict[str, Any], message: str) -> None:
    """Read windows must be non-negative ints."""
    with pytest.raises(InvalidOptionError, match=message):
        await seeded.messages("keep-1", **read)


def test_client_and_url_are_exclusive(client: redis.Redis, redis_url: str) -> None:
    """A store needs exactly one of a client and a URL."""
    with pytest.raises(InvalidOptionError, match="either a redis client or url"):
        ChatHistoryStore()
    with pytest.raises(InvalidOptionError, match="either a redis client or url"):
        ChatHistoryStore(client, url=redis_url)


@pytest.mark.parametrize("prefix", ["", "a{b", "x}"])
def test_native_prefix_must_keep_the_hash_tag_intact(prefix: str) -> None:
    """A native prefix with braces would break the one-slot key design."""
    with pytest.raises(InvalidOptionError):
        NativeLayout(prefix=prefix)


def test_every_error_is_a_chat_history_error() -> None:
    """One ``except ChatHistoryError`` catches every error of ours."""
    for error in (InvalidSessionIdError, InvalidOptionError, InvalidMessageError,
                  MessageTooLargeError):  # fmt: skip
        assert issubclass(error, ChatHistoryError) and issubclass(error, ValueError)
