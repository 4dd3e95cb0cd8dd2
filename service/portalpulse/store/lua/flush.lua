-- One site's flush: expire what is due, apply this instance's presence
-- operations, count views, and answer the snapshot. Atomic, one round trip.
-- The rules are those of store/presence.py (the embedded store).
--
-- KEYS (all share the site's hash tag, so one Cluster slot):
--   1 seen    ZSET visitor -> deadline; kept VISIT_GAP past it to tell visits apart
--   2 hold    HASH visitor -> comma list of instances holding a live connection
--   3 inst    ZSET instance -> deadline (instances flushing this site)
--   4 pairs   ZSET "page\nvisitor" -> deadline
--   5 rank    ZSET page -> -(readers * 2^32 + views in window): ZRANGE is the trending order
--   6 pages   ZSET page -> last opened (for the cap on tracked pages)
--   7 titles  HASH page -> title
--   8 vbi     ZSET minute -> minute (view buckets that exist)
--   9 total   STRING all-time visits
--  10 wm      STRING the time up to which expired visitors were processed
-- ARGV: 1 key prefix "pp:{site}:", 2 the batch as JSON (see store/redis.py)

local R = 4294967296
local VISIT_GAP = 1800
local DAY_TTL = 40 * 86400

local seen, hold, inst, pairs, rank, pages, titles, vbi, total, wm =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10]
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

local function page_seen(page)
  redis.call('ZADD', pages, now, page)
end

local function pair_up(page, visitor, deadline)
  if redis.call('ZADD', pairs, 'GT', deadline, page .. '\n' .. visitor) == 1 then
    redis.call('ZINCRBY', rank, -R, page)
    page_seen(page)
  end
end

local function pair_down(page, visitor, deadline)
  local m = page .. '\n' .. visitor
  local s = redis.call('ZSCORE', pairs, m)
  if s and deadline < tonumber(s) then
    if deadline <= now then
      redis.call('ZREM', pairs, m)
      rank_down(page, R)
    else
      redis.call('ZADD', pairs, 'XX', deadline, m)
    end
  end
end

-- 1. Expire: visitors, pairs, view buckets, instances. Only what is due.
local last = tonumber(redis.call('GET', wm) or '0')
if now > last then
  local gone = redis.call('ZRANGEBYSCORE', seen, '(' .. last, now)
  for _, v in ipairs(gone) do
    redis.call('HDEL', hold, v)
  end
  redis.call('SET', wm, tostring(now))
end
redis.call('ZREMRANGEBYSCORE', seen, '-inf', now - VISIT_GAP)
local due = redis.call('ZRANGEBYSCORE', pairs, '-inf', now)
if #due > 0 then
  for _, m in ipairs(due) do
    rank_down(string.match(m, '^(.*)\n'), R)
  end
  redis.call('ZREMRANGEBYSCORE', pairs, '-inf', now)
end
local oldest = math.floor((now - b.win) / 60)
local old_buckets = redis.call('ZRANGEBYSCORE', vbi, '-inf', '(' .. oldest)
for _, minute in ipairs(old_buckets) do
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
    if kind == 1 then
      local f = redis.call('HGET', hold, v)
      if not f then
        redis.call('HSET', hold, v, me)
      elseif not string.find(',' .. f .. ',', ',' .. me .. ',', 1, true) then
        redis.call('HSET', hold, v, f .. ',' .. me)
      end
    end
    uv[#uv + 1] = v
    for _, page in ipairs(pg) do
      pair_up(page, v, deadline)
    end
  elseif kind == 4 then -- CLOSE_PAGES
    for _, page in ipairs(pg) do
      pair_down(page, v, at + b.grace)
    end
  else -- LEAVE (5), BYE (6)
    local f = redis.call('HGET', hold, v)
    local alive = {}
    if f then
      for h in string.gmatch(f, '[^,]+') do
        if not (kind == 5 and h == me) then
          local d = redis.call('ZSCORE', inst, h)
          if d and tonumber(d) > now then
            alive[#alive + 1] = h
          end
        end
      end
    end
    if #alive > 0 then
      redis.call('HSET', hold, v, table.concat(alive, ','))
    else
      redis.call('HDEL', hold, v)
      local deadline = at + b.grace
      local s = redis.call('ZSCORE', seen, v)
      if s and deadline < tonumber(s) then
        redis.call('ZADD', seen, 'XX', deadline, v)
      end
      for _, page in ipairs(pg) do
        pair_down(page, v, deadline)
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
    page_seen(pv[1])
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
  end
end

-- 4. Day counters.
if visits > 0 then
  redis.call('HINCRBY', dayk, 'visits', visits)
  redis.call('INCRBY', total, visits)
end
if b.vt > 0 then
  redis.call('HINCRBY', dayk, 'views', b.vt)
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

-- 5. The snapshot.
local top = redis.call('ZRANGE', rank, 0, b.n - 1, 'WITHSCORES')
local trending = {}
for i = 1, #top, 2 do
  local score = -tonumber(top[i + 1])
  local readers = math.floor(score / R)
  trending[#trending + 1] = {top[i], redis.call('HGET', titles, top[i]) or '', readers, score - readers * R}
end

local function day_counts(key, hll)
  local d = redis.call('HMGET', key, 'visits', 'views', 'peak_online', 'peak_at')
  return {tonumber(d[1] or '0'), tonumber(d[2] or '0'), redis.call('PFCOUNT', hll),
          tonumber(d[3] or '0'), d[4] or false}
end

local answer = {
  online = online,
  trending = trending,
  today = day_counts(dayk, uvk),
  total = tonumber(redis.call('GET', total) or '0'),
  ts = string.format('%.3f', now),
}
if b.y ~= false then
  answer.yesterday = day_counts(P .. 'day:' .. b.y, P .. 'uv:' .. b.y)
end
return cjson.encode(answer)
