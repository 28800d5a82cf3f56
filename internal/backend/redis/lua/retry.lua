-- ARGV: prefix, id. Moves a failed or cancelled job back to pending with
-- fresh attempts. Returns 'ok' or an error word ('key:<id>' when another
-- job holds its dedupe key now).
local id = ARGV[2]
local k = jkey(id)
local f = redis.call('HMGET', k, 'status', 'queue', 'key', 'priority')
if not f[1] then return 'not_found' end
if f[1] ~= 'failed' and f[1] ~= 'cancelled' then return 'status:' .. f[1] end
local q, key = f[2], f[3] or ''
if key ~= '' then
  local other = redis.call('HGET', qkey(q, 'keys'), key)
  if other and other ~= id then return 'key:' .. other end
  redis.call('HSET', qkey(q, 'keys'), key, id)
end
local now = now_ms()
redis.call('ZREM', qkey(q, f[1]), id)
redis.call('HSET', k, 'status', 'pending', 'attempts', 0, 'runAt', now, 'updatedAt', now)
redis.call('HDEL', k, 'finishedAt')
redis.call('ZADD', qkey(q, 'ready'), -tonumber(f[4]), ready_member(now, id))
count(q, f[1], 'pending')
wake(q)
return 'ok'
