-- ARGV: prefix, now, queue, then 15 per job: id, data, priority,
-- maxAttempts, backoffType, backoffDelayMs, backoffMaxDelayMs, key, runAt
-- ('' if none), delayMs, hold (finished statuses that also hold the key:
-- 1 completed, 2 failed, 4 cancelled), periodMs (0: none), mode ('keep',
-- 'replace', 'debounce'), timeoutMs ('' if none), traceparent ('' if
-- none). Returns, per job, its id and '0', or the id of
-- the job holding its key and '1': the active job with the key, or, when
-- hold or periodMs say so, the last job enqueued with it (P:q:<q>:last).
-- The script is the one atomic step that looks and inserts.
local q = ARGV[3]
local now = now_ms()
local keys = qkey(q, 'keys')
redis.call('SADD', P .. ':queues', q)
local out = {}
local added = false
local last = qkey(q, 'last')

-- holds says whether the job id, the last enqueued with a key, holds it
-- for a job with hold mask and period.
local function holds(id, hold, period)
  local f = redis.call('HMGET', jkey(id), 'status', 'createdAt')
  local status = f[1]
  if not status then return false end
  if status == 'pending' or status == 'processing' then return true end
  local bits = {completed = 1, failed = 2, cancelled = 4}
  local b = bits[status]
  if b and math.floor(hold / b) % 2 == 1 then return true end
  return period > 0 and tonumber(f[2]) + period > now
end

-- duplicate applies a duplicate's mode to the pending job holding its
-- key: replace sets its data and runAt, debounce its runAt.
local function duplicate(id, mode, run_at, data)
  if mode ~= 'replace' and mode ~= 'debounce' then return end
  local k = jkey(id)
  local f = redis.call('HMGET', k, 'status', 'runAt', 'priority')
  if f[1] ~= 'pending' then return end
  redis.call('ZREM', qkey(q, 'ready'), ready_member(f[2], id))
  redis.call('ZREM', qkey(q, 'scheduled'), id)
  redis.call('HSET', k, 'runAt', run_at, 'updatedAt', now)
  redis.call('ZADD', qkey(q, 'runat'), run_at, id)
  if mode == 'replace' then redis.call('HSET', k, 'data', data) end
  if run_at <= now then
    redis.call('ZADD', qkey(q, 'ready'), -tonumber(f[3]), ready_member(run_at, id))
  else
    redis.call('ZADD', qkey(q, 'scheduled'), run_at, id)
  end
  return true
end

local moved = false
for i = 4, #ARGV, 15 do
  local id, key = ARGV[i], ARGV[i + 7]
  local hold, period, mode = tonumber(ARGV[i + 10]), tonumber(ARGV[i + 11]), ARGV[i + 12]
  local run_at = now + tonumber(ARGV[i + 9])
  if ARGV[i + 8] ~= '' then run_at = tonumber(ARGV[i + 8]) end
  local held = false
  if key ~= '' then
    held = redis.call('HGET', keys, key)
    if held then
      if duplicate(held, mode, run_at, ARGV[i + 1]) then moved = true end
    elseif hold > 0 or period > 0 then
      local l = redis.call('HGET', last, key)
      if l and holds(l, hold, period) then held = l end
    end
  end
  if held then
    out[#out + 1] = held
    out[#out + 1] = '1'
  else
    local prio = tonumber(ARGV[i + 2])
    local now_text, run_at_text = ms(now), ms(run_at)
    -- A small hash is a list that HSET and HMGET search from its start:
    -- the fields that claims and acks write or read come first.
    redis.call('HSET', jkey(id), 'status', 'pending', 'attempts', '0', 'updatedAt', now_text,
      'event', 'enqueued', 'eventAt', now_text, 'queue', q, 'runAt', run_at_text, 'key', key,
      'trace', ARGV[i + 14], 'id', id, 'data', ARGV[i + 1], 'priority', ms(prio), 'maxAttempts', ARGV[i + 3],
      'backoffType', ARGV[i + 4], 'backoffDelayMs', ARGV[i + 5], 'backoffMaxDelayMs', ARGV[i + 6],
      'createdAt', now_text, 'timeoutMs', ARGV[i + 13])
    file(q, id)
    filed(q, id, now_text, run_at_text)
    if run_at <= now then
      redis.call('ZADD', qkey(q, 'ready'), ms(-prio), ready_member(run_at, id))
    else
      redis.call('ZADD', qkey(q, 'scheduled'), run_at_text, id)
    end
    if key ~= '' then
      redis.call('HSET', keys, key, id)
      redis.call('HSET', last, key, id)
    end
    out[#out + 1] = id
    out[#out + 1] = '0'
    added = true
  end
end
if added then
  local c = 0
  for i = 2, #out, 2 do if out[i] == '0' then c = c + 1 end end
  count(q, nil, 'pending', c)
  flush_counts()
  flush_stamps()
  flush_filed()
  wake(q)
elseif moved then
  wake(q)
end
return out
