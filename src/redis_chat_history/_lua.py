"""Lua snippets that several scripts start with."""

from __future__ import annotations

__all__ = ["ADOPT_META_LUA", "NOW_MS_LUA"]

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
