"""Failover under load: when the primary dies, no acknowledged append is doubled or lost.

Four writers append numbered messages to their own session through a store built from a
URL while the master serving those sessions is SIGKILLed (Redis Cluster: the master of
their slots; Sentinel: the current master). They keep writing until the store has found
the new master by itself, and a little longer. Afterwards no message may be stored twice
or out of its writer's order, a message whose call raised may be stored at most once, and
every acknowledged message must be stored, with one exception that Redis itself makes:
with ``durability="none"`` replication is asynchronous, so an append the old master
acknowledged in the instant before it died may not have reached the replica that takes
over. Those are counted (``lost_at_kill``) and only tolerated if acknowledged within
``KILL_WINDOW`` of the kill; with ``durability="replicas=1"`` none may be lost. The error
window the writers saw is printed (run with ``-s``) and recorded as the ``failover``
property of each test: ``*_resumed_ms`` is the time from the kill to a writer's first
acknowledged append sent after the old master was dead.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.crc import key_slot

import topologies
from redis_chat_history import (
    AsyncChatHistoryStore,
    ChatHistoryStore,
    NativeLayout,
    NotDurableError,
    aclose_shared_clients,
    close_shared_clients,
)
from topologies import Cluster, SentinelGroup, wait_for

pytestmark = [pytest.mark.timeout(90), pytest.mark.slow]

WRITERS = 4
BEFORE_KILL = 0.5
AFTER_RESUME = 2.0
RESUME_BUDGET = 15.0
#: How close to the kill (either side: a reply the dead master sent may be read a little
#: later) an acknowledged append may be one the replica never received.
KILL_WINDOW = 0.25
#: Sentinel's down-after-milliseconds for these tests; see fresh_sentinels.
SENTINEL_DOWN_AFTER_MS = 2000
LAYOUT = NativeLayout()
MODES = ["threads", "asyncio"]


def record(session_id: str, seq: int) -> dict[str, Any]:
    return {"type": "human", "data": {"content": f"{session_id}#{seq}", "type": "human"}}


def seq_of(session_id: str, stored: dict[str, Any]) -> int:
    """The sequence number of a stored record, checking it belongs to ``session_id``."""
    owner, _, seq = stored["data"]["content"].rpartition("#")
    assert owner == session_id, f"foreign message {stored!r} in {session_id}"
    return int(seq)


@dataclass(frozen=True)
class Attempt:
    """One append call: its message number, when it ran, and what it raised (if anything)."""

    seq: int
    started: float
    ended: float
    error: BaseException | None = None


@dataclass
class Run:
    """Everything the writers did around one kill."""

    attempts: dict[str, list[Attempt]]
    killed_at: float = 0.0
    dead_at: float = 0.0
    stored: dict[str, list[int]] = field(default_factory=dict)

    def acked(self, session_id: str) -> list[Attempt]:
        return [a for a in self.attempts[session_id] if a.error is None]

    def raised(self, session_id: str) -> list[Attempt]:
        return [a for a in self.attempts[session_id] if a.error is not None]

    def after_kill(self, session_id: str) -> list[Attempt]:
        """Acknowledged appends sent when the old master was already dead."""
        return [a for a in self.acked(session_id) if a.started > self.dead_at]

    def writing(self) -> bool:
        """Every writer has had an append acknowledged (the client is connected)."""
        return all(log and log[0].error is None for log in self.attempts.values())

    def resumed(self) -> bool:
        """Every writer has had an append acknowledged by the new master."""
        return all(
            log and log[-1].error is None and log[-1].started > self.dead_at
            for log in self.attempts.values()
        )


Kill = Callable[[], object]


def run_threads(url: str, sessions: list[str], kill: Kill, durability: str | None) -> Run:
    """Append from one thread per session through a shared ChatHistoryStore around ``kill``."""
    store = ChatHistoryStore(url=url, durability=durability)
    run = Run({sid: [] for sid in sessions})
    stop = threading.Event()

    def write(session_id: str) -> None:
        log, seq = run.attempts[session_id], 0
        while not stop.is_set():
            started = time.monotonic()
            try:
                store.append(session_id, [record(session_id, seq)])
            except Exception as error:  # every failure is evidence, whatever its type
                log.append(Attempt(seq, started, time.monotonic(), error))
            else:
                log.append(Attempt(seq, started, time.monotonic()))
            seq += 1

    threads = [threading.Thread(target=write, args=(sid,), daemon=True) for sid in sessions]
    try:
        for thread in threads:
            thread.start()
        wait_for(run.writing, "the writers did not start", RESUME_BUDGET)
        time.sleep(BEFORE_KILL)
        run.killed_at = time.monotonic()
        kill()
        run.dead_at = time.monotonic()
        wait_for(run.resumed, "the writers did not resume", RESUME_BUDGET)
        time.sleep(AFTER_RESUME)
    finally:
        stop.set()
        for thread in threads:
            thread.join(RESUME_BUDGET + 5)
    assert not any(thread.is_alive() for thread in threads), "a writer is stuck"
    run.stored = {sid: [seq_of(sid, item) for item in store.messages(sid)] for sid in sessions}
    return run


async def run_tasks(url: str, sessions: list[str], kill: Kill, durability: str | None) -> Run:
    """Append from one asyncio task per session through a shared AsyncChatHistoryStore."""
    store = AsyncChatHistoryStore(url=url, durability=durability)
    run = Run({sid: [] for sid in sessions})
    stop = asyncio.Event()

    async def write(session_id: str) -> None:
        log, seq = run.attempts[session_id], 0
        while not stop.is_set():
            started = time.monotonic()
            try:
                await store.append(session_id, [record(session_id, seq)])
            except Exception as error:  # every failure is evidence, whatever its type
                log.append(Attempt(seq, started, time.monotonic(), error))
            else:
                log.append(Attempt(seq, started, time.monotonic()))
            seq += 1

    tasks = [asyncio.create_task(write(sid)) for sid in sessions]
    try:
        give_up = time.monotonic() + RESUME_BUDGET
        while not run.writing():
            assert time.monotonic() < give_up, "the writers did not start"
            await asyncio.sleep(0.01)
        await asyncio.sleep(BEFORE_KILL)
        run.killed_at = time.monotonic()
        await asyncio.to_thread(kill)
        run.dead_at = time.monotonic()
        give_up = run.dead_at + RESUME_BUDGET
        while not run.resumed():
            assert time.monotonic() < give_up, "the writers did not resume"
            await asyncio.sleep(0.05)
        await asyncio.sleep(AFTER_RESUME)
    finally:
        stop.set()
        try:
            await asyncio.wait_for(asyncio.gather(*tasks), RESUME_BUDGET + 5)
            run.stored = {
                sid: [seq_of(sid, item) for item in await store.messages(sid)] for sid in sessions
            }
        finally:
            await aclose_shared_clients()
    return run


def drive(mode: str, url: str, sessions: list[str], kill: Kill, durability: str | None) -> Run:
    """Run the writers in ``mode`` ("threads" or "asyncio") and read back what was stored."""
    try:
        if mode == "threads":
            return run_threads(url, sessions, kill, durability)
        return asyncio.run(run_tasks(url, sessions, kill, durability))
    finally:
        close_shared_clients()


def describe(run: Run, attempts: list[Attempt]) -> str:
    """A short account of some attempts: how many, and the first and last relative to the kill."""
    shown = [f"#{a.seq}@{(a.ended - run.killed_at) * 1000:+.1f}ms" for a in attempts]
    return f"{len(shown)} ({', '.join(shown[:3])}{' ... ' + shown[-1] if len(shown) > 3 else ''})"


def check(run: Run, *, replicated: bool = False) -> dict[str, Any]:
    """Assert nothing was doubled or reordered and nothing acknowledged was lost (except,
    unless ``replicated``, right at the kill); return the figures the writers saw."""
    figures: dict[str, Any] = {"acked": 0, "acked_after_kill": 0, "raised": 0}
    raised_but_stored = lost_at_kill = 0
    errors: list[str] = []
    resumed_at: list[float] = []
    stall = 0.0
    for sid, stored in run.stored.items():
        acked, raised, kept = run.acked(sid), run.raised(sid), set(stored)
        assert len(stored) == len(kept), f"{sid}: duplicated messages"
        assert stored == sorted(stored), f"{sid}: messages out of the writer's order"
        unknown = kept - {a.seq for a in run.attempts[sid]}
        assert not unknown, f"{sid}: messages nobody wrote: {sorted(unknown)}"
        lost = [a for a in acked if a.seq not in kept]
        in_flight = [
            a for a in lost if run.killed_at - KILL_WINDOW <= a.ended <= run.dead_at + KILL_WINDOW
        ]
        assert not replicated or not lost, f"{sid}: replicated appends lost: {describe(run, lost)}"
        assert lost == in_flight, f"{sid}: acknowledged appends lost: {describe(run, lost)}"
        lost_at_kill += len(lost)
        raised_but_stored += len({a.seq for a in raised} & kept)
        after = run.after_kill(sid)
        assert after, f"{sid}: no acknowledged append after the kill"
        assert [a for a in acked if a.ended < run.killed_at], f"{sid}: idle before the kill"
        resumed_at.append(after[0].ended)
        ends = [a.ended for a in run.attempts[sid]]
        stall = max([stall, *(later - earlier for earlier, later in itertools.pairwise(ends))])
        errors += [
            f"{type(a.error).__name__}@+{(a.ended - run.killed_at) * 1000:.0f}ms" for a in raised
        ]
        figures["acked"] += len(acked)
        figures["acked_after_kill"] += len(after)
        figures["raised"] += len(raised)
    figures.update(
        kill_ms=round((run.dead_at - run.killed_at) * 1000),
        first_writer_resumed_ms=round((min(resumed_at) - run.killed_at) * 1000),
        all_writers_resumed_ms=round((max(resumed_at) - run.killed_at) * 1000),
        longest_stall_ms=round(stall * 1000),
        raised_but_stored=raised_but_stored,
        lost_at_kill=lost_at_kill,
        errors=errors[:10],
    )
    return figures


def report(name: str, figures: dict[str, Any], record_property: Callable[..., None]) -> None:
    record_property("failover", figures)
    sys.stdout.write(f"\n[failover] {name}: {figures}\n")


# ----------------------------------------------------------------------------------- Cluster


@pytest.fixture
def fresh_cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A new 3-master cluster (one replica each) for one failover."""
    with topologies.cluster(tmp_path) as running:
        yield running


def sessions_on_one_master(running: Cluster) -> tuple[int, list[str]]:
    """A master's port and WRITERS session ids whose message keys that master serves."""
    target = running.master_for_key(LAYOUT.messages_key("failover-0"))
    with running.node_client(target) as admin:
        ranges = [
            (int(start), int(end))
            for start, end, owner, *_replicas in admin.execute_command("CLUSTER", "SLOTS")
            if int(owner[1]) == target
        ]
    sessions: list[str] = []
    for number in range(10_000):
        sid = f"failover-{number}"
        slot = key_slot(LAYOUT.messages_key(sid).encode())
        if any(start <= slot <= end for start, end in ranges):
            sessions.append(sid)
            if len(sessions) == WRITERS:
                break
    assert all(running.master_for_key(LAYOUT.messages_key(sid)) == target for sid in sessions)
    return target, sessions


@pytest.mark.parametrize("mode", MODES)
def test_cluster_master_killed_under_load(
    fresh_cluster: Cluster, mode: str, record_property: Callable[..., None]
) -> None:
    """SIGKILL the master of four busy sessions: the store follows the promoted replica with
    no acknowledged append lost or doubled and no call failing."""
    target, sessions = sessions_on_one_master(fresh_cluster)
    (replica,) = fresh_cluster.replicas_of(target)
    entry = next(p for p in fresh_cluster.ports if p not in (target, replica))
    run = drive(
        mode, f"redis://127.0.0.1:{entry}/0", sessions, lambda: fresh_cluster.kill(target), None
    )
    figures = check(run)
    report(f"cluster/{mode}", figures, record_property)
    assert all(fresh_cluster.master_for_key(LAYOUT.messages_key(s)) == replica for s in sessions)
    assert figures["raised"] == 0, figures["errors"]


def test_cluster_failover_keeps_replicated_appends(
    fresh_cluster: Cluster, record_property: Callable[..., None]
) -> None:
    """With durability="replicas=1" (WAIT on the slot owner's connection) every acknowledged
    append was on the replica that takes over; appends that raised NotDurableError are
    stored at most once. The promoted replica has no replica of its own until the killed
    node is restarted and rejoins as one, so until then every append is NotDurableError."""
    target, sessions = sessions_on_one_master(fresh_cluster)
    (replica,) = fresh_cluster.replicas_of(target)
    entry = next(p for p in fresh_cluster.ports if p not in (target, replica))
    url = f"redis://127.0.0.1:{entry}/0"
    key = LAYOUT.messages_key(sessions[0])

    def promoted() -> bool:
        try:
            return fresh_cluster.master_for_key(key) == replica
        except (LookupError, redis.RedisError):
            return False

    def rejoin() -> None:
        wait_for(promoted, "the replica was not promoted", timeout=20)
        fresh_cluster.restart(target)

    rejoiner = threading.Thread(target=rejoin)

    def kill() -> None:
        fresh_cluster.kill(target)
        rejoiner.start()

    try:
        run = drive("threads", url, sessions, kill, "replicas=1")
    finally:
        rejoiner.join(timeout=60)
    figures = check(run, replicated=True)
    report("cluster/threads/replicas=1", figures, record_property)
    assert all(fresh_cluster.master_for_key(LAYOUT.messages_key(s)) == replica for s in sessions)
    for sid in sessions:
        assert all(isinstance(a.error, NotDurableError) for a in run.raised(sid)), figures


# ---------------------------------------------------------------------------------- Sentinel


@pytest.fixture
def fresh_sentinels(tmp_path: Path) -> Iterator[SentinelGroup]:
    """A new master with two replicas and three sentinels, for one failover.

    The sentinels get a 2 s down-after period instead of 1 s: sentinel pings each node
    once a second, so with 1 s one late PONG from the freshly promoted master (likely on
    a loaded two-core machine) makes them fail over a second time while it still takes
    writes, and whatever it acknowledged then is lost when it is demoted (split brain).
    """
    with topologies.sentinel_group(tmp_path) as group:
        for port in group.sentinel_ports:
            with group.nodes[port].client(decode_responses=True, socket_timeout=2) as sentinel:
                sentinel.execute_command(
                    "SENTINEL", "SET", group.service,
                    "down-after-milliseconds", str(SENTINEL_DOWN_AFTER_MS),
                )  # fmt: skip
        yield group


def kill_sentinel_master(group: SentinelGroup) -> tuple[int, Kill]:
    """The current master's port, and a function that SIGKILLs it."""
    port = group.master_address()[1]
    return port, lambda: group.kill(port)


def assert_one_failover(group: SentinelGroup, killed: int) -> None:
    """Exactly one failover happened (epoch 1 everywhere), to a replica of the killed master;
    a second one would be a split brain that loses writes whatever the client does."""
    epochs = []
    for port in group.sentinel_ports:
        with group.nodes[port].client(decode_responses=True, socket_timeout=2) as sentinel:
            epochs.append(int(sentinel.sentinel_master(group.service)["config-epoch"]))
    assert epochs == [1] * len(epochs), f"the sentinels failed over more than once: {epochs}"
    assert group.master_address()[1] in set(group.replica_ports) - {killed}


@pytest.mark.parametrize("mode", MODES)
def test_sentinel_master_killed_under_load(
    fresh_sentinels: SentinelGroup, mode: str, record_property: Callable[..., None]
) -> None:
    """SIGKILL the master under four busy sessions: the store follows the replica the
    sentinels promote with no acknowledged append lost or doubled and no call failing."""
    killed, kill = kill_sentinel_master(fresh_sentinels)
    sessions = [f"sentinel-{number}" for number in range(WRITERS)]
    run = drive(mode, fresh_sentinels.url, sessions, kill, None)
    assert_one_failover(fresh_sentinels, killed)
    figures = check(run)
    report(f"sentinel/{mode}", figures, record_property)
    assert figures["raised"] == 0, figures["errors"]


def test_sentinel_failover_keeps_replicated_appends(
    fresh_sentinels: SentinelGroup, record_property: Callable[..., None]
) -> None:
    """With durability="replicas=1" every acknowledged append was on a replica, so the
    promoted one has it; appends that raised NotDurableError are stored at most once."""
    killed, kill = kill_sentinel_master(fresh_sentinels)
    sessions = [f"durable-{number}" for number in range(WRITERS)]
    run = drive("threads", fresh_sentinels.url, sessions, kill, "replicas=1")
    assert_one_failover(fresh_sentinels, killed)
    figures = check(run, replicated=True)
    report("sentinel/threads/replicas=1", figures, record_property)
    for sid in sessions:
        assert all(isinstance(a.error, NotDurableError) for a in run.raised(sid)), figures


@pytest.fixture(scope="module")
def small_sentinels(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelGroup]:
    """A master with two replicas and one sentinel, for tests that kill nothing."""
    with topologies.sentinel_group(
        tmp_path_factory.mktemp("small-sentinels"), replicas=2, sentinels=1
    ) as group:
        yield group


def test_stopped_replicas_mean_not_durable_but_stored_once(small_sentinels: SentinelGroup) -> None:
    """With every replica frozen, replicas=1 cannot be met in 300 ms: the caller gets
    NotDurableError, and the message is stored exactly once (not re-sent)."""
    group = small_sentinels
    store = ChatHistoryStore(url=group.url, durability="replicas=1,timeout_ms=300")
    try:
        # A replica that just linked may take up to a second to be counted by WAIT.
        ready = "replicas=2,timeout_ms=5000"
        assert store.append("frozen", [record("frozen", 0)], durability=ready) == 1
        pids = [group.nodes[port].pid for port in group.replica_ports]
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            with pytest.raises(NotDurableError):
                store.append("frozen", [record("frozen", 1)])
            waited = time.monotonic() - started
        finally:
            for pid in pids:
                os.kill(pid, signal.SIGCONT)
        assert 0.3 <= waited < 2.0
        assert [seq_of("frozen", m) for m in store.messages("frozen")] == [0, 1]
        assert store.append("frozen", [record("frozen", 2)], durability=ready) == 3
    finally:
        close_shared_clients()


def test_append_to_a_demoted_node_says_read_only(small_sentinels: SentinelGroup) -> None:
    """A plain URL that points at a replica (as a stale endpoint does after a failover)
    gets Redis's READONLY error (redis-py's ReadOnlyError), not a WrongTypeError about a
    key that does not exist, and nothing is written."""
    replica = small_sentinels.replica_ports[0]
    store = ChatHistoryStore(url=f"redis://127.0.0.1:{replica}/0?cluster=no", retry_deadline=0)
    try:
        with pytest.raises(redis.exceptions.ReadOnlyError, match="read only replica"):
            store.append("demoted", [record("demoted", 0)])
        assert store.count("demoted") == 0
    finally:
        close_shared_clients()
