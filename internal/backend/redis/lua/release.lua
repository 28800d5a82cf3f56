-- ARGV: prefix, id, lease. Hands a claim back unstarted: pending again
-- and ready at once in its old place (runAt unchanged), its attempt not
-- counted. Returns 'ok' or an error word.
local id, lease = ARGV[2], ARGV[3]
local j, err = claimed(id, lease)
if not j then return err end
local k = jkey(id)
local now = now_ms()
redis.call('HINCRBY', k, 'attempts', -1)
redis.call('HSET', k, 'status', 'pending', 'updatedAt', now)
redis.call('HDEL', k, 'leaseExpiresAt')
redis.call('ZREM', qkey(j.queue, 'leases'), id)
local prio = redis.call('HGET', k, 'priority')
redis.call('ZADD', qkey(j.queue, 'ready'), -tonumber(prio), ready_member(j.runAt, id))
count(j.queue, 'processing', 'pending')
wake(j.queue)
return 'ok'
