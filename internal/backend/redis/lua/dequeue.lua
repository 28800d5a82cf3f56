-- ARGV: prefix, queue, lease token, lease ms. Moves due scheduled jobs
-- and expired claims to ready (or fails claims whose attempts are spent),
-- then claims the first ready job. Returns {'job', field, value, ...} or
-- {'none', ms until the next scheduled job or lease expiry, -1 if none}.
local q, lease, lease_ms = ARGV[2], ARGV[3], tonumber(ARGV[4])
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
      redis.call('HSET', jkey(id), 'lastError',
        '{"name":"LeaseExpired","message":"the lease of the last attempt expired before the job was acknowledged"}')
      finish(id, q, 'processing', f[4], f[5] or '', 'failed', now)
    else
      -- Still "processing" until re-claimed: its holder may yet ack.
      redis.call('ZADD', ready, -tonumber(f[3]), ready_member(f[4], id))
    end
  end
end

while true do
  local top = redis.call('ZPOPMIN', ready)
  if #top == 0 then break end
  local id = string.sub(top[1], 17)
  local k = jkey(id)
  local status = redis.call('HGET', k, 'status')
  if status == 'pending' or status == 'processing' then
    local expires = now + lease_ms
    redis.call('HINCRBY', k, 'attempts', 1)
    redis.call('HSET', k, 'status', 'processing', 'lease', lease, 'leaseMs', lease_ms,
      'startedAt', now, 'updatedAt', now, 'leaseExpiresAt', expires)
    redis.call('ZADD', leases, expires, id)
    if status == 'pending' then count(q, 'pending', 'processing') end
    local out = redis.call('HGETALL', k)
    table.insert(out, 1, 'job')
    return out
  end
end

local next_at = -1
for _, z in ipairs({sched, leases}) do
  local first = redis.call('ZRANGE', z, 0, 0, 'WITHSCORES')
  if #first > 0 then
    local at = tonumber(first[2])
    if next_at < 0 or at < next_at then next_at = at end
  end
end
if next_at >= 0 then next_at = math.max(next_at - now, 1) end
return {'none', next_at}
