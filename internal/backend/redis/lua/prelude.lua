-- Shared by every script (joined in front of each by scripts.go).
-- ARGV[1] is always the key prefix. Job hashes live at <prefix>:job:<id>;
-- each queue has sorted sets and hashes at <prefix>:q:<queue>:<part>.
-- Times are milliseconds since the epoch, taken from Redis's own clock so
-- that every daemon sharing this Redis agrees on "now".
local P = ARGV[1]

local function qkey(q, part) return P .. ':q:' .. q .. ':' .. part end
local function jkey(id) return P .. ':job:' .. id end

local function now_ms()
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

local function count(q, from, to)
  local c = qkey(q, 'counts')
  if from then redis.call('HINCRBY', c, from, -1) end
  if to then redis.call('HINCRBY', c, to, 1) end
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

-- claimed checks that id is processing under lease; it returns the job's
-- fields, or nil and the error word the Go side turns into an Error. f,
-- if given, is what HMGET of those five fields already returned.
local function claimed(id, lease, f)
  f = f or redis.call('HMGET', jkey(id), 'status', 'lease', 'queue', 'runAt', 'key')
  if not f[1] then return nil, 'not_found' end
  if f[1] ~= 'processing' then return nil, 'status:' .. f[1] end
  if f[2] ~= lease then return nil, 'stale' end
  return {status = f[1], queue = f[3], runAt = f[4], key = f[5] or ''}
end
