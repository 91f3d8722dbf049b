"""The two Lua scripts of the ledger: reserve (check every limit, then count) and reconcile.

Each runs atomically inside Redis, so two replicas can never both take the last unit of a limit.
Keys per subject, in order: requests, tokens, in-flight, reservations, budget (see
:mod:`modelgate_gateway.config.counters`). Spend is counted in integer nano-USD.

Reserve sweeps reservations whose lease ended (a replica that died, a reconcile that never
arrived): their concurrency slot and budget reservation come back, at most 64 per call.
"""

from __future__ import annotations

KEYS_PER_SUBJECT = 5
RESERVE_ARGS_PER_SUBJECT = 9
RECONCILE_ARGS_PER_SUBJECT = 6

LIMIT_CODES = {1: "requests", 2: "tokens", 3: "concurrency", 4: "budget"}

# ARGV: now_ms, reservation id, lease end ms, subject count, keep ms; then per subject:
# rpm, tpm, concurrency, budget (nano-USD), tokens, cost (nano-USD), minute end ms,
# budget window id, budget keys' expiry ms (0: never).
# A spent budget is reported before any rate limit (waiting a minute would not help).
# Returns {1, then per subject: requests, tokens, in flight, spent, reserved (after this
# reservation)}, or when denied {0, subject index, limit code, then the same counts as they are}:
# a denial changes no counter (expired leases aside).
RESERVE = """
local now, rid, lease, n, keep = tonumber(ARGV[1]), ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
local seen, denied = {}, nil
for i = 0, n - 1 do
  local k, a = i * 5, 6 + i * 9
  local rpm, tpm = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  local conc, budget = tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  local win = ARGV[a + 7]
  local r, t, c, spent, reserved = 0, 0, 0, 0, 0
  if rpm > 0 then r = tonumber(redis.call('GET', KEYS[k + 1]) or '0') end
  if tpm > 0 then t = tonumber(redis.call('GET', KEYS[k + 2]) or '0') end
  if conc > 0 or budget > 0 then
    local expired = redis.call('ZRANGEBYSCORE', KEYS[k + 3], '-inf', now, 'LIMIT', 0, 64)
    for _, id in ipairs(expired) do
      local held = redis.call('HGET', KEYS[k + 4], id)
      if held then
        local w, amount = string.match(held, '^(.*)|(%d+)$')
        if w == win and budget > 0 then redis.call('HINCRBY', KEYS[k + 5], 'reserved', -tonumber(amount)) end
        redis.call('HDEL', KEYS[k + 4], id)
      end
      redis.call('ZREM', KEYS[k + 3], id)
    end
    c = redis.call('ZCARD', KEYS[k + 3])
  end
  local code = 0
  if budget > 0 then
    local v = redis.call('HMGET', KEYS[k + 5], 'spent', 'reserved')
    spent, reserved = tonumber(v[1] or '0'), tonumber(v[2] or '0')
    if spent + reserved >= budget then code = 4 end
  end
  if code == 0 and rpm > 0 and r >= rpm then code = 1 end
  if code == 0 and tpm > 0 and t >= tpm then code = 2 end
  if code == 0 and conc > 0 and c >= conc then code = 3 end
  if code > 0 and (denied == nil or (code == 4 and denied[3] ~= 4)) then denied = {0, i, code} end
  seen[i] = {r, t, c, spent, reserved}
end
if denied ~= nil then
  for i = 0, n - 1 do for j = 1, 5 do denied[#denied + 1] = seen[i][j] end end
  return denied
end
local out = {1}
for i = 0, n - 1 do
  local k, a = i * 5, 6 + i * 9
  local rpm, tpm = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  local conc, budget = tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  local tokens, cost, minute_end = ARGV[a + 4], ARGV[a + 5], ARGV[a + 6]
  local win, budget_end = ARGV[a + 7], ARGV[a + 8]
  local s = seen[i]
  if rpm > 0 then
    s[1] = redis.call('INCR', KEYS[k + 1])
    redis.call('PEXPIREAT', KEYS[k + 1], minute_end)
  end
  if tpm > 0 then
    s[2] = redis.call('INCRBY', KEYS[k + 2], tokens)
    redis.call('PEXPIREAT', KEYS[k + 2], minute_end)
  end
  if conc > 0 or budget > 0 then
    redis.call('ZADD', KEYS[k + 3], lease, rid)
    redis.call('HSET', KEYS[k + 4], rid, win .. '|' .. cost)
    redis.call('PEXPIRE', KEYS[k + 3], keep)
    s[3] = s[3] + 1
  end
  redis.call('HSET', KEYS[k + 4], '@last', ARGV[1])
  redis.call('PEXPIRE', KEYS[k + 4], keep)
  if budget > 0 then
    s[5] = redis.call('HINCRBY', KEYS[k + 5], 'reserved', cost)
    if budget_end ~= '0' then redis.call('PEXPIREAT', KEYS[k + 5], budget_end) end
  end
  for j = 1, 5 do out[#out + 1] = s[j] end
end
return out
"""

# ARGV: reservation id, subject count; then per subject: tpm set (0/1), token correction,
# held in flight (0/1), budget set (0/1), reserved nano-USD, charged nano-USD.
# Returns per subject: spent, reserved (of the budget window, after this reconcile).
RECONCILE = """
local rid, n = ARGV[1], tonumber(ARGV[2])
local out = {}
for i = 0, n - 1 do
  local k, a = i * 5, 3 + i * 6
  if ARGV[a] == '1' and redis.call('EXISTS', KEYS[k + 2]) == 1 then
    redis.call('INCRBY', KEYS[k + 2], ARGV[a + 1])
  end
  local held = 0
  if ARGV[a + 2] == '1' then
    held = redis.call('ZREM', KEYS[k + 3], rid)
    redis.call('HDEL', KEYS[k + 4], rid)
  end
  local spent, reserved = 0, 0
  if ARGV[a + 3] == '1' and redis.call('EXISTS', KEYS[k + 5]) == 1 then
    if held == 1 then
      reserved = redis.call('HINCRBY', KEYS[k + 5], 'reserved', -tonumber(ARGV[a + 4]))
    else
      reserved = tonumber(redis.call('HGET', KEYS[k + 5], 'reserved') or '0')
    end
    spent = redis.call('HINCRBY', KEYS[k + 5], 'spent', ARGV[a + 5])
  end
  out[#out + 1] = spent
  out[#out + 1] = reserved
end
return out
"""
