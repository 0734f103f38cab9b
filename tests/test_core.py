"""Unit tests of the redis-free core: no server needed."""

from __future__ import annotations

import json

import pytest
from redis.crc import key_slot

from redis_chat_history import _core, codec
from redis_chat_history._clients import redact_url
from redis_chat_history._plan import Plan, WrongTypeReply, translate_error
from redis_chat_history.errors import WrongTypeError
from redis_chat_history.layouts import (
    CommunityLayout,
    Layout,
    MemorystoreLayout,
    NativeLayout,
    glob_escape,
    hash_slot,
    same_slot_key,
)
from redis_chat_history.settings import StoreSettings

ODD_IDS = [
    "plain",
    "{tag}",
    "a}b",
    "}",
    "{}",
    "}{",
    "x{}y",
    "{",
    "%7B",
    "a*b?[c]",
    "ünï-会话",
    "a:b/c",
]


@pytest.mark.parametrize("session_id", ODD_IDS)
@pytest.mark.parametrize("layout", [CommunityLayout(), MemorystoreLayout(), NativeLayout(),
                                    CommunityLayout("{app}:")])  # fmt: skip
def test_session_keys_share_a_slot(layout: object, session_id: str) -> None:
    """A session's list and token keys always hash to the same cluster slot."""
    messages, tokens = layout.messages_key(session_id), layout.token_key(session_id)  # type: ignore[attr-defined]
    assert messages != tokens
    assert key_slot(messages.encode()) == key_slot(tokens.encode())
    assert hash_slot(messages) == key_slot(messages.encode())


@pytest.mark.parametrize("session_id", ODD_IDS)
def test_native_ids_round_trip_through_keys(session_id: str) -> None:
    """Native keys decode back to the session id, and their hash tag is never empty."""
    layout = NativeLayout()
    key = layout.messages_key(session_id)
    assert layout.session_id_of(key) == session_id
    assert key.count("{") == 1 and key.count("}") == 1


def test_upstream_key_names() -> None:
    """The legacy layouts name keys exactly as the upstream packages do."""
    assert CommunityLayout().messages_key("foo") == "message_store:foo"
    assert CommunityLayout("myapp:").messages_key("p1") == "myapp:p1"
    assert MemorystoreLayout().messages_key("session1") == "session1"
    assert NativeLayout().messages_key("a{b}") == "chat:{a%7Bb%7D}:messages"


def test_token_key_for_stray_brace_pins_the_slot() -> None:
    """A key with ``}`` but no hash tag gets a token key with a tag hashing to its slot."""
    key = "message_store:a}b"
    token = same_slot_key(key, ":t")
    assert token.startswith("{") and key in token
    assert key_slot(token.encode()) == key_slot(key.encode())


def test_glob_escape_matches_literally() -> None:
    """Glob metacharacters are escaped for SCAN MATCH."""
    assert glob_escape("a*b?[c]\\") == "a\\*b\\?\\[c\\]\\\\"
    assert NativeLayout().scan_pattern("u*") == "chat:{u\\**}:messages"


def test_foreign_keys_are_not_sessions() -> None:
    """Keys that a layout did not write map to no session id."""
    native = NativeLayout()
    assert native.session_id_of("chat:{a}:tokens") is None
    assert native.session_id_of("chat:{}:messages") is None
    assert native.session_id_of("other:{a}:messages") is None
    assert CommunityLayout().session_id_of("message_store:") is None
    assert MemorystoreLayout().session_id_of("{x}\x1frch:tokens") is None
    assert MemorystoreLayout().session_id_of("{x}:rch:tokens") == "{x}:rch:tokens"


def test_encoding_is_byte_identical_to_upstream() -> None:
    """Elements are ``json.dumps`` with the standard library's defaults: ASCII, ", " and ": "."""
    records = [{"type": "ai", "data": {"content": "héllo 🙂", "n": [1, None, True, 1.5]}}]
    (element,) = codec.encode_records(records, codec.DEFAULT_MAX_MESSAGE_BYTES)
    assert element == json.dumps(records[0]).encode()
    assert (
        element == b'{"type": "ai", "data": {"content": "h\\u00e9llo \\ud83d\\ude42", '
        b'"n": [1, null, true, 1.5]}}'
    )


def test_decoding_matches_the_standard_library() -> None:
    """Reads give what ``json.loads`` gives, including values orjson would refuse."""
    elements = [
        b'{"type": "human", "data": {"x": NaN, "big": 123456789012345678901234567890}}',
        '{"type": "human", "data": {"s": "\\ud800"}}',
        '{"type": "human", "data": {"big": -98765432109876543210, "id": "12345678901234567890"}}',
    ]
    got = codec.decode_elements(elements, key="k", indices=[0, 1, 2], strict=True)
    expected = [json.loads(e) for e in elements]
    assert got[0]["data"]["big"] == expected[0]["data"]["big"]
    assert got[0]["data"]["x"] != got[0]["data"]["x"]  # NaN
    assert got[1] == expected[1]
    assert got[2] == expected[2] and isinstance(got[2]["data"]["big"], int)


@pytest.mark.parametrize(
    ("layout", "start", "stop", "window"),
    [(NativeLayout(), 0, None, (0, -1)), (NativeLayout(), 2, 5, (2, 4)),
     (CommunityLayout(), 0, None, (0, -1)), (CommunityLayout(), 2, 5, (-5, -3)),
     (CommunityLayout(), 3, None, (0, -4))],
)  # fmt: skip
def test_read_windows(
    layout: Layout, start: int, stop: int | None, window: tuple[int, int]
) -> None:
    """Chronological positions map to the right LRANGE bounds for either list direction."""
    assert layout.window(start, stop) == window


def test_indices_of_clamped_negative_ranges() -> None:
    """Element indices follow Redis's clamping of negative LRANGE starts."""
    assert list(Layout.indices((-3, -1), 3)) == [-3, -2, -1]
    assert list(Layout.indices((-5, -1), 2)) == [0, 1]
    assert list(Layout.indices((2, 4), 3)) == [2, 3, 4]


def test_append_plan_is_one_script_call() -> None:
    """An append is one EVALSHA with the list, token and metadata keys and a fresh token per
    plan."""
    config = StoreSettings.build(layout="community", ttl=60, max_messages=10)
    plan = _core.plan_append(config, "s", [{"type": "human", "data": {}}])
    assert plan is not None and len(plan.calls) == 1
    (call,) = plan.calls
    assert call.keys == (
        "message_store:s",
        "{message_store:s}\x1frch:tokens:message_store:s",
        "{message_store:s}\x1frch:meta:message_store:s",
        "{message_store:s}\x1frch:tokens",  # the names 0.1.0 gave them, still consulted
        "{message_store:s}\x1frch:meta",
    )
    assert call.args[1:4] == ("LPUSH", 60, 10)
    assert call.args[4] in (0, 1) and call.args[5] == 0 and call.args[6] == "h"
    assert call.args[7] == "s"
    assert call.args[8:] == (b'{"type": "human", "data": {}}',)
    native = _core.plan_append(
        StoreSettings.build(layout="native"), "s", [{"type": "x", "data": {}}]
    )
    assert native is not None and len(native.calls[0].keys) == 3
    assert native.calls[0].args[6:] == ("h", b'{"type": "x", "data": {}}')
    rule = StoreSettings.build(layout="native", start_on="any", keep_system=True)
    anywhere = _core.plan_append(rule, "s", [{"type": "x", "data": {}}])
    assert anywhere is not None and anywhere.calls[0].args[6] == "as"
    other = _core.plan_append(config, "s", [{"type": "human", "data": {}}])
    assert other is not None and other.calls[0].args[0] != call.args[0]
    assert _core.plan_append(config, "s", []) is None


def test_wrongtype_errors_name_the_key() -> None:
    """Redis's own WRONGTYPE errors become WrongTypeError naming the plan's key, also from
    a pipeline (redis-py prefixes the failing command, which may hold user text)."""
    plan = Plan((), lambda replies: None, ("list-key", "list"))
    plain = translate_error("WRONGTYPE Operation against a key", plan)
    assert plain is not None and (plain.key, plain.expected) == ("list-key", "list")
    assert translate_error("ERR something else", plan) is None
    piped = "Command # 1 (EVALSHA x 2 WRONGTYPE rch 1 list) of pipeline caused error: "
    error = translate_error(piped + "WRONGTYPE Operation against a key", plan)
    assert error is not None and error.key == "list-key"
    assert translate_error(piped + "ERR other", plan) is None
    error = translate_error(piped + "('WRONGTYPE Operation against a key',)", plan)  # asyncio
    assert error is not None and error.key == "list-key"


def test_scripts_report_wrong_types_in_their_replies() -> None:
    """A script's {'WRONGTYPE', key number, type} reply names that key and both types;
    any other reply passes through."""
    reply = WrongTypeReply(("list", "sorted set"))
    keys = ("list-key", "token-key")
    error = reply.error([b"WRONGTYPE", 2, b"string"], keys)
    assert error is not None and (error.key, error.expected, error.actual) == (
        "token-key",
        "sorted set",
        "string",
    )
    assert reply.error([1, 5], keys) is None
    assert reply.error([b"OTHER", 1, b"x"], keys) is None
    assert reply.check([1, 5, b"owner"], keys) == [1, 5, b"owner"]
    with pytest.raises(WrongTypeError):
        reply.check(["WRONGTYPE", 1, "hash"], keys)


@pytest.mark.parametrize(
    ("url", "shown"),
    [("redis://:s3cret@host:6379/0", "redis://:***@host:6379/0"),
     ("rediss://user:s3cret@host/1", "rediss://user:***@host/1"),
     ("redis://user@host", "redis://user@host"),
     ("unix:///tmp/r.sock?db=1&password=s3cret", "unix:///tmp/r.sock?db=1&password=***")],
)  # fmt: skip
def test_redact_url_hides_passwords(url: str, shown: str) -> None:
    """URLs are shown with any password replaced."""
    assert redact_url(url) == shown
    assert "s3cret" not in redact_url(url)
