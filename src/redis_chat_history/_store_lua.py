"""The Lua scripts of the LangGraph store (see ``_store_core`` for the keys they use).

Every script works inside one shard, so all its keys share one hash tag: the shard's
namespace set and clock are passed as KEYS, items and per-namespace sets either as KEYS
(put, get) or, when a script only learns them as it goes (search, liveness), built from
the shard's key head, which is allowed because they hash to the same slot.

A script reports a key of the wrong type with ``{'WRONGTYPE', key, found, expected}`` and
an unreadable item with ``{'CORRUPT', key, reason}`` (replies rather than errors, so
nothing after the check is touched and the client names the key).
"""

from __future__ import annotations

from ._plan import Script

__all__ = ["ALIVE_SCRIPT", "GET_SCRIPT", "PUT_SCRIPT", "SEARCH_SCRIPT"]

# Shared by every script: the server clock in microseconds, type checks, and extend(),
# which keeps an index key alive at least as long as an item living ``ms`` more
# milliseconds (0: an item without ttl, so the index key must not expire).
_PRELUDE = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local function fmt(n)
  return string.format('%.0f', n)
end
local function wrongtype(key, expected)
  local found = redis.call('TYPE', key)['ok']
  if found ~= 'none' and found ~= expected then
    return {'WRONGTYPE', key, found, expected}
  end
  return nil
end
-- KEYS of gets and puts: the shard's namespaces (zset), its clock (string), then per item
-- its hash and its namespace's zset.
local function wrongtype_in_item_keys()
  for n = 1, #KEYS do
    local expected = 'zset'
    if n == 2 then
      expected = 'string'
    elseif n > 2 and n % 2 == 1 then
      expected = 'hash'
    end
    local bad = wrongtype(KEYS[n], expected)
    if bad then
      return bad
    end
  end
  return nil
end
local fresh = {}
local function note_fresh(key)
  if redis.call('EXISTS', key) == 0 then
    fresh[key] = true
  end
end
local pinned = {}
local function extend(key, ms)
  if ms <= 0 then
    redis.call('PERSIST', key)
    pinned[key] = true
    return
  end
  if pinned[key] then
    return
  end
  local left = redis.call('PTTL', key)
  if (left == -1 and fresh[key]) or (left >= 0 and left < ms) then
    redis.call('PEXPIRE', key, ms)
  end
end
"""

# One or more shards' puts and deletes, all checked before any is applied, so a batch is
# all or nothing (several shards per call on one server; one per call on a cluster).
# KEYS: per shard, its namespace zset and its clock, then (item hash, namespace zset) per op.
# ARGV: the number of shards, each shard's op count, then six per op: mode ('p' put,
# 'd' delete), namespace path, key, value JSON, ttl ms (0: none), packed vectors ('' none).
# Reply: {1, the namespace paths the puts added to their shards}.
# Items get created/updated stamps from their shard's clock (server microseconds, strictly
# increasing per shard), which also orders them.
PUT_SCRIPT = Script(
    _PRELUDE
    + """
local shards = tonumber(ARGV[1])
local k = 1
for g = 1, shards do
  local ops = tonumber(ARGV[1 + g])
  local bad = wrongtype(KEYS[k], 'zset') or wrongtype(KEYS[k + 1], 'string')
  for i = 0, ops - 1 do
    bad = bad or wrongtype(KEYS[k + 2 + 2 * i], 'hash') or wrongtype(KEYS[k + 3 + 2 * i], 'zset')
  end
  if bad then
    return bad
  end
  for i = 0, ops - 1 do  -- an update keeps the stored created stamp: it must be a number
    local created = redis.call('HGET', KEYS[k + 2 + 2 * i], 'created')
    if created and not tonumber(created) then
      return {'CORRUPT', KEYS[k + 2 + 2 * i], 'bad created stamp'}
    end
  end
  k = k + 2 + 2 * ops
end

local created_paths = {}  -- namespaces new to their shard (the reply, for the registry)
local function apply_shard(k, ops, a)
  local shard, clock_key = KEYS[k], KEYS[k + 1]
  note_fresh(shard)
  note_fresh(clock_key)
  local last = tonumber(redis.call('GET', clock_key) or '0') or 0
  local function tick()
    last = math.max(now, last + 1)
    return last
  end
  local ttls = {}
  for i = 0, ops - 1 do
    local item, nsz = KEYS[k + 2 + 2 * i], KEYS[k + 3 + 2 * i]
    local base = a + 6 * i
    local mode, path, key = ARGV[base + 1], ARGV[base + 2], ARGV[base + 3]
    if mode == 'd' then
      redis.call('DEL', item)
      redis.call('ZREM', nsz, key)
      if redis.call('EXISTS', nsz) == 0 then
        redis.call('ZREM', shard, path)
      end
    else
      local value, ttl, vec = ARGV[base + 4], tonumber(ARGV[base + 5]), ARGV[base + 6]
      note_fresh(nsz)
      local stamp = fmt(tick())
      local created = redis.call('HGET', item, 'created')
      if created then
        redis.call('ZADD', nsz, 'NX', created, key)
      else
        redis.call('DEL', item)
        created = stamp
        redis.call('ZADD', nsz, created, key)
      end
      if not redis.call('ZSCORE', shard, path) then
        redis.call('ZADD', shard, fmt(tick()), path)
        created_paths[#created_paths + 1] = path
      end
      redis.call('HSET', item, 'value', value, 'created', created, 'updated', stamp)
      if vec ~= '' then
        redis.call('HSET', item, 'vec', vec)
      else
        redis.call('HDEL', item, 'vec')
      end
      if ttl > 0 then
        redis.call('HSET', item, 'ttl', ttl)
        redis.call('PEXPIRE', item, ttl)
      else
        redis.call('HDEL', item, 'ttl')
        redis.call('PERSIST', item)
      end
      extend(nsz, ttl)
      ttls[#ttls + 1] = ttl
    end
  end
  if redis.call('EXISTS', shard) == 0 then
    redis.call('DEL', clock_key)
    return
  end
  redis.call('SET', clock_key, fmt(last), 'KEEPTTL')
  for _, ttl in ipairs(ttls) do
    extend(shard, ttl)
    extend(clock_key, ttl)
  end
end

k = 1
local a = 1 + shards
for g = 1, shards do
  local ops = tonumber(ARGV[1 + g])
  apply_shard(k, ops, a)
  k = k + 2 + 2 * ops
  a = a + 6 * ops
end
local reply = {1}
for _, path in ipairs(created_paths) do
  reply[#reply + 1] = path
end
return reply
"""
)

# Refresh the ttl of a read item and of the index keys it is found through.
_REFRESH = """
-- A stored ttl (ms) if it is a whole number PEXPIRE takes (the client caps ttls far
-- below 1e14), else nil.
local function valid_ms(ttl)
  local ms = tonumber(ttl)
  if ms and ms > 0 and ms < 1e14 and ms == math.floor(ms) then
    return ms
  end
  return nil
end
local function refresh_item(item, nsz, ttl)
  local ms = valid_ms(ttl)
  if ms then
    redis.call('PEXPIRE', item, ms)
    extend(nsz, ms)
    extend(KEYS[1], ms)
    extend(KEYS[2], ms)
  end
end
local function drop_entry(nsz, key, path)
  if redis.call('ZREM', nsz, key) == 1 and redis.call('EXISTS', nsz) == 0 then
    redis.call('ZREM', KEYS[1], path)
  end
end
"""

# KEYS: the shard's namespace zset, its clock, then (item hash, namespace zset) per op.
# ARGV: refresh ('1' or '0'), then (namespace path, key) per op. Reply: per op false or
# {value, created, updated}. An expired item's index entry is dropped on the way.
GET_SCRIPT = Script(
    _PRELUDE
    + _REFRESH
    + """
local bad = wrongtype_in_item_keys()
if bad then
  return bad
end
local refresh = ARGV[1] == '1'
local reply = {}
for i = 0, (#KEYS - 2) / 2 - 1 do
  local item, nsz = KEYS[3 + 2 * i], KEYS[4 + 2 * i]
  local path, key = ARGV[2 + 2 * i], ARGV[3 + 2 * i]
  local got = redis.call('HMGET', item, 'value', 'created', 'updated', 'ttl')
  if not got[1] then
    if redis.call('EXISTS', item) == 1 then
      return {'CORRUPT', item, 'the hash has no value field'}
    end
    drop_entry(nsz, key, path)
    reply[i + 1] = false
  elseif got[4] and not valid_ms(got[4]) then
    return {'CORRUPT', item, 'bad ttl field'}
  else
    if refresh then
      refresh_item(item, nsz, got[4])
    end
    reply[i + 1] = {got[1], got[2] or '', got[3] or ''}
  end
end
return reply
"""
)

# Filters, compiled by the client into nodes: {'eq', value}, {'ops', {{op, value}...}},
# {'obj', {{name, node, {path parts} or false}...}} and {'arr', {node...}}. Equality is
# Python's on JSON values (1 == 1.0 == true); $gt and friends compare as floats and a
# value that is not a number (or a numeric string) does not match.
_FILTER = """
local null = cjson.null
local function is_array(t)
  return next(t) == nil or t[1] ~= nil
end
local function num(x)
  if type(x) == 'boolean' then
    return x and 1 or 0
  end
  return x
end
local function deq(a, b)
  if a == nil then a = null end
  if b == nil then b = null end
  local ta, tb = type(a), type(b)
  if (ta == 'number' or ta == 'boolean') and (tb == 'number' or tb == 'boolean') then
    return num(a) == num(b)
  end
  if ta ~= tb then
    return false
  end
  if ta == 'table' then
    for k, v in pairs(a) do
      if not deq(v, b[k]) then
        return false
      end
    end
    for k in pairs(b) do
      if a[k] == nil then
        return false
      end
    end
    return true
  end
  return a == b
end
local function tofloat(x)
  local t = type(x)
  if t == 'number' then
    return x
  elseif t == 'boolean' then
    return x and 1 or 0
  elseif t == 'string' and not string.find(x, '^%s*[-+]?0[xX]') then
    return tonumber(x)
  end
  return nil
end
local function lookup(v, name, parts)
  local found = v[name]
  if found == nil and parts then
    found = v
    for _, part in ipairs(parts) do
      if type(found) ~= 'table' then
        return nil
      end
      found = found[part]
    end
  end
  return found
end
local match
match = function(v, node)
  local kind, arg = node[1], node[2]
  if kind == 'eq' then
    return deq(v, arg)
  elseif kind == 'ops' then
    for _, pair in ipairs(arg) do
      local op, want = pair[1], pair[2]
      if op == '$eq' then
        if not deq(v, want) then return false end
      elseif op == '$ne' then
        if deq(v, want) then return false end
      else
        local x = tofloat(v)
        if x == nil then return false end
        if op == '$gt' and not (x > want) then return false end
        if op == '$gte' and not (x >= want) then return false end
        if op == '$lt' and not (x < want) then return false end
        if op == '$lte' and not (x <= want) then return false end
      end
    end
    return true
  elseif kind == 'obj' then
    if type(v) ~= 'table' or (next(v) ~= nil and v[1] ~= nil) then
      return false
    end
    for _, entry in ipairs(arg) do
      if not match(lookup(v, entry[1], entry[3]), entry[2]) then
        return false
      end
    end
    return true
  end
  if type(v) ~= 'table' or not is_array(v) or #v ~= #arg then
    return false
  end
  for i, child in ipairs(arg) do
    if not match(v[i], child) then
      return false
    end
  end
  return true
end
"""

# KEYS: the shard's namespace zset, its clock. ARGV: the shard's key head, the namespace
# path prefix ('' = all), the compiled filter ('' none), offset, limit (-1: all), refresh,
# the packed unit query vector ('' none), dims, mode ('fetch': return every match with
# its vectors, for the client to rank, as the store does; 'score': rank here, kept so
# benchmarks/store_search.py can measure that choice again: it blocks the server longer).
# Reply: matches in listing order (namespaces by creation, items by creation), or ranked
# by cosine similarity, each {path, key, value, created, updated, namespace score,
# item score or false, vectors (fetch mode) or false, ttl ms or false}.
SEARCH_SCRIPT = Script(
    _PRELUDE
    + _REFRESH
    + _FILTER
    + """
local bad = wrongtype(KEYS[1], 'zset') or wrongtype(KEYS[2], 'string')
if bad then
  return bad
end
local head, prefix = ARGV[1], ARGV[2]
local filter = false
if ARGV[3] ~= '' then
  filter = cjson.decode(ARGV[3])
end
local offset, limit = tonumber(ARGV[4]), tonumber(ARGV[5])
local refresh, query, dims, mode = ARGV[6] == '1', ARGV[7], tonumber(ARGV[8]), ARGV[9]
local scoring = query ~= ''
local fetch = mode == 'fetch'
local unpack_format = '<' .. string.rep('f', dims)
local q = nil
if scoring and not fetch then
  q = {struct.unpack(unpack_format, query)}
end
local width = 4 * dims
local function best(blob)
  if not blob or #blob == 0 or #blob % width ~= 0 then
    return nil
  end
  local top = nil
  for start = 1, #blob, width do
    local v = {struct.unpack(unpack_format, blob, start)}
    local s = 0
    for j = 1, dims do
      s = s + q[j] * v[j]
    end
    if top == nil or s > top then
      top = s
    end
  end
  return top
end
local wanted = -1
if not scoring and limit >= 0 then
  wanted = offset + limit
end
local found, stale = {}, {}
local function collect()
  local namespaces = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
  for n = 1, #namespaces, 2 do
    local path = namespaces[n]
    if string.sub(path, 1, #prefix) == prefix then
      local nsz = head .. 'n:' .. path
      local wrong = wrongtype(nsz, 'zset')
      if wrong then
        return wrong
      end
      local start = 0
      while true do
        local members = redis.call('ZRANGE', nsz, start, start + 255, 'WITHSCORES')
        if #members == 0 then
          break
        end
        start = start + #members / 2
        for m = 1, #members, 2 do
          local key = members[m]
          local item = head .. 'i:' .. path .. '.' .. key
          local got = redis.pcall('HMGET', item, 'value', 'created', 'updated', 'ttl', 'vec')
          if got['err'] then
            return wrongtype(item, 'hash') or {'CORRUPT', item, got['err']}
          end
          if not got[1] then
            if redis.call('EXISTS', item) == 1 then
              return {'CORRUPT', item, 'the hash has no value field'}
            end
            stale[#stale + 1] = {nsz, key, path}
          else
            local ok = true
            if filter then
              local decoded, doc = pcall(cjson.decode, got[1])
              if not decoded or type(doc) ~= 'table' then
                return {'CORRUPT', item, 'the value is not a JSON object'}
              end
              ok = match(doc, filter)
            end
            if ok then
              local entry = {path, key, got[1], got[2] or '', got[3] or '', namespaces[n + 1],
                             false, false, item, nsz, got[4], #found}
              if fetch then
                entry[8] = got[5] or false
              elseif scoring then
                entry[7] = best(got[5]) or false
              end
              found[#found + 1] = entry
              if wanted >= 0 and #found >= wanted then
                return nil
              end
            end
          end
        end
      end
    end
  end
  return nil
end
local failed = collect()
if failed then
  return failed
end
for _, entry in ipairs(stale) do
  drop_entry(entry[1], entry[2], entry[3])
end
if scoring and not fetch then
  local scored, plain = {}, {}
  for _, entry in ipairs(found) do
    if entry[7] then
      scored[#scored + 1] = entry
    else
      plain[#plain + 1] = entry
    end
  end
  table.sort(scored, function(a, b)
    if a[7] ~= b[7] then
      return a[7] > b[7]
    end
    return a[12] < b[12]
  end)
  for _, entry in ipairs(plain) do
    scored[#scored + 1] = entry
  end
  found = scored
end
local first, last = 1, #found
if limit >= 0 and not fetch then
  first, last = offset + 1, math.min(#found, offset + limit)
end
local reply = {}
for i = first, last do
  local entry = found[i]
  if refresh then
    refresh_item(entry[9], entry[10], entry[11])
  end
  local score = entry[7]
  if score then
    score = string.format('%.17g', score)
  end
  reply[#reply + 1] = {entry[1], entry[2], entry[3], entry[4], entry[5], entry[6], score,
                       entry[8], entry[11] or false}
end
return reply
"""
)

# KEYS: the shard's namespace zset. ARGV: the shard's key head, then namespace paths.
# Reply: 1 or 0 per path: whether the namespace has a live item. Entries of expired
# items met on the way are dropped, and a namespace left without any from the shard.
ALIVE_SCRIPT = Script(
    """
local bad = redis.call('TYPE', KEYS[1])['ok']
if bad ~= 'none' and bad ~= 'zset' then
  return {'WRONGTYPE', KEYS[1], bad, 'zset'}
end
local head = ARGV[1]
local reply = {}
for i = 2, #ARGV do
  local path = ARGV[i]
  local nsz = head .. 'n:' .. path
  local alive = 0
  local kind = redis.call('TYPE', nsz)['ok']
  if kind ~= 'none' and kind ~= 'zset' then
    return {'WRONGTYPE', nsz, kind, 'zset'}
  end
  while alive == 0 do
    local members = redis.call('ZRANGE', nsz, 0, 63)
    if #members == 0 then
      break
    end
    for _, key in ipairs(members) do
      if redis.call('EXISTS', head .. 'i:' .. path .. '.' .. key) == 1 then
        alive = 1
        break
      end
      redis.call('ZREM', nsz, key)
    end
  end
  if alive == 0 then
    redis.call('ZREM', KEYS[1], path)
  end
  reply[#reply + 1] = alive
end
return reply
"""
)
