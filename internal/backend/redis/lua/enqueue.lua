-- ARGV: prefix, queue, then 10 per job: id, data, priority, maxAttempts,
-- backoffType, backoffDelayMs, backoffMaxDelayMs, key, runAt ('' if
-- none), delayMs. Returns the ids in order; a key held by a pending or
-- processing job returns that job's id.
local q = ARGV[2]
local now = now_ms()
local keys = qkey(q, 'keys')
redis.call('SADD', P .. ':queues', q)
local out = {}
for i = 3, #ARGV, 10 do
  local id, key = ARGV[i], ARGV[i + 7]
  local held = false
  if key ~= '' then held = redis.call('HGET', keys, key) end
  if held then
    out[#out + 1] = held
  else
    local run_at = now + tonumber(ARGV[i + 9])
    if ARGV[i + 8] ~= '' then run_at = tonumber(ARGV[i + 8]) end
    local prio = tonumber(ARGV[i + 2])
    redis.call('HSET', jkey(id), 'id', id, 'queue', q, 'data', ARGV[i + 1], 'status', 'pending',
      'priority', prio, 'attempts', 0, 'maxAttempts', ARGV[i + 3],
      'backoffType', ARGV[i + 4], 'backoffDelayMs', ARGV[i + 5], 'backoffMaxDelayMs', ARGV[i + 6],
      'key', key, 'runAt', run_at, 'createdAt', now, 'updatedAt', now)
    if run_at <= now then
      redis.call('ZADD', qkey(q, 'ready'), -prio, ready_member(run_at, id))
    else
      redis.call('ZADD', qkey(q, 'scheduled'), run_at, id)
    end
    if key ~= '' then redis.call('HSET', keys, key, id) end
    count(q, nil, 'pending')
    out[#out + 1] = id
  end
end
wake(q)
return out
