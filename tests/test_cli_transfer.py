"""The ``export``, ``import`` and ``migrate`` commands, end to end on real redis-servers."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner, Result

from redis_chat_history import ChatHistoryStore, CommunityLayout
from redis_chat_history.cli import main
from redis_chat_history.embedded import EmbeddedRedis
from test_upstream_fixtures import COMMUNITY, dump_lists, load_fixture, load_keys

PASSWORD = "s3cret-target-pw"


def run(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), input=input, env=env, catch_exceptions=False)


def records(count: int, tag: str = "m") -> list[dict[str, Any]]:
    return [{"type": "human", "data": {"content": f"{tag}{i}"}} for i in range(count)]


def load_community_fixtures(client: redis.Redis) -> None:
    """langchain-community's S1 (12 messages) and S3 (ttl 3600) keys, as it wrote them."""
    scenarios = load_fixture(COMMUNITY)["scenarios"]
    load_keys(client, scenarios["S1"]["keys"] + scenarios["S3"]["keys"])


def without_ttls(lists: list[tuple[bytes, int, list[bytes]]]) -> list[tuple[bytes, list[bytes]]]:
    return [(key, elements) for key, _, elements in lists]


@pytest.fixture
def locked_server() -> Iterator[EmbeddedRedis]:
    """A second redis-server that wants a password."""
    server = EmbeddedRedis(
        extra_args=["--requirepass", PASSWORD], client_kwargs={"password": PASSWORD}
    ).start()
    yield server
    server.stop()


def test_export_delete_import_round_trip(
    redis_url: str, client: redis.Redis, tmp_path: Path
) -> None:
    """export -o FILE, delete, import FILE: the same bytes and ttls; no .partial file left."""
    load_community_fixtures(client)
    before = dump_lists(client)
    path = tmp_path / "backup.jsonl"
    exported = run("export", "--url", redis_url, "--layout", "community", "-o", str(path))
    assert exported.exit_code == 0, exported.output
    assert "exported 2 sessions, 15 messages" in exported.stdout
    assert not (tmp_path / "backup.jsonl.partial").exists()
    client.flushall()
    imported = run("import", "--url", redis_url, "--layout", "community", str(path))
    assert imported.exit_code == 0, imported.output
    assert "imported 2 sessions" in imported.stdout and "15 messages written" in imported.stdout
    after = dump_lists(client)
    assert without_ttls(after) == without_ttls(before)
    assert after[0][1] == -1  # message_store:session1
    assert 3598 <= after[1][1] <= 3600  # message_store:ttl-1
    again = run("import", "--url", redis_url, "--layout", "community", str(path), "--json")
    assert again.exit_code == 0
    report = json.loads(again.stdout)
    assert (report["messages"], report["already_present"], report["ok"]) == (0, 15, True)
    assert without_ttls(dump_lists(client)) == without_ttls(after)


def test_export_to_stdout_keeps_the_summary_on_stderr(redis_url: str, client: redis.Redis) -> None:
    """With no -o the JSON Lines are the only thing on stdout; --json puts the summary on
    stderr then."""
    ChatHistoryStore(client).append("s", records(3))
    result = run("export", "--url", redis_url, "--json")
    assert result.exit_code == 0
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines[0]["format"] == "redis-chat-history"
    assert lines[-1] == {"end": True, "sessions": 1, "messages": 3}
    summary = json.loads(result.stderr)
    assert (summary["command"], summary["sessions"], summary["messages"]) == ("export", 1, 3)


def test_gzip_round_trip(redis_url: str, client: redis.Redis, tmp_path: Path) -> None:
    store = ChatHistoryStore(client)
    store.append("s", records(4))
    path = tmp_path / "backup.jsonl.gz"
    assert run("export", "--url", redis_url, "-o", str(path), "-q").exit_code == 0
    assert gzip.decompress(path.read_bytes()).startswith(b'{"format"')
    client.flushall()
    assert run("import", "--url", redis_url, str(path), "-q").exit_code == 0
    assert store.messages("s") == records(4)


def test_missing_session_or_prefix_exits_1(redis_url: str, client: redis.Redis) -> None:
    ChatHistoryStore(client).append("s", records(1))
    missing = run("export", "--url", redis_url, "s", "nope")
    assert missing.exit_code == 1
    assert "not_found: session 'nope'" in missing.stderr
    assert run("export", "--url", redis_url, "--prefix", "zzz").exit_code == 1
    assert run("export", "--url", redis_url, "s", "--prefix", "s").exit_code == 2
    migrate = ("migrate", "--url", redis_url, "--from", "native", "--to", "community")
    assert run(*migrate, "--prefix", "zzz").exit_code == 1
    assert run(*migrate, "nope").exit_code == 1
    assert run(*migrate, "s").exit_code == 0


def export_lines(redis_url: str, client: redis.Redis) -> list[str]:
    store = ChatHistoryStore(client)
    store.append("a", records(4, "a"))
    store.append("b", records(3, "b"))
    result = run("export", "--url", redis_url, "a", "b")
    client.flushall()
    return result.stdout.splitlines(keepends=True)


def test_bad_line_reported_with_number_rest_imported(redis_url: str, client: redis.Redis) -> None:
    """A malformed line is named by number, exit 4; session a keeps what came before it,
    session b is imported."""
    lines = export_lines(redis_url, client)
    lines[4] = "{oops\n"  # a's third message
    result = run("import", "--url", redis_url, "-", input="".join(lines))
    assert result.exit_code == 4
    assert "bad_line: line 5, session 'a': not valid JSON" in result.stdout
    store = ChatHistoryStore(client)
    assert store.messages("a") == records(2, "a")
    assert store.messages("b") == records(3, "b")


def test_strict_imports_nothing_from_a_bad_file(
    redis_url: str, client: redis.Redis, tmp_path: Path
) -> None:
    """--strict checks the whole file first: any bad line and nothing is written."""
    lines = export_lines(redis_url, client)
    lines[8] = '{"session": "b", "index": 5, "raw": "{}"}\n'
    path = tmp_path / "bad.jsonl"
    path.write_text("".join(lines))
    result = run("import", "--url", redis_url, str(path), "--strict")
    assert result.exit_code == 4
    assert "nothing was imported" in result.stdout
    assert "line 9, session 'b': message index 5 where 1 was expected" in result.stdout
    assert client.dbsize() == 0
    assert run("import", "--url", redis_url, "-", "--strict", input="").exit_code == 2
    good = tmp_path / "good.jsonl"
    good.write_text("".join(export_lines(redis_url, client)))
    assert run("import", "--url", redis_url, str(good), "--strict").exit_code == 0
    assert ChatHistoryStore(client).count("a") == 4


def test_interrupted_import_rerun_has_no_duplicates(
    redis_url: str, client: redis.Redis, tmp_path: Path
) -> None:
    """A file cut off mid-session imports what it holds (exit 4: incomplete); the full file
    then finishes the job without duplicating anything."""
    lines = export_lines(redis_url, client)
    cut = run("import", "--url", redis_url, "-", "--chunk-size", "2", input="".join(lines[:5]))
    assert cut.exit_code == 4
    assert "incomplete" in cut.stdout
    full = run(
        "import", "--url", redis_url, "-", "--chunk-size", "2", "--json", input="".join(lines)
    )
    assert full.exit_code == 0, full.output
    report = json.loads(full.stdout)
    assert report["messages"] + report["already_present"] == 7
    assert report["already_present"] == 3
    store = ChatHistoryStore(client)
    assert store.messages("a") == records(4, "a") and store.messages("b") == records(3, "b")


def test_conflict_then_replace(redis_url: str, client: redis.Redis) -> None:
    lines = export_lines(redis_url, client)
    store = ChatHistoryStore(client)
    store.append("a", records(1, "other"))
    conflict = run("import", "--url", redis_url, "-", input="".join(lines))
    assert conflict.exit_code == 4
    assert "conflict: session 'a'" in conflict.stdout
    assert store.messages("a") == records(1, "other")
    replaced = run("import", "--url", redis_url, "-", "--replace", input="".join(lines))
    assert replaced.exit_code == 0
    assert store.messages("a") == records(4, "a")


def test_migrate_community_to_native_and_back(redis_url: str, client: redis.Redis) -> None:
    """migrate --move there and back leaves langchain-community's bytes; --dry-run and a
    same-keys migration change nothing."""
    load_community_fixtures(client)
    before = dump_lists(client)
    dry = run("migrate", "--url", redis_url, "--from", "community", "--to", "native", "--move",
              "--dry-run")  # fmt: skip
    assert dry.exit_code == 0 and "would copy 2 sessions" in dry.stdout
    assert dump_lists(client) == before
    there = run("migrate", "--url", redis_url, "--from", "community", "--to", "native", "--move")
    assert there.exit_code == 0, there.output
    assert "2 sources deleted" in there.stdout
    assert all(key.startswith(b"chat:{") for key, _, _ in dump_lists(client))
    back = run("migrate", "--url", redis_url, "--from", "native", "--to", "community", "--move")
    assert back.exit_code == 0
    assert without_ttls(dump_lists(client)) == without_ttls(before)
    same = run("migrate", "--url", redis_url, "--from", "native", "--to", "native")
    assert same.exit_code == 2 and "same keys" in same.stderr


def test_migrate_to_another_server_never_prints_its_password(
    redis_url: str, client: redis.Redis, locked_server: EmbeddedRedis
) -> None:
    """--to-url copies to another server (password from the URL or the environment) and
    the password appears nowhere in the output."""
    community = ChatHistoryStore(client, layout=CommunityLayout())
    community.append("s", records(5))
    host = locked_server.url.split("//", 1)[1]
    for to_url, env in (
        (f"redis://:{PASSWORD}@{host}", None),
        (f"redis://{host}", {"REDIS_CHAT_HISTORY_TO_PASSWORD": PASSWORD}),
    ):
        result = run(
            "migrate", "--url", redis_url, "--from", "community", "--to", "native",
            "--to-url", to_url, "--json", env=env,
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        assert PASSWORD not in result.output
        report = json.loads(result.stdout)
        assert report["sessions"] == 1 and report["to_server"].startswith("redis://")
    target = ChatHistoryStore(locked_server.client())
    assert target.messages("s") == records(5)
    assert community.count("s") == 5  # copied, not moved
    target.close()


def test_migrate_unverified_source_is_kept(redis_url: str, client: redis.Redis) -> None:
    community = ChatHistoryStore(client, layout="community")
    native = ChatHistoryStore(client)
    community.append("s", records(2))
    native.append("s", [*records(2), *records(1, "extra")])
    result = run("migrate", "--url", redis_url, "--from", "community", "--to", "native", "--move")
    assert result.exit_code == 4
    assert "unverified: session 's': not verified" in result.stdout
    assert community.count("s") == 2


def test_key_prefix_only_for_community(redis_url: str) -> None:
    result = run("export", "--url", redis_url, "--key-prefix", "x:")
    assert result.exit_code == 2
    assert "community layout only" in result.stderr


def test_password_stdin_and_stdin_input_exclude_each_other(redis_url: str) -> None:
    result = run("import", "--url", redis_url, "--password-stdin", "-", input="pw\n{}\n")
    assert result.exit_code == 2
    assert "exclude each other" in result.stderr
