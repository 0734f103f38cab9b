"""The redis-free core of the message operations: append, read, count, clear, list.

Each operation is a flow of :mod:`._plan` steps that the sync and async shells drive; all
decisions (key names, commands, the append script, reading replies, learning what a server
allows) are made here, so they are written once and unit-tested without a server.

Exactly-once appends: redis-py retries a command after a timeout or a dropped connection,
and the first attempt may already have been applied. Every append therefore carries a
random token (or the caller's idempotency key); the append script stores it in a
per-session sorted set (scored by the server's clock, kept for TOKEN_WINDOW_MS), in the
same hash slot as the list, and skips any batch whose token is already there. The list
itself holds only the upstream-format elements.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

from . import codec
from ._lua import ADOPT_META_LUA, NOW_MS_LUA
from ._plan import BestEffort, Call, Flow, Info, Plan, Scan, Script, WrongTypeReply, text
from ._sessions_core import plan_touch_index
from ._validate import check_session_id, check_text
from ._windows import WINDOW_LUA
from .durability import Durability, DurabilityUnsupportedError, resolve_durability
from .errors import InvalidOptionError, NotDurableError
from .settings import StoreSettings

__all__ = [
    "APPEND_SCRIPT",
    "AppendOutcome",
    "SERVERS",
    "ServerFacts",
    "SessionListing",
    "append_flow",
    "check_idempotency_key",
    "durability_problem",
    "eviction_risk",
    "plan_append",
    "plan_clear",
    "plan_count",
    "plan_read",
    "server_version",
]

T = TypeVar("T")
logger = logging.getLogger("redis_chat_history")

#: How long (ms) and how many append tokens a session remembers for duplicate detection.
TOKEN_WINDOW_MS = 10 * 60 * 1000
MAX_TOKENS = 1000
#: One append in this many also prunes the token set.
PRUNE_EVERY = 16
# Lua's unpack() is limited by the C stack (~8000 values); push in chunks well below it.
PUSH_CHUNK = 1000


# KEYS: the message list, the token set, the session's metadata hash (same hash slot),
#       and for the legacy layouts the token set and metadata under their 0.1.0 names.
# ARGV: token, push command, ttl (0 = keep), max messages (0 = all), prune (1 = drop
#       tokens older than the window), persist (1 = tokens of a session without ttl get
#       no expiry), the trim's window rule ('h' or 'a': start on a human message or on
#       any but a tool result; 's' appended: keep a leading system message), the session
#       id (legacy layouts only), the elements...
# The token is recorded first (ZADD NX: 0 means this batch was applied already) and taken
# back if the push fails, so a failed append leaves nothing behind. A list or token set of
# another type is reported as {'WRONGTYPE', key number, type}; other errors (READONLY,
# NOREPLICAS, OOM, ...) are passed on unchanged. Tokens are scored by
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
    + WINDOW_LUA
    + f"""
local legacy = #KEYS > 3
local first = legacy and 9 or 8
local function has_meta()
  if redis.call('EXISTS', KEYS[3]) == 1 then
    return true
  end
  return legacy and adopt_meta(KEYS[3], KEYS[5], ARGV[8])
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
  return {{'WRONGTYPE', 2, redis.call('TYPE', KEYS[2])['ok']}}
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
  return {{'WRONGTYPE', 1, redis.call('TYPE', KEYS[1])['ok']}}
end
for chunk = first + {PUSH_CHUNK}, last, {PUSH_CHUNK} do
  length = redis.call(push, KEYS[1], unpack(ARGV, chunk, math.min(last, chunk + {PUSH_CHUNK - 1})))
end
local ttl, cap = tonumber(ARGV[3]), tonumber(ARGV[4])
if cap > 0 and length > cap then
  local rule = ARGV[7]
  length = trim_window(KEYS[1], length, cap, string.sub(rule, 1, 1) == 'h',
                       string.sub(rule, 2, 2) == 's', push == 'LPUSH')
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


#: How the append script names the types of its list and token set.
APPEND_TYPES = WrongTypeReply(("list", "sorted set"))
#: How the clear script names the types of its keys.
CLEAR_TYPES = WrongTypeReply(("list", "sorted set"))


class AppendOutcome(NamedTuple):
    """What the append script reported: the message count, and (owner, last activity ms)
    when the session has an owner, whose index is then refreshed."""

    message_count: int
    touched: tuple[str, int] | None = None


def _append_result(reply: Sequence[Any], keys: Sequence[str]) -> AppendOutcome:
    APPEND_TYPES.check(reply, keys)
    if len(reply) < 4:
        return AppendOutcome(int(reply[1]))
    return AppendOutcome(int(reply[1]), (text(reply[2]), int(reply[3])))


#: The longest idempotency key accepted, in characters.
MAX_IDEMPOTENCY_KEY_LENGTH = 512


def check_idempotency_key(key: Any) -> str:
    """An idempotency key is a non-empty str of printable characters (a client message id,
    a UUID, ...) of at most MAX_IDEMPOTENCY_KEY_LENGTH characters."""
    return check_text("idempotency_key", key, MAX_IDEMPOTENCY_KEY_LENGTH)


class Appended(NamedTuple):
    """An append's outcome, and NotDurableError if its durability level was not reached."""

    outcome: AppendOutcome
    not_durable: NotDurableError | None = None


def plan_append(
    settings: StoreSettings,
    session_id: str,
    records: Sequence[Mapping[str, Any]],
    *,
    durability: Durability | None = None,
    idempotency_key: str | None = None,
    persist_tokens: bool = False,
) -> Plan[Appended] | None:
    """Append ``records`` (chronological) atomically, in one round trip; None for an empty
    batch, which needs none.

    ``idempotency_key`` names the batch: a batch whose key the session saw within the
    retry window (TOKEN_WINDOW_MS, at most MAX_TOKENS keys) is not stored again. Without
    one a random key is made, which covers redis-py's own re-sends. ``persist_tokens``
    keeps the token set of a session without ttl from expiring (see eviction_risk).

    With a durability level, WAIT/WAITAOF follows on the same connection in the same round
    trip; the result then carries NotDurableError (with the idempotency key to retry
    with) if the level was not reached.
    """
    check_session_id(session_id)
    if idempotency_key is not None:
        check_idempotency_key(idempotency_key)
    elements = codec.encode_records(records, settings.max_message_bytes)
    if not elements:
        return None
    layout = settings.layout
    keys: tuple[str, ...] = (
        layout.messages_key(session_id),
        layout.token_key(session_id),
        layout.meta_key(session_id),
    )
    entropy = os.urandom(12)
    token = idempotency_key or entropy.hex()
    head: tuple[Any, ...] = (
        token,
        layout.push_command,
        settings.ttl or 0,
        settings.max_messages or 0,
        1 if entropy[0] % PRUNE_EVERY == 0 else 0,
        1 if persist_tokens else 0,
        ("h" if settings.start_on == "human" else "a") + ("s" if settings.keep_system else ""),
    )
    legacy_tokens = layout.legacy_token_key(session_id)
    legacy_meta = layout.legacy_meta_key(session_id)
    if legacy_tokens is not None and legacy_meta is not None:
        keys += (legacy_tokens, legacy_meta)
        head += (session_id,)
    call = Call(args=(*head, *elements), script=APPEND_SCRIPT, keys=keys)
    level = durability or settings.durability
    if not level.waits:
        return Plan((call,), lambda replies: Appended(_append_result(replies[0], keys)))

    def parse(replies: list[Any]) -> Appended:
        outcome = _append_result(replies[0], keys)
        try:
            level.check(replies[1], idempotency_key=token)
        except NotDurableError as not_durable:
            return Appended(outcome, not_durable)
        return Appended(outcome)

    return Plan((call, Call(level.command())), parse, same_connection_as=keys[0])


@dataclass
class ServerFacts:
    """What the stores learn about a server once and then share: its eviction policy
    (from INFO memory), its version (from INFO server, for fsync durability), and whether
    the eviction warning was given."""

    eviction_policy: str | None = None
    version: tuple[int, ...] | None = None
    warned: bool = False


class ServerRegistry:
    """The facts of each server we write to, per URL when the store was made from one (so
    the stores and event loops using a URL share them) and per client otherwise."""

    #: URLs remembered at most; past that the memory starts afresh.
    MAX_URLS = 1024

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_url: dict[str, ServerFacts] = {}
        self._by_client: weakref.WeakKeyDictionary[Any, ServerFacts] = weakref.WeakKeyDictionary()

    def facts(self, url: str | None, client: Any) -> ServerFacts:
        """The facts for a store's URL, or for its client if it was given one."""
        with self._lock:
            if url is None:
                return self._by_client.setdefault(client, ServerFacts())
            facts = self._by_url.get(url)
            if facts is None:
                if len(self._by_url) >= self.MAX_URLS:
                    self._by_url.clear()
                facts = self._by_url[url] = ServerFacts()
            return facts


#: One for the process: the sync and async stores share what they learned.
SERVERS = ServerRegistry()


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


def eviction_policy(info: Mapping[str, Any] | None) -> str:
    """The eviction policy an INFO memory reply names (noeviction, the server default,
    when it cannot be read, e.g. for an ACL user without INFO)."""
    policy = "" if info is None else str(info.get("maxmemory_policy", ""))
    return policy or "noeviction"


def server_version(info: Mapping[str, Any] | None) -> tuple[int, ...]:
    """The version an ``INFO server`` reply reports (Valkey reports a Redis-compatible one);
    () if it cannot be read."""
    text = "" if info is None else str(info.get("redis_version", ""))
    return tuple(int(part) for part in text.split(".")[:3] if part.isdigit())


def durability_problem(level: Durability, *, version: tuple[int, ...] | None) -> str | None:
    """Why ``level`` cannot be confirmed here, or None. ``version`` is only needed for fsync
    (an unknown one, None or (), is given the benefit of the doubt)."""
    if not level.waits:
        return None
    if level.fsync and version and version < (7, 2):
        shown = ".".join(map(str, version))
        return f"fsync durability needs WAITAOF (Redis/Valkey 7.2+); this server is {shown}"
    return None


def append_flow(
    settings: StoreSettings,
    session_id: str,
    records: Sequence[Mapping[str, Any]],
    server: ServerFacts,
    *,
    durability: Durability | str | None = None,
    idempotency_key: str | None = None,
) -> Flow[int]:
    """Append records atomically and exactly once; return the session's message count.

    Learns once per server (``server``, shared) what the append depends on: the version
    when fsync durability is asked for, and the eviction policy, which decides whether
    the token set of a session without ttl may expire. Then refreshes the owner's index
    of an owned session (best effort: the messages are stored), and raises
    NotDurableError last if the durability level was not reached.
    """
    level = settings.durability if durability is None else resolve_durability(durability)
    if level.fsync and server.version is None:
        server.version = server_version((yield Info("server")))
    problem = durability_problem(level, version=server.version)
    if problem:
        raise DurabilityUnsupportedError(problem)
    plan = plan_append(
        settings, session_id, records, durability=level, idempotency_key=idempotency_key
    )
    if plan is None:
        count: int = yield plan_count(settings, session_id)
        return count
    if server.eviction_policy is None:
        server.eviction_policy = eviction_policy((yield Info("memory")))
    persist, warning = eviction_risk(server.eviction_policy, settings.ttl)
    if warning is not None and not server.warned:
        server.warned = True
        logger.warning("%s", warning)
    appended: Appended = yield (_persisting(plan) if persist else plan)
    outcome = appended.outcome
    if outcome.touched is not None:
        owner, last_activity = outcome.touched
        refresh = plan_touch_index(settings, owner, session_id, last_activity)
        yield BestEffort(refresh, "refresh the owner index")
    if appended.not_durable is not None:
        raise appended.not_durable
    return outcome.message_count


def _persisting(plan: Plan[T]) -> Plan[T]:
    """The same append with the persist-tokens flag set (ARGV[6] of APPEND_SCRIPT)."""
    call = plan.calls[0]
    args = (*call.args[:5], 1, *call.args[6:])
    calls = (call._replace(args=args), *plan.calls[1:])
    return Plan(calls, plan.parse, plan.expects, plan.same_connection_as)


#: The largest ``last``, ``start`` or ``stop`` (Redis list indexes are signed 64-bit).
MAX_POSITION = 2**63 - 1


def _check_position(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_POSITION:
        raise InvalidOptionError(f"{name} must be an int from 0 to 2**63 - 1, got {value!r}")


def plan_read(
    settings: StoreSettings,
    session_id: str,
    *,
    start: int = 0,
    stop: int | None = None,
    strict: bool | None = None,
    convert: Callable[[codec.Record], T] | None = None,
) -> Plan[list[Any]]:
    """Read chronological positions ``[start, stop)`` (windows: see _windows)."""
    check_session_id(session_id)
    layout = settings.layout
    _check_position("start", start)
    if stop is not None:
        _check_position("stop", stop)
    if stop is not None and stop <= start:
        return Plan((), lambda replies: [])
    window = layout.window(start, stop)
    key = layout.messages_key(session_id)
    use_strict = settings.strict if strict is None else strict

    def parse(replies: list[Any]) -> list[Any]:
        elements = layout.chronological(replies[0])
        indices = layout.chronological(layout.indices(window, len(replies[0])))
        return codec.decode_elements(
            elements, key=key, indices=indices, strict=use_strict, convert=convert
        )

    return Plan((Call(("LRANGE", key, *window), raw=True),), parse, (key, "list"))


def plan_count(settings: StoreSettings, session_id: str) -> Plan[int]:
    """The number of messages in the session."""
    check_session_id(session_id)
    key = settings.layout.messages_key(session_id)
    return Plan((Call(("LLEN", key)),), lambda replies: int(replies[0]), (key, "list"))


def plan_clear(settings: StoreSettings, session_id: str) -> Plan[bool]:
    """Delete the session's messages and retry tokens atomically (metadata stays); the
    reply says whether it had messages. A key of another type raises WrongTypeError and
    nothing is deleted."""
    check_session_id(session_id)
    layout = settings.layout
    keys: tuple[str, ...] = (layout.messages_key(session_id), layout.token_key(session_id))
    legacy = layout.legacy_token_key(session_id)
    if legacy is not None:
        keys += (legacy,)

    def parse(replies: list[Any]) -> bool:
        return int(CLEAR_TYPES.check(replies[0], keys)[0]) > 0

    return Plan((Call(args=(), script=CLEAR_SCRIPT, keys=keys),), parse)


class SessionListing:
    """The ids of stored sessions whose id starts with ``prefix`` (taken literally): SCAN
    the layout's list keys, keep the session keys, each id once."""

    def __init__(self, settings: StoreSettings, prefix: str, batch: int) -> None:
        self.layout = settings.layout
        self.prefix = prefix
        self.scan = Scan(self.layout.scan_pattern(prefix), "list", batch)
        self._seen: set[str] = set()

    def ids(self, keys: Sequence[str]) -> list[str]:
        """The new session ids among a batch of keys SCAN found."""
        found = []
        for key in keys:
            session_id = self.layout.session_id_of(key)
            if (
                session_id is not None
                and session_id.startswith(self.prefix)
                and session_id not in self._seen
            ):
                self._seen.add(session_id)
                found.append(session_id)
        return found
