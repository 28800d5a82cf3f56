-- ARGV: prefix, id, lease, retry ('1' or '0'), lastError JSON, jitter in
-- [0, 1). Retries with the job's backoff while attempts remain, else
-- dead-letters it. Returns 'ok' or an error word.
local id, lease, retry, last_error, jitter = ARGV[2], ARGV[3], ARGV[4] == '1', ARGV[5], tonumber(ARGV[6])
local j, err = claimed(id, lease)
if not j then return err end
local k = jkey(id)
local now = now_ms()
redis.call('HSET', k, 'lastError', last_error)
local f = redis.call('HMGET', k, 'attempts', 'maxAttempts', 'priority', 'backoffType', 'backoffDelayMs', 'backoffMaxDelayMs')
local attempts = tonumber(f[1])
if not retry or attempts >= tonumber(f[2]) then
  finish(id, j.queue, 'processing', j.runAt, j.key, 'failed', now)
  return 'ok'
end
-- The schedule of backend.Backoff.Delay: exponential doubles per attempt
-- up to the cap, then is jittered down by up to a quarter; fixed is exact.
local delay = tonumber(f[5])
if f[4] ~= 'fixed' then
  delay = math.min(delay * 2 ^ (math.max(attempts, 1) - 1), tonumber(f[6]))
  delay = math.floor(delay - delay * 0.25 * jitter)
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
