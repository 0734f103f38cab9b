"""Export, import and migrate (redis_chat_history.transfer) against real redis-servers."""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
import redis

from redis_chat_history import ChatHistoryStore, CommunityLayout, InvalidOptionError
from redis_chat_history.embedded import EmbeddedRedis
from redis_chat_history.transfer import (
    TransferSummary,
    check_lines,
    export_sessions,
    import_sessions,
    migrate_sessions,
)
from test_upstream_fixtures import (
    COMMUNITY,
    MEMORYSTORE,
    SCENARIO_PLANS,
    b64,
    dump_lists,
    fixture_lists,
    load_fixture,
    load_keys,
)

LAYOUTS = ["native", "community", "memorystore"]


def record(text: str, kind: str = "human") -> dict[str, Any]:
    return {"type": kind, "data": {"content": text}}


def records(count: int, tag: str = "m") -> list[dict[str, Any]]:
    return [record(f"{tag}{i}", "human" if i % 2 == 0 else "ai") for i in range(count)]


def export_text(store: ChatHistoryStore, **options: Any) -> str:
    out = io.StringIO()
    summary = export_sessions(store, out, **options)
    assert summary.ok, summary.problems
    return out.getvalue()


def lines_of(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def interrupted(lines: Iterable[str], after: int) -> Iterator[str]:
    """Yield ``after`` lines, then fail as a crash or a lost connection would."""
    for number, line in enumerate(lines):
        if number == after:
            raise KeyboardInterrupt("simulated interruption")
        yield line


@pytest.fixture
def second_server() -> Iterator[EmbeddedRedis]:
    """Another redis-server, for copies between servers."""
    server = EmbeddedRedis().start()
    yield server
    server.stop()


# --- export / import round trips ----------------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS)
def test_export_delete_import_restores_identical_bytes(client: redis.Redis, layout: str) -> None:
    """Export, delete everything, import: the same keys, elements (byte for byte) and ttls."""
    store = ChatHistoryStore(client, layout=layout)
    store.append("plain", records(7))
    store.append("ünïcödé/{tag} *?", records(3, "u"))
    store.append("with-ttl", records(2, "t"))
    client.expire(store.config.layout.messages_key("with-ttl"), 500)
    # Elements another writer stored with its own spelling: kept as they are.
    odd = [
        b'{"type":"ai","data":{"content":"compact","score":1.50,"e":1E5}}',
        b'{"type": "human", "data": {"content": "\\u00e9t\\u00e9 \xc3\xa9"}}',
        b"\xff\xfe not utf-8 at all",
    ]
    push = client.lpush if store.config.layout.newest_first else client.rpush
    push(store.config.layout.messages_key("odd"), *odd)
    for session_id in ("plain", "ünïcödé/{tag} *?", "with-ttl"):
        client.delete(store.config.layout.token_key(session_id))
    before = dump_lists(client)

    text = export_text(store, chunk_size=2)
    client.flushall()
    summary = import_sessions(store, lines_of(text), validate=False, chunk_size=2)

    assert summary.ok, summary.problems
    assert (summary.sessions, summary.messages, summary.already_present) == (4, 15, 0)
    after = dump_lists(client)
    assert [(key, elements) for key, _, elements in after] == [
        (key, elements) for key, _, elements in before
    ]
    ttls = {key: ttl for key, ttl, _ in after}
    assert 498 <= ttls[store.config.layout.messages_key("with-ttl").encode()] <= 500
    assert sorted(ttls.values())[:3] == [-1, -1, -1]
    assert client.dbsize() == 4  # the lists only: no retry-token sets


def test_file_format(client: redis.Redis) -> None:
    """Header, then per session a session line and numbered message lines (oldest first,
    whatever the layout), then the end line; every line is ASCII JSON."""
    store = ChatHistoryStore(client, layout="community")
    store.append("s", [record("first"), record("é", "ai")])
    text = export_text(store)
    assert text.isascii()
    lines = [json.loads(line) for line in lines_of(text)]
    assert lines[0] == {
        "format": "redis-chat-history",
        "version": 1,
        "layout": "community",
        "key_prefix": "message_store:",
    }
    assert lines[1] == {"session": "s", "ttl": None}
    assert lines[2] == {"session": "s", "index": 0, "raw": json.dumps(record("first"))}
    assert lines[3] == {"session": "s", "index": 1, "raw": json.dumps(record("é", "ai"))}
    assert lines[4] == {"end": True, "sessions": 1, "messages": 2}


def test_export_selects_sessions_and_prefix(client: redis.Redis) -> None:
    """``session_ids`` exports just those (a missing one is a problem); ``prefix`` filters."""
    store = ChatHistoryStore(client)
    for session_id in ("user-1/a", "user-1/b", "user-2/a"):
        store.append(session_id, records(2))
    by_prefix = [json.loads(line) for line in lines_of(export_text(store, prefix="user-1/"))]
    assert sorted(line["session"] for line in by_prefix if "ttl" in line) == [
        "user-1/a",
        "user-1/b",
    ]
    out = io.StringIO()
    summary = export_sessions(store, out, session_ids=["user-2/a", "nope"])
    assert (summary.sessions, summary.messages) == (1, 2)
    assert [(p.session, p.reason[:9]) for p in summary.problems] == [("nope", "not found")]
    assert not summary.ok


def test_import_into_another_layout_and_selection(client: redis.Redis) -> None:
    """A file imports into any layout (order follows the layout); selection filters it."""
    native = ChatHistoryStore(client)
    native.append("a/1", records(3))
    native.append("b/1", records(2))
    text = export_text(native)
    community = ChatHistoryStore(client, layout="community")
    summary = import_sessions(community, lines_of(text), prefix="a/")
    assert (summary.sessions, summary.messages) == (1, 3)
    assert community.messages("a/1") == native.messages("a/1")
    assert (
        client.lrange("message_store:a/1", 0, -1)
        == client.lrange("chat:{a/1}:messages", 0, -1)[::-1]
    )
    assert community.count("b/1") == 0
    summary = import_sessions(community, lines_of(text), session_ids=["b/1"])
    assert (summary.sessions, summary.messages) == (1, 2)


def test_import_twice_changes_nothing(client: redis.Redis) -> None:
    """Re-running an import finds every message in place and writes nothing."""
    store = ChatHistoryStore(client)
    store.append("s", records(5))
    text = export_text(store)
    client.flushall()
    import_sessions(store, lines_of(text))
    before = dump_lists(client)
    again = import_sessions(store, lines_of(text))
    assert again.ok
    assert (again.sessions, again.messages, again.already_present) == (1, 0, 5)
    assert dump_lists(client) == before


@pytest.mark.parametrize("layout", ["native", "community"])
@pytest.mark.parametrize("stop_after", [3, 6, 9, 13])
def test_interrupted_import_completes_without_duplicates(
    client: redis.Redis, layout: str, stop_after: int
) -> None:
    """An import stopped after any line, then run again, leaves exactly the exported data."""
    store = ChatHistoryStore(client, layout=layout)
    store.append("one", records(7))
    store.append("two", records(4, "t"))
    for session_id in ("one", "two"):
        client.delete(store.config.layout.token_key(session_id))
    before = dump_lists(client)
    text = export_text(store)
    client.flushall()
    with pytest.raises(KeyboardInterrupt):
        import_sessions(store, interrupted(lines_of(text), stop_after), chunk_size=2)
    partial = dump_lists(client)
    assert sum(len(elements) for _, _, elements in partial) < 11
    summary = import_sessions(store, lines_of(text), chunk_size=2)
    assert summary.ok, summary.problems
    assert summary.messages + summary.already_present == 11
    assert dump_lists(client) == before


def test_truncated_file_then_full_file(client: redis.Redis) -> None:
    """A cut-off file imports what it holds and says it is incomplete; the full file then
    completes the session."""
    store = ChatHistoryStore(client)
    store.append("s", records(10))
    text = export_text(store)
    client.flushall()
    cut = lines_of(text)[:6]  # header, session line, 4 messages
    partial = import_sessions(store, cut)
    assert not partial.complete and not partial.ok
    assert (partial.sessions, partial.messages) == (0, 4)
    assert "ends inside" in partial.problems[0].reason
    full = import_sessions(store, lines_of(text))
    assert full.ok and (full.sessions, full.messages, full.already_present) == (1, 6, 4)
    assert store.messages("s") == records(10)


def test_retried_batch_is_not_doubled(client: redis.Redis) -> None:
    """If a batch was applied already (redis-py re-sent it after a timeout), the length
    check sees it and the import continues without storing it twice."""
    store = ChatHistoryStore(client, layout="community")
    store.append("s", records(6))
    client.delete(store.config.layout.token_key("s"))
    text = export_text(store)
    elements = [json.dumps(r).encode() for r in records(6)]
    client.flushall()

    def apply_next_batch_early(summary: TransferSummary) -> None:
        if summary.messages == 2 and client.llen("message_store:s") == 2:
            client.lpush("message_store:s", *elements[2:4])  # the next batch, "already sent"

    summary = import_sessions(store, lines_of(text), chunk_size=2, progress=apply_next_batch_early)
    assert summary.ok
    assert (summary.messages, summary.already_present) == (4, 2)
    assert store.messages("s") == records(6)


def test_concurrent_different_write_is_a_conflict(client: redis.Redis) -> None:
    """A message another writer adds mid-import is never overwritten or doubled: the
    session is reported as a conflict and left as it is."""
    store = ChatHistoryStore(client)
    store.append("s", records(6))
    text = export_text(store)
    client.flushall()

    def interfere(summary: TransferSummary) -> None:
        if summary.messages == 2 and client.llen("chat:{s}:messages") == 2:
            client.rpush("chat:{s}:messages", b'{"type": "human", "data": {"content": "x"}}')

    summary = import_sessions(store, lines_of(text), chunk_size=2, progress=interfere)
    assert not summary.ok and summary.sessions == 0
    assert "different messages" in summary.problems[0].reason
    assert [m["data"]["content"] for m in store.messages("s")] == ["m0", "m1", "x"]


# --- conflicts and replace -----------------------------------------------------------------


def test_conflict_is_left_unchanged_unless_replace(client: redis.Redis) -> None:
    """A target holding other messages is reported and untouched; replace keeps the common
    beginning and rewrites the rest."""
    store = ChatHistoryStore(client, layout="community")
    store.append("s", records(4))
    store.append("other", records(1))
    text = export_text(store)
    store.clear("s")
    store.append("s", [*records(2), record("diverged"), record("more"), record("and more")])
    before = dump_lists(client)

    summary = import_sessions(store, lines_of(text))
    assert [(p.session, p.line) for p in summary.problems] == [("s", None)]
    assert "first difference at message 2" in summary.problems[0].reason
    assert summary.sessions == 1  # "other", already there
    assert dump_lists(client) == before

    dry = import_sessions(store, lines_of(text), replace=True, dry_run=True)
    assert dry.ok and dry.replaced == 1 and dry.messages == 2
    assert dump_lists(client) == before

    replaced = import_sessions(store, lines_of(text), replace=True)
    assert replaced.ok and replaced.replaced == 1
    assert (replaced.messages, replaced.already_present) == (2, 3)
    assert store.messages("s") == records(4)


def test_target_with_more_messages_counts_as_imported(client: redis.Redis) -> None:
    """A target holding every exported message and newer ones is already imported; with
    replace it is cut back to the export."""
    store = ChatHistoryStore(client)
    store.append("s", records(3))
    text = export_text(store)
    store.append("s", [record("newer")])
    summary = import_sessions(store, lines_of(text))
    assert summary.ok and (summary.messages, summary.already_present) == (0, 3)
    assert store.count("s") == 4
    replaced = import_sessions(store, lines_of(text), replace=True)
    assert replaced.ok and replaced.replaced == 1
    assert store.messages("s") == records(3)


def test_wrong_type_target_is_reported_and_others_imported(client: redis.Redis) -> None:
    """A target key holding a string is reported and left alone; other sessions import."""
    store = ChatHistoryStore(client)
    store.append("a", records(2))
    store.append("b", records(2))
    text = export_text(store)
    client.flushall()
    client.set("chat:{a}:messages", "not a list")
    summary = import_sessions(store, lines_of(text))
    assert summary.sessions == 1 and summary.problem_count == 1
    assert summary.problems[0].session == "a" and "list" in summary.problems[0].reason
    assert client.get("chat:{a}:messages") == b"not a list"
    assert store.messages("b") == records(2)


def test_ttl_restored_unless_told_not_to(client: redis.Redis) -> None:
    """Each session gets its exported ttl back; ``restore_ttl=False`` leaves no expiry."""
    store = ChatHistoryStore(client)
    store.append("s", records(2))
    client.expire("chat:{s}:messages", 1000)
    text = export_text(store)
    client.flushall()
    import_sessions(store, lines_of(text), restore_ttl=False)
    assert client.ttl("chat:{s}:messages") == -1
    import_sessions(store, lines_of(text))  # all present: the ttl is still set
    assert 998 <= client.ttl("chat:{s}:messages") <= 1000


def test_dry_run_writes_nothing(client: redis.Redis) -> None:
    """A dry run reports what an import would write and leaves the database empty."""
    store = ChatHistoryStore(client)
    store.append("s", records(3))
    text = export_text(store)
    client.flushall()
    summary = import_sessions(store, lines_of(text), dry_run=True)
    assert summary.ok and summary.dry_run and (summary.sessions, summary.messages) == (1, 3)
    assert client.dbsize() == 0


# --- bad input -----------------------------------------------------------------------------


def sample_file(client: redis.Redis) -> list[str]:
    store = ChatHistoryStore(client)
    store.append("a", records(4, "a"))
    store.append("b", records(3, "b"))
    lines = lines_of(export_text(store, session_ids=["a", "b"]))
    client.flushall()
    return lines


@pytest.mark.parametrize(
    ("line_number", "bad", "reason"),
    [
        (6, "{not json\n", "not valid JSON"),
        (6, '["a", "list"]\n', "expected a JSON object"),
        (6, '{"session": "a", "index": 7, "raw": "{}"}\n', "index 7 where 3 was expected"),
        (6, '{"session": "a", "index": 3}\n', 'needs "raw"'),
        (6, '{"session": "a", "index": 3, "raw": "[1, 2]"}\n', "not a {'type'"),
        (6, '{"session": "a", "index": 3, "raw": "{broken"}\n', "not valid JSON"),
        (6, '{"session": "a", "index": 3, "raw_b64": "@@"}\n', "not valid base64"),
        (6, '{"session": "", "index": 3, "raw": "{}"}\n', "must not be empty"),
        (6, '{"what": 1}\n', "not a header, session, message or end line"),
    ],
)
def test_bad_line_reported_session_cut_before_it(
    client: redis.Redis, line_number: int, bad: str, reason: str
) -> None:
    """A bad line is reported with its number; its session keeps the messages before it,
    the rest of that session is skipped, the other sessions import."""
    lines = sample_file(client)
    lines[line_number - 1] = bad  # the 4th message of session "a"
    store = ChatHistoryStore(client)
    summary = import_sessions(store, lines)
    assert [(p.line, p.session) for p in summary.problems] == [(line_number, "a")]
    assert reason in summary.problems[0].reason
    assert not summary.ok and summary.complete
    assert store.messages("a") == records(3, "a")
    assert store.messages("b") == records(3, "b")
    assert summary.sessions == 1  # b; a was cut short
    # Fixing the file and importing again completes "a".
    fixed = import_sessions(store, sample_file_again(lines, line_number, client))
    assert fixed.ok and store.messages("a") == records(4, "a")


def sample_file_again(lines: list[str], line_number: int, client: redis.Redis) -> list[str]:
    """The same file with its bad line restored from a fresh export of the same data."""
    good = json.dumps({"session": "a", "index": 3, "raw": json.dumps(records(4, "a")[3])})
    return [*lines[: line_number - 1], good + "\n", *lines[line_number:]]


def test_message_lines_without_session_line(client: redis.Redis) -> None:
    """Message lines whose session line is missing are one problem, not one per line."""
    lines = sample_file(client)
    del lines[6]  # the session line of "b"
    summary = import_sessions(ChatHistoryStore(client), lines)
    assert [(p.line, p.session) for p in summary.problems] == [(7, "b")]
    assert "without its session line" in summary.problems[0].reason
    assert ChatHistoryStore(client).count("b") == 0


def test_end_line_must_match_and_format_must_be_known(client: redis.Redis) -> None:
    """An end line that miscounts, or a header of another format version, is reported."""
    lines = sample_file(client)
    lines[-1] = json.dumps({"end": True, "sessions": 2, "messages": 99}) + "\n"
    summary = check_lines(lines)
    assert "counts 2 sessions and 99 messages" in summary.problems[0].reason
    assert summary.problems[0].line == len(lines)
    lines[0] = json.dumps({"format": "redis-chat-history", "version": 2}) + "\n"
    assert "unsupported format" in check_lines(lines).problems[0].reason


def test_check_lines_reports_every_bad_line_and_touches_nothing(client: redis.Redis) -> None:
    """``check_lines`` reads the whole file without Redis and lists every bad line."""
    lines = sample_file(client)
    lines[2] = "garbage\n"
    lines[8] = "{}\n"
    summary = check_lines(lines)
    assert [p.line for p in summary.problems] == [3, 9]
    assert client.dbsize() == 0
    good = check_lines(sample_file(client))
    assert good.ok and (good.sessions, good.messages) == (2, 7)
    assert not check_lines([]).ok
    assert not check_lines(lines_of("\n\n")).ok


def test_validate_off_imports_non_record_elements(client: redis.Redis) -> None:
    """``validate=False`` restores elements that are not message records as they are."""
    lines = sample_file(client)
    lines[4] = json.dumps({"session": "a", "index": 2, "raw": "not json at all"}) + "\n"
    store = ChatHistoryStore(client)
    assert not import_sessions(store, lines).ok
    client.flushall()
    summary = import_sessions(store, lines, validate=False)
    assert summary.ok
    assert client.lrange("chat:{a}:messages", 2, 2) == [b"not json at all"]


def test_bad_options_are_rejected() -> None:
    """A bad chunk size or a lone string as session_ids fails before any I/O."""
    store = ChatHistoryStore(redis.Redis(port=1))  # never connected
    with pytest.raises(InvalidOptionError):
        export_sessions(store, io.StringIO(), chunk_size=0)
    with pytest.raises(InvalidOptionError):
        import_sessions(store, [], session_ids="abc")


# --- migrate -------------------------------------------------------------------------------


def community_store(client: redis.Redis, key_prefix: str = "message_store:") -> ChatHistoryStore:
    return ChatHistoryStore(client, layout=CommunityLayout(key_prefix))


@pytest.mark.parametrize("name", [s for s in SCENARIO_PLANS if s != "S5"])
def test_migrate_community_native_community_round_trips_fixtures(
    client: redis.Redis, name: str
) -> None:
    """langchain-community's own keys, moved to native and back, are byte for byte what it
    wrote: keys, elements, order, ttl, and nothing else left in the database."""
    data = load_fixture(COMMUNITY)["scenarios"][name]
    load_keys(client, data["keys"])
    prefix = SCENARIO_PLANS[name].get("key_prefix", "message_store:")
    community, native = community_store(client, prefix), ChatHistoryStore(client)

    there = migrate_sessions(community, native, move=True)
    assert there.ok, there.problems
    assert there.moved == there.sessions == len(data["keys"])
    assert all(not key.startswith(prefix.encode()) for key, _, _ in dump_lists(client))
    back = migrate_sessions(native, community, move=True)
    assert back.ok, back.problems
    assert back.moved == len(data["keys"])

    ours, theirs = dump_lists(client), fixture_lists(data["keys"])
    assert [(key, elements) for key, _, elements in ours] == [
        (key, elements) for key, _, elements in theirs
    ]
    for (_, our_ttl, _), (_, their_ttl, _) in zip(ours, theirs, strict=True):
        assert (our_ttl == their_ttl == -1) or (their_ttl - 2 <= our_ttl <= their_ttl)
    assert client.dbsize() == len(data["keys"])


def test_migrate_memorystore_native_and_back(client: redis.Redis) -> None:
    """Memorystore's keys go to native and back unchanged; native keys created on the same
    server are not taken for memorystore sessions (it lists every LIST)."""
    data = load_fixture(MEMORYSTORE)["scenarios"]["S4"]
    load_keys(client, data["keys"])
    memorystore, native = ChatHistoryStore(client, layout="memorystore"), ChatHistoryStore(client)
    there = migrate_sessions(memorystore, native, move=True, chunk_size=1)
    assert there.ok and there.moved == 5
    back = migrate_sessions(native, memorystore, move=True)
    assert back.ok and back.moved == 5
    assert dump_lists(client) == fixture_lists(data["keys"])


def test_migrate_copy_keeps_source_and_verifies(client: redis.Redis) -> None:
    """Without move both copies stay; a re-run copies nothing."""
    community, native = community_store(client), ChatHistoryStore(client)
    community.append("s", records(5))
    first = migrate_sessions(community, native, chunk_size=2)
    assert first.ok and (first.sessions, first.messages, first.moved) == (1, 5, 0)
    assert native.messages("s") == community.messages("s") == records(5)
    again = migrate_sessions(community, native)
    assert again.ok and (again.messages, again.already_present) == (0, 5)


def test_migrate_dry_run_writes_and_deletes_nothing(client: redis.Redis) -> None:
    community, native = community_store(client), ChatHistoryStore(client)
    community.append("s", records(3))
    before = dump_lists(client)
    summary = migrate_sessions(community, native, move=True, dry_run=True)
    assert summary.ok and (summary.sessions, summary.messages, summary.moved) == (1, 3, 0)
    assert dump_lists(client) == before


def test_migrate_never_deletes_an_unverified_source(client: redis.Redis) -> None:
    """If the target ends up with other content than the source, the source is kept."""
    community, native = community_store(client), ChatHistoryStore(client)
    community.append("s", records(3))
    native.append("s", [*records(3), record("extra")])  # holds more than the source
    summary = migrate_sessions(community, native, move=True)
    assert not summary.ok and summary.moved == 0 and summary.sessions == 0
    assert "not verified: the target holds 4 messages" in summary.problems[0].reason
    assert community.messages("s") == records(3)


def test_migrate_conflict_keeps_both(client: redis.Redis) -> None:
    community, native = community_store(client), ChatHistoryStore(client)
    community.append("s", records(3))
    native.append("s", [record("other")])
    summary = migrate_sessions(community, native, move=True)
    assert "different messages" in summary.problems[0].reason
    assert community.count("s") == 3 and native.count("s") == 1
    replaced = migrate_sessions(community, native, move=True, replace=True)
    assert replaced.ok and replaced.moved == 1 and native.messages("s") == records(3)
    assert community.count("s") == 0


def test_migrate_same_key_is_refused(client: redis.Redis) -> None:
    """Memorystore to community with an empty prefix names the same key: reported, kept."""
    memorystore = ChatHistoryStore(client, layout="memorystore")
    memorystore.append("s", records(2))
    summary = migrate_sessions(memorystore, community_store(client, ""), move=True)
    assert "same key" in summary.problems[0].reason
    assert memorystore.messages("s") == records(2)


def test_migrate_between_servers_resumes_after_interruption(
    client: redis.Redis, second_server: EmbeddedRedis
) -> None:
    """A cross-server move stopped midway, then run again, copies every message once and
    deletes each source session only after its copy is verified."""
    community = community_store(client)
    for n in range(3):
        community.append(f"s{n}", records(5, f"s{n}-"))
    other = second_server.client()
    target = ChatHistoryStore(other)

    calls = 0

    def crash_midway(summary: TransferSummary) -> None:
        nonlocal calls
        calls += 1
        if calls == 4:
            raise KeyboardInterrupt("simulated interruption")

    with pytest.raises(KeyboardInterrupt):
        migrate_sessions(community, target, move=True, chunk_size=2, progress=crash_midway)
    assert 0 < sum(target.count(f"s{n}") for n in range(3)) < 15
    assert sum(community.count(f"s{n}") for n in range(3)) > 0  # unverified ones kept
    summary = migrate_sessions(community, target, move=True, chunk_size=2)
    assert summary.ok, summary.problems
    for n in range(3):
        assert target.messages(f"s{n}") == records(5, f"s{n}-")
    assert client.dbsize() == 0  # lists and their token sets moved away
    other.close()


def test_migrate_named_sessions(client: redis.Redis) -> None:
    community, native = community_store(client), ChatHistoryStore(client)
    community.append("a", records(1))
    community.append("b", records(1))
    summary = migrate_sessions(community, native, session_ids=["b", "missing"])
    assert summary.sessions == 1 and native.count("a") == 0 and native.count("b") == 1
    assert [p.session for p in summary.problems] == ["missing"]


def test_fixture_elements_are_raw_in_the_file(client: redis.Redis) -> None:
    """The exported ``raw`` strings are the fixture's stored elements exactly."""
    (entry,) = load_fixture(COMMUNITY)["scenarios"]["S1"]["keys"]
    load_keys(client, [entry])
    text = export_text(community_store(client))
    raws = [json.loads(line)["raw"].encode() for line in lines_of(text) if '"index"' in line]
    assert raws == [b64(e) for e in entry["elements_b64"]][::-1]


def test_memorystore_export_leaves_out_lists_that_are_not_sessions(client: redis.Redis) -> None:
    """The memorystore layout sees every LIST: other layouts' keys and lists that hold no
    messages are skipped and counted, unless named."""
    memorystore = ChatHistoryStore(client, layout="memorystore")
    memorystore.append("chat-1", records(2))
    ChatHistoryStore(client).append("n", records(1))  # chat:{n}:messages
    ChatHistoryStore(client, layout="community").append("c", records(1))  # message_store:c
    client.rpush("job-queue", "task-1")
    summary = export_sessions(memorystore, io.StringIO())
    assert summary.ok and (summary.sessions, summary.skipped) == (1, 3)
    named = export_sessions(memorystore, io.StringIO(), session_ids=["job-queue"])
    assert named.sessions == 1
    native = ChatHistoryStore(client)
    moved = migrate_sessions(memorystore, native, move=True)
    assert moved.ok and moved.moved == 1 and moved.skipped == 3
    assert client.lrange("job-queue", 0, -1) == [b"task-1"]


# ------------------------------------------------------------------ metadata (issue 8, item 7)


def owned_session(store: ChatHistoryStore, session_id: str = "chat-7") -> Any:
    store.create_session(session_id, owner="user-42", title="Trip to Lisbon")
    store.append(session_id, records(2))
    return store.session_info(session_id)


def test_export_import_restores_metadata_and_owner_index(client: redis.Redis) -> None:
    """The session line carries owner, title and times; an import into an empty database
    restores them and lists the session under its owner again."""
    store = ChatHistoryStore(client)
    before = owned_session(store)
    text = export_text(store)
    session_line = json.loads(lines_of(text)[1])
    assert session_line["meta"] == {
        "owner": "user-42",
        "title": "Trip to Lisbon",
        "created": int(before.created.timestamp() * 1000),
        "last_activity": int(before.last_activity.timestamp() * 1000),
    }
    client.flushall()
    summary = import_sessions(store, lines_of(text))
    assert summary.ok, summary.problems
    assert store.session_info("chat-7") == before
    assert [info.session_id for info in store.owner_sessions("user-42").sessions] == ["chat-7"]
    again = import_sessions(store, lines_of(text))  # idempotent
    assert again.ok and store.session_info("chat-7") == before


def test_import_keeps_another_owners_session_unless_replace(client: redis.Redis) -> None:
    store = ChatHistoryStore(client)
    owned_session(store)
    text = export_text(store)
    client.flushall()
    store.create_session("chat-7", owner="someone-else")
    summary = import_sessions(store, lines_of(text))
    assert [problem.kind for problem in summary.problems] == ["conflict"]
    assert store.session_info("chat-7").owner == "someone-else"
    replaced = import_sessions(store, lines_of(text), replace=True)
    assert replaced.ok, replaced.problems
    assert store.session_info("chat-7").owner == "user-42"


def test_named_session_with_metadata_but_no_messages_is_exported(client: redis.Redis) -> None:
    store = ChatHistoryStore(client)
    store.create_session("empty", owner="user-42", title="nothing yet")
    text = export_text(store, session_ids=["empty"])
    client.flushall()
    assert import_sessions(store, lines_of(text)).ok
    info = store.session_info("empty")
    assert (info.owner, info.title, info.message_count) == ("user-42", "nothing yet", 0)
    assert store.owner_sessions("user-42").sessions[0].session_id == "empty"


def test_migrate_move_carries_metadata_and_cleans_the_source(client: redis.Redis) -> None:
    """After migrate --move the session is in its owner's list in the target layout with
    its title and times; the source has no metadata hash and no owner index entry left."""
    source = ChatHistoryStore(client, layout="community")
    target = ChatHistoryStore(client, layout="native")
    before = owned_session(source)
    summary = migrate_sessions(source, target, move=True)
    assert summary.ok and summary.moved == 1, summary.problems
    after = target.session_info("chat-7")
    assert (after.owner, after.title, after.created, after.last_activity) == (
        before.owner,
        before.title,
        before.created,
        before.last_activity,
    )
    assert [info.session_id for info in target.owner_sessions("user-42").sessions] == ["chat-7"]
    layout = source.config.layout
    assert not client.exists(layout.meta_key("chat-7"), layout.messages_key("chat-7"))
    assert client.zscore(layout.owner_index_key("user-42"), "chat-7") is None
    assert source.owner_sessions("user-42").sessions == ()


def test_migrate_copy_keeps_the_source_metadata(client: redis.Redis) -> None:
    source = ChatHistoryStore(client, layout="memorystore")
    target = ChatHistoryStore(client, layout="native")
    before = owned_session(source)
    assert migrate_sessions(source, target).ok
    assert source.session_info("chat-7") == before
    assert target.session_info("chat-7").title == before.title


# ------------------------------------------- non-UTF-8 through decode_responses (item 10)


def test_export_and_migrate_through_a_decoding_client(redis_url: str, client: redis.Redis) -> None:
    """A client with decode_responses=True reads a non-UTF-8 element as bytes here, so the
    export and the migration carry it byte for byte instead of aborting."""
    element = b'{"type": "human", "data": {"content": "\xff"}}'
    client.rpush("chat:{s}:messages", b'{"type": "human", "data": {"content": "ok"}}', element)
    decoding = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        store = ChatHistoryStore(decoding)
        text = export_text(store)
        assert b64(json.loads(lines_of(text)[3])["raw_b64"]) == element
        target = ChatHistoryStore(decoding, layout="community")
        assert migrate_sessions(store, target).ok
        assert client.lindex("message_store:s", 0) == element
    finally:
        decoding.close()


# ----------------------------------------------------- bounded lines (item 11), headers (16)


class LazyStream(io.RawIOBase):
    """A binary stream of ``head``, ``size`` bytes of ``fill``, then ``tail``, made as read."""

    def __init__(self, head: bytes, fill: bytes, size: int, tail: bytes) -> None:
        super().__init__()
        self.parts = [head, tail]
        self.fill, self.left = fill, size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self.parts[0]:
            size = min(len(view), len(self.parts[0]))
            view[:size], self.parts[0] = self.parts[0][:size], self.parts[0][size:]
            return size
        if self.left:
            size = min(len(view), self.left)
            view[:size] = self.fill * size
            self.left -= size
            return size
        size = min(len(view), len(self.parts[1]))
        view[:size], self.parts[1] = self.parts[1][:size], self.parts[1][size:]
        return size


def small_export(client: redis.Redis) -> list[bytes]:
    ChatHistoryStore(client).append("s", records(2))
    text = export_text(ChatHistoryStore(client))
    client.flushall()
    return [line.encode() for line in lines_of(text)]


def test_a_huge_line_is_reported_without_being_held(client: redis.Redis) -> None:
    """A 64 MB line is reported with its line number; memory stays near the line limit."""
    import tracemalloc

    lines = small_export(client)
    stream = io.BufferedReader(
        LazyStream(b"".join(lines[:3]), b"x", 64 << 20, b"\n" + b"".join(lines[3:]))
    )
    tracemalloc.start()
    try:
        summary = import_sessions(ChatHistoryStore(client), stream, max_message_bytes=1000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, peak
    assert [(p.kind, p.line) for p in summary.problems] == [("bad_line", 4)]
    assert "longer than" in summary.problems[0].reason
    assert ChatHistoryStore(client).count("s") == 1  # up to the line before


def test_a_flood_of_blank_lines_is_read_in_linear_time(client: redis.Redis) -> None:
    """512 MiB of empty lines before the data take well under a second per 100 MB; the
    line numbers after them stay right."""
    import time

    lines = small_export(client)
    flood = 512 << 20
    stream = io.BufferedReader(LazyStream(lines[0], b"\n", flood, b"".join(lines[1:]) + b"{bad\n"))
    started = time.perf_counter()
    summary = import_sessions(ChatHistoryStore(client), stream)
    assert time.perf_counter() - started < 20
    assert ChatHistoryStore(client).count("s") == 2
    assert [(p.kind, p.line) for p in summary.problems] == [("bad_line", flood + len(lines) + 1)]


def test_files_that_are_not_exports_or_lost_their_header(client: redis.Redis) -> None:
    lines = [line.decode() for line in small_export(client)]
    other = check_lines(["name,age\n", "bob,3\n"])
    assert [p.reason.split(":")[0] for p in other.problems] == ["not a redis-chat-history export"]
    headless = check_lines(lines[1:])
    assert [(p.kind, p.line) for p in headless.problems] == [("bad_line", 1)]
    assert "header line" in headless.problems[0].reason and headless.messages == 2
    assert check_lines(lines).ok


def test_deeply_nested_lines_and_messages_are_bad_lines(client: redis.Redis) -> None:
    """An element nested ~1000 levels deep, or a line that is, is a bad line (no
    RecursionError); --no-validate still restores the element as it was."""
    lines = [line.decode() for line in small_export(client)]
    deep = '{"type": "human", "data": {"content": ' + "[" * 1000 + "]" * 1000 + "}}"
    message = json.dumps({"session": "s", "index": 2, "raw": deep}) + "\n"
    nested_line = "[" * 100_000 + "]" * 100_000 + "\n"
    bad = check_lines([*lines[:4], message, nested_line, lines[4]])
    assert [(p.kind, p.line) for p in bad.problems] == [("bad_line", 5), ("bad_line", 6)]
    assert "levels deep" in bad.problems[0].reason
    end = json.dumps({"end": True, "sessions": 1, "messages": 3}) + "\n"
    store = ChatHistoryStore(client)
    restored = import_sessions(store, [*lines[:4], message, end], validate=False)
    assert restored.ok, restored.problems
    assert client.lindex("chat:{s}:messages", 2) == deep.encode()
