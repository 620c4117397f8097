/**
 * Lua scripts behind the Redis store's budget and rate-limit operations: each runs as one atomic round trip.
 * Amounts are integer nano-USD passed and returned as strings (Lua numbers would print large values in
 * exponent form). Reservation records live in a zset of expiries (KEYS[1]) and a hash of
 * `amount|counterKey|…` (KEYS[2]); the counters they name share the team's `{team}` hash slot.
 */

// Expired reservations belong to requests whose gateway died: charge their worst case, which keeps the cap.
const SWEEP = `
local function sweep(now)
  local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 100)
  for _, id in ipairs(expired) do
    local e = redis.call('HGET', KEYS[2], id)
    if e then
      local amount = nil
      for part in string.gmatch(e, '[^|]+') do
        if amount == nil then amount = part
        elseif amount ~= '0' and redis.call('EXISTS', part) == 1 then
          redis.call('HINCRBY', part, 'reserved', '-' .. amount)
          redis.call('HINCRBY', part, 'spent', amount)
        end
      end
      redis.call('HDEL', KEYS[2], id)
    end
    redis.call('ZREM', KEYS[1], id)
  end
end
`

/** KEYS: reservations zset, reservations hash, index zset, counters…; ARGV: now, id, expiresAt, amount, then limit, shadow, expireAt per counter. */
export const RESERVE_LUA = `${SWEEP}
local now = tonumber(ARGV[1])
sweep(now)
local amount = tonumber(ARGV[4])
local n = #KEYS - 3
local states = {}
local refused = 0
for i = 1, n do
  local v = redis.call('HMGET', KEYS[i + 3], 'spent', 'reserved')
  local spent = v[1] or '0'
  local reserved = v[2] or '0'
  states[#states + 1] = spent
  states[#states + 1] = reserved
  local base = 4 + (i - 1) * 3
  if refused == 0 and ARGV[base + 2] == '0' and tonumber(spent) + tonumber(reserved) + amount > tonumber(ARGV[base + 1]) then refused = i end
end
if refused > 0 then
  -- a refused request is activity too: an idle-expiring (session) counter is not forgotten while refused
  for i = 1, n do
    local at = ARGV[4 + (i - 1) * 3 + 3] -- the counter's expireAt, as in the loop below
    if at ~= '0' and redis.call('EXISTS', KEYS[i + 3]) == 1 then
      redis.call('PEXPIREAT', KEYS[i + 3], at)
      redis.call('ZADD', KEYS[3], at, KEYS[i + 3])
    end
  end
  return {refused, states}
end
local record = ARGV[4]
local added = 0
for i = 1, n do
  local k = KEYS[i + 3]
  local base = 4 + (i - 1) * 3
  if ARGV[4] ~= '0' then redis.call('HINCRBY', k, 'reserved', ARGV[4]) else redis.call('HSETNX', k, 'reserved', '0') end
  if ARGV[base + 3] ~= '0' then
    redis.call('PEXPIREAT', k, ARGV[base + 3])
    added = added + redis.call('ZADD', KEYS[3], ARGV[base + 3], k)
  else
    added = added + redis.call('ZADD', KEYS[3], '+inf', k)
  end
  record = record .. '|' .. k
end
-- The index lists live counters. When it gains one (a new window, session, user...), drop those past their
-- expiry (ended windows, idle sessions) too: only a full listing used to, so a team minting a session id per
-- task grew it for good. A reservation on known counters skips it (+0.7 µs of Redis time when done each time).
if added > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. ARGV[1]) end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[2], record)
return {0, states}
`

/** KEYS: reservations zset, reservations hash, index zset, counters…; ARGV: now, id, actual, mode (settle|charge|release), then limit, expireAt, alert list per counter. */
export const SETTLE_LUA = `${SWEEP}
local now = tonumber(ARGV[1])
local mode = ARGV[4]
local e = redis.call('HGET', KEYS[2], ARGV[2])
local status = 'expired'
if e then
  local amount = nil
  for part in string.gmatch(e, '[^|]+') do
    if amount == nil then amount = part
    elseif redis.call('EXISTS', part) == 1 then
      if amount ~= '0' then redis.call('HINCRBY', part, 'reserved', '-' .. amount) end
      if mode ~= 'release' and ARGV[3] ~= '0' then redis.call('HINCRBY', part, 'spent', ARGV[3]) end
    end
  end
  redis.call('HDEL', KEYS[2], ARGV[2])
  redis.call('ZREM', KEYS[1], ARGV[2])
  if mode == 'release' then status = 'released' else status = 'settled' end
elseif mode == 'charge' then
  for i = 4, #KEYS do
    local base = 4 + (i - 4) * 3
    if ARGV[3] ~= '0' then redis.call('HINCRBY', KEYS[i], 'spent', ARGV[3]) else redis.call('HSETNX', KEYS[i], 'spent', '0') end
    if ARGV[base + 2] ~= '0' then
      redis.call('PEXPIREAT', KEYS[i], ARGV[base + 2])
      redis.call('ZADD', KEYS[3], ARGV[base + 2], KEYS[i])
    else
      redis.call('ZADD', KEYS[3], '+inf', KEYS[i])
    end
  end
  status = 'charged'
end
sweep(now)
local states = {}
local fired = {}
for i = 4, #KEYS do
  local v = redis.call('HMGET', KEYS[i], 'spent', 'reserved')
  states[#states + 1] = v[1] or '0'
  states[#states + 1] = v[2] or '0'
  local base = 4 + (i - 4) * 3
  local spent = tonumber(v[1] or '0')
  for t in string.gmatch(ARGV[base + 3], '[^,]+') do
    if spent > 0 and spent >= tonumber(t) * tonumber(ARGV[base + 1]) and redis.call('HSETNX', KEYS[i], 'a:' .. t, '1') == 1 then
      fired[#fired + 1] = tostring(i - 3)
      fired[#fired + 1] = t
    end
  end
end
return {status, states, fired}
`

/** KEYS: reservations zset, reservations hash, index zset, counters… (all live counters of the index when none); ARGV: now. */
export const READ_LUA = `${SWEEP}
local now = tonumber(ARGV[1])
sweep(now)
local keys = {}
if #KEYS > 3 then
  for i = 4, #KEYS do keys[#keys + 1] = KEYS[i] end
else
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. ARGV[1])
  keys = redis.call('ZRANGE', KEYS[3], 0, 4999)
end
local out = {}
for _, k in ipairs(keys) do
  local v = redis.call('HMGET', k, 'spent', 'reserved')
  out[#out + 1] = k
  out[#out + 1] = v[1] or '0'
  out[#out + 1] = v[2] or '0'
end
return out
`

/** KEYS: counters; zero the spend and the alert marks, keep reservations. */
export const RESET_LUA = `
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    redis.call('HSET', KEYS[i], 'spent', '0')
    for _, f in ipairs(redis.call('HKEYS', KEYS[i])) do
      if string.sub(f, 1, 2) == 'a:' then redis.call('HDEL', KEYS[i], f) end
    end
  end
end
return 1
`

/** KEYS: buckets; ARGV: now, force, then capacity, windowMs, cost per bucket. Token buckets refilled continuously. */
export const RATE_LIMIT_LUA = `
local now = tonumber(ARGV[1])
local force = ARGV[2] == '1'
local levels = {}
local denied = 0
local wait = 0
for i = 1, #KEYS do
  local base = 2 + (i - 1) * 3
  local cap = tonumber(ARGV[base + 1])
  local win = tonumber(ARGV[base + 2])
  local cost = tonumber(ARGV[base + 3])
  local b = redis.call('HMGET', KEYS[i], 't', 'ts')
  local level = cap
  if b[1] then
    local elapsed = now - tonumber(b[2])
    if elapsed < 0 then elapsed = 0 end
    level = math.min(cap, tonumber(b[1]) + elapsed * cap / win)
  end
  levels[i] = level
  if not force and cost > level then
    if cost > cap then
      denied = i
      wait = -1
    elseif wait ~= -1 then
      local w = math.ceil((cost - level) * win / cap)
      if w > wait then
        denied = i
        wait = w
      end
    end
  end
end
local out = {}
for i = 1, #KEYS do
  local base = 2 + (i - 1) * 3
  local cap = tonumber(ARGV[base + 1])
  local win = tonumber(ARGV[base + 2])
  if denied == 0 then
    levels[i] = math.min(cap, levels[i] - tonumber(ARGV[base + 3]))
    redis.call('HSET', KEYS[i], 't', tostring(levels[i]), 'ts', ARGV[1])
    redis.call('PEXPIRE', KEYS[i], math.ceil((cap - levels[i]) * win / cap) + 1000)
  end
  out[i] = tostring(levels[i])
end
return {denied, wait, out}
`
