-- ARGV: prefix, then pairs of id and lease. Returns one answer per pair:
-- 'ok' or an error word.
local out = {}
local now = now_ms()
for i = 2, #ARGV, 2 do
  local id, lease = ARGV[i], ARGV[i + 1]
  local f = redis.call('HMGET', jkey(id), 'status', 'lease', 'queue', 'runAt', 'key')
  if f[1] == 'completed' and f[2] == lease then
    out[#out + 1] = 'ok' -- a repeated ack
  else
    local j, err = claimed(id, lease, f)
    if j then
      finish(id, j.queue, 'processing', j.runAt, j.key, 'completed', now)
      out[#out + 1] = 'ok'
    else
      out[#out + 1] = err
    end
  end
end
return out
