"""Byte-level compatibility with the data the two upstream packages wrote.

The golden fixtures (``tests/fixtures``, copied from the project's shared reference folder, or
``$RCH_FIXTURES_DIR``) hold the exact keys,
list elements and TTLs that langchain-community 0.4.2 (langchain-core 1.7.2) and
langchain-google-memorystore-redis 0.3.0 (langchain-core 0.3.86) left in Redis. Here the
drop-in classes read those bytes and must write the same bytes.
"""

from __future__ import annotations

import base64
import functools
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
    message_to_dict,
    messages_from_dict,
)

from redis_chat_history import MemorystoreChatMessageHistory, RedisChatMessageHistory

History = RedisChatMessageHistory | MemorystoreChatMessageHistory
COMMUNITY = "langchain_community"
MEMORYSTORE = "memorystore"
FILES = {COMMUNITY: "langchain_community.json", MEMORYSTORE: "memorystore.json"}

#: Element kinds whose JSON is the same under langchain-core 0.3 and 1.x (fixtures README).
VERSION_NEUTRAL_KINDS = {"system", "tool", "chat", "function"}

#: Which of the 12 README messages (0-based) each scenario writes, and with what options.
SCENARIO_PLANS: dict[str, dict[str, Any]] = {
    "S1": {"sessions": ["session1"], "messages": list(range(12))},
    "S2": {"sessions": ["batch-1"], "messages": list(range(12))},
    "S3": {"sessions": ["ttl-1"], "messages": [0, 1, 2], "ttl": 3600},
    "S4": {
        "sessions": ["user:42/conv-7", "with space", "ünïcödé-会话", "a*b?[c]", "{tag}"],
        "messages": [1, 2],
    },
    "S5": {"sessions": ["to-clear"], "messages": [1, 2], "clear": True},
    "S6": {"sessions": ["p1"], "messages": list(range(12)), "key_prefix": "myapp:"},
}
CASES = [(COMMUNITY, s) for s in SCENARIO_PLANS] + [
    (MEMORYSTORE, s) for s in SCENARIO_PLANS if s != "S6"
]
READ_CASES = [case for case in CASES if case[1] != "S5"]


def fixtures_dir() -> Path:
    """The golden fixtures folder: $RCH_FIXTURES_DIR, else ``tests/fixtures`` in the repo."""
    configured = os.environ.get("RCH_FIXTURES_DIR")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parent / "fixtures"


@functools.cache
def load_fixture(package: str) -> dict[str, Any]:
    """One fixture file, parsed; a missing file fails the test with a clear message."""
    path = fixtures_dir() / FILES[package]
    if not path.is_file():
        pytest.fail(
            f"golden fixture {path} is missing: set RCH_FIXTURES_DIR to the folder holding "
            f"{FILES[package]} (these compatibility tests must not be skipped)",
            pytrace=False,
        )
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def scenario(package: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = load_fixture(package)["scenarios"][name]
    return found


def readme_messages() -> list[BaseMessage]:
    """The 12 messages of the fixtures README, with the same ids and fields."""
    return [
        SystemMessage("You are a helpful assistant."),
        HumanMessage("hi! I'm Bob", id="h1"),
        AIMessage(
            "Hello Bob! How can I help?",
            id="a1",
            response_metadata={"model_name": "fake", "finish_reason": "stop"},
            usage_metadata={"input_tokens": 12, "output_tokens": 7, "total_tokens": 19},
        ),
        HumanMessage(
            content=[
                {"type": "text", "text": "what is in this image?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            ]
        ),
        AIMessage(
            "",
            id="a2",
            tool_calls=[
                {"name": "get_weather", "args": {"city": "Paris", "unit": "C"}, "id": "call_1"}
            ],
        ),
        ToolMessage(
            "sunny, 21C", tool_call_id="call_1", name="get_weather", artifact={"raw": [1, 2, 3]}
        ),
        AIMessage("It is sunny in Paris — 21 °C. 你好 🙂", id="a3"),
        ChatMessage("custom role text", role="critic"),
        FunctionMessage("42", name="calc"),
        AIMessageChunk("streamed part", id="lc_run--abc"),
        HumanMessage("", additional_kwargs={"nested": {"a": [1, None, True, 1.5]}}, name="bob"),
        HumanMessage("x" * 5000),
    ]


def b64(text: str) -> bytes:
    return base64.b64decode(text)


def fixture_lists(keys: Sequence[dict[str, Any]]) -> list[tuple[bytes, int, list[bytes]]]:
    """A fixture key dump as (raw key, ttl, raw elements in on-disk order), sorted by key."""
    return sorted((b64(k["key_b64"]), k["ttl"], [b64(e) for e in k["elements_b64"]]) for k in keys)


def dump_lists(client: redis.Redis) -> list[tuple[bytes, int, list[bytes]]]:
    """Every LIST key in the database, as the fixtures record them."""
    return sorted(
        (key, client.ttl(key), client.lrange(key, 0, -1)) for key in client.scan_iter(_type="list")
    )


def load_keys(client: redis.Redis, keys: Sequence[dict[str, Any]]) -> None:
    """Put a fixture's raw keys into Redis: RPUSH in on-disk order, EXPIRE where it had a TTL."""
    for entry in keys:
        key = b64(entry["key_b64"])
        client.rpush(key, *(b64(e) for e in entry["elements_b64"]))
        if entry["ttl"] > 0:
            client.expire(key, entry["ttl"])


def prefix_of(package: str, name: str) -> str:
    if package == MEMORYSTORE:
        return ""
    prefix: str = SCENARIO_PLANS[name].get("key_prefix", "message_store:")
    return prefix


def make_history(
    package: str,
    session_id: str,
    redis_url: str,
    client: redis.Redis,
    *,
    key_prefix: str = "message_store:",
    ttl: int | None = None,
) -> History:
    """A history built the way each upstream fixture run built its own."""
    if package == COMMUNITY:
        return RedisChatMessageHistory(session_id, url=redis_url, key_prefix=key_prefix, ttl=ttl)
    return MemorystoreChatMessageHistory(client, session_id, ttl=ttl)


def chronological(package: str, elements: list[bytes]) -> list[bytes]:
    return elements[::-1] if package == COMMUNITY else elements


def community_core1_elements() -> list[bytes]:
    """The 12 README messages as langchain-core 1.7.2 encodes them, oldest first (S1)."""
    (entry,) = scenario(COMMUNITY, "S1")["keys"]
    return [b64(e) for e in entry["elements_b64"]][::-1]


def kind_of(element: bytes) -> str:
    kind: str = json.loads(element)["type"]
    return kind


def plain(message: BaseMessage) -> dict[str, Any]:
    """A message's record minus core 0.3's ``example`` flag (core 1.x keeps it as an extra)."""
    return without_core_version_fields(json.dumps(message_to_dict(message)).encode())


def without_core_version_fields(element: bytes) -> dict[str, Any]:
    """The element's record minus the fields only one langchain-core version writes."""
    record: dict[str, Any] = json.loads(element)
    record["data"].pop("example", None)  # core 0.3 only
    if record["data"].get("chunk_position", "absent") is None:  # core 1.x only
        del record["data"]["chunk_position"]
    return record


@pytest.mark.parametrize(("package", "name"), READ_CASES)
async def test_reads_upstream_bytes(
    package: str,
    name: str,
    redis_url: str,
    client: redis.Redis,
    track: Callable[[History], History],
) -> None:
    """Our classes read each upstream scenario's raw keys as the upstream package did."""
    data = scenario(package, name)
    load_keys(client, data["keys"])
    prefix = prefix_of(package, name)
    for entry in data["keys"]:
        raw_key = b64(entry["key_b64"])
        session_id = raw_key.decode("utf-8")[len(prefix) :]
        history = track(make_history(package, session_id, redis_url, client, key_prefix=prefix))
        assert history.key.encode("utf-8") == raw_key
        got = history.messages
        assert await history.aget_messages() == got
        if "decoded_messages" not in data:
            elements = chronological(package, [b64(e) for e in entry["elements_b64"]])
            assert got == messages_from_dict([json.loads(e) for e in elements])
        elif package == COMMUNITY:
            assert [message_to_dict(m) for m in got] == data["decoded_messages"]
        else:
            # Same messages; the dicts differ only by fields core 1.x adds with defaults.
            assert got == messages_from_dict(data["decoded_messages"])
            for ours, theirs in zip(got, data["decoded_messages"], strict=True):
                ours_data = message_to_dict(ours)["data"]
                extra = set(ours_data) - set(theirs["data"])
                assert extra <= {"chunk_position"}
                assert all(ours_data[field] is None for field in extra)
        assert 0 < len(got) == len(entry["elements_b64"])
        if entry["ttl"] > 0:
            assert entry["ttl"] - 2 <= client.ttl(raw_key) <= entry["ttl"]


@pytest.mark.parametrize("package", [COMMUNITY, MEMORYSTORE])
def test_clear_matches_upstream(package: str, redis_url: str, client: redis.Redis) -> None:
    """``clear()`` on S5's data leaves what upstream left: no key, no messages."""
    data = scenario(package, "S5")
    load_keys(client, data["keys_before_clear"])
    history = make_history(package, "to-clear", redis_url, client)
    assert len(history.messages) == 2
    history.clear()
    assert dump_lists(client) == fixture_lists(data["keys"]) == []
    assert client.exists(history.key) == data["exists_after_clear"] == 0
    assert [message_to_dict(m) for m in history.messages] == data["messages_after_clear"]
    assert client.dbsize() == 0


def write_scenario(
    package: str, name: str, mode: str, redis_url: str, client: redis.Redis
) -> list[str]:
    """Write a scenario's messages with our classes (one at a time or one batch)."""
    plan = SCENARIO_PLANS[name]
    messages = readme_messages()
    keys = []
    for session_id in plan["sessions"]:
        history = make_history(
            package,
            session_id,
            redis_url,
            client,
            key_prefix=plan.get("key_prefix", "message_store:"),
            ttl=plan.get("ttl"),
        )
        chosen = [messages[i] for i in plan["messages"]]
        if mode == "batch":
            history.add_messages(chosen)
        else:
            for message in chosen:
                history.add_message(message)
        keys.append(history.key)
    return keys


def token_key(list_key: str) -> str:
    """The retry-token key: the list key's hash tag (or the whole key) as its hash tag,
    then the whole list key, so it names exactly one session."""
    start = list_key.find("{")
    end = list_key.find("}", start + 1)
    tag = list_key[start + 1 : end] if start > -1 and end > start + 1 else list_key
    return "{" + tag + "}\x1frch:tokens:" + list_key


def check_side_keys(client: redis.Redis, package: str, name: str) -> None:
    """Besides the lists, only our retry-token sorted sets exist."""
    prefix = prefix_of(package, name)
    expected = {
        token_key(prefix + session_id).encode("utf-8")
        for session_id in SCENARIO_PLANS[name]["sessions"]
    }
    others = {key for key in client.scan_iter() if client.type(key) != b"list"}
    if SCENARIO_PLANS[name].get("clear"):
        assert others == set()
        return
    assert others == expected
    assert {client.type(key) for key in others} == {b"zset"}


@pytest.mark.parametrize("mode", ["single", "batch"])
@pytest.mark.parametrize("name", [s for p, s in CASES if p == COMMUNITY])
def test_community_writes_identical_bytes(
    name: str, mode: str, redis_url: str, client: redis.Redis
) -> None:
    """Writing the README messages yields langchain-community's keys, elements, order, TTL."""
    keys = write_scenario(COMMUNITY, name, mode, redis_url, client)
    plan, data = SCENARIO_PLANS[name], scenario(COMMUNITY, name)
    if plan.get("clear"):
        assert dump_lists(client) == fixture_lists(data["keys_before_clear"])
        RedisChatMessageHistory("to-clear", url=redis_url).clear()
    ours, theirs = dump_lists(client), fixture_lists(data["keys"])
    assert [key for key, _, _ in ours] == [key for key, _, _ in theirs]
    assert [elements for _, _, elements in ours] == [elements for _, _, elements in theirs]
    for (_, our_ttl, _), (_, their_ttl, _) in zip(ours, theirs, strict=True):
        assert (our_ttl == their_ttl == -1) or (their_ttl - 2 <= our_ttl <= their_ttl)
    if not plan.get("clear"):
        assert sorted(k.encode() for k in keys) == [key for key, _, _ in theirs]
    check_side_keys(client, COMMUNITY, name)


@pytest.mark.parametrize("mode", ["single", "batch"])
@pytest.mark.parametrize("name", [s for p, s in CASES if p == MEMORYSTORE])
def test_memorystore_writes_identical_bytes(
    name: str, mode: str, redis_url: str, client: redis.Redis
) -> None:
    """Memorystore layout: same keys, order and TTL; elements byte-identical to upstream
    where core 0.3 and 1.x agree, and to core 1.7.2's encoding elsewhere."""
    write_scenario(MEMORYSTORE, name, mode, redis_url, client)
    plan, data = SCENARIO_PLANS[name], scenario(MEMORYSTORE, name)
    core1 = community_core1_elements()
    written = [core1[i] for i in plan["messages"]]
    if plan.get("clear"):
        theirs_before = fixture_lists(data["keys_before_clear"])
        assert [key for key, _, _ in dump_lists(client)] == [key for key, _, _ in theirs_before]
        MemorystoreChatMessageHistory(client, "to-clear").clear()
    ours, theirs = dump_lists(client), fixture_lists(data["keys"])
    assert [key for key, _, _ in ours] == [key for key, _, _ in theirs]
    for (_, our_ttl, our_elements), (_, their_ttl, their_elements) in zip(
        ours, theirs, strict=True
    ):
        assert (our_ttl == their_ttl == -1) or (their_ttl - 2 <= our_ttl <= their_ttl)
        assert our_elements == written
        for ours_el, theirs_el in zip(our_elements, their_elements, strict=True):
            assert kind_of(ours_el) == kind_of(theirs_el)
            if kind_of(theirs_el) in VERSION_NEUTRAL_KINDS:
                assert ours_el == theirs_el
            else:
                assert ours_el != theirs_el
                assert without_core_version_fields(ours_el) == without_core_version_fields(
                    theirs_el
                )
    check_side_keys(client, MEMORYSTORE, name)


async def test_core03_elements_reencode_to_core1_form(
    client: redis.Redis, track: Callable[[History], History]
) -> None:
    """Reading Memorystore's core-0.3 elements and writing them back gives core 1.x's field
    order, with the legacy ``example`` flag carried as a trailing extra field."""
    (entry,) = scenario(MEMORYSTORE, "S1")["keys"]
    load_keys(client, [entry])
    old = track(MemorystoreChatMessageHistory(client, "session1"))
    read = old.messages
    assert read == await old.aget_messages()
    assert [plain(m) for m in read] == [plain(m) for m in readme_messages()]
    assert [getattr(m, "example", None) for m in read] == [
        False if b'"example"' in b64(e) else None for e in entry["elements_b64"]
    ]
    for layout in ("community", "memorystore"):
        copy = RedisChatMessageHistory("copy-" + layout, client=client, layout=layout)
        copy.add_messages(read)
        rewritten = chronological(
            COMMUNITY if layout == "community" else MEMORYSTORE,
            client.lrange(copy.key, 0, -1),
        )
        assert len(rewritten) == 12
        for original, core1, new in zip(
            [b64(e) for e in entry["elements_b64"]],
            community_core1_elements(),
            rewritten,
            strict=True,
        ):
            if b'"example": false' in original:
                assert new == core1[:-2] + b', "example": false}}'
            else:
                assert new == original == core1
        assert messages_from_dict([json.loads(e) for e in rewritten]) == read


LEGACY_TOOL_CALL = {
    "type": "ai",
    "data": {
        "content": "",
        "additional_kwargs": {
            "tool_calls": [
                {
                    "id": "call_9",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                }
            ]
        },
    },
}


@pytest.mark.parametrize("package", [COMMUNITY, MEMORYSTORE])
async def test_old_and_legacy_elements_read(
    package: str, redis_url: str, client: redis.Redis, track: Callable[[History], History]
) -> None:
    """A core-0.3 element (with ``example``) and a legacy OpenAI-style tool-call element read."""
    (entry,) = scenario(MEMORYSTORE, "S1")["keys"]
    old_ai = b64(entry["elements_b64"][4])
    assert b'"example": false' in old_ai
    legacy = json.dumps(LEGACY_TOOL_CALL).encode()
    history = track(make_history(package, "legacy", redis_url, client))
    push = client.lpush if package == COMMUNITY else client.rpush
    push(history.key, old_ai, legacy)
    for got in (history.messages, await history.aget_messages()):
        assert [type(m) for m in got] == [AIMessage, AIMessage]
        assert got[0].example is False  # type: ignore[attr-defined]
        assert plain(got[0]) == plain(readme_messages()[4])
        assert got[0].tool_calls == readme_messages()[4].tool_calls  # type: ignore[attr-defined]
        assert got[1].tool_calls == [  # type: ignore[attr-defined]
            {"name": "get_weather", "args": {"city": "Oslo"}, "id": "call_9", "type": "tool_call"}
        ]


@pytest.mark.parametrize("package", [COMMUNITY, MEMORYSTORE])
@pytest.mark.parametrize("session_id", ["session1", "user:42/conv-7", "ünïcödé-会话", "{tag}"])
async def test_upstream_reader_reads_our_data(
    package: str,
    session_id: str,
    redis_url: str,
    client: redis.Redis,
    track: Callable[[History], History],
) -> None:
    """Data we wrote (singles, batches, async) reads back with each upstream package's logic."""
    messages = readme_messages()
    history = track(make_history(package, session_id, redis_url, client))
    history.add_message(messages[0])
    history.add_messages(messages[1:6])
    await history.aadd_messages(messages[6:9])
    for message in messages[9:]:
        history.add_message(message)
    raw = client.lrange(history.key, 0, -1)
    if package == COMMUNITY:
        # langchain-community: LRANGE 0 -1, reversed, json.loads of UTF-8 text.
        records = [json.loads(e.decode("utf-8")) for e in raw[::-1]]
        assert history.key == "message_store:" + session_id
    else:
        # Memorystore: LRANGE 0 -1 in order, decoded with the client's encoding.
        encoding = client.get_encoder().encoding
        records = [json.loads(e.decode(encoding)) for e in raw]
        assert history.key == session_id
    assert messages_from_dict(records) == messages
    assert [json.dumps(r).encode() for r in records] == community_core1_elements()
