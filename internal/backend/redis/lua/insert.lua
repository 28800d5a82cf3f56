-- ARGV: prefix, now, queue, then 10 per job: id, data, priority,
-- maxAttempts, backoffType, backoffDelayMs, backoffMaxDelayMs, key, runAt
-- ('' if none), delayMs. Returns, per job, its id and '0', or the id of the
-- active job holding its key and '1'.
local q = ARGV[3]
local now = now_ms()
local keys = qkey(q, 'keys')
redis.call('SADD', P .. ':queues', q)
local out = {}
local added = false
for i = 4, #ARGV, 10 do
  local id, key = ARGV[i], ARGV[i + 7]
  local held = false
  if key ~= '' then held = redis.call('HGET', keys, key) end
  if held then
    out[#out + 1] = held
    out[#out + 1] = '1'
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
  wake(q)
end
return out
