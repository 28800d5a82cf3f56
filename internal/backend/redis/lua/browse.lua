-- Browsing jobs (issue 20). ARGV: prefix, now, op, ...
--   walk: queue, set ('created', 'runat', 'completed', 'failed',
--         'cancelled'), desc (1/0), after (1/0), score, id, count →
--         {more (1/0), last examined id, its score, then per job kept:
--         id, score, status, key}. Reads up to count members of the
--         queue's set after (score, id) in the set's order (score, then
--         member, reversed if desc). A member whose job is gone, or a
--         runat member no longer pending, is dropped from the set and
--         not answered: the sets heal themselves.
--   delete: queue, ids... → per id {'ok'}, {'nf'} (none in this queue)
--         or {'no', status, lease} (processing: not deleted).
--   update: id, runAt ('' keeps it), priority ('' keeps it), has data
--         (1/0), data → {'ok', queue}, {'nf'} or {'no', queue, status,
--         lease} (not pending).
local op = ARGV[3]
local now = now_ms()

-- before compares ids byte by byte, as Redis orders members (Lua's <
-- on strings follows the server's locale).
local function before(a, b)
  local n = math.min(#a, #b)
  for i = 1, n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end

if op == 'walk' then
  local q, set, desc, after, score, id, count = ARGV[4], ARGV[5], ARGV[6] == '1', ARGV[7] == '1', ARGV[8], ARGV[9], tonumber(ARGV[10])
  local key = qkey(q, set)
  local start = 0
  if after then
    local cur = redis.call('ZSCORE', key, id)
    local rank, range, past = 'ZRANK', 'ZRANGEBYSCORE', {'(' .. score, '+inf'}
    if desc then rank, range, past = 'ZREVRANK', 'ZREVRANGEBYSCORE', {'(' .. score, '-inf'} end
    if cur and tonumber(cur) == tonumber(score) then
      start = redis.call(rank, key, id) + 1
    else
      -- The member is gone: the first of its ties that comes after its
      -- id, else the first of a later score.
      local found = nil
      for _, m in ipairs(redis.call(range, key, score, score)) do
        if (desc and before(m, id)) or (not desc and before(id, m)) then found = m; break end
      end
      if not found then
        local nx = redis.call(range, key, past[1], past[2], 'LIMIT', 0, 1)
        if #nx == 0 then return {0, '', ''} end
        found = nx[1]
      end
      start = redis.call(rank, key, found)
    end
  end
  local items
  if desc then
    items = redis.call('ZREVRANGE', key, start, start + count - 1, 'WITHSCORES')
  else
    items = redis.call('ZRANGE', key, start, start + count - 1, 'WITHSCORES')
  end
  local more = 0
  if #items == 2 * count then more = 1 end
  local out = {more, '', ''}
  for i = 1, #items, 2 do
    local m, sc = items[i], items[i + 1]
    out[2], out[3] = m, sc
    local f = redis.call('HMGET', jkey(m), 'status', 'key')
    if not f[1] or (set == 'runat' and f[1] ~= 'pending') then
      redis.call('ZREM', key, m)
    else
      out[#out + 1] = m
      out[#out + 1] = sc
      out[#out + 1] = f[1]
      out[#out + 1] = f[2] or ''
    end
  end
  return out
end

if op == 'delete' then
  local q = ARGV[4]
  local out = {}
  local gone = false
  for i = 5, #ARGV do
    local id = ARGV[i]
    local k = jkey(id)
    local f = redis.call('HMGET', k, 'status', 'queue', 'runAt', 'key', 'lease')
    local status, key = f[1], f[4] or ''
    if not status or f[2] ~= q then
      out[#out + 1] = {'nf'}
    elseif status == 'processing' then
      out[#out + 1] = {'no', status, f[5] or ''}
    else
      redis.call('ZREM', qkey(q, 'ready'), ready_member(f[3], id))
      redis.call('ZREM', qkey(q, 'scheduled'), id)
      redis.call('ZREM', qkey(q, 'runat'), id)
      redis.call('ZREM', qkey(q, 'created'), id)
      if status ~= 'pending' then redis.call('ZREM', qkey(q, status), id) end
      if key ~= '' then
        if redis.call('HGET', qkey(q, 'keys'), key) == id then redis.call('HDEL', qkey(q, 'keys'), key) end
        if redis.call('HGET', qkey(q, 'last'), key) == id then redis.call('HDEL', qkey(q, 'last'), key) end
      end
      redis.call('DEL', k)
      count(q, status, nil)
      gone = true
      out[#out + 1] = {'ok'}
    end
  end
  flush_counts()
  -- Waits on a deleted job end (they find it gone).
  if gone then redis.call('PUBLISH', P .. ':done', q) end
  return out
end

if op == 'update' then
  local id, run_at, prio, has_data, data = ARGV[4], ARGV[5], ARGV[6], ARGV[7] == '1', ARGV[8]
  local k = jkey(id)
  local f = redis.call('HMGET', k, 'status', 'queue', 'runAt', 'priority', 'lease')
  local status, q = f[1], f[2]
  if not status then return {'nf'} end
  if status ~= 'pending' then return {'no', q, status, f[5] or ''} end
  if run_at == '' then run_at = f[3] end
  if prio == '' then prio = f[4] end
  redis.call('ZREM', qkey(q, 'ready'), ready_member(f[3], id))
  redis.call('ZREM', qkey(q, 'scheduled'), id)
  redis.call('HSET', k, 'runAt', run_at, 'priority', prio, 'updatedAt', now)
  if has_data then redis.call('HSET', k, 'data', data) end
  if tonumber(run_at) <= now then
    redis.call('ZADD', qkey(q, 'ready'), -tonumber(prio), ready_member(run_at, id))
  else
    redis.call('ZADD', qkey(q, 'scheduled'), run_at, id)
  end
  redis.call('ZADD', qkey(q, 'runat'), run_at, id)
  wake(q)
  return {'ok', q}
end

return redis.error_reply('unknown op ' .. op)
