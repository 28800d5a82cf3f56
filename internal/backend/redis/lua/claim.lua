-- ARGV: prefix, now, queue, lease ms, token, max, lastError of an expired
-- claim with no attempts left. Moves due scheduled jobs and expired claims
-- to ready (or fails claims whose attempts are spent), then claims up to
-- max ready jobs in claim order, each with the lease token .. '.' .. id.
-- Returns {ms until the next scheduled job or lease expiry (-1 if none,
-- 0 if every wanted job came), the claimed jobs as one JSON array of
-- [field, value, ...] arrays}: one string instead of a reply element per
-- field, which cost more than the claim itself.
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
      finish(id, q, 'processing', f[4], f[5] or '', 'failed', now, now)
    else
      -- Still "processing" until claimed again: its holder may yet ack.
      redis.call('ZADD', ready, -tonumber(f[3]), ready_member(f[4], id))
    end
  end
end

local out = {0}
local claimed = {}
local got, fresh = 0, 0
local leased = {}
while got < want do
  -- One pop for the whole batch; an entry whose job has moved on since it
  -- was filed (cancelled, say) is skipped and the loop pops again.
  local top = redis.call('ZPOPMIN', ready, want - got)
  if #top == 0 then break end
  for i = 1, #top, 2 do
    local id = string.sub(top[i], 17)
    local k = jkey(id)
    local h = redis.call('HGETALL', k)
    local f = {}
    for n = 1, #h, 2 do f[h[n]] = n + 1 end
    local status = f.status and h[f.status]
    if status == 'pending' or status == 'processing' then
      local expires = now + lease_ms
      local lease = token .. '.' .. id
      local attempts = tonumber(h[f.attempts]) + 1
      -- progress is the attempt's: an empty one reads as none.
      redis.call('HSET', k, 'status', 'processing', 'attempts', attempts, 'lease', lease, 'leaseMs', lease_ms,
        'startedAt', now, 'updatedAt', now, 'leaseExpiresAt', expires, 'progress', '')
      leased[#leased + 1] = expires
      leased[#leased + 1] = id
      if status == 'pending' then fresh = fresh + 1 end
      -- The answer is the hash as read, with what the claim changed (as
      -- strings, as HGETALL gives them).
      local set = {status = 'processing', attempts = tostring(attempts), lease = lease, leaseMs = string.format('%.0f', lease_ms),
        startedAt = string.format('%.0f', now), updatedAt = string.format('%.0f', now), leaseExpiresAt = string.format('%.0f', expires),
        progress = ''}
      for name, value in pairs(set) do
        if f[name] then h[f[name]] = value else h[#h + 1] = name; h[#h + 1] = value end
      end
      claimed[#claimed + 1] = h
      got = got + 1
    end
  end
end
for i = 1, #leased, 1000 do
  redis.call('ZADD', leases, unpack(leased, i, math.min(i + 999, #leased)))
end
if fresh > 0 then count(q, 'pending', 'processing', fresh) end
flush_counts()
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
if #claimed > 0 then out[2] = cjson.encode(claimed) end
return out
