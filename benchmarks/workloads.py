"""The seven workloads, each comparing the same job done by every system.

Systems:

- ``floor``: raw redis-py with one shared client, doing the same Redis work with the same
  (de)serialisation (``json.dumps(message_to_dict(m))`` / ``messages_from_dict``). Nothing
  built on redis-py can do the job with fewer round trips or less decoding.
- ``ours``: ``redis_chat_history.RedisChatMessageHistory`` (community layout, so it reads
  and writes the very keys langchain-community does).
- ``ours (store)``: ``ChatHistoryStore``/``AsyncChatHistoryStore``, where a shared store
  is the natural way to serve many sessions.
- ``community``: ``langchain_community.chat_message_histories.RedisChatMessageHistory``.
- ``in-memory`` (workload 7 only): a history that stores nothing, to show the chain's own
  cost.
- ``ours (no max)`` (workload 8 only): ``ours`` without ``max_messages``, the price of
  the trim.

Each workload function seeds its own sessions (untimed), checks once that the systems
return equal results, and returns one runner per system. Its docstring is the
description printed with the results.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import json
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis
import redis.asyncio
from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import BaseMessage, message_to_dict, messages_from_dict
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.history import RunnableWithMessageHistory

from redis_chat_history import AsyncChatHistoryStore, ChatHistoryStore, RedisChatMessageHistory
from redis_chat_history.langchain import record_to_message

from .data import community_key, conversation, encode, reset, seed, session_keys
from .harness import Runner, SyncRunner

with warnings.catch_warnings():
    # langchain-community 0.4 warns at import that it is being sunset.
    warnings.simplefilter("ignore", DeprecationWarning)
    from langchain_community.chat_message_histories import (
        RedisChatMessageHistory as CommunityHistory,
    )

TTL = 3600
FLOOR, OURS, STORE, COMMUNITY = "floor", "ours", "ours (store)", "community"
IN_MEMORY = "in-memory"
UNCAPPED = "ours (no max)"


@dataclass(frozen=True)
class Context:
    """What every workload gets: the server URL and two shared clients."""

    url: str
    admin: redis.Redis  # seeding and resets, never timed
    floor: redis.Redis  # the floor's one shared client
    notes: list[str] = field(default_factory=list)  # shown under the results table


@dataclass(frozen=True)
class Target:
    """The goal for ``ours``: median ratio ours / ``against`` at most ``limit``."""

    against: str
    limit: float


Builder = Callable[[Context], dict[str, Runner]]


@dataclass(frozen=True)
class Workload:
    """A registered workload: its number, title, target and builder."""

    number: int
    name: str
    title: str
    target: Target
    build: Builder

    @property
    def description(self) -> str:
        """The builder's docstring: what is measured and how each system does it."""
        return inspect.cleandoc(self.build.__doc__ or "")


WORKLOADS: list[Workload] = []


def workload(number: int, title: str, target: Target) -> Callable[[Builder], Builder]:
    """Register a workload builder under its number and title."""

    def register(build: Builder) -> Builder:
        WORKLOADS.append(Workload(number, build.__name__, title, target, build))
        return build

    return register


def floor_decode(elements: Sequence[bytes | str]) -> list[BaseMessage]:
    """The floor's read path: newest-first elements to chronological messages."""
    return messages_from_dict([json.loads(element) for element in reversed(elements)])


def expect_equal(label: str, results: dict[str, Any]) -> None:
    """Fail loudly unless every system returned the same thing (checked once, untimed)."""
    (first_name, first), *others = results.items()
    for name, value in others:
        if value != first:
            raise AssertionError(f"{label}: {name} and {first_name} returned different results")


def expect_same_writes(ctx: Context, label: str, writers: dict[str, Callable[[], Any]]) -> None:
    """Run each system's write once on an empty session (``<label>-<system>``) and
    fail unless all stored the same elements with a TTL; then empty the sessions again."""
    stored = {}
    for name, write in writers.items():
        session_id = f"{label}-{name}"
        reset(ctx.admin, session_id)()
        write()
        key = community_key(session_id)
        stored[name] = (ctx.admin.lrange(key, 0, -1), ctx.admin.ttl(key) > 0)
        reset(ctx.admin, session_id)()
    expect_equal(label, stored)


@workload(1, "add one message, ttl (history reused)", Target(FLOOR, 1.1))
def add_one(ctx: Context) -> dict[str, Runner]:
    """``add_message(m)`` on a history built once, with ``ttl`` set (every chat turn).

    floor: one non-transactional pipeline LPUSH + EXPIRE (LPUSH, not RPUSH: the community
    layout keeps the newest message first). ours: one EVALSHA of the exactly-once append
    script. community: LPUSH, then EXPIRE (two round trips).
    Each sample starts from an empty session.
    """
    message = conversation(2, seed=1)[1]
    ours = RedisChatMessageHistory("w1-ours", url=ctx.url, ttl=TTL)
    community = CommunityHistory("w1-community", url=ctx.url, ttl=TTL)
    floor_key = community_key("w1-floor")

    def floor_op() -> None:
        with ctx.floor.pipeline(transaction=False) as pipe:
            pipe.lpush(floor_key, encode(message))
            pipe.expire(floor_key, TTL)
            pipe.execute()

    ops = {
        FLOOR: floor_op,
        OURS: lambda: ours.add_message(message),
        COMMUNITY: lambda: community.add_message(message),
    }
    expect_same_writes(ctx, "w1", ops)
    return {
        name: SyncRunner(op, prepare=reset(ctx.admin, f"w1-{name}")) for name, op in ops.items()
    }


@workload(2, "add_messages of 100, ttl", Target(FLOOR, 1.3))
def add_batch(ctx: Context) -> dict[str, Runner]:
    """``add_messages`` of 100 messages with ``ttl`` (importing or replaying a conversation).

    floor: one pipeline of LPUSH key <100 elements> + EXPIRE. ours: one EVALSHA carrying
    all 100. community: the base class loops ``add_message``, 200 round trips.
    Each sample starts from an empty session.
    """
    batch = conversation(100, seed=2)
    ours = RedisChatMessageHistory("w2-ours", url=ctx.url, ttl=TTL)
    community = CommunityHistory("w2-community", url=ctx.url, ttl=TTL)
    floor_key = community_key("w2-floor")

    def floor_op() -> None:
        with ctx.floor.pipeline(transaction=False) as pipe:
            pipe.lpush(floor_key, *[encode(m) for m in batch])
            pipe.expire(floor_key, TTL)
            pipe.execute()

    ops = {
        FLOOR: floor_op,
        OURS: lambda: ours.add_messages(batch),
        COMMUNITY: lambda: community.add_messages(batch),
    }
    expect_same_writes(ctx, "w2", ops)
    return {
        name: SyncRunner(op, prepare=reset(ctx.admin, f"w2-{name}")) for name, op in ops.items()
    }


@workload(3, "last 20 of a 10,000-message history", Target(FLOOR, 1.5))
def last_twenty(ctx: Context) -> dict[str, Runner]:
    """The newest 20 messages of a 10,000-message session (a windowed prompt).

    floor: LRANGE 0 19 + decode. ours: ``get_messages(last=20)``, which reads only those
    and cuts them by the window rule (here they start on a human message, so all 20).
    community: ``.messages[-20:]``, the only way it offers: read and decode all 10,000.
    """
    seed(ctx.admin, "w3", conversation(10_000, seed=3))
    ours = RedisChatMessageHistory("w3", url=ctx.url)
    community = CommunityHistory("w3", url=ctx.url)
    key = community_key("w3")
    runners: dict[str, Runner] = {
        FLOOR: SyncRunner(lambda: floor_decode(ctx.floor.lrange(key, 0, 19))),
        OURS: SyncRunner(lambda: ours.get_messages(last=20)),
        COMMUNITY: SyncRunner(lambda: community.messages[-20:]),
    }
    expect_equal(
        "last 20",
        {
            FLOOR: floor_decode(ctx.floor.lrange(key, 0, 19)),
            OURS: ours.get_messages(last=20),
            COMMUNITY: community.messages[-20:],
        },
    )
    return runners


@workload(4, "read all of a 10,000-message history", Target(COMMUNITY, 0.4))
def read_all(ctx: Context) -> dict[str, Runner]:
    """``.messages`` of a 10,000-message session (~300-byte mixed human/AI messages).

    All three send one LRANGE 0 -1; the difference is decoding (ours: orjson, records
    validated straight into message objects, no cyclic-GC passes while building them).
    """
    seed(ctx.admin, "w4", conversation(10_000, seed=4))
    ours = RedisChatMessageHistory("w4", url=ctx.url)
    community = CommunityHistory("w4", url=ctx.url)
    key = community_key("w4")
    expect_equal(
        "read all",
        {
            OURS: ours.messages,
            COMMUNITY: community.messages,
            FLOOR: floor_decode(ctx.floor.lrange(key, 0, -1)),
        },
    )
    return {
        FLOOR: SyncRunner(lambda: floor_decode(ctx.floor.lrange(key, 0, -1))),
        OURS: SyncRunner(lambda: ours.messages),
        COMMUNITY: SyncRunner(lambda: community.messages),
    }


def _many_sessions(ctx: Context, prefix: str, sessions: int, length: int = 10) -> list[str]:
    """Seed ``sessions`` short conversations and return their ids."""
    ids = [f"{prefix}-{i:04d}" for i in range(sessions)]
    for number, session_id in enumerate(ids):
        seed(ctx.admin, session_id, conversation(length, seed=10_000 + number))
    return ids


@workload(5, "open a history per request + read (1,000 sessions)", Target(FLOOR, 2.5))
def open_per_request(ctx: Context) -> dict[str, Runner]:
    """A web handler: build a history from the URL for the request's session, read it.

    One operation = one session of 10 messages, cycling over 1,000 sessions.
    ours: ``RedisChatMessageHistory(sid, url=URL).messages`` (clients shared per URL).
    community: the same with its class (a new client and connection, plus an
    ``INFO cluster`` probe, per object). ours (store): one shared ``ChatHistoryStore``.
    floor: the shared client's LRANGE + decode.
    """
    ids = _many_sessions(ctx, "w5", 1000)
    store = ChatHistoryStore(url=ctx.url, layout="community")
    cycles = {name: itertools.cycle(ids) for name in (FLOOR, OURS, STORE, COMMUNITY)}

    def floor_op() -> list[BaseMessage]:
        return floor_decode(ctx.floor.lrange(community_key(next(cycles[FLOOR])), 0, -1))

    def ours_op() -> list[BaseMessage]:
        return RedisChatMessageHistory(next(cycles[OURS]), url=ctx.url).messages

    def store_op() -> list[BaseMessage]:
        return store.messages(next(cycles[STORE]), convert=record_to_message)

    def community_op() -> list[BaseMessage]:
        return CommunityHistory(next(cycles[COMMUNITY]), url=ctx.url).messages

    ops = {FLOOR: floor_op, OURS: ours_op, STORE: store_op, COMMUNITY: community_op}
    expect_equal("per request", {name: op() for name, op in ops.items()})
    return {name: SyncRunner(op) for name, op in ops.items()}


SESSIONS_6, APPENDS_6 = 100, 20


@workload(6, "100 concurrent async sessions: 20 appends + read (gather)", Target(FLOOR, 1.2))
def concurrent_async(ctx: Context) -> dict[str, Runner]:
    """An asyncio server handling 100 sessions at once. One operation is one event loop
    (``asyncio.run``) that gathers 100 tasks; each builds its session's history from the
    URL, calls ``aadd_messages([m])`` 20 times, then ``aget_messages()``.

    floor: a new ``redis.asyncio`` client (made with ``from_url``, closed at the end),
    LPUSH of ``json.dumps(message_to_dict(m))`` per message, LRANGE + decode.
    ours: ``RedisChatMessageHistory(sid, url=URL)`` per session (one EVALSHA of the
    exactly-once append script per call; the URL's client is shared on the loop and
    closed when ``asyncio.run`` ends). ours (store): one ``AsyncChatHistoryStore`` for
    all 100. community: its class per session; the base class runs each sync call in the
    loop's thread pool. Every session starts empty (reset untimed before each operation).
    """
    batch = conversation(APPENDS_6, seed=6)

    def session_ids(name: str) -> list[str]:
        return [f"w6-{name}-{i:03d}" for i in range(SESSIONS_6)]

    async def floor_run(ids: list[str]) -> list[list[BaseMessage]]:
        client = redis.asyncio.Redis.from_url(ctx.url)

        async def session(session_id: str) -> list[BaseMessage]:
            key = community_key(session_id)
            for message in batch:
                await client.lpush(key, encode(message))
            return floor_decode(await client.lrange(key, 0, -1))

        try:
            return await asyncio.gather(*(session(session_id) for session_id in ids))
        finally:
            await client.aclose()

    async def ours_run(ids: list[str]) -> list[list[BaseMessage]]:
        async def session(session_id: str) -> list[BaseMessage]:
            history = RedisChatMessageHistory(session_id, url=ctx.url)
            for message in batch:
                await history.aadd_messages([message])
            return await history.aget_messages()

        return await asyncio.gather(*(session(session_id) for session_id in ids))

    async def store_run(ids: list[str]) -> list[list[BaseMessage]]:
        store = AsyncChatHistoryStore(url=ctx.url, layout="community")

        async def session(session_id: str) -> list[BaseMessage]:
            for message in batch:
                await store.append(session_id, [message_to_dict(message)])
            return await store.messages(session_id, convert=record_to_message)

        return await asyncio.gather(*(session(session_id) for session_id in ids))

    async def community_run(ids: list[str]) -> list[list[BaseMessage]]:
        histories = [CommunityHistory(session_id, url=ctx.url) for session_id in ids]

        async def session(history: CommunityHistory) -> list[BaseMessage]:
            for message in batch:
                await history.aadd_messages([message])
            return await history.aget_messages()

        try:
            return await asyncio.gather(*(session(history) for history in histories))
        finally:
            for history in histories:
                history.redis_client.close()

    runs = {FLOOR: floor_run, OURS: ours_run, STORE: store_run, COMMUNITY: community_run}

    def operation(name: str) -> Callable[[], Any]:
        ids = session_ids(name)
        return lambda: asyncio.run(runs[name](ids))

    def prepare(name: str) -> Callable[[], None]:
        keys = [key for sid in session_ids(name) for key in session_keys(sid)]

        def empty() -> None:
            ctx.admin.delete(*keys)

        return empty

    ops = {name: operation(name) for name in runs}
    results = {}
    for name, op in ops.items():
        prepare(name)()
        results[name] = op()
    expect_equal("async sessions", results)
    for name in (FLOOR, OURS):
        prepare(name)()
        connections, infos = server_work(ctx.admin, ops[name])
        ctx.notes.append(
            f"Workload 6, {name}: one operation opened {connections} connections and "
            f"sent {infos} INFO commands."
        )
    return {name: SyncRunner(op, prepare=prepare(name), batch=1) for name, op in ops.items()}


def server_work(admin: redis.Redis, op: Callable[[], Any]) -> tuple[int, int]:
    """Connections opened and INFO commands received by the server while ``op`` runs
    (from INFO stats and INFO commandstats, less the two INFO calls of the reading)."""

    def totals() -> tuple[int, int]:
        stats = admin.info("stats")
        commands = admin.info("commandstats")
        return stats["total_connections_received"], commands["cmdstat_info"]["calls"]

    connections, infos = totals()
    op()
    connections_after, infos_after = totals()
    return connections_after - connections, infos_after - infos - 2


class FloorHistory(BaseChatMessageHistory):
    """The least a history can do: shared client, one LRANGE, one pipelined LPUSH."""

    def __init__(self, client: redis.Redis, session_id: str) -> None:
        self.client, self.key = client, community_key(session_id)

    @property
    def messages(self) -> list[BaseMessage]:  # type: ignore[override]
        return floor_decode(self.client.lrange(self.key, 0, -1))

    def add_messages(self, messages: Sequence[BaseMessage]) -> None:
        self.client.lpush(self.key, *[encode(m) for m in messages])

    def clear(self) -> None:
        self.client.delete(self.key)


class MemoryHistory(BaseChatMessageHistory):
    """No storage at all: what a turn costs when loading and saving are free."""

    def __init__(self, sessions: dict[str, list[BaseMessage]], session_id: str) -> None:
        self.sessions, self.session_id = sessions, session_id

    @property
    def messages(self) -> list[BaseMessage]:  # type: ignore[override]
        return list(self.sessions[self.session_id])

    def add_messages(self, messages: Sequence[BaseMessage]) -> None:
        self.sessions[self.session_id].extend(messages)

    def clear(self) -> None:
        self.sessions[self.session_id] = []


def _chain(get_session_history: Callable[[str], BaseChatMessageHistory]) -> Runnable[Any, Any]:
    prompt = ChatPromptTemplate.from_messages(
        [MessagesPlaceholder("history"), ("human", "{question}")]
    )
    model = FakeListChatModel(responses=["Your order shipped yesterday; it arrives Friday."])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # RunnableWithMessageHistory is deprecated upstream
        return RunnableWithMessageHistory(
            prompt | model,
            get_session_history,
            input_messages_key="question",
            history_messages_key="history",
        )


@workload(7, "RunnableWithMessageHistory turn, 100-message history", Target(COMMUNITY, 0.3))
def rwmh_turn(ctx: Context) -> dict[str, Runner]:
    """One ``RunnableWithMessageHistory.invoke``: load the history, run prompt | fake chat
    model, save the question and the answer.

    ``get_session_history`` builds a new history from the URL per call, as LangChain
    apps do. The session is reset to exactly 100 messages (untimed) before every batch
    of 5 turns. floor: a minimal history class over the shared client (one LRANGE to
    load, one LPUSH to save). in-memory: a history that keeps messages in a dict, i.e.
    the chain's own cost; subtracting it leaves each history's share of the turn.
    """
    history = conversation(100, seed=7)
    memory: dict[str, list[BaseMessage]] = {}
    chains = {
        FLOOR: _chain(lambda session_id: FloorHistory(ctx.floor, session_id)),
        OURS: _chain(lambda session_id: RedisChatMessageHistory(session_id, url=ctx.url)),
        COMMUNITY: _chain(lambda session_id: CommunityHistory(session_id, url=ctx.url)),
        IN_MEMORY: _chain(lambda session_id: MemoryHistory(memory, session_id)),
    }
    question = {"question": "Where is my order 1234?"}

    def resetter(name: str, session_id: str) -> Callable[[], None]:
        if name == IN_MEMORY:
            return lambda: memory.__setitem__(session_id, list(history))
        return lambda: seed(ctx.admin, session_id, history)

    def runner(name: str) -> SyncRunner:
        session_id = f"w7-{name}"
        config: RunnableConfig = {"configurable": {"session_id": session_id}}
        chain = chains[name]
        return SyncRunner(
            lambda: chain.invoke(question, config=config),
            prepare=resetter(name, session_id),
            batch=5,
        )

    return {name: runner(name) for name in chains}


@workload(8, "add one message at max_messages=100, ttl", Target(UNCAPPED, 1.3))
def add_one_capped(ctx: Context) -> dict[str, Runner]:
    """``add_message(m)`` to a history kept at most 100 messages long, ``ttl`` set.

    The session holds 100 messages (reset untimed before every 50 appends), so nearly
    every append trims. ours: the append script trims where no tool call loses its
    results (it reads the type of the few elements where the window starts). ours (no
    max): the same history without ``max_messages``. floor: a pipeline LPUSH + LTRIM 0 99
    + EXPIRE, the raw cut that can split a tool call from its results. community has no
    such option.
    """
    history = conversation(100, seed=8)
    message = conversation(1, seed=88)[0]
    ours = RedisChatMessageHistory("w8-ours", url=ctx.url, ttl=TTL, max_messages=100)
    uncapped = RedisChatMessageHistory(f"w8-{UNCAPPED}", url=ctx.url, ttl=TTL)
    floor_key = community_key("w8-floor")

    def floor_op() -> None:
        with ctx.floor.pipeline(transaction=False) as pipe:
            pipe.lpush(floor_key, encode(message))
            pipe.ltrim(floor_key, 0, 99)
            pipe.expire(floor_key, TTL)
            pipe.execute()

    ops = {
        FLOOR: floor_op,
        OURS: lambda: ours.add_message(message),
        UNCAPPED: lambda: uncapped.add_message(message),
    }
    for name, op in ops.items():  # checked once: the trim keeps what the rule says
        seed(ctx.admin, f"w8-{name}", history)
        op()
    kept = ctx.admin.llen(community_key("w8-ours"))
    if not 90 <= kept <= 100 or ctx.admin.llen(community_key(f"w8-{UNCAPPED}")) != 101:
        raise AssertionError(f"w8: the capped history holds {kept} messages")

    def refill(name: str) -> Callable[[], None]:
        return lambda: seed(ctx.admin, f"w8-{name}", history)

    return {name: SyncRunner(op, prepare=refill(name), batch=50) for name, op in ops.items()}
