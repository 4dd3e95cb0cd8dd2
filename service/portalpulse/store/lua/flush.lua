-- One site's flush: expire what is due, apply this instance's presence
-- operations, count views, and answer the snapshot. Atomic, one round trip.
-- The rules are those of store/presence.py (the embedded store).
--
-- KEYS (all share the site's hash tag, so one Cluster slot):
--   1 seen    ZSET visitor -> deadline; kept VISIT_GAP past it to tell visits apart
--   2 vis     HASH visitor -> "E|holders|kind:name|device": E is 1 when engaged,
--             holders the instances with a live connection, then where the visit
--             came from and on what. One entry per visitor, and only when needed.
--   3 inst    ZSET instance -> deadline (instances flushing this site)
--   4 pairs   ZSET "page\nvisitor" -> deadline (readers)
--   5 rank    ZSET page -> -(readers * 2^32 + views in window): ZRANGE is the trending order
--   6 pages   ZSET page -> last opened (for the cap on tracked pages)
--   7 titles  HASH page -> title
--   8 vbi     ZSET minute -> minute (view buckets that exist)
--   9 total   STRING all-time visits
--  10 wm      STRING the time up to which expired visitors were processed
--  11 engn    STRING how many online visitors are engaged
--  12 epairs  ZSET "page\nvisitor" -> deadline (engaged readers)
--  13 erank   ZSET page -> engaged readers
--  14 srcn    HASH "kind:name" -> online visitors
--  15 devn    HASH device -> online visitors
-- ARGV: 1 key prefix "pp:{site}:", 2 the batch as JSON (see store/redis.py)

local R = 4294967296
local VISIT_GAP = 1800
local DAY_TTL = 40 * 86400
local HISTORY_TTL = 9 * 86400

local seen, vis, inst, pairs, rank, pages, titles, vbi, total, wm =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10]
local engn, epairs, erank, srcn, devn = KEYS[11], KEYS[12], KEYS[13], KEYS[14], KEYS[15]
local P = ARGV[1]
local b = cjson.decode(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000 + b.off
local me = b.i

-- Lower a rank score by `amount` (a reader leaving: R; views leaving the window: n).
local function rank_down(page, amount)
  local s = redis.call('ZSCORE', rank, page)
  if s then
    local v = tonumber(s) + amount
    if v > -0.5 then
      redis.call('ZREM', rank, page)
    else
      redis.call('ZADD', rank, v, page)
    end
  end
end

local function erank_down(page)
  if redis.call('ZSCORE', erank, page) then
    if tonumber(redis.call('ZINCRBY', erank, -1, page)) < 0.5 then
      redis.call('ZREM', erank, page)
    end
  end
end

local function reader_gone(page) rank_down(page, R) end

-- (page, visitor) pairs: keep until at least `deadline`; true when new.
local function pair_up(zset, page, visitor, deadline)
  return redis.call('ZADD', zset, 'GT', deadline, page .. '\n' .. visitor) == 1
end

-- Lower a pair's deadline (never raise it); gone at once when it passed.
local function pair_down(zset, page, visitor, deadline, on_gone)
  local m = page .. '\n' .. visitor
  local s = redis.call('ZSCORE', zset, m)
  if s and deadline < tonumber(s) then
    if deadline <= now then
      redis.call('ZREM', zset, m)
      on_gone(page)
    else
      redis.call('ZADD', zset, 'XX', deadline, m)
    end
  end
end

local function expire_pairs(zset, on_gone)
  local due = redis.call('ZRANGEBYSCORE', zset, '-inf', now)
  if #due > 0 then
    for _, m in ipairs(due) do
      on_gone(string.match(m, '^(.*)\n'))
    end
    redis.call('ZREMRANGEBYSCORE', zset, '-inf', now)
  end
end

local function count_less(hash, field)
  if tonumber(redis.call('HINCRBY', hash, field, -1)) <= 0 then
    redis.call('HDEL', hash, field)
  end
end

-- A visitor's entry in `vis`; `new` when it has none yet.
local function vis_get(v)
  local raw = redis.call('HGET', vis, v)
  if not raw then
    return {e = '0', h = '', s = '', d = '', new = true}
  end
  local e, h, src, d = string.match(raw, '^([01])|([^|]*)|([^|]*)|(.*)$')
  return {e = e, h = h, s = src, d = d}
end

local function vis_put(v, t)
  redis.call('HSET', vis, v, t.e .. '|' .. t.h .. '|' .. t.s .. '|' .. t.d)
end

-- The visitor is no longer online.
local function gone(v)
  local t = vis_get(v)
  if t.new then
    return
  end
  if t.e == '1' then
    redis.call('DECR', engn)
  end
  if t.s ~= '' then
    count_less(srcn, t.s)
    count_less(devn, t.d ~= '' and t.d or 'unknown')
  end
  redis.call('HDEL', vis, v)
end

-- 1. Expire: visitors, pairs, view buckets, instances. Only what is due.
local last = tonumber(redis.call('GET', wm) or '0')
if now > last then
  for _, v in ipairs(redis.call('ZRANGEBYSCORE', seen, '(' .. last, now)) do
    gone(v)
  end
  redis.call('SET', wm, tostring(now))
end
redis.call('ZREMRANGEBYSCORE', seen, '-inf', now - VISIT_GAP)
expire_pairs(pairs, reader_gone)
expire_pairs(epairs, erank_down)
local oldest = math.floor((now - b.win) / 60)
for _, minute in ipairs(redis.call('ZRANGEBYSCORE', vbi, '-inf', '(' .. oldest)) do
  local bucket = P .. 'vb:' .. minute
  local counts = redis.call('HGETALL', bucket)
  for i = 1, #counts, 2 do
    rank_down(counts[i], tonumber(counts[i + 1]))
  end
  redis.call('DEL', bucket)
  redis.call('ZREM', vbi, minute)
end
redis.call('ZREMRANGEBYSCORE', inst, '-inf', now)
redis.call('ZADD', inst, now + b.ttl, me)

-- 2. Presence operations, in the order they happened.
-- op = {kind, visitor, age, pages, engaged (1, 0, or -1 unknown), attrs}
local dayk = P .. 'day:' .. b.day
local uvk = P .. 'uv:' .. b.day
local visits = 0
local uv = {}
for _, op in ipairs(b.ops) do
  local kind, v, at, pg = op[1], op[2], now - op[3], op[4]
  if kind <= 3 then -- HOLD, REFRESH, BEAT
    local deadline = at + b.ttl
    local s = redis.call('ZSCORE', seen, v)
    if (not s) or tonumber(s) + VISIT_GAP <= now then
      visits = visits + 1
    end
    redis.call('ZADD', seen, 'GT', deadline, v)
    local t = vis_get(v)
    local changed = false
    if kind == 1 and not string.find(',' .. t.h .. ',', ',' .. me .. ',', 1, true) then
      t.h = t.h == '' and me or t.h .. ',' .. me
      changed = true
    end
    if op[6] ~= '' and t.s == '' then
      t.s, t.d = string.match(op[6], '^(.*)|(.*)$')
      redis.call('HINCRBY', srcn, t.s, 1)
      redis.call('HINCRBY', devn, t.d ~= '' and t.d or 'unknown', 1)
      changed = true
    end
    if op[5] == 1 and t.e ~= '1' then
      t.e = '1'
      redis.call('INCR', engn)
      changed = true
    elseif op[5] == 0 and t.e == '1' then
      t.e = '0'
      redis.call('DECR', engn)
      changed = true
    end
    if changed then
      vis_put(v, t)
    end
    uv[#uv + 1] = v
    for _, page in ipairs(pg) do
      if pair_up(pairs, page, v, deadline) then
        redis.call('ZINCRBY', rank, -R, page)
        redis.call('ZADD', pages, now, page)
      end
    end
    if op[5] == 1 then
      for _, page in ipairs(pg) do
        if pair_up(epairs, page, v, deadline) then
          redis.call('ZINCRBY', erank, 1, page)
        end
      end
    elseif op[5] == 0 then
      for _, page in ipairs(pg) do
        pair_down(epairs, page, v, now, erank_down)
      end
    end
  elseif kind == 4 then -- CLOSE_PAGES
    for _, page in ipairs(pg) do
      pair_down(pairs, page, v, at + b.grace, reader_gone)
      pair_down(epairs, page, v, at + b.grace, erank_down)
    end
  else -- LEAVE (5), BYE (6)
    local t = vis_get(v)
    local alive = {}
    if t.h ~= '' then
      for h in string.gmatch(t.h, '[^,]+') do
        if not (kind == 5 and h == me) then
          local d = redis.call('ZSCORE', inst, h)
          if d and tonumber(d) > now then
            alive[#alive + 1] = h
          end
        end
      end
    end
    local holders = table.concat(alive, ',')
    if holders ~= t.h then
      t.h = holders
      vis_put(v, t)
    end
    if #alive == 0 then
      local deadline = at + b.grace
      for _, page in ipairs(pg) do
        pair_down(pairs, page, v, deadline, reader_gone)
        pair_down(epairs, page, v, deadline, erank_down)
      end
      local s = redis.call('ZSCORE', seen, v)
      if s and deadline < tonumber(s) then
        redis.call('ZADD', seen, 'XX', deadline, v)
        if deadline <= now then
          gone(v)
        end
      end
    end
  end
end

-- 3. Views and titles.
if #b.views > 0 then
  local minute = math.floor(now / 60)
  local bucket = P .. 'vb:' .. minute
  for _, pv in ipairs(b.views) do
    redis.call('ZINCRBY', rank, -pv[2], pv[1])
    redis.call('HINCRBY', bucket, pv[1], pv[2])
    redis.call('ZADD', pages, now, pv[1])
  end
  redis.call('ZADD', vbi, minute, minute)
  redis.call('EXPIRE', bucket, math.floor(b.win) + 180)
end
for _, pt in ipairs(b.titles) do
  redis.call('HSET', titles, pt[1], pt[2])
end
local tracked = redis.call('ZCARD', pages)
if tracked > b.cap then
  local evicted = redis.call('ZPOPMIN', pages, tracked - b.cap)
  for i = 1, #evicted, 2 do
    redis.call('HDEL', titles, evicted[i])
    redis.call('ZREM', rank, evicted[i])
    redis.call('ZREM', erank, evicted[i])
  end
end

-- 4. Day counters and the per-minute history.
if visits > 0 then
  redis.call('HINCRBY', dayk, 'visits', visits)
  redis.call('INCRBY', total, visits)
end
if b.vt > 0 then
  redis.call('HINCRBY', dayk, 'views', b.vt)
  local hours = P .. 'hours:' .. b.day
  redis.call('HINCRBY', hours, b.hour, b.vt)
  redis.call('EXPIRE', hours, DAY_TTL)
end
for i = 1, #uv, 500 do
  redis.call('PFADD', uvk, unpack(uv, i, math.min(i + 499, #uv)))
end
local online = redis.call('ZCOUNT', seen, '(' .. now, '+inf')
local peak = tonumber(redis.call('HGET', dayk, 'peak_online') or '0')
if online > peak then
  redis.call('HSET', dayk, 'peak_online', online, 'peak_at', tostring(now))
end
if visits > 0 or b.vt > 0 or online > peak or #uv > 0 then
  redis.call('EXPIRE', dayk, DAY_TTL)
  redis.call('EXPIRE', uvk, DAY_TTL)
end
local this_minute = math.floor(now / 60)
local histk = P .. 'hist:' .. math.floor(this_minute / 1440)
local seen_this_minute = redis.call('HGET', histk, this_minute)
if not seen_this_minute then
  redis.call('HSET', histk, this_minute, online)
  redis.call('EXPIRE', histk, HISTORY_TTL)
elseif online > tonumber(seen_this_minute) then
  redis.call('HSET', histk, this_minute, online)
end

-- 5. The snapshot.
local function top(n)
  local ranked = redis.call('ZRANGE', rank, 0, n - 1, 'WITHSCORES')
  local out = {}
  for i = 1, #ranked, 2 do
    local score = -tonumber(ranked[i + 1])
    local readers = math.floor(score / R)
    out[#out + 1] = {ranked[i], redis.call('HGET', titles, ranked[i]) or '', readers, score - readers * R}
  end
  return out
end

local function day_counts(key, hll)
  local d = redis.call('HMGET', key, 'visits', 'views', 'peak_online', 'peak_at')
  return {tonumber(d[1] or '0'), tonumber(d[2] or '0'), redis.call('PFCOUNT', hll),
          tonumber(d[3] or '0'), d[4] or false}
end

local answer = {
  online = online,
  trending = top(b.n),
  today = day_counts(dayk, uvk),
  total = tonumber(redis.call('GET', total) or '0'),
  ts = string.format('%.3f', now),
}
if b.y ~= false then
  answer.yesterday = day_counts(P .. 'day:' .. b.y, P .. 'uv:' .. b.y)
end
if b.detail then
  local listed = top(b.dn)
  local page_engaged = {}
  for i, item in ipairs(listed) do
    page_engaged[i] = tonumber(redis.call('ZSCORE', erank, item[1]) or '0')
  end
  local minutes = {}
  for m = this_minute - b.dm + 1, this_minute do
    local n = redis.call('HGET', P .. 'hist:' .. math.floor(m / 1440), m)
    if n then
      minutes[#minutes + 1] = {m * 60, tonumber(n)}
    end
  end
  answer.detail = {
    engaged = tonumber(redis.call('GET', engn) or '0'),
    pages = listed,
    page_engaged = page_engaged,
    sources = redis.call('HGETALL', srcn),
    devices = redis.call('HGETALL', devn),
    minutes = minutes,
    hours_today = redis.call('HGETALL', P .. 'hours:' .. b.day),
    hours_yesterday = redis.call('HGETALL', P .. 'hours:' .. b.y),
  }
end
return cjson.encode(answer)
