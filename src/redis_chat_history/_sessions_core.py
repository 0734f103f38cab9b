"""Sessions that know who they belong to: metadata and per-owner indexes, redis-free.

**Metadata** is a hash beside the session's list, in the same cluster slot
(:meth:`Layout.meta_key`), with the fields ``session`` (the id, so a repair can find the
session from the key), ``owner``, ``title``, ``created`` and ``last_activity`` (ms, by the
Redis server's clock, so application servers with skewed clocks agree). Only scripts that
also see the list write it, so it shares the session's fate: ``create_session`` and every
append give both the store's ttl, and ``delete`` removes both.

**The owner index** is a sorted set per owner (:meth:`Layout.owner_index_key`): member =
session id, score = last activity. It lives in another slot than the sessions it lists, so
it is written in a second round trip, after the session's own script, and follows the
sessions eventually rather than atomically:

- a listing checks each entry against the session's metadata and drops entries whose
  session expired, was deleted or has another owner (only if the entry's score is still
  the one it checked, so a session re-created meanwhile keeps its entry);
- an append to an owned session re-adds a missing entry (``ZADD GT``), so an index write
  lost to a crash heals with the next message;
- ``reindex`` rebuilds entries from the metadata (SCAN) and removes stale ones.

The index key's ttl is never shorter than the store's ttl from its last write, so an
owner whose sessions all expired leaves nothing behind.

Every operation is a *flow* of :mod:`._plan` steps, which the sync and async shells
drive, so each operation is written once for both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

from ._lua import ADOPT_META_LUA, NOW_MS_LUA
from ._plan import BestEffort, Call, Flow, Plan, Scan, Script, WrongTypeReply, text
from ._validate import MAX_SESSION_ID_LENGTH, check_session_id, check_text
from .errors import ChatHistoryError, InvalidOptionError, OwnerConflictError, WrongTypeError
from .settings import StoreSettings

__all__ = [
    "MAX_PAGE_SIZE",
    "MAX_TITLE_LENGTH",
    "ReindexReport",
    "SessionInfo",
    "SessionPage",
    "Unchanged",
    "check_owner",
    "check_title",
    "create_flow",
    "delete_flow",
    "owner_sessions_flow",
    "plan_rename",
    "plan_session_info",
    "plan_touch_index",
    "prune_index_flow",
    "reindex_flow",
]

T = TypeVar("T")

#: The longest title accepted, in characters.
MAX_TITLE_LENGTH = 512
#: The most sessions one ``owner_sessions`` page may hold.
MAX_PAGE_SIZE = 1000
#: Index entries read (and checked) per round trip when a repair walks a whole index.
PRUNE_BATCH = 500

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class SessionInfo:
    """What is known about one session. Times are UTC; sessions without metadata (written
    before metadata existed, or never created with ``create_session``) have ``None`` owner,
    title and times."""

    session_id: str
    owner: str | None
    title: str | None
    created: datetime | None
    last_activity: datetime | None
    message_count: int


@dataclass(frozen=True)
class SessionPage:
    """One page of an owner's sessions, most recently active first.

    Pass ``next_cursor`` to ``owner_sessions`` for the next page; it is None on the last.
    """

    sessions: tuple[SessionInfo, ...]
    next_cursor: str | None


@dataclass(frozen=True)
class ReindexReport:
    """What ``reindex`` did: index entries written from metadata, stale entries removed."""

    indexed: int
    removed: int


# ------------------------------------------------------------------------------- input checks


def check_owner(owner: Any) -> str:
    """An owner id follows the session id rules: a non-empty str without control
    characters, line separators or lone surrogates, within the same length limit."""
    return check_text("owner", owner, MAX_SESSION_ID_LENGTH)


def check_title(title: Any) -> str:
    """A title is a str (may be empty) of at most MAX_TITLE_LENGTH printable characters:
    titles are shown in lists and terminals, where control characters do harm."""
    return check_text("title", title, MAX_TITLE_LENGTH, allow_empty=True)


def _check_limit(limit: Any) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise InvalidOptionError(f"limit must be an int, not {type(limit).__name__}")
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidOptionError(f"limit must be between 1 and {MAX_PAGE_SIZE}, got {limit}")
    return limit


def _cursor(score: int, session_id: str) -> str:
    return f"{score}:{session_id}"


def _parse_cursor(cursor: Any) -> tuple[int, bytes]:
    """The (score, member) a page ended at; its UTF-8 member orders ties as Redis does."""
    problem = f"cursor {cursor!r} is not a next_cursor returned by owner_sessions"
    if not isinstance(cursor, str):
        raise InvalidOptionError(problem)
    score, _, session_id = cursor.partition(":")
    if not score.isdigit():
        raise InvalidOptionError(problem)
    try:
        check_session_id(session_id)
    except ChatHistoryError:
        raise InvalidOptionError(problem) from None
    return int(score), session_id.encode()


# ------------------------------------------------------------------------------------ scripts

_NOW_MS = NOW_MS_LUA

# KEYS: meta, list, [meta under its 0.1.0 name]; ARGV[1]: the session id. Adopts old-named
# metadata, then checks both keys' types; a wrong one is reported, not touched.
_CHECK_TYPES = (
    ADOPT_META_LUA
    + """
if KEYS[3] and redis.call('EXISTS', KEYS[1]) == 0 then
  adopt_meta(KEYS[1], KEYS[3], ARGV[1])
end
local meta_type = redis.call('TYPE', KEYS[1])['ok']
if meta_type ~= 'none' and meta_type ~= 'hash' then
  return {'WRONGTYPE', 1, meta_type}
end
local list_type = redis.call('TYPE', KEYS[2])['ok']
if list_type ~= 'none' and list_type ~= 'list' then
  return {'WRONGTYPE', 2, list_type}
end
local length = redis.call('LLEN', KEYS[2])
"""
)

# KEYS: meta, list, [legacy meta]. ARGV: session id.
# Reply: {message count} without metadata, else {count, {field, value...}}.
READ_INFO_SCRIPT = Script(
    _CHECK_TYPES
    + """
if meta_type == 'none' then
  return {length}
end
return {length, redis.call('HGETALL', KEYS[1])}
"""
)

# KEYS: meta, list, [legacy meta].
# ARGV: session id, ttl (0 = none), owner ('' = none), '1' + title or ''.
# Fills in what is missing and never overwrites: created, owner and title stay as they
# are. A session with a ttl counts creating as activity (both keys get the ttl); without
# one the metadata inherits the list's remaining ttl, so it never outlives the messages.
CREATE_SCRIPT = Script(
    _CHECK_TYPES
    + """
local owner = ARGV[3]
if owner ~= '' then
  local current = redis.call('HGET', KEYS[1], 'owner')
  if current and current ~= owner then
    return {'OWNER'}
  end
end
"""
    + _NOW_MS
    + """
redis.call('HSETNX', KEYS[1], 'session', ARGV[1])
redis.call('HSETNX', KEYS[1], 'created', now)
redis.call('HSETNX', KEYS[1], 'last_activity', now)
if owner ~= '' then
  redis.call('HSETNX', KEYS[1], 'owner', owner)
end
if ARGV[4] ~= '' then
  redis.call('HSETNX', KEYS[1], 'title', string.sub(ARGV[4], 2))
end
local ttl = tonumber(ARGV[2])
if ttl > 0 then
  redis.call('EXPIRE', KEYS[1], ttl)
  redis.call('EXPIRE', KEYS[2], ttl)
elseif meta_type == 'none' then
  local left = redis.call('PTTL', KEYS[2])
  if left > 0 then
    redis.call('PEXPIRE', KEYS[1], left)
  end
end
return {length, redis.call('HGETALL', KEYS[1])}
"""
)

# KEYS: meta, list, [legacy meta]. ARGV: session id, title.
# Reply: 1, or 0 if there is no such session.
# Renaming is not activity: last_activity and ttls stay. A session without metadata gets
# it, with the list's remaining ttl.
RENAME_SCRIPT = Script(
    _CHECK_TYPES
    + """
if meta_type == 'none' then
  if length == 0 then
    return 0
  end
"""
    + _NOW_MS
    + """
  redis.call('HSET', KEYS[1], 'session', ARGV[1], 'created', now, 'last_activity', now)
  local left = redis.call('PTTL', KEYS[2])
  if left > 0 then
    redis.call('PEXPIRE', KEYS[1], left)
  end
end
redis.call('HSET', KEYS[1], 'title', ARGV[2])
return 1
"""
)

# KEYS: list, tokens, meta, [tokens and meta under their 0.1.0 names] (one slot). ARGV:
# the session id, [the list's length, first and last element: delete only if the list is
# still so (see Unchanged)]. Reply: {keys removed of list and meta, owner or nil} ({0} when
# the list changed), or, touching nothing, {'WRONGTYPE', key number, type} when a key
# holds another type.
DELETE_SCRIPT = Script(
    ADOPT_META_LUA
    + """
local expected = {'list', 'zset', 'hash'}
for n = 1, 3 do
  local found = redis.call('TYPE', KEYS[n])['ok']
  if found ~= 'none' and found ~= expected[n] then
    return {'WRONGTYPE', n, found}
  end
end
if ARGV[2] then
  local length = tonumber(ARGV[2])
  if redis.call('LLEN', KEYS[1]) ~= length or (length > 0 and (
      redis.call('LINDEX', KEYS[1], 0) ~= ARGV[3]
      or redis.call('LINDEX', KEYS[1], -1) ~= ARGV[4])) then
    return {0}
  end
end
if KEYS[5] and redis.call('EXISTS', KEYS[3]) == 0 then
  adopt_meta(KEYS[3], KEYS[5], ARGV[1])
end
local owner = redis.call('HGET', KEYS[3], 'owner')
local removed = redis.call('DEL', KEYS[1], KEYS[3])
redis.call('DEL', KEYS[2])
if KEYS[4] and redis.call('TYPE', KEYS[4])['ok'] == 'zset' then
  redis.call('DEL', KEYS[4])
end
if KEYS[5] and redis.call('TYPE', KEYS[5])['ok'] == 'hash'
    and redis.call('HGET', KEYS[5], 'session') == ARGV[1] then
  redis.call('DEL', KEYS[5])  -- a 0.1.0 leftover of this very session
end
return {removed, owner}
"""
)

# Scripts on an owner index (KEYS[1]) check its type first: a key of another type is
# reported as {'WRONGTYPE', 1, type} (see INDEX_TYPES) and left alone.
_CHECK_INDEX = """
local index_type = redis.call('TYPE', KEYS[1])['ok']
if index_type ~= 'none' and index_type ~= 'zset' then
  return {'WRONGTYPE', 1, index_type}
end
"""

# KEYS: owner index. ARGV: highest score (or +inf), entries to skip, entries to read.
READ_INDEX_SCRIPT = Script(
    _CHECK_INDEX
    + """
return redis.call('ZREVRANGEBYSCORE', KEYS[1], ARGV[1], '-inf', 'WITHSCORES', 'LIMIT',
                  ARGV[2], ARGV[3])
"""
)

# KEYS: owner index. ARGV: score, session id, ttl (0 = none).
# ZADD GT never moves a session back in time (appends may arrive out of order) and adds a
# missing entry. The key's ttl only ever grows, and a session without ttl makes it
# persistent: the index must outlive every session it lists.
TOUCH_INDEX_SCRIPT = Script(
    _CHECK_INDEX
    + """
local existed = redis.call('EXISTS', KEYS[1])
local added = redis.call('ZADD', KEYS[1], 'GT', ARGV[1], ARGV[2])
local ttl = tonumber(ARGV[3]) * 1000
if ttl == 0 then
  redis.call('PERSIST', KEYS[1])
else
  local left = redis.call('PTTL', KEYS[1])
  if existed == 0 or (left >= 0 and left < ttl) then
    redis.call('PEXPIRE', KEYS[1], ttl)
  end
end
return added
"""
)

# KEYS: owner index. ARGV: session id, score, session id, score, ...
# Removes each entry only if its score is still the one the caller saw as stale.
PRUNE_INDEX_SCRIPT = Script(
    _CHECK_INDEX
    + """
local removed = 0
for i = 1, #ARGV, 2 do
  local score = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if score and tonumber(score) == tonumber(ARGV[i + 1]) then
    removed = removed + redis.call('ZREM', KEYS[1], ARGV[i])
  end
end
return removed
"""
)


# ------------------------------------------------------------------------------ reply reading


#: How the scripts on a session's metadata name the types of their keys (meta, list).
META_TYPES = WrongTypeReply(("hash", "list"))
#: How the delete script names the types of its keys (list, tokens, meta).
DELETE_TYPES = WrongTypeReply(("list", "sorted set", "hash"))
#: How the scripts on an owner index name its type.
INDEX_TYPES = WrongTypeReply(("sorted set",))


def _fields(reply: Any) -> dict[str, str]:
    """A hash read by HGETALL: a flat [field, value, ...] list (scripts, RESP2) or a dict."""
    if isinstance(reply, dict):
        return {text(k): text(v) for k, v in reply.items()}
    return {text(reply[i]): text(reply[i + 1]) for i in range(0, len(reply) - 1, 2)}


def _pairs(reply: Sequence[Any]) -> list[tuple[str, int]]:
    """(member, score) pairs from a script's flat WITHSCORES reply."""
    return [(text(reply[i]), int(float(reply[i + 1]))) for i in range(0, len(reply) - 1, 2)]


#: The latest time a datetime can hold, in ms since the epoch (the end of year 9999).
_MAX_MS = 253402300799999


def _ms(value: str | None) -> int | None:
    """A stored time in ms, or None if it is missing or not a time (a corrupt or
    hand-edited hash must not break a whole listing)."""
    if value is None or not value.isdigit() or len(value) > 15:
        return None
    ms = int(value)
    return ms if ms <= _MAX_MS else None


def _time(ms: int | None) -> datetime | None:
    return None if ms is None else _EPOCH + timedelta(milliseconds=ms)


def _is_owner_conflict(reply: Any) -> bool:
    """Whether a create or restore script refused the session's other owner: ``{'OWNER'}``."""
    return isinstance(reply, list) and len(reply) == 1 and text(reply[0]) == "OWNER"


@dataclass(frozen=True)
class _Read:
    """A session as READ_INFO_SCRIPT saw it, with the raw last activity for the index."""

    info: SessionInfo | None
    last_activity_ms: int | None


def _read(session_id: str, reply: Any, meta_key: str, list_key: str) -> _Read:
    META_TYPES.check(reply, (meta_key, list_key))
    count = int(reply[0])
    if len(reply) < 2:
        info = SessionInfo(session_id, None, None, None, None, count) if count else None
        return _Read(info, None)
    fields = _fields(reply[1])
    last_ms = _ms(fields.get("last_activity"))
    info = SessionInfo(
        session_id=session_id,
        owner=fields.get("owner"),
        title=fields.get("title"),
        created=_time(_ms(fields.get("created"))),
        last_activity=_time(last_ms),
        message_count=count,
    )
    return _Read(info, last_ms)


def _meta_keys(config: StoreSettings, session_id: str) -> tuple[str, ...]:
    """KEYS of the scripts on one session's metadata: meta, list, [meta's 0.1.0 name]."""
    layout = config.layout
    keys: tuple[str, ...] = (layout.meta_key(session_id), layout.messages_key(session_id))
    legacy = layout.legacy_meta_key(session_id)
    return keys if legacy is None else (*keys, legacy)


def _read_call(config: StoreSettings, session_id: str) -> Call:
    return Call((session_id,), READ_INFO_SCRIPT, _meta_keys(config, session_id))


def _plan_reads(config: StoreSettings, session_ids: Sequence[str]) -> Plan[list[_Read]]:
    """Read several sessions' metadata and message counts in one round trip."""
    calls = tuple(_read_call(config, session_id) for session_id in session_ids)

    def parse(replies: list[Any]) -> list[_Read]:
        return [
            _read(session_id, reply, *call.keys[:2])
            for session_id, reply, call in zip(session_ids, replies, calls, strict=True)
        ]

    return Plan(calls, parse)


# ------------------------------------------------------------------------ single-session plans


def plan_session_info(config: StoreSettings, session_id: str) -> Plan[SessionInfo | None]:
    """The session's metadata and message count; None if it has neither."""
    check_session_id(session_id)
    call = _read_call(config, session_id)
    return Plan((call,), lambda replies: _read(session_id, replies[0], *call.keys[:2]).info)


def plan_rename(config: StoreSettings, session_id: str, title: str) -> Plan[bool]:
    """Set the session's title; False if there is no such session (nothing is created)."""
    check_session_id(session_id)
    check_title(title)
    keys = _meta_keys(config, session_id)

    def parse(replies: list[Any]) -> bool:
        return int(META_TYPES.check(replies[0], keys)) == 1

    return Plan((Call((session_id, title), RENAME_SCRIPT, keys),), parse)


def plan_touch_index(
    config: StoreSettings, owner: str, session_id: str, last_activity_ms: int
) -> Plan[None]:
    """Add or move the session's entry in its owner's index (never back in time)."""
    index = config.layout.owner_index_key(owner)
    call = Call((last_activity_ms, session_id, config.ttl or 0), TOUCH_INDEX_SCRIPT, (index,))
    return Plan((call,), lambda replies: _index_reply(replies[0], index))


def _index_reply(reply: Any, index: str) -> Any:
    """A reply of a script on an owner index, unless it reports another type (raised)."""
    return INDEX_TYPES.check(reply, (index,))


@dataclass
class _IndexWalk:
    """Reads an owner index newest first, a batch per round trip: entries scored at most
    ``top``, skipping the first ``skip`` scored exactly ``top`` (Redis orders ties by
    member, so ties split across batches are neither lost nor repeated)."""

    index: str
    top: int | None = None
    skip: int = 0

    def plan(self, count: int) -> Plan[list[tuple[str, int]]]:
        high = "+inf" if self.top is None else self.top
        call = Call((high, self.skip, count), READ_INDEX_SCRIPT, (self.index,))
        return Plan((call,), lambda replies: _pairs(_index_reply(replies[0], self.index)))

    def advance(self, entries: Sequence[tuple[str, int]]) -> None:
        """Move past ``entries``, the batch just read."""
        if not entries:
            return
        tail = entries[-1][1]
        if tail == self.top:
            self.skip += len(entries)
        else:
            self.top, self.skip = tail, sum(1 for _member, score in entries if score == tail)


# ---------------------------------------------------------------------------------- the flows


def create_flow(
    config: StoreSettings, session_id: str, owner: str | None, title: str | None
) -> Flow[SessionInfo]:
    """Create the session's metadata, or fill in what is missing (idempotent), then index
    it under its owner. Existing values (created, owner, title) are never overwritten."""
    check_session_id(session_id)
    if owner is not None:
        check_owner(owner)
    if title is not None:
        check_title(title)
    keys = _meta_keys(config, session_id)
    args = (session_id, config.ttl or 0, owner or "", "" if title is None else "1" + title)

    def parse(replies: list[Any]) -> _Read:
        reply = replies[0]
        if _is_owner_conflict(reply):
            raise OwnerConflictError(
                f"session {session_id!r} already belongs to another owner; nothing was changed"
            )
        return _read(session_id, reply, *keys[:2])

    read: _Read = yield Plan((Call(args, CREATE_SCRIPT, keys),), parse)
    info = read.info
    assert info is not None  # the script wrote it
    if info.owner is not None and read.last_activity_ms is not None:
        yield plan_touch_index(config, info.owner, session_id, read.last_activity_ms)
    return info


@dataclass(frozen=True)
class Unchanged:
    """A session list as it was read: deleted only if it still has this length and
    these elements at list index 0 and -1 (a move deletes only what it copied)."""

    length: int
    head: bytes
    tail: bytes


def delete_flow(
    config: StoreSettings,
    session_ids: Sequence[str],
    *,
    unless_changed: Mapping[str, Unchanged] | None = None,
    keep_indexed_in: str | None = None,
) -> Flow[int]:
    """Delete whole sessions (list, retry tokens, metadata: one script each, pipelined),
    then their owner index entries; return how many sessions existed.

    Each session goes whole or not at all: one with a key of another type is left
    untouched and reported (WrongTypeError, after the others are deleted). A session in
    ``unless_changed`` is deleted only if its list is still as given (else it counts as
    not deleted). ``keep_indexed_in``: an owner index key whose entries stay (another
    layout on the same server indexes the sessions there too)."""
    layout = config.layout
    guards = unless_changed or {}
    calls = []
    for session_id in session_ids:
        check_session_id(session_id)
        keys: tuple[str, ...] = (
            layout.messages_key(session_id),
            layout.token_key(session_id),
            layout.meta_key(session_id),
        )
        legacy_tokens = layout.legacy_token_key(session_id)
        legacy_meta = layout.legacy_meta_key(session_id)
        if legacy_tokens is not None and legacy_meta is not None:
            keys += (legacy_tokens, legacy_meta)
        guard = guards.get(session_id)
        args: tuple[Any, ...] = (session_id,)
        if guard is not None:
            args += (guard.length, guard.head, guard.tail)
        calls.append(Call(args, DELETE_SCRIPT, keys))
    if not calls:
        return 0
    replies: list[Any] = yield Plan(tuple(calls), lambda replies: replies)
    by_owner: dict[str, list[str]] = {}
    deleted = 0
    refused: WrongTypeError | None = None
    for session_id, reply, call in zip(session_ids, replies, calls, strict=True):
        wrong = DELETE_TYPES.error(reply, call.keys)
        if wrong is not None:
            refused = refused or wrong
            continue
        removed, owner = (*reply, None)[:2]
        deleted += int(removed) > 0
        if owner is not None and layout.owner_index_key(text(owner)) != keep_indexed_in:
            by_owner.setdefault(text(owner), []).append(session_id)
    if by_owner:
        removals = tuple(
            Call(("ZREM", layout.owner_index_key(owner), *members))
            for owner, members in by_owner.items()
        )
        purpose = "remove deleted sessions from their owners' indexes"
        yield BestEffort(
            Plan(removals, lambda replies: None, (removals[0].args[1], "sorted set")), purpose
        )
    if refused is not None:
        raise refused
    return deleted


def _is_listed(read: _Read, owner: str) -> bool:
    """Whether an index entry is backed by a live session of that owner (whose times may
    be unreadable: such a session is listed, without them, rather than dropped)."""
    return read.info is not None and read.info.owner == owner


def _plan_prune(index: str, stale: Sequence[tuple[str, int]]) -> Plan[int]:
    args = tuple(value for member, score in stale for value in (member, score))
    call = Call(args, PRUNE_INDEX_SCRIPT, (index,))
    return Plan((call,), lambda replies: int(_index_reply(replies[0], index)))


def owner_sessions_flow(
    config: StoreSettings, owner: str, limit: int, cursor: str | None
) -> Flow[SessionPage]:
    """One page of the owner's sessions, most recently active first, in O(page) (plus
    any stale entries it meets, which it removes, so each is paid for once).

    Reads index entries below the cursor (ZREVRANGEBYSCORE ... LIMIT), then each one's
    metadata and message count in one pipelined round trip. Entries whose session is gone
    or has another owner are skipped, more are read so the page stays full, and the stale
    entries are removed afterwards; an entry scored older than its session's metadata is
    moved up. One entry beyond the page is checked to know whether another page exists.
    """
    check_owner(owner)
    _check_limit(limit)
    after = None if cursor is None else _parse_cursor(cursor)
    index = config.layout.owner_index_key(owner)
    wanted = limit + 1
    found: list[tuple[int, SessionInfo]] = []
    stale: list[tuple[str, int]] = []
    behind: list[tuple[str, int]] = []
    walk = _IndexWalk(index, top=None if after is None else after[0])
    while len(found) < wanted:
        count = wanted - len(found)
        entries = yield walk.plan(count)
        walk.advance(entries)
        fresh = [
            (member, score)
            for member, score in entries
            if after is None or score != after[0] or member.encode() < after[1]
        ]
        reads = (yield _plan_reads(config, [member for member, _score in fresh])) if fresh else []
        for (member, score), read in zip(fresh, reads, strict=True):
            if not _is_listed(read, owner):
                stale.append((member, score))
                continue
            assert read.info is not None
            found.append((score, read.info))
            if read.last_activity_ms is not None and read.last_activity_ms > score:
                behind.append((member, read.last_activity_ms))
        if len(entries) < count:
            break
    repairs = _plan_prune(index, stale).calls if stale else ()
    if behind:
        args = tuple(value for member, score in behind for value in (score, member))
        repairs += (Call(("ZADD", index, "GT", *args)),)
    if repairs:

        def check(replies: list[Any]) -> None:
            if stale:
                _index_reply(replies[0], index)

        plan = Plan(repairs, check, (index, "sorted set"))
        yield BestEffort(plan, "repair the owner index (stale or lagging entries)")
    page = found[:limit]
    more = len(found) > limit
    next_cursor = _cursor(page[-1][0], page[-1][1].session_id) if more else None
    return SessionPage(tuple(info for _score, info in page), next_cursor)


def reindex_flow(config: StoreSettings, owner: str | None, batch: int) -> Flow[ReindexReport]:
    """Rebuild owner indexes from the sessions' metadata and drop stale entries (all
    owners, or only ``owner``): SCAN every metadata key, ``batch`` per round trip, index
    each session under its owner, then walk the indexes and remove what no live session
    backs."""
    if owner is not None:
        check_owner(owner)
    layout = config.layout
    metadata = Scan(layout.meta_scan_pattern(), "hash", batch)
    seen: set[str] = set()
    indexed = 0
    while keys := (yield metadata):
        fresh = [key for key in keys if key not in seen]  # SCAN may return a key twice
        seen.update(fresh)
        indexed += yield from _index_metadata(config, fresh, owner)
    owners = {owner} if owner is not None else set()
    if owner is None:
        indexes = Scan(layout.owner_index_scan_pattern(), "zset", batch)
        while keys := (yield indexes):
            owners.update(
                found for key in keys if (found := layout.owner_of_index_key(key)) is not None
            )
    removed = 0
    for each in sorted(owners):
        removed += yield from prune_index_flow(config, each)
    return ReindexReport(indexed=indexed, removed=removed)


def _index_metadata(
    config: StoreSettings, meta_keys: Sequence[str], owner: str | None
) -> Flow[int]:
    """Index the sessions behind some metadata keys (found by SCAN) under their owners
    (only ``owner``'s, if given); return how many entries were written."""
    layout = config.layout
    if not meta_keys:
        return 0
    metas = yield Plan(
        tuple(Call(("HGETALL", key)) for key in meta_keys),
        lambda replies: [_fields(reply) for reply in replies],
        (meta_keys[0], "hash"),
    )
    touches: list[Call] = []
    legacy: list[str] = []
    for key, fields in zip(meta_keys, metas, strict=True):
        session_id, session_owner = fields.get("session"), fields.get("owner")
        last_ms = _ms(fields.get("last_activity"))
        if session_id is None or session_owner is None or last_ms is None:
            continue
        if layout.meta_key(session_id) == key:
            if owner is None or session_owner == owner:
                touches.extend(plan_touch_index(config, session_owner, session_id, last_ms).calls)
        elif layout.legacy_meta_key(session_id) == key:
            legacy.append(session_id)  # indexed below from what the session holds now
    indexed = {call.args[1] for call in touches}
    legacy = [session_id for session_id in dict.fromkeys(legacy) if session_id not in indexed]
    if legacy:  # reading a session adopts its 0.1.0 metadata (if it has no newer one)
        reads: list[_Read] = yield _plan_reads(config, legacy)
        for session_id, read in zip(legacy, reads, strict=True):
            info, last_ms = read.info, read.last_activity_ms
            if info is None or info.owner is None or last_ms is None:
                continue
            if owner is None or info.owner == owner:
                touches.extend(plan_touch_index(config, info.owner, session_id, last_ms).calls)
    if touches:
        yield Plan(tuple(touches), lambda replies: _touched(replies, touches))
    return len(touches)


def _touched(replies: list[Any], touches: Sequence[Call]) -> None:
    """Raise WrongTypeError for the first owner index of another type."""
    for reply, call in zip(replies, touches, strict=True):
        _index_reply(reply, call.keys[0])


def prune_index_flow(config: StoreSettings, owner: str) -> Flow[int]:
    """Walk the owner's whole index and remove the entries that no live session of theirs
    backs (after the walk, so removals do not shift it); return how many were removed."""
    walk = _IndexWalk(config.layout.owner_index_key(owner))
    stale: list[tuple[str, int]] = []
    while True:
        entries = yield walk.plan(PRUNE_BATCH)
        walk.advance(entries)
        if entries:
            reads = yield _plan_reads(config, [member for member, _score in entries])
            stale.extend(
                entry
                for entry, read in zip(entries, reads, strict=True)
                if not _is_listed(read, owner)
            )
        if len(entries) < PRUNE_BATCH:
            break
    removed = 0
    for start in range(0, len(stale), PRUNE_BATCH):
        removed += yield _plan_prune(walk.index, stale[start : start + PRUNE_BATCH])
    return removed


# ------------------------------------------------------------- restoring metadata (transfers)

#: The metadata fields an export carries and an import or migration restores.
RESTORED_FIELDS = ("owner", "title", "created", "last_activity")

# KEYS: meta, list. ARGV: session id, '1' to overwrite owner/title/created, ttl in seconds
# for metadata whose list does not exist (0 = none), then field, value pairs.
# An owner other than the session's is refused ({'OWNER'}) unless overwriting. Without
# overwriting, fields already set are kept; last_activity only ever moves forward. The
# metadata gets the list's remaining ttl (none if the list has none), so it never outlives
# the messages. Reply as READ_INFO_SCRIPT's.
RESTORE_META_SCRIPT = Script(
    _CHECK_TYPES
    + """
local overwrite = ARGV[2] == '1'
local given = {}
for i = 4, #ARGV, 2 do
  given[ARGV[i]] = ARGV[i + 1]
end
if given['owner'] and not overwrite then
  local current = redis.call('HGET', KEYS[1], 'owner')
  if current and current ~= given['owner'] then
    return {'OWNER'}
  end
end
redis.call('HSET', KEYS[1], 'session', ARGV[1])
for _, name in ipairs({'owner', 'title', 'created'}) do
  if given[name] then
    if overwrite then
      redis.call('HSET', KEYS[1], name, given[name])
    else
      redis.call('HSETNX', KEYS[1], name, given[name])
    end
  end
end
if given['last_activity'] then
  local current = tonumber(redis.call('HGET', KEYS[1], 'last_activity')) or -1
  if tonumber(given['last_activity']) > current then
    redis.call('HSET', KEYS[1], 'last_activity', given['last_activity'])
  end
end
if length > 0 then
  local left = redis.call('PTTL', KEYS[2])
  if left > 0 then
    redis.call('PEXPIRE', KEYS[1], left)
  else
    redis.call('PERSIST', KEYS[1])
  end
elseif tonumber(ARGV[3]) > 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[3])
end
return {length, redis.call('HGETALL', KEYS[1])}
"""
)


def restore_flow(
    config: StoreSettings,
    session_id: str,
    fields: dict[str, str],
    *,
    ttl: int | None,
    overwrite: bool,
) -> Flow[SessionInfo]:
    """Write exported metadata (``RESTORED_FIELDS``, as text) into the session's hash, then
    index the session under its owner. Idempotent; a session that already belongs to
    another owner raises OwnerConflictError and changes nothing, unless ``overwrite``.
    ``ttl`` (seconds) is used only when the session has no messages: otherwise the
    metadata follows the list's ttl. The owner index is kept at least as long as ``ttl``."""
    check_session_id(session_id)
    keys = _meta_keys(config, session_id)
    pairs = tuple(
        item for name in RESTORED_FIELDS if name in fields for item in (name, fields[name])
    )
    args = (session_id, "1" if overwrite else "0", ttl or 0, *pairs)

    def parse(replies: list[Any]) -> _Read:
        reply = replies[0]
        if _is_owner_conflict(reply):
            raise OwnerConflictError(
                f"session {session_id!r} already belongs to another owner; its metadata "
                "was left unchanged"
            )
        return _read(session_id, reply, *keys[:2])

    read: _Read = yield Plan((Call(args, RESTORE_META_SCRIPT, keys),), parse)
    info = read.info
    assert info is not None  # the script wrote the hash
    if info.owner is not None and read.last_activity_ms is not None:
        index_config = replace(config, ttl=ttl)
        yield plan_touch_index(index_config, info.owner, session_id, read.last_activity_ms)
    return info
