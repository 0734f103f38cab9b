"""The redis-free core of the LangGraph checkpointer: keys, scripts, and reading replies.

A thread's checkpoints, in every namespace, live in eight keys that share one hash tag,
so one Lua script serves every saver call in one round trip, on a cluster too:

=============== ====== ===========================================================
key             type   member or field -> value
=============== ====== ===========================================================
``P:{T}:idx``   zset   ``ns \\0 id`` (scores 0: lexical order, newest last per ns)
``P:{T}:ord``   zset   ``id \\0 ns`` (the thread's order across namespaces)
``P:{T}:cp``    hash   ``ns \\0 id`` -> the checkpoint without its values, and metadata
``P:{T}:cv``    hash   ``ns \\0 id`` -> parent id, then ``channel \\0 version`` pairs
``P:{T}:blob``  hash   ``ns \\0 channel \\0 version`` -> a channel's value at a version
``P:{T}:md``    hash   ``ns \\0 id`` -> the metadata as JSON, for filters in scripts
``P:{T}:w``     hash   ``ns \\0 id \\0 task \\0 idx`` -> task path, channel, the value
``P:{T}:wi``    zset   the fields of ``w`` (so one checkpoint's writes are a range)
=============== ====== ===========================================================

``T`` is the thread id with ``%``, ``{`` and ``}`` percent-encoded, as native chat
sessions are, so ``{T}`` is always a hash tag. Serialized values are ``type \\0 bytes``
(the serializer's type string round-trips byte for byte, as EncryptedSerializer needs).
Checkpoint ids are LangGraph's uuid6 strings, which sort as they were made.

Every call is idempotent when redis-py sends it again after a lost reply: a put writes
the same fields again (blobs with HSETNX), a regular write is first-writer-wins (HSETNX)
and a special one (error, interrupt, ...) last-writer-wins, as LangGraph asks. With a
ttl every call sets it on all eight keys, so a thread never half-expires.
"""

from __future__ import annotations

import json
import time
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from ._core import ServerFacts, durability_problem, server_version
from ._plan import Call, Flow, Info, Plan, Scan, Script, WrongTypeReply, text
from ._sessions_core import PRUNE_INDEX_SCRIPT
from .durability import Durability
from .errors import CorruptCheckpointError, DurabilityUnsupportedError, InvalidCheckpointError
from .layouts import decode_tag, encode_tag, glob_escape

__all__ = [
    "PARTS",
    "ListPage",
    "StoredTuple",
    "ThreadKeys",
    "check_name",
    "plan_copy_read",
    "plan_copy_write",
    "plan_delete",
    "plan_get",
    "plan_list_page",
    "plan_prune",
    "plan_put",
    "plan_put_writes",
    "thread_scan",
]

#: The parts of a thread's keys, in the order the scripts take them.
PARTS = ("idx", "ord", "cp", "cv", "blob", "md", "w", "wi")
_TYPES = WrongTypeReply(("zset", "zset", "hash", "hash", "hash", "hash", "hash", "zset"))
#: Checkpoints a list page looks at before it returns (then the next page goes on).
LIST_SCAN = 512


@dataclass(frozen=True)
class ThreadKeys:
    """The eight keys of one thread."""

    prefix: str
    thread_id: str

    @property
    def keys(self) -> tuple[str, ...]:
        tag = encode_tag(self.thread_id)
        return tuple(f"{self.prefix}:{{{tag}}}:{part}" for part in PARTS)


def thread_id_of(prefix: str, key: str) -> str | None:
    """The thread of a ``P:{T}:ord`` key, or None if it is not one."""
    head, tail = f"{prefix}:{{", "}:ord"
    if not (key.startswith(head) and key.endswith(tail)) or len(key) <= len(head) + len(tail):
        return None
    encoded = key[len(head) : -len(tail)]
    if "{" in encoded or "}" in encoded:
        return None
    return decode_tag(encoded)


def thread_scan(prefix: str) -> Scan:
    """SCAN for every thread's ``ord`` key (``list(None)``: all threads)."""
    return Scan(glob_escape(f"{prefix}:{{") + "*}:ord", "zset", 500)


def check_name(what: str, value: Any) -> str:
    """Namespaces, channels, task ids and paths are str without NUL or U+001E (the
    separators of the stored fields)."""
    if not isinstance(value, str):
        raise InvalidCheckpointError(f"{what} must be a str, not {type(value).__name__}")
    for separator, name in (("\0", "NUL"), ("\x1e", "U+001E")):
        if separator in value:
            raise InvalidCheckpointError(f"{what} contains a {name} character: {value!r}")
    return value


def thread_of(config: Mapping[str, Any]) -> str:
    """The thread id of a config, as text (LangGraph accepts ints and UUIDs too)."""
    configurable = config.get("configurable") or {}
    thread_id = configurable.get("thread_id")
    if thread_id is None or (isinstance(thread_id, str) and not thread_id):
        raise InvalidCheckpointError("config['configurable']['thread_id'] is required")
    return str(thread_id)


# Every script starts by checking that the thread's keys are of their types, and reports
# {'WRONGTYPE', n, type} touching nothing otherwise.
_CHECK_LUA = """
local expected = {'zset', 'zset', 'hash', 'hash', 'hash', 'hash', 'hash', 'zset'}
for n = 1, 8 do
  local found = redis.call('TYPE', KEYS[n])['ok']
  if found ~= 'none' and found ~= expected[n] then
    return {'WRONGTYPE', n, found}
  end
end
-- The id of the namespace's newest checkpoint, or nil (idx members are ns \\0 id).
local function latest_id(ns)
  local latest = redis.call('ZREVRANGEBYLEX', KEYS[1], '(' .. ns .. '\\1', '[' .. ns .. '\\0',
                            'LIMIT', 0, 1)
  if #latest == 0 then
    return nil
  end
  return string.sub(latest[1], #ns + 2)
end
local function expire_all(ms)
  if ms > 0 then
    for n = 1, 8 do
      redis.call('PEXPIRE', KEYS[n], ms)
    end
  end
end
"""

# ARGV: ttl ms (0: none), ns, id, the checkpoint's payload, metadata JSON, the cv value,
# then pairs of (channel \0 version, blob payload) for the new versions.
PUT_SCRIPT = Script(
    _CHECK_LUA
    + """
local ns, id = ARGV[2], ARGV[3]
local member = ns .. '\\0' .. id
for i = 7, #ARGV, 2 do
  redis.call('HSETNX', KEYS[5], ns .. '\\0' .. ARGV[i], ARGV[i + 1])
end
redis.call('HSET', KEYS[3], member, ARGV[4])
redis.call('HSET', KEYS[6], member, ARGV[5])
redis.call('HSET', KEYS[4], member, ARGV[6])
redis.call('ZADD', KEYS[1], 0, member)
redis.call('ZADD', KEYS[2], 0, id .. '\\0' .. ns)
expire_all(tonumber(ARGV[1]))
return {1}
"""
)

# ARGV: ttl ms, the checkpoint's member (ns \0 id), then triples (field suffix
# "task \0 idx", 1 if special, value). Regular writes: first writer wins; special: last.
PUT_WRITES_SCRIPT = Script(
    _CHECK_LUA
    + """
local head = ARGV[2] .. '\\0'
for i = 3, #ARGV, 3 do
  local field = head .. ARGV[i]
  if ARGV[i + 1] == '1' then
    redis.call('HSET', KEYS[7], field, ARGV[i + 2])
  else
    redis.call('HSETNX', KEYS[7], field, ARGV[i + 2])
  end
  redis.call('ZADD', KEYS[8], 0, field)
end
expire_all(tonumber(ARGV[1]))
return {1}
"""
)

# load(ns, id): {ns, id, checkpoint payload, cv, {blob values in cv order}, {write
# fields}, {write values}}, or false when the checkpoint is not stored.
_LOAD_LUA = """
local function load(ns, id)
  local member = ns .. '\\0' .. id
  local payload = redis.call('HGET', KEYS[3], member)
  if not payload then
    return false
  end
  local cv = redis.call('HGET', KEYS[4], member) or ''
  local fields = {}
  local first = true
  for part in string.gmatch(cv, '([^\\30]*)') do
    if first then
      first = false
    elseif part ~= '' then
      fields[#fields + 1] = ns .. '\\0' .. part
    end
  end
  local blobs = {}
  for i = 1, #fields, 500 do
    local chunk = redis.call('HMGET', KEYS[5], unpack(fields, i, math.min(#fields, i + 499)))
    for j = 1, #chunk do
      blobs[#blobs + 1] = chunk[j]
    end
  end
  local wfields = redis.call('ZRANGEBYLEX', KEYS[8], '[' .. member .. '\\0', '(' .. member .. '\\1')
  local wvalues = {}
  for i = 1, #wfields, 500 do
    local chunk = redis.call('HMGET', KEYS[7], unpack(wfields, i, math.min(#wfields, i + 499)))
    for j = 1, #chunk do
      wvalues[#wvalues + 1] = chunk[j]
    end
  end
  return {ns, id, payload, cv, blobs, wfields, wvalues}
end
"""

# ARGV: refresh ttl ms (0: none), ns, id ('' = the latest of the namespace).
GET_SCRIPT = Script(
    _CHECK_LUA
    + _LOAD_LUA
    + """
local ns, id = ARGV[2], ARGV[3]
if id == '' then
  id = latest_id(ns)
  if not id then
    return {}
  end
end
local found = load(ns, id)
if not found then
  return {}
end
expire_all(tonumber(ARGV[1]))
return {found}
"""
)

# ARGV: refresh ttl ms, mode ('ns' or 'all'), ns, before id ('' none), the cursor (the
# last member a previous page looked at, '' to start), how many matches to return, the
# scalar metadata filters as a JSON object ('' none). Reply: {cursor ('' when done),
# matches...}, newest first.
LIST_SCRIPT = Script(
    _CHECK_LUA
    + _LOAD_LUA
    + f"""
local by_ns = ARGV[2] == 'ns'
local ns, before, cursor, wanted = ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6])
local filters = false
if ARGV[7] ~= '' then
  filters = cjson.decode(ARGV[7])
end
local key, high, low
if by_ns then
  key, low = KEYS[1], '[' .. ns .. '\\0'
  high = before ~= '' and ('(' .. ns .. '\\0' .. before) or ('(' .. ns .. '\\1')
else
  key, low = KEYS[2], '-'
  high = before ~= '' and ('(' .. before) or '+'
end
if cursor ~= '' then
  high = '(' .. cursor
end
local function matches(member)
  if not filters then
    return true
  end
  local raw = redis.call('HGET', KEYS[6], member)
  local ok, metadata = pcall(cjson.decode, raw or '{{}}')
  if not ok or type(metadata) ~= 'table' then
    return false
  end
  for name, value in pairs(filters) do
    local stored = metadata[name]
    if value == cjson.null then
      if stored ~= nil and stored ~= cjson.null then
        return false
      end
    elseif stored ~= value then
      return false
    end
  end
  return true
end
local reply = {{''}}
local looked = 0
while looked < {LIST_SCAN} do
  local members = redis.call('ZREVRANGEBYLEX', key, high, low, 'LIMIT', 0, 64)
  if #members == 0 then
    break
  end
  for _, member in ipairs(members) do
    looked = looked + 1
    high = '(' .. member
    local cut = string.find(member, '\\0', 1, true)
    local m_ns, m_id
    if by_ns then
      m_ns, m_id = string.sub(member, 1, cut - 1), string.sub(member, cut + 1)
    else
      m_id, m_ns = string.sub(member, 1, cut - 1), string.sub(member, cut + 1)
    end
    if matches(m_ns .. '\\0' .. m_id) then
      local found = load(m_ns, m_id)
      if found then
        reply[#reply + 1] = found
      end
    end
    if #reply - 1 >= wanted or looked >= {LIST_SCAN} then
      reply[1] = member
      expire_all(tonumber(ARGV[1]))
      return reply
    end
  end
end
expire_all(tonumber(ARGV[1]))
return reply
"""
)

# drop(member) deletes one checkpoint with its writes; sweep() then cuts parent links to
# dropped checkpoints and deletes the blobs no remaining checkpoint refers to.
_DROP_LUA = """
local function drop(member)
  local cut = string.find(member, '\\0', 1, true)
  local ns, id = string.sub(member, 1, cut - 1), string.sub(member, cut + 1)
  redis.call('HDEL', KEYS[3], member)
  redis.call('HDEL', KEYS[4], member)
  redis.call('HDEL', KEYS[6], member)
  redis.call('ZREM', KEYS[1], member)
  redis.call('ZREM', KEYS[2], id .. '\\0' .. ns)
  local writes = redis.call('ZRANGEBYLEX', KEYS[8], '[' .. member .. '\\0',
                            '(' .. member .. '\\1')
  for _, field in ipairs(writes) do
    redis.call('HDEL', KEYS[7], field)
    redis.call('ZREM', KEYS[8], field)
  end
end
local function sweep()
  local referenced = {}
  for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
    local cut = string.find(member, '\\0', 1, true)
    local ns = string.sub(member, 1, cut - 1)
    local cv = redis.call('HGET', KEYS[4], member) or ''
    local parent_end = string.find(cv, '\\30', 1, true)
    local parent = parent_end and string.sub(cv, 1, parent_end - 1) or cv
    if parent ~= '' and redis.call('HEXISTS', KEYS[3], ns .. '\\0' .. parent) == 0 then
      cv = parent_end and string.sub(cv, parent_end) or ''
      redis.call('HSET', KEYS[4], member, cv)
    end
    local first = true
    for part in string.gmatch(cv, '([^\\30]*)') do
      if first then
        first = false
      elseif part ~= '' then
        referenced[ns .. '\\0' .. part] = true
      end
    end
  end
  for _, field in ipairs(redis.call('HKEYS', KEYS[5])) do
    if not referenced[field] then
      redis.call('HDEL', KEYS[5], field)
    end
  end
end
"""

# Keep the newest checkpoint of each namespace; drop the others with their writes, the
# blobs no kept checkpoint refers to, and parent links to dropped checkpoints. A thread
# with DeltaChannel checkpoints is refused ({'DELTA'}): its values need the ancestors.
PRUNE_SCRIPT = Script(
    _CHECK_LUA
    + _DROP_LUA
    + """
local members = redis.call('ZRANGE', KEYS[1], 0, -1)
local newest = {}
for _, member in ipairs(members) do
  local raw = redis.call('HGET', KEYS[6], member)
  if raw and string.find(raw, '"counters_since_delta_snapshot"', 1, true) then
    return {'DELTA'}
  end
  local cut = string.find(member, '\\0', 1, true)
  newest[string.sub(member, 1, cut - 1)] = member
end
local kept, dropped = {}, 0
for _, member in pairs(newest) do
  kept[member] = true
end
for _, member in ipairs(members) do
  if not kept[member] then
    drop(member)
    dropped = dropped + 1
  end
end
sweep()
return {dropped}
"""
)

# ARGV: a run id. Drop the thread's checkpoints whose metadata names that run (with their
# writes), then sweep. Reply: {how many were dropped}.
DELETE_RUN_SCRIPT = Script(
    _CHECK_LUA
    + _DROP_LUA
    + """
local dropped = 0
for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local raw = redis.call('HGET', KEYS[6], member)
  local ok, metadata = pcall(cjson.decode, raw or '{}')
  if ok and type(metadata) == 'table' and metadata['run_id'] == ARGV[1] then
    drop(member)
    dropped = dropped + 1
  end
end
if dropped > 0 then
  sweep()
end
return {dropped}
"""
)


def registry_key(prefix: str) -> str:
    """The prefix's thread registry: a sorted set of thread ids scored by their last put
    (ms), so threads can be listed newest first without SCAN (another slot than any
    thread: written in the same round trip, not atomically; a stale entry, of a thread
    that expired, is dropped when a listing meets it)."""
    return f"{prefix}:threads"


def owner_index_key(prefix: str, owner: str) -> str:
    """An owner's threads (savers with ``owner_key``): a sorted set of thread ids scored
    by their last put (ms), kept like the registry, and like the chat sessions' owner
    index: written in the put's round trip, stale entries dropped when a listing meets
    them."""
    return f"{prefix}:owner:{{{encode_tag(owner)}}}:threads"


def owner_of(metadata: Mapping[str, Any] | None, owner_key: str | None) -> str | None:
    """The owner a checkpoint's metadata names under ``owner_key`` (LangGraph copies
    ``configurable`` values such as ``user_id`` into every checkpoint's metadata): a
    non-empty str, or an int, without control characters; None for anything else."""
    if owner_key is None or not metadata:
        return None
    value = metadata.get(owner_key)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value or len(value) > 1024:
        return None
    if any(ord(char) < 32 or ord(char) == 127 for char in value):
        return None
    return value


# KEYS: the thread's ord and md. The metadata JSON of its newest checkpoint (any
# namespace), or false without one (or when a key is not ours: pcall).
NEWEST_METADATA_SCRIPT = Script(
    """
local newest = redis.pcall('ZRANGE', KEYS[1], -1, -1)
if type(newest) ~= 'table' or not newest[1] then return false end
local sep = string.find(newest[1], '\0', 1, true)
if not sep then return false end
local field = string.sub(newest[1], sep + 1) .. '\0' .. string.sub(newest[1], 1, sep - 1)
local found = redis.pcall('HGET', KEYS[2], field)
if type(found) ~= 'string' then return false end
return found
"""
)


def plan_owner(keys: ThreadKeys, owner_key: str) -> Plan[str | None]:
    """The thread's owner: ``owner_key`` in its newest checkpoint's metadata."""
    call = Call((), script=NEWEST_METADATA_SCRIPT, keys=(keys.keys[1], keys.keys[5]))
    return Plan((call,), lambda replies: owner_of(_json_object(replies[0]), owner_key))


def _json_object(reply: Any) -> dict[str, Any] | None:
    """A stored metadata JSON object, or None if it is missing or not one."""
    if not reply:
        return None
    try:
        found = json.loads(reply)
    except ValueError:
        return None
    return found if isinstance(found, dict) else None


def run_key(prefix: str, run_id: str) -> str:
    """The set of threads a run wrote checkpoints to (for delete_for_runs)."""
    return f"{prefix}:run:{{{encode_tag(run_id)}}}"


def plan_delete_run(keys: ThreadKeys, run_id: str) -> Plan[int]:
    """Drop one thread's checkpoints of a run; how many went."""
    all_keys = keys.keys
    call = Call((run_id,), script=DELETE_RUN_SCRIPT, keys=all_keys)
    return Plan((call,), lambda replies: int(_check(replies[0], all_keys)[0]))


def delete_runs_flow(prefix: str, run_ids: Sequence[str]) -> Flow[int]:
    """Delete every checkpoint (and its writes) of the runs: each run's thread set, then
    one script per thread, then the set. Returns how many checkpoints went."""
    dropped = 0
    for run_id in run_ids:
        key = run_key(prefix, check_name("run_id", str(run_id)))
        threads = yield Plan(
            (Call(("SMEMBERS", key)),), lambda replies: list(replies[0]), (key, "set")
        )
        for thread in threads:
            dropped += yield plan_delete_run(ThreadKeys(prefix, text(thread)), str(run_id))
        yield Plan((Call(("UNLINK", key)),), lambda replies: None)
    return dropped


# ARGV: ns, id ('' = the newest), the channels. Walk the parent chain from the target's
# parent; per ancestor: {id, {write fields}, {write values} (of the channels still
# walking), {channel, blob, ...} for channels whose blob there ends their walk}.
DELTA_SCRIPT = Script(
    _CHECK_LUA
    + """
local ns, id = ARGV[1], ARGV[2]
if id == '' then
  id = latest_id(ns)
  if not id then
    return {}
  end
end
local remaining, left = {}, 0
for i = 3, #ARGV do
  if not remaining[ARGV[i]] then
    remaining[ARGV[i]] = true
    left = left + 1
  end
end
local function parent_and_versions(member)
  local cv = redis.call('HGET', KEYS[4], member)
  if not cv then
    return nil, nil
  end
  local parent, versions, first = nil, {}, true
  for part in string.gmatch(cv, '([^\\30]*)') do
    if first then
      parent, first = part, false
    elseif part ~= '' then
      local cut = string.find(part, '\\0', 1, true)
      versions[string.sub(part, 1, cut - 1)] = string.sub(part, cut + 1)
    end
  end
  return parent, versions
end
local reply = {}
local current = parent_and_versions(ns .. '\\0' .. id)
while current and current ~= '' and left > 0 do
  local member = ns .. '\\0' .. current
  local parent, versions = parent_and_versions(member)
  if not versions then
    break
  end
  local seeds = {}
  for channel in pairs(remaining) do
    local version = versions[channel]
    if version then
      local blob = redis.call('HGET', KEYS[5], ns .. '\\0' .. channel .. '\\0' .. version)
      if blob and string.sub(blob, 1, 6) ~= 'empty\\0' then
        seeds[#seeds + 1] = channel
        seeds[#seeds + 1] = blob
      end
    end
  end
  local fields, values = {}, {}
  local all = redis.call('ZRANGEBYLEX', KEYS[8], '[' .. member .. '\\0', '(' .. member .. '\\1')
  for _, field in ipairs(all) do
    local value = redis.call('HGET', KEYS[7], field)
    if value then
      local a = string.find(value, '\\0', 1, true)
      local b = a and string.find(value, '\\0', a + 1, true)
      if b and remaining[string.sub(value, a + 1, b - 1)] then
        fields[#fields + 1] = field
        values[#values + 1] = value
      end
    end
  end
  reply[#reply + 1] = {current, fields, values, seeds}
  for i = 1, #seeds, 2 do
    remaining[seeds[i]] = nil
    left = left - 1
  end
  current = parent
end
return reply
"""
)


class Ancestor(NamedTuple):
    """One checkpoint on a delta walk: its writes of the walked channels (LangGraph's
    order), and the blobs that end some channels' walks there."""

    checkpoint_id: str
    writes: list[Write]
    seeds: dict[str, tuple[str, bytes]]


def plan_delta_walk(
    keys: ThreadKeys, ns: str, checkpoint_id: str | None, channels: Sequence[str]
) -> Plan[list[Ancestor]]:
    """The parent chain of a checkpoint, as get_delta_channel_history walks it, in one
    round trip: each ancestor's writes of the channels, until each channel's seed."""
    all_keys = keys.keys
    names = [check_name("channel", channel) for channel in channels]

    def parse(replies: list[Any]) -> list[Ancestor]:
        found = []
        for ancestor_id, fields, values, seeds in _check(replies[0], all_keys):
            where = f"{ns}/{text(ancestor_id)}"
            seed_map = {
                text(seeds[i]): _typed(bytes(seeds[i + 1])) for i in range(0, len(seeds), 2)
            }
            found.append(
                Ancestor(text(ancestor_id), _writes(fields, values, all_keys, where), seed_map)
            )
        return found

    call = Call((ns, checkpoint_id or "", *names), script=DELTA_SCRIPT, keys=all_keys, raw=True)
    return Plan((call,), parse)


def _payload(typed: tuple[str, bytes]) -> bytes:
    kind, data = typed
    return kind.encode() + b"\0" + bytes(data)


def _typed(payload: bytes) -> tuple[str, bytes]:
    kind, _, data = payload.partition(b"\0")
    return kind.decode(), data


def split_payload(payload: bytes) -> tuple[str, bytes]:
    """A stored value as the serializer's ``(type, bytes)`` (compressed ones still so:
    :func:`loads` takes them)."""
    return _typed(payload)


#: The type prefix of a value stored zlib-compressed (the serializer's type follows).
COMPRESSED = "z:"


def compress(typed: tuple[str, bytes], over: int | None) -> tuple[str, bytes]:
    """``typed`` zlib-compressed (level 1) when it is at least ``over`` bytes and that
    saves a tenth; else as it is. LangGraph's default channels store the whole
    conversation in every checkpoint, so long threads are mostly repeated text."""
    kind, data = typed
    if over is None or len(data) < over or kind.startswith(COMPRESSED):
        return typed
    packed = zlib.compress(bytes(data), 1)
    return (COMPRESSED + kind, packed) if len(packed) < 0.9 * len(data) else typed


def _metadata_json(metadata: Mapping[str, Any]) -> str:
    """The metadata as JSON for the scripts' filters: values JSON cannot hold become
    null (the client checks every filter again on the real metadata)."""
    try:
        return json.dumps(metadata, default=lambda _value: None, allow_nan=False)
    except (TypeError, ValueError):
        return "{}"


def plan_put(
    keys: ThreadKeys,
    ns: str,
    checkpoint_id: str,
    parent_id: str | None,
    checkpoint_payload: tuple[str, bytes],
    metadata: Mapping[str, Any],
    channel_versions: Mapping[str, Any],
    new_blobs: Iterable[tuple[str, Any, tuple[str, bytes]]],
    ttl_ms: int,
    now_ms: int,
    owner: str | None = None,
    owner_index_ttl_ms: int = 0,
) -> Plan[None]:
    """Store a checkpoint (its payload holds the checkpoint without values, and the
    metadata), its parent and versions, and the blobs of its new versions; record the
    thread in the registry at ``now_ms``, and in its owner's index if it has one (that
    key expires ``owner_index_ttl_ms`` after the put, if not 0)."""
    cv = "\x1e".join(
        [
            parent_id or "",
            *(
                f"{check_name('channel', ch)}\0{version}"
                for ch, version in channel_versions.items()
            ),
        ]
    )
    args: list[Any] = [
        ttl_ms,
        ns,
        checkpoint_id,
        _payload(checkpoint_payload),
        _metadata_json(metadata),
        cv,
    ]
    for channel, version, blob in new_blobs:
        args += [f"{channel}\0{version}", _payload(blob)]
    all_keys = keys.keys
    side: tuple[Call, ...] = (Call(("ZADD", registry_key(keys.prefix), now_ms, keys.thread_id)),)
    if owner is not None:
        index = owner_index_key(keys.prefix, owner)
        side += (Call(("ZADD", index, now_ms, keys.thread_id)),)
        if owner_index_ttl_ms:
            side += (Call(("PEXPIRE", index, owner_index_ttl_ms)),)
    run_id = metadata.get("run_id")
    if isinstance(run_id, str) and run_id:
        # The run's thread set, for delete_for_runs (another slot: see write_flow; a set
        # member without checkpoints is harmless).
        index = run_key(keys.prefix, run_id)
        side += (Call(("SADD", index, keys.thread_id)),)
        if ttl_ms:
            side += (Call(("PEXPIRE", index, ttl_ms)),)
    call = Call(tuple(args), script=PUT_SCRIPT, keys=all_keys)
    return Plan((call, *side), lambda replies: _check(replies[0], all_keys) and None)


def write_flow(plan: Plan[None], level: Durability, server: ServerFacts) -> Flow[None]:
    """Send a put or put_writes plan (its first call is the thread's script, any others
    are for other slots), then with a durability level WAIT/WAITAOF on the script's
    connection: NotDurableError if the level was not reached (the write is stored)."""
    if not level.waits:
        yield plan
        return None
    if level.fsync and server.version is None:
        server.version = server_version((yield Info("server")))
    problem = durability_problem(level, version=server.version)
    if problem:
        raise DurabilityUnsupportedError(problem)
    script, *side = plan.calls
    if side:
        yield Plan(tuple(side), lambda replies: None)

    def parse(replies: list[Any]) -> None:
        plan.parse(replies[:1])
        level.check(replies[1])

    yield Plan((script, Call(level.command())), parse, same_connection_as=script.keys[0])
    return None


def plan_put_writes(
    keys: ThreadKeys,
    ns: str,
    checkpoint_id: str,
    task_id: str,
    task_path: str,
    writes: Sequence[tuple[int, str, tuple[str, bytes]]],
    ttl_ms: int,
) -> Plan[None]:
    """Store a task's writes: ``(idx, channel, typed value)``; negative idx = special."""
    args: list[Any] = [ttl_ms, f"{ns}\0{checkpoint_id}"]
    for idx, channel, typed in writes:
        value = f"{task_path}\0{channel}\0".encode() + _payload(typed)
        args += [f"{task_id}\0{idx}", "1" if idx < 0 else "0", value]
    all_keys = keys.keys
    call = Call(tuple(args), script=PUT_WRITES_SCRIPT, keys=all_keys)
    return Plan((call,), lambda replies: _check(replies[0], all_keys) and None)


def _check(reply: Any, keys: Sequence[str]) -> Any:
    return _TYPES.check(reply, keys)


class StoredTuple(NamedTuple):
    """A checkpoint as a script returned it, not yet deserialized."""

    ns: str
    checkpoint_id: str
    parent_id: str | None
    payload: tuple[str, bytes]
    blobs: list[tuple[str, tuple[str, bytes]]]  # (channel, typed value), "empty" left out
    writes: list[tuple[str, str, tuple[str, bytes], str, int]]  # see Write


def _stored(found: Sequence[Any], keys: Sequence[str]) -> StoredTuple:
    ns, checkpoint_id, payload, cv, blob_values, write_fields, write_values = found
    ns, checkpoint_id = text(ns), text(checkpoint_id)
    parts = bytes(cv).split(b"\x1e")
    parent = parts[0].decode() or None
    channels = [part.partition(b"\0")[0].decode() for part in parts[1:] if part]
    blobs = []
    for channel, value in zip(channels, blob_values, strict=True):
        if value is None:
            continue  # never stored (LangGraph reads the channel as unset)
        typed = _typed(bytes(value))
        if typed[0] != "empty":
            blobs.append((channel, typed))
    writes = _writes(write_fields, write_values, keys, f"{ns}/{checkpoint_id}")
    return StoredTuple(ns, checkpoint_id, parent, _typed(bytes(payload)), blobs, writes)


Write = tuple[str, str, tuple[str, bytes], str, int]  # task, channel, value, path, idx


def _writes(
    fields: Sequence[Any], values: Sequence[Any], keys: Sequence[str], where: str
) -> list[Write]:
    """A checkpoint's writes, in LangGraph's order (task path, task id, idx)."""
    writes: list[Write] = []
    for field, value in zip(fields, values, strict=True):
        if value is None:
            continue
        *_, task_id, idx = bytes(field).split(b"\0")
        path, _, rest = bytes(value).partition(b"\0")
        channel_name, _, typed_value = rest.partition(b"\0")
        try:
            writes.append(
                (
                    task_id.decode(),
                    channel_name.decode(),
                    _typed(typed_value),
                    path.decode(),
                    int(idx),
                )
            )
        except ValueError as exc:
            raise CorruptCheckpointError(keys[6], where, str(exc)) from exc
    writes.sort(key=lambda w: (w[3], w[0], w[4]))
    return writes


def plan_get(
    keys: ThreadKeys, ns: str, checkpoint_id: str | None, refresh_ms: int
) -> Plan[StoredTuple | None]:
    """One checkpoint (the newest of the namespace without an id), or None."""
    all_keys = keys.keys

    def parse(replies: list[Any]) -> StoredTuple | None:
        reply = _check(replies[0], all_keys)
        return _stored(reply[0], all_keys) if reply else None

    call = Call((refresh_ms, ns, checkpoint_id or ""), script=GET_SCRIPT, keys=all_keys, raw=True)
    return Plan((call,), parse)


class ListPage(NamedTuple):
    """Checkpoints of one page of a listing, and where the next page starts ('' = done)."""

    cursor: str
    found: list[StoredTuple]


def plan_list_page(
    keys: ThreadKeys,
    ns: str | None,
    before: str | None,
    cursor: str,
    wanted: int,
    scalar_filters: Mapping[str, Any] | None,
    refresh_ms: int,
) -> Plan[ListPage]:
    """Up to ``wanted`` checkpoints newest first (one namespace, or all with ns None)."""
    all_keys = keys.keys
    filters = json.dumps(dict(scalar_filters)) if scalar_filters else ""
    args = (
        refresh_ms,
        "all" if ns is None else "ns",
        ns or "",
        before or "",
        cursor,
        wanted,
        filters,
    )

    def parse(replies: list[Any]) -> ListPage:
        reply = _check(replies[0], all_keys)
        return ListPage(text(reply[0]), [_stored(found, all_keys) for found in reply[1:]])

    return Plan((Call(args, script=LIST_SCRIPT, keys=all_keys, raw=True),), parse)


def plan_delete(keys: ThreadKeys, owner: str | None = None) -> Plan[None]:
    """Delete the thread: its eight keys (one slot), freed in the background, and its
    registry entry (and its owner index entry, given the owner)."""
    calls = [
        Call(("UNLINK", *keys.keys)),
        Call(("ZREM", registry_key(keys.prefix), keys.thread_id)),
    ]
    if owner is not None:
        calls.append(Call(("ZREM", owner_index_key(keys.prefix, owner), keys.thread_id)))
    return Plan(tuple(calls), lambda replies: None)


def delete_flow(keys: ThreadKeys, owner_key: str | None) -> Flow[None]:
    """Delete a thread; with ``owner_key``, its owner is read first (one more round trip)
    so the owner's index loses the entry too."""
    owner = None if owner_key is None else (yield plan_owner(keys, owner_key))
    yield plan_delete(keys, owner)
    return None


def threads_flow(
    prefix: str, limit: int | None, owner: tuple[str, str] | None = None
) -> Flow[list[tuple[str, int]]]:
    """Registered threads newest first, as (thread id, last put ms), at most ``limit``;
    with ``owner`` = (owner key, owner), that owner's threads. Entries whose thread has no
    checkpoint left (expired, deleted elsewhere), or now names another owner, are dropped
    from the index on the way (unless a put re-scored them meanwhile); a thread whose
    newest metadata names no owner under the key is not listed, and keeps its entry."""
    registry = registry_key(prefix) if owner is None else owner_index_key(prefix, owner[1])
    found: list[tuple[str, int]] = []
    start, page = 0, 100 if limit is None else max(1, min(limit, 500))
    while limit is None or len(found) < limit:
        entries = yield Plan(
            (Call(("ZREVRANGE", registry, start, start + page - 1, "WITHSCORES")),),
            lambda replies: [(text(member), int(score)) for member, score in replies[0]],
            (registry, "sorted set"),
        )
        if not entries:
            break
        start += len(entries)
        verdicts = yield _plan_listed(prefix, [thread for thread, _ in entries], owner)
        stale = [
            entry for entry, verdict in zip(entries, verdicts, strict=True) if verdict is False
        ]
        if stale:
            args = tuple(value for thread, score in stale for value in (thread, score))
            start -= yield Plan(
                (Call(args, script=PRUNE_INDEX_SCRIPT, keys=(registry,)),),
                lambda replies: int(replies[0]),
            )
        found += [
            entry for entry, verdict in zip(entries, verdicts, strict=True) if verdict is True
        ]
    return found if limit is None else found[:limit]


def _plan_listed(
    prefix: str, threads: Sequence[str], owner: tuple[str, str] | None
) -> Plan[list[bool | None]]:
    """Per thread: True to list it, False if its entry is stale (no checkpoint left, or
    its newest checkpoint names another owner), None to skip it but keep the entry (its
    metadata has no owner under the key: perhaps the listing's owner key is not the one
    the saver that wrote it used)."""
    all_keys = [ThreadKeys(prefix, thread).keys for thread in threads]
    if owner is None:
        calls = tuple(Call(("EXISTS", keys[0])) for keys in all_keys)
        return Plan(calls, lambda replies: [bool(int(reply)) for reply in replies])
    owner_key, name = owner

    def verdict(reply: Any) -> bool | None:
        metadata = _json_object(reply)
        if metadata is None:
            return False
        found = owner_of(metadata, owner_key)
        return None if found is None else found == name

    calls = tuple(
        Call((), script=NEWEST_METADATA_SCRIPT, keys=(keys[1], keys[5])) for keys in all_keys
    )
    return Plan(calls, lambda replies: [verdict(reply) for reply in replies])


def plan_prune(keys: ThreadKeys) -> Plan[int | None]:
    """Keep the newest checkpoint per namespace; None if the thread uses DeltaChannel."""
    all_keys = keys.keys

    def parse(replies: list[Any]) -> int | None:
        reply = _check(replies[0], all_keys)
        return None if text(reply[0]) == "DELTA" else int(reply[0])

    return Plan((Call((), script=PRUNE_SCRIPT, keys=all_keys),), parse)


Contents = list[tuple[str, list[bytes], int]]  # per key: its type, flat items, pttl ms


def _flat(reply: Any) -> list[bytes]:
    """A hash's fields and values (or a zset's members) as one flat list of bytes,
    whatever shape redis-py's reply callbacks gave them."""
    if isinstance(reply, dict):
        return [bytes(item) for pair in reply.items() for item in pair]
    return [bytes(item) for item in reply]


def plan_copy_read(keys: ThreadKeys) -> Plan[Contents]:
    """Every key of a thread with its ttl, read in one round trip (plain reads: DUMP and
    RESTORE are @dangerous, which restricted ACL users and managed services refuse)."""
    calls = []
    for part, key in zip(PARTS, keys.keys, strict=True):
        read = ("ZRANGE", key, 0, -1) if part in ("idx", "ord", "wi") else ("HGETALL", key)
        calls += [Call(read, raw=True), Call(("PTTL", key))]

    def parse(replies: list[Any]) -> Contents:
        return [
            ("zset" if part in ("idx", "ord", "wi") else "hash", _flat(items), int(ttl))
            for part, items, ttl in zip(PARTS, replies[::2], replies[1::2], strict=True)
        ]

    return Plan(tuple(calls), parse)


def plan_copy_write(
    keys: ThreadKeys, contents: Contents, now_ms: int, owner: str | None = None
) -> Plan[None]:
    """Replace the thread's keys with the copied contents (one round trip; the thread's
    slot, the registry's, and its owner index's if it has an owner)."""
    calls = [
        Call(("UNLINK", *keys.keys)),
        Call(("ZADD", registry_key(keys.prefix), now_ms, keys.thread_id)),
    ]
    if owner is not None:
        calls.append(Call(("ZADD", owner_index_key(keys.prefix, owner), now_ms, keys.thread_id)))
    for key, (kind, items, ttl) in zip(keys.keys, contents, strict=True):
        if kind == "hash":
            for start in range(0, len(items), 1000):
                calls.append(Call(("HSET", key, *items[start : start + 1000])))
        else:
            for start in range(0, len(items), 500):
                chunk = items[start : start + 500]
                calls.append(Call(("ZADD", key, *(x for member in chunk for x in (0, member)))))
        if items and ttl > 0:
            calls.append(Call(("PEXPIRE", key, ttl)))
    return Plan(tuple(calls), lambda replies: None)


def copy_flow(source: ThreadKeys, target: ThreadKeys, owner_key: str | None = None) -> Flow[None]:
    """Copy a thread onto another, replacing it (two round trips: the keys live in other
    slots); the copy joins its owner's index (``owner_key``). A missing source leaves the
    target as it is."""
    contents = yield plan_copy_read(source)
    if any(items for _kind, items, _ttl in contents):
        owner = owner_of(_newest_metadata(contents), owner_key)
        yield plan_copy_write(target, contents, round(time.time() * 1000), owner)
    return None


def _newest_metadata(contents: Contents) -> dict[str, Any] | None:
    """The metadata of the newest checkpoint in copied contents (as the script finds it)."""
    order, metadata = contents[PARTS.index("ord")][1], contents[PARTS.index("md")][1]
    if not order:
        return None
    checkpoint_id, _, ns = order[-1].partition(b"\0")
    fields = dict(zip(metadata[::2], metadata[1::2], strict=True))
    return _json_object(fields.get(ns + b"\0" + checkpoint_id))


def loads(serde: Any, typed: tuple[str, bytes], key: str, field: str) -> Any:
    """A stored value (decompressed if it was), deserialized; CorruptCheckpointError
    names where it is."""
    try:
        kind, data = typed
        if kind.startswith(COMPRESSED):
            typed = (kind[len(COMPRESSED) :], zlib.decompress(data))
        return serde.loads_typed(typed)
    except Exception as exc:
        raise CorruptCheckpointError(key, field, f"{type(exc).__name__}: {exc}") from exc


def thread_ids_flow(prefix: str, keep: Callable[[str], bool] = lambda _: True) -> Flow[list[str]]:
    """The ids of every stored thread (SCAN; a cluster's every primary)."""
    scan = thread_scan(prefix)
    found: list[str] = []
    seen: set[str] = set()
    while batch := (yield scan):
        for key in batch:
            thread_id = thread_id_of(prefix, key)
            if thread_id is not None and thread_id not in seen and keep(thread_id):
                seen.add(thread_id)
                found.append(thread_id)
    return found
