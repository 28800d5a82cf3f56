-- ARGV: prefix, now, queue, lease ms, token, max, lastError of an expired
-- claim with no attempts left. Moves due scheduled jobs and expired claims
-- to ready (or fails claims whose attempts are spent), then claims up to
-- max ready jobs in claim order, each with the lease token .. '.' .. id.
-- Returns {ms until the next scheduled job or lease expiry (-1 if none,
-- 0 if every wanted job came), {field, value, ...} of each claimed job}.
local q, lease_ms, token, want, expired = ARGV[3], tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6]), ARGV[7]
local now = now_ms()
local ready, sched, leases = qkey(q, 'ready'), qkey(q, 'scheduled'), qkey(q, 'leases')

-- Bounded so that one call never holds Redis for long; the rest moves on
-- the next call.
for _, id in ipairs(redis.call('ZRANGEBYSCORE', sched, '-inf', now, 'LIMIT', 0, 1000)) do
  redis.call('ZREM', sched, id)
  local f = redis.call('HMGET', jkey(id), 'priority', 'runAt')
  if f[1] then redis.call('ZADD', ready, -tonumber(f[1]), ready_member(f[2], id)) end
end
for _, id in ipairs(redis.call('ZRANGEBYSCORE', leases, '-inf', now, 'LIMIT', 0, 1000)) do
  redis.call('ZREM', leases, id)
  local f = redis.call('HMGET', jkey(id), 'attempts', 'maxAttempts', 'priority', 'runAt', 'key', 'status')
  if f[6] == 'processing' then
    if tonumber(f[1]) >= tonumber(f[2]) then
      redis.call('HSET', jkey(id), 'lastError', expired)
      finish(id, q, 'processing', f[4], f[5] or '', 'failed', now)
    else
      -- Still "processing" until claimed again: its holder may yet ack.
      redis.call('ZADD', ready, -tonumber(f[3]), ready_member(f[4], id))
    end
  end
end

local out = {0}
local got, fresh = 0, 0
while got < want do
  local top = redis.call('ZPOPMIN', ready)
  if #top == 0 then break end
  local id = string.sub(top[1], 17)
  local k = jkey(id)
  local status = redis.call('HGET', k, 'status')
  if status == 'pending' or status == 'processing' then
    local expires = now + lease_ms
    redis.call('HINCRBY', k, 'attempts', 1)
    redis.call('HSET', k, 'status', 'processing', 'lease', token .. '.' .. id, 'leaseMs', lease_ms,
      'startedAt', now, 'updatedAt', now, 'leaseExpiresAt', expires)
    redis.call('ZADD', leases, expires, id)
    if status == 'pending' then fresh = fresh + 1 end
    out[#out + 1] = redis.call('HGETALL', k)
    got = got + 1
  end
end
if fresh > 0 then count(q, 'pending', 'processing', fresh) end
-- Only a call left short needs to know when to look again.
if got < want then
  out[1] = -1
  for _, z in ipairs({sched, leases}) do
    local first = redis.call('ZRANGE', z, 0, 0, 'WITHSCORES')
    if #first > 0 then
      local at = math.max(tonumber(first[2]) - now, 1)
      if out[1] < 0 or at < out[1] then out[1] = at end
    end
  end
end
return out
