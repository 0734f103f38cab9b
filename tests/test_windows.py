"""Tool-call-safe windows on real servers: windowed reads (``last=``, ``max_tokens=``), the
``max_messages`` trim of the append script, and the LangChain classes' ``window=``,
``window_tokens=``, ``start_on=`` and ``keep_system=``, in every layout, sync and async.

Expected windows are worked out from THE RULE in ``redis_chat_history._windows`` (its module
docstring, rules 1-4): by hand for the short histories, and by :func:`by_rule`, a plain
reading of that text, for the long ones.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable, Sequence
from typing import Any, cast

import pytest
import redis
import redis.asyncio
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    HumanMessageChunk,
    SystemMessage,
    ToolMessage,
    message_to_dict,
    messages_from_dict,
)
from langchain_core.messages.utils import count_tokens_approximately

from conftest import Awaited
from redis_chat_history import (
    AsyncChatHistoryStore,
    ChatHistoryStore,
    CorruptMessageError,
    InvalidOptionError,
    MemorystoreChatMessageHistory,
    RedisChatMessageHistory,
    WrongTypeError,
    aclose_shared_clients,
)
from redis_chat_history._windows import FIRST_TOKEN_READ, QUESTION_LOOKBACK, approximate_tokens
from redis_chat_history.settings import StoreSettings

LAYOUTS = ["native", "community", "memorystore"]
#: The LangChain class (by upstream name) and the layout it is given.
HISTORIES = [(cls, layout) for cls in ("redis", "memorystore") for layout in LAYOUTS]


# --- Messages ------------------------------------------------------------------------------------


def call(call_id: str, name: str = "w") -> AIMessage:
    """An AI message asking for one tool call."""
    return AIMessage("", tool_calls=[{"name": name, "args": {}, "id": call_id}])


def result(call_id: str, text: str = "ok") -> ToolMessage:
    return ToolMessage(text, tool_call_id=call_id)


#: The issue's example: a raw "newest 3" starts with an assistant turn (refused by Anthropic),
#: a raw "newest 2" with a tool result whose call was cut off (refused by OpenAI too).
ISSUE = [
    HumanMessage("weather?"),
    call("c1"),
    result("c1", "sunny"),
    AIMessage("It is sunny"),
]
#: window/last=k and max_messages=k on ISSUE, by the rule (positions in ISSUE):
#: k=1: the newest message is an AI answer, no human message: the question is pinned and
#:      nothing else fits (rule 3);
#: k=2: [tool, answer] has no human message: question + the newest 1 that starts at a
#:      non-tool message (the answer);
#: k=3: [call, tool, answer] has none either: question + the newest 2 ([tool, answer]),
#:      which start at a tool result, so from the answer;
#: k>=4: the whole history starts on the human message.
ISSUE_WINDOWS = {1: [0], 2: [0, 3], 3: [0, 3], 4: [0, 1, 2, 3], 5: [0, 1, 2, 3]}


def kind_of(message: BaseMessage) -> str:
    """The rule's kinds, by the message's type: h(uman), s(ystem), t(ool result: tool,
    function and their chunks) or o(ther)."""
    if message.type == "human":
        return "h"
    if message.type == "system":
        return "s"
    if message.type in ("tool", "function", "ToolMessageChunk", "FunctionMessageChunk"):
        return "t"
    return "o"


def by_rule(
    kinds: Sequence[str],
    *,
    count: int | None = None,
    tokens: int | None = None,
    costs: Sequence[int] | None = None,
    start_on: str = "human",
    keep_system: bool = False,
) -> list[int]:
    """The positions of the window rules 1-3 give (rule 4 drops nothing in histories whose
    tool results all follow their calls, which every history here but the orphans' has)."""
    n = len(kinds)
    cost = list(costs) if costs is not None else [0] * n
    front = [0] if keep_system and n and kinds[0] == "s" else []  # rule 1
    first = len(front)
    count_left = math.inf if count is None else count - first
    tokens_left = math.inf if tokens is None else max(0, tokens - sum(cost[p] for p in front))
    if count_left <= 0:
        return front

    def newest_fitting(floor: int, count_budget: float, token_budget: float) -> int:
        low, used = n, 0
        while low > floor and n - low < count_budget and used + cost[low - 1] <= token_budget:
            used += cost[low - 1]
            low -= 1
        return low

    def first_from(low: int, allowed: Callable[[str], bool]) -> int:
        return next((p for p in range(low, n) if allowed(kinds[p])), n)

    def not_tool(found: str) -> bool:
        return found != "t"

    low = newest_fitting(first, count_left, tokens_left)  # rule 2
    start = first_from(low, (lambda found: found == "h") if start_on == "human" else not_tool)
    if start < n:
        return [*front, *range(start, n)]
    lookback_end = max(first, low - QUESTION_LOOKBACK)  # rule 3
    question = next((p for p in range(low - 1, lookback_end - 1, -1) if kinds[p] == "h"), None)
    if question is None:
        return [*front, *range(first_from(low, not_tool), n)]
    if cost[question] > tokens_left:  # the budget is never exceeded
        return front
    low = newest_fitting(low, count_left - 1, tokens_left - cost[question])
    return [*front, question, *range(first_from(low, not_tool), n)]


def window_of(messages: Sequence[BaseMessage], **rule: Any) -> list[BaseMessage]:
    return [messages[p] for p in by_rule([kind_of(m) for m in messages], **rule)]


def trimmed(
    batches: Sequence[Sequence[BaseMessage]], cap: int, **rule: Any
) -> tuple[list[BaseMessage], list[int]]:
    """What max_messages=cap leaves after appending the batches, and each append's count:
    every append that makes the list longer than cap cuts it to the rule's window."""
    stored: list[BaseMessage] = []
    counts = []
    for batch in batches:
        stored += batch
        if len(stored) > cap:
            stored = window_of(stored, count=cap, **rule)
        counts.append(len(stored))
    return stored, counts


def assert_chat_valid(messages: Sequence[BaseMessage], *, system: bool = False) -> None:
    """What the chat APIs accept: (after a leading system message) a human message first,
    and every tool result right after its call or another result of the same call message."""
    rest = list(messages[1:] if system else messages)
    if system:
        assert isinstance(messages[0], SystemMessage)
    if rest:
        assert isinstance(rest[0], HumanMessage), rest
    calls: set[str] = set()
    for message in rest:
        if isinstance(message, ToolMessage):
            assert message.tool_call_id in calls, rest
        else:
            calls = (
                {c["id"] for c in message.tool_calls} if isinstance(message, AIMessage) else set()
            )


def records(messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    return [message_to_dict(m) for m in messages]


def element(message: BaseMessage) -> bytes:
    """A message encoded as the upstream packages write it."""
    return json.dumps(message_to_dict(message)).encode()


def agent_turn(rounds: int, question: str = "plan my trip") -> list[BaseMessage]:
    """One human message, then ``rounds`` tool rounds (a call and its result)."""
    turn: list[BaseMessage] = [HumanMessage(question)]
    for i in range(rounds):
        turn += [call(f"c{i}"), result(f"c{i}", f"r{i}")]
    return turn


def conversation(rounds: int) -> list[BaseMessage]:
    """``rounds`` turns of a human question, a tool round and an answer (4 messages each),
    with texts of varying length."""
    found: list[BaseMessage] = []
    for r in range(rounds):
        found += [
            HumanMessage(f"question {r} " + "x" * (r * 7 % 41)),
            call(f"c{r}", name=f"tool{r % 5}"),
            result(f"c{r}", "result " + "y" * (r * 3 % 29)),
            AIMessage(f"answer {r} " + "z" * (r * 11 % 53)),
        ]
    return found


async def read(store: Any, session_id: str, **options: Any) -> list[BaseMessage]:
    return messages_from_dict(await store.messages(session_id, **options))


async def write(store: Any, session_id: str, messages: Sequence[BaseMessage]) -> int:
    count: int = await store.append(session_id, records(messages))
    return count


def raw_append(client: Any, store: Any, session_id: str, elements: Sequence[bytes]) -> str:
    """Push elements (oldest first) straight into the session's list, bypassing the store."""
    layout = store.config.layout
    key: str = layout.messages_key(session_id)
    for item in elements:
        if layout.newest_first:
            client.lpush(key, item)
        else:
            client.rpush(key, item)
    return key


def list_index(store: Any, position: int, length: int) -> int:
    """The list index of a chronological position."""
    return int(store.config.layout.index_of(position, length))


def history(
    cls: str, layout: str, session_id: str, redis_url: str, client: Any, **options: Any
) -> Any:
    """A RedisChatMessageHistory from the URL or a MemorystoreChatMessageHistory over the
    admin client, in the given layout."""
    if cls == "redis":
        return RedisChatMessageHistory(session_id, url=redis_url, layout=layout, **options)
    return MemorystoreChatMessageHistory(client, session_id, layout=layout, **options)


@pytest.fixture(autouse=True)
def _native_only_off_standalone(request: pytest.FixtureRequest, topology: str) -> None:
    """The window rule depends on the layout (list order) and the server's version, not on
    how it is deployed: the standalone servers (Redis 7.0, 6.2, Valkey 9) run every
    layout; TLS, cluster, Sentinel, ACL and renamed-command deployments run the native
    layout only, so the suite stays fast there. Skipped before the database is flushed."""
    params = getattr(request.node, "callspec", None)
    layout = (
        None if params is None else params.params.get("layout_name", params.params.get("layout"))
    )
    if topology != "standalone" and layout not in (None, "native"):
        pytest.skip("other layouts run on the standalone servers")


@pytest.fixture
def windowed(make_store: Any) -> Callable[..., Awaited]:
    """make_store under the name the window tests use (any StoreSettings option)."""
    return cast("Callable[..., Awaited]", make_store)


def test_reference_rule_on_the_issue() -> None:
    """by_rule itself gives the hand-worked windows of the issue's example."""
    kinds = [kind_of(m) for m in ISSUE]
    assert kinds == ["h", "o", "t", "o"]
    for k, expected in ISSUE_WINDOWS.items():
        assert by_rule(kinds, count=k) == expected


# --- 1. The issue's example ----------------------------------------------------------------------


@pytest.mark.parametrize(("cls", "layout"), HISTORIES)
async def test_issue_example_windows(
    cls: str, layout: str, redis_url: str, client: Any, track: Any
) -> None:
    """window=k, get_messages(last=k), aget_messages(last=k) give a history the chat APIs
    accept: the raw newest 3 would start with the assistant's tool call, the raw newest 2 with
    the ToolMessage; the rule gives the question and the answer."""
    plain = track(history(cls, layout, "issue", redis_url, client))
    plain.add_messages(ISSUE)
    assert plain.messages == ISSUE  # full reads are untouched
    assert plain.get_messages(last=3) == [ISSUE[0], ISSUE[3]]
    assert await plain.aget_messages(last=3) == [ISSUE[0], ISSUE[3]]
    for k, positions in ISSUE_WINDOWS.items():
        expected = [ISSUE[p] for p in positions]
        assert_chat_valid(expected)
        windowed = track(history(cls, layout, "issue", redis_url, client, window=k))
        assert windowed.messages == expected, k
        assert await windowed.aget_messages() == expected, k
        assert plain.get_messages(last=k) == expected, k
        assert await plain.aget_messages(last=k) == expected, k
    assert plain.messages == ISSUE  # windows never change storage


@pytest.mark.parametrize(("cls", "layout"), HISTORIES)
async def test_issue_example_max_messages(
    cls: str, layout: str, redis_url: str, client: Any, track: Any
) -> None:
    """max_messages=k after the 4 appends (one at a time and as one batch, sync and async)
    stores the same window the read gives."""
    for k, positions in ISSUE_WINDOWS.items():
        expected = [ISSUE[p] for p in positions]
        made = {
            how: track(history(cls, layout, f"{how}-{k}", redis_url, client, max_messages=k))
            for how in ("one", "batch", "aone", "abatch")
        }
        for message in ISSUE:
            made["one"].add_message(message)
            await made["aone"].aadd_messages([message])
        made["batch"].add_messages(ISSUE)
        await made["abatch"].aadd_messages(ISSUE)
        for how, found in made.items():
            assert found.messages == expected, (k, how)
            assert await found.aget_messages() == expected, (k, how)
            assert client.llen(found.key) == len(expected)
            assert_chat_valid(found.messages)


async def test_issue_example_on_the_store(store: Any) -> None:
    """The same windows from the store's messages(last=k), in every layout, sync and async."""
    assert await write(store, "s", ISSUE) == 4
    for k, positions in ISSUE_WINDOWS.items():
        assert await read(store, "s", last=k) == [ISSUE[p] for p in positions], k
    assert await read(store, "s") == ISSUE


@pytest.mark.parametrize("one_at_a_time", [False, True], ids=["batch", "one-at-a-time"])
async def test_issue_example_trim_on_the_store(
    make_store: Any, layout_name: str, client: Any, one_at_a_time: bool
) -> None:
    """max_messages=1..5 on the store: the window the rule gives, counts equal LLEN."""
    batches = [[m] for m in ISSUE] if one_at_a_time else [ISSUE]
    for k, positions in ISSUE_WINDOWS.items():
        store = make_store(layout=layout_name, max_messages=k)
        sid = f"s{k}"
        key = store.config.layout.messages_key(sid)
        for batch in batches:
            count = await write(store, sid, batch)
            assert count == client.llen(key) <= k
        assert await read(store, sid) == [ISSUE[p] for p in positions], k


# --- 2. keep_system ------------------------------------------------------------------------------

S, H1, A1, H2, A2 = (
    SystemMessage("be brief"),
    HumanMessage("hi"),
    AIMessage("hello"),
    HumanMessage("and now?"),
    AIMessage("now this"),
)
WITH_SYSTEM = [S, H1, A1, H2, A2]
#: last=k with keep_system=True: the system message in front, counted against k.
KEEP_SYSTEM = {
    1: [S],
    2: [S, H2],  # k-1 = 1: [A2] has no human message: the question is pinned (rule 3)
    3: [S, H2, A2],
    4: [S, H2, A2],  # [A1, H2, A2] starts on H2
    5: WITH_SYSTEM,
    6: WITH_SYSTEM,
}
#: last=k with keep_system=False: the system message is an ordinary message (never a start
#: with start_on="human").
NO_SYSTEM = {
    1: [H2],
    2: [H2, A2],
    3: [H2, A2],
    4: [H1, A1, H2, A2],
    5: [H1, A1, H2, A2],
    6: [H1, A1, H2, A2],
}


async def test_keep_system_reads(make_store: Any, windowed: Any, layout_name: str) -> None:
    """keep_system on the store or per call: the leading system message is kept in front and
    counts against last=k; without it, it is not."""
    keeping = windowed(layout=layout_name, keep_system=True)
    plain = make_store(layout=layout_name)
    await write(plain, "s", WITH_SYSTEM)
    for k in KEEP_SYSTEM:
        assert await read(keeping, "s", last=k) == KEEP_SYSTEM[k], k
        assert await read(plain, "s", last=k, keep_system=True) == KEEP_SYSTEM[k], k
        assert await read(plain, "s", last=k) == NO_SYSTEM[k], k
        assert await read(keeping, "s", last=k, keep_system=False) == NO_SYSTEM[k], k
        assert_chat_valid(KEEP_SYSTEM[k], system=True)
        assert_chat_valid(NO_SYSTEM[k])
    assert await read(keeping, "s") == WITH_SYSTEM


async def test_keep_system_only_at_the_start(store: Any) -> None:
    """A system message that is not the first of the history is not kept in front."""
    await write(store, "s", [H1, S, A1, H2, A2])
    assert await read(store, "s", last=2, keep_system=True) == [H2, A2]
    assert await read(store, "s", last=4, keep_system=True, start_on="any") == [S, A1, H2, A2]


async def test_keep_system_in_a_long_history(store: Any) -> None:
    """The system message far before the window (not in the read's first snapshot) is still
    kept in front, with the rest of the window from the newest messages."""
    turns = conversation(30)
    await write(store, "s", [S, *turns])
    expected = [S, *window_of(turns, count=9)]
    assert expected == window_of([S, *turns], count=10, keep_system=True)
    assert await read(store, "s", last=10, keep_system=True) == expected
    assert await read(store, "s", last=10) == window_of(turns, count=10)
    assert_chat_valid(expected, system=True)


@pytest.mark.parametrize("one_at_a_time", [False, True], ids=["batch", "one-at-a-time"])
async def test_keep_system_trims(
    make_store: Any, windowed: Any, layout_name: str, client: Any, one_at_a_time: bool
) -> None:
    """max_messages with keep_system keeps the system message in front, counted against the
    cap; without keep_system it is trimmed like any message."""
    messages = [*WITH_SYSTEM, HumanMessage("more"), AIMessage("sure"), *conversation(3)]
    batches = [[m] for m in messages] if one_at_a_time else [messages]
    for keep in (True, False):
        for cap in range(1, 8):
            store = windowed(layout=layout_name, max_messages=cap, keep_system=keep)
            sid = f"{keep}-{cap}"
            key = store.config.layout.messages_key(sid)
            expected, counts = trimmed(batches, cap, keep_system=keep)
            for batch, count in zip(batches, counts, strict=True):
                assert await write(store, sid, batch) == count == client.llen(key) <= cap
            assert await read(store, sid) == expected, (keep, cap)
            if keep:
                assert expected[0] == S
                assert_chat_valid(expected, system=True)
            else:
                assert S not in expected


async def test_keep_system_hand_worked_trims(
    make_store: Any, windowed: Any, layout_name: str
) -> None:
    """max_messages=k with keep_system on the 5 messages as one batch: the same windows as
    the reads (the trim and the read follow one rule)."""
    for k in range(1, 6):
        store = windowed(layout=layout_name, max_messages=k, keep_system=True)
        assert await write(store, f"s{k}", WITH_SYSTEM) == len(KEEP_SYSTEM[k])
        assert await read(store, f"s{k}") == KEEP_SYSTEM[k], k


@pytest.mark.parametrize(("cls", "layout"), HISTORIES)
async def test_keep_system_on_langchain(
    cls: str, layout: str, redis_url: str, client: Any, track: Any
) -> None:
    """keep_system=True on the LangChain classes: windows and trims keep the system prompt."""
    writer = track(history(cls, layout, "k", redis_url, client, keep_system=True))
    writer.add_messages(WITH_SYSTEM)
    for k, expected in KEEP_SYSTEM.items():
        windowed = track(history(cls, layout, "k", redis_url, client, keep_system=True, window=k))
        assert windowed.messages == expected
        assert await windowed.aget_messages() == expected
        assert writer.get_messages(last=k) == expected
    capped = track(history(cls, layout, "c", redis_url, client, keep_system=True, max_messages=3))
    await capped.aadd_messages(WITH_SYSTEM)
    assert capped.messages == KEEP_SYSTEM[3]


# --- 3. start_on ---------------------------------------------------------------------------------


async def test_start_on_any_and_human(make_store: Any, windowed: Any, layout_name: str) -> None:
    """start_on="any" starts at the first message that is not a tool result, "human" at
    the first human message (store setting and per call)."""
    human = make_store(layout=layout_name)
    anything = windowed(layout=layout_name, start_on="any")
    await write(human, "s", ISSUE)
    _h, c, t, a = ISSUE
    expected_any = {1: [a], 2: [a], 3: [c, t, a], 4: ISSUE}
    for k, any_window in expected_any.items():
        assert any_window == window_of(ISSUE, count=k, start_on="any")
        assert await read(anything, "s", last=k) == any_window, k
        assert await read(human, "s", last=k, start_on="any") == any_window, k
        human_window = [ISSUE[p] for p in ISSUE_WINDOWS[k]]
        assert await read(human, "s", last=k) == human_window, k
        assert await read(anything, "s", last=k, start_on="human") == human_window, k
    # A system message is a start for "any" (without keep_system), never for "human".
    await write(human, "sys", WITH_SYSTEM)
    assert await read(human, "sys", last=5, start_on="any") == WITH_SYSTEM
    assert await read(human, "sys", last=5) == WITH_SYSTEM[1:]
    assert await read(human, "sys", last=3, start_on="any") == [A1, H2, A2]


async def test_start_on_trims(
    make_store: Any, windowed: Any, layout_name: str, client: Any
) -> None:
    """The trim follows start_on too."""
    _h, c, t, a = ISSUE
    for cap, expected in {1: [a], 2: [a], 3: [c, t, a]}.items():
        store = windowed(layout=layout_name, max_messages=cap, start_on="any")
        assert await write(store, f"s{cap}", ISSUE) == len(expected)
        assert await read(store, f"s{cap}") == expected, cap
    turn = agent_turn(40)
    for one_at_a_time in (False, True):
        batches = [[m] for m in turn] if one_at_a_time else [turn]
        store = windowed(layout=layout_name, max_messages=10, start_on="any")
        sid = f"turn-{one_at_a_time}"
        expected, counts = trimmed(batches, 10, start_on="any")
        for batch, count in zip(batches, counts, strict=True):
            assert await write(store, sid, batch) == count
        stored = await read(store, sid)
        assert stored == expected
        assert len(stored) <= 10 and kind_of(stored[0]) != "t"


@pytest.mark.parametrize("cls", ["redis", "memorystore"])
async def test_start_on_any_on_langchain(cls: str, redis_url: str, client: Any, track: Any) -> None:
    """start_on="any" on the LangChain classes, for windows and trims."""
    _h, c, t, a = ISSUE
    writer = track(history(cls, "memorystore", "a", redis_url, client, start_on="any"))
    writer.add_messages(ISSUE)
    assert writer.get_messages(last=3) == [c, t, a]
    assert await writer.aget_messages(last=2) == [a]
    capped = track(
        history(cls, "community", "b", redis_url, client, start_on="any", max_messages=3)
    )
    capped.add_messages(ISSUE)
    assert capped.messages == [c, t, a]


# --- 4. A long agent turn ------------------------------------------------------------------------

LONG_TURN = agent_turn(40)
#: window 10 on LONG_TURN (81 messages: 0 human, then call i at 1+2i, result i at 2+2i): the
#: newest 10 (71..80) hold no human message, so the question is pinned, followed by the newest
#: 9 (72..80) from their first non-tool message: call 36 at 73.
LONG_WINDOW = [LONG_TURN[0], *LONG_TURN[73:]]


def assert_pinned(window: Sequence[BaseMessage], question: BaseMessage, k: int) -> None:
    """Rule 3: the question, then a suffix of at most k-1 starting at a non-tool message."""
    assert window[0] == question
    assert len(window) <= k
    assert kind_of(window[1]) != "t"
    assert_chat_valid(window)


async def test_long_agent_turn_pins_the_question(store: Any) -> None:
    """last=10 after 40 tool rounds: the question, then a suffix starting at a call."""
    assert by_rule([kind_of(m) for m in LONG_TURN], count=10) == [0, *range(73, 81)]
    await write(store, "s", LONG_TURN)
    got = await read(store, "s", last=10)
    assert got == LONG_WINDOW
    assert_pinned(got, LONG_TURN[0], 10)
    # Each k from 2 on: the question, then the newest k-1 from a non-tool message.
    for k in range(2, 30):
        assert await read(store, "s", last=k) == window_of(LONG_TURN, count=k), k
    assert await read(store, "s", last=1) == [LONG_TURN[0]]


@pytest.mark.parametrize("cls", ["redis", "memorystore"])
async def test_long_agent_turn_on_langchain(
    cls: str, redis_url: str, client: Any, track: Any
) -> None:
    """window=10, get_messages(last=10), aget_messages(last=10)."""
    writer = track(history(cls, "native", "turn", redis_url, client))
    writer.add_messages(LONG_TURN)
    windowed = track(history(cls, "native", "turn", redis_url, client, window=10))
    assert windowed.messages == LONG_WINDOW
    assert await windowed.aget_messages() == LONG_WINDOW
    assert writer.get_messages(last=10) == LONG_WINDOW
    assert await writer.aget_messages(last=10) == LONG_WINDOW
    # The question more than QUESTION_LOOKBACK back is not pinned, in windows and trims.
    far = lookback_history(False)
    track(history(cls, "community", "far", redis_url, client)).add_messages(far)
    far_window = track(history(cls, "community", "far", redis_url, client, window=10))
    assert far_window.messages == far[1001:]
    assert await far_window.aget_messages() == far[1001:]
    capped = track(history(cls, "memorystore", "cap", redis_url, client, max_messages=10))
    await capped.aadd_messages(far)
    assert capped.messages == far[1001:]


@pytest.mark.parametrize("rounds_per_append", [0, 1], ids=["batch", "round-by-round"])
async def test_long_agent_turn_trim(
    make_store: Any, layout_name: str, client: Any, rounds_per_append: int
) -> None:
    """max_messages=10: every append's trim pins the question and keeps at most 10."""
    store = make_store(layout=layout_name, max_messages=10)
    key = store.config.layout.messages_key("s")
    if rounds_per_append:
        batches = [LONG_TURN[:1]] + [LONG_TURN[i : i + 2] for i in range(1, 81, 2)]
    else:
        batches = [LONG_TURN]
    expected, counts = trimmed(batches, 10)
    for batch, count in zip(batches, counts, strict=True):
        assert await write(store, "s", batch) == count == client.llen(key) <= 10
        stored = await read(store, "s")
        assert stored[0] == LONG_TURN[0]
        assert_chat_valid(stored)
    stored = await read(store, "s")
    assert stored == expected
    assert_pinned(stored, LONG_TURN[0], 10)
    if not rounds_per_append:
        assert stored == LONG_WINDOW


def lookback_history(pinned: bool) -> list[BaseMessage]:
    """A human message, plain AI messages, then tool rounds, so that last=10 starts at list
    position 1000 (the question is QUESTION_LOOKBACK back: pinned) or 1001 (it is not)."""
    plain = [AIMessage("thinking")] * (1 if pinned else 2)
    messages: list[BaseMessage] = [HumanMessage("far question"), *plain]
    rounds = (1010 if pinned else 1011) - len(messages)
    assert rounds % 2 == 0
    for i in range(rounds // 2):
        messages += [call(f"c{i}"), result(f"c{i}")]
    return messages


async def test_question_lookback_limit(store: Any) -> None:
    """The question QUESTION_LOOKBACK messages before the window is pinned; one further back
    it is not, and the window starts at a non-tool message."""
    assert QUESTION_LOOKBACK == 1000
    near, far = lookback_history(True), lookback_history(False)
    await write(store, "near", near)
    await write(store, "far", far)
    near_window = [near[0], *near[1002:]]
    assert near_window == window_of(near, count=10) and len(near_window) == 9
    far_window = far[1001:]
    assert far_window == window_of(far, count=10) and len(far_window) == 10
    assert isinstance(far_window[0], AIMessage) and far_window[0].tool_calls
    assert await read(store, "near", last=10) == near_window
    assert await read(store, "far", last=10) == far_window
    # ~1100 messages in one batch, the question 1091 before the window: not pinned.
    longer = agent_turn(550)
    await write(store, "longer", longer)
    assert await read(store, "longer", last=10) == longer[-10:] == window_of(longer, count=10)
    # last=100 starts at 1001, the question 1001 back; last=101 at 1000: pinned.
    assert await read(store, "longer", last=100) == longer[1001:] == window_of(longer, count=100)
    assert await read(store, "longer", last=101) == [longer[0], *longer[1001:]]
    assert window_of(longer, count=101) == [longer[0], *longer[1001:]]


async def test_question_lookback_limit_in_token_windows(store: Any) -> None:
    """A token window looks for the question as far back as a count window."""
    for name, pinned in (("near", True), ("far", False)):
        messages = lookback_history(pinned)
        costs = [count_tokens_approximately([m]) for m in messages]
        await write(store, name, messages)
        budget = sum(costs[-10:])
        expected = window_of(messages, tokens=budget, costs=costs)
        assert (expected[0] == messages[0]) is pinned
        assert await read(store, name, max_tokens=budget) == expected


async def test_question_lookback_limit_trim(make_store: Any, layout_name: str, client: Any) -> None:
    """The trim looks back as far as the read: ~1100 messages in one batch."""
    store = make_store(layout=layout_name, max_messages=10)
    near, far = lookback_history(True), lookback_history(False)
    assert await write(store, "near", near) == 9
    assert await write(store, "far", far) == 10
    assert await read(store, "near") == [near[0], *near[1002:]]
    assert await read(store, "far") == far[1001:]
    layout = store.config.layout
    assert client.llen(layout.messages_key("near")) == 9
    assert client.llen(layout.messages_key("far")) == 10
    # ~1100 messages, the question 1100 back: not pinned.
    longer = [HumanMessage("q"), *agent_turn(550)[1:]]
    store2 = make_store(layout=layout_name, max_messages=10)
    assert await write(store2, "longer", longer) == 10
    assert await read(store2, "longer") == longer[-10:]
    assert kind_of(longer[-10]) == "o"


# --- 5. Token windows ----------------------------------------------------------------------------

TOKEN_HISTORY = conversation(125)  # 500 messages
TOKEN_COSTS = [count_tokens_approximately([m]) for m in TOKEN_HISTORY]


def tokens_of_newest(count: int) -> int:
    return sum(TOKEN_COSTS[-count:])


def test_approximate_tokens_matches_langchain() -> None:
    """The store's record counter counts as count_tokens_approximately does, message by
    message (the expected windows below count with langchain-core)."""
    assert len(TOKEN_HISTORY) == 500 > FIRST_TOKEN_READ
    extra = [
        SystemMessage("sys"),
        SystemMessage("dev", additional_kwargs={"__openai_role__": "developer"}),
        FunctionMessage("f", name="fn"),
        AIMessage("x", name="bot"),
        AIMessage(
            [{"type": "text", "text": "a"}], tool_calls=[{"name": "w", "args": {}, "id": "c"}]
        ),
        HumanMessage([{"type": "text", "text": "look"}, {"type": "image_url", "image_url": {}}]),
        HumanMessage(["a str block", {"type": "other", "x": 1}]),
        ToolMessage([{"type": "text", "text": "r"}], tool_call_id="c"),
        ChatMessage("hi", role="user"),
        HumanMessageChunk(content="h"),
        AIMessageChunk(
            content="", tool_call_chunks=[{"name": "w", "args": "{}", "id": "c", "index": 0}]
        ),
        legacy_call(),
    ]
    for message in [*TOKEN_HISTORY, *ISSUE, *extra]:
        assert approximate_tokens(message_to_dict(message)) == count_tokens_approximately(
            [message]
        ), message


@pytest.mark.parametrize("newest", [20, 100, 101, 102, 103, 300, 499])
async def test_token_window_grows_the_read(store: Any, newest: int) -> None:
    """max_tokens=N with last=None on 500 messages: the newest messages that fit N, cut by
    the rule; with N needing more than FIRST_TOKEN_READ messages the read has to grow."""
    await write(store, "s", TOKEN_HISTORY)
    budget = tokens_of_newest(newest)
    expected = window_of(TOKEN_HISTORY, tokens=budget, costs=TOKEN_COSTS)
    assert len(expected) >= newest - 3 and len(expected) <= newest
    assert sum(count_tokens_approximately([m]) for m in expected) <= budget
    assert await read(store, "s", max_tokens=budget) == expected
    assert await read(store, "s", last=None, max_tokens=budget - 1) == window_of(
        TOKEN_HISTORY, tokens=budget - 1, costs=TOKEN_COSTS
    )
    assert_chat_valid(expected)


async def test_token_window_edges(store: Any) -> None:
    """All of the history, the question pinned by tokens, nothing fitting, and last= and
    max_tokens= together."""
    await write(store, "s", TOKEN_HISTORY)
    assert await read(store, "s", max_tokens=10**9) == TOKEN_HISTORY
    # The newest two (a tool result, an answer) fit, no human message among them.
    budget = tokens_of_newest(2) + TOKEN_COSTS[-4]
    expected = window_of(TOKEN_HISTORY, tokens=budget, costs=TOKEN_COSTS)
    assert expected == [TOKEN_HISTORY[-4], TOKEN_HISTORY[-1]]
    assert await read(store, "s", max_tokens=budget) == expected
    assert await read(store, "s", max_tokens=0) == []
    assert await read(store, "s", max_tokens=1) == []
    for last, tokens in ((50, tokens_of_newest(120)), (120, tokens_of_newest(50))):
        assert await read(store, "s", last=last, max_tokens=tokens) == window_of(
            TOKEN_HISTORY, count=last, tokens=tokens, costs=TOKEN_COSTS
        )


async def test_token_window_keeps_system(store: Any) -> None:
    """keep_system's message counts against max_tokens too."""
    messages = [S, *TOKEN_HISTORY[:200]]
    costs = [count_tokens_approximately([m]) for m in messages]
    await write(store, "s", messages)
    budget = sum(costs[-60:])
    expected = window_of(messages, tokens=budget, costs=costs, keep_system=True)
    assert expected[0] == S and sum(count_tokens_approximately([m]) for m in expected) <= budget
    assert await read(store, "s", max_tokens=budget, keep_system=True) == expected


async def test_custom_token_counter(store: Any) -> None:
    """A token_counter gets each record (or what convert makes of it); 7 per message makes
    max_tokens=7k the same window as last=k."""
    await write(store, "s", TOKEN_HISTORY)
    seen: list[Any] = []

    def seven(item: Any) -> int:
        seen.append(item)
        return 7

    for k in (1, 3, 30, 33, 150):
        assert await read(store, "s", max_tokens=7 * k, token_counter=seven) == window_of(
            TOKEN_HISTORY, count=k
        ), k
    assert seen and all(isinstance(item, dict) and "type" in item for item in seen)
    converted = await store.messages(
        "s",
        max_tokens=7 * 33,
        token_counter=lambda m: 7 if isinstance(m, BaseMessage) else -1,
        convert=lambda r: messages_from_dict([r])[0],
    )
    assert converted == window_of(TOKEN_HISTORY, count=33)
    # By the length of the content: a counter of the user's own.
    lengths = [len(str(m.content)) for m in TOKEN_HISTORY]
    budget = sum(lengths[-77:])
    got = await read(
        store, "s", max_tokens=budget, token_counter=lambda r: len(r["data"]["content"])
    )
    assert got == window_of(TOKEN_HISTORY, tokens=budget, costs=lengths)


@pytest.mark.parametrize("counted", [-1, 1.5, True, "3", None])
async def test_bad_token_counter_result(store: Any, counted: Any) -> None:
    """A token_counter returning anything but an int >= 0 is an InvalidOptionError."""
    await write(store, "s", TOKEN_HISTORY[:10])
    with pytest.raises(InvalidOptionError, match="token_counter"):
        await store.messages("s", max_tokens=1000, token_counter=lambda r: counted)


async def test_token_options_refused(store: Any) -> None:
    """max_tokens with convert= needs a token_counter; a token_counter must be callable."""
    await write(store, "s", ISSUE)
    with pytest.raises(InvalidOptionError, match="token_counter"):
        await store.messages("s", max_tokens=100, convert=lambda r: r)
    with pytest.raises(InvalidOptionError, match="token_counter"):
        await store.messages("s", max_tokens=100, token_counter=5)
    # convert= without max_tokens needs no counter.
    assert await store.messages("s", last=4, convert=lambda r: r["type"]) == [
        "human",
        "ai",
        "tool",
        "ai",
    ]


@pytest.mark.parametrize(("cls", "layout"), HISTORIES)
async def test_window_tokens_on_langchain(
    cls: str, layout: str, redis_url: str, client: Any, track: Any
) -> None:
    """window_tokens with the default counter (count_tokens_approximately), alone and with
    window, and with a token_counter of the user's own."""
    messages = TOKEN_HISTORY[:160]
    costs = TOKEN_COSTS[:160]
    writer = track(history(cls, layout, "t", redis_url, client))
    writer.add_messages(messages)
    budget = sum(costs[-70:])
    expected = window_of(messages, tokens=budget, costs=costs)
    windowed = track(history(cls, layout, "t", redis_url, client, window_tokens=budget))
    assert windowed.messages == expected
    assert await windowed.aget_messages() == expected
    assert writer.get_messages(max_tokens=budget) == expected
    assert await writer.aget_messages(max_tokens=budget) == expected
    both = track(history(cls, layout, "t", redis_url, client, window=20, window_tokens=budget))
    assert both.messages == window_of(messages, count=20, tokens=budget, costs=costs)
    assert both.messages != expected
    own = track(
        history(cls, layout, "t", redis_url, client, window_tokens=50, token_counter=lambda m: 5)
    )
    assert own.messages == window_of(messages, count=10)
    assert await own.aget_messages() == window_of(messages, count=10)


def test_token_windows_while_appending(redis_url: str, layout_name: str) -> None:
    """Token windows whose read grows, taken while another client appends: each is the
    window of the history as it stood at one moment (the last read decides alone)."""
    messages = conversation(100)
    costs = [count_tokens_approximately([m]) for m in messages]
    budget = sum(costs[200:300])  # about 100 messages: reads of 32, then 128
    writer = ChatHistoryStore(url=redis_url, layout=layout_name)
    reader = ChatHistoryStore(url=redis_url, layout=layout_name)
    writer.append("s", records(messages[:40]))
    states = [window_of(messages[:m], tokens=budget, costs=costs[:m]) for m in range(40, 401, 4)]
    done = threading.Event()

    def append_the_rest() -> None:
        try:
            for i in range(40, 400, 4):
                writer.append("s", records(messages[i : i + 4]))
        finally:
            done.set()

    thread = threading.Thread(target=append_the_rest)
    thread.start()
    reads = 0
    try:
        while not done.is_set() or reads == 0:
            got = messages_from_dict(reader.messages("s", max_tokens=budget))
            assert got in states
            reads += 1
    finally:
        thread.join(30)
    assert messages_from_dict(reader.messages("s", max_tokens=budget)) == states[-1]


# --- 6. Orphans already stored -------------------------------------------------------------------


def legacy_call() -> AIMessage:
    return AIMessage("", additional_kwargs={"function_call": {"name": "f", "arguments": "{}"}})


async def test_orphans_left_out_of_windows(store: Any, client: Any) -> None:
    """Tool results stored without their call (by other code) are left out of windows, kept
    in storage and in full reads."""
    stored = [
        HumanMessage("q1"),
        call("c1"),
        result("c1"),
        result("zz", "orphan after a result"),
        AIMessage("a1"),
        HumanMessage("q2"),
        result("c1", "orphan after a human message"),
        legacy_call(),
        FunctionMessage("kept", name="f"),
        AIMessage("a2"),
        FunctionMessage("orphan function result", name="f"),
        HumanMessage("q3"),
        AIMessage("a3"),
    ]
    key = raw_append(client, store, "s", [element(m) for m in stored])
    kept = [m for i, m in enumerate(stored) if i not in (3, 6, 10)]
    assert await read(store, "s", last=13) == kept
    assert await read(store, "s", last=100) == kept
    assert await read(store, "s", max_tokens=10**6) == kept
    assert await read(store, "s", last=8) == [
        m for m in stored[5:] if m not in (stored[6], stored[10])
    ]
    assert await read(store, "s", last=2) == stored[11:]
    # Storage and full reads keep everything.
    assert await read(store, "s") == stored
    assert await read(store, "s", start=3, stop=7) == stored[3:7]
    assert client.llen(key) == len(stored)


async def test_orphan_in_a_pinned_window(store: Any, client: Any) -> None:
    """An orphan inside the suffix after a pinned question is left out too."""
    stored = [HumanMessage("q"), call("c1"), result("c1"), result("nope"), call("c2"), result("c2")]
    key = raw_append(client, store, "s", [element(m) for m in stored])
    # The newest 3 (orphan, call, result): no human message: the question, then the newest
    # 2 from a non-tool message (call c2).
    assert await read(store, "s", last=4) == [stored[0], stored[4], stored[5]]
    # start_on="any": the newest 4 start at call c1; the orphan is left out.
    assert await read(store, "s", last=5, start_on="any") == [stored[1], stored[2], *stored[4:]]
    assert client.llen(key) == 6


async def test_results_of_a_parallel_call(store: Any, client: Any) -> None:
    """Several results after one AI message with several calls are all kept, in any order;
    a result for a call another message made is an orphan."""
    parallel = AIMessage(
        "", tool_calls=[{"name": "w", "args": {}, "id": i} for i in ("p1", "p2", "p3")]
    )
    stored = [
        HumanMessage("q"),
        call("c0"),
        result("c0"),
        parallel,
        result("p3"),
        result("c0", "belongs to the earlier call"),
        result("p1"),
        result("p2"),
        AIMessage("done"),
    ]
    raw_append(client, store, "s", [element(m) for m in stored])
    expected = [m for i, m in enumerate(stored) if i != 5]
    assert await read(store, "s", last=9) == expected
    assert await read(store, "s", last=7, start_on="any") == expected[3:]
    assert await read(store, "s", last=6) == [stored[0], stored[8]]


@pytest.mark.parametrize(("cls", "layout"), HISTORIES[:1] + HISTORIES[4:5])
async def test_orphans_on_langchain(
    cls: str, layout: str, redis_url: str, client: Any, track: Any
) -> None:
    """The LangChain window leaves an orphan out; .messages without a window keeps it."""
    stored = [HumanMessage("q"), result("lost"), AIMessage("a")]
    plain = track(history(cls, layout, "o", redis_url, client))
    for item in [element(m) for m in stored]:
        if plain._config.layout.newest_first:
            client.lpush(plain.key, item)
        else:
            client.rpush(plain.key, item)
    assert plain.messages == stored
    assert plain.get_messages(last=3) == [stored[0], stored[2]]
    assert await plain.aget_messages(last=3) == [stored[0], stored[2]]


# --- 7. Trim details -----------------------------------------------------------------------------


async def test_trim_to_the_pinned_messages_keeps_the_ttl(
    make_store: Any, windowed: Any, layout_name: str, client: Any
) -> None:
    """A trim that cuts the list to nothing but the kept system message / question (the list
    is deleted and pushed again) keeps the list's ttl."""
    question_only = make_store(layout=layout_name, max_messages=1)
    with_system = windowed(layout=layout_name, max_messages=2, keep_system=True)
    layout = question_only.config.layout
    await write(question_only, "q", [HumanMessage("q")])
    await write(with_system, "s", [S, HumanMessage("q")])
    for sid in ("q", "s"):
        assert client.expire(layout.messages_key(sid), 100)
    assert await write(question_only, "q", [call("c1")]) == 1  # [q]
    assert await write(with_system, "s", [AIMessage("a")]) == 2  # [S, q]
    assert await read(question_only, "q") == [HumanMessage("q")]
    assert await read(with_system, "s") == [S, HumanMessage("q")]
    for sid in ("q", "s"):
        assert 90_000 < client.pttl(layout.messages_key(sid)) <= 100_000, sid
    # Without a ttl none is made up.
    await write(question_only, "n", [HumanMessage("q"), AIMessage("a")])
    assert client.pttl(layout.messages_key("n")) == -1
    assert await read(question_only, "n") == [HumanMessage("q")]


async def test_trim_with_ttl_applies_it(make_store: Any, layout_name: str, client: Any) -> None:
    """With ttl=..., every trimming append (to the pinned messages or not) sets the ttl."""
    store = make_store(layout=layout_name, max_messages=2, ttl=100)
    key = store.config.layout.messages_key("s")
    await write(store, "s", [HumanMessage("q"), call("c1"), result("c1")])
    assert await read(store, "s") == [HumanMessage("q")]
    assert 95 <= client.ttl(key) <= 100
    client.expire(key, 5)
    await write(store, "s", [AIMessage("a"), HumanMessage("q2"), AIMessage("a2")])
    assert await read(store, "s") == [HumanMessage("q2"), AIMessage("a2")]
    assert 95 <= client.ttl(key) <= 100


async def test_trim_never_exceeds_the_cap(
    make_store: Any, windowed: Any, layout_name: str, client: Any
) -> None:
    """Batches of every size on a mixed history: each append returns LLEN, never above the
    cap, and the stored list is the rule's window of what it held."""
    messages = [S, *conversation(6), *agent_turn(7)[1:], *conversation(2), *agent_turn(5)]
    sizes = [1, 3, 2, 5, 1, 1, 7, 4, 2, 6, 3]
    batches: list[list[BaseMessage]] = []
    i = 0
    while i < len(messages):
        size = sizes[len(batches) % len(sizes)]
        batches.append(messages[i : i + size])
        i += size
    for cap in (1, 2, 3, 4, 5, 9):
        for start_on in ("human", "any"):
            for keep in (False, True):
                rule = {"start_on": start_on, "keep_system": keep}
                store = windowed(layout=layout_name, max_messages=cap, **rule)
                sid = f"{cap}-{start_on}-{keep}"
                key = store.config.layout.messages_key(sid)
                expected, counts = trimmed(batches, cap, **rule)
                for batch, count in zip(batches, counts, strict=True):
                    got = await write(store, sid, batch)
                    assert got == client.llen(key) == count, (cap, rule)
                    assert got <= cap
                assert await read(store, sid) == expected, (cap, rule)
                assert (S in expected) is keep


async def test_trim_may_leave_nothing(windowed: Any, layout_name: str, client: Any) -> None:
    """Rule 3: without a human message, the newest messages that fit from a message that is
    not a tool result, "possibly none": a trim then deletes the list."""
    store = windowed(layout=layout_name, max_messages=2)
    key = store.config.layout.messages_key("s")
    calls = AIMessage("", tool_calls=[{"name": "w", "args": {}, "id": f"c{i}"} for i in range(3)])
    batch = [calls, result("c0"), result("c1"), result("c2")]
    assert window_of(batch, count=2) == []
    assert await write(store, "s", batch) == 0
    assert client.exists(key) == 0
    assert await read(store, "s") == []
    # With start_on="any" too; with a system message kept in front, just that.
    keeping = windowed(layout=layout_name, max_messages=2, keep_system=True, start_on="any")
    assert await write(keeping, "k", [S, *batch]) == 1
    assert await read(keeping, "k") == [S]


async def test_exactly_once_with_max_messages(
    make_store: Any, layout_name: str, client: Any
) -> None:
    """The same idempotency_key sent twice stores once, with max_messages trimming."""
    store = make_store(layout=layout_name, max_messages=3)
    key = store.config.layout.messages_key("s")
    first = await store.append("s", records(ISSUE), idempotency_key="msg-1")
    again = await store.append("s", records(ISSUE), idempotency_key="msg-1")
    assert first == again == client.llen(key) == 2
    assert await read(store, "s") == [ISSUE[0], ISSUE[3]]
    second = [HumanMessage("next"), AIMessage("ok")]
    # [q, answer, next, ok] is over 3: the newest 3 start at "next".
    assert await store.append("s", records(second), idempotency_key="msg-2") == 2
    assert await read(store, "s") == second
    assert await store.append("s", records(ISSUE), idempotency_key="msg-1") == 2
    assert await store.append("s", records(second), idempotency_key="msg-2") == 2
    assert await read(store, "s") == second


# --- 8. Bad input --------------------------------------------------------------------------------


async def test_store_constructors_take_window_settings(make_store: Any, layout_name: str) -> None:
    """ChatHistoryStore/AsyncChatHistoryStore take start_on= and keep_system= (StoreSettings
    lists them among "the options both stores take"; messages() defaults to "the store's")."""
    store = make_store(layout=layout_name, max_messages=3, start_on="any", keep_system=True)
    assert (store.config.start_on, store.config.keep_system) == ("any", True)
    await write(store, "s", [S, *ISSUE])
    assert await read(store, "s", last=3) == [S, AIMessage("It is sunny")]
    assert await read(store, "s") == [S, AIMessage("It is sunny")]


@pytest.mark.parametrize(
    "options",
    [{"start_on": "user"}, {"start_on": None}, {"keep_system": "yes"}, {"keep_system": 1}],
)
def test_bad_settings(options: dict[str, Any]) -> None:
    """start_on and keep_system are checked with the other settings."""
    with pytest.raises(InvalidOptionError, match=next(iter(options))):
        StoreSettings.build(**options)


@pytest.mark.parametrize(
    "options",
    [{"start_on": "user"}, {"start_on": None}, {"keep_system": "yes"}, {"keep_system": 1}],
)
async def test_bad_settings_on_the_store(make_store: Any, options: dict[str, Any]) -> None:
    """... and refused by the store constructors as InvalidOptionError."""
    with pytest.raises(InvalidOptionError, match=next(iter(options))):
        make_store(**options)


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"last": 3, "start_on": "user"}, "start_on"),
        ({"max_tokens": 30, "start_on": "HUMAN"}, "start_on"),
        ({"last": 3, "keep_system": "yes"}, "keep_system"),
        ({"last": 3, "keep_system": 1}, "keep_system"),
        ({"last": -1}, "last"),
        ({"last": True}, "last"),
        ({"last": False}, "last"),
        ({"last": 1.5}, "last"),
        ({"last": "3"}, "last"),
        ({"last": 2**63}, "last"),
        ({"max_tokens": 1.5}, "max_tokens"),
        ({"max_tokens": -1}, "max_tokens"),
        ({"max_tokens": True}, "max_tokens"),
        ({"last": 2, "start": 1}, "start/stop"),
        ({"last": 2, "stop": 3}, "start/stop"),
        ({"max_tokens": 20, "start": 1, "stop": 3}, "start/stop"),
    ],
)
async def test_bad_window_options(store: Any, options: dict[str, Any], named: str) -> None:
    """Each bad window option is an InvalidOptionError naming it, before any I/O."""
    await write(store, "s", ISSUE)
    with pytest.raises(InvalidOptionError, match=named):
        await store.messages("s", **options)
    assert await read(store, "s") == ISSUE


@pytest.mark.parametrize(
    "options",
    [
        {"window": 0},
        {"window": -1},
        {"window": True},
        {"window": 2.0},
        {"window_tokens": 0},
        {"window_tokens": "10"},
        {"token_counter": 5},
        {"start_on": "user"},
        {"keep_system": "yes"},
        {"max_messages": 0},
    ],
)
@pytest.mark.parametrize("cls", ["redis", "memorystore"])
def test_bad_langchain_options(
    cls: str, options: dict[str, Any], redis_url: str, client: Any
) -> None:
    """The LangChain classes refuse bad window options when made."""
    with pytest.raises(InvalidOptionError):
        history(cls, "native", "s", redis_url, client, **options)


@pytest.mark.parametrize(
    "options",
    [
        {"last": 3},
        {"last": 3, "keep_system": True},
        {"max_tokens": 100},
        {"max_tokens": 100, "keep_system": True},
        {"last": 3, "start_on": "any"},
    ],
)
async def test_wrong_type_list_key(store: Any, client: Any, options: dict[str, Any]) -> None:
    """A string at the messages key: WrongTypeError naming the key; nothing touched."""
    layout = store.config.layout
    key = layout.messages_key("s")
    client.set(key, b"precious")
    with pytest.raises(WrongTypeError) as caught:
        await store.messages("s", **options)
    assert caught.value.key == key
    assert client.get(key) == b"precious"
    assert client.ttl(key) == -1
    assert client.exists(layout.token_key("s"), layout.meta_key("s")) == 0


# --- 9. Corrupt elements -------------------------------------------------------------------------

CHAT = [HumanMessage("h0"), AIMessage("a1"), HumanMessage("h2"), AIMessage("a3")]
CHAT += [HumanMessage("h4"), AIMessage("a5")]


async def test_corrupt_inside_the_window(store: Any, client: Any) -> None:
    """strict=True: CorruptMessageError naming the key and the element's index; strict=False:
    skipped with a RuntimeWarning."""
    await write(store, "s", CHAT)
    key = store.config.layout.messages_key("s")
    bad = b'{"type": "ai", broken'
    client.lset(key, list_index(store, 5, 6), bad)
    for options in ({"last": 3}, {"max_tokens": 10**6}, {"last": 2, "keep_system": True}):
        with pytest.raises(CorruptMessageError) as caught:
            await store.messages("s", **options)
        assert caught.value.key == key
        assert client.lindex(key, caught.value.index) == bad
        assert repr(key) in str(caught.value)
        with pytest.warns(RuntimeWarning, match="corrupt message"):
            got = await read(store, "s", strict=False, **options)
        assert got == ([CHAT[4]] if "last" in options else CHAT[:5])


async def test_corrupt_pinned_question(store: Any, client: Any) -> None:
    """A corrupt question pinned by rule 3 is reported with its own index."""
    turn = agent_turn(10)
    await write(store, "s", turn)
    key = store.config.layout.messages_key("s")
    bad = b'{"type": "human", broken'
    index = list_index(store, 0, len(turn))
    client.lset(key, index, bad)
    with pytest.raises(CorruptMessageError) as caught:
        await store.messages("s", last=5)
    assert caught.value.key == key
    assert client.lindex(key, caught.value.index) == bad
    with pytest.warns(RuntimeWarning, match="corrupt message"):
        assert await read(store, "s", last=5, strict=False) == turn[17:]


async def test_corrupt_system_message_kept_in_front(store: Any, client: Any) -> None:
    """A corrupt leading system message is read (and reported) only with keep_system."""
    messages = [S, *CHAT]
    await write(store, "s", messages)
    key = store.config.layout.messages_key("s")
    bad = b'{"type": "system", broken'
    client.lset(key, list_index(store, 0, len(messages)), bad)
    for last in (3, 7):
        with pytest.raises(CorruptMessageError) as caught:
            await store.messages("s", last=last, keep_system=True)
        assert caught.value.key == key
        assert client.lindex(key, caught.value.index) == bad
    assert await read(store, "s", last=3) == CHAT[4:]
    assert await read(store, "s", last=7) == CHAT


async def test_corrupt_before_the_window_is_not_read(store: Any, client: Any) -> None:
    """Elements before the window are not decoded, even when the read grows over them to
    find the question (rule 3) or to count tokens."""
    await write(store, "s", CHAT)
    key = store.config.layout.messages_key("s")
    client.lset(key, list_index(store, 0, 6), b"garbage")
    assert await read(store, "s", last=3) == CHAT[4:]
    assert await read(store, "s", last=4) == CHAT[2:]
    # A token window counts the newest messages until one does not fit (a1 here): the one
    # before that is not decoded.
    costs = [count_tokens_approximately([m]) for m in CHAT]
    budget = sum(costs[2:]) + costs[1] - 1
    assert await read(store, "s", max_tokens=budget) == CHAT[2:]
    turn = agent_turn(60)  # 121 messages: last=5 grows its read to find the question
    await write(store, "t", turn)
    turn_key = store.config.layout.messages_key("t")
    for position in (1, 2, 40, 115):
        client.lset(turn_key, list_index(store, position, len(turn)), b"not json")
    assert await read(store, "t", last=5) == [turn[0], *turn[117:]]
    with pytest.raises(CorruptMessageError):
        await store.messages("t")


async def test_trim_over_corrupt_elements(
    make_store: Any, windowed: Any, layout_name: str, client: Any
) -> None:
    """The trim reads kinds only: corrupt elements neither fail the append nor count as
    starts (they are 'other' messages), and are kept or cut like any message."""
    store = make_store(layout=layout_name, max_messages=3)
    question, answer = element(HumanMessage("q")), element(AIMessage("a"))
    key = raw_append(client, store, "s", [b"garbage", question, b"{}"])
    assert await write(store, "s", [AIMessage("a")]) == 3  # starts at the human message
    stored = [question, b"{}", answer]
    assert client.lrange(key, 0, -1) == store.config.layout.in_list_order(stored)
    # With start_on="any" a corrupt element is a start like any message but a tool result;
    # a window read over it without strict leaves it out, and with it the tool result
    # whose call is not before it (rule 4).
    store_any = windowed(layout=layout_name, max_messages=3, start_on="any")
    key = raw_append(client, store_any, "t", [question, b"{}", element(result("c1"))])
    assert await write(store_any, "t", [AIMessage("a")]) == 3
    stored = [b"{}", element(result("c1")), answer]
    assert client.lrange(key, 0, -1) == store.config.layout.in_list_order(stored)
    with pytest.warns(RuntimeWarning, match="corrupt message"):
        assert await read(store_any, "t", last=3, strict=False) == [AIMessage("a")]


# --- More edges -----------------------------------------------------------------------------------


async def test_missing_session_windows(store: Any) -> None:
    """A session that was never written has empty windows of every kind."""
    for options in (
        {"last": 3},
        {"last": 3, "keep_system": True},
        {"max_tokens": 100},
        {"max_tokens": 100, "keep_system": True, "start_on": "any"},
    ):
        assert await store.messages("nobody", **options) == []


async def test_largest_last_with_keep_system(store: Any) -> None:
    """last up to 2**63 - 1 is accepted (InvalidOptionError says so), with keep_system too."""
    await write(store, "s", WITH_SYSTEM)
    for last in (10**17, 2**63 - 1):
        assert await read(store, "s", last=last) == WITH_SYSTEM[1:]
        assert await read(store, "s", last=last, max_tokens=10**6, keep_system=True) == WITH_SYSTEM
        assert await read(store, "s", last=last, keep_system=True) == WITH_SYSTEM, last


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_decoding_clients(kind: str, layout_name: str, redis_url: str, topology: str) -> None:
    """Windows and trims through clients made with decode_responses=True."""
    settings = StoreSettings.build(layout=layout_name, max_messages=6, keep_system=True)
    store_class: Any = ChatHistoryStore if kind == "sync" else AsyncChatHistoryStore
    if topology == "standalone":
        client_class: Any = redis.Redis if kind == "sync" else redis.asyncio.Redis
        made = store_class.with_settings(
            settings, client=client_class.from_url(redis_url, decode_responses=True)
        )
    else:
        separator = "&" if "?" in redis_url else "?"
        made = store_class.with_settings(
            settings, url=f"{redis_url}{separator}decode_responses=yes"
        )
    store = Awaited(made)
    try:
        messages = [S, HumanMessage("é 🙂"), *ISSUE, *agent_turn(3, "ça va?")]
        expected, counts = trimmed([messages], 6, keep_system=True)
        assert await write(store, "s", messages) == counts[0]
        assert await read(store, "s") == expected
        assert expected[0] == S and expected[1] == HumanMessage("ça va?")
        assert await read(store, "s", last=3) == window_of(expected, count=3, keep_system=True)
        costs = [count_tokens_approximately([m]) for m in expected]
        budget = costs[0] + costs[1] + sum(costs[-2:])
        assert await read(store, "s", max_tokens=budget) == window_of(
            expected, tokens=budget, costs=costs, keep_system=True
        )
    finally:
        if kind == "sync":
            made.close()
        else:
            await made.aclose()
        await aclose_shared_clients()


def other_json(message: BaseMessage, form: str) -> bytes:
    """A message as other writers encode it: compact, "data" first, or raw UTF-8."""
    record = message_to_dict(message)
    if form == "compact":
        return json.dumps(record, separators=(",", ":")).encode()
    if form == "data-first":
        return json.dumps({"data": record["data"], "type": record["type"]}).encode()
    return json.dumps(record, ensure_ascii=False).encode()


@pytest.mark.parametrize("form", ["compact", "data-first", "utf-8"])
async def test_other_json_forms(
    make_store: Any, windowed: Any, layout_name: str, client: Any, form: str
) -> None:
    """Elements whose "type" is not first (or not spaced as upstream writes it) are told
    apart by decoding, in reads and in trims alike."""
    messages = [S, HumanMessage("é"), *agent_turn(6, "ça?")[:-1], result("c5", "fin")]
    store = windowed(layout=layout_name, keep_system=True)
    raw_append(client, store, "s", [other_json(m, form) for m in messages])
    for k in range(1, 9):
        assert await read(store, "s", last=k) == window_of(messages, count=k, keep_system=True)
        assert await read(store, "s", last=k, keep_system=False) == window_of(messages, count=k)
    capped = windowed(layout=layout_name, keep_system=True, max_messages=5)
    raw_append(client, capped, "t", [other_json(m, form) for m in messages])
    expected, counts = trimmed([messages, [AIMessage("ok")]], 5, keep_system=True)
    assert await write(capped, "t", [AIMessage("ok")]) == counts[-1]
    assert await read(capped, "t") == expected
    assert expected[:2] == [S, HumanMessage("ça?")]
