"""Property-based tests: any valid session id and any JSON-able message round-trip.

One store per layout per test function; every example starts from an empty database.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, message_to_dict

from redis_chat_history import (
    MAX_SESSION_ID_LENGTH,
    ChatHistoryStore,
    InvalidSessionIdError,
    RedisChatMessageHistory,
)

LAYOUTS = ("native", "community", "memorystore")
FORBIDDEN = ("Cc", "Cs", "Zl", "Zp")

SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

# Glob, hash-tag, escape and separator characters, drawn often so ids collide with syntax.
id_chars = st.one_of(st.characters(exclude_categories=FORBIDDEN), st.sampled_from("*?[]{}%\\:"))
session_ids = st.text(id_chars, min_size=1, max_size=1024)


@st.composite
def id_pairs(draw: st.DrawFn) -> tuple[str, str]:
    """Two different ids: unrelated, or one a prefix of the other."""
    first = draw(session_ids)
    kind = draw(st.sampled_from(["unrelated", "longer", "shorter"]))
    if kind == "unrelated":
        second = draw(session_ids)
    elif kind == "longer":
        second = (first + draw(st.text(id_chars, min_size=1, max_size=8)))[:1024]
    else:
        second = first[: draw(st.integers(1, len(first)))]
    assume(first != second)
    return (first, second) if draw(st.booleans()) else (second, first)


def record(text: str, kind: str = "human") -> dict[str, Any]:
    return {"type": kind, "data": {"content": text, "type": kind}}


@pytest.fixture
def stores(client: redis.Redis) -> dict[str, ChatHistoryStore]:
    """One sync store per layout, all on the test's client."""
    return {name: ChatHistoryStore(client, layout=name) for name in LAYOUTS}


@SETTINGS
@given(session_id=session_ids)
@example(session_id="*")
@example(session_id="a*")
@example(session_id="[x]")
@example(session_id="}")
@example(session_id="{}")
@example(session_id="a}b")
@example(session_id="%7B")
@example(session_id="{")
@example(session_id="\\")
@example(session_id="?")
@example(session_id="x" * MAX_SESSION_ID_LENGTH)
@example(session_id="}" * MAX_SESSION_ID_LENGTH)
@example(session_id="\U0001f600 \u00e9\u4e2d")
def test_any_valid_session_id_round_trips(
    stores: dict[str, ChatHistoryStore], client: redis.Redis, session_id: str
) -> None:
    """Every valid id is written, read, counted, listed and cleared as itself."""
    for store in stores.values():
        client.flushdb()
        message = record(session_id)
        assert store.append(session_id, [message]) == 1
        assert store.messages(session_id) == [message]
        assert store.count(session_id) == 1
        assert list(store.session_ids()) == [session_id]
        assert list(store.session_ids(session_id)) == [session_id]
        assert store.clear(session_id) is True
        assert store.messages(session_id) == []
        assert store.count(session_id) == 0
        assert list(store.session_ids()) == []
        assert client.dbsize() == 0


@SETTINGS
@given(ids=id_pairs())
@example(ids=("*", "a"))
@example(ids=("a*", "a"))
@example(ids=("[x]", "x"))
@example(ids=("a?", "ab"))
@example(ids=("}", "a}b"))
@example(ids=("{}", "{"))
@example(ids=("{a}", "a"))
@example(ids=("a}b", "a"))
@example(ids=("%7B", "{"))
@example(ids=("%", "%25"))
@example(ids=("\\", "\\*"))
@example(ids=("a", "a:b"))
def test_sessions_never_interfere(
    stores: dict[str, ChatHistoryStore], client: redis.Redis, ids: tuple[str, str]
) -> None:
    """Writing, clearing or deleting one session never changes what another reads."""
    first, second = ids
    mine, theirs = [record("mine")], [record("theirs 1"), record("theirs 2")]
    for store in stores.values():
        client.flushdb()
        store.append(first, mine)
        assert store.append(second, theirs) == 2
        assert store.messages(first) == mine
        assert store.count(first) == 1
        assert store.messages(second) == theirs
        assert sorted(store.session_ids()) == sorted(ids)
        for prefix, other in ((first, second), (second, first)):
            expected = {prefix, other} if other.startswith(prefix) else {prefix}
            assert set(store.session_ids(prefix)) == expected
        assert store.clear(second) is True
        assert store.messages(first) == mine
        assert store.count(second) == 0
        store.append(second, theirs)
        assert store.delete(first) == 1
        assert store.messages(second) == theirs
        assert list(store.session_ids()) == [second]
        assert store.delete(second) == 1
        assert client.dbsize() == 0


invalid_ids = st.one_of(
    st.just(""),
    st.tuples(
        st.text(id_chars, min_size=1, max_size=4),
        st.integers(MAX_SESSION_ID_LENGTH + 1, MAX_SESSION_ID_LENGTH + 3000),
    ).map(lambda pair: (pair[0] * (MAX_SESSION_ID_LENGTH + 3000))[: pair[1]]),
    st.tuples(
        st.text(id_chars, max_size=20),
        st.characters(categories=FORBIDDEN),
        st.text(id_chars, max_size=20),
    ).map("".join),
    st.one_of(st.none(), st.integers(), st.binary(), st.floats(), st.lists(st.text(max_size=3))),
)

OPERATIONS: dict[str, Callable[[ChatHistoryStore, Any], Any]] = {
    "append": lambda store, session_id: store.append(session_id, [record("x")]),
    "messages": lambda store, session_id: store.messages(session_id),
    "last": lambda store, session_id: store.messages(session_id, last=1),
    "count": lambda store, session_id: store.count(session_id),
    "clear": lambda store, session_id: store.clear(session_id),
    "delete": lambda store, session_id: store.delete("keep", session_id),
}


def snapshot(client: redis.Redis) -> dict[bytes, bytes | None]:
    """Every key with its serialized value, to prove nothing changed."""
    return {key: client.dump(key) for key in client.scan_iter()}


@SETTINGS
@given(session_id=invalid_ids)
@example(session_id="")
@example(session_id="x" * (MAX_SESSION_ID_LENGTH + 1))
@example(session_id="a\nb")
@example(session_id="\x00")
@example(session_id="a\u2028b")
@example(session_id="\u2029")
@example(session_id="\ud800")
@example(session_id=b"bytes")
@example(session_id=None)
@example(session_id=42)
def test_invalid_session_ids_are_refused_and_write_nothing(
    stores: dict[str, ChatHistoryStore], client: redis.Redis, session_id: Any
) -> None:
    """Empty, too long, control-character and non-str ids raise and leave the data alone."""
    client.flushdb()
    for store in stores.values():
        store.append("keep", [record("kept")])
    before = snapshot(client)
    for store in stores.values():
        for name, operation in OPERATIONS.items():
            with pytest.raises(InvalidSessionIdError):
                operation(store, session_id)
            assert snapshot(client) == before, name
    with pytest.raises(InvalidSessionIdError):
        RedisChatMessageHistory(session_id, client=client)
    assert client.dbsize() == len(before) == 6


# Integers stay within what orjson decodes exactly (see test_big_integers_round_trip).
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(st.characters(exclude_categories=("Cs",))),
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
records = st.builds(
    lambda kind, data: {"type": kind, "data": data},
    st.text(max_size=12),
    st.dictionaries(st.text(max_size=12), json_values, max_size=6),
)


def assert_round_trip(
    stores: dict[str, ChatHistoryStore], client: redis.Redis, batch: list[dict[str, Any]]
) -> None:
    """Each layout reads ``batch`` back equal (to the type: 1 is not 1.0 or True) and stores
    exactly the ``json.dumps`` bytes."""
    encoded = [json.dumps(item).encode() for item in batch]
    for store in stores.values():
        client.flushdb()
        assert store.append("s", batch) == len(batch)
        read = store.messages("s")
        assert read == batch
        assert [json.dumps(item) for item in read] == [e.decode() for e in encoded], "types"
        raw = client.lrange(store.config.layout.messages_key("s"), 0, -1)
        assert raw == (encoded[::-1] if store.config.layout.newest_first else encoded)
        assert all(element.isascii() for element in raw)


@SETTINGS
@given(batch=st.lists(records, min_size=1, max_size=4))
@example(batch=[{"type": "ai", "data": {"content": "\U0001f600 \u00e9 \u4e2d", "n": None}}])
@example(batch=[{"type": "human", "data": {"lone": "\ud800", "tail": "x\udfffy"}}])
@example(batch=[{"type": "x", "data": {"f": [1e308, -0.0, 5e-324, float("inf")], "b": True}}])
@example(batch=[{"type": "x", "data": {"i": [2**63 - 1, -(2**63), 2**64 - 1], "d": {"": {}}}}])
def test_records_round_trip(
    stores: dict[str, ChatHistoryStore], client: redis.Redis, batch: list[dict[str, Any]]
) -> None:
    """Arbitrary JSON-able records come back equal and are stored as stdlib json.dumps."""
    assert_round_trip(stores, client, batch)


@pytest.mark.parametrize("number", [2**64, -(2**63) - 1, 10**30, -(10**40)])
def test_big_integers_round_trip(
    stores: dict[str, ChatHistoryStore], client: redis.Redis, number: int
) -> None:
    """Integers too big for 64 bits come back as the same int, not as a float."""
    assert_round_trip(stores, client, [{"type": "x", "data": {"n": number, "l": [number]}}])


message_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=200)
optional_text = st.none() | st.text(max_size=20)
lc_messages = st.lists(
    st.one_of(
        st.builds(
            HumanMessage,
            content=message_text,
            id=optional_text,
            name=optional_text,
            additional_kwargs=st.dictionaries(st.text(max_size=8), json_values, max_size=3),
        ),
        st.builds(AIMessage, content=message_text, id=optional_text, name=optional_text),
    ),
    min_size=1,
    max_size=5,
)


@SETTINGS
@given(messages=lc_messages, extra=lc_messages)
def test_langchain_messages_round_trip(
    client: redis.Redis, messages: list[BaseMessage], extra: list[BaseMessage]
) -> None:
    """Random Human/AI messages come back through RedisChatMessageHistory unchanged."""
    for layout in LAYOUTS:
        client.flushdb()
        history = RedisChatMessageHistory("chat", client=client, layout=layout)
        history.add_messages(messages)
        for message in extra:
            history.add_message(message)
        expected = [message_to_dict(m) for m in [*messages, *extra]]
        assert [message_to_dict(m) for m in history.messages] == expected
        newest = history.store.messages("chat", start=len(messages))
        assert newest == expected[-len(extra) :]


def accepted(store: ChatHistoryStore, session_id: str, text: str) -> bool:
    """Append one message; False if the layout refuses the id."""
    try:
        store.append(session_id, [record(text)])
    except InvalidSessionIdError:
        return False
    return True


@pytest.mark.parametrize("layout", ["community", "memorystore"])
def test_ids_ending_like_token_keys_are_listed(client: redis.Redis, layout: str) -> None:
    """Every id the store accepted is listed, even one ending like a retry-token key."""
    store = ChatHistoryStore(client, layout=layout)
    ids = ["rch:tokens", "a:rch:tokens", "{a}:rch:tokens", "plain"]
    written = [session_id for session_id in ids if accepted(store, session_id, "x")]
    assert sorted(store.session_ids()) == sorted(written)


@pytest.mark.parametrize("ids", [("a", "{a}:rch:tokens"), ("{a}:rch:tokens", "a")])
def test_memorystore_token_keys_are_not_session_keys(
    client: redis.Redis, ids: tuple[str, str]
) -> None:
    """In the memorystore layout no session's token key holds another session's messages."""
    store = ChatHistoryStore(client, layout="memorystore")
    written = [session_id for session_id in ids if accepted(store, session_id, session_id)]
    for session_id in written:
        others = [other for other in written if other != session_id]
        store.clear(session_id)
        for other in others:
            assert store.messages(other) == [record(other)]
        store.append(session_id, [record(session_id)])
    assert len(written) >= 1
