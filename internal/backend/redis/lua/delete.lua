-- ARGV: prefix, now (unused), limit, then triples: queue, status, cutoff ms
-- ('+inf' for all). Deletes up to limit finished jobs of each (queue,
-- status) that finished before the cutoff. Returns how many it deleted.
local limit = tonumber(ARGV[3])
local n = 0
for i = 4, #ARGV, 3 do
  local q, status, cutoff = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local set = qkey(q, status)
  if cutoff ~= '+inf' then cutoff = '(' .. cutoff end
  local ids = redis.call('ZRANGEBYSCORE', set, '-inf', cutoff, 'LIMIT', 0, limit)
  for _, id in ipairs(ids) do
    forget(q, id, redis.call('HGET', jkey(id), 'key'))
  end
  if #ids > 0 then
    redis.call('ZREM', set, unpack(ids))
    redis.call('HINCRBY', qkey(q, 'counts'), status, -#ids)
  end
  n = n + #ids
end
flush_finished()
return n
