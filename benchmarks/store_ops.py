"""The LangGraph store's everyday operations against the floor:
``python -m benchmarks.store_ops [--reps 10]``.

On a non-persistent redis-server started here, one user's namespace of 100 memories
(~200-byte values): for each operation, ``RedisStore`` (sync, over a URL) against raw
redis-py doing the least that answers the same question over the same keys (the floor),
and LangGraph's ``InMemoryStore`` (in-process, no server: what the cost of a server is).
Systems are interleaved per repetition (benchmarks/harness.py) and compared by paired
ratios (benchmarks/stats.py).

- put: update one item (value, updated stamp; the floor: one pipelined HSET + ZADD);
- get: read one item (the floor: HMGET);
- search: the first 10 items of the namespace (the floor: ZRANGE, then HMGET of each,
  pipelined: two round trips, where the store's script takes one);
- filtered search: the 10 items of one kind among the 100 (the floor: every item's value
  read in two round trips and filtered in Python).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import redis
from langgraph.store.memory import InMemoryStore

from redis_chat_history.embedded import EmbeddedRedis
from redis_chat_history.langgraph_store import RedisStore

from .harness import SyncRunner, measure
from .provenance import source_revision, version
from .stats import Summary, format_ratio, format_seconds, paired_ratios

RESULTS = Path(__file__).parent / "results"
NAMESPACE = ("memories", "user-42")
KINDS = ("food", "place", "work", "family", "travel", "music", "sport", "health", "pet", "book")


def _value(i: int) -> dict[str, Any]:
    return {"kind": KINDS[i % 10], "text": f"memory {i}: " + "likes things " * 14}


def _floor(client: redis.Redis, store: RedisStore) -> dict[str, Callable[[], Any]]:
    """Raw redis-py over the store's own keys."""
    keys = store._keys
    item, nsz = keys.item(NAMESPACE, "m7")
    head = keys.head(keys.shard(NAMESPACE))
    path = "".join(f"{label}." for label in NAMESPACE)
    encoded = json.dumps(_value(7))

    def put() -> None:
        with client.pipeline(transaction=False) as pipe:
            pipe.hset(item, mapping={"value": encoded, "updated": "1"})
            pipe.zadd(nsz, {"m7": 1}, nx=True)
            pipe.execute()

    def get() -> Any:
        value, created, updated = client.hmget(item, "value", "created", "updated")
        return json.loads(value), int(created), int(updated)

    def first(count: int | None) -> list[Any]:
        """The first ``count`` items' values (None: all)."""
        members = client.zrange(nsz, 0, -1 if count is None else count - 1)
        with client.pipeline(transaction=False) as pipe:
            for member in members:
                pipe.hmget(f"{head}i:{path}.{member.decode()}", "value", "created", "updated")
            return [json.loads(row[0]) for row in pipe.execute()]

    def filtered() -> list[Any]:
        return [value for value in first(None) if value["kind"] == "food"][:10]

    return {
        "put": put,
        "get": get,
        "search": lambda: first(10),
        "filtered search": filtered,
    }


def _ours(store: Any) -> dict[str, Callable[[], Any]]:
    value = _value(7)
    return {
        "put": lambda: store.put(NAMESPACE, "m7", value),
        "get": lambda: store.get(NAMESPACE, "m7"),
        "search": lambda: store.search(NAMESPACE, limit=10),
        "filtered search": lambda: store.search(NAMESPACE, filter={"kind": "food"}, limit=10),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--min-sample-ms", type=float, default=200)
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args(argv)
    rows: list[dict[str, Any]] = []
    with EmbeddedRedis() as server:
        server_version = server.client().info("server")["redis_version"]
        store = RedisStore(server.url, prefix="bench")
        memory = InMemoryStore()
        for i in range(100):
            store.put(NAMESPACE, f"m{i}", _value(i))
            memory.put(NAMESPACE, f"m{i}", _value(i))
        client = redis.Redis.from_url(server.url)
        floor, ours, in_memory = _floor(client, store), _ours(store), _ours(memory)
        assert [i.value for i in store.search(NAMESPACE, limit=10)] == floor["search"]()
        assert [i.value for i in store.search(NAMESPACE, filter={"kind": "food"})] == floor[
            "filtered search"
        ]()
        for name in floor:
            sys.stderr.write(f"== {name}\n")
            runners = {
                "ours": SyncRunner(ours[name]),
                "floor": SyncRunner(floor[name]),
                "InMemoryStore": SyncRunner(in_memory[name]),
            }
            found = measure(runners, reps=args.reps, min_sample=args.min_sample_ms / 1000)
            per_op = found.per_op
            rows.append(
                {
                    "operation": name,
                    "ours_s": statistics.median(per_op["ours"]),
                    "floor_s": statistics.median(per_op["floor"]),
                    "memory_s": statistics.median(per_op["InMemoryStore"]),
                    "ours_over_floor": Summary.of(
                        paired_ratios(per_op["ours"], per_op["floor"])
                    ).as_dict(),
                }
            )
        client.close()
    lines = [
        "# The LangGraph store's everyday operations",
        "",
        f"redis-server {server_version} on loopback, no persistence; one namespace of 100",
        f"items; {args.reps} interleaved repetitions; redis-chat-history at {source_revision()},",
        f"langgraph-checkpoint {version('langgraph-checkpoint')}, redis-py {redis.__version__}.",
        "",
        "| operation | ours | floor (raw redis-py) | ours / floor | InMemoryStore (no server) |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        ratio = format_ratio(Summary(**row["ours_over_floor"]))
        lines.append(
            f"| {row['operation']} | {format_seconds(row['ours_s'])} "
            f"| {format_seconds(row['floor_s'])} | {ratio} | {format_seconds(row['memory_s'])} |"
        )
    report = "\n".join(lines) + "\n"
    sys.stdout.write(report)
    if not args.no_save:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "store_ops.md").write_text(report)
        (RESULTS / "store_ops.json").write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
