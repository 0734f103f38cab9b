"""Run the benchmark: ``python -m benchmarks.run [--quick] [--reps N] [--only 1,4]``.

Starts one non-persistent redis-server on a free loopback port, runs every workload
(see :mod:`benchmarks.workloads`), then the export/import/migrate section on a server of its
own (:mod:`benchmarks.transfer`), prints a Markdown report and writes it, with the raw
samples, to ``benchmarks/results/latest.md`` and ``latest.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import redis

from redis_chat_history.embedded import EmbeddedRedis

from .data import conversation, mean_element_bytes
from .harness import measure
from .report import environment, markdown, summarise
from .transfer import markdown as transfer_markdown
from .transfer import measure as measure_transfer
from .workloads import WORKLOADS, Context, Workload

RESULTS = Path(__file__).resolve().parent / "results"


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--reps", type=int, default=None, help="repetitions (default 20)")
    parser.add_argument(
        "--min-sample-ms", type=float, default=None, help="shortest sample (default 50 ms)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="7 repetitions of 20 ms samples (a smoke run)"
    )
    parser.add_argument("--only", default="", help="comma-separated workload numbers")
    parser.add_argument("--no-save", action="store_true", help="print only, write no files")
    parser.add_argument(
        "--transfer-messages",
        type=int,
        default=None,
        help="messages for the export/import/migrate section (default 100000, 20000 with "
        "--quick, 0 with --only; 0 skips it; the README quotes 1000000)",
    )
    args = parser.parse_args(argv)
    if args.transfer_messages is None:
        args.transfer_messages = 0 if args.only else 20_000 if args.quick else 100_000
    if 0 < args.transfer_messages < 1000:
        parser.error("--transfer-messages must be 0 or at least 1000")
    if args.reps is None:
        args.reps = 7 if args.quick else 20
    if args.min_sample_ms is None:
        args.min_sample_ms = 20.0 if args.quick else 50.0
    if args.reps < 1 or args.min_sample_ms <= 0:
        parser.error("--reps and --min-sample-ms must be positive")
    return args


def _selected(only: str) -> list[Workload]:
    if not only:
        return WORKLOADS
    numbers = {int(part) for part in only.split(",") if part.strip()}
    unknown = numbers - {w.number for w in WORKLOADS}
    if unknown:
        raise SystemExit(f"unknown workload numbers: {sorted(unknown)}")
    return [w for w in WORKLOADS if w.number in numbers]


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    settings: dict[str, Any] = {
        "reps": args.reps,
        "min_sample_ms": args.min_sample_ms,
        "mean_message_bytes": mean_element_bytes(conversation(1000)),
    }
    results = []
    started = time.perf_counter()
    with EmbeddedRedis() as server:
        admin = server.client()
        floor = redis.Redis.from_url(server.url)
        env = environment(server, admin)
        context = Context(server.url, admin, floor)
        for workload in _selected(args.only):
            _log(f"[{time.perf_counter() - started:5.0f} s] {workload.number}. {workload.title}")
            runners = workload.build(context)
            measurement = measure(
                runners,
                reps=args.reps,
                min_sample=args.min_sample_ms / 1000,
                progress=lambda step: print(f"\r  {step}", end="", file=sys.stderr, flush=True),
            )
            _log("")
            results.append(summarise(workload, measurement, notes=list(context.notes)))
            context.notes.clear()
        floor.close()
        admin.close()
    transfer = None
    if args.transfer_messages:
        _log(f"[{time.perf_counter() - started:5.0f} s] export / import / migrate")
        transfer = measure_transfer(args.transfer_messages, _log)
    settings["wall_seconds"] = round(time.perf_counter() - started, 1)
    report = markdown(results, env, settings)
    if transfer is not None:
        report += "\n" + transfer_markdown(transfer)
    print(report)
    if not args.no_save:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "latest.md").write_text(report)
        payload = {
            "settings": settings,
            "environment": env,
            "workloads": results,
            "transfer": transfer,
        }
        (RESULTS / "latest.json").write_text(json.dumps(payload, indent=2) + "\n")
        _log(f"wrote {RESULTS / 'latest.md'} and {RESULTS / 'latest.json'}")
    _log(f"done in {settings['wall_seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
