-- Recurring schedules (issue 16). ARGV: prefix, now, op, queue, name, ...
-- A schedule is the hash <prefix>:sched:<queue>/<name> (fields spec, next,
-- last, lastRun, created, updated), filed in the zset <prefix>:schedules
-- by its next slot (member <queue>/<name>; '/' is in no name) and in the
-- set <prefix>:qsched:<queue> of its queue's names.
--   put: spec, next → {changed (0/1), the hash as field, value, ...}; the
--        same spec again changes nothing.
--   delete → 1 if it existed, else 0.
--   fire: slot, next, skip (1/0), then 8 per job: id, data, priority,
--        maxAttempts, backoffType, backoffDelayMs, backoffMaxDelayMs,
--        runAt → {0} if the next slot is no longer slot (fired by another
--        daemon, or changed by a put), else {1, id of each job inserted}.
--        The check, the inserts and the move of the slot are this one
--        script: exactly one job per slot, however many daemons.
local op, q, name = ARGV[3], ARGV[4], ARGV[5]
local member = q .. '/' .. name
local h = P .. ':sched:' .. member
local due = P .. ':schedules'
local now = now_ms()

if op == 'put' then
  local spec, next = ARGV[6], ARGV[7]
  local cur = redis.call('HGET', h, 'spec')
  local changed = 0
  if cur ~= spec then
    changed = 1
    if not cur then redis.call('HSET', h, 'created', now) end
    redis.call('HSET', h, 'spec', spec, 'next', next, 'updated', now)
    redis.call('ZADD', due, next, member)
    redis.call('SADD', P .. ':qsched:' .. q, name)
  end
  local out = {changed}
  for _, v in ipairs(redis.call('HGETALL', h)) do out[#out + 1] = v end
  return out
elseif op == 'delete' then
  redis.call('ZREM', due, member)
  redis.call('SREM', P .. ':qsched:' .. q, name)
  return redis.call('DEL', h)
elseif op ~= 'fire' then
  return redis.error_reply('unknown op ' .. op)
end

local slot, next, skip = ARGV[6], ARGV[7], ARGV[8]
if redis.call('HGET', h, 'next') ~= slot then return {0} end
local out = {1}
local insert = true
local last = redis.call('HGET', h, 'last')
if skip == '1' and last and last ~= '' then
  local st = redis.call('HGET', jkey(last), 'status')
  if st == 'pending' or st == 'processing' then insert = false end
end
if insert and #ARGV >= 9 then
  redis.call('SADD', P .. ':queues', q)
  local n = 0
  for i = 9, #ARGV, 8 do
    local id, prio, run_at = ARGV[i], tonumber(ARGV[i + 2]), tonumber(ARGV[i + 7])
    redis.call('HSET', jkey(id), 'id', id, 'queue', q, 'data', ARGV[i + 1], 'status', 'pending',
      'priority', prio, 'attempts', 0, 'maxAttempts', ARGV[i + 3],
      'backoffType', ARGV[i + 4], 'backoffDelayMs', ARGV[i + 5], 'backoffMaxDelayMs', ARGV[i + 6],
      'key', '', 'runAt', run_at, 'createdAt', now, 'updatedAt', now, 'event', 'enqueued', 'eventAt', now)
    file(q, id)
    filed(q, id, now, run_at)
    if run_at <= now then
      redis.call('ZADD', qkey(q, 'ready'), -prio, ready_member(run_at, id))
    else
      redis.call('ZADD', qkey(q, 'scheduled'), run_at, id)
    end
    out[#out + 1] = id
    last = id
    n = n + 1
  end
  count(q, nil, 'pending', n)
  flush_counts()
  flush_stamps()
  flush_filed()
  wake(q)
end
redis.call('HSET', h, 'next', next, 'lastRun', now, 'last', last or '')
redis.call('ZADD', due, next, member)
return out
