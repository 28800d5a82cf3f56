-- ARGV: prefix, now, then 6 per change: kind, id, lease, delay ms, lastError
-- JSON ('' for none), value JSON (complete's result, progress's progress;
-- '' for none). Kinds: complete, drop (complete and delete: a
-- completed-job retention of 0), retry, fail, extend, progress, release
-- (each on a processing job under that lease), cancel (a pending or
-- processing job), revive (a failed or cancelled job whose key is free).
-- Returns one answer per change: {'ok', queue, traceparent}, {'nf'} (no such job), or
-- {'no', queue, status, lease, holder of the key a revive needed or ''}.
local now = now_ms()
local out = {}
local woken = {}
local finished = {}
local events = {complete = 'completed', fail = 'failed', retry = 'retried', progress = 'progress', release = 'released'}
-- What a change reads of its job: the fields after the seventh only
-- the changes that put the job back or extend its lease need.
local short = {complete = true, drop = true, fail = true, cancel = true}
local now_text = ms(now)

for i = 3, #ARGV, 6 do
  -- delay is read as a number only by the changes that use it.
  local kind, id, lease, delay, err, val = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5]
  local k = jkey(id)
  local f
  if short[kind] then
    f = redis.call('HMGET', k, 'status', 'lease', 'queue', 'runAt', 'key', 'leaseExpiresAt', 'trace')
  else
    f = redis.call('HMGET', k, 'status', 'lease', 'queue', 'runAt', 'key', 'leaseExpiresAt', 'trace', 'priority', 'leaseMs')
  end
  local status, cur, q, run_at, key, expires, trace, prio = f[1], f[2] or '', f[3], f[4], f[5] or '', f[6], f[7] or '', f[8]
  if expires == '' then expires = nil end
  local answer = nil
  -- A claim whose lease ran out may wait in ready, named in expired.
  -- (Only the changes that keep the job look: finish looks for itself.)
  local lapsed = not short[kind] and status == 'processing' and (not expires or tonumber(expires) <= now)
  if not status then
    answer = {'nf'}
  elseif kind == 'cancel' then
    if status == 'pending' or status == 'processing' then
      finish(id, q, status, run_at, key, 'cancelled', now, expires, 'cancelled')
      finished[q] = true
      answer = {'ok', q, trace}
    end
  elseif kind == 'revive' then
    if status == 'failed' or status == 'cancelled' then
      -- The job may wait to be filed in its status set.
      flush_finished()
      local holder = false
      if key ~= '' then holder = redis.call('HGET', qkey(q, 'keys'), key) end
      if holder and holder ~= id then
        answer = {'no', q, status, cur, holder}
      else
        if key ~= '' then redis.call('HSET', qkey(q, 'keys'), key, id) end
        redis.call('ZREM', qkey(q, status), id)
        redis.call('HSET', k, 'status', 'pending', 'attempts', '0', 'runAt', now_text, 'updatedAt', now_text)
        redis.call('HDEL', k, 'finishedAt')
        redis.call('ZADD', qkey(q, 'ready'), -tonumber(prio), ready_member(now, id))
        redis.call('ZADD', qkey(q, 'runat'), now_text, id)
        count(q, status, 'pending')
        stamp(q, id, 'retried', now)
        woken[q] = true
        answer = {'ok', q, trace}
      end
    end
  elseif status == 'processing' and cur == lease then
    answer = {'ok', q, trace}
    local ev = events[kind]
    if kind == 'complete' then
      if val ~= '' then redis.call('HSET', k, 'result', val) end
      finish(id, q, 'processing', run_at, key, 'completed', now, expires, ev)
      finished[q] = true
    elseif kind == 'drop' then
      finish(id, q, 'processing', run_at, key, 'completed', now, expires, nil, true)
      finished[q] = true
    elseif kind == 'fail' then
      redis.call('HSET', k, 'lastError', err)
      finish(id, q, 'processing', run_at, key, 'failed', now, expires, ev)
      finished[q] = true
    elseif kind == 'retry' then
      stamp(q, id, ev, now)
      redis.call('HSET', k, 'lastError', err)
      redis.call('ZREM', qkey(q, 'leases'), id)
      redis.call('ZREM', qkey(q, 'ready'), ready_member(run_at, id))
      if lapsed then redis.call('SREM', qkey(q, 'expired'), id) end
      delay = tonumber(delay)
      local run = now + delay
      redis.call('HSET', k, 'status', 'pending', 'runAt', ms(run), 'updatedAt', now_text, 'leaseExpiresAt', '')
      redis.call('ZADD', qkey(q, 'runat'), ms(run), id)
      if delay <= 0 then
        redis.call('ZADD', qkey(q, 'ready'), -tonumber(prio), ready_member(run, id))
      else
        redis.call('ZADD', qkey(q, 'scheduled'), ms(run), id)
      end
      count(q, 'processing', 'pending')
      woken[q] = true
    elseif kind == 'extend' or kind == 'progress' then
      if ev then stamp(q, id, ev, now) end
      local ext = tonumber(delay)
      if ext <= 0 then ext = tonumber(f[9]) end
      redis.call('HSET', k, 'leaseExpiresAt', ms(now + ext), 'updatedAt', now_text)
      if kind == 'progress' then redis.call('HSET', k, 'progress', val) end
      redis.call('ZADD', qkey(q, 'leases'), ms(now + ext), id)
      -- An expired claim may already wait in ready; the extension takes it back.
      redis.call('ZREM', qkey(q, 'ready'), ready_member(run_at, id))
      if lapsed then redis.call('SREM', qkey(q, 'expired'), id) end
    elseif kind == 'release' then
      stamp(q, id, ev, now)
      redis.call('HINCRBY', k, 'attempts', -1)
      redis.call('HSET', k, 'status', 'pending', 'updatedAt', now_text, 'leaseExpiresAt', '')
      redis.call('ZREM', qkey(q, 'leases'), id)
      if lapsed then redis.call('SREM', qkey(q, 'expired'), id) end
      redis.call('ZADD', qkey(q, 'ready'), -tonumber(prio), ready_member(run_at, id))
      redis.call('ZADD', qkey(q, 'runat'), run_at, id)
      count(q, 'processing', 'pending')
      woken[q] = true
    else
      return redis.error_reply('unknown change ' .. kind)
    end
  end
  out[#out + 1] = answer or {'no', q, status, cur, ''}
end
flush_counts()
flush_stamps()
flush_finished()
for q in pairs(woken) do wake(q) end
for q in pairs(finished) do redis.call('PUBLISH', P .. ':done', q) end
return out
