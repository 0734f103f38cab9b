"""Exact semantic search in the LangGraph store: ``python -m benchmarks.store_search``.

Where should the cosine run? One namespace of N items, each with one unit float32 vector
of D dimensions (random), on a non-persistent redis-server started here on a free
loopback port; a query ranks all N and returns the top 10. Measured per (N, D):

- numpy (as shipped, with the ``vectors`` extra): ``RedisStore.search(ns, query=...,
  limit=10)``: the search script returns every match with its packed vectors and the
  client scores them in one matrix product, and pages;
- python (as shipped without numpy): the same, scored in pure Python (``memoryview`` and
  ``sum(map(mul, ...))``);
- lua: the same script in its ``score`` mode unpacks every vector (``struct.unpack``),
  scores and sorts in the server, and returns the 10.

The modes alternate within each repetition. For each: the median end-to-end latency, and
the median server time per search (the growth of EVALSHA's ``usec`` in ``INFO
commandstats``): while a script runs the whole server waits, so that column is how long
every other client is blocked.

    python -m benchmarks.store_search [--reps 5] [--sizes 1000,10000] [--dims 384,1536]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from array import array
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import redis
from langgraph.store.base import PutOp

from redis_chat_history import _store_core as core
from redis_chat_history import _vectors
from redis_chat_history._store_lua import SEARCH_SCRIPT
from redis_chat_history.embedded import EmbeddedRedis
from redis_chat_history.langgraph_store import RedisStore

RESULTS = Path(__file__).parent / "results"
NAMESPACE = ("bench", "user")


class RandomVectors:
    """An embedder returning a seeded random vector per text (the same text, the same
    vector), so loading needs no model."""

    def __init__(self, dims: int) -> None:
        self.dims = dims

    def __call__(self, texts: list[str]) -> list[list[float]]:
        found = []
        for text in texts:
            rng = random.Random(text)
            found.append([rng.random() - 0.5 for _ in range(self.dims)])
        return found


def _log(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def _server_us(admin: redis.Redis) -> float:
    """Microseconds the server has spent in EVALSHA so far."""
    stats: dict[str, Any] = admin.info("commandstats")
    return float(stats.get("cmdstat_evalsha", {}).get("usec", 0.0))


def measure(n: int, dims: int, reps: int, server: EmbeddedRedis) -> dict[str, Any]:
    admin = server.client()
    admin.flushall()
    store = RedisStore(server.url, index={"dims": dims, "embed": RandomVectors(dims)})
    started = time.monotonic()
    for start in range(0, n, 250):
        chunk = range(start, min(n, start + 250))
        store.batch([PutOp(NAMESPACE, f"m{i}", {"text": f"memory {i}"}) for i in chunk])
    _log(f"   loaded {n} x {dims} in {time.monotonic() - started:.1f} s")
    raw = redis.Redis.from_url(server.url)
    raw.script_load(SEARCH_SCRIPT.text)
    keys = core.StoreKeys("lgstore", 2)
    shard = keys.shard(NAMESPACE)
    query_text = "what does the user like"
    query_vector = RandomVectors(dims)([query_text])[0]
    norm = sum(x * x for x in query_vector) ** 0.5
    unit = [x / norm for x in query_vector]
    packed = array("f", unit).tobytes()

    def lua() -> list[str]:
        args = (keys.head(shard), core.path_of(NAMESPACE), "", 0, 10, "0", packed, dims, "score")
        entries = raw.evalsha(SEARCH_SCRIPT.sha, 2, *keys.shard_keys(shard), *args)
        return [entry[1].decode() for entry in entries]

    def with_numpy() -> list[str]:
        return [item.key for item in store.search(NAMESPACE, query=query_text, limit=10)]

    def python() -> list[str]:
        numpy, _vectors.numpy = _vectors.numpy, None
        try:
            return with_numpy()
        finally:
            _vectors.numpy = numpy

    assert lua() == with_numpy() == python(), (lua(), with_numpy(), python())
    result: dict[str, Any] = {"items": n, "dims": dims}
    calls = {"lua": lua, "python": python}
    if _vectors.numpy is not None:
        calls["numpy"] = with_numpy
    times: dict[str, list[float]] = {name: [] for name in calls}
    server: dict[str, list[float]] = {name: [] for name in calls}
    for rep in range(reps):  # the modes alternate, so background load hits each
        for name in sorted(calls, reverse=rep % 2 == 1):
            before = _server_us(admin)
            begun = time.perf_counter()
            calls[name]()
            times[name].append(time.perf_counter() - begun)
            server[name].append(_server_us(admin) - before)
    for name in calls:
        result[name] = {
            "median_ms": round(statistics.median(times[name]) * 1000, 1),
            "server_ms": round(statistics.median(server[name]) / 1000, 1),
        }
        _log(f"   {name}: {result[name]}")
    raw.close()
    admin.close()
    return result


def markdown(rows: list[dict[str, Any]], version: str) -> str:
    modes = [("numpy", "client, numpy"), ("python", "client, pure Python"), ("lua", "Lua")]
    modes = [(name, title) for name, title in modes if name in rows[0]]
    lines = [
        "# Exact semantic search in the LangGraph store",
        "",
        f"redis-server {version} on loopback, no persistence; one namespace; a query scores",
        "every item and returns the top 10 (medians of the repetitions). For each way of",
        "scoring: `total` is the end-to-end latency, `server` the script's time in the server",
        "(the time every other client waits). `client, numpy` is the store with the vectors",
        "extra, `client, pure Python` without it; `Lua` scores in the search script.",
        "",
        "| items | dims | " + " | ".join(f"{t}: total | {t}: server" for _, t in modes) + " |",
        "|---:|---:|" + "---:|---:|" * len(modes),
    ]
    for row in rows:
        cells = " | ".join(
            f"{row[name]['median_ms']} ms | {row[name]['server_ms']} ms" for name, _ in modes
        )
        lines.append(f"| {row['items']:,} | {row['dims']} | {cells} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--dims", default="384,1536")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args(argv)
    rows = []
    with EmbeddedRedis() as server:
        version = server.client().info("server")["redis_version"]
        for n in (int(x) for x in args.sizes.split(",")):
            for dims in (int(x) for x in args.dims.split(",")):
                _log(f"== {n} items x {dims} dims")
                rows.append(measure(n, dims, args.reps, server))
    report = markdown(rows, version)
    sys.stdout.write(report)
    if not args.no_save:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "store_search.md").write_text(report)
        (RESULTS / "store_search.json").write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
