"""Export, import and migrate: throughput and peak memory (the benchmark's transfer section).

``python -m benchmarks.transfer [--messages N]`` runs this section alone (and writes
``results/transfer.md`` and ``transfer.json``); ``python -m benchmarks.run`` runs it after
the workloads (``--transfer-messages``, default 100,000; 0 skips it).

A fresh redis-server is seeded with N messages: N/1,000 sessions of 1,000 realistic chat
messages (~320 bytes each, :mod:`benchmarks.data`), in the community layout exactly as
langchain-community writes them. Then each step runs in a Python process of its own, so
its peak resident memory (``VmHWM``) is its own and includes nothing of the seeding:

1. ``export_sessions`` of every session to a JSON Lines file on disk;
2. ``FLUSHALL``, then ``import_sessions`` of that file into the same layout, after which
   the server's ``DEBUG DIGEST`` of the whole dataset must equal the one taken before the
   export (the data came back byte for byte);
3. ``migrate_sessions`` community -> native with ``move=True`` (copy, verify every message
   against the source, delete the source).

Each process also reports its resident memory after its imports and before any work: the
difference to the peak is what the transfer itself used.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

from redis_chat_history import ChatHistoryStore
from redis_chat_history.embedded import EmbeddedRedis, find_server_binary, server_version
from redis_chat_history.transfer import export_sessions, import_sessions, migrate_sessions

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
MESSAGES_PER_SESSION = 1000
DEFAULT_MESSAGES = 100_000

STEPS = {
    "export": "export (community layout -> JSON Lines file)",
    "import": "import (file -> community layout, after FLUSHALL)",
    "migrate": "migrate --move (community -> native, verified)",
}


def _peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MiB.

    On Linux ``VmHWM`` of /proc/self/status: ``ru_maxrss`` would also count the parent,
    because Linux carries the forking process's peak over into the exec'd child.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _child(step: str, url: str, path: str) -> dict[str, Any]:
    """One step, run in its own process; returns what it measured."""
    baseline = _peak_rss_mb()
    client = redis.Redis.from_url(url)
    community = ChatHistoryStore(client, layout="community")
    started = time.perf_counter()
    if step == "export":
        with open(path, "w", encoding="ascii", newline="") as out:
            summary = export_sessions(community, out)
    elif step == "import":
        with open(path, "rb") as lines:
            summary = import_sessions(community, lines)
    else:
        summary = migrate_sessions(community, ChatHistoryStore(client), move=True)
    seconds = time.perf_counter() - started
    client.close()
    return {
        "seconds": seconds,
        "sessions": summary.sessions,
        "messages": summary.messages,
        "bytes": summary.bytes,
        "ok": summary.ok,
        "baseline_rss_mb": round(baseline, 1),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
    }


def _run_step(step: str, url: str, path: str) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.transfer", "--child", step, url, path],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"the {step} step failed:\n{completed.stderr}")
    result: dict[str, Any] = json.loads(completed.stdout)
    if not result["ok"]:
        raise RuntimeError(f"the {step} step reported problems: {result}")
    result["step"] = step
    result["messages_per_s"] = round(result["messages"] / result["seconds"])
    return result


def _seed(client: redis.Redis, messages: int) -> float:
    """Write ``messages`` messages (1,000 per session) newest first, as langchain-community
    does; return the mean element size."""
    from .data import conversation, encode  # langchain-core, needed only here

    elements = [encode(m).encode() for m in conversation(MESSAGES_PER_SESSION)]
    sessions = max(1, messages // MESSAGES_PER_SESSION)
    for first in range(0, sessions, 20):
        with client.pipeline(transaction=False) as pipe:
            for number in range(first, min(sessions, first + 20)):
                pipe.lpush(f"message_store:user-{number:05d}/chat", *elements)
            pipe.execute()
    return sum(map(len, elements)) / len(elements)


def _debug_args() -> list[str]:
    # DEBUG (for DEBUG DIGEST) is always on before Redis 7; from 7.0 it must be enabled.
    return (
        ["--enable-debug-command", "local"] if server_version(find_server_binary()) >= (7,) else []
    )


def measure(messages: int, log: Any = print) -> dict[str, Any]:
    """Seed a fresh server, run the three steps, check the round trip; return the results."""
    with (
        EmbeddedRedis(extra_args=_debug_args()) as server,
        tempfile.TemporaryDirectory() as tmp,
    ):
        client = server.client()
        log(f"  seeding {messages:,} messages")
        mean_bytes = _seed(client, messages)
        digest = client.execute_command("DEBUG", "DIGEST")
        path = os.path.join(tmp, "export.jsonl")
        steps = []
        for step in STEPS:
            if step == "import":
                client.flushall()
            log(f"  {step}")
            steps.append(_run_step(step, server.url, path))
            if step == "import":
                restored = client.execute_command("DEBUG", "DIGEST")
                if restored != digest:
                    raise RuntimeError("after export, FLUSHALL and import the dataset differs")
        native_messages = sum(
            client.llen(key) for key in client.scan_iter(match="chat:{*}:messages")
        )
        if native_messages != messages or client.dbsize() != messages // MESSAGES_PER_SESSION:
            raise RuntimeError("the migration did not leave exactly the native lists")
        info = client.info("server")
        client.close()
    return {
        "messages": messages,
        "sessions": messages // MESSAGES_PER_SESSION,
        "mean_message_bytes": round(mean_bytes),
        "file_bytes": steps[0]["bytes"],
        "round_trip_identical": True,
        "redis_server": info["redis_version"],
        "steps": steps,
    }


def markdown(result: dict[str, Any]) -> str:
    """The section of the report: one row per step."""
    lines = [
        f"## Export / import / migrate ({result['messages']:,} messages)",
        "",
        "| step | time | messages/s | MB/s of JSON Lines | peak memory (RSS) | before it "
        "started | growth |",
        "|---|---|---|---|---|---|---|",
    ]
    for step in result["steps"]:
        rate = f"{step['bytes'] / step['seconds'] / 1e6:.0f}" if step["step"] != "migrate" else "—"
        peak, baseline = step["peak_rss_mb"], step["baseline_rss_mb"]
        lines.append(
            f"| {STEPS[step['step']]} | {step['seconds']:.2f} s | {step['messages_per_s']:,} "
            f"| {rate} | {peak:.1f} MiB | {baseline:.1f} MiB | {peak - baseline:.1f} MiB |"
        )
    lines += [
        "",
        f"{result['sessions']:,} sessions of 1,000 messages (~{result['mean_message_bytes']} "
        f"bytes each), a {result['file_bytes'] / 1e6:,.0f} MB file. Each step runs in its own "
        "process; peak memory is that process's peak resident set (`VmHWM`), and \"before it "
        'started" its resident set after loading Python and the libraries. After export, '
        "`FLUSHALL` and import, the server's `DEBUG DIGEST` equals the original's: the data "
        "came back byte for byte.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    if args[:1] == ["--child"]:
        print(json.dumps(_child(*args[1:4])))
        return 0
    parser = argparse.ArgumentParser(prog="python -m benchmarks.transfer", description=__doc__)
    parser.add_argument("--messages", type=int, default=DEFAULT_MESSAGES)
    parser.add_argument("--no-save", action="store_true", help="print only, write no files")
    options = parser.parse_args(args)
    if options.messages < MESSAGES_PER_SESSION:
        parser.error(f"--messages must be at least {MESSAGES_PER_SESSION}")

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    result = measure(options.messages, log)
    report = markdown(result)
    print(report)
    if not options.no_save:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "transfer.md").write_text(report)
        (RESULTS / "transfer.json").write_text(json.dumps(result, indent=2) + "\n")
        log(f"wrote {RESULTS / 'transfer.md'} and {RESULTS / 'transfer.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
