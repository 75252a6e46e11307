"""The Lua scripts of the Redis store: one per operation, so each runs atomically.

Every script reads the time from Redis ``TIME`` (microseconds), never from a
client: clients' clocks disagree across machines. Keys of one job share the
hash tag ``{job}``; every key written gets an expiry. Times in the store are
whole microseconds since the epoch of the Redis host, small enough for Lua's doubles.
"""

from __future__ import annotations

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
-- Lua turns numbers into strings with 14 digits; a time has 16: format it whole.
local function whole(x) return string.format('%.0f', x) end
"""

# KEYS: leases, state, fenced. ARGV: token, cap, lease_us, idle_ms, holder.
# 1 and the lease's life in us when granted; 0 and the release count when refused;
# -1 when the holder was fenced off (RELEASE_HOLDER).
ACQUIRE = (
    _NOW
    + """
if redis.call('SISMEMBER', KEYS[3], ARGV[5]) == 1 then
  return {-1, 0}
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', whole(now))
local held = redis.call('ZCARD', KEYS[1])
if held >= tonumber(ARGV[2]) then
  return {0, tonumber(redis.call('HGET', KEYS[2], 'releases') or '0')}
end
local lease_us = tonumber(ARGV[3])
redis.call('ZADD', KEYS[1], whole(now + lease_us), ARGV[1])
redis.call('PEXPIRE', KEYS[1], math.ceil(lease_us / 1000) + 1000)
if held + 1 > tonumber(redis.call('HGET', KEYS[2], 'peak') or '0') then
  redis.call('HSET', KEYS[2], 'peak', held + 1)
end
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return {1, lease_us}
"""
)

# KEYS: leases. ARGV: token, lease_us. 1 renewed, 0 lost (expired or reclaimed).
RENEW = (
    _NOW
    + """
local expires = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not expires or tonumber(expires) <= now then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return 0
end
local lease_us = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], whole(now + lease_us), ARGV[1])
redis.call('PEXPIRE', KEYS[1], math.ceil(lease_us / 1000) + 1000)
return 1
"""
)

# KEYS: leases, state, wake. ARGV: token, idle_ms, wake_ms.
# Removes the lease; if it was there, counts a release and pushes one wake-up.
RELEASE = """
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then
  return 0
end
redis.call('HINCRBY', KEYS[2], 'releases', 1)
redis.call('PEXPIRE', KEYS[2], ARGV[2])
redis.call('LPUSH', KEYS[3], '1')
redis.call('LTRIM', KEYS[3], 0, 63)
redis.call('PEXPIRE', KEYS[3], ARGV[3])
return 1
"""

# KEYS: leases, state, wake, fenced. ARGV: token prefix (holder + '/'), idle_ms, wake_ms, holder.
# Removes every lease of the holder, fences it off, wakes a waiter; how many were removed.
RELEASE_HOLDER = """
redis.call('SADD', KEYS[4], ARGV[4])
redis.call('PEXPIRE', KEYS[4], ARGV[2])
local removed = 0
local prefix = ARGV[1]
for _, token in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if string.sub(token, 1, string.len(prefix)) == prefix then
    removed = removed + redis.call('ZREM', KEYS[1], token)
  end
end
if removed > 0 then
  redis.call('HINCRBY', KEYS[2], 'releases', 1)
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
  redis.call('LPUSH', KEYS[3], '1')
  redis.call('LTRIM', KEYS[3], 0, 63)
  redis.call('PEXPIRE', KEYS[3], ARGV[3])
end
return removed
"""

# KEYS: leases. Microseconds until the job's next lease expires; -1 without any.
NEXT_EXPIRY = (
    _NOW
    + """
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if #first == 0 then
  return -1
end
return math.max(0, tonumber(first[2]) - now)
"""
)

# KEYS: tat. ARGV: interval_us, tolerance_us. {0, now_us} when taken, else {us to wait, now_us}.
# The same arithmetic as gcra.gcra_step, on Redis's clock.
TAKE_TOKEN = (
    _NOW
    + """
local interval = tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then
  tat = now
end
local ahead = tat - now
if ahead > tonumber(ARGV[2]) then
  return {math.ceil(ahead - tonumber(ARGV[2])), whole(now)}
end
redis.call('SET', KEYS[1], whole(tat + interval), 'PX', math.ceil((ahead + interval) / 1000) + 1000)
return {0, whole(now)}
"""
)

# KEYS: state. {effective cap or -1, microseconds of pause left}.
READ_STATE = (
    _NOW
    + """
local values = redis.call('HMGET', KEYS[1], 'effective_cap', 'paused_until')
local paused = tonumber(values[2] or '0')
return {tonumber(values[1] or '-1'), math.max(0, paused - now)}
"""
)

# KEYS: state. ARGV: cap, idle_ms.
SET_CAP = """
redis.call('HSET', KEYS[1], 'effective_cap', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""

# KEYS: state. ARGV: pause_us, idle_ms. A pause only ever grows.
PAUSE = (
    _NOW
    + """
local until_us = now + tonumber(ARGV[1])
if until_us > tonumber(redis.call('HGET', KEYS[1], 'paused_until') or '0') then
  redis.call('HSET', KEYS[1], 'paused_until', whole(until_us))
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""
)

# KEYS: leases. Unexpired leases now.
IN_FLIGHT = (
    _NOW
    + """
return redis.call('ZCOUNT', KEYS[1], '(' .. whole(now), '+inf')
"""
)
