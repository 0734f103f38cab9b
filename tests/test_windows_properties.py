"""Property tests for tool-call-safe windows and trims (the rule in ``_windows``'s docstring).

Generated LangChain conversations (well-formed ones with parallel, chunked and legacy tool
rounds, and malformed ones with orphans, missing results and stray system messages) are
stored on a real Redis server in all three layouts, then:

- windowed reads equal langchain-core's ``trim_messages`` wherever it gives an answer;
- every window keeps the rule's invariants, and equals the rule (``choose`` over the
  whole history, then the orphan filter) however much of the list the read looked at;
- ``max_messages`` trims made by the append script (the Lua twin) keep exactly what the
  Python rule keeps, append after append;
- the asyncio store and the LangChain class give the sync store's answers;
- ``approximate_tokens`` is ``count_tokens_approximately``, and ``answered`` keeps
  every message of a well-formed conversation.

Every message carries a unique tag in its text, so a window's messages map back to their
positions in the stored history. Each example starts from an emptied database.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Sequence
from typing import Any

import pytest
import redis
import redis.asyncio
from hypothesis import HealthCheck, Phase, assume, example, given, settings
from hypothesis import strategies as st
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    ChatMessageChunk,
    FunctionMessage,
    FunctionMessageChunk,
    HumanMessage,
    HumanMessageChunk,
    SystemMessage,
    SystemMessageChunk,
    ToolMessage,
    ToolMessageChunk,
    message_to_dict,
    messages_from_dict,
    trim_messages,
)
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.messages.utils import count_tokens_approximately

from redis_chat_history import AsyncChatHistoryStore, ChatHistoryStore, StoreSettings
from redis_chat_history._windows import QUESTION_LOOKBACK, answered, approximate_tokens, choose
from redis_chat_history.langchain import RedisChatMessageHistory

Record = dict[str, Any]

LAYOUTS = ("native", "community", "memorystore")
SESSION = "conversation"
TOOL_TYPES = frozenset({"tool", "function", "ToolMessageChunk", "FunctionMessageChunk"})
AI_TYPES = frozenset({"ai", "AIMessageChunk"})


def _settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
        ],
    )


# --------------------------------------------------------------------------------------
# Generators
# --------------------------------------------------------------------------------------

TEXT = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)
NAMES = st.sampled_from(["search", "calc", "weather", "lookup"])
JSON_SCALARS = st.none() | st.booleans() | st.integers(-1000, 1000) | TEXT
ARGS = st.dictionaries(st.sampled_from(["q", "x", "city", "n"]), JSON_SCALARS, max_size=3)
IMAGE_BLOCKS = st.sampled_from(
    [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
    ]
)


class Tags:
    """Unique tags for message texts and tool call ids."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix, self.count = prefix, 0

    def __call__(self, kind: str = "m") -> str:
        self.count += 1
        return f"{self.prefix}{kind}{self.count}"


def _text(draw: st.DrawFn, tags: Tags) -> str:
    return f"<{tags()}>" + draw(TEXT)


def _human(draw: st.DrawFn, tags: Tags) -> HumanMessage:
    text = _text(draw, tags)
    style = draw(st.sampled_from(["str", "str", "str", "blocks", "parts"]))
    content: Any = text
    if style == "blocks":
        content = [{"type": "text", "text": text}, *draw(st.lists(IMAGE_BLOCKS, max_size=2))]
    elif style == "parts":
        content = [text, draw(TEXT)]
    name = draw(st.none() | st.sampled_from(["ann", "bo"]))
    return HumanMessage(content=content, name=name)


def _tool_round(draw: st.DrawFn, tags: Tags, *, results: bool = True) -> list[BaseMessage]:
    """An AI message making tool (or legacy function) calls, then one result per call in
    any order (none if not ``results``)."""
    style = draw(st.sampled_from(["tools", "tools", "chunk", "function", "legacy_tools"]))
    content = _text(draw, tags)
    if style == "function":
        name = draw(NAMES)
        arguments = json.dumps(draw(ARGS))
        function_call = AIMessage(
            content=content,
            additional_kwargs={"function_call": {"name": name, "arguments": arguments}},
        )
        if not results:
            return [function_call]
        function_class = FunctionMessageChunk if draw(st.booleans()) else FunctionMessage
        return [function_call, function_class(name=name, content=_text(draw, tags))]
    calls: list[dict[str, Any]] = [
        {"name": draw(NAMES), "args": draw(ARGS), "id": tags("call")}
        for _ in range(draw(st.integers(1, 3)))
    ]
    ai: BaseMessage
    if style == "tools":
        ai = AIMessage(content=content, tool_calls=calls)
    elif style == "chunk":
        ai = AIMessageChunk(
            content=content,
            tool_call_chunks=[
                tool_call_chunk(name=c["name"], args=json.dumps(c["args"]), id=c["id"], index=i)
                for i, c in enumerate(calls)
            ],
        )
    else:
        ai = AIMessage(
            content=content,
            additional_kwargs={
                "tool_calls": [
                    {
                        "id": c["id"],
                        "type": "function",
                        "function": {"name": c["name"], "arguments": json.dumps(c["args"])},
                    }
                    for c in calls
                ]
            },
        )
    if not results:
        return [ai]
    out: list[BaseMessage] = [ai]
    for answered_call in draw(st.permutations(calls)):
        tool_class = ToolMessageChunk if draw(st.integers(0, 4)) == 0 else ToolMessage
        out.append(tool_class(content=_text(draw, tags), tool_call_id=answered_call["id"]))
    return out


@st.composite
def conversations(draw: st.DrawFn, max_turns: int = 5, prefix: str = "") -> list[BaseMessage]:
    """A well-formed conversation: an optional leading system message, then turns of a
    human message, zero or more tool rounds and a plain AI answer; the last turn may be
    unfinished (ending after tool results, or after an AI message's tool calls)."""
    tags = Tags(prefix)
    messages: list[BaseMessage] = []
    if draw(st.booleans()):
        messages.append(SystemMessage(content=_text(draw, tags)))
    turns = draw(st.integers(1, max_turns))
    for turn in range(turns):
        messages.append(_human(draw, tags))
        for _ in range(draw(st.integers(0, 3))):
            messages.extend(_tool_round(draw, tags))
        ending = "answer"
        if turn == turns - 1:
            ending = draw(st.sampled_from(["answer", "answer", "after_results", "after_call"]))
        if ending == "answer":
            name = draw(st.none() | st.just("bot"))
            messages.append(AIMessage(content=_text(draw, tags), name=name))
        elif ending == "after_results" and not isinstance(messages[-1], HumanMessage):
            pass  # the turn stops after its last tool results
        elif ending == "after_call":
            messages.extend(_tool_round(draw, tags, results=False))
        else:
            messages.extend(_tool_round(draw, tags))
    return messages


@st.composite
def malformed_conversations(draw: st.DrawFn, prefix: str = "") -> list[BaseMessage]:
    """A well-formed conversation spoiled: orphan tool and function results, results put
    after a human message, missing results, extra system messages in the middle."""
    messages = list(draw(conversations(prefix=prefix)))
    tags = Tags(prefix + "x")
    for _ in range(draw(st.integers(1, 4))):
        operation = draw(
            st.sampled_from(
                [
                    "orphan_tool",
                    "orphan_function",
                    "human_before_result",
                    "result_after_human",
                    "missing_result",
                    "extra_system",
                ]
            )
        )
        results = [
            i for i, m in enumerate(messages) if isinstance(m, (ToolMessage, FunctionMessage))
        ]
        humans = [i for i, m in enumerate(messages) if isinstance(m, HumanMessage)]
        if operation == "orphan_tool":
            orphan = ToolMessage(content=_text(draw, tags), tool_call_id=tags("ghost"))
            messages.insert(draw(st.integers(0, len(messages))), orphan)
        elif operation == "orphan_function":
            orphan_fn = FunctionMessage(name=draw(NAMES), content=_text(draw, tags))
            messages.insert(draw(st.integers(0, len(messages))), orphan_fn)
        elif operation == "human_before_result" and results:
            messages.insert(draw(st.sampled_from(results)), _human(draw, tags))
        elif operation == "result_after_human" and results and humans:
            moved = messages.pop(draw(st.sampled_from(results)))
            humans = [i for i, m in enumerate(messages) if isinstance(m, HumanMessage)]
            messages.insert(draw(st.sampled_from(humans)) + 1, moved)
        elif operation == "missing_result" and results:
            del messages[draw(st.sampled_from(results))]
        elif operation == "extra_system":
            position = draw(st.integers(1, len(messages)))
            messages.insert(position, SystemMessage(content=_text(draw, tags)))
    return messages


def any_conversations(prefix: str = "") -> st.SearchStrategy[list[BaseMessage]]:
    return st.one_of(conversations(prefix=prefix), malformed_conversations(prefix=prefix))


def old_format(record: Record) -> Record:
    """An AI record as langchain-core < 0.2 stored it: tool calls only in
    additional_kwargs (no tool_calls, invalid_tool_calls or usage_metadata)."""
    data = {k: v for k, v in record["data"].items() if k not in OLD_FORMAT_MISSING}
    return {"type": record["type"], "data": data}


OLD_FORMAT_MISSING = frozenset({"tool_calls", "invalid_tool_calls", "usage_metadata"})


@st.composite
def stored_conversations(draw: st.DrawFn) -> list[Record]:
    """Records of any conversation, some as older writers stored them: AI messages in the
    old format, and records whose "type" is not their first key (read by decoding)."""
    records = []
    for message in draw(any_conversations()):
        record = norm(message)
        extra = record["data"].get("additional_kwargs") or {}
        if record["type"] == "ai" and extra.get("tool_calls") and draw(st.booleans()):
            record = old_format(record)
        if draw(st.integers(0, 5)) == 0:
            record = {"data": record["data"], "type": record["type"]}
        records.append(record)
    return records


# --------------------------------------------------------------------------------------
# Helpers: records, an independent reading of the rule's definitions
# --------------------------------------------------------------------------------------


def norm(message: BaseMessage) -> Record:
    """The record of a message as it comes back from Redis (JSON round trip)."""
    record: Record = json.loads(json.dumps(message_to_dict(message)))
    return record


def renorm(record: Record) -> Record:
    """A record through a LangChain message and back (how the LangChain class returns it)."""
    return norm(messages_from_dict([record])[0])


def key_of(record: Record) -> str:
    return json.dumps(record, sort_keys=True)


def rkind(record: Record) -> str:
    name = record["type"]
    if name == "human":
        return "h"
    if name == "system":
        return "s"
    return "t" if name in TOOL_TYPES else "o"


def makes_call_for(call: Record, result: Record) -> bool:
    """Whether ``call`` is an AI message making the call ``result`` answers."""
    if call["type"] not in AI_TYPES:
        return False
    data = call["data"]
    extra = data.get("additional_kwargs") or {}
    if result["type"] in ("function", "FunctionMessageChunk"):
        return bool(extra.get("function_call"))
    ids = {c.get("id") for c in (data.get("tool_calls") or [])}
    ids |= {c.get("id") for c in (extra.get("tool_calls") or [])}
    return result["data"].get("tool_call_id") in ids


def kept_results(records: Sequence[Record]) -> list[bool]:
    """True for every message but tool results whose call is not in the nearest message
    before them that is not a tool result (written here from the rule's text)."""
    keep: list[bool] = []
    nearest: Record | None = None
    for record in records:
        if rkind(record) != "t":
            nearest = record
            keep.append(True)
        else:
            keep.append(nearest is not None and makes_call_for(nearest, record))
    return keep


def drop_orphans(records: Sequence[Record]) -> list[Record]:
    return [r for r, keep in zip(records, kept_results(records), strict=True) if keep]


_TOKENS: dict[str, int] = {}


def lc_tokens(record: Record) -> int:
    """count_tokens_approximately of the message the record encodes."""
    key = key_of(record)
    if key not in _TOKENS:
        _TOKENS[key] = count_tokens_approximately(messages_from_dict([record]))
    return _TOKENS[key]


def additive_counter(messages: Sequence[BaseMessage]) -> int:
    """count_tokens_approximately summed message by message (it is additive anyway)."""
    return sum(count_tokens_approximately([m]) for m in messages)


def reference_cut(
    kinds: Sequence[str],
    costs: Sequence[int],
    *,
    count: int | None,
    tokens: int | None,
    human_only: bool,
    system_cost: int | None,
    lookback: int = QUESTION_LOOKBACK,
) -> tuple[bool, int | None, int]:
    """(system kept, question position, suffix start): the rule of the module docstring
    written out again, naively, over a complete history (system message left out)."""
    n = len(kinds)
    system = system_cost is not None
    count_left = math.inf if count is None else count - system
    tokens_left = math.inf if tokens is None else max(0, tokens - (system_cost or 0))
    if count_left <= 0:
        return system, None, n

    def newest_fitting(floor: int, count_budget: float, token_budget: float) -> int:
        taken, used = 0, 0
        while (
            n - taken > floor
            and taken < count_budget
            and used + costs[n - 1 - taken] <= token_budget
        ):
            used += costs[n - 1 - taken]
            taken += 1
        return n - taken

    def first_not_tool(low: int) -> int:
        return next((p for p in range(low, n) if kinds[p] != "t"), n)

    low = newest_fitting(0, count_left, tokens_left)  # rule 2
    starts = ("h",) if human_only else ("h", "s", "o")
    for p in range(low, n):
        if kinds[p] in starts:
            return system, None, p
    humans = [p for p in range(max(0, low - lookback), low) if kinds[p] == "h"]  # rule 3
    if not humans:
        return system, None, first_not_tool(low)
    question = humans[-1]
    if costs[question] > tokens_left:
        return system, None, n
    low = newest_fitting(low, count_left - 1, tokens_left - costs[question])
    return system, question, first_not_tool(low)


def rule_window(
    history: Sequence[Record],
    *,
    last: int | None,
    max_tokens: int | None,
    human_only: bool,
    keep_system: bool,
) -> list[Record]:
    """The window by the rule (reference_cut over the whole history, orphans dropped)."""
    if last == 0:
        return []
    has_system = keep_system and bool(history) and rkind(history[0]) == "s"
    body = list(history[1:] if has_system else history)
    system_cost = (lc_tokens(history[0]) if max_tokens is not None else 0) if has_system else None
    system, question, start = reference_cut(
        [rkind(r) for r in body],
        [lc_tokens(r) for r in body] if max_tokens is not None else [0] * len(body),
        count=last,
        tokens=max_tokens,
        human_only=human_only,
        system_cost=system_cost,
    )
    chosen = [history[0]] if system else []
    if question is not None:
        chosen.append(body[question])
    chosen.extend(body[start:])
    return drop_orphans(chosen)


def check_window(
    history: Sequence[Record],
    window: Sequence[Record],
    *,
    last: int | None,
    max_tokens: int | None,
    human_only: bool,
    keep_system: bool,
) -> None:
    """The invariants every window keeps (property b)."""
    where = {key_of(r): i for i, r in enumerate(history)}
    assert len(where) == len(history), "tags must make every message unique"
    positions = [where[key_of(r)] for r in window]  # KeyError: a message not stored
    assert positions == sorted(set(positions)), "window out of order or repeated"
    if last is not None:
        assert len(window) <= last
    has_system = keep_system and bool(history) and rkind(history[0]) == "s"
    if max_tokens is not None:
        # A kept system message larger than the budget is returned all the same (as
        # trim_messages does), and then nothing else; every other window must fit.
        if has_system and lc_tokens(history[0]) > max_tokens:
            assert all(lc_tokens(r) == 0 for r in window[1:])
        else:
            assert sum(lc_tokens(r) for r in window) <= max_tokens
    # No tool result without its call as the nearest non-tool message before it.
    assert all(kept_results(window)), "a tool result without its call"
    assert not window or rkind(window[0]) != "t"

    if has_system and (max_tokens is None or lc_tokens(history[0]) <= max_tokens):
        assert positions[:1] == [0], "the leading system message is not kept in front"
    front = [0] if has_system and positions[:1] == [0] else []
    rest = positions[len(front) :]

    def suffix_start(prefix: list[int], suffix: list[int]) -> int | None:
        """A start t with prefix + (history[t:] minus orphans) == prefix + suffix."""
        low = prefix[-1] + 1 if prefix else 0
        high = suffix[0] if suffix else len(history)
        for start in range(high, low - 1, -1):
            candidate = prefix + list(range(start, len(history)))
            keep = kept_results([history[i] for i in candidate])
            if [i for i, k in zip(candidate, keep, strict=True) if k] == prefix + suffix:
                return start
        return None

    start = suffix_start(front, rest)
    pinned = None
    if start is None and rest and rkind(history[rest[0]]) == "h":
        pinned = rest[0]
        start = suffix_start([*front, pinned], rest[1:])
    assert start is not None, f"not [system] + [question] + a suffix: {positions}"
    if pinned is not None:
        # The question of the current turn: the newest human message before the suffix,
        # pinned only because the suffix holds none.
        assert all(rkind(history[i]) != "h" for i in range(pinned + 1, len(history)))

    humans = [i for i, r in enumerate(history) if rkind(r) == "h"]
    question_in_reach = bool(humans) and len(history) - humans[-1] <= QUESTION_LOOKBACK
    room = (last is None or last >= 1 + has_system) and max_tokens is None
    if room and question_in_reach:
        assert rest, "empty window although a human message is stored"
    if human_only and question_in_reach and rest:
        assert rkind(history[rest[0]]) == "h", "window does not start on a human message"


def stores_for(client: redis.Redis, **options: Any) -> dict[str, ChatHistoryStore]:
    """One sync store per layout on the test's client."""
    return {
        name: ChatHistoryStore.with_settings(
            StoreSettings.build(layout=name, **options), client=client
        )
        for name in LAYOUTS
    }


def load(client: redis.Redis, stores: dict[str, ChatHistoryStore], records: list[Record]) -> None:
    client.flushdb()
    for store in stores.values():
        store.append(SESSION, records)
        assert store.messages(SESSION) == records


def read_all_layouts(stores: dict[str, ChatHistoryStore], **window: Any) -> list[Record]:
    """The window from every layout's store; they must all agree."""
    found = [store.messages(SESSION, **window) for store in stores.values()]
    for name, other in zip(LAYOUTS[1:], found[1:], strict=True):
        assert other == found[0], f"layout {name} differs from native"
    return found[0]


def is_only_system(result: Sequence[BaseMessage], messages: Sequence[BaseMessage]) -> bool:
    return len(result) == 1 and result[0] == messages[0] and isinstance(result[0], SystemMessage)


@pytest.fixture
def stores(client: redis.Redis) -> dict[str, ChatHistoryStore]:
    return stores_for(client)


# --------------------------------------------------------------------------------------
# a. Equality with langchain-core's trim_messages
# --------------------------------------------------------------------------------------


@_settings(60)
@given(messages=conversations())
def test_last_k_equals_trim_messages(
    client: redis.Redis, stores: dict[str, ChatHistoryStore], messages: list[BaseMessage]
) -> None:
    """last=k with start_on="human" is trim_messages(token_counter=len, start_on="human")
    wherever that gives more than nothing (or than the system message)."""
    records = [norm(m) for m in messages]
    load(client, stores, records)
    compared = 0
    for k in range(1, len(messages) + 3):
        for keep_system in (False, True):
            expected = trim_messages(
                messages,
                strategy="last",
                token_counter=len,
                max_tokens=k,
                start_on="human",
                include_system=keep_system,
                allow_partial=False,
            )
            if not expected or is_only_system(expected, messages):
                continue
            got = read_all_layouts(stores, last=k, start_on="human", keep_system=keep_system)
            assert got == [norm(m) for m in expected], (k, keep_system)
            compared += 1
    assert compared > 0


@_settings(50)
@given(messages=conversations(), data=st.data())
def test_max_tokens_equals_trim_messages(
    client: redis.Redis,
    stores: dict[str, ChatHistoryStore],
    messages: list[BaseMessage],
    data: st.DataObject,
) -> None:
    """max_tokens=N (default counter, and count_tokens_approximately passed as the
    token_counter of converted messages) is trim_messages with that counter."""
    records = [norm(m) for m in messages]
    load(client, stores, records)
    costs = [count_tokens_approximately([m]) for m in messages]
    total = sum(costs)
    # Budgets around the exact fits of the newest j messages (and the system message).
    boundaries = [sum(costs[len(costs) - j :]) for j in range(len(costs) + 1)]
    boundaries += [b + costs[0] for b in boundaries]
    budgets = data.draw(
        st.lists(
            st.integers(0, total + 10)
            | st.builds(
                lambda b, d: max(0, b + d), st.sampled_from(boundaries), st.integers(-1, 1)
            ),
            min_size=4,
            max_size=10,
        ),
        label="budgets",
    )
    compared = 0
    for budget in budgets:
        for keep_system in (False, True):
            expected = trim_messages(
                messages,
                strategy="last",
                token_counter=count_tokens_approximately,
                max_tokens=budget,
                start_on="human",
                include_system=keep_system,
                allow_partial=False,
            )
            assert expected == trim_messages(
                messages,
                strategy="last",
                token_counter=additive_counter,
                max_tokens=budget,
                start_on="human",
                include_system=keep_system,
                allow_partial=False,
            )
            if not expected or is_only_system(expected, messages):
                continue
            want = [norm(m) for m in expected]
            got = read_all_layouts(
                stores, max_tokens=budget, start_on="human", keep_system=keep_system
            )
            assert got == want, (budget, keep_system)
            converted = stores["native"].messages(
                SESSION,
                max_tokens=budget,
                token_counter=lambda m: count_tokens_approximately([m]),
                convert=lambda r: messages_from_dict([r])[0],
                start_on="human",
                keep_system=keep_system,
            )
            assert [norm(m) for m in converted] == [renorm(r) for r in want]
            compared += 1
    if budgets and max(budgets) >= total:
        assert compared > 0


# --------------------------------------------------------------------------------------
# b. Invariants of every window (and agreement with the rule over the whole history)
# --------------------------------------------------------------------------------------


@_settings(60)
@given(records=stored_conversations())
def test_count_windows_keep_the_invariants(
    client: redis.Redis, stores: dict[str, ChatHistoryStore], records: list[Record]
) -> None:
    load(client, stores, records)
    for human_only in (True, False):
        for keep_system in (False, True):
            for k in range(1, len(records) + 3):
                got = read_all_layouts(
                    stores,
                    last=k,
                    start_on="human" if human_only else "any",
                    keep_system=keep_system,
                )
                rule: dict[str, Any] = {"human_only": human_only, "keep_system": keep_system}
                check_window(records, got, last=k, max_tokens=None, **rule)
                assert got == rule_window(records, last=k, max_tokens=None, **rule), (k, rule)


@_settings(60)
@given(messages=any_conversations(), data=st.data())
def test_token_windows_keep_the_invariants(
    client: redis.Redis,
    stores: dict[str, ChatHistoryStore],
    messages: list[BaseMessage],
    data: st.DataObject,
) -> None:
    records = [norm(m) for m in messages]
    load(client, stores, records)
    total = sum(lc_tokens(r) for r in records)
    windows = data.draw(
        st.lists(
            st.tuples(
                st.integers(0, total + 10),
                st.none() | st.integers(1, len(records) + 2),
                st.booleans(),
                st.booleans(),
            ),
            min_size=4,
            max_size=12,
        ),
        label="windows (max_tokens, last, human_only, keep_system)",
    )
    for budget, last, human_only, keep_system in windows:
        got = read_all_layouts(
            stores,
            last=last,
            max_tokens=budget,
            start_on="human" if human_only else "any",
            keep_system=keep_system,
        )
        rule: dict[str, Any] = {"human_only": human_only, "keep_system": keep_system}
        check_window(records, got, last=last, max_tokens=budget, **rule)
        assert got == rule_window(records, last=last, max_tokens=budget, **rule)


# A kept system message larger than max_tokens is returned all the same, alone (as
# trim_messages(include_system=True) returns it): documented in _windows (rule 3) and
# the README.
@settings(
    max_examples=20,
    deadline=None,
    phases=(Phase.explicit, Phase.generate),  # no shrinking: the example below is minimal
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    messages=conversations(), fraction=st.floats(0, 1, exclude_max=True), any_start=st.booleans()
)
@example(
    messages=[SystemMessage("<m1>"), HumanMessage("<m2>"), AIMessage("<m3>")],
    fraction=0.0,
    any_start=False,
)
def test_kept_system_message_over_the_token_budget_comes_alone(
    client: redis.Redis,
    stores: dict[str, ChatHistoryStore],
    messages: list[BaseMessage],
    fraction: float,
    any_start: bool,
) -> None:
    """With keep_system, a system message alone larger than max_tokens is the whole
    window: nothing else is returned over the budget."""
    records = [norm(m) for m in messages]
    assume(rkind(records[0]) == "s")
    load(client, stores, records)
    budget = int(fraction * lc_tokens(records[0]))  # less than the system message
    start_on = "any" if any_start else "human"
    got = read_all_layouts(stores, max_tokens=budget, start_on=start_on, keep_system=True)
    assert got == [records[0]], got


@_settings(15)
@given(data=st.data())
def test_windows_of_long_histories(
    client: redis.Redis, stores: dict[str, ChatHistoryStore], data: st.DataObject
) -> None:
    """Histories longer than the first read of a window (32 messages for token windows),
    including a long agent turn, so reads have to grow."""
    history: list[BaseMessage] = []
    for part in range(data.draw(st.integers(2, 5), label="parts")):
        history += data.draw(any_conversations(f"p{part}"), label="part")
    tags = Tags("long")
    # One long agent turn at the end: a question, then many tool rounds.
    history.append(HumanMessage(content=f"<{tags()}> long task"))
    for _ in range(data.draw(st.integers(5, 25), label="rounds")):
        call_id = tags("call")
        history.append(
            AIMessage(
                content=f"<{tags()}>", tool_calls=[{"name": "calc", "args": {}, "id": call_id}]
            )
        )
        history.append(ToolMessage(content=f"<{tags()}>", tool_call_id=call_id))
    records = [norm(m) for m in history]
    load(client, stores, records)
    total = sum(lc_tokens(r) for r in records)
    for _ in range(6):
        last = data.draw(st.none() | st.integers(1, len(records) + 2), label="last")
        budget = data.draw(st.none() | st.integers(0, total + 10), label="max_tokens")
        if last is None and budget is None:
            last = len(records) // 2
        human_only, keep_system = data.draw(st.booleans()), data.draw(st.booleans())
        got = read_all_layouts(
            stores,
            last=last,
            max_tokens=budget,
            start_on="human" if human_only else "any",
            keep_system=keep_system,
        )
        rule: dict[str, Any] = {"human_only": human_only, "keep_system": keep_system}
        check_window(records, got, last=last, max_tokens=budget, **rule)
        assert got == rule_window(records, last=last, max_tokens=budget, **rule)


# --------------------------------------------------------------------------------------
# c. max_messages trims (the Lua twin) against the Python rule
# --------------------------------------------------------------------------------------


def trim_model(
    records: list[Record], cap: int, human_only: bool, keep_system: bool
) -> list[Record]:
    """What a trim to ``cap`` messages keeps of ``records`` by the Python rule."""
    if len(records) <= cap:
        return records
    has_system = keep_system and rkind(records[0]) == "s"
    body = records[1:] if has_system else records
    cut = choose(
        [rkind(r) for r in body],
        count=cap,
        human_only=human_only,
        system_cost=0 if has_system else None,
        complete=True,
    )
    assert cut is not None
    kept = [records[0]] if cut.system else []
    if cut.question is not None:
        kept.append(body[cut.question])
    return kept + body[cut.start :]


def batches_of(draw: st.DataObject, records: list[Record]) -> list[list[Record]]:
    if draw.draw(st.booleans(), label="one at a time"):
        return [[r] for r in records]
    batches, position = [], 0
    while position < len(records):
        size = draw.draw(st.integers(1, 6), label="batch size")
        batches.append(records[position : position + size])
        position += size
    return batches


def check_trim(before: list[Record], after: list[Record], cap: int) -> None:
    """(i) at most cap messages; (iii) no answered tool result loses its call."""
    assert len(after) <= cap
    answered_before = {
        key_of(r)
        for r, keep in zip(before, kept_results(before), strict=True)
        if keep and rkind(r) == "t"
    }
    kept_after = kept_results(after)
    for record, keep in zip(after, kept_after, strict=True):
        if key_of(record) in answered_before:
            assert keep, f"the trim cut the call of {record['data'].get('content')!r}"


@_settings(80)
@given(records=stored_conversations(), data=st.data())
def test_trims_keep_what_the_rule_keeps(
    client: redis.Redis, records: list[Record], data: st.DataObject
) -> None:
    cap = data.draw(st.integers(1, 12), label="max_messages")
    human_only = data.draw(st.booleans(), label="human_only")
    keep_system = data.draw(st.booleans(), label="keep_system")
    trimming = stores_for(
        client,
        max_messages=cap,
        start_on="human" if human_only else "any",
        keep_system=keep_system,
    )
    batches = batches_of(data, records)
    client.flushdb()
    expected: list[Record] = []
    for batch in batches:
        before = expected + batch
        expected = trim_model(before, cap, human_only, keep_system)
        for name, store in trimming.items():
            length = store.append(SESSION, batch)
            stored = store.messages(SESSION)
            assert stored == expected, (name, cap, human_only, keep_system, len(before))
            assert length == len(stored)
            assert store.count(SESSION) == len(stored)
        check_trim(before, expected, cap)


# --------------------------------------------------------------------------------------
# The asyncio store and the LangChain class give the sync store's answers
# --------------------------------------------------------------------------------------


@_settings(15)
@given(messages=any_conversations(), data=st.data())
def test_async_and_langchain_agree_with_the_sync_store(
    client: redis.Redis,
    redis_url: str,
    stores: dict[str, ChatHistoryStore],
    messages: list[BaseMessage],
    data: st.DataObject,
) -> None:
    records = [norm(m) for m in messages]
    load(client, stores, records)
    total = sum(lc_tokens(r) for r in records)
    queries = data.draw(
        st.lists(
            st.tuples(
                st.none() | st.integers(1, len(records) + 2),
                st.none() | st.integers(0, total + 5),
                st.sampled_from(["human", "any"]),
                st.booleans(),
            ).map(lambda q: q if q[0] is not None or q[1] is not None else (1, *q[1:])),
            min_size=2,
            max_size=5,
        ),
        label="queries (last, max_tokens, start_on, keep_system)",
    )
    expected = {
        (name, query): store.messages(
            SESSION, last=query[0], max_tokens=query[1], start_on=query[2], keep_system=query[3]
        )
        for name, store in stores.items()
        for query in queries
    }

    def history(name: str, query: tuple[Any, ...], aclient: Any) -> RedisChatMessageHistory:
        return RedisChatMessageHistory(
            SESSION,
            client=client,
            async_client=aclient,
            layout=name,
            start_on=query[2],
            keep_system=query[3],
            window=query[0],
            window_tokens=query[1] if query[1] else None,
        )

    async def read_async() -> None:
        aclient = redis.asyncio.Redis.from_url(redis_url)
        try:
            for name in LAYOUTS:
                store = AsyncChatHistoryStore(aclient, layout=name)
                for query in queries:
                    last, budget, start_on, keep_system = query
                    want = expected[name, query]
                    got = await store.messages(
                        SESSION,
                        last=last,
                        max_tokens=budget,
                        start_on=start_on,
                        keep_system=keep_system,
                    )
                    assert got == want, ("async", name, query)
                    lc = history(name, query, aclient)
                    found = await lc.aget_messages(last=last, max_tokens=budget)
                    assert [norm(m) for m in found] == [renorm(r) for r in want], ("aget", query)
                    if budget != 0:  # window_tokens must be >= 1
                        found = await lc.aget_messages()
                        assert [norm(m) for m in found] == [renorm(r) for r in want]
        finally:
            await aclient.aclose()

    asyncio.run(read_async())
    for name in LAYOUTS:
        for query in queries:
            last, budget, _start_on, _keep_system = query
            want = [renorm(r) for r in expected[name, query]]
            lc = history(name, query, None)
            assert [norm(m) for m in lc.get_messages(last=last, max_tokens=budget)] == want
            if budget != 0:
                assert [norm(m) for m in lc.messages] == want, ("messages", name, query)


@_settings(25)
@given(messages=any_conversations(), data=st.data())
def test_langchain_trims_agree_with_the_store(
    client: redis.Redis, messages: list[BaseMessage], data: st.DataObject
) -> None:
    """add_messages with max_messages trims as the store does (same rule, same script)."""
    cap = data.draw(st.integers(1, 12), label="max_messages")
    start_on = data.draw(st.sampled_from(["human", "any"]), label="start_on")
    keep_system = data.draw(st.booleans(), label="keep_system")
    records = [norm(m) for m in messages]
    batches = batches_of(data, records)
    client.flushdb()
    expected: list[Record] = []
    for name in LAYOUTS:
        lc = RedisChatMessageHistory(
            f"lc-{name}",
            client=client,
            layout=name,
            max_messages=cap,
            start_on=start_on,
            keep_system=keep_system,
        )
        expected = []
        position = 0
        for batch in batches:
            expected = trim_model(expected + batch, cap, start_on == "human", keep_system)
            lc.add_messages(messages[position : position + len(batch)])
            position += len(batch)
            assert lc.store.messages(lc.session_id) == expected, (name, cap)


# --------------------------------------------------------------------------------------
# d. approximate_tokens is count_tokens_approximately; e. answered() on good conversations
# --------------------------------------------------------------------------------------

BLOCKS = st.one_of(
    TEXT,
    st.builds(lambda t: {"type": "text", "text": t}, TEXT),
    IMAGE_BLOCKS,
    st.just({"type": "image", "source_type": "url", "url": "https://example.com/x.png"}),
    st.builds(lambda t: {"type": "thinking", "thinking": t}, TEXT),
)
CONTENT = TEXT | st.lists(BLOCKS, max_size=4)
OPTIONAL_NAME = st.none() | st.sampled_from(["", "a", "assistant_7", "ünïcode"])
TOOL_CALLS = st.lists(
    st.builds(lambda n, a, i: {"name": n, "args": a, "id": i}, NAMES, ARGS, TEXT), max_size=3
)


@st.composite
def any_message(draw: st.DrawFn) -> BaseMessage:
    content = draw(CONTENT)
    name = draw(OPTIONAL_NAME)
    kind = draw(
        st.sampled_from(
            [
                "human",
                "human_chunk",
                "ai",
                "ai_tools",
                "ai_chunk",
                "ai_function",
                "ai_legacy_tools",
                "tool",
                "tool_chunk",
                "function",
                "function_chunk",
                "system",
                "system_role",
                "system_chunk",
                "chat",
                "chat_chunk",
            ]
        )
    )
    if kind == "human":
        return HumanMessage(content=content, name=name)
    if kind == "human_chunk":
        return HumanMessageChunk(content=content, name=name)
    if kind == "ai":
        return AIMessage(content=content, name=name)
    if kind == "ai_tools":
        return AIMessage(content=content, name=name, tool_calls=draw(TOOL_CALLS))
    if kind == "ai_chunk":
        calls = draw(TOOL_CALLS)
        chunks = [
            tool_call_chunk(name=c["name"], args=json.dumps(c["args"]), id=c["id"], index=i)
            for i, c in enumerate(calls)
        ]
        return AIMessageChunk(content=content, name=name, tool_call_chunks=chunks)
    if kind == "ai_function":
        call = {"name": draw(NAMES), "arguments": json.dumps(draw(ARGS))}
        return AIMessage(content=content, name=name, additional_kwargs={"function_call": call})
    if kind == "ai_legacy_tools":
        legacy = [
            {
                "id": c["id"],
                "type": "function",
                "function": {"name": c["name"], "arguments": json.dumps(c["args"])},
            }
            for c in draw(TOOL_CALLS)
        ]
        return AIMessage(content=content, name=name, additional_kwargs={"tool_calls": legacy})
    if kind in ("tool", "tool_chunk"):
        tool_class = ToolMessage if kind == "tool" else ToolMessageChunk
        return tool_class(content=content, name=name, tool_call_id=draw(TEXT))
    if kind in ("function", "function_chunk"):
        function_class = FunctionMessage if kind == "function" else FunctionMessageChunk
        return function_class(content=content, name=draw(NAMES))
    if kind == "system":
        return SystemMessage(content=content, name=name)
    if kind == "system_role":
        return SystemMessage(content=content, additional_kwargs={"__openai_role__": "developer"})
    if kind == "system_chunk":
        return SystemMessageChunk(content=content, name=name)
    role = draw(st.sampled_from(["critic", "user", "x"]))
    chat_class = ChatMessage if kind == "chat" else ChatMessageChunk
    return chat_class(content=content, name=name, role=role)


@settings(max_examples=400, deadline=None)
@given(message=any_message())
def test_approximate_tokens_is_count_tokens_approximately(message: BaseMessage) -> None:
    expected = count_tokens_approximately([message])
    assert approximate_tokens(message_to_dict(message)) == expected
    assert approximate_tokens(norm(message)) == expected


# Records of langchain-core < 0.2 hold tool calls only in additional_kwargs["tool_calls"];
# the message they decode to has them parsed into .tool_calls, which
# count_tokens_approximately counts, so approximate_tokens() must count them too.
@settings(
    max_examples=50,
    deadline=None,
    phases=(Phase.explicit, Phase.generate),
    suppress_health_check=[HealthCheck.filter_too_much],
)
@given(message=any_message().filter(lambda m: bool(m.additional_kwargs.get("tool_calls"))))
@example(
    message=AIMessage(
        "",
        additional_kwargs={
            "tool_calls": [
                {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ]
        },
    )
)
def test_approximate_tokens_of_old_format_records(message: BaseMessage) -> None:
    record = old_format(norm(message))
    assert approximate_tokens(record) == count_tokens_approximately(messages_from_dict([record]))


@settings(max_examples=200, deadline=None)
@given(messages=conversations(max_turns=6))
def test_answered_keeps_every_message_of_a_well_formed_conversation(
    messages: list[BaseMessage],
) -> None:
    records = [norm(m) for m in messages]
    assert answered(records) == [True] * len(records)
    assert kept_results(records) == [True] * len(records)  # the test's own reading agrees


@settings(max_examples=200, deadline=None)
@given(records=stored_conversations())
def test_answered_matches_the_rule_text(records: list[Record]) -> None:
    """answered() is rule 4 as the test reads it, on malformed conversations and old
    records too."""
    assert answered(records) == kept_results(records)


@settings(max_examples=100, deadline=None)
@given(messages=conversations(max_turns=6))
def test_answered_keeps_old_format_records_of_a_well_formed_conversation(
    messages: list[BaseMessage],
) -> None:
    records = [
        old_format(norm(m)) if m.additional_kwargs.get("tool_calls") else norm(m) for m in messages
    ]
    assert answered(records) == [True] * len(records)


KINDS = st.lists(st.sampled_from("hhtttoos"), max_size=30)


@settings(max_examples=1500, deadline=None)
@given(
    kinds=KINDS,
    data=st.data(),
    count=st.none() | st.integers(0, 32),
    tokens=st.none() | st.integers(0, 40),
    human_only=st.booleans(),
    system_cost=st.none() | st.integers(0, 6),
    lookback=st.integers(1, 8) | st.just(QUESTION_LOOKBACK),
)
def test_choose_is_the_rule(
    kinds: list[str],
    data: st.DataObject,
    count: int | None,
    tokens: int | None,
    human_only: bool,
    system_cost: int | None,
    lookback: int,
) -> None:
    """choose() over a complete history is the rule written out naively; over the newest
    messages only it answers the same or asks for more (never a different window)."""
    costs = data.draw(st.lists(st.integers(0, 6), min_size=len(kinds), max_size=len(kinds)))
    rule: dict[str, Any] = {"count": count, "tokens": tokens, "human_only": human_only}
    cut = choose(
        kinds,
        cost=costs.__getitem__,
        system_cost=system_cost,
        complete=True,
        lookback=lookback,
        **rule,
    )
    assert cut is not None
    assert tuple(cut) == reference_cut(
        kinds, costs, system_cost=system_cost, lookback=lookback, **rule
    )
    n = len(kinds)
    for newest in range(n):  # a read of only the newest messages
        offset = n - newest
        partial = choose(
            kinds[offset:],
            cost=costs[offset:].__getitem__,
            system_cost=system_cost,
            complete=False,
            lookback=lookback,
            **rule,
        )
        if partial is not None:
            shifted = (
                partial.system,
                None if partial.question is None else partial.question + offset,
                partial.start + offset,
            )
            assert shifted == tuple(cut), newest
