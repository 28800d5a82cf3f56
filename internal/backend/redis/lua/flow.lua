-- ARGV: prefix, now, queue, what ('put', 'pause' or 'resume'), then for
-- 'put': paused ('1' or '0'), concurrency, rateMax, rateMs ('' for none).
-- Changes the queue's settings hash, which exists only while the queue is
-- paused or limited (the claim reads it), keeps its rate window's count,
-- and wakes every daemon's polls of the queue.
local q, what = ARGV[3], ARGV[4]
local settings = qkey(q, 'settings')
if what == 'put' then
  redis.call('HSET', settings, 'paused', ARGV[5])
  local fields = {{'concurrency', ARGV[6]}, {'rateMax', ARGV[7]}, {'rateMs', ARGV[8]}}
  for _, f in ipairs(fields) do
    if f[2] == '' then redis.call('HDEL', settings, f[1]) else redis.call('HSET', settings, f[1], f[2]) end
  end
elseif what == 'pause' then
  redis.call('HSET', settings, 'paused', '1')
else
  redis.call('HSET', settings, 'paused', '0')
end
local s = redis.call('HMGET', settings, 'paused', 'concurrency', 'rateMax')
if s[1] ~= '1' and not s[2] and not s[3] then
  redis.call('DEL', settings)
  redis.call('SREM', P .. ':configured', q)
else
  redis.call('SADD', P .. ':configured', q) -- listed by GET /v1/queues
end
wake(q)
return 1
