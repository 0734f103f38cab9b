"""The ``memories`` command end to end: items written through RedisStore on the fixture
redis-server, then listed, filtered, paged and shown through click's CliRunner."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from click.testing import CliRunner, Result

pytest.importorskip("langgraph.store.base")

from redis_chat_history.cli import main
from redis_chat_history.langgraph import RedisStore

CLEAN_ENV = {"REDIS_CHAT_HISTORY_URL": None, "REDIS_URL": None, "REDIS_PASSWORD": None}


def run(*args: str) -> Result:
    result = CliRunner().invoke(main, list(args), env=CLEAN_ENV)
    assert "Traceback" not in result.output, result.output
    return result


def run_json(*args: str, code: int = 0) -> Any:
    result = run(*args, "--json")
    assert result.exit_code == code, (result.stdout, result.stderr)
    return json.loads(result.stdout)


@pytest.fixture
def store(redis_url: str) -> Iterator[RedisStore]:
    client = redis.Redis.from_url(redis_url)
    yield RedisStore(client, prefix=f"mem{os.urandom(3).hex()}")
    client.close()


def keys_of(found: Any) -> list[tuple[str, str]]:
    return [(".".join(item["namespace"]), item["key"]) for item in found["items"]]


def test_memories_lists_filters_pages_and_shows(redis_url: str, store: RedisStore) -> None:
    store.put(("memories", "u1"), "food", {"kind": "food", "text": "likes ramen"})
    store.put(("memories", "u1"), "city", {"kind": "place", "text": "lives in Lisbon"})
    store.put(("memories", "u2"), "food", {"kind": "food", "text": "vegetarian\x1b[2K"})
    store.put(("prefs", "u1", "ui"), "theme", {"kind": "ui", "dark": True})
    common = ("--prefix", store.prefix, "--url", redis_url)

    everything = run_json("memories", *common)
    assert keys_of(everything) == [
        (".".join(item.namespace), item.key) for item in store.search((), limit=50)
    ]
    assert len(everything["items"]) == 4
    assert keys_of(run_json("memories", "memories", *common)) == [
        ("memories.u1", "food"),
        ("memories.u1", "city"),
        ("memories.u2", "food"),
    ]
    assert keys_of(run_json("memories", "memories.u1", *common)) == [
        ("memories.u1", "food"),
        ("memories.u1", "city"),
    ]
    food = run_json("memories", "memories", "--filter", 'kind="food"', *common)
    assert keys_of(food) == [("memories.u1", "food"), ("memories.u2", "food")]
    assert keys_of(run_json("memories", "--filter", "dark=true", *common)) == [
        ("prefs.u1.ui", "theme")
    ]
    page = run_json("memories", "memories", "--limit", "1", "--offset", "1", *common)
    assert keys_of(page) == [("memories.u1", "city")]

    shown = run_json("memories", "memories.u1", "--key", "city", *common)["item"]
    assert shown["value"] == {"kind": "place", "text": "lives in Lisbon"}
    assert shown["created_at"] <= shown["updated_at"]
    people = run("memories", "memories.u1", "--key", "city", *common)
    assert people.exit_code == 0 and "lives in Lisbon" in people.stdout

    table = run("memories", "memories", *common)
    assert table.exit_code == 0 and "ramen" in table.stdout
    assert "\x1b" not in table.stdout and "3 items" in table.stderr

    assert run_json("memories", "--namespaces", *common)["namespaces"] == [
        ["memories", "u1"],
        ["memories", "u2"],
        ["prefs", "u1", "ui"],
    ]
    depth = run_json("memories", "prefs", "--namespaces", "--max-depth", "2", *common)
    assert depth["namespaces"] == [["prefs", "u1"]]


def test_memories_not_found_and_usage_errors(redis_url: str, store: RedisStore) -> None:
    store.put(("memories", "u1"), "food", {"text": "likes ramen"})
    common = ("--prefix", store.prefix, "--url", redis_url)
    assert run_json("memories", "nothing", *common, code=1)["items"] == []
    missing = run("memories", "memories.u1", "--key", "nope", *common)
    assert missing.exit_code == 1 and "no item 'nope'" in missing.stderr
    assert run("memories", "--key", "food", *common).exit_code == 2
    assert run("memories", "a..b", *common).exit_code == 2
    assert run("memories", "--filter", "novalue", *common).exit_code == 2


def test_memories_with_another_shard_depth(redis_url: str) -> None:
    """The CLI reads a store made with shard_depth=1 given --shard-depth 1, and refuses
    (exit 2, naming the depth) without it, leaving the store's registry as it was."""
    client = redis.Redis.from_url(redis_url)
    prefix = f"mem{os.urandom(3).hex()}"
    store = RedisStore(client, prefix=prefix, shard_depth=1)
    store.put(("memories", "u1"), "food", {"text": "likes ramen"})
    common = ("--prefix", prefix, "--url", redis_url)
    registry = client.zrange(f"{prefix}:namespaces", 0, -1)
    refused = run("memories", "--namespaces", *common)
    assert refused.exit_code == 2 and "shard_depth=1" in refused.stderr
    assert client.zrange(f"{prefix}:namespaces", 0, -1) == registry
    found = run_json("memories", "memories", "--shard-depth", "1", *common)
    assert [item["key"] for item in found["items"]] == ["food"]
    client.close()
