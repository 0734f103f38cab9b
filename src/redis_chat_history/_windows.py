"""Windows that never break a chat: which of a session's newest messages a windowed read
returns (``last=k``, ``max_tokens=N``) and a ``max_messages`` trim keeps.

Chat APIs refuse a history that starts with a tool result whose call was cut off (OpenAI
and Anthropic answer 400), and Anthropic one that starts with an assistant turn; a raw
"newest k" slice produces both, and a trim that does keeps producing them. So every
window follows one rule, written twice: here for reads (in the client, which has the
elements anyway) and in :data:`WINDOW_LUA` for the trim inside the append script. The
property tests hold the two to each other and to langchain-core's ``trim_messages``.

The rule, for a budget of k messages (or N tokens):

1. With ``keep_system`` a system message at the start of the history is kept in front
   and counts against the budget.
2. Take the newest messages that fit the budget; the window starts at the first of them
   that is a human message (``start_on="human"``, as ``trim_messages`` does) or that is
   not a tool result (``start_on="any"``). A window is a suffix of the history, so the
   results of every tool call in it are in it too.
3. If none qualifies (one long agent turn: 40 tool steps after the last human message),
   the window is that turn's human message (looked for up to QUESTION_LOOKBACK messages
   further back) followed by the newest messages that fit the rest of the budget and
   start at a message that is not a tool result. The budget is not exceeded, the
   window still starts on a human message, and the model still sees the question.
   (Only a kept system message is returned even when it alone exceeds a token budget,
   as ``trim_messages`` returns it.)
   Without such a message the window is the newest messages that fit and start at a
   message that is not a tool result (possibly none).
4. Reads also leave out tool results already stored without their call (orphans written
   by other code): a tool result is kept only when the nearest message before it that is
   not a tool result is an AI message holding its call id (or, for a legacy
   FunctionMessage, a ``function_call``; invalid tool calls count too).

Messages are told apart by the ``"type"`` their element starts with (the upstream format
puts it first, so the script reads it without decoding the element; other JSON is
decoded): human, system (and its chunk: ``trim_messages`` keeps a leading one), tool
result (tool, function and their chunks), or other. A ``HumanMessageChunk`` is not a
human message (``trim_messages`` compares type names).
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, TypeVar

from . import codec
from ._plan import Call, Flow, Plan, Script, WrongTypeReply
from ._validate import check_session_id
from .errors import CorruptMessageError, InvalidOptionError
from .settings import StoreSettings, check_start_on

__all__ = [
    "HUMAN",
    "OTHER",
    "QUESTION_LOOKBACK",
    "SYSTEM",
    "TOOL",
    "WINDOW_LUA",
    "Cut",
    "answered",
    "approximate_tokens",
    "choose",
    "kind",
    "window_flow",
]

T = TypeVar("T")

HUMAN, SYSTEM, TOOL, OTHER = "h", "s", "t", "o"
#: How many messages before a window the question of the current turn is looked for.
QUESTION_LOOKBACK = 1000
#: Messages a token window reads first; each further read takes four times as many.
FIRST_TOKEN_READ = 32
#: The largest LRANGE count (Redis list indexes are signed 64-bit).
_MAX_COUNT = 2**63 - 1

_TOOL_TYPES = frozenset({"tool", "function", "ToolMessageChunk", "FunctionMessageChunk"})
_AI_TYPES = frozenset({"ai", "AIMessageChunk"})
_TYPE_PREFIX = re.compile(rb'\{"type": "([A-Za-z0-9_]+)"')


def _kind_of_type(name: object) -> str:
    if name == "human":
        return HUMAN
    if name in ("system", "SystemMessageChunk"):
        return SYSTEM
    return TOOL if name in _TOOL_TYPES else OTHER


def kind(element: bytes | str) -> str:
    """HUMAN, SYSTEM, TOOL (a tool or function result) or OTHER, from the element's type."""
    raw = element if isinstance(element, bytes) else element.encode("utf-8", "surrogatepass")
    match = _TYPE_PREFIX.match(raw)
    if match is not None:
        return _kind_of_type(match.group(1).decode())
    try:
        value = codec.loads(raw)
    except (ValueError, RecursionError):
        return OTHER
    return _kind_of_type(value.get("type")) if isinstance(value, dict) else OTHER


class Cut(NamedTuple):
    """A window: the system message kept in front (if any), the question of the current
    turn (a position, or None), and the first position of the suffix that follows."""

    system: bool
    question: int | None
    start: int


def choose(
    kinds: Sequence[str],
    *,
    count: int | None,
    tokens: int | None = None,
    cost: Callable[[int], int] | None = None,
    human_only: bool = True,
    system_cost: int | None = None,
    complete: bool = True,
    lookback: int = QUESTION_LOOKBACK,
) -> Cut | None:
    """The window (see the module docstring) over the newest messages read.

    ``kinds`` are those messages' kinds, oldest first, without a system message kept in
    front; ``system_cost`` is that message's cost (None: none is kept). ``count`` and
    ``tokens`` are the budgets (None: no limit), ``cost(i)`` the tokens of ``kinds[i]``.
    ``complete`` says the messages reach the start of the history; if they do not and
    the answer depends on older ones, the result is None: read more and ask again.
    """
    n = len(kinds)
    system = system_cost is not None
    count_left = math.inf if count is None else count - system
    tokens_left = math.inf if tokens is None else max(0, tokens - (system_cost or 0))
    if count_left <= 0:
        return Cut(system, None, n)

    def fitting(floor: int, count_budget: float, token_budget: float) -> tuple[int, bool]:
        """The oldest position of the newest messages (not before ``floor``) that fit,
        and whether the budgets would take more of them."""
        low, used = n, 0
        while low > floor and n - low < count_budget:
            spent = cost(low - 1) if cost is not None else 0
            if used + spent > token_budget:
                return low, False
            used += spent
            low -= 1
        return low, n - low < count_budget

    low, wants_more = fitting(0, count_left, tokens_left)
    if wants_more and not complete:
        return None
    starts = (HUMAN,) if human_only else (HUMAN, SYSTEM, OTHER)
    for position in range(low, n):
        if kinds[position] in starts:
            return Cut(system, None, position)
    floor = low - lookback
    question = next((p for p in range(low - 1, max(floor, 0) - 1, -1) if kinds[p] == HUMAN), None)
    if question is None and floor < 0 and not complete:
        return None
    if question is not None:
        question_cost = cost(question) if cost is not None else 0
        if question_cost > tokens_left:
            return Cut(system, None, n)  # not even the question fits
        low, _ = fitting(low, count_left - 1, tokens_left - question_cost)
    start = next((p for p in range(low, n) if kinds[p] != TOOL), n)
    return Cut(system, question, start)


def _calls_of(record: codec.Record) -> tuple[frozenset[str], bool]:
    """The tool call ids of an AI message, and whether it makes a legacy function call."""
    if record["type"] not in _AI_TYPES:
        return frozenset(), False
    data = record["data"]
    extra = data.get("additional_kwargs")
    extra = extra if isinstance(extra, dict) else {}
    ids: set[str] = set()
    # Invalid tool calls count: providers' adapters send them as tool calls, and answer
    # them with an error result.
    for calls in (data.get("tool_calls"), data.get("invalid_tool_calls"), extra.get("tool_calls")):
        if isinstance(calls, list):
            ids.update(
                call["id"]
                for call in calls
                if isinstance(call, dict) and isinstance(call.get("id"), str)
            )
    return frozenset(ids), bool(extra.get("function_call"))


def answered(records: Sequence[codec.Record]) -> list[bool]:
    """Which records a window keeps: all but tool results whose call is not the nearest
    message before them that is not a tool result (rule 4 of the module docstring)."""
    keep = []
    ids: frozenset[str] = frozenset()
    legacy = False
    for record in records:
        name = record["type"]
        if name not in _TOOL_TYPES:
            ids, legacy = _calls_of(record)
            keep.append(True)
        elif name in ("tool", "ToolMessageChunk"):
            call_id = record["data"].get("tool_call_id")
            keep.append(isinstance(call_id, str) and call_id in ids)
        else:
            keep.append(legacy)
    return keep


_ROLES = {
    "ai": "assistant",
    "AIMessageChunk": "assistant",
    "human": "user",
    "HumanMessageChunk": "user",
    "tool": "tool",
    "ToolMessageChunk": "tool",
    "function": "function",
    "FunctionMessageChunk": "function",
}


def _legacy_calls(data: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The tool calls langchain-core reads from an AI record of before 0.2 (only in
    ``additional_kwargs``), as it parses them (valid JSON arguments only)."""
    if any(data.get(field) for field in ("invalid_tool_calls", "tool_call_chunks")):
        return None
    extra = data.get("additional_kwargs")
    raw = extra.get("tool_calls") if isinstance(extra, dict) else None
    if not isinstance(raw, list):
        return None
    calls = []
    for call in raw:
        try:
            function = call["function"]
            args = json.loads(function["arguments"])
            calls.append(
                {
                    "name": function["name"] or "",
                    "args": args or {},
                    "id": call.get("id"),
                    "type": "tool_call",
                }
            )
        except (TypeError, KeyError, ValueError, AttributeError):
            continue
    return calls


def approximate_tokens(record: codec.Record) -> int:
    """The tokens of a message record as langchain-core's ``count_tokens_approximately``
    counts the message (its defaults): a quarter of the characters of the text, tool
    calls, tool call id, role and name, rounded up, plus 85 per image and 3 per message."""
    name, data = record["type"], record["data"]
    content = data.get("content")
    chars = tokens = 0
    if isinstance(content, str):
        chars += len(content)
    elif isinstance(content, list):
        for block in content:
            if isinstance(block, str):
                chars += len(block)
            elif isinstance(block, dict) and block.get("type", "") in ("image", "image_url"):
                tokens += 85
            elif isinstance(block, dict) and block.get("type", "") == "text":
                chars += len(block.get("text", ""))
            else:
                chars += len(repr(block))
    else:
        chars += len(repr(content))
    calls = data.get("tool_calls") or (_legacy_calls(data) if name == "ai" else None)
    if name in _AI_TYPES and not isinstance(content, list) and calls:
        chars += len(repr(calls))
    if name in ("tool", "ToolMessageChunk"):
        chars += len(str(data.get("tool_call_id", "")))
    role = _ROLES.get(name)
    if role is None:
        extra = data.get("additional_kwargs")
        if name in ("system", "SystemMessageChunk"):
            role = extra.get("__openai_role__", "system") if isinstance(extra, dict) else "system"
        else:
            role = data.get("role", "")
    chars += len(str(role))
    if data.get("name"):
        chars += len(str(data["name"]))
    return tokens + math.ceil(chars / 4) + 3


# The trim's twin of kind() and choose() (count budget only), for the append script.
# trim_window(key, n, cap, human_only, keep_system, newest_first) leaves the window of
# at most cap messages of the list (n > cap) and returns its new length. Elements are read
# in small chunks from where the rule looks (the window's start, and backwards for the
# question), so a trim costs a few elements, not the list. Messages kept in front of the
# suffix (the system message, the question) are put back after the LTRIM; a list cut to
# nothing but them keeps its ttl.
WINDOW_LUA = f"""
local function window_kind(element)
  local name = string.match(element, '^{{"type": "([%w_]+)"')
  if not name then
    local ok, value = pcall(cjson.decode, element)
    if not ok or type(value) ~= 'table' or type(value['type']) ~= 'string' then
      return 'o'
    end
    name = value['type']
  end
  if name == 'human' then
    return 'h'
  elseif name == 'system' or name == 'SystemMessageChunk' then
    return 's'
  elseif name == 'tool' or name == 'function' or name == 'ToolMessageChunk'
      or name == 'FunctionMessageChunk' then
    return 't'
  end
  return 'o'
end
local function trim_window(key, n, cap, human_only, keep_system, newest_first)
  local cache = {{}}
  local function kind_at(p, forward)
    if cache[p] == nil then
      local a, b = p, math.min(n - 1, p + 15)
      if not forward then
        a, b = math.max(0, p - 15), p
      end
      if newest_first then
        local items = redis.call('LRANGE', key, n - 1 - b, n - 1 - a)
        for i = 1, #items do
          cache[b - i + 1] = items[i]
        end
      else
        local items = redis.call('LRANGE', key, a, b)
        for i = 1, #items do
          cache[a + i - 1] = items[i]
        end
      end
    end
    return window_kind(cache[p])
  end
  local first, budget, system = 0, cap, false
  if keep_system and kind_at(0, true) == 's' then
    first, budget, system = 1, cap - 1, true
  end
  local low, start, question = math.max(first, n - budget), n, -1
  if budget > 0 then
    for p = low, n - 1 do
      local found = kind_at(p, true)
      if (human_only and found == 'h') or (not human_only and found ~= 't') then
        start = p
        break
      end
    end
    if start == n then
      for p = low - 1, math.max(first, low - {QUESTION_LOOKBACK}), -1 do
        if kind_at(p, false) == 'h' then
          question = p
          break
        end
      end
      local from = low
      if question >= 0 then
        from = math.max(low, n - (budget - 1))
      end
      for p = from, n - 1 do
        if kind_at(p, true) ~= 't' then
          start = p
          break
        end
      end
    end
  end
  local keep_from = start
  if question >= 0 and question == keep_from - 1 then
    keep_from, question = question, -1
  end
  if system and keep_from == 1 then
    keep_from, system = 0, false
  end
  if keep_from == 0 then
    return n
  end
  local saved = {{}}
  if system then
    saved[#saved + 1] = cache[0]
  end
  if question >= 0 then
    saved[#saved + 1] = cache[question]
  end
  local pttl = -1
  if keep_from >= n then
    pttl = redis.call('PTTL', key)
    redis.call('DEL', key)
  elseif newest_first then
    redis.call('LTRIM', key, 0, n - 1 - keep_from)
  else
    redis.call('LTRIM', key, keep_from, -1)
  end
  for i = #saved, 1, -1 do
    redis.call(newest_first and 'RPUSH' or 'LPUSH', key, saved[i])
  end
  if pttl > 0 and #saved > 0 then
    redis.call('PEXPIRE', key, pttl)
  end
  return n - keep_from + #saved
end
"""

# KEYS: the list. ARGV: the LRANGE bounds of the newest elements, the oldest element's
# index (-1 or 0). Reply: {length, the oldest element, {the newest elements in list order}},
# read at once so the oldest element (a system message kept in front) is known to be
# position 0. Bounds stay strings: Lua numbers are doubles, list indexes 64-bit integers.
SNAPSHOT_SCRIPT = Script("""
local n = redis.pcall('LLEN', KEYS[1])
if type(n) == 'table' then
  if not string.find(n['err'], 'WRONGTYPE', 1, true) then
    return n
  end
  return {'WRONGTYPE', 1, redis.call('TYPE', KEYS[1])['ok']}
end
if n == 0 then
  return {0, false, {}}
end
return {n, redis.call('LINDEX', KEYS[1], ARGV[3]), redis.call('LRANGE', KEYS[1], ARGV[1], ARGV[2])}
""")
SNAPSHOT_TYPES = WrongTypeReply(("list",))


class _Snapshot(NamedTuple):
    """The newest elements of a list read at once (oldest first), their list indices, the
    oldest element of the list when asked for, and whether they are the whole list."""

    elements: list[bytes]
    indices: list[int]
    oldest: bytes | None
    oldest_index: int
    complete: bool


def _plan_snapshot(
    settings: StoreSettings, key: str, size: int, with_oldest: bool
) -> Plan[_Snapshot]:
    layout = settings.layout
    window = layout.last_window(size)
    oldest_index = -1 if layout.newest_first else 0

    def indices(count: int) -> list[int]:
        return list(layout.chronological(layout.indices(window, count)))

    if not with_oldest:

        def parse_range(replies: list[Any]) -> _Snapshot:
            found = replies[0]
            complete = len(found) < size
            return _Snapshot(
                layout.chronological(found), indices(len(found)), None, oldest_index, complete
            )

        return Plan((Call(("LRANGE", key, *window), raw=True),), parse_range, (key, "list"))

    def parse_script(replies: list[Any]) -> _Snapshot:
        length, oldest, found = SNAPSHOT_TYPES.check(replies[0], (key,))
        elements = layout.chronological(found)
        return _Snapshot(
            elements, indices(len(found)), oldest or None, oldest_index, int(length) <= size
        )

    args = (*window, oldest_index)
    call = Call(args, script=SNAPSHOT_SCRIPT, keys=(key,), raw=True)
    return Plan((call,), parse_script)


def _check_budget(name: str, value: Any) -> int | None:
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_COUNT
    ):
        raise InvalidOptionError(
            f"{name} must be None or an int from 0 to 2**63 - 1, got {value!r}"
        )
    return value


def window_flow(
    settings: StoreSettings,
    session_id: str,
    *,
    last: int | None,
    max_tokens: int | None = None,
    token_counter: Callable[[Any], int] | None = None,
    start_on: str | None = None,
    keep_system: bool | None = None,
    strict: bool | None = None,
    convert: Callable[[codec.Record], T] | None = None,
) -> Flow[list[Any]]:
    """The newest messages within ``last`` messages and ``max_tokens`` tokens, cut by the
    window rule (the module docstring), oldest first; ``start_on`` and ``keep_system``
    default to the store's settings. Tokens are counted by ``token_counter`` on what
    ``convert`` makes of each record (default: :func:`approximate_tokens` of the record).

    One round trip when the newest ``last`` messages (or the first FIRST_TOKEN_READ of a
    token window) hold the answer; else the read grows fourfold, each time in one round
    trip, and the answer comes from the last read alone, so it is a consistent view.
    """
    check_session_id(session_id)
    _check_budget("last", last)
    _check_budget("max_tokens", max_tokens)
    human_only = check_start_on(settings.start_on if start_on is None else start_on) == "human"
    keep_system = settings.keep_system if keep_system is None else keep_system
    if not isinstance(keep_system, bool):
        raise InvalidOptionError(f"keep_system must be a bool, not {type(keep_system).__name__}")
    if token_counter is not None and not callable(token_counter):
        raise InvalidOptionError("token_counter must be a callable taking one message")
    if last == 0:
        return []
    use_strict = settings.strict if strict is None else strict
    key = settings.layout.messages_key(session_id)
    decoded = _Decoded(key, convert, use_strict, token_counter, max_tokens is not None)
    size = _MAX_COUNT if last is None else last
    if max_tokens is not None:
        size = min(size, FIRST_TOKEN_READ)
    while True:
        snapshot: _Snapshot = yield _plan_snapshot(settings, key, size, keep_system)
        elements, indices = snapshot.elements, snapshot.indices
        decoded.follow(elements)
        system_index: int | None = None
        if snapshot.oldest is not None and kind(snapshot.oldest) == SYSTEM:
            system_index = snapshot.oldest_index
            if snapshot.complete:  # the system message is among the newest: set it apart
                elements, indices = elements[1:], indices[1:]
        offset = len(snapshot.elements) - len(elements)
        system_cost = None
        if system_index is not None:
            system_cost = decoded.cost_of_oldest(snapshot.oldest or b"", system_index)
        cost = None
        if max_tokens is not None:
            cost = functools.partial(decoded.cost_in, offset, indices)
        cut = choose(
            [kind(element) for element in elements],
            count=last,
            tokens=max_tokens,
            cost=cost,
            human_only=human_only,
            system_cost=system_cost,
            complete=snapshot.complete,
        )
        if cut is not None or size >= _MAX_COUNT:
            break
        size = min(size * 4, _MAX_COUNT)
    if cut is None:  # pragma: no cover - a list of 2**63 elements
        cut = Cut(system_index is not None, None, len(elements))
    chosen: list[tuple[int, int]] = []  # (position in the snapshot, list index)
    if cut.question is not None:
        chosen.append((offset + cut.question, indices[cut.question]))
    chosen.extend((offset + p, indices[p]) for p in range(cut.start, len(elements)))
    return decoded.window(system_index if cut.system else None, chosen)


class _Decoded:
    """Decodes the elements of the latest snapshot once each (a token window counts them
    newest first, then returns some of them), and assembles the window."""

    def __init__(
        self,
        key: str,
        convert: Callable[[codec.Record], Any] | None,
        strict: bool,
        token_counter: Callable[[Any], int] | None,
        counts_tokens: bool,
    ) -> None:
        self.key, self.convert, self.strict = key, convert, strict
        self.counts_tokens = counts_tokens
        self.counter = token_counter or (approximate_tokens if convert is None else None)
        if counts_tokens and self.counter is None:
            raise InvalidOptionError(
                "max_tokens with convert= needs a token_counter= for the converted messages"
            )
        self.elements: list[bytes] = []
        self.by_age: dict[int, tuple[codec.Record, Any] | CorruptMessageError] = {}
        self.oldest: tuple[codec.Record, Any] | CorruptMessageError | None = None

    def follow(self, elements: list[bytes]) -> None:
        """A new, larger snapshot: decodings of the newest elements are kept if they are
        the same elements (nothing was appended in between)."""
        old = self.elements
        if len(old) > len(elements) or elements[len(elements) - len(old) :] != old:
            self.by_age.clear()
        self.elements = elements

    def _decode(self, position: int, index: int) -> tuple[codec.Record, Any] | CorruptMessageError:
        age = len(self.elements) - 1 - position
        found = self.by_age.get(age)
        if found is None:
            found = self.by_age[age] = codec.decode_one(
                self.elements[position], index, self.key, self.convert
            )
        if isinstance(found, CorruptMessageError) and self.strict:
            raise found
        return found

    def _tokens(self, found: tuple[codec.Record, Any] | CorruptMessageError) -> int:
        if isinstance(found, CorruptMessageError):
            return 0  # skipped (strict=False)
        assert self.counter is not None
        tokens = self.counter(found[1])
        if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 0:
            raise InvalidOptionError(f"token_counter must return an int >= 0, got {tokens!r}")
        return tokens

    def cost_in(self, offset: int, indices: Sequence[int], position: int) -> int:
        """The tokens of the message at ``position`` of the elements after ``offset``."""
        return self._tokens(self._decode(offset + position, indices[position]))

    def cost_of_oldest(self, element: bytes, index: int) -> int:
        if self.oldest is None:
            self.oldest = codec.decode_one(element, index, self.key, self.convert)
        if isinstance(self.oldest, CorruptMessageError) and self.strict:
            raise self.oldest
        return self._tokens(self.oldest) if self.counts_tokens else 0

    def window(self, system_index: int | None, chosen: list[tuple[int, int]]) -> list[Any]:
        """The chosen elements (the system message first), tool results without their
        call left out, converted."""
        found: list[tuple[codec.Record, Any] | CorruptMessageError] = []
        if system_index is not None and self.oldest is not None:
            found.append(self.oldest)
        found.extend(self._decode(position, index) for position, index in chosen)
        readable = [item for item in found if not isinstance(item, CorruptMessageError)]
        codec.warn_skipped([item for item in found if isinstance(item, CorruptMessageError)])
        keep = answered([record for record, _value in readable])
        return [value for (_record, value), wanted in zip(readable, keep, strict=True) if wanted]
