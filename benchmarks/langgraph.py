"""LangGraph checkpointers compared: ``python -m benchmarks.langgraph [--turns 30] [--reps N]``.

A ``create_agent`` (langchain.agents) conversation with a scripted fake chat model (no
tools; each turn one ~1 KB question and one ~1 KB answer, one model call), driven with
``invoke(..., durability="sync")``, on every saver in one run:

- ours: ``redis_chat_history.langgraph.RedisSaver`` (sync), default ``messages`` channel;
- ours (DeltaChannel): the same saver, with a ``state_schema`` whose ``messages`` is a
  ``DeltaChannel(_messages_delta_reducer, snapshot_frequency=50)``;
- postgres: langgraph-checkpoint-postgres ``PostgresSaver`` on a PostgreSQL the benchmark
  starts itself (initdb into a temp dir, a free loopback port, default settings, so
  ``synchronous_commit=on``, an fsync per commit), and postgres (sync commit off): the same
  server through a second connection with ``synchronous_commit=off``;
- sqlite: langgraph-checkpoint-sqlite ``SqliteSaver`` on a temp file (its own WAL mode);
- plainredis: langgraph-checkpoint-plainredis ``RedisSaver``; valkey: langgraph-checkpoint-aws
  ``ValkeySaver``; both on the same non-persistent redis-server as ours.

First, an untimed pass per system runs one conversation on fresh storage and counts, for the
Redis-based savers, client->server sends (every call of redis-py's / valkey-py's
``AbstractConnection.send_packed_command``; a pipeline or MULTI/EXEC block sent at once
counts once), per turn, per ``get_state`` and per ``get_state_history(limit=5)``; then it
measures the storage the thread took. Then each repetition runs every system, in an order
rotated per repetition, on a new thread: the turns are timed one by one (the repetition's
figure is the median turn), then ``get_state`` and ``get_state_history(limit=5)`` on the
finished thread, each as an inner loop sized by :func:`benchmarks.harness.calibrate`.
Ratios are paired per repetition, as in :mod:`benchmarks.run`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import secrets
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import redis
import redis.connection
import redis.utils
from langchain.agents import AgentState, create_agent
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, AnyMessage, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langgraph.channels.delta import DeltaChannel
from langgraph.graph.message import _messages_delta_reducer

from redis_chat_history.embedded import EmbeddedRedis
from redis_chat_history.langgraph import RedisSaver

from .data import _sentence
from .harness import SyncRunner, calibrate
from .provenance import source_revision, version
from .stats import Summary, format_ratio, format_seconds, paired_ratios

RESULTS = Path(__file__).resolve().parent / "results"

OURS = "ours"
OURS_DELTA = "ours (DeltaChannel)"
POSTGRES = "postgres"
POSTGRES_ASYNC_COMMIT = "postgres (sync commit off)"
SQLITE = "sqlite"
PLAINREDIS = "plainredis"
VALKEY = "valkey (aws ValkeySaver)"

SNAPSHOT_FREQUENCY = 50
HISTORY_LIMIT = 5
QUESTION_CHARS = 1000
ANSWER_CHARS = 1000

NOT_MEASURED = (
    "langgraph-checkpoint-redis (0.5.2) is not measured: it needs the RedisJSON and "
    "RediSearch modules (its `setup()` sends `FT.INFO`, its `put` sends `JSON.SET`), and the "
    "redis-server here is a plain 7.0 without modules, where both fail with `unknown "
    'command`. So the target "turn time at most 0.5x langgraph-checkpoint-redis\'s" cannot '
    "be checked here; the reference's count for it (14 round trips per turn, 5 per "
    "get_state, 4,617 KiB after 30 turns) was taken elsewhere."
)


# The conversation.


def _question(turn: int) -> str:
    return f"Question {turn}: " + _sentence(random.Random(f"q{turn}"), QUESTION_CHARS)


def _answer(turn: int) -> str:
    return f"Answer {turn}: " + _sentence(random.Random(f"a{turn}"), ANSWER_CHARS)


class ScriptedChatModel(BaseChatModel):
    """A deterministic model: the answer to the n-th human message of the conversation is
    ``_answer(n)`` (~1 KB, with the metadata a real model attaches). Stateless, so one agent
    serves every thread."""

    @property
    def _llm_type(self) -> str:
        return "scripted-fake"

    def _generate(self, messages: list[BaseMessage], stop: Any = None, **kwargs: Any) -> ChatResult:
        turn = sum(isinstance(m, HumanMessage) for m in messages) - 1
        message = AIMessage(
            _answer(turn),
            response_metadata={"model_name": "scripted-fake", "finish_reason": "stop"},
            usage_metadata={
                "input_tokens": 250 * turn,
                "output_tokens": 250,
                "total_tokens": 250 * (turn + 1),
            },
        )
        return ChatResult(generations=[ChatGeneration(message=message)])


class DeltaState(AgentState):
    messages: Annotated[
        list[AnyMessage],
        DeltaChannel(_messages_delta_reducer, snapshot_frequency=SNAPSHOT_FREQUENCY),
    ]


# Counting round trips.


class SendCounter:
    """Counts ``send_packed_command`` calls of redis-py and valkey-py connections while
    installed (one call = one client->server send: a command, a pipeline, a MULTI/EXEC)."""

    def __init__(self) -> None:
        self.count = 0
        self._patched: list[tuple[type, Callable[..., Any]]] = []

    def _classes(self) -> list[type]:
        classes: list[type] = [redis.connection.AbstractConnection]
        with contextlib.suppress(ImportError):
            import valkey.connection

            classes.append(valkey.connection.AbstractConnection)
        return classes

    @contextlib.contextmanager
    def installed(self) -> Iterator[SendCounter]:
        for cls in self._classes():
            original = cls.send_packed_command

            def counting(conn: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
                self.count += 1
                return _original(conn, *args, **kwargs)

            cls.send_packed_command = counting  # type: ignore[method-assign]
            self._patched.append((cls, original))
        try:
            yield self
        finally:
            for cls, original in self._patched:
                cls.send_packed_command = original  # type: ignore[method-assign]
            self._patched.clear()

    def during(self, op: Callable[[], Any]) -> int:
        before = self.count
        op()
        return self.count - before


# PostgreSQL started by the benchmark.


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """initdb into a temp dir, pg_ctl start on a free loopback port, yield the URL, stop.
    As root (initdb refuses root) the server runs as the ``postgres`` user."""
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if not initdb or not pg_ctl:
        raise FileNotFoundError("initdb / pg_ctl not on PATH")
    as_user: list[str] = []
    if os.geteuid() == 0:
        as_user = ["runuser", "-u", "postgres", "--"]
    root = tempfile.mkdtemp(prefix="bench-pg-")
    if as_user:
        shutil.chown(root, user="postgres")
    data, port = os.path.join(root, "data"), _free_port()
    subprocess.run(
        [*as_user, initdb, "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8"],
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1"
    subprocess.run(
        [
            *as_user,
            pg_ctl,
            "-D",
            data,
            "-o",
            options,
            "-l",
            os.path.join(root, "log"),
            "-w",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*as_user, pg_ctl, "-D", data, "-m", "fast", "-w", "stop"], capture_output=True
        )
        shutil.rmtree(root, ignore_errors=True)


# The systems.


@dataclass
class Footprint:
    bytes: int
    detail: str


@dataclass
class System:
    name: str
    agent: Any
    counts_round_trips: bool
    footprint: Callable[[str], Footprint]
    note: str = ""
    #: Called just before the first conversation: where the footprint counts from.
    baseline: Callable[[], None] | None = None


def _redis_footprint(
    admin: redis.Redis, pattern: Callable[[str], str]
) -> Callable[[str], Footprint]:
    def measure(thread_id: str) -> Footprint:
        keys = list(admin.scan_iter(match=pattern(thread_id), count=1000))
        total = sum(int(admin.memory_usage(key, samples=0) or 0) for key in keys)
        return Footprint(total, f"{len(keys)} keys")

    return measure


PG_TABLES = ("checkpoints", "checkpoint_blobs", "checkpoint_writes")


def _postgres_size(conn: Any) -> int:
    sizes = " + ".join(f"pg_total_relation_size('{t}')" for t in PG_TABLES)
    row = conn.execute(f"SELECT {sizes} AS total").fetchone()
    return int(row["total"])


def _postgres_footprint(conn: Any) -> tuple[Callable[[str], Footprint], Callable[[], None]]:
    before = [0]

    def baseline() -> None:
        conn.execute("CHECKPOINT")
        before[0] = _postgres_size(conn)

    def measure(thread_id: str) -> Footprint:
        conn.execute("CHECKPOINT")
        rows = conn.execute(
            "SELECT (SELECT count(*) FROM checkpoints WHERE thread_id = %(t)s) "
            "+ (SELECT count(*) FROM checkpoint_blobs WHERE thread_id = %(t)s) "
            "+ (SELECT count(*) FROM checkpoint_writes WHERE thread_id = %(t)s) AS n",
            {"t": thread_id},
        ).fetchone()["n"]
        return Footprint(
            _postgres_size(conn) - before[0],
            f"{rows} rows",
        )

    return measure, baseline


def _sqlite_footprint(
    conn: sqlite3.Connection, path: str
) -> tuple[Callable[[str], Footprint], Callable[[], None]]:
    before = [0]

    def baseline() -> None:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        before[0] = os.path.getsize(path)

    def measure(thread_id: str) -> Footprint:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        rows = sum(
            conn.execute(f"SELECT count(*) FROM {t} WHERE thread_id = ?", (thread_id,)).fetchone()[
                0
            ]
            for t in ("checkpoints", "writes")
        )
        return Footprint(os.path.getsize(path) - before[0], f"{rows} rows")

    return measure, baseline


@dataclass
class Setup:
    systems: list[System]
    environment: dict[str, str]
    notes: list[str] = field(default_factory=list)


@contextlib.contextmanager
def systems(log: Callable[[str], None]) -> Iterator[Setup]:
    """Start the servers, build every saver and agent, and clean up at the end."""
    from langgraph.checkpoint.postgres import PostgresSaver
    from langgraph.checkpoint.sqlite import SqliteSaver
    from psycopg import Connection
    from psycopg.rows import dict_row

    model = ScriptedChatModel()
    notes: list[str] = []
    built: list[System] = []
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(EmbeddedRedis())
        admin = redis.Redis.from_url(server.url)
        stack.callback(admin.close)
        env = _environment(server, admin)

        ours = RedisSaver(redis_url=server.url)
        built.append(
            System(
                OURS,
                create_agent(model, tools=[], checkpointer=ours),
                True,
                _redis_footprint(admin, lambda t: f"lg:{{{t}}}:*"),
            )
        )
        built.append(
            System(
                OURS_DELTA,
                create_agent(model, tools=[], checkpointer=ours, state_schema=DeltaState),
                True,
                _redis_footprint(admin, lambda t: f"lg:{{{t}}}:*"),
            )
        )

        try:
            url = stack.enter_context(postgres_server())
            pg = stack.enter_context(
                Connection.connect(url, autocommit=True, prepare_threshold=0, row_factory=dict_row)
            )
            saver = PostgresSaver(pg)
            saver.setup()
            pg_off = stack.enter_context(
                Connection.connect(
                    url,
                    autocommit=True,
                    prepare_threshold=0,
                    row_factory=dict_row,
                    options="-c synchronous_commit=off",
                )
            )
            saver_off = PostgresSaver(pg_off)
            admin_pg = stack.enter_context(
                Connection.connect(url, autocommit=True, row_factory=dict_row)
            )
            env["postgresql"] = admin_pg.execute("SHOW server_version").fetchone()["server_version"]
            for name, pg_saver in ((POSTGRES, saver), (POSTGRES_ASYNC_COMMIT, saver_off)):
                measure, baseline = _postgres_footprint(admin_pg)
                built.append(
                    System(
                        name,
                        create_agent(model, tools=[], checkpointer=pg_saver),
                        False,
                        measure,
                        baseline=baseline,
                    )
                )
        except (OSError, subprocess.CalledProcessError) as error:
            notes.append(f"postgres not measured: {error}")
            log(notes[-1])

        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-sqlite-"))
        path = os.path.join(tmp, "checkpoints.sqlite")
        lite = sqlite3.connect(path, check_same_thread=False)
        stack.callback(lite.close)
        lite_saver = SqliteSaver(lite)
        lite_saver.setup()
        measure, baseline = _sqlite_footprint(lite, path)
        built.append(
            System(
                SQLITE,
                create_agent(model, tools=[], checkpointer=lite_saver),
                False,
                measure,
                baseline=baseline,
            )
        )
        env["sqlite"] = sqlite3.sqlite_version

        try:
            from langgraph_checkpoint_plainredis import RedisSaver as PlainRedisSaver

            plain = PlainRedisSaver(url=server.url, prefix="plain")
            stack.callback(plain.client.close)
            built.append(
                System(
                    PLAINREDIS,
                    create_agent(model, tools=[], checkpointer=plain),
                    True,
                    _redis_footprint(admin, lambda t: f"plain:*:{t}:*"),
                    note="its global `plain:threads` hash and `plain:seq` counter are not counted",
                )
            )
        except ImportError as error:
            notes.append(f"plainredis not measured: {error}")
            log(notes[-1])

        try:
            from langgraph_checkpoint_aws import ValkeySaver
            from valkey import Valkey

            vclient = Valkey.from_url(server.url)
            stack.callback(vclient.close)
            built.append(
                System(
                    VALKEY,
                    create_agent(model, tools=[], checkpointer=ValkeySaver(vclient)),
                    True,
                    _redis_footprint(admin, lambda t: f"*{{{t}}}*"),
                )
            )
        except ImportError as error:
            notes.append(f"valkey (langgraph-checkpoint-aws) not measured: {error}")
            log(notes[-1])

        yield Setup(built, env, notes)


def _environment(server: EmbeddedRedis, admin: redis.Redis) -> dict[str, str]:
    info = admin.info("server")
    env = {
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "cpus": str(os.cpu_count()),
        "redis-server": f"{info['redis_version']} ({server.binary}), no persistence",
        "redis-py": redis.__version__,
        "hiredis": f"{version('hiredis')} (in use)" if redis.utils.HIREDIS_AVAILABLE else "absent",
    }
    for dist in (
        "langgraph", "langgraph-checkpoint", "langchain", "langchain-core",
        "langgraph-checkpoint-postgres", "psycopg", "psycopg-binary",
        "langgraph-checkpoint-sqlite", "langgraph-checkpoint-plainredis",
        "langgraph-checkpoint-aws", "valkey",
    ):  # fmt: skip
        env[dist] = version(dist)
    env["redis-chat-history"] = f"{version('redis-chat-history')} at {source_revision()}"
    return env


# Running.


def _config(thread_id: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread_id}}


def _turn(agent: Any, config: dict[str, Any], turn: int) -> None:
    agent.invoke({"messages": [HumanMessage(_question(turn))]}, config, durability="sync")


def _thread_id(system: str, label: str) -> str:
    slug = "".join(c if c.isalnum() else "-" for c in system).strip("-")
    return f"bench-{slug}-{label}-{secrets.token_hex(4)}"


def _check(agent: Any, config: dict[str, Any], turns: int, name: str) -> None:
    messages = agent.get_state(config).values["messages"]
    if len(messages) != 2 * turns or messages[-1].content != _answer(turns - 1):
        raise RuntimeError(f"{name}: the thread does not hold the conversation it was given")


def first_pass(
    system: System, turns: int, counter: SendCounter, min_sample: float
) -> dict[str, Any]:
    """One untimed conversation on fresh storage: round trips, footprint, calibration."""
    thread_id = _thread_id(system.name, "count")
    config = _config(thread_id)
    agent = system.agent
    per_turn: list[int] = []
    if system.baseline is not None:
        system.baseline()
    with counter.installed():
        for turn in range(turns):
            per_turn.append(counter.during(lambda turn=turn: _turn(agent, config, turn)))
        # Each read once uncounted first, so a script's first load is not counted.
        agent.get_state(config)
        get_state = counter.during(lambda: agent.get_state(config))
        list(agent.get_state_history(config, limit=HISTORY_LIMIT))
        history = counter.during(lambda: list(agent.get_state_history(config, limit=HISTORY_LIMIT)))
    _check(agent, config, turns, system.name)
    footprint = system.footprint(thread_id)
    state_runner = SyncRunner(lambda: agent.get_state(config))
    history_runner = SyncRunner(lambda: list(agent.get_state_history(config, limit=HISTORY_LIMIT)))
    result: dict[str, Any] = {
        "memory_bytes": footprint.bytes,
        "memory_detail": footprint.detail,
        "calls_per_sample": {
            "get_state": calibrate(state_runner, min_sample),
            "get_state_history": calibrate(history_runner, min_sample),
        },
    }
    if system.counts_round_trips:
        later = per_turn[1:] or per_turn
        result["round_trips"] = {
            "per_turn": per_turn,
            "turn_median": statistics.median(later),
            "turn_max": max(later),
            "first_turn": per_turn[0],
            "get_state": get_state,
            "get_state_history": history,
        }
    return result


def timed_rep(system: System, turns: int, rep: int, sizes: dict[str, int]) -> dict[str, float]:
    """A new thread: every turn timed, then get_state and get_state_history on it."""
    config = _config(_thread_id(system.name, f"r{rep}"))
    agent = system.agent
    times = []
    for turn in range(turns):
        start = time.perf_counter()
        _turn(agent, config, turn)
        times.append(time.perf_counter() - start)
    n_state, n_history = sizes["get_state"], sizes["get_state_history"]
    state = SyncRunner(lambda: agent.get_state(config)).sample(n_state) / n_state
    history = (
        SyncRunner(lambda: list(agent.get_state_history(config, limit=HISTORY_LIMIT))).sample(
            n_history
        )
        / n_history
    )
    return {
        "turn": statistics.median(times),
        "turn_mean": statistics.fmean(times),
        "get_state": state,
        "get_state_history": history,
    }


METRICS = ("turn", "get_state", "get_state_history")


def run(turns: int, reps: int, min_sample: float, log: Callable[[str], None]) -> dict[str, Any]:
    started = time.perf_counter()
    counter = SendCounter()
    with systems(log) as setup:
        names = [s.name for s in setup.systems]
        first: dict[str, dict[str, Any]] = {}
        for system in setup.systems:
            log(f"[{time.perf_counter() - started:5.0f} s] first pass: {system.name}")
            first[system.name] = first_pass(system, turns, counter, min_sample)
        samples: dict[str, dict[str, list[float]]] = {
            name: {m: [] for m in (*METRICS, "turn_mean")} for name in names
        }
        for rep in range(reps):
            shift = rep % len(names)
            for system in setup.systems[shift:] + setup.systems[:shift]:
                sizes = first[system.name]["calls_per_sample"]
                for metric, value in timed_rep(system, turns, rep, sizes).items():
                    samples[system.name][metric].append(value)
            log(f"[{time.perf_counter() - started:5.0f} s] repetition {rep + 1}/{reps}")
        return {
            "settings": {
                "turns": turns,
                "reps": reps,
                "min_sample_ms": min_sample * 1000,
                "question_chars": len(_question(1)),
                "answer_chars": len(_answer(1)),
                "snapshot_frequency": SNAPSHOT_FREQUENCY,
                "history_limit": HISTORY_LIMIT,
                "wall_seconds": round(time.perf_counter() - started, 1),
            },
            "environment": setup.environment,
            "notes": setup.notes + [f"{s.name}: {s.note}" for s in setup.systems if s.note],
            "systems": {
                name: {
                    **first[name],
                    "seconds": {m: Summary.of(samples[name][m]).as_dict() for m in METRICS},
                    "samples_seconds": samples[name],
                }
                for name in names
            },
        }


# Reporting.


def _ratios(result: dict[str, Any], a: str, b: str, metric: str) -> Summary | None:
    systems_ = result["systems"]
    if a not in systems_ or b not in systems_:
        return None
    return Summary.of(
        paired_ratios(
            systems_[a]["samples_seconds"][metric], systems_[b]["samples_seconds"][metric]
        )
    )


def _kib(n: int) -> str:
    return f"{n / 1024:,.0f} KiB"


def targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    systems_ = result["systems"]
    ours = systems_[OURS]
    rt = ours["round_trips"]
    rows: list[dict[str, Any]] = [
        {
            "target": "round trips per agent turn ≤ 6",
            "measured": f"{rt['turn_median']:g} (turns 2-{result['settings']['turns']}: max "
            f"{rt['turn_max']}; turn 1: {rt['first_turn']})",
            "met": rt["turn_max"] <= 6,
        },
        {
            "target": "round trips per get_state ≤ 1",
            "measured": str(rt["get_state"]),
            "met": rt["get_state"] <= 1,
        },
    ]
    vs_pg = _ratios(result, OURS, POSTGRES, "turn")
    rows.append(
        {
            "target": "turn time ≤ postgres's (ours/postgres, paired)",
            "measured": "postgres not measured" if vs_pg is None else format_ratio(vs_pg),
            "met": None if vs_pg is None else vs_pg.median <= 1.0,
        }
    )
    rows.append(
        {
            "target": "turn time ≤ 0.5x langgraph-checkpoint-redis's",
            "measured": "not measurable here (needs RedisJSON + RediSearch)",
            "met": None,
        }
    )
    if PLAINREDIS in systems_:
        plain = systems_[PLAINREDIS]["memory_bytes"]
        share = ours["memory_bytes"] / plain
        rows.append(
            {
                "target": f"memory after {result['settings']['turns']} turns ≤ 0.6x plainredis's",
                "measured": f"{share:.2f}x ({_kib(ours['memory_bytes'])} vs {_kib(plain)})",
                "met": share <= 0.6,
            }
        )
        delta = systems_[OURS_DELTA]["memory_bytes"]
        rows.append(
            {
                "target": "memory with a DeltaChannel messages channel (reported)",
                "measured": f"{_kib(delta)}: {delta / plain:.2f}x plainredis's, "
                f"{delta / ours['memory_bytes']:.2f}x ours with the default channel",
                "met": None,
            }
        )
    return rows


def markdown(result: dict[str, Any]) -> str:
    settings, systems_ = result["settings"], result["systems"]
    turns = settings["turns"]
    verdict = {True: "yes", False: "**no**", None: "—"}
    lines = ["| target | measured | met? |", "|---|---|---|"]
    lines += [
        f"| {t['target']} | {t['measured']} | {verdict[t['met']]} |" for t in result["targets"]
    ]
    target_table = "\n".join(lines)

    lines = [
        "| system | time per turn | vs postgres (paired) | get_state | "
        f"get_state_history(limit={settings['history_limit']}) | round trips: turn / get_state / "
        f"history | memory after {turns} turns |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, data in systems_.items():
        sec = {m: Summary(**data["seconds"][m]) for m in METRICS}
        vs_pg = _ratios(result, name, POSTGRES, "turn")
        rt = data.get("round_trips")
        trips = (
            "not counted"
            if rt is None
            else f"{rt['turn_median']:g} (max {rt['turn_max']}) / {rt['get_state']} / "
            f"{rt['get_state_history']}"
        )
        lines.append(
            f"| {name} | {format_seconds(sec['turn'].median)} "
            f"({format_seconds(sec['turn'].q1)}-{format_seconds(sec['turn'].q3)}) "
            f"| {'1' if name == POSTGRES else '—' if vs_pg is None else format_ratio(vs_pg)} "
            f"| {format_seconds(sec['get_state'].median)} "
            f"| {format_seconds(sec['get_state_history'].median)} | {trips} "
            f"| {_kib(data['memory_bytes'])} ({data['memory_detail']}) |"
        )
    systems_table = "\n".join(lines)

    ratio_lines = ["| ratio (paired) | turn | get_state | get_state_history |", "|---|---|---|---|"]
    for other in systems_:
        if other == OURS:
            continue
        cells = [_ratios(result, OURS, other, m) for m in METRICS]
        ratio_lines.append(
            f"| ours/{other} | "
            + " | ".join("—" if c is None else format_ratio(c) for c in cells)
            + " |"
        )
    ratio_table = "\n".join(ratio_lines)

    method = (
        f"A `create_agent` conversation of {turns} turns (no tools; a scripted fake model, one "
        f"call per turn), each turn one question of {settings['question_chars']} characters and "
        f"an answer of {settings['answer_chars']} (plus usage and response metadata), "
        '`invoke(..., durability="sync")` (LangGraph\'s own default is "async"). Per '
        f"repetition ({settings['reps']}, systems in an order rotated each repetition) every "
        "system runs a new thread: its turns are timed one by one with time.perf_counter "
        "(the repetition's figure is the median turn), then `get_state` and "
        f"`get_state_history(limit={settings['history_limit']})` on the finished thread, as "
        f"inner loops of at least {settings['min_sample_ms']:.0f} ms. Cells show the median "
        "over repetitions and, in brackets, the interquartile range; ratios are paired "
        "(within one repetition).\n\n"
        "Round trips are counted in an untimed first conversation per system, on fresh "
        "storage: every call of `send_packed_command` on redis-py's and valkey-py's "
        "`AbstractConnection` (one client->server send; a pipeline or MULTI/EXEC block goes in "
        f'one). "turn" is the median over turns 2-{turns} (turn 1 has no checkpoint to read, '
        "and ours loads its scripts then), max in brackets. Postgres and sqlite are not "
        "counted. get_state and get_state_history are counted on their second call (the first "
        "may load a script).\n\n"
        f"Memory is that first thread's after {turns} turns: for the Redis savers the sum of "
        "`MEMORY USAGE key SAMPLES 0` over the thread's keys (found with SCAN); for postgres "
        "the growth of `pg_total_relation_size` (table, TOAST and indexes; whole 8 KiB pages) of "
        "its three tables, between `CHECKPOINT`s (TOAST compresses the text with pglz, which "
        "Redis does not); for sqlite the growth of the database file after "
        "`PRAGMA wal_checkpoint(TRUNCATE)`. Both postgres rows share one server and tables, so "
        "each is measured from just before its own first conversation. ours (DeltaChannel) "
        "uses `state_schema` with `messages: Annotated[list[AnyMessage], "
        "DeltaChannel(_messages_delta_reducer, "
        f"snapshot_frequency={settings['snapshot_frequency']})]`."
        "\n\nServers: one non-persistent redis-server on loopback serves ours, plainredis and "
        "valkey; PostgreSQL runs from a fresh initdb with default settings (fsync on, "
        'synchronous_commit on), and "postgres (sync commit off)" is the same server through '
        "a connection with `synchronous_commit=off`; sqlite is a temp file in the saver's WAL mode."
    )
    notes = "\n".join(f"- {n}" for n in result["notes"])
    env = "\n".join(f"- {k}: {v}" for k, v in result["environment"].items())
    parts = [
        "# LangGraph checkpointer benchmark",
        target_table,
        "## Systems",
        systems_table,
        "## Ours against each (paired ratios, < 1 means ours is faster)",
        ratio_table,
        "## Method",
        method,
        "## Not measured",
        NOT_MEASURED,
        "## Notes",
        notes,
        "## Environment",
        env + f"\n- wall time of the run: {settings['wall_seconds']} s",
    ]
    return "\n\n".join(p for p in parts if p) + "\n"


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.langgraph",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--turns", type=int, default=30, help="turns per conversation (30)")
    parser.add_argument("--reps", type=int, default=20, help="repetitions (20)")
    parser.add_argument(
        "--min-sample-ms",
        type=float,
        default=30.0,
        help="shortest get_state / get_state_history sample (30 ms)",
    )
    parser.add_argument("--no-save", action="store_true", help="print only, write no files")
    args = parser.parse_args(argv)
    if args.turns < 2 or args.reps < 1 or args.min_sample_ms <= 0:
        parser.error("--turns must be at least 2, --reps and --min-sample-ms positive")
    return args


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = _arguments(argv)
    result = run(args.turns, args.reps, args.min_sample_ms / 1000, _log)
    result["targets"] = targets(result)
    report = markdown(result)
    print(report)
    if not args.no_save:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "langgraph.md").write_text(report)
        (RESULTS / "langgraph.json").write_text(json.dumps(result, indent=2) + "\n")
        _log(f"wrote {RESULTS / 'langgraph.md'} and {RESULTS / 'langgraph.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
