"""The command line on hostile or damaged data and arguments (issue 8): no tracebacks,
control characters made visible, exact --json, documented exit codes."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner, Result

from redis_chat_history import ChatHistoryStore, CommunityLayout
from redis_chat_history.cli import main
from redis_chat_history.cli._connect import CLI_RETRY_DEADLINE
from redis_chat_history.embedded import EmbeddedRedis

CLEAN_ENV = {"REDIS_CHAT_HISTORY_URL": None, "REDIS_URL": None, "REDIS_PASSWORD": None}
ESCAPES = "title\x1b]0;pwned\x07 \x1b[2K\x1b[8mhidden\x9b31m"
DEEP = b'{"type": "human", "data": {"content": ' + b"[" * 1000 + b"]" * 1000 + b"}}"
NOT_UTF8 = b'{"type": "human", "data": {"content": "\xff\xfe"}}'


def run(*args: str, input: str | bytes | None = None) -> Result:
    result = CliRunner().invoke(main, list(args), input=input, env=CLEAN_ENV)
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        result.output,
        result.exc_info,
    )
    assert "Traceback" not in result.output
    return result


def human(text: str) -> dict[str, Any]:
    return {"type": "human", "data": {"content": text}}


@pytest.fixture
def hostile(client: redis.Redis) -> redis.Redis:
    """One session holding a message with escape sequences, one with a lone surrogate, one
    nested 1000 levels deep, one not UTF-8, each between two good messages."""
    store = ChatHistoryStore(client)
    store.append("escapes", [human("before"), human(ESCAPES + " needle"), human("after")])
    store.append("surrogate", [human("before"), human("lone \ud800 needle"), human("after")])
    for session_id, element in (("deep", DEEP), ("bytes", NOT_UTF8)):
        key = store.config.layout.messages_key(session_id)
        client.rpush(key, json.dumps(human("before needle")), element, json.dumps(human("after")))
    return client


# ------------------------------------------------------------------ items 8, 9, 10 and 20


@pytest.mark.parametrize("session_id", ["deep", "bytes"])
def test_show_marks_an_unreadable_element_and_shows_the_rest(
    redis_url: str, hostile: redis.Redis, session_id: str
) -> None:
    shown = run("show", session_id, "--url", redis_url)
    assert shown.exit_code == 4
    assert "before needle" in shown.stdout and "after" in shown.stdout
    assert "[1] unreadable" in shown.stdout
    assert f"corrupt message at 'chat:{{{session_id}}}:messages' index 1" in shown.stderr
    document = json.loads(run("show", session_id, "--url", redis_url, "--json").stdout)
    assert [m["data"]["content"] for m in document["messages"]] == ["before needle", "after"]
    assert [c["position"] for c in document["corrupt"]] == [1]


def test_show_search_and_tail_make_escape_sequences_visible(
    redis_url: str, hostile: redis.Redis
) -> None:
    """People see ␛ instead of the terminal acting on ESC; --json keeps the exact text."""
    for args in (
        ("show", "escapes"),
        ("search", "needle"),
        ("tail", "escapes", "--duration", "0.1", "--interval", "0.05"),
    ):
        result = run(*args, "--url", redis_url)
        assert result.exit_code == 0, (args, result.output)
        assert "\x1b" not in result.stdout and "\x9b" not in result.stdout, args
        if args[0] != "search":
            assert "title␛]0;pwned" in result.stdout
    document = json.loads(run("show", "escapes", "--url", redis_url, "--json").stdout)
    assert document["messages"][1]["data"]["content"] == ESCAPES + " needle"
    raw = run("show", "escapes", "--url", redis_url, "--json").stdout
    assert "\x9b" not in raw and "\\u009b" in raw


def test_lone_surrogates_print_and_round_trip_in_json(redis_url: str, hostile: redis.Redis) -> None:
    shown = run("show", "surrogate", "--url", redis_url)
    assert shown.exit_code == 0 and "lone \ufffd needle" in shown.stdout
    document = json.loads(run("show", "surrogate", "--url", redis_url, "--json").stdout)
    assert document["messages"][1]["data"]["content"] == "lone \ud800 needle"
    found = run("search", "needle", "--url", redis_url, "--session", "surrogate", "--json")
    assert found.exit_code == 0
    assert json.loads(found.stdout)["matches"][0]["message"]["data"]["content"] == (
        "lone \ud800 needle"
    )
    tail = run("tail", "surrogate", "--url", redis_url, "--duration", "0.1", "--json")
    assert tail.exit_code == 0
    contents = [
        json.loads(line)["message"]["data"]["content"] for line in tail.stdout.split("\n")[:-1]
    ]
    assert "lone \ud800 needle" in contents


def test_search_and_tail_go_on_past_unreadable_elements(
    redis_url: str, hostile: redis.Redis
) -> None:
    found = run("search", "needle", "--url", redis_url, "--json")
    assert found.exit_code == 0
    sessions = {match["session"] for match in json.loads(found.stdout)["matches"]}
    assert sessions == {"escapes", "surrogate", "deep", "bytes"}
    for session_id in ("deep", "bytes"):
        tail = run("tail", session_id, "--url", redis_url, "--duration", "0.1", "--json")
        assert tail.exit_code == 0
        lines = [json.loads(line) for line in tail.stdout.splitlines()]
        assert [line["message"] is None for line in lines] == [False, True, False]
        human_tail = run("tail", session_id, "--url", redis_url, "--duration", "0.1")
        assert human_tail.exit_code == 0 and "(not a message)" in human_tail.stdout


def test_export_import_and_migrate_carry_unreadable_elements(
    redis_url: str, hostile: redis.Redis, tmp_path: Path
) -> None:
    path = tmp_path / "backup.jsonl"
    assert run("export", "--url", redis_url, "-o", str(path), "-q").exit_code == 0
    hostile.flushall()
    imported = run("import", "--url", redis_url, str(path))
    assert imported.exit_code == 4  # the deep element is a bad line unless --no-validate
    assert "levels deep" in imported.stdout
    assert run("import", "--url", redis_url, str(path), "--no-validate").exit_code == 0
    assert hostile.lindex("chat:{deep}:messages", 1) == DEEP
    migrated = run("migrate", "--url", redis_url, "--from", "native", "--to", "community")
    assert migrated.exit_code == 0, migrated.output
    assert hostile.lindex("message_store:bytes", 1) == NOT_UTF8


# ---------------------------------------------------------------------- item 17: tail


def test_tail_sees_a_repeated_message_in_a_capped_session(
    redis_url: str, client: redis.Redis
) -> None:
    """At max_messages the length stays and the newest element is the same text again;
    tail still prints the new message once."""
    store = ChatHistoryStore(client, max_messages=3)
    store.append("capped", [human("a"), human("b"), human("same")])

    def later() -> None:
        time.sleep(0.5)
        with redis.Redis.from_url(redis_url) as writer:
            ChatHistoryStore(writer, max_messages=3).append("capped", [human("same")])

    import threading

    threading.Thread(target=later, daemon=True).start()
    result = run("tail", "capped", "--url", redis_url, "--last", "0", "--count", "1",
                 "--interval", "0.05", "--duration", "10", "--json")  # fmt: skip
    assert result.exit_code == 0
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["message"]["data"]["content"] for line in lines] == ["same"]


# ---------------------------------------------------------- item 12: arguments checked first


def test_export_to_a_directory_or_no_name_is_a_usage_error(
    redis_url: str, client: redis.Redis, tmp_path: Path
) -> None:
    ChatHistoryStore(client).append("s", [human("x")])
    for output in (str(tmp_path), ""):
        result = run("export", "--url", redis_url, "-o", output)
        assert result.exit_code == 2, result.output
        assert result.stderr.startswith("error: ") and len(result.stderr.splitlines()) == 1
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("glob", ["[^]", "[z-a]"])
def test_a_bad_match_pattern_is_a_usage_error(redis_url: str, glob: str) -> None:
    result = run("sessions", "--url", redis_url, "--match", glob)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: invalid glob")


# ------------------------------------------------------ item 16: diagnostics and exit codes


def export_file(client: redis.Redis, redis_url: str, tmp_path: Path, *args: str) -> Path:
    path = tmp_path / "backup.jsonl"
    assert run("export", "--url", redis_url, "-o", str(path), "-q", *args).exit_code == 0
    client.flushall()
    return path


def test_import_writes_where_the_file_was_exported_from(
    redis_url: str, client: redis.Redis, tmp_path: Path
) -> None:
    """Without --layout, import uses the header's layout and key prefix, from a file or
    from stdin; a file without a header needs --layout."""
    ChatHistoryStore(client, layout=CommunityLayout("app:")).append("s", [human("x")])
    path = export_file(client, redis_url, tmp_path, "--layout", "community", "--key-prefix", "app:")
    assert run("import", "--url", redis_url, str(path), "-q").exit_code == 0
    assert client.lrange("app:s", 0, -1) == [json.dumps(human("x")).encode()]
    client.flushall()
    assert run("import", "--url", redis_url, "-", "-q", input=path.read_bytes()).exit_code == 0
    assert client.exists("app:s")
    headless = tmp_path / "headless.jsonl"
    headless.write_text("".join(path.read_text().splitlines(keepends=True)[1:]))
    refused = run("import", "--url", redis_url, str(headless))
    assert refused.exit_code == 2 and "--layout" in refused.stderr
    reported = run("import", "--url", redis_url, str(headless), "--layout", "native")
    assert reported.exit_code == 4 and "header line" in reported.stdout


def test_import_of_a_file_that_is_not_an_export(redis_url: str, tmp_path: Path) -> None:
    path = tmp_path / "people.csv.gz"
    path.write_bytes(gzip.compress(b"name,age\nbob,3\n"))
    result = run("import", "--url", redis_url, str(path), "--layout", "native")
    assert result.exit_code == 4
    assert "not a redis-chat-history export" in result.stdout
    assert "empty" not in result.output


def test_strict_check_does_not_claim_a_dry_run(
    redis_url: str, client: redis.Redis, tmp_path: Path
) -> None:
    ChatHistoryStore(client).append("s", [human("x")])
    path = export_file(client, redis_url, tmp_path)
    path.write_text(path.read_text().replace('"index": 0', '"index": 5'))
    result = run("import", "--url", redis_url, str(path), "--strict")
    assert result.exit_code == 4
    assert "nothing was imported" in result.stdout and "dry run" not in result.stdout


def test_a_database_that_does_not_exist_is_a_usage_error(redis_url: str) -> None:
    result = run("sessions", "--url", redis_url.rstrip("/0123456789") + "/99999")
    assert result.exit_code == 2 and "database" in result.stderr


def test_search_says_how_many_sessions_it_searched(redis_url: str, client: redis.Redis) -> None:
    for session_id in ("a", "b", "c"):
        ChatHistoryStore(client).append(session_id, [human("needle")])
    result = run("search", "needle", "--url", redis_url, "--limit", "1")
    assert "of 1 of 3 sessions (stopped at --limit 1)" in result.stderr
    document = json.loads(
        run("search", "needle", "--url", redis_url, "--limit", "1", "--json").stdout
    )
    assert (document["sessions_searched"], document["sessions"]) == (1, 3)


def test_ctrl_c_exits_130(redis_url: str) -> None:
    """An import waiting on stdin, interrupted: exit 130 and one error line."""
    process = subprocess.Popen(
        [sys.executable, "-m", "redis_chat_history", "import", "-", "--url", redis_url,
         "--layout", "native"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        time.sleep(2.0)
        process.send_signal(signal.SIGINT)
        _out, err = process.communicate(timeout=20)
    finally:
        process.kill()
    assert process.returncode == 130, err
    assert err.decode().strip().splitlines() == ["error: interrupted"]


# ------------------------------------------------------------ item 7 through the CLI


def test_migrate_move_keeps_the_session_in_its_owners_list(
    redis_url: str, client: redis.Redis
) -> None:
    community = ChatHistoryStore(client, layout="community")
    community.create_session("chat-7", owner="user-42", title="Lisbon")
    community.append("chat-7", [human("hi")])
    moved = run("migrate", "--url", redis_url, "--from", "community", "--to", "native", "--move")
    assert moved.exit_code == 0, moved.output
    listed = json.loads(run("sessions", "--url", redis_url, "--owner", "user-42", "--json").stdout)
    assert [(s["session"], s["title"], s["messages"]) for s in listed["sessions"]] == [
        ("chat-7", "Lisbon", 1)
    ]
    old = run("sessions", "--url", redis_url, "--owner", "user-42", "--layout", "community")
    assert old.exit_code == 1


# ------------------------------------------------- the CLI's retry deadline (issue 10)


class CuttingProxy:
    """A TCP proxy to a real redis-server that, as soon as a client sends ``trigger``,
    drops it unsent, cuts every connection and stops listening: to the command sending
    it, the server has just gone away."""

    def __init__(self, target_port: int, trigger: bytes) -> None:
        self.target_port, self.trigger = target_port, trigger
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.cut = threading.Event()
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.cut.is_set():
            try:
                downstream, _address = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            self.sockets += [downstream, upstream]
            threading.Thread(target=self._pipe, args=(downstream, upstream), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, downstream), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        tail = b""
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                return
            if not data:
                return
            if source.getsockname()[1] == self.port and self.trigger in tail + data:
                self.close()
                return
            tail = data[-len(self.trigger) :]
            try:
                sink.sendall(data)
            except OSError:
                return

    def close(self) -> None:
        self.cut.set()
        for connection in (self.listener, *self.sockets):
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
            connection.close()


def test_delete_gives_up_after_the_cli_deadline_when_the_server_goes_away() -> None:
    """The server vanishes as ``delete`` sends its script: the command gives up after
    the CLI's 2 s retry deadline, not the library's 15 s."""
    with EmbeddedRedis() as server:
        ChatHistoryStore(server.client()).append("doomed", [human("hi")])
        proxy = CuttingProxy(server.port, trigger=b"EVALSHA")
        url = server.url.replace(f":{server.port}/", f":{proxy.port}/")
        try:
            started = time.monotonic()
            result = run("delete", "doomed", "--yes", "--url", url, "--timeout", "1")
            elapsed = time.monotonic() - started
        finally:
            proxy.close()
        assert result.exit_code == 3 and "cannot reach the server" in result.stderr
        assert CLI_RETRY_DEADLINE - 0.5 < elapsed < CLI_RETRY_DEADLINE + 4, elapsed
        assert ChatHistoryStore(server.client()).count("doomed") == 1


@pytest.mark.parametrize(
    "args",
    [
        ("sessions",),
        ("search", "hi"),
        ("stats",),
        ("delete", "--prefix", "s", "--yes"),
        ("delete", "s-native", "--yes"),
    ],
    ids=lambda args: " ".join(args),
)
def test_every_store_a_command_builds_has_the_cli_deadline(
    redis_url: str, client: redis.Redis, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...]
) -> None:
    """Stores made behind the CLI's back would retry for the library's 15 s."""
    for layout in ("native", "community", "memorystore"):
        ChatHistoryStore(client, layout=layout).append(f"s-{layout}", [human("hi")])
    built: list[ChatHistoryStore] = []
    real_init = ChatHistoryStore.__init__

    def recording_init(store: ChatHistoryStore, *args: Any, **kwargs: Any) -> None:
        real_init(store, *args, **kwargs)
        built.append(store)

    monkeypatch.setattr(ChatHistoryStore, "__init__", recording_init)
    result = run(*args, "--url", redis_url)
    assert result.exit_code == 0, result.output
    assert built and {store.config.retry_deadline for store in built} == {CLI_RETRY_DEADLINE}
