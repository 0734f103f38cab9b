"""The ``redis-chat-history`` command line, end to end against real redis-servers.

Commands run in-process through click's CliRunner with ``--url`` pointing at the fixture
server (data seeded through ChatHistoryStore in every layout and from the upstream golden
fixtures); the installed console script and ``python -m`` run once each in a subprocess.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner, Result

from redis_chat_history import ChatHistoryStore
from redis_chat_history.cli import main
from redis_chat_history.cli._sessions import glob_literal_prefix, glob_to_regex
from redis_chat_history.embedded import EmbeddedRedis
from test_upstream_fixtures import COMMUNITY, MEMORYSTORE, load_keys, scenario

VENV_BIN = Path(sys.executable).parent
#: Environment without any URL or password, so only what a test passes is used.
CLEAN_ENV = {
    "REDIS_CHAT_HISTORY_URL": None,
    "REDIS_URL": None,
    "REDIS_PASSWORD": None,
    "REDISCLI_AUTH": None,
}


def human(text: str) -> dict[str, Any]:
    return {"type": "human", "data": {"content": text}}


def ai(text: str, **extra: Any) -> dict[str, Any]:
    return {"type": "ai", "data": {"content": text, **extra}}


WEATHER = [
    {"type": "system", "data": {"content": "You are a weather bot."}},
    human("What's the weather in Paris?"),
    ai("", tool_calls=[{"name": "get_weather", "args": {"city": "Paris"}, "id": "call_1"}]),
    {
        "type": "tool",
        "data": {"content": "sunny, 21C", "tool_call_id": "call_1", "name": "get_weather"},
    },
    {
        "type": "human",
        "data": {
            "content": [
                {"type": "text", "text": "and this picture?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "A" * 4096}},
            ]
        },
    },
    ai("It is sunny in Paris."),
]


def run(*args: str, input: str | None = None, env: dict[str, Any] | None = None) -> Result:
    """Invoke the CLI in-process; stderr is kept apart from stdout."""
    result = CliRunner().invoke(main, list(args), input=input, env={**CLEAN_ENV, **(env or {})})
    assert "Traceback" not in result.output, result.output
    return result


def run_json(*args: str, code: int = 0, **options: Any) -> Any:
    result = run(*args, "--json", **options)
    assert result.exit_code == code, (result.stdout, result.stderr)
    return json.loads(result.stdout)


@pytest.fixture
def url(redis_url: str) -> str:
    return redis_url


@pytest.fixture
def seeded(url: str, client: redis.Redis) -> redis.Redis:
    """Sessions in all three layouts, plus keys that are not sessions."""
    ChatHistoryStore(client, layout="native", ttl=7200).append("alice/1", WEATHER)
    ChatHistoryStore(client, layout="community").append("bob", [human("hi bob"), ai("hello")])
    ChatHistoryStore(client, layout="memorystore").append("carol", [human("I like PARIS")])
    client.rpush("queue:jobs", "not a message")  # a list that is no chat history
    client.set("greeting", "hello")
    return client


# ------------------------------------------------------------------------------- general


def test_help_lists_commands_and_exit_codes() -> None:
    """--help names every command and documents the exit codes."""
    result = run("--help")
    assert result.exit_code == 0
    for command in ("sessions", "list", "show", "tail", "search", "delete", "stats", "doctor"):
        assert command in result.output
    assert "Exit codes: 0 ok; 1 nothing found" in result.output


def test_glob_helpers_follow_redis_syntax() -> None:
    """--match globs use Redis's syntax: * ? [abc] [^a] and backslash escapes."""
    assert glob_to_regex("user:*").fullmatch("user:42/conv-7")
    assert glob_to_regex("a\\*b*").fullmatch("a*b?[c]")
    assert not glob_to_regex("a\\*b*").fullmatch("axb")
    assert glob_to_regex("s[^0-9]").fullmatch("sx") and not glob_to_regex("s[^0-9]").fullmatch("s1")
    assert glob_to_regex("?x").fullmatch("ax") and not glob_to_regex("?x").fullmatch("aax")
    assert glob_literal_prefix("user\\*:*") == "user*:"


# ---------------------------------------------------------------------------- sessions


def test_sessions_lists_every_layout_with_stats(url: str, seeded: redis.Redis) -> None:
    """sessions finds all three layouts, skips lists that hold no messages, and reports
    count, size, TTL and the last append time."""
    before = time.time()
    document = run_json("sessions", "--url", url)
    rows = {(row["session"], row["layout"]): row for row in document["sessions"]}
    assert set(rows) == {("alice/1", "native"), ("bob", "community"), ("carol", "memorystore")}
    assert rows["alice/1", "native"]["key"] == "chat:{alice/1}:messages"
    assert [rows[key]["messages"] for key in sorted(rows)] == [6, 2, 1]
    assert 7000 < rows["alice/1", "native"]["ttl"] <= 7200
    assert rows["bob", "community"]["ttl"] is None
    assert all(
        row["bytes"] > 0 and row["last_activity_source"] == "append" for row in rows.values()
    )
    seen = rows["alice/1", "native"]["last_activity"]
    assert seen >= time.strftime("%Y-%m-%dT%H:%M", time.gmtime(before - 60))
    assert document["total"] == 3 and document["next_offset"] is None


def test_sessions_filters_layout_prefix_and_glob_on_upstream_data(
    url: str, client: redis.Redis
) -> None:
    """Data written by the upstream packages is listed; --prefix is literal, --match a glob."""
    load_keys(client, scenario(COMMUNITY, "S4")["keys"])
    load_keys(client, scenario(MEMORYSTORE, "S1")["keys"])
    everything = run_json("sessions", "--url", url)
    found = {(row["session"], row["layout"]) for row in everything["sessions"]}
    assert found == {
        ("user:42/conv-7", "community"), ("with space", "community"),
        ("ünïcödé-会话", "community"), ("a*b?[c]", "community"), ("{tag}", "community"),
        ("session1", "memorystore"),
    }  # fmt: skip
    # No retry tokens in upstream data: the last activity is the last access.
    assert {row["last_activity_source"] for row in everything["sessions"]} == {"access"}
    literal = run_json("sessions", "--url", url, "--prefix", "a*b")
    assert [row["session"] for row in literal["sessions"]] == ["a*b?[c]"]
    globbed = run_json("sessions", "--url", url, "--match", "user:*", "--layout", "community")
    assert [row["session"] for row in globbed["sessions"]] == ["user:42/conv-7"]
    only = run_json("sessions", "--url", url, "--layout", "memorystore")
    assert [row["session"] for row in only["sessions"]] == ["session1"]


def test_sessions_sorts_and_pages(url: str, client: redis.Redis) -> None:
    """--sort size orders largest first; --limit/--offset page through the result."""
    store = ChatHistoryStore(client)
    for number in range(5):
        store.append(f"s{number}", [human("x" * (100 * (number + 1)))] * (number + 1))
    first = run_json("sessions", "--url", url, "--sort", "size", "--limit", "2")
    assert [row["session"] for row in first["sessions"]] == ["s4", "s3"]
    assert first["next_offset"] == 2 and first["total"] == 5
    rest = run_json("sessions", "--url", url, "--sort", "messages", "--limit", "2", "--offset", "4")
    assert [row["session"] for row in rest["sessions"]] == ["s0"]
    assert rest["next_offset"] is None
    by_id = run_json("list", "--url", url, "--sort", "id")
    assert [row["session"] for row in by_id["sessions"]] == ["s0", "s1", "s2", "s3", "s4"]


def test_sessions_table_for_people_and_exit_1_when_nothing_matched(
    url: str, seeded: redis.Redis
) -> None:
    """Without --json a table is printed; a filter that matches nothing exits 1."""
    result = run("sessions", "--url", url)
    assert result.exit_code == 0
    assert "alice/1" in result.stdout and "community" in result.stdout
    assert "1-3 of 3 sessions on redis://127.0.0.1" in result.stderr
    nothing = run("sessions", "--url", url, "--prefix", "zzz")
    assert nothing.exit_code == 1 and "no sessions found" in nothing.stdout


def test_sessions_of_one_owner_newest_first_with_cursor(url: str, client: redis.Redis) -> None:
    """--owner lists one user's sessions from the owner index, newest first, paged with the
    cursor it prints; other owners' sessions and unowned ones are not shown."""
    store = ChatHistoryStore(client)
    for number in range(3):
        store.create_session(f"chat-{number}", owner="user-42", title=f"Trip {number}")
        store.append(f"chat-{number}", [human(f"hello {number}")] * (number + 1))
        time.sleep(0.002)  # distinct last-activity milliseconds
    store.create_session("other", owner="user-7", title="not yours")
    store.append("plain", [human("no owner")])
    store.append("chat-0", [human("back again")])  # chat-0 becomes the newest

    first = run_json("sessions", "--url", url, "--owner", "user-42", "--limit", "2")
    assert [row["session"] for row in first["sessions"]] == ["chat-0", "chat-2"]
    assert first["sessions"][0]["title"] == "Trip 0" and first["sessions"][0]["messages"] == 2
    assert first["owner"] == "user-42" and first["next_cursor"]
    rest = run_json(
        "sessions", "--url", url, "--owner", "user-42", "--limit", "2",
        "--cursor", first["next_cursor"],
    )  # fmt: skip
    assert [row["session"] for row in rest["sessions"]] == ["chat-1"]
    assert rest["next_cursor"] is None

    table = run("sessions", "--url", url, "--owner", "user-42")
    assert table.exit_code == 0 and "Trip 2" in table.stdout and "not yours" not in table.stdout
    nobody = run("sessions", "--url", url, "--owner", "nobody")
    assert nobody.exit_code == 1 and "no sessions for owner" in nobody.stdout
    bad = run("sessions", "--url", url, "--owner", "user-42", "--cursor", "garbage")
    assert bad.exit_code == 2 and bad.stderr.startswith("error: ")
    assert run("sessions", "--url", url, "--cursor", "x").exit_code == 2


# -------------------------------------------------------------------------------- show


def test_show_renders_roles_tool_calls_and_media(url: str, seeded: redis.Redis) -> None:
    """show prints roles, tool calls as name(args), tool results with their call id and a
    summary instead of the image's base64."""
    result = run("show", "alice/1", "--url", url)
    assert result.exit_code == 0, result.output
    out = result.stdout
    expected = ["system", "user", "assistant", 'get_weather(city="Paris")', "← call_1"]
    expected += ["sunny, 21C", "[image image/png 3.0 KB]", "It is sunny in Paris."]
    for text in expected:
        assert text in out
    assert "AAAA" not in out
    assert out.index("What's the weather") < out.index("It is sunny in Paris.")


def test_show_reads_upstream_community_data_in_order(url: str, client: redis.Redis) -> None:
    """langchain-community's newest-first list is shown oldest first, --json gives records."""
    load_keys(client, scenario(COMMUNITY, "S1")["keys"])
    document = run_json("show", "session1", "--url", url)
    assert document["layout"] == "community" and document["count"] == 12
    kinds = [record["type"] for record in document["messages"]]
    assert kinds[:3] == ["system", "human", "ai"] and kinds[9] == "AIMessageChunk"
    result = run("show", "session1", "--url", url)
    for expected in ("critic", "function (calc)", "(chunk)", "user (bob)", "(empty)",
                     "[image image/png 8 B]", "你好 🙂"):  # fmt: skip
        assert expected in result.stdout


def test_show_last_and_raw(url: str, client: redis.Redis) -> None:
    """--last N shows the window of the newest N (starting on a human message unless
    --start-on any); --raw prints the stored JSON exactly, oldest first."""
    entries = scenario(MEMORYSTORE, "S1")["keys"]
    load_keys(client, entries)
    stored = [element for element in entries[0]["elements"]]
    raw = run("show", "session1", "--url", url, "--last", "2", "--raw")
    assert raw.exit_code == 0
    assert raw.stdout.splitlines() == stored[-2:]
    # The newest 3 start with an AIMessageChunk: the window starts at the human after it.
    document = run_json("show", "session1", "--url", url, "--last", "3")
    assert document["first_position"] == 10 and len(document["messages"]) == 2
    assert document["positions"] == [10, 11] and document["count"] == 12
    assert document["messages"][-1]["data"]["content"] == "x" * 5000
    assert document["window"] == {"last": 3, "start_on": "human", "keep_system": False}
    anywhere = run_json("show", "session1", "--url", url, "--last", "3", "--start-on", "any")
    assert anywhere["first_position"] == 9 and len(anywhere["messages"]) == 3
    whole = run_json("show", "session1", "--url", url)
    assert whole["window"] is None and whole["positions"] == list(range(12))


TOOL_TURN = [
    human("weather?"),
    ai("", tool_calls=[{"name": "w", "args": {}, "id": "c1"}]),
    {"type": "tool", "data": {"content": "sunny", "tool_call_id": "c1"}},
    ai("It is sunny"),
]


def _types(document: dict[str, Any]) -> list[str]:
    return [message["type"] for message in document["messages"]]


@pytest.mark.parametrize("layout", ["native", "community"])
def test_show_last_never_splits_a_tool_call_from_its_results(
    url: str, client: redis.Redis, layout: str
) -> None:
    """show --last N shows what messages(last=N) returns: the newest 2 or 3 of a tool turn
    are kept behind the turn's question, never starting on an orphan tool result."""
    store = ChatHistoryStore(client, layout=layout)
    store.append("turn", TOOL_TURN)
    for last, positions in ((1, [0]), (2, [0, 3]), (3, [0, 3]), (4, [0, 1, 2, 3])):
        document = run_json("show", "turn", "--url", url, "--last", str(last))
        assert document["messages"] == store.messages("turn", last=last)
        assert document["positions"] == positions
        assert _types(document)[0] == "human"
        raw = run_json("show", "turn", "--url", url, "--last", str(last), "--raw")
        assert raw["positions"] == positions
        assert [json.loads(element) for element in raw["elements"]] == document["messages"]
    text = run("show", "turn", "--url", url, "--last", "2")
    assert text.exit_code == 0, text.output
    out = text.stdout
    title = f"turn ({layout}, 4 messages, showing 2 (window of at most 2; the question of the "
    assert title + "current turn kept in front))" in " ".join(out.split())
    assert out.index("[0] user") < out.index("weather?") < out.index("[3] assistant")
    assert "[1] " not in out and "[2] " not in out and "← c1" not in out
    everything = run("show", "turn", "--url", url, "--last", "4")
    assert "showing" not in everything.stdout and "← c1" in everything.stdout


@pytest.mark.parametrize("layout", ["native", "community"])
def test_show_last_start_on_any(url: str, client: redis.Redis, layout: str) -> None:
    """--start-on any lets the window start on an assistant message, never on a tool result."""
    store = ChatHistoryStore(client, layout=layout)
    store.append("turn", TOOL_TURN)
    two = run_json("show", "turn", "--url", url, "--last", "2", "--start-on", "any")
    assert two["positions"] == [3] and _types(two) == ["ai"]
    assert two["messages"] == store.messages("turn", last=2, start_on="any")
    three = run_json("show", "turn", "--url", url, "--last", "3", "--start-on", "any")
    assert three["positions"] == [1, 2, 3] and _types(three) == ["ai", "tool", "ai"]
    text = run("show", "turn", "--url", url, "--last", "3", "--start-on", "any")
    assert "4 messages, showing the newest 3 (window of at most 3))" in text.stdout
    bad = run("show", "turn", "--url", url, "--last", "3", "--start-on", "tool")
    assert bad.exit_code == 2
    client.rpush("chat:{lost}:messages", json.dumps(TOOL_TURN[2]))  # a result without its call
    for start_on, start in (("human", "human message"), ("any", "message but tool results")):
        empty = run("show", "lost", "--url", url, "--last", "1", "--start-on", start_on)
        assert empty.exit_code == 0 and "[0]" not in empty.stdout
        assert f"showing none (window of at most 1: no {start} to start it on)" in " ".join(
            empty.stdout.split()
        )


@pytest.mark.parametrize("layout", ["native", "community"])
def test_show_last_keep_system(url: str, client: redis.Redis, layout: str) -> None:
    """--keep-system keeps the system message stored first in front (it counts against N),
    reading more when the newest N do not reach it."""
    store = ChatHistoryStore(client, layout=layout)
    store.append("sys", [{"type": "system", "data": {"content": "be brief"}}, *TOOL_TURN])
    for last, positions in ((1, [0]), (2, [0, 1]), (3, [0, 1, 4]), (5, [0, 1, 2, 3, 4])):
        document = run_json("show", "sys", "--url", url, "--last", str(last), "--keep-system")
        assert document["positions"] == positions, last
        assert document["messages"] == store.messages("sys", last=last, keep_system=True)
        assert document["window"]["keep_system"] is True
    huge = run_json("show", "sys", "--url", url, "--last", str(10**19), "--keep-system")
    assert huge["positions"] == [0, 1, 2, 3, 4]
    store.append("plain", TOOL_TURN)  # no system message: --keep-system changes nothing
    plain = run_json("show", "plain", "--url", url, "--last", "2", "--keep-system")
    assert plain["positions"] == [0, 3]
    assert plain["messages"] == store.messages("plain", last=2, keep_system=True)
    without = run_json("show", "sys", "--url", url, "--last", "3")
    assert without["positions"] == [1, 4] and _types(without) == ["human", "ai"]
    text = run("show", "sys", "--url", url, "--last", "3", "--keep-system")
    assert "showing 3 (window of at most 3; the system message kept in front, the question" in (
        " ".join(text.stdout.split())
    )
    assert text.stdout.index("[0] system") < text.stdout.index("[1] user")


def _stored(record: dict[str, Any] | bytes) -> bytes:
    return record if isinstance(record, bytes) else json.dumps(record).encode()


def _long_history() -> list[dict[str, Any] | bytes]:
    """A system message, an orphan tool result, a corrupt element and a long agent turn."""
    history: list[dict[str, Any] | bytes] = [
        {"type": "system", "data": {"content": "sys"}},
        human("q1"),
        ai("a1"),
        {"type": "tool", "data": {"content": "lost", "tool_call_id": "ghost"}},
        human("q2"),
    ]
    for step in range(12):
        call = f"s{step}"
        history.append(ai("", tool_calls=[{"name": "f", "args": {}, "id": call}]))
        history.append({"type": "tool", "data": {"content": str(step), "tool_call_id": call}})
        if step == 5:
            history.append(b"{oops")
    history.append(ai("done"))
    return history


@pytest.mark.parametrize("layout", ["native", "community", "memorystore"])
def test_show_last_is_the_library_window(url: str, client: redis.Redis, layout: str) -> None:
    """For every N, --start-on and --keep-system, show --json lists exactly the messages
    messages(last=N, strict=False) returns (orphan tool results left out, the question of a
    long agent turn found by reading further back), plus the corrupt element if in the
    window, which exits 4."""
    store = ChatHistoryStore(client, layout=layout)
    key = store.config.layout.messages_key("long")
    history = _long_history()
    elements = [_stored(record) for record in history]
    if store.config.layout.newest_first:
        client.lpush(key, *elements)
    else:
        client.rpush(key, *elements)
    corrupt_at = elements.index(b"{oops")
    for last in (1, 2, 3, 4, 5, 8, 13, 20, 28, 40):
        for start_on in ("human", "any"):
            for keep in (False, True):
                options = ["--last", str(last), "--start-on", start_on]
                options += ["--keep-system"] if keep else []
                with warnings.catch_warnings():  # strict=False warns of the skipped element
                    warnings.simplefilter("ignore", RuntimeWarning)
                    expected = store.messages(
                        "long", last=last, start_on=start_on, keep_system=keep, strict=False
                    )
                result = run("show", "long", "--url", url, "--json", *options)
                document = json.loads(result.stdout)
                assert document["messages"] == expected, options
                shown = document["positions"] + [c["position"] for c in document.get("corrupt", [])]
                assert (corrupt_at in shown) == (result.exit_code == 4), options
                assert result.exit_code in (0, 4)
                assert len(shown) <= last
                raw = run_json("show", "long", "--url", url, *options, "--raw")
                assert raw["positions"] == sorted(shown)


def test_show_unknown_ambiguous_and_bad_data(url: str, client: redis.Redis) -> None:
    """Unknown sessions exit 1, sessions in several layouts exit 2 naming them, and wrong
    types or corrupt elements exit 4 with one line naming the key."""
    missing = run("show", "nobody", "--url", url)
    assert missing.exit_code == 1
    assert missing.stderr.startswith("error: no session 'nobody'")
    assert len(missing.stderr.strip().splitlines()) == 1

    ChatHistoryStore(client, layout="native").append("twin", [human("native")])
    ChatHistoryStore(client, layout="community").append("twin", [human("community")])
    twin = run("show", "twin", "--url", url)
    assert twin.exit_code == 2 and "native" in twin.stderr and "community" in twin.stderr
    chosen = run_json("show", "twin", "--url", url, "--layout", "community")
    assert chosen["messages"][0]["data"]["content"] == "community"

    client.set("chat:{str}:messages", "a string")
    wrong = run("show", "str", "--url", url, "--layout", "native")
    assert wrong.exit_code == 4 and "holds a string" in wrong.stderr

    client.rpush("chat:{bad}:messages", b'{"type": "human", "data": {"content": "ok"}}', b"{oops")
    corrupt = run("show", "bad", "--url", url)
    assert corrupt.exit_code == 4
    assert "corrupt message at 'chat:{bad}:messages' index 1" in corrupt.stderr
    assert run("show", "bad", "--url", url, "--raw").stdout.splitlines()[1] == "{oops"


def test_show_of_a_legacy_key_name_is_mapped_to_its_layout(url: str, client: redis.Redis) -> None:
    """`show message_store:x` shows the community session x, in the right order."""
    ChatHistoryStore(client, layout="community").append("x", [human("first"), human("second")])
    result = run_json("show", "message_store:x", "--url", url)
    assert result["layout"] == "community" and result["session"] == "x"
    assert [m["data"]["content"] for m in result["messages"]] == ["first", "second"]


# -------------------------------------------------------------------------------- tail


def _append_later(url: str, session_id: str, layout: str, texts: list[str], **options: Any) -> None:
    def write() -> None:
        time.sleep(0.4)
        with redis.Redis.from_url(url) as writer:
            store = ChatHistoryStore(writer, layout=layout, **options)
            for text in texts:
                store.append(session_id, [human(text)])
                time.sleep(0.05)

    threading.Thread(target=write, daemon=True).start()


@pytest.fixture
def keyspace_events(client: redis.Redis) -> Iterator[None]:
    previous = client.config_get("notify-keyspace-events")["notify-keyspace-events"]
    client.config_set("notify-keyspace-events", "Kl")
    yield
    client.config_set("notify-keyspace-events", previous)


def test_tail_follows_new_messages_by_polling(url: str, client: redis.Redis) -> None:
    """tail shows the last messages, then new ones as JSON Lines, stopping after --count."""
    ChatHistoryStore(client, layout="community").append("live", [human("old 1"), human("old 2")])
    _append_later(url, "live", "community", ["new 1", "new 2", "new 3"])
    result = run("tail", "live", "--url", url, "--last", "1", "--count", "2",
                 "--interval", "0.1", "--duration", "20", "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["message"]["data"]["content"] for line in lines] == ["old 2", "new 1", "new 2"]
    assert [line["position"] for line in lines] == [1, 2, 3]


def test_tail_wakes_on_keyspace_notifications(
    url: str, client: redis.Redis, keyspace_events: None
) -> None:
    """With notifications on, new messages arrive long before the (slow) polling interval."""
    _append_later(url, "fresh", "native", ["ping"])
    started = time.monotonic()
    result = run("tail", "fresh", "--url", url, "--layout", "native", "--count", "1",
                 "--interval", "30", "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["message"]["data"]["content"] == "ping"
    assert time.monotonic() - started < 10
    assert "keyspace notifications" in result.stderr


def test_tail_follows_a_session_kept_at_max_messages(url: str, client: redis.Redis) -> None:
    """A list trimmed to max_messages keeps its length; tail still sees each new message."""
    ChatHistoryStore(client, max_messages=3).append("capped", [human(f"m{i}") for i in range(3)])
    _append_later(url, "capped", "native", ["n1", "n2"], max_messages=3)
    result = run("tail", "capped", "--url", url, "--last", "0", "--count", "2",
                 "--interval", "0.1", "--duration", "20", "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    contents = [
        json.loads(line)["message"]["data"]["content"] for line in result.stdout.splitlines()
    ]
    assert contents == ["n1", "n2"]


def test_tail_stops_after_duration_and_needs_a_known_session(url: str, seeded: redis.Redis) -> None:
    """--duration ends a quiet tail with exit 0; an unknown session without --layout exits 1."""
    quiet = run("tail", "bob", "--url", url, "--duration", "0.3", "--interval", "0.1")
    assert quiet.exit_code == 0 and "hi bob" in quiet.stdout
    assert run("tail", "nobody", "--url", url, "--duration", "0.1").exit_code == 1


# ------------------------------------------------------------------------------ search


def test_search_across_layouts_sessions_and_raw(url: str, seeded: redis.Redis) -> None:
    """search matches message text case-insensitively in every layout, tool calls
    included; --session limits it, --raw matches the stored JSON, no match exits 1."""
    document = run_json("search", "paris", "--url", url)
    found = {(m["session"], m["position"]) for m in document["matches"]}
    assert found == {("alice/1", 1), ("alice/1", 2), ("alice/1", 5), ("carol", 0)}
    assert document["sessions_searched"] == 3 and not document["truncated"]
    only = run_json("search", "PARIS", "--url", url, "--session", "carol")
    assert [(m["session"], m["role"]) for m in only["matches"]] == [("carol", "user")]
    exact = run_json("search", "PARIS", "--url", url, "--case-sensitive")
    assert [m["session"] for m in exact["matches"]] == ["carol"]
    assert run_json("search", "tool_call_id", "--url", url, code=1)["matches"] == []
    raw = run_json("search", "tool_call_id", "--url", url, "--raw")
    assert [(m["session"], m["position"]) for m in raw["matches"]] == [("alice/1", 3)]
    limited = run_json("search", "paris", "--url", url, "--limit", "2")
    assert len(limited["matches"]) == 2 and limited["truncated"]
    people = run("search", "sunny", "--url", url)
    assert "alice/1 [3] tool: sunny, 21C" in people.stdout
    assert "matches in" in people.stderr


# ------------------------------------------------------------------------------ delete


def test_delete_asks_reports_and_leaves_the_rest(url: str, seeded: redis.Redis) -> None:
    """delete needs --yes without a terminal, removes messages and retry tokens, reports
    what it deleted and leaves other sessions alone; --dry-run deletes nothing."""
    refused = run("delete", "alice/1", "--url", url)
    assert refused.exit_code == 2 and "--yes" in refused.stderr
    assert seeded.exists("chat:{alice/1}:messages")
    dry = run_json("delete", "alice/1", "--url", url, "--dry-run")
    assert dry["deleted"] == 0 and dry["messages"] == 6 and seeded.exists("chat:{alice/1}:messages")
    done = run_json("delete", "alice/1", "--url", url, "--yes")
    assert done["deleted"] == 1 and done["sessions"][0]["layout"] == "native"
    assert not seeded.exists("chat:{alice/1}:messages", "chat:{alice/1}:tokens")
    assert seeded.exists("message_store:bob", "carol", "queue:jobs", "greeting") == 4
    missing = run("delete", "alice/1", "--url", url, "--yes")
    assert missing.exit_code == 1 and "no session matched" in missing.stderr
    wrong = run("delete", "greeting", "--url", url, "--yes", "--layout", "memorystore")
    assert wrong.exit_code == 4 and "holds a string" in wrong.stderr
    assert seeded.get("greeting") == b"hello"


def test_delete_by_prefix_across_layouts(url: str, client: redis.Redis) -> None:
    """--prefix deletes the matching sessions of every layout, literally (globs escaped)."""
    ChatHistoryStore(client).append("t*/1", [human("a")])
    ChatHistoryStore(client, layout="community").append("t*/2", [human("b")])
    ChatHistoryStore(client).append("tx/3", [human("c")])
    result = run("delete", "--prefix", "t*/", "--url", url, "--yes")
    assert result.exit_code == 0, result.output
    assert "deleted 2 sessions (2 messages)" in result.stdout
    assert [row["session"] for row in run_json("sessions", "--url", url)["sessions"]] == ["tx/3"]
    assert run("delete", "--prefix", "", "--url", url, "--yes").exit_code == 2
    assert run("delete", "--url", url, "--yes").exit_code == 2


# ------------------------------------------------------------------------------- stats


def test_stats_counts_sizes_ttls_and_largest(url: str, seeded: redis.Redis) -> None:
    """stats sums sessions, messages and bytes per layout, buckets TTLs and lists the
    largest sessions."""
    document = run_json("stats", "--url", url, "--top", "2")
    assert document["sessions"] == 3 and document["messages"] == 9
    assert document["layouts"]["native"] == {
        "sessions": 1, "messages": 6, "bytes": document["largest"][0]["bytes"]
    }  # fmt: skip
    assert document["ttl"] == {"no expiry": 2, "< 1h": 0, "1h - 1d": 1, "1d - 7d": 0, "> 7d": 0}
    assert [row["session"] for row in document["largest"]] == ["alice/1", "bob"]
    assert document["bytes_source"] == "memory" and document["server_memory"]["used_memory"] > 0
    people = run("stats", "--url", url)
    assert "3 sessions, 9 messages" in people.stdout and "largest sessions" in people.stdout


# ------------------------------------------------------------------------------ doctor


def test_doctor_reports_a_server_without_persistence(url: str) -> None:
    """The fixture server (no AOF, no snapshots, no replica) is a persistence risk."""
    document = run_json("doctor", "--url", url)
    assert document["mode"] == "standalone" and document["role"] == "master"
    assert document["config_readable"] and document["aof"] is False
    levels = {finding["topic"]: finding["level"] for finding in document["findings"]}
    assert levels["persistence"] == "risk" and levels["replication"] == "warn"
    assert document["findings"][0]["level"] == "risk"  # most serious first
    people = run("doctor", "--url", url)
    assert "no persistence" in people.stdout and "appendonly yes" in people.stdout


def test_doctor_reads_info_when_config_is_blocked(tmp_path: Path) -> None:
    """With CONFIG renamed away (as managed services do) doctor still judges from INFO:
    AOF on, fsync policy unknown, eviction policy from INFO memory."""
    from topologies import restricted_server

    with restricted_server(tmp_path) as server:
        result = run_json("doctor", "--url", server.url)
    assert not result["config_readable"]
    persistence = [f for f in result["findings"] if f["topic"] == "persistence"]
    assert persistence and persistence[0]["level"] == "risk"  # AOF off, snapshot policy unknown
    assert "policy unknown" in persistence[0]["message"]


def test_doctor_on_an_aof_server_with_eviction(tmp_path: Path) -> None:
    """AOF everysec is a small risk (warn); allkeys eviction is a big one (risk)."""
    args = ["--appendonly", "yes", "--maxmemory", "100mb", "--maxmemory-policy", "allkeys-lru"]
    with EmbeddedRedis(extra_args=args) as server:
        document = run_json("doctor", "--url", server.url)
    findings = {finding["topic"]: finding for finding in document["findings"]}
    assert findings["persistence"]["level"] == "warn"
    assert "appendfsync everysec" in findings["persistence"]["message"]
    assert findings["eviction"]["level"] == "risk"
    assert "allkeys-lru" in findings["eviction"]["message"]
    assert "stored twice" in findings["eviction"]["message"]


def test_doctor_names_the_volatile_policy_risk(redis_url: str, client: redis.Redis) -> None:
    """Under volatile-* doctor names the exact policy and what it means for retries."""
    before = client.config_get("maxmemory-policy")["maxmemory-policy"]
    client.config_set("maxmemory-policy", "volatile-ttl")
    try:
        document = run_json("doctor", "--url", redis_url)
    finally:
        client.config_set("maxmemory-policy", before)
    findings = {finding["topic"]: finding for finding in document["findings"]}
    assert findings["eviction"]["level"] == "warn"
    assert "volatile-ttl" in findings["eviction"]["message"]
    assert "stored twice" in findings["eviction"]["message"]


# ------------------------------------------------------------------- connection problems


@pytest.fixture(scope="module")
def password_server() -> Iterator[tuple[EmbeddedRedis, str]]:
    password = "s3cret-" + secrets.token_hex(8)
    with EmbeddedRedis(extra_args=["--requirepass", password]) as server:
        yield server, password


def test_wrong_password_is_one_line_without_the_password(
    password_server: tuple[EmbeddedRedis, str],
) -> None:
    """A rejected or missing password exits 3 with one clear line; no password is printed."""
    server, _password = password_server
    wrong_url = f"redis://:wrong-{secrets.token_hex(4)}@127.0.0.1:{server.port}/0"
    result = run("sessions", "--url", wrong_url)
    assert result.exit_code == 3
    assert result.stderr.startswith("error: redis://:***@127.0.0.1")
    assert "authentication failed" in result.stderr
    assert "wrong-" not in result.output and len(result.stderr.strip().splitlines()) == 1
    missing = run("sessions", "--url", server.url)
    assert missing.exit_code == 3 and "wants a password" in missing.stderr


def test_password_from_stdin_or_environment(password_server: tuple[EmbeddedRedis, str]) -> None:
    """--password-stdin and $REDIS_PASSWORD / $REDISCLI_AUTH authenticate; JSON output shows
    the URL redacted."""
    server, password = password_server
    stdin = run_json("sessions", "--url", server.url, "--password-stdin", input=password + "\n",
                     code=1)  # fmt: skip
    assert stdin["server"] == f"redis://:***@127.0.0.1:{server.port}/0"
    assert password not in json.dumps(stdin)
    for name in ("REDIS_PASSWORD", "REDISCLI_AUTH"):
        result = run("stats", "--url", server.url, "--json", env={name: password})
        assert result.exit_code == 0, result.output
        assert password not in result.output


def test_server_down_fails_fast_and_bad_urls_are_usage_errors() -> None:
    """A closed port exits 3 within seconds (no 15 s retry loop); a bad URL exits 2."""
    with EmbeddedRedis() as server:
        dead = server.url
    started = time.monotonic()
    result = run("sessions", "--url", dead, "--timeout", "1")
    assert result.exit_code == 3 and "cannot reach the server" in result.stderr
    assert time.monotonic() - started < 5
    bad = run("sessions", "--url", "http://example.com")
    assert bad.exit_code == 2 and "unsupported URL scheme 'http'" in bad.stderr


def test_url_comes_from_the_environment_in_order(url: str, seeded: redis.Redis) -> None:
    """$REDIS_CHAT_HISTORY_URL wins over $REDIS_URL; either is used without --url."""
    with EmbeddedRedis() as other:
        dead = other.url
    env = {"REDIS_CHAT_HISTORY_URL": url, "REDIS_URL": dead}
    assert run_json("sessions", env=env)["total"] == 3
    assert run_json("sessions", env={"REDIS_URL": url})["total"] == 3


def test_embedded_server_when_no_url(tmp_path: Path) -> None:
    """Without any URL the persistent embedded server is started, named, and stopped."""
    env = {"XDG_DATA_HOME": str(tmp_path)}
    result = run("sessions", "--json", env=env)
    assert result.exit_code == 1  # a fresh server has no sessions
    assert "using the embedded redis-server redis://:***@127.0.0.1:" in result.stderr
    assert str(tmp_path) in result.stderr
    assert json.loads(result.stdout)["total"] == 0
    # The data directory is free again: the server was stopped at the end.
    again = run("stats", "--json", env=env)
    assert again.exit_code == 0, again.output


# --------------------------------------------------------------------------- processes


def test_console_script_and_python_m(url: str, seeded: redis.Redis) -> None:
    """The installed console script and `python -m redis_chat_history` run the CLI."""
    env = {k: v for k, v in os.environ.items() if k not in CLEAN_ENV}
    script = VENV_BIN / "redis-chat-history"
    listed = subprocess.run([script, "sessions", "--url", url, "--json"],
                            capture_output=True, text=True, env=env, timeout=60)  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)["total"] == 3
    helped = subprocess.run([sys.executable, "-m", "redis_chat_history"],
                            capture_output=True, text=True, env=env, timeout=60)  # fmt: skip
    assert helped.returncode == 0 and "Usage: redis-chat-history" in helped.stdout
    module = [sys.executable, "-m", "redis_chat_history"]
    missing = subprocess.run([*module, "show", "x", "--url", url],
                             capture_output=True, text=True, env=env, timeout=60)  # fmt: skip
    assert missing.returncode == 1 and missing.stderr.startswith("error: no session 'x'")


def test_demo_runs_the_quickstart(url: str) -> None:
    """`redis-chat-history demo` runs the quickstart against the given server."""
    env = {k: v for k, v in os.environ.items() if k not in CLEAN_ENV}
    demo = subprocess.run([VENV_BIN / "redis-chat-history", "demo", "--url", url],
                          capture_output=True, text=True, env=env, timeout=120)  # fmt: skip
    assert demo.returncode == 0, demo.stderr
    assert "Your name is bob." in demo.stdout and "whats up?" in demo.stdout


def test_missing_cli_extra_prints_one_line() -> None:
    """Without click/rich the entry point says which extra to install, in one line."""
    code = (
        "import sys; sys.modules['click'] = None; from redis_chat_history.cli import main; main()"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: the redis-chat-history command needs click: pip install 'redis-chat-history[cli]'"
    )


# ----------------------------------------------------------------------------- cluster


def test_sessions_on_a_redis_cluster(tmp_path: Path) -> None:
    """On a Redis Cluster sessions are found on every primary and measured."""
    from topologies import cluster

    with cluster(tmp_path, masters=3, replicas_per_master=0) as running:
        with running.client() as admin:
            ids = [f"user-{number}" for number in range(12)]
            for session_id in ids:
                ChatHistoryStore(admin).append(session_id, [human(session_id)])
            ChatHistoryStore(admin, layout="community").append("legacy", [human("old")])
            assert len({running.master_for_key(f"chat:{{{i}}}:messages") for i in ids}) == 3
        node_url = f"redis://127.0.0.1:{running.ports[0]}/0"
        document = run_json("sessions", "--url", node_url, "--limit", "100")
        stats = run_json("stats", "--url", node_url)
        shown = run_json("show", "user-7", "--url", node_url)
    assert sorted(row["session"] for row in document["sessions"]) == sorted([*ids, "legacy"])
    assert all(row["messages"] == 1 and row["bytes"] for row in document["sessions"])
    assert stats["sessions"] == 13
    assert shown["messages"] == [human("user-7")]


def test_read_only_acl_user_without_memory_command(tmp_path: Path) -> None:
    """A user allowed only reads (no MEMORY, no INFO) can browse: sizes fall back to the
    element bytes; a write it may not do exits 3 with the server's refusal."""
    from topologies import acl_server

    rules = ["~*", "+@read", "+@connection", "-memory"]
    with acl_server(tmp_path, users=[("reader", "reader-pass", rules)]) as server:
        with server.client() as admin:
            ChatHistoryStore(admin).append("s", [human("hello"), human("world")])
            expected = sum(len(element) for element in admin.lrange("chat:{s}:messages", 0, -1))
        reader_url = f"redis://reader@127.0.0.1:{server.port}/0"
        env = {"REDIS_PASSWORD": "reader-pass"}
        listed = run_json("sessions", "--url", reader_url, env=env)
        refused = run("delete", "s", "--url", reader_url, "--yes", env=env)
    (row,) = listed["sessions"]
    assert row["bytes"] == expected and row["bytes_source"] == "elements"
    assert refused.exit_code == 3
    assert refused.stderr.splitlines()[-1].startswith("error: the server refused: ")
    assert "reader-pass" not in refused.output
