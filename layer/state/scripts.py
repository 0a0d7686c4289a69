"""The Lua scripts of ``RedisStateStore``: each operation is one script, atomic in Redis.

Keys of a scope whose stable form (``str(StateKey)``) is ``K``, with the store's prefix ``P``:

- ``P:state:K``, a hash: ``data`` (the state), ``version``, ``seq`` (the applied keys'
  counter), ``token`` (the write that stored it);
- ``P:applied:K``, a sorted set of idempotency keys scored by ``seq``: the newest
  ``applied_window`` of them;
- ``P:timers:K``, a hash: timer name -> ``{"due": <float>, "event": {...}}``;

and one of each per Redis server (shard):

- ``P:due``, a sorted set of ``K + "\\n" + name`` scored by due time (epoch seconds);
- ``P:revision``, the counter versions come from, so a key never gets a version twice.

``K`` holds no newline (it is percent-encoded), so a ``P:due`` member splits at its first.
"""

from __future__ import annotations

__all__ = ["DELETE", "DUE", "SAVE"]

SAVE = """
-- KEYS: revision, due, then per write: state, applied, timers
-- ARGV: window, token, count, then per write: expect ('' = none), data, member prefix,
--       n applied, applied..., timers mode ('keep' | 'replace'), [n timers, (name, due, json)...]
-- Returns per write: its new version, or -actual (0 when the scope has no state): a conflict.
local window, token, count = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local a = 4
local results = {}
for i = 1, count do
  local state, applied, timers = KEYS[3 * i], KEYS[3 * i + 1], KEYS[3 * i + 2]
  local expect, data, member = ARGV[a], ARGV[a + 1], ARGV[a + 2]
  local n_applied = tonumber(ARGV[a + 3])
  a = a + 4
  local first_applied = a
  a = a + n_applied
  local mode = ARGV[a]
  a = a + 1
  local first_timer, n_timers = a + 1, 0
  if mode == 'replace' then
    n_timers = tonumber(ARGV[a])
    a = a + 1 + 3 * n_timers
  end
  local current = redis.call('HMGET', state, 'version', 'token')
  local ok = (expect == '' and not current[1]) or (current[1] and current[1] == expect)
  if not ok and current[1] and current[2] == token then
    -- this very write, retried after its reply was lost: already stored
    results[i] = tonumber(current[1])
  elseif not ok then
    results[i] = -(tonumber(current[1]) or 0)
  else
    local version = redis.call('INCR', KEYS[1])
    redis.call('HSET', state, 'data', data, 'version', version, 'token', token)
    if n_applied > 0 then
      local added = 0
      local seq = tonumber(redis.call('HGET', state, 'seq') or '0')
      for j = first_applied, first_applied + n_applied - 1 do
        if redis.call('ZADD', applied, 'NX', seq + added + 1, ARGV[j]) == 1 then
          added = added + 1
        end
      end
      redis.call('HSET', state, 'seq', seq + added)
      redis.call('ZREMRANGEBYRANK', applied, 0, -(window + 1))
    end
    if mode == 'replace' then
      for _, name in ipairs(redis.call('HKEYS', timers)) do
        redis.call('ZREM', KEYS[2], member .. name)
      end
      redis.call('DEL', timers)
      for j = first_timer, first_timer + 3 * (n_timers - 1), 3 do
        redis.call('HSET', timers, ARGV[j], ARGV[j + 2])
        redis.call('ZADD', KEYS[2], ARGV[j + 1], member .. ARGV[j])
      end
    end
    results[i] = version
  end
end
return results
"""

DUE = """
-- KEYS: due. ARGV: now, limit, timers key prefix ('P:timers:').
-- Returns member, timer json, member, timer json, ... by due time.
local members = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
local out = {}
for _, member in ipairs(members) do
  local cut = string.find(member, '\\n', 1, true)
  local value = redis.call('HGET', ARGV[3] .. string.sub(member, 1, cut - 1),
                           string.sub(member, cut + 1))
  if value then
    out[#out + 1] = member
    out[#out + 1] = value
  end
end
return out
"""

DELETE = """
-- KEYS: state, applied, timers, due. ARGV: member prefix. Returns 1 if the scope had state.
for _, name in ipairs(redis.call('HKEYS', KEYS[3])) do
  redis.call('ZREM', KEYS[4], ARGV[1] .. name)
end
local existed = redis.call('EXISTS', KEYS[1])
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
return existed
"""
