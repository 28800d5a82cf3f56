-- ARGV: prefix, now (unused), queue, after seq, after id, limit. Reads the
-- queue's feed (prelude: stamp) after the position (seq, id): the jobs
-- filed with a larger number, in order, at most limit of them. Returns,
-- per event, seq, id, event, eventAt, attempts, and the result, progress
-- or lastError that goes with the event ('' for none). One script, so a
-- job's fields are read as they were when it was filed.
local q, after, after_id, limit = ARGV[3], tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6])
local z = redis.call('ZRANGE', qkey(q, 'events'), after, '+inf', 'BYSCORE', 'LIMIT', 0, limit + 1, 'WITHSCORES')
local out = {}
local n = 0
for i = 1, #z, 2 do
  local id, seq = z[i], tonumber(z[i + 1])
  if n < limit and (seq > after or id > after_id) then
    local f = redis.call('HMGET', jkey(id), 'event', 'eventAt', 'attempts', 'result', 'progress', 'lastError')
    if f[1] then
      local extra = ''
      if f[1] == 'completed' then extra = f[4] or ''
      elseif f[1] == 'progress' then extra = f[5] or ''
      elseif f[1] == 'failed' or f[1] == 'retried' then extra = f[6] or '' end
      out[#out + 1] = z[i + 1]
      out[#out + 1] = id
      out[#out + 1] = f[1]
      out[#out + 1] = f[2]
      out[#out + 1] = f[3]
      out[#out + 1] = extra
      n = n + 1
    end
  end
end
return out
