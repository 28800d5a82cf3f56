-- ARGV: prefix, id, lease, retry ('1' or '0'), lastError JSON, retry delay
-- ms. Retries after the delay while attempts remain, else dead-letters
-- the job. Returns 'ok' or an error word. The caller computed the delay
-- from the attempts it read; a lease that still matches means no claim
-- (the only thing that counts attempts) came in between.
local id, lease, retry, last_error, delay = ARGV[2], ARGV[3], ARGV[4] == '1', ARGV[5], tonumber(ARGV[6])
local j, err = claimed(id, lease)
if not j then return err end
local k = jkey(id)
local now = now_ms()
redis.call('HSET', k, 'lastError', last_error)
local f = redis.call('HMGET', k, 'attempts', 'maxAttempts', 'priority')
if not retry or tonumber(f[1]) >= tonumber(f[2]) then
  finish(id, j.queue, 'processing', j.runAt, j.key, 'failed', now)
  return 'ok'
end
local q = j.queue
redis.call('ZREM', qkey(q, 'leases'), id)
redis.call('ZREM', qkey(q, 'ready'), ready_member(j.runAt, id))
local run_at = now + delay
redis.call('HSET', k, 'status', 'pending', 'runAt', run_at, 'updatedAt', now)
redis.call('HDEL', k, 'leaseExpiresAt')
if delay <= 0 then
  redis.call('ZADD', qkey(q, 'ready'), -tonumber(f[3]), ready_member(run_at, id))
else
  redis.call('ZADD', qkey(q, 'scheduled'), run_at, id)
end
count(q, 'processing', 'pending')
wake(q)
return 'ok'
