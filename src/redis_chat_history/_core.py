"""The redis-free core shared by the sync and async stores.

Every operation is a :class:`Plan`: the Redis calls to send in one round trip and a
function that turns the replies into the result. The stores only send and await; all
decisions (key names, commands, the append script, reading replies) are made here, so
they are written once and unit-tested without a server.

Exactly-once appends: redis-py retries a command after a timeout or a dropped connection,
and the first attempt may already have been applied. Every append therefore carries a
random token (or the caller's idempotency key); the append script stores it in a
per-session sorted set (scored by the server's clock, kept for TOKEN_WINDOW_MS), in the
same hash slot as the list, and skips any batch whose token is already there. The list
itself holds only the upstream-format elements.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
import weakref
from collections.abc import Callable, Mapping, MutableMapping, MutableSet, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, NamedTuple, TypeVar

from . import codec
from ._validate import (
    check_max_messages,
    check_positive_int,
    check_session_id,
    check_text,
    check_ttl,
)
from .durability import Durability, resolve_durability
from .errors import InvalidOptionError, NotDurableError, WrongTypeError
from .layouts import Layout, resolve_layout

__all__ = [
    "APPEND_SCRIPT",
    "AppendOutcome",
    "EVICTION",
    "Call",
    "EvictionWatch",
    "Plan",
    "RetryTimer",
    "Script",
    "StoreConfig",
    "persisting_tokens",
    "plan_append",
    "plan_clear",
    "plan_count",
    "plan_read",
    "check_idempotency_key",
    "durability_problem",
    "eviction_risk",
    "server_version",
    "translate_error",
    "wrong_type_reply",
]

T = TypeVar("T")
logger = logging.getLogger("redis_chat_history")

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


# The Redis server's clock in ms. Scripts replicate their effects, so reading TIME before
# writing is allowed, and every writer agrees on it whatever its own clock says.
NOW_MS_LUA = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
"""

# adopt_meta(meta, legacy, session): the metadata hash under the name version 0.1.0 gave it
# becomes the session's, renamed in place (same slot, ttl kept), if its 'session' field
# names this session: two sessions could share the old name, and only its writer owns it.
ADOPT_META_LUA = """
local function adopt_meta(meta, legacy, session)
  if not legacy or redis.call('TYPE', legacy)['ok'] ~= 'hash' then
    return false
  end
  if redis.call('HGET', legacy, 'session') ~= session then
    return false
  end
  redis.call('RENAME', legacy, meta)
  return true
end
"""

# KEYS: the message list, the token set, the session's metadata hash (same hash slot),
#       and for the legacy layouts the token set and metadata under their 0.1.0 names.
# ARGV: token, push command, ttl (0 = keep), max messages (0 = all), prune (1 = drop
#       tokens older than the window), persist (1 = tokens of a session without ttl get
#       no expiry), the session id (legacy layouts only), the elements...
# The token is recorded first (ZADD NX: 0 means this batch was applied already) and taken
# back if the push fails, so a failed append leaves nothing behind. Errors other than
# WRONGTYPE (READONLY, NOREPLICAS, OOM, ...) are passed on unchanged. Tokens are scored by
# the server's clock, so writers with skewed clocks cannot prune each other's. Pruning runs
# on a random share of appends: it is rarely needed and each extra call costs ~2 us.
# Under a volatile-* eviction policy only keys with a ttl are evicted, so the token set of
# a session without ttl is then kept without one (bounded by the pruning) instead of
# being the first key evicted, which would let a re-send be stored twice.
# Reply: {1 (applied) or 0 (a retry of an applied batch), message count}, followed by
# the owner and last activity (ms) when the session has metadata with an owner.
# Sessions without metadata pay one EXISTS. With metadata, an append is activity: it sets
# last_activity (server clock, never going back) and the list's ttl on the hash; a
# metadata key of another type is left alone, since the append itself has succeeded.
APPEND_SCRIPT = Script(
    NOW_MS_LUA
    + ADOPT_META_LUA
    + f"""
local legacy = #KEYS > 3
local first = legacy and 8 or 7
local function has_meta()
  if redis.call('EXISTS', KEYS[3]) == 1 then
    return true
  end
  return legacy and adopt_meta(KEYS[3], KEYS[5], ARGV[7])
end
local function with_owner(reply, ttl, touch)
  local meta = redis.pcall('HMGET', KEYS[3], 'owner', 'last_activity')
  if meta['err'] then
    return reply
  end
  local last = tonumber(meta[2]) or 0
  if touch then
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
local added = redis.pcall('ZADD', KEYS[2], 'NX', now, ARGV[1])
if type(added) == 'table' then
  if not string.find(added['err'], 'WRONGTYPE', 1, true) then
    return added
  end
  return redis.error_reply('WRONGTYPE rch 2 ' .. redis.call('TYPE', KEYS[2])['ok'])
end
if added == 1 and legacy and type(redis.pcall('ZSCORE', KEYS[4], ARGV[1])) == 'string' then
  redis.call('ZREM', KEYS[2], ARGV[1])
  added = 0
end
if added == 0 then
  local reply = {{0, redis.call('LLEN', KEYS[1])}}
  if has_meta() then
    return with_owner(reply, 0, false)
  end
  return reply
end
local push, last = ARGV[2], #ARGV
local length = redis.pcall(push, KEYS[1],
                           unpack(ARGV, first, math.min(last, first + {PUSH_CHUNK - 1})))
if type(length) == 'table' then
  redis.pcall('ZREM', KEYS[2], ARGV[1])
  if not string.find(length['err'], 'WRONGTYPE', 1, true) then
    return length
  end
  return redis.error_reply('WRONGTYPE rch 1 ' .. redis.call('TYPE', KEYS[1])['ok'])
end
for chunk = first + {PUSH_CHUNK}, last, {PUSH_CHUNK} do
  length = redis.call(push, KEYS[1], unpack(ARGV, chunk, math.min(last, chunk + {PUSH_CHUNK - 1})))
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
if ARGV[5] == '1' then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - {TOKEN_WINDOW_MS})
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -{MAX_TOKENS + 1})
end
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[2], math.max({TOKEN_WINDOW_MS}, ttl * 1000))
elseif ARGV[6] == '1' then
  redis.call('PERSIST', KEYS[2])
else
  redis.call('PEXPIRE', KEYS[2], {TOKEN_WINDOW_MS})
end
if has_meta() then
  return with_owner({{1, length}}, ttl, true)
end
return {{1, length}}
"""
)


# KEYS: the list, the token set, [the 0.1.0 token set] (one slot, so this works on a
# cluster too). Keys of another type are reported, not deleted: {'WRONGTYPE', n, type}.
CLEAR_SCRIPT = Script("""
local expected = {'list', 'zset', 'zset'}
for n = 1, #KEYS do
  local found = redis.call('TYPE', KEYS[n])['ok']
  if found ~= 'none' and found ~= expected[n] then
    if n < 3 then
      return {'WRONGTYPE', n, found}
    end
    expected[n] = false
  end
end
local had_messages = redis.call('DEL', KEYS[1])
redis.call('DEL', KEYS[2])
if expected[3] and KEYS[3] then
  redis.call('DEL', KEYS[3])
end
return {had_messages}
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
    """One Redis call: a plain command, or a script with its keys and args. ``raw`` asks
    for the reply as bytes even from a ``decode_responses=True`` client (stored messages
    are decoded by :mod:`codec`, which reports a non-UTF-8 element as corrupt)."""

    args: tuple[Any, ...]
    script: Script | None = None
    keys: tuple[str, ...] = ()
    raw: bool = False


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
    #: An append whose token set must not expire under a volatile-* eviction policy: the
    #: store learns the server's policy (once) and sends persisting_tokens(plan) if so.
    records_tokens: bool = False


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
    The same timer bounds redis-py's own retries inside the call (``_clients.call_budget``):
    ``failed`` says an attempt has failed, after which no wait may run past the deadline.
    """

    def __init__(self, deadline: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._give_up_at = clock() + deadline
        self._delay = 0.05
        self.failed = False

    def left(self) -> float:
        """Seconds until the deadline (negative once it has passed)."""
        return self._give_up_at - self._clock()

    def next_delay(self) -> float | None:
        """Seconds to wait before the next try, or None to give up."""
        left = self.left()
        if left <= 0:
            return None
        delay, self._delay = min(self._delay, left), min(self._delay * 2, 1.0)
        return delay


#: The longest idempotency key accepted, in characters.
MAX_IDEMPOTENCY_KEY_LENGTH = 512


def check_idempotency_key(key: Any) -> str:
    """An idempotency key is a non-empty str of printable characters (a client message id,
    a UUID, ...) of at most MAX_IDEMPOTENCY_KEY_LENGTH characters."""
    return check_text("idempotency_key", key, MAX_IDEMPOTENCY_KEY_LENGTH)


def plan_append(
    config: StoreConfig,
    session_id: str,
    records: Sequence[Mapping[str, Any]],
    *,
    durability: Durability | None = None,
    idempotency_key: str | None = None,
) -> Plan[int | AppendOutcome] | None:
    """Append ``records`` (chronological) atomically; the reply is the new message count,
    or an AppendOutcome when the session has an owner whose index needs refreshing.

    ``idempotency_key`` names the batch: a batch whose key the session saw within the
    retry window (TOKEN_WINDOW_MS, at most MAX_TOKENS keys) is not stored again. Without
    one a random key is made, which covers redis-py's own re-sends.

    With a durability level, WAIT/WAITAOF follows on the same connection in the same round
    trip; if the level is not reached the AppendOutcome carries NotDurableError (with the
    idempotency key to retry with) for the store to raise. Returns None for an empty batch,
    which needs no round trip.
    """
    check_session_id(session_id)
    if idempotency_key is not None:
        check_idempotency_key(idempotency_key)
    elements = codec.encode_records(records, config.max_message_bytes)
    if not elements:
        return None
    layout = config.layout
    keys: tuple[str, ...] = (
        layout.messages_key(session_id),
        layout.token_key(session_id),
        layout.meta_key(session_id),
    )
    entropy = os.urandom(12)
    token = idempotency_key or entropy.hex()
    head: tuple[Any, ...] = (
        token,
        "LPUSH" if layout.newest_first else "RPUSH",
        config.ttl or 0,
        config.max_messages or 0,
        1 if entropy[0] % PRUNE_EVERY == 0 else 0,
        0,  # see persisting_tokens
    )
    legacy_tokens = layout.legacy_token_key(session_id)
    legacy_meta = layout.legacy_meta_key(session_id)
    if legacy_tokens is not None and legacy_meta is not None:
        keys += (legacy_tokens, legacy_meta)
        head += (session_id,)
    call = Call(args=(*head, *elements), script=APPEND_SCRIPT, keys=keys)
    level = durability or config.durability
    if not level.waits:
        return Plan((call,), lambda replies: _append_result(replies[0]), keys, records_tokens=True)

    def parse(replies: list[Any]) -> int | AppendOutcome:
        try:
            level.check(replies[1], idempotency_key=token)
        except NotDurableError as not_durable:
            return _append_result(replies[0], not_durable)
        return _append_result(replies[0])

    return Plan((call, Call(level.command())), parse, keys, same_connection=True)


class EvictionWatch:
    """The eviction policy of each server we write to, learned once per client (keyed by
    its URL when it was made from one, so the clients made per event loop share it), and
    the warning about it given once per client."""

    #: URLs remembered at most; past that the memory starts afresh.
    MAX_URLS = 1024

    def __init__(self) -> None:
        self._by_url: dict[Any, str] = {}
        self._by_client: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
        self._warned_urls: set[Any] = set()
        self._warned_clients: weakref.WeakSet[Any] = weakref.WeakSet()

    def _memory(
        self, client: Any, url: str | None
    ) -> tuple[MutableMapping[Any, str], MutableSet[Any], Any]:
        """Where the policy of ``client`` (or its URL) is kept, where its warning is
        recorded, and the key for both."""
        if url is None:
            return self._by_client, self._warned_clients, client
        if len(self._by_url) >= self.MAX_URLS:
            self._by_url.clear()
            self._warned_urls.clear()
        return self._by_url, self._warned_urls, url

    def knows(self, client: Any, url: str | None) -> bool:
        """Whether this client's (or URL's) policy has been learned."""
        policies, _warned, key = self._memory(client, url)
        return key in policies

    def learn(self, client: Any, url: str | None, info: Mapping[str, Any] | None) -> None:
        """Record the policy from an ``INFO memory`` reply (None: it could not be read,
        e.g. an ACL user without INFO; treated as noeviction, the server default)."""
        policies, _warned, key = self._memory(client, url)
        policy = "" if info is None else str(info.get("maxmemory_policy", ""))
        policies[key] = policy or "noeviction"

    def applied(self, plan: Plan[T], client: Any, url: str | None, ttl: int | None) -> Plan[T]:
        """The append to send under the learned policy: one keeping the token set of a
        session without ttl from expiring where only keys with a ttl are evicted; logs the
        remaining risk, if any, once per client."""
        policies, warned, key = self._memory(client, url)
        persist, warning = eviction_risk(policies.get(key, "noeviction"), ttl)
        if warning is not None and key not in warned:
            warned.add(key)
            logger.warning("%s", warning)
        return persisting_tokens(plan) if persist else plan


#: One for the process: the sync and async stores share what they learned.
EVICTION = EvictionWatch()


def persisting_tokens(plan: Plan[T]) -> Plan[T]:
    """The same append, keeping the token set of a session without ttl from expiring (for
    servers that evict only keys with a ttl; see APPEND_SCRIPT)."""
    call = plan.calls[0]
    assert call.script is APPEND_SCRIPT
    args = (*call.args[:5], 1, *call.args[6:])
    calls = (call._replace(args=args), *plan.calls[1:])
    return Plan(calls, plan.parse, plan.keys, plan.same_connection)  # records_tokens: done


def eviction_risk(policy: str, ttl: int | None) -> tuple[bool, str | None]:
    """Whether to keep token sets without expiry under ``policy`` (the server's
    ``maxmemory-policy``), and a warning when exactly-once cannot be guaranteed."""
    if policy.startswith("allkeys-"):
        return False, (
            f"maxmemory-policy {policy} lets Redis evict any key under memory pressure: "
            "messages themselves, and the retry tokens that keep a re-sent append from "
            "being stored twice; use noeviction (or volatile-* without a ttl) for chat history"
        )
    if policy.startswith("volatile-"):
        if ttl:
            return True, (
                f"maxmemory-policy {policy} with a ttl lets Redis evict a session's retry "
                "tokens (they expire like the session) under memory pressure, and a re-sent "
                "append could then be stored twice; use noeviction, or no ttl"
            )
        return True, None
    return False, None


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


#: The largest ``last``, ``start`` or ``stop`` (Redis list indexes are signed 64-bit).
MAX_POSITION = 2**63 - 1


def _check_position(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_POSITION:
        raise InvalidOptionError(f"{name} must be an int from 0 to 2**63 - 1, got {value!r}")


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
        _check_position("last", last)
        if last == 0:
            return Plan((), lambda replies: [])
        window = (0, last - 1) if config.layout.newest_first else (-last, -1)
    else:
        _check_position("start", start)
        if stop is not None:
            _check_position("stop", stop)
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

    return Plan((Call(("LRANGE", key, *window), raw=True),), parse, (key,))


def plan_count(config: StoreConfig, session_id: str) -> Plan[int]:
    """The number of messages in the session."""
    check_session_id(session_id)
    key = config.layout.messages_key(session_id)
    return Plan((Call(("LLEN", key)),), lambda replies: int(replies[0]), (key,))


def plan_clear(config: StoreConfig, session_id: str) -> Plan[bool]:
    """Delete the session's messages and retry tokens atomically (metadata stays); the
    reply says whether it had messages. A key of another type raises WrongTypeError and
    nothing is deleted."""
    check_session_id(session_id)
    layout = config.layout
    keys: tuple[str, ...] = (layout.messages_key(session_id), layout.token_key(session_id))
    legacy = layout.legacy_token_key(session_id)
    if legacy is not None:
        keys += (legacy,)

    def parse(replies: list[Any]) -> bool:
        reply = replies[0]
        wrong = wrong_type_reply(reply, keys, ("list", "sorted set"))
        if wrong is not None:
            raise wrong
        return int(reply[0]) > 0

    return Plan((Call(args=(), script=CLEAR_SCRIPT, keys=keys),), parse, keys)


def wrong_type_reply(
    reply: Any, keys: Sequence[str], expected: Sequence[str]
) -> WrongTypeError | None:
    """WrongTypeError for a script's ``{'WRONGTYPE', key number, type}`` reply, else None.

    Scripts that check types before writing answer this way (rather than with an error
    reply), so a pipeline of them still returns the other scripts' results."""
    if not (isinstance(reply, list) and len(reply) == 3):
        return None
    marker = reply[0]
    if (marker.decode() if isinstance(marker, bytes) else marker) != "WRONGTYPE":
        return None
    position = int(reply[1]) - 1
    found = reply[2].decode() if isinstance(reply[2], bytes) else str(reply[2])
    return WrongTypeError(keys[position], expected[position], found)


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
