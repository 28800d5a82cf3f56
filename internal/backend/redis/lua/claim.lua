-- ARGV: prefix, now, queue, lease ms, token, max, lastError of an expired
-- claim with no attempts left, then the fields of a job to answer with,
-- status and attempts first. Moves due scheduled jobs and expired claims
-- to ready (or fails claims whose attempts are spent), then claims up to
-- max ready jobs in claim order, each with the lease token .. '.' .. id.
-- Returns {ms until the next scheduled job or lease expiry (-1 if none,
-- 0 if every wanted job came), the claimed jobs ('' if none), 1 if the
-- queue's flow control held jobs back, the time of the claim}. The jobs
-- are one MessagePack array of the arrays of their fields' values as read
-- (false for a field the job lacks): one string instead of a reply element
-- per field, which cost more than the claim itself, and packed, not
-- JSON-encoded, which copies the values instead of escaping them. Only
-- the fields the claim leaves alone are read and sent; what the claim
-- wrote (the HSET below) the daemon applies itself (redis.go, claimed):
-- it is the same for every job but the attempt and the lease, which the
-- daemon knows.
local q, lease_ms, token, want, expired = ARGV[3], tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6]), ARGV[7]
local fields = {unpack(ARGV, 8)}
local now = now_ms()
-- Every job of the claim has the same times and lease length.
local now_text, expires, lease_ms_text = ms(now), ms(now + lease_ms), ms(lease_ms)
local ready, sched, leases = qkey(q, 'ready'), qkey(q, 'scheduled'), qkey(q, 'leases')

-- Bounded so that one call never holds Redis for long; the rest moves on
-- the next call.
for _, id in ipairs(redis.call('ZRANGEBYSCORE', sched, '-inf', now_text, 'LIMIT', 0, 1000)) do
  redis.call('ZREM', sched, id)
  local f = redis.call('HMGET', jkey(id), 'priority', 'runAt')
  if f[1] then redis.call('ZADD', ready, -tonumber(f[1]), ready_member(f[2], id)) end
end
for _, id in ipairs(redis.call('ZRANGEBYSCORE', leases, '-inf', now_text, 'LIMIT', 0, 1000)) do
  redis.call('ZREM', leases, id)
  local f = redis.call('HMGET', jkey(id), 'attempts', 'maxAttempts', 'priority', 'runAt', 'key', 'status')
  if f[6] == 'processing' then
    if tonumber(f[1]) >= tonumber(f[2]) then
      redis.call('HSET', jkey(id), 'lastError', expired)
      finish(id, q, 'processing', f[4], f[5] or '', 'failed', now, now, 'failed')
    else
      -- Still "processing" until claimed again: its holder may yet ack.
      -- P:q:<q>:expired names such claims, for finds of processing jobs.
      redis.call('ZADD', ready, -tonumber(f[3]), ready_member(f[4], id))
      redis.call('SADD', qkey(q, 'expired'), id)
    end
  end
end

-- Flow control (issue 16): a queue's settings hash exists only while it
-- is paused or limited, so every other queue pays one HMGET of nothing.
-- cap is what the limits let this claim take.
local settings = qkey(q, 'settings')
local st = redis.call('HMGET', settings, 'paused', 'concurrency', 'rateMax', 'rateMs', 'rateWindow', 'rateCount')
local cap, limited, paused, limit_next = want, false, false, 0
local rate_ms, rate_window, rate_count = nil, 0, 0
if st[1] or st[2] or st[3] then
  if st[1] == '1' then
    paused = true
    cap = 0
  end
  if st[2] then
    -- Claims whose lease has not run out hold the queue's slots.
    local in_flight = redis.call('ZCOUNT', leases, '(' .. now_text, '+inf')
    cap = math.min(cap, math.max(tonumber(st[2]) - in_flight, 0))
  end
  if st[3] and st[4] then
    local rate_max = tonumber(st[3])
    rate_ms = tonumber(st[4])
    rate_window = math.floor(now / rate_ms)
    if st[5] and tonumber(st[5]) == rate_window then rate_count = tonumber(st[6] or '0') end
    local left = rate_max - rate_count
    if left <= 0 then
      cap = 0
      limit_next = (rate_window + 1) * rate_ms - now
    else
      cap = math.min(cap, left)
    end
  end
  limited = cap < want
end

local out = {0, '', 0}
local claimed = {}
local got, fresh = 0, 0
local leased = {}
local unfiled = {} -- pending no more: out of the runat set, in one ZREM
while got < cap do
  -- One pop for the whole batch; an entry whose job has moved on since it
  -- was filed (cancelled, say) is skipped and the loop pops again.
  local top = redis.call('ZPOPMIN', ready, cap - got)
  if #top == 0 then break end
  for i = 1, #top, 2 do
    local id = string.sub(top[i], 17)
    local k = jkey(id)
    local h = redis.call('HMGET', k, unpack(fields))
    local status = h[1]
    if status == 'pending' or status == 'processing' then
      local lease = token .. '.' .. id
      local attempts = ms(tonumber(h[2]) + 1)
      -- progress is the attempt's: an empty one reads as none. The daemon
      -- makes the same changes to the answer (claimed in redis.go).
      redis.call('HSET', k, 'status', 'processing', 'attempts', attempts, 'lease', lease, 'leaseMs', lease_ms_text,
        'startedAt', now_text, 'updatedAt', now_text, 'leaseExpiresAt', expires, 'progress', '', 'event', 'started', 'eventAt', now_text)
      file(q, id)
      leased[#leased + 1] = expires
      leased[#leased + 1] = id
      if status == 'pending' then
        fresh = fresh + 1
        unfiled[#unfiled + 1] = id
      else
        redis.call('SREM', qkey(q, 'expired'), id)
      end
      claimed[#claimed + 1] = h
      got = got + 1
    end
  end
end
for i = 1, #leased, 1000 do
  redis.call('ZADD', leases, unpack(leased, i, math.min(i + 999, #leased)))
end
for i = 1, #unfiled, 1000 do
  redis.call('ZREM', qkey(q, 'runat'), unpack(unfiled, i, math.min(i + 999, #unfiled)))
end
if fresh > 0 then count(q, 'pending', 'processing', fresh) end
flush_finished()
flush_counts()
flush_stamps()
if rate_ms and got > 0 then
  redis.call('HSET', settings, 'rateWindow', string.format('%.0f', rate_window), 'rateCount', rate_count + got)
end
if limited then out[3] = 1 end
-- Only a call left short needs to know when to look again. When the
-- limits, not the queue, ran dry: when the rate window ends, or when the
-- first claim's lease runs out (a slot frees then at the latest), or, for
-- a paused queue, not before it is resumed.
if got < want and limited and got == cap then
  out[1] = -1
  if limit_next > 0 then
    out[1] = limit_next
  elseif not paused then
    local first = redis.call('ZRANGE', leases, 0, 0, 'WITHSCORES')
    if #first > 0 then out[1] = math.max(tonumber(first[2]) - now, 1) end
  end
elseif got < want then
  out[1] = -1
  for _, z in ipairs({sched, leases}) do
    local first = redis.call('ZRANGE', z, 0, 0, 'WITHSCORES')
    if #first > 0 then
      local at = math.max(tonumber(first[2]) - now, 1)
      if out[1] < 0 or at < out[1] then out[1] = at end
    end
  end
end
if #claimed > 0 then
  out[2] = cmsgpack.pack(claimed)
  out[4] = now_text
end
return out
