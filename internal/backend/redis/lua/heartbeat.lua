-- ARGV: prefix, id, lease, extend ms (0: the claim's own lease length).
local id, lease, ext = ARGV[2], ARGV[3], tonumber(ARGV[4])
local j, err = claimed(id, lease)
if not j then return err end
local k = jkey(id)
if ext == 0 then ext = tonumber(redis.call('HGET', k, 'leaseMs')) end
local now = now_ms()
redis.call('HSET', k, 'leaseExpiresAt', now + ext, 'updatedAt', now)
redis.call('ZADD', qkey(j.queue, 'leases'), now + ext, id)
-- An expired claim may already wait in ready; the heartbeat takes it back.
redis.call('ZREM', qkey(j.queue, 'ready'), ready_member(j.runAt, id))
return 'ok'
