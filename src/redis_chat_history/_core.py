"""The redis-free core shared by the sync and async stores.

Every operation is a :class:`Plan`: the Redis calls to send in one round trip and a
function that turns the replies into the result. The stores only send and await; all
decisions (key names, commands, the append script, reading replies) are made here, so
they are written once and unit-tested without a server.

Exactly-once appends: redis-py retries a command after a timeout or a dropped connection,
and the first attempt may already have been applied. Every append therefore carries a
random token; the append script stores the token in a per-session sorted set (scored by
the client's clock, kept for TOKEN_WINDOW_MS), in the same hash slot as the list, and
skips any batch whose token is already there. The list itself holds only the
upstream-format elements.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, NamedTuple, TypeVar

from . import codec
from ._validate import check_max_messages, check_positive_int, check_session_id, check_ttl
from .durability import Durability, resolve_durability
from .errors import InvalidOptionError, NotDurableError, WrongTypeError
from .layouts import Layout, resolve_layout

__all__ = [
    "APPEND_SCRIPT",
    "AppendOutcome",
    "Call",
    "Plan",
    "RetryTimer",
    "Script",
    "StoreConfig",
    "plan_append",
    "plan_clear",
    "plan_count",
    "plan_read",
    "durability_problem",
    "server_version",
    "translate_error",
]

T = TypeVar("T")

#: How long (ms) and how many append tokens a session remembers for duplicate detection.
TOKEN_WINDOW_MS = 10 * 60 * 1000
MAX_TOKENS = 1000
#: One append in this many also prunes the token set.
PRUNE_EVERY = 16
#: Cluster redirections (MOVED/ASK) followed for one round trip before giving up.
MAX_REDIRECTS = 5
# Lua's unpack() is limited by the C stack (~8000 values); push in chunks well below it.
PUSH_CHUNK = 1000


@dataclass(frozen=True)
class Script:
    """A Lua script, sent as EVALSHA and, if the server lacks it, as EVAL."""

    text: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.text.encode()).hexdigest())


# KEYS: the message list, the token set, the session's metadata hash (same hash slot).
# ARGV: token, push command, ttl (0 = keep), max messages (0 = all), now in ms,
#       prune (1 = drop tokens older than the window), the elements...
# The token is recorded first (ZADD NX: 0 means this batch was applied already) and taken
# back if the push fails, so a failed append leaves nothing behind. Errors other than
# WRONGTYPE (READONLY, NOREPLICAS, OOM, ...) are passed on unchanged. Pruning runs on a
# random share of appends: it is rarely needed and each extra call costs ~2 us in Redis.
# Reply: {1 (applied) or 0 (a retry of an applied batch), message count}, followed by
# the owner and last activity (ms) when the session has metadata with an owner.
# Sessions without metadata pay one EXISTS. With metadata, an append is activity: it sets
# last_activity (server clock, never going back) and the list's ttl on the hash; a
# metadata key of another type is left alone, since the append itself has succeeded.
APPEND_SCRIPT = Script(
    f"""
local function with_owner(reply, ttl, touch)
  local meta = redis.pcall('HMGET', KEYS[3], 'owner', 'last_activity')
  if meta['err'] then
    return reply
  end
  local last = tonumber(meta[2]) or 0
  if touch then
    local clock = redis.call('TIME')
    local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
    if now > last then
      last = now
      redis.call('HSET', KEYS[3], 'last_activity', now)
    end
    if ttl > 0 then
      redis.call('EXPIRE', KEYS[3], ttl)
    end
  end
  if meta[1] then
    reply[3], reply[4] = meta[1], last
  end
  return reply
end
local added = redis.pcall('ZADD', KEYS[2], 'NX', ARGV[5], ARGV[1])
if type(added) == 'table' then
  if not string.find(added['err'], 'WRONGTYPE', 1, true) then
    return added
  end
  return redis.error_reply('WRONGTYPE rch 2 ' .. redis.call('TYPE', KEYS[2])['ok'])
end
if added == 0 then
  local reply = {{0, redis.call('LLEN', KEYS[1])}}
  if redis.call('EXISTS', KEYS[3]) == 1 then
    return with_owner(reply, 0, false)
  end
  return reply
end
local push, last = ARGV[2], #ARGV
local length = redis.pcall(push, KEYS[1], unpack(ARGV, 7, math.min(last, {6 + PUSH_CHUNK})))
if type(length) == 'table' then
  redis.pcall('ZREM', KEYS[2], ARGV[1])
  if not string.find(length['err'], 'WRONGTYPE', 1, true) then
    return length
  end
  return redis.error_reply('WRONGTYPE rch 1 ' .. redis.call('TYPE', KEYS[1])['ok'])
end
for first = {7 + PUSH_CHUNK}, last, {PUSH_CHUNK} do
  length = redis.call(push, KEYS[1], unpack(ARGV, first, math.min(last, first + {PUSH_CHUNK - 1})))
end
local ttl, cap = tonumber(ARGV[3]), tonumber(ARGV[4])
if cap > 0 and length > cap then
  if push == 'LPUSH' then
    redis.call('LTRIM', KEYS[1], 0, cap - 1)
  else
    redis.call('LTRIM', KEYS[1], -cap, -1)
  end
  length = cap
end
if ttl > 0 then
  redis.call('EXPIRE', KEYS[1], ttl)
end
if ARGV[6] == '1' then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', tonumber(ARGV[5]) - {TOKEN_WINDOW_MS})
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -{MAX_TOKENS + 1})
end
redis.call('PEXPIRE', KEYS[2], math.max({TOKEN_WINDOW_MS}, ttl * 1000))
if redis.call('EXISTS', KEYS[3]) == 1 then
  return with_owner({{1, length}}, ttl, true)
end
return {{1, length}}
"""
)


# Both keys share a hash slot, so one script may delete them on Redis Cluster too.
CLEAR_SCRIPT = Script("""
local had_messages = redis.call('DEL', KEYS[1])
redis.call('DEL', KEYS[2])
return had_messages
""")


class AppendOutcome(NamedTuple):
    """An append that leaves the store more to do: ``touched`` is (owner, last activity
    ms) when the session has an owner, whose index the store then refreshes (see
    ``_sessions_core``); ``not_durable`` is raised after that."""

    message_count: int
    touched: tuple[str, int] | None = None
    not_durable: NotDurableError | None = None


def _append_result(
    reply: Sequence[Any], not_durable: NotDurableError | None = None
) -> int | AppendOutcome:
    """The message count, or an AppendOutcome if the store has more to do (the common
    case, a session without owner, stays a plain int: appends are the hot path)."""
    if len(reply) < 4:
        return (
            int(reply[1])
            if not_durable is None
            else AppendOutcome(int(reply[1]), None, not_durable)
        )
    owner = reply[2].decode("utf-8", "replace") if isinstance(reply[2], bytes) else reply[2]
    return AppendOutcome(int(reply[1]), (owner, int(reply[3])), not_durable)


class Call(NamedTuple):
    """One Redis call: a plain command, or a script with its keys and args."""

    args: tuple[Any, ...]
    script: Script | None = None
    keys: tuple[str, ...] = ()


@dataclass(slots=True)
class Plan(Generic[T]):
    """Calls sent together in one round trip, and how to read their replies."""

    calls: tuple[Call, ...]
    parse: Callable[[list[Any]], T]
    #: Keys named in WrongTypeError when Redis answers WRONGTYPE (first = the list).
    keys: tuple[str, ...] = ()
    #: The calls must run in order on one connection to the primary holding ``keys[0]``
    #: (WAIT and WAITAOF only count writes made on their own connection).
    same_connection: bool = False


@dataclass(frozen=True)
class StoreConfig:
    """Validated options shared by both stores."""

    layout: Layout
    ttl: int | None = None
    max_messages: int | None = None
    max_message_bytes: int = codec.DEFAULT_MAX_MESSAGE_BYTES
    strict: bool = True
    retry_deadline: float = 15.0
    durability: Durability = field(default_factory=Durability)

    @classmethod
    def build(
        cls,
        layout: Layout | str = "native",
        ttl: Any = None,
        max_messages: Any = None,
        max_message_bytes: Any = codec.DEFAULT_MAX_MESSAGE_BYTES,
        strict: Any = True,
        retry_deadline: Any = 15.0,
        durability: Durability | str | None = None,
    ) -> StoreConfig:
        if not isinstance(strict, bool):
            raise InvalidOptionError(f"strict must be a bool, not {type(strict).__name__}")
        if (
            isinstance(retry_deadline, bool)
            or not isinstance(retry_deadline, (int, float))
            or not 0 <= retry_deadline < float("inf")
        ):
            raise InvalidOptionError(
                f"retry_deadline must be a number of seconds >= 0, got {retry_deadline!r}"
            )
        return cls(
            layout=resolve_layout(layout),
            ttl=check_ttl(ttl),
            max_messages=check_max_messages(max_messages),
            max_message_bytes=check_positive_int("max_message_bytes", max_message_bytes),
            strict=strict,
            retry_deadline=float(retry_deadline),
            durability=resolve_durability(durability),
        )


class RetryTimer:
    """Whether a round trip that failed with a connection error is tried again, and when.

    redis-py already retries each command a few times; this covers what outlasts that, such
    as a failover (seconds). Every plan is safe to send again (appends carry their token),
    so it is re-sent with backoff from 50 ms doubling to 1 s until ``deadline`` seconds
    after the call started (the timer is made when it starts); then the error is raised.
    """

    def __init__(self, deadline: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._give_up_at = clock() + deadline
        self._delay = 0.05

    def next_delay(self) -> float | None:
        """Seconds to wait before the next try, or None to give up."""
        left = self._give_up_at - self._clock()
        if left <= 0:
            return None
        delay, self._delay = min(self._delay, left), min(self._delay * 2, 1.0)
        return delay


def plan_append(
    config: StoreConfig,
    session_id: str,
    records: Sequence[Mapping[str, Any]],
    *,
    durability: Durability | None = None,
    token: str | None = None,
) -> Plan[int | AppendOutcome] | None:
    """Append ``records`` (chronological) atomically; the reply is the new message count,
    or an AppendOutcome when the session has an owner whose index needs refreshing.

    With a durability level, WAIT/WAITAOF follows on the same connection in the same round
    trip; if the level is not reached the AppendOutcome carries NotDurableError for the
    store to raise. Returns None for an empty batch, which needs no round trip.
    """
    check_session_id(session_id)
    elements = codec.encode_records(records, config.max_message_bytes)
    if not elements:
        return None
    layout = config.layout
    keys = (
        layout.messages_key(session_id),
        layout.token_key(session_id),
        layout.meta_key(session_id),
    )
    entropy = os.urandom(12)
    args = (
        token or entropy.hex(),
        "LPUSH" if layout.newest_first else "RPUSH",
        config.ttl or 0,
        config.max_messages or 0,
        time.time_ns() // 1_000_000,
        1 if entropy[0] % PRUNE_EVERY == 0 else 0,
        *elements,
    )
    call = Call(args=args, script=APPEND_SCRIPT, keys=keys)
    level = durability or config.durability
    if not level.waits:
        return Plan((call,), lambda replies: _append_result(replies[0]), keys)

    def parse(replies: list[Any]) -> int | AppendOutcome:
        try:
            level.check(replies[1])
        except NotDurableError as not_durable:
            return _append_result(replies[0], not_durable)
        return _append_result(replies[0])

    return Plan((call, Call(level.command())), parse, keys, same_connection=True)


Window = tuple[int, int]  # LRANGE start and stop, both inclusive, as Redis takes them


def _window(newest_first: bool, start: int, stop: int | None) -> Window:
    """The LRANGE bounds holding chronological positions ``[start, stop)``."""
    if not newest_first:
        return start, -1 if stop is None else stop - 1
    # Chronological position i sits at list index -(i + 1).
    return (0 if stop is None else -stop), -(start + 1)


def _indices(window: Window, count: int) -> range:
    """LINDEX indices of the ``count`` elements LRANGE returned for ``window``."""
    start, stop = window
    if start >= 0:
        return range(start, start + count)
    if stop < 0 and count == stop - start + 1:
        return range(start, start + count)  # negative, exact: the list was long enough
    return range(count)  # Redis clamped a negative start to 0


def plan_read(
    config: StoreConfig,
    session_id: str,
    *,
    start: int = 0,
    stop: int | None = None,
    last: int | None = None,
    strict: bool | None = None,
    convert: Callable[[codec.Record], T] | None = None,
) -> Plan[list[Any]]:
    """Read chronological positions ``[start, stop)``, or only the newest ``last``."""
    check_session_id(session_id)
    if last is not None:
        if isinstance(last, bool) or not isinstance(last, int) or last < 0:
            raise InvalidOptionError(f"last must be an int >= 0, got {last!r}")
        if last == 0:
            return Plan((), lambda replies: [])
        window = (0, last - 1) if config.layout.newest_first else (-last, -1)
    else:
        for name, value in (("start", start), ("stop", stop)):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 0
            ):
                raise InvalidOptionError(f"{name} must be an int >= 0, got {value!r}")
        if stop is not None and stop <= start:
            return Plan((), lambda replies: [])
        window = _window(config.layout.newest_first, start, stop)
    key = config.layout.messages_key(session_id)
    reverse = config.layout.newest_first
    use_strict = config.strict if strict is None else strict

    def parse(replies: list[Any]) -> list[Any]:
        elements = replies[0]
        indices: Sequence[int] = _indices(window, len(elements))
        if reverse:
            elements, indices = elements[::-1], indices[::-1]
        return codec.decode_elements(
            elements, key=key, indices=indices, strict=use_strict, convert=convert
        )

    return Plan((Call(("LRANGE", key, *window)),), parse, (key,))


def plan_count(config: StoreConfig, session_id: str) -> Plan[int]:
    """The number of messages in the session."""
    check_session_id(session_id)
    key = config.layout.messages_key(session_id)
    return Plan((Call(("LLEN", key)),), lambda replies: int(replies[0]), (key,))


def plan_clear(config: StoreConfig, session_id: str) -> Plan[bool]:
    """Delete the session's keys atomically; the reply says whether it had messages."""
    check_session_id(session_id)
    layout = config.layout
    keys = (layout.messages_key(session_id), layout.token_key(session_id))
    call = Call(args=(), script=CLEAR_SCRIPT, keys=keys)
    return Plan((call,), lambda replies: int(replies[0]) > 0, keys)


def server_version(info: Mapping[str, Any]) -> tuple[int, ...]:
    """The version an ``INFO server`` reply reports (Valkey reports a Redis-compatible one)."""
    text = str(info.get("redis_version", "0"))
    return tuple(int(part) for part in text.split(".")[:3] if part.isdigit())


def durability_problem(level: Durability, *, version: tuple[int, ...] | None) -> str | None:
    """Why ``level`` cannot be confirmed here, or None. ``version`` is only needed for fsync."""
    if not level.waits:
        return None
    if level.fsync and version is not None and version < (7, 2):
        shown = ".".join(map(str, version))
        return f"fsync durability needs WAITAOF (Redis/Valkey 7.2+); this server is {shown}"
    return None


def translate_error(message: str, keys: Sequence[str]) -> WrongTypeError | None:
    """Turn a Redis WRONGTYPE error into WrongTypeError naming the key; None for others."""
    # redis-py prefixes errors inside a pipeline with the failing command (which may hold
    # user text); Redis's own message is what follows the last marker (redis.asyncio shows
    # it as the exception's args tuple).
    message = message.rpartition(" of pipeline caused error: ")[2]
    if message.startswith(("('", '("')) and message.endswith(",)"):
        message = message[2:-3]
    if not message.startswith("WRONGTYPE"):
        return None
    words = message.split()
    if len(words) >= 4 and words[1] == "rch":  # from the append script: key number + type
        position = int(words[2]) - 1
        expected = "list" if position == 0 else "sorted set"
        return WrongTypeError(keys[position], expected, words[3])
    return WrongTypeError(keys[0] if keys else "?", "list")
