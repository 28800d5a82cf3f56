-- Shared by every script (joined in front of each by redis.go).
-- ARGV[1] is always the key prefix and ARGV[2] the time of the call in
-- milliseconds since the epoch, or '' for Redis's own clock, so that every
-- daemon sharing this Redis agrees on "now" (tests pass a clock of their
-- own). Job hashes live at <prefix>:job:<id>; each queue has sorted sets
-- and hashes at <prefix>:q:<queue>:<part>.
local P = ARGV[1]
local NOW = ARGV[2]

local function qkey(q, part) return P .. ':q:' .. q .. ':' .. part end
local function jkey(id) return P .. ':job:' .. id end

local function now_ms()
  if NOW ~= '' then return tonumber(NOW) end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Ready jobs sort by score (-priority), then by member: runAt and then
-- the id, which is the claim order of DESIGN §3. runAt is shifted to
-- start at the year 0 and zero-padded, so that every time a request can
-- name (years 0000-9999) sorts right as text.
local year0 = 62167219200000
local function ready_member(run_at, id)
  return string.format('%015d', tonumber(run_at) + year0) .. ':' .. id
end

-- count moves n jobs (default 1) from one status count to another.
local function count(q, from, to, n)
  n = n or 1
  local c = qkey(q, 'counts')
  if from then redis.call('HINCRBY', c, from, -n) end
  if to then redis.call('HINCRBY', c, to, n) end
end

local function wake(q) redis.call('PUBLISH', P .. ':wake', q) end

-- finish ends a job for good: out of every claimable set, into the set of
-- its final status, its dedupe key released.
local function finish(id, q, from, run_at, key, status, now)
  if from == 'processing' then
    redis.call('ZREM', qkey(q, 'leases'), id)
  else
    redis.call('ZREM', qkey(q, 'scheduled'), id)
  end
  -- A pending job, or an expired claim waiting to be claimed again.
  redis.call('ZREM', qkey(q, 'ready'), ready_member(run_at, id))
  local k = jkey(id)
  redis.call('HSET', k, 'status', status, 'finishedAt', now, 'updatedAt', now)
  redis.call('HDEL', k, 'leaseExpiresAt')
  redis.call('ZADD', qkey(q, status), now, id)
  if key ~= '' and redis.call('HGET', qkey(q, 'keys'), key) == id then
    redis.call('HDEL', qkey(q, 'keys'), key)
  end
  count(q, from, status)
end
