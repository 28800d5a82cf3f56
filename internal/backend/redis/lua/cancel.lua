-- ARGV: prefix, id. Returns 'ok' or an error word.
local id = ARGV[2]
local f = redis.call('HMGET', jkey(id), 'status', 'queue', 'runAt', 'key')
if not f[1] then return 'not_found' end
if f[1] == 'cancelled' then return 'ok' end
if f[1] ~= 'pending' and f[1] ~= 'processing' then return 'status:' .. f[1] end
finish(id, f[2], f[1], f[3], f[4] or '', 'cancelled', now_ms())
return 'ok'
