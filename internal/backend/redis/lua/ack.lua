-- ARGV: prefix, id, lease. Returns 'ok' or an error word.
local id, lease = ARGV[2], ARGV[3]
local f = redis.call('HMGET', jkey(id), 'status', 'lease')
if f[1] == 'completed' and f[2] == lease then return 'ok' end -- a repeated ack
local j, err = claimed(id, lease)
if not j then return err end
finish(id, j.queue, 'processing', j.runAt, j.key, 'completed', now_ms())
return 'ok'
