"""Turning measurements into results: the environment, the ratios, Markdown and JSON."""

from __future__ import annotations

import os
import platform
from typing import Any

import redis
import redis.utils

from redis_chat_history.embedded import EmbeddedRedis

from .harness import Measurement
from .provenance import source_revision, version
from .stats import Summary, format_ratio, format_seconds, paired_ratios
from .workloads import COMMUNITY, FLOOR, IN_MEMORY, OURS, Workload

MEMORYSTORE_NOTE = (
    "langchain-google-memorystore-redis (0.3.0, the latest) pins langchain-core<1.0 and "
    "redis<6, so it cannot be installed beside langchain-core 1.x; its class is not measured. "
    "It does the same Redis work as community (one RPUSH + EXPIRE per message, LRANGE 0 -1 "
    "for every read) on a client the caller passes in."
)

SHARE = "ours/community, history share"


def environment(server: EmbeddedRedis, client: redis.Redis) -> dict[str, str]:
    """Versions of everything that affects the numbers."""
    info = client.info("server")
    return {
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "cpus": str(os.cpu_count()),
        "redis-server": f"{info['redis_version']} ({server.binary})",
        "redis-py": redis.__version__,
        "hiredis": (
            f"{version('hiredis')} (in use)" if redis.utils.HIREDIS_AVAILABLE else "absent"
        ),
        "orjson": version("orjson"),
        "langchain-core": version("langchain-core"),
        "langchain-community": version("langchain-community"),
        "redis-chat-history": f"{version('redis-chat-history')} at {source_revision()}",
        "langchain-google-memorystore-redis": "not installable beside langchain-core 1.x",
    }


def summarise(
    workload: Workload, measurement: Measurement, notes: list[str] | None = None
) -> dict[str, Any]:
    """The JSON record of one workload: per-system times, paired ratios, the verdict and
    any notes the workload made while it was built (e.g. connections opened)."""
    per_op = measurement.per_op
    target = workload.target
    pairs = [(name, FLOOR) for name in per_op if name != FLOOR] + [(OURS, COMMUNITY)]
    if target.against not in (FLOOR, COMMUNITY):
        pairs.append((OURS, target.against))
    ratios = {
        f"{a}/{b}": Summary.of(paired_ratios(per_op[a], per_op[b]))
        for a, b in pairs
        if a in per_op and b in per_op
    }
    if IN_MEMORY in per_op:
        # Each history's share of the turn: its time minus the storage-free turn's.
        shares = {
            name: [t - base for t, base in zip(per_op[name], per_op[IN_MEMORY], strict=True)]
            for name in (OURS, COMMUNITY)
        }
        ratios[SHARE] = Summary.of(paired_ratios(shares[OURS], shares[COMMUNITY]))
    verdict = ratios[f"{OURS}/{target.against}"]
    return {
        "number": workload.number,
        "name": workload.name,
        "title": workload.title,
        "description": workload.description,
        "target": {"ratio": f"{OURS}/{target.against}", "max": target.limit},
        "met": verdict.median <= target.limit,
        "ops_per_sample": measurement.ops_per_sample,
        "seconds_per_op": {name: Summary.of(values).as_dict() for name, values in per_op.items()},
        "ratios": {name: summary.as_dict() for name, summary in ratios.items()},
        "samples_seconds_per_op": per_op,
        "notes": notes or [],
    }


def _ratio(result: dict[str, Any], name: str) -> str:
    summary = result["ratios"].get(name)
    return "—" if summary is None else format_ratio(Summary(**summary))


def results_table(results: list[dict[str, Any]]) -> str:
    """The headline table: community today, the target, what we measured."""
    lines = [
        "| # | workload | community today (community/floor) | target | ours/floor "
        "| ours/community | met? |",
        "|---|---|---|---|---|---|---|",
    ]
    for result in results:
        target = result["target"]
        against = target["ratio"].split("/")[1]
        goal = f"≤ {target['max']}x {against}"
        if against not in (FLOOR, COMMUNITY):  # a ratio no other column shows
            goal += f": {_ratio(result, target['ratio'])}"
        lines.append(
            f"| {result['number']} | {result['title']} | {_ratio(result, 'community/floor')} "
            f"| {goal} | {_ratio(result, 'ours/floor')} "
            f"| {_ratio(result, 'ours/community')} | {'yes' if result['met'] else '**no**'} |"
        )
    return "\n".join(lines)


def share_notes(results: list[dict[str, Any]]) -> str:
    """Where a storage-free baseline ran: how the histories' own costs compare; then the
    notes workloads made (e.g. connections opened per operation)."""
    lines = [
        f"- Workload {result['number']}: minus the in-memory turn (the chain's own cost), "
        f"ours takes {_ratio(result, SHARE)} of community's time."
        for result in results
        if SHARE in result["ratios"]
    ]
    lines += [f"- {note}" for result in results for note in result.get("notes", [])]
    return "\n".join(lines)


def times_table(results: list[dict[str, Any]]) -> str:
    """Median time per operation of every system, for reference (absolute times drift)."""
    lines = [
        "| # | system | median time/op | IQR | vs floor (paired) | ops/sample |",
        "|---|---|---|---|---|---|",
    ]
    for result in results:
        for name, times in result["seconds_per_op"].items():
            summary = Summary(**times)
            vs_floor = "1" if name == FLOOR else _ratio(result, f"{name}/{FLOOR}")
            lines.append(
                f"| {result['number']} | {name} | {format_seconds(summary.median)} "
                f"| {format_seconds(summary.q1)}-{format_seconds(summary.q3)} | {vs_floor} "
                f"| {result['ops_per_sample'][name]} |"
            )
    return "\n".join(lines)


def markdown(results: list[dict[str, Any]], env: dict[str, str], settings: dict[str, Any]) -> str:
    """The whole report: results, times, method, workloads and environment."""
    method = (
        f"Each of {settings['reps']} repetitions runs every system once, in an order rotated "
        "per repetition; a sample is an inner loop of at least "
        f"{settings['min_sample_ms']:.0f} ms timed with time.perf_counter. Ratios are paired "
        "(ours / other within the same repetition); cells show the median and, in brackets, "
        "the interquartile range. Messages average "
        f"{settings['mean_message_bytes']:.0f} bytes encoded. One non-persistent "
        "redis-server on loopback serves every system."
    )
    workloads = "\n".join(
        f"{result['number']}. **{result['title']}** — " + " ".join(result["description"].split())
        for result in results
    )
    environment_lines = "\n".join(f"- {name}: {value}" for name, value in env.items())
    parts = [
        "# redis-chat-history benchmark",
        results_table(results),
        share_notes(results),
        "## Time per operation",
        times_table(results),
        "## Method",
        method,
        "## Workloads",
        workloads,
        "## Not measured",
        MEMORYSTORE_NOTE,
        "## Environment",
        environment_lines,
    ]
    return "\n\n".join(part for part in parts if part) + "\n"
