-- Shared by every script (joined in front of each by redis.go).
-- ARGV[1] is always the key prefix and ARGV[2] the time of the call in
-- milliseconds since the epoch, or '' for Redis's own clock, so that every
-- daemon sharing this Redis agrees on "now" (tests pass a clock of their
-- own). Job hashes live at <prefix>:job:<id>; each queue has sorted sets
-- and hashes at <prefix>:q:<queue>:<part>.
local P = ARGV[1]
local NOW = ARGV[2]

local function qkey(q, part) return P .. ':q:' .. q .. ':' .. part end
local function jkey(id) return P .. ':job:' .. id end

local function now_ms()
  if NOW ~= '' then return tonumber(NOW) end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- ms gives a whole number (a time, a count of ms) as the text Redis
-- stores. A number handed to redis.call is printed with '%.17g', and
-- tostring and '%.0f' are float formats too: each costs Redis several
-- times what the integer format does, and a claim or an ack made ten of
-- them per job (a fifth of the script's time). The texts are kept: a
-- script formats the same now and lease expiry for every job it touches.
local texts = {}
local function ms(n)
  local s = texts[n]
  if not s then
    s = string.format('%d', n)
    texts[n] = s
  end
  return s
end

-- Ready jobs sort by score (-priority), then by member: runAt and then
-- the id, which is the claim order of DESIGN §3. runAt is shifted to
-- start at the year 0 and zero-padded, so that every time a request can
-- name (years 0000-9999) sorts right as text.
local year0 = 62167219200000
local function ready_member(run_at, id)
  return string.format('%015d', tonumber(run_at) + year0) .. ':' .. id
end

-- Browsing (issue 20): P:q:<q>:created holds every job of the queue by
-- createdAt, P:q:<q>:runat its pending jobs by runAt (a find walks them;
-- the finished statuses' sets are by finishedAt already). Ties of a score
-- sort by member, the id: the walk's tie-break.
-- New jobs are filed in both with one ZADD per set and script
-- (flush_filed), not two per job: the insert of a batch costs about one
-- command per job, and two more each would have cost it a third.
local filing = {}
local function filed(q, id, created_at, run_at)
  local f = filing[q]
  if not f then
    f = {created = {}, runat = {}}
    filing[q] = f
  end
  local c, r = f.created, f.runat
  c[#c + 1] = created_at
  c[#c + 1] = id
  r[#r + 1] = run_at
  r[#r + 1] = id
end

local function flush_filed()
  for q, f in pairs(filing) do
    for set, list in pairs(f) do
      for i = 1, #list, 1000 do
        redis.call('ZADD', qkey(q, set), unpack(list, i, math.min(i + 999, #list)))
      end
    end
  end
  filing = {}
end

-- count moves n jobs (default 1) from one status count to another. The
-- moves are summed and written once per queue and status by
-- flush_counts, which every script that counts calls before it returns:
-- a batch of 500 acks is two HINCRBYs, not a thousand.
local counts = {}
local function count(q, from, to, n)
  n = n or 1
  local c = counts[q]
  if not c then c = {}; counts[q] = c end
  if from then c[from] = (c[from] or 0) - n end
  if to then c[to] = (c[to] or 0) + n end
end

local function flush_counts()
  for q, c in pairs(counts) do
    for status, n in pairs(c) do
      if n ~= 0 then redis.call('HINCRBY', qkey(q, 'counts'), status, n) end
    end
  end
  counts = {}
end

local function wake(q) redis.call('PUBLISH', P .. ':wake', q) end

-- The event feed (issue 17). A transition stamps the job's hash with its
-- event and time and files the job in P:q:<queue>:events, a zset scored
-- by a number from the counter P:evseq: re-filing a job moves it, so the
-- feed keeps each job's latest transition, and deleting the job takes it
-- out. The numbers are taken in one INCRBY by flush_stamps, which every
-- script that stamps calls before it returns; scripts run one at a time,
-- so the numbers follow the order in which the changes happened.
local stamps = {}
local function file(q, id)
  stamps[#stamps + 1] = q
  stamps[#stamps + 1] = id
end

local function stamp(q, id, ev, now)
  redis.call('HSET', jkey(id), 'event', ev, 'eventAt', ms(now))
  file(q, id)
end

local function flush_stamps()
  local n = #stamps / 2
  if n == 0 then return end
  local seq = redis.call('INCRBY', P .. ':evseq', n) - n
  local byq = {}
  for i = 1, #stamps, 2 do
    seq = seq + 1
    local z = byq[stamps[i]]
    if not z then z = {}; byq[stamps[i]] = z end
    z[#z + 1] = string.format('%d', seq)
    z[#z + 1] = stamps[i + 1]
  end
  for q, z in pairs(byq) do
    for i = 1, #z, 1000 do
      redis.call('ZADD', qkey(q, 'events'), unpack(z, i, math.min(i + 999, #z)))
    end
  end
  stamps = {}
end

-- finish ends a job for good: out of every claimable set, into the set of
-- its final status, its dedupe key released, stamped with event ev. expires
-- is the claim's lease expiry: a claim whose lease has not run out cannot
-- wait in ready (only the claim script files expired claims there), so it
-- is not looked for. drop deletes the job instead of keeping it (a
-- completed-job retention of 0).
-- The moves between a queue's leases and status sets, and forget's
-- deletions, wait in finishing for flush_finished, which every script that
-- finishes or forgets calls before it returns: one ZREM, ZADD or DEL per
-- queue and set and script, not one each per job. (The ids of one settle
-- are distinct, so no later change of the same script looks for a job in
-- a set it has yet to reach.)
local finishing = {}
local function finishing_of(q)
  local fq = finishing[q]
  if not fq then
    fq = {leases = {}, sets = {}, gone = {}, gone_ids = {}}
    finishing[q] = fq
  end
  return fq
end

-- forget deletes a job's hash, its entries in the queue's browse and
-- event sets and its key's last-job pointer (insert.lua). The set of its
-- status is the caller's.
local function forget(q, id, key)
  if key and key ~= '' and redis.call('HGET', qkey(q, 'last'), key) == id then
    redis.call('HDEL', qkey(q, 'last'), key)
  end
  local fq = finishing_of(q)
  fq.gone[#fq.gone + 1] = jkey(id)
  fq.gone_ids[#fq.gone_ids + 1] = id
end

local function finish(id, q, from, run_at, key, status, now, expires, ev, drop)
  local fq = finishing_of(q)
  if from == 'processing' then
    fq.leases[#fq.leases + 1] = id
  else
    redis.call('ZREM', qkey(q, 'scheduled'), id)
    redis.call('ZREM', qkey(q, 'runat'), id)
  end
  if from ~= 'processing' or not expires or tonumber(expires) <= now then
    redis.call('ZREM', qkey(q, 'ready'), ready_member(run_at, id))
    if from == 'processing' then redis.call('SREM', qkey(q, 'expired'), id) end
  end
  if key ~= '' and redis.call('HGET', qkey(q, 'keys'), key) == id then
    redis.call('HDEL', qkey(q, 'keys'), key)
  end
  if drop then
    forget(q, id, key)
    count(q, from, nil)
    return
  end
  local at = ms(now)
  -- An empty leaseExpiresAt reads as none, and saves an HDEL.
  redis.call('HSET', jkey(id), 'status', status, 'finishedAt', at, 'updatedAt', at, 'leaseExpiresAt', '',
    'event', ev, 'eventAt', at)
  file(q, id)
  local set = fq.sets[status]
  if not set then
    set = {}
    fq.sets[status] = set
  end
  set[#set + 1] = at
  set[#set + 1] = id
  count(q, from, status)
end

local function flush_finished()
  for q, fq in pairs(finishing) do
    local l = fq.leases
    for i = 1, #l, 1000 do
      redis.call('ZREM', qkey(q, 'leases'), unpack(l, i, math.min(i + 999, #l)))
    end
    for status, z in pairs(fq.sets) do
      for i = 1, #z, 1000 do
        redis.call('ZADD', qkey(q, status), unpack(z, i, math.min(i + 999, #z)))
      end
    end
    local g, gi = fq.gone, fq.gone_ids
    for i = 1, #g, 1000 do
      local j = math.min(i + 999, #g)
      redis.call('DEL', unpack(g, i, j))
      redis.call('ZREM', qkey(q, 'events'), unpack(gi, i, j))
      redis.call('ZREM', qkey(q, 'created'), unpack(gi, i, j))
    end
  end
  finishing = {}
end
