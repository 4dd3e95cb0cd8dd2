-- One site's flush: expire what is due, apply this instance's presence
-- operations, count views, and answer the snapshot. Atomic, one round trip.
-- The rules are those of store/presence.py (the embedded store).
--
-- Memory is what this layout is for. Each visitor is one short record in one
-- of NB small hashes (Redis keeps a hash of up to 512 short fields as a compact
-- listpack, some 40 bytes a visitor instead of ~500 in sorted sets), and at
-- most one live entry in a timer wheel of lists (also compact at any length).
--
-- Visitors arrive as tokens: 10 characters of a hash of their id (store/redis.py).
-- A record, v:<bucket> HASH token -> "D|W|F|H|A|PAGES" (or "D|W|F|*" with
-- "H|A|PAGES" in vx:<token> when it would be longer than 64 bytes):
--   D      deadline, milliseconds since EPOCH in base 36: online until then,
--          or, once away with pages still open, when it left
--   W      the timer slot where its one live wheel entry waits ('' when none)
--   F      'e' online and engaged, 'o' online and idle, 'a' away
--   H      the instances holding it through a live connection, comma-separated
--   A      the code of its "kind:name|device" (interned in `codes`), or ''
--   PAGES  the pages it reads, comma-separated: page id, then '=' and the pair's
--          deadline when not D, then '+' when the pair is engaged too, followed
--          by the engaged deadline when it differs from the pair's.
-- The timer wheel: dq:<slot> LIST of tokens due in that 100 ms slot, with the
-- slots in `dqi`. A record has at most one entry that counts (the slot in W);
-- when it fires the record expires what is due and waits again on its next
-- deadline.
-- A visitor away with nothing open leaves its record for a:<slot>:<bucket>
-- HASH token -> when it left, in ten-minute slots that Redis expires by itself
-- once a return would be a new visit: the visit rule reads the last four.
-- A slot is sized when it begins, for about 256 leavers a bucket: from how many
-- left in the slot before, and at least four times the visitors online. an:<slot> HASH holds its bucket count `n` and its leavers `c`.
-- Busy sites get enough buckets to stay compact, quiet ones get one.
--
-- KEYS (all share the site's hash tag, so one Cluster slot):
--   1 inst    ZSET instance -> deadline (instances flushing this site)
--   2 rank    ZSET page -> -(readers * 2^32 + views in window): ZRANGE is the trending order
--   3 pages   ZSET page -> last opened (for the cap on tracked pages)
--   4 titles  HASH page -> title
--   5 total   STRING all-time visits
--   6 onl     STRING online visitors
--   7 engn    STRING online visitors that are engaged
--   8 erank   ZSET page -> engaged readers
--   9 srcn    HASH "kind:name" -> online visitors
--  10 devn    HASH device -> online visitors
--  11 pid     HASH page -> page id (base 36)
--  12 pname   HASH page id -> page
--  13 dqi     ZSET timer slot -> slot (slots of dq:<slot> lists)
--  14 vbi     ZSET "minute:part" -> minute (view buckets vb:<minute>:<part>)
--  15 codes   HASH "a:<attrs>" -> code, "#<code>" -> attrs; counters "a#", "p#"
--  16 st      STRING "TAG|DUE": TAG names the snapshot's content (it changes with
--             anything a snapshot shows), DUE is when a flush with nothing new
--             next has something to expire (store time, seconds; '' when never).
--             Instances read it to skip flushing a quiet site (store/redis.py).
--             A new TAG, or a DUE that comes sooner, is also published (`b.pub`:
--             PUBLISH, or SPUBLISH on a Cluster) on the channel named like the
--             key, as "TIME|TAG|DUE": instances subscribed to it need not read
--             the key at all while nothing changes (store/redis_feed.py).
-- ARGV: 1 key prefix "pp:{site}:", 2 the batch as JSON (see store/redis.py)

local R = 4294967296
local VISIT_GAP = 1800
local GAP_MS = VISIT_GAP * 1000
local DAY_TTL = 40 * 86400
local HISTORY_TTL = 9 * 86400
-- The long history (see 4b): days and their top pages 400 days, months and years.
local LONG_TTL = 401 * 86400
local MONTH_TTL = 431 * 86400
local YEAR_TTL = 731 * 86400
local TOP_TODAY, TOP_DAY = 1000, 100 -- pages kept in a day's top (store/base.py)
local EPOCH = 1735689600 -- 2025-01-01T00:00:00Z
local NB = 1024 -- visitor buckets: up to 512 records each stay compact (Redis default)
local AWAY_PER_BUCKET = 256 -- leavers per bucket a slot is sized for (half the listpack limit)
local SLOT_MS = 100
local COUNTED_TTL = 60 -- seconds a set of views is known counted: far past any stalled flush
local LONG = 64 -- longest record kept whole (Redis's hash-max-listpack-value)
local AWAY_SLOT_MS = 600000

local inst, rank, pages, titles, total, onl, engn, erank =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local srcn, devn, pid, pname, dqi, vbi, codes =
  KEYS[9], KEYS[10], KEYS[11], KEYS[12], KEYS[13], KEYS[14], KEYS[15]
local st = KEYS[16]
local P = ARGV[1]
local b = cjson.decode(ARGV[2])
-- Views may come in sets, each under a token (store/redis.py): a set counts once,
-- in whichever flush carrying it runs first. A flush the instance gave up on (a
-- timeout) may still run late here, beside the retry that carries its set again.
if b.cs then
  local views, arrivals = {}, {}
  for _, set in ipairs(b.cs) do
    if redis.call('SET', P .. 'cs:' .. set[1], '1', 'NX', 'EX', COUNTED_TTL) then
      for _, pv in ipairs(set[2]) do
        views[pv[1]] = (views[pv[1]] or 0) + pv[2]
      end
      b.vt = b.vt + set[3]
      for _, a in ipairs(set[4]) do
        local key = a[1] .. '\0' .. a[2] .. '\0' .. a[3]
        if arrivals[key] then
          arrivals[key][4] = arrivals[key][4] + a[4]
        else
          arrivals[key] = {a[1], a[2], a[3], a[4]}
        end
      end
    end
  end
  for page, n in pairs(views) do
    b.views[#b.views + 1] = {page, n}
  end
  for _, a in pairs(arrivals) do
    b.ar[#b.ar + 1] = a
  end
end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000 + b.off
local me = b.i

local function ms(seconds)
  return math.floor((seconds - EPOCH) * 1000 + 0.5)
end
local nowms = ms(now)

-- Whether an instance of an older version flushed this site within the TTL:
-- one that publishes nothing (its id lacks the '+' of the feed), so the others
-- must go on reading `st`, which it may change unannounced; or one that does not
-- keep held visitors through their holder's liveness (its id lacks the '+h' of
-- hold_on), so the others must go on refreshing theirs. 1 or 0 when the
-- instance asks (`b.lg`, every few seconds), else nil.
local function unannounced_peer()
  if not b.lg then
    return nil
  end
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')) do
    if string.sub(id, -2) ~= '+h' then
      return 1
    end
  end
  return 0
end

-- Set by every write that a snapshot (not the detail) can show.
local changed = false
-- Set when a record waits on a new timer slot (the site's due time may move).
local wheel_moved = false

-- Tables built on every call cost more than the lookups they save: each script
-- call starts from nothing, so digits come from their alphabet by position.
local DIGITS = '0123456789abcdefghijklmnopqrstuvwxyz'
local b36_memo = {}
local function b36(n)
  n = math.floor(n)
  local memo = b36_memo[n]
  if memo then
    return memo
  end
  local out, digits = {}, 0
  local rest = n
  repeat
    local d = rest % 36
    digits = digits + 1
    out[digits] = string.sub(DIGITS, d + 1, d + 1)
    rest = (rest - d) / 36
  until rest <= 0
  local text = string.reverse(table.concat(out))
  b36_memo[n] = text
  return text
end

-- The value of a base64url character (A-Z a-z 0-9 - _), 0 for any other byte.
local function b64(c)
  if not c then
    return 0
  elseif c >= 97 and c <= 122 then
    return c - 71
  elseif c >= 65 and c <= 90 then
    return c - 65
  elseif c >= 48 and c <= 57 then
    return c + 4
  elseif c == 45 then
    return 62
  elseif c == 95 then
    return 63
  end
  return 0
end
-- 18 bits of the token, for buckets.
local function spread(tok)
  local a, b, c = string.byte(tok, 1, 3)
  return (b64(a) * 64 + b64(b)) * 64 + b64(c)
end
local function bucket_key(tok)
  return P .. 'v:' .. spread(tok) % NB
end

-- The key for a leaver in a slot; with `ttl`, the slot is made when missing.
local away_buckets = {}
local function away_key(tok, slot, ttl)
  local n = away_buckets[slot]
  if n == nil then
    n = tonumber(redis.call('HGET', P .. 'an:' .. slot, 'n')) or false
    away_buckets[slot] = n
  end
  if not n and ttl then
    -- Expect as many leavers as the slot before had, and at least four times
    -- the visitors online (visits of 2.5 minutes on average).
    local expected = math.max(
      tonumber(redis.call('HGET', P .. 'an:' .. (slot - 1), 'c') or '0'),
      4 * tonumber(redis.call('GET', onl) or '0'))
    n = math.min(16384, math.max(1, math.ceil(expected / AWAY_PER_BUCKET)))
    redis.call('HSET', P .. 'an:' .. slot, 'n', n)
    redis.call('EXPIRE', P .. 'an:' .. slot, ttl)
    away_buckets[slot] = n
  end
  return n and P .. 'a:' .. slot .. ':' .. spread(tok) % n
end

-- When the visitor last left, if less than VISIT_GAP ago (else nil); it is
-- back, so the entry goes.
local function away_since(tok)
  local last = nil
  for slot = math.floor((nowms - GAP_MS) / AWAY_SLOT_MS), math.floor(nowms / AWAY_SLOT_MS) do
    local key = away_key(tok, slot, nil)
    local left = key and redis.call('HGET', key, tok)
    if left then
      redis.call('HDEL', key, tok)
      left = tonumber(left, 36)
      if left + GAP_MS > nowms and (last == nil or left > last) then
        last = left
      end
    end
  end
  return last
end

-- A hash field read once per flush (false when missing).
local function memo(cache, key, hash, field)
  if cache[key] == nil then
    cache[key] = redis.call('HGET', hash, field) or false
  end
  return cache[key]
end

-- Pages by id, for records and view buckets.
local names, ids = {}, {}
local function name_of(id)
  return memo(names, id, pname, id)
end

local function page_id(page, create)
  local id = memo(ids, page, pid, page)
  if not id and create then
    id = b36(redis.call('HINCRBY', codes, 'p#', 1))
    redis.call('HSET', pid, page, id)
    redis.call('HSET', pname, id, page)
    names[id] = page
    ids[page] = id
  end
  return id
end

local attr_names = {}
local function attrs_of(code)
  return memo(attr_names, code, codes, '#' .. code) or ''
end

local function attr_code(attrs)
  local code = redis.call('HGET', codes, 'a:' .. attrs)
  if not code then
    code = b36(redis.call('HINCRBY', codes, 'a#', 1))
    redis.call('HSET', codes, 'a:' .. attrs, code, '#' .. code, attrs)
  end
  attr_names[code] = attrs
  return code
end

-- Lower a rank score by `amount` (a reader leaving: R; views leaving the window: n).
local function rank_down(page, amount)
  local s = redis.call('ZSCORE', rank, page)
  if s then
    changed = true
    local v = tonumber(s) + amount
    if v > -0.5 then
      redis.call('ZREM', rank, page)
    else
      redis.call('ZADD', rank, v, page)
    end
  end
end

local function reader_gone(id)
  local page = name_of(id)
  if page then
    rank_down(page, R)
  end
end

local function engaged_gone(id)
  local page = name_of(id)
  if page and redis.call('ZSCORE', erank, page) then
    if tonumber(redis.call('ZINCRBY', erank, -1, page)) < 0.5 then
      redis.call('ZREM', erank, page)
    end
  end
end

local function count_less(hash, field)
  if tonumber(redis.call('HINCRBY', hash, field, -1)) <= 0 then
    redis.call('HDEL', hash, field)
  end
end

-- Records ------------------------------------------------------------------

local function vget(tok)
  local key = bucket_key(tok)
  local raw = redis.call('HGET', key, tok)
  if not raw then
    return nil
  end
  local d, w, f, rest = string.match(raw, '^([^|]*)|([^|]*)|([^|]*)|(.*)$')
  local long = rest == '*'
  if long then
    rest = redis.call('GET', P .. 'vx:' .. tok) or '||'
  end
  local h, a, list = string.match(rest, '^([^|]*)|([^|]*)|(.*)$')
  local r = {tok = tok, key = key, D = tonumber(d, 36), W = (w ~= '' and tonumber(w, 36) or nil),
             F = f, H = h, A = a, pg = {}, order = {}, long = long}
  for item in string.gmatch(list, '[^,]+') do
    local id, pd, plus, qd = string.match(item, '^([0-9a-z]+)=?([0-9a-z]*)(%+?)([0-9a-z]*)$')
    local pair = pd ~= '' and tonumber(pd, 36) or r.D
    local engaged = nil
    if plus ~= '' then
      engaged = qd ~= '' and tonumber(qd, 36) or pair
    end
    r.pg[id] = {pair, engaged}
    r.order[#r.order + 1] = id
  end
  return r
end

local function new_record(tok)
  return {tok = tok, key = bucket_key(tok), D = 0, W = nil, F = 'a', H = '', A = '',
          pg = {}, order = {}, new = true}
end

-- The visitor is no longer online.
local function gone(r)
  if r.F == 'e' then
    redis.call('DECR', engn)
  end
  if r.A ~= '' then
    local src, dev = string.match(attrs_of(r.A), '^(.*)|(.*)$')
    if src then
      count_less(srcn, src)
      count_less(devn, dev ~= '' and dev or 'unknown')
    end
  end
  r.F, r.H, r.A = 'a', '', ''
  redis.call('DECR', onl)
  changed = true
end

-- Expire whatever of the record is due: engaged pairs, pairs, the visitor.
local function settle(r)
  for _, id in ipairs(r.order) do
    local e = r.pg[id]
    if e then
      if e[2] and e[2] <= nowms then
        e[2] = nil
        engaged_gone(id)
      end
      if e[1] <= nowms then
        r.pg[id] = nil
        reader_gone(id)
      end
    end
  end
  if r.F ~= 'a' and r.D <= nowms then
    gone(r)
  end
end

-- Lower a pair (and its engaged pair) to `deadline`, never raising them.
local function pair_down(r, id, deadline)
  local e = id and r.pg[id]
  if not e then
    return
  end
  if e[2] and deadline < e[2] then
    if deadline <= nowms then
      e[2] = nil
      engaged_gone(id)
    else
      e[2] = deadline
    end
  end
  if deadline < e[1] then
    if deadline <= nowms then
      r.pg[id] = nil
      reader_gone(id)
    else
      e[1] = deadline
    end
  end
end

-- Wait on the record's next deadline (one live wheel entry), then write it.
local function vput(r)
  local due = nil
  if r.F ~= 'a' then
    due = r.D
  end
  local list, written = {}, {}
  for _, id in ipairs(r.order) do
    local e = r.pg[id]
    if e and not written[id] then
      written[id] = true
      local item = id
      if e[1] ~= r.D then
        item = item .. '=' .. b36(e[1])
      end
      if e[2] then
        item = item .. '+' .. (e[2] ~= e[1] and b36(e[2]) or '')
        if due == nil or e[2] < due then
          due = e[2]
        end
      end
      if due == nil or e[1] < due then
        due = e[1]
      end
      list[#list + 1] = item
    end
  end
  if due then
    local slot = math.floor(due / SLOT_MS)
    if r.W == nil or slot < r.W then
      redis.call('RPUSH', P .. 'dq:' .. slot, r.tok)
      wheel_moved = true
      redis.call('ZADD', dqi, slot, slot)
      r.W = slot
    end
    local head = b36(r.D) .. '|' .. b36(r.W) .. '|' .. r.F .. '|'
    local rest = r.H .. '|' .. r.A .. '|' .. table.concat(list, ',')
    if #head + #rest <= LONG then
      redis.call('HSET', r.key, r.tok, head .. rest)
      if r.long then
        redis.call('DEL', P .. 'vx:' .. r.tok)
      end
    else
      -- Many pages or holders: the rest goes to a key of its own, so that
      -- the bucket's values stay short enough for a listpack.
      redis.call('HSET', r.key, r.tok, head .. '*')
      redis.call('SET', P .. 'vx:' .. r.tok, rest)
    end
  else
    if r.long then
      redis.call('DEL', P .. 'vx:' .. r.tok)
    end
    -- Away with nothing open: only when it left is kept, until a return would
    -- be a new visit anyway.
    if not r.new then
      redis.call('HDEL', r.key, r.tok)
    end
    local slot = math.floor(r.D / AWAY_SLOT_MS)
    local ttl = math.ceil(((slot + 1) * AWAY_SLOT_MS + GAP_MS - nowms) / 1000) + 60
    if r.D + GAP_MS > nowms then
      local key = away_key(r.tok, slot, ttl)
      redis.call('HSET', key, r.tok, b36(r.D))
      redis.call('EXPIRE', key, ttl)
      redis.call('HINCRBY', P .. 'an:' .. slot, 'c', 1)
    end
  end
end

-- Held by an instance ------------------------------------------------------
-- A visitor held through a live connection (H) stays online while an instance
-- that holds it is live in `inst`: instances keep their entry there (flushes,
-- and touches every quarter of the TTL: store/redis_flush.py), not each
-- visitor's deadline. When the visitor's deadline comes and a holder is still
-- live, the deadline moves on to the latest holder's, down to a grid of
-- HOLD_GRID seconds, so that a quiet site's visitors come due together, at
-- most once per grid step, whatever the number of instances; the pages and
-- engaged pairs that rode on it ride on. A holder found gone is dropped; with
-- none left, the visitor leaves as it would have (settle).
local uv = {} -- tokens among today's visitors (section 4)
local DAY_START_MS = type(b.ds) == 'number' and b.ds > 0 and ms(b.ds) or nil
local HOLD_GRID = math.min(30, math.max(1, math.floor(b.ttl * 2 / 3)))
-- A big site's readers would all come due at once: one script re-arming 100,000
-- records holds up its whole Redis. They come due in phases of the grid instead,
-- about HOLD_PER_PHASE a phase (by token), at most ten phases a second.
local HOLD_PER_PHASE = 1000
local hold_phases = nil
local live_of = {} -- instance -> its deadline here, false when gone
local function live_until(h)
  local d = live_of[h]
  if d == nil then
    d = tonumber(redis.call('ZSCORE', inst, h) or '0')
    if d <= now then
      d = false
    end
    live_of[h] = d
  end
  return d
end
local function hold_on(r)
  if r.F == 'a' or r.H == '' or r.D > nowms then
    return
  end
  local alive, latest = {}, nil
  for h in string.gmatch(r.H, '[^,]+') do
    local d = live_until(h)
    if d then
      alive[#alive + 1] = h
      if not latest or d > latest then
        latest = d
      end
    end
  end
  r.H = table.concat(alive, ',')
  if not latest then
    return
  end
  if not hold_phases then
    local online = tonumber(redis.call('GET', onl) or '0')
    hold_phases = math.max(1, math.min(HOLD_GRID * 10, math.ceil(online / HOLD_PER_PHASE)))
  end
  local phase = 0
  if hold_phases > 1 then
    phase = spread(r.tok) % hold_phases * HOLD_GRID / hold_phases
  end
  local until_s = math.floor((latest - phase) / HOLD_GRID) * HOLD_GRID + phase
  if until_s <= now then
    until_s = latest
  end
  local old, new = r.D, ms(until_s)
  for _, id in ipairs(r.order) do
    local e = r.pg[id]
    if e then
      if e[1] == old then
        e[1] = new
      end
      if e[2] == old then
        e[2] = new
      end
    end
  end
  r.D = new
  -- Online into a new day: among its visitors (a present operation would count it).
  if not DAY_START_MS or old - b.ttl * 1000 < DAY_START_MS then
    uv[#uv + 1] = r.tok
  end
end

-- 1. Expire: due wheel slots, forgotten visitors, view buckets, instances;
-- only once something is due (section 5 keeps when, in `st`).
local old_state = redis.call('GET', st) or ''
local tag, was_due = string.match(old_state, '^([^|]*)|(.*)$')
local expire = tag == nil or (was_due ~= '' and now >= tonumber(was_due))
local nowslot = math.floor(nowms / SLOT_MS)
for _, s in ipairs(not expire and {} or redis.call('ZRANGEBYSCORE', dqi, '-inf', nowslot)) do
  local key = P .. 'dq:' .. s
  local due = redis.call('LRANGE', key, 0, -1)
  redis.call('DEL', key)
  redis.call('ZREM', dqi, s)
  local slot = tonumber(s)
  for _, tok in ipairs(due) do
    local r = vget(tok)
    if r and r.W == slot then
      r.W = nil
      hold_on(r)
      settle(r)
      vput(r)
    end
  end
end
local oldest = math.floor((now - b.win) / 60)
for _, part in ipairs(not expire and {} or
                     redis.call('ZRANGEBYSCORE', vbi, '-inf', '(' .. oldest)) do
  local key = P .. 'vb:' .. part
  local counts = redis.call('HGETALL', key)
  for i = 1, #counts, 2 do
    local page = name_of(counts[i])
    if page then
      rank_down(page, tonumber(counts[i + 1]))
    end
  end
  redis.call('DEL', key)
end
if expire then
  redis.call('ZREMRANGEBYSCORE', vbi, '-inf', '(' .. oldest)
  redis.call('ZREMRANGEBYSCORE', inst, '-inf', now)
end
-- Whether this instance was live here until now: when not (its first flush, a
-- stall longer than the TTL, a store that lost its keys), what it holds may be
-- gone, and it holds it again (`lp`).
local lapsed = live_until(me) == false or nil
redis.call('ZADD', inst, now + b.ttl, me)
live_of[me] = now + b.ttl

-- 2. Presence operations, in the order they happened.
-- op = {kind, visitor token, age, pages, engaged (1, 0, or -1 unknown), attrs}
local dayk = P .. 'day:' .. b.day
local uvk = P .. 'uv:' .. b.day
local visits = 0
local seen = {} -- pages of present ops, for the drill-down (3b)
-- A refresh is plain when it only moves deadlines on: its visitor is online
-- with these pages and this engagement already. A flush of plain refreshes
-- alone, with nothing due, is answered early (section 2b).
local function plain_refresh(op, r)
  if op[1] ~= 2 or not r or r.F == 'a' or (op[6] ~= '' and r.A == '') then
    return false
  end
  if (op[5] == 1 and r.F ~= 'e') or (op[5] == 0 and r.F == 'e') then
    return false
  end
  for _, page in ipairs(op[4]) do
    local id = page_id(page, false)
    local e = id and r.pg[id]
    if not e or (op[5] == 1 and not e[2]) or (op[5] == 0 and e[2]) then
      return false
    end
  end
  return true
end
local all_plain = true
for _, op in ipairs(b.ops) do
  local kind, tok, at, pg = op[1], op[2], now - op[3], op[4]
  local r = vget(tok)
  if r then
    hold_on(r)
    settle(r)
  end
  local plain = plain_refresh(op, r)
  all_plain = all_plain and plain
  if kind <= 3 then -- HOLD, REFRESH, BEAT
    local deadline = ms(at + b.ttl)
    -- Counted among today's visitors already: online since a present operation
    -- today (its deadline is that operation's time + ttl), so in this month's
    -- and year's too.
    local counted = plain and DAY_START_MS and r.D - b.ttl * 1000 >= DAY_START_MS
    r = r or new_record(tok)
    if r.F == 'a' then
      local left = r.D
      if r.new then
        left = away_since(tok)
      end
      if left == nil or left + GAP_MS <= nowms then
        visits = visits + 1
      end
      r.F, r.D = 'o', deadline
      redis.call('INCR', onl)
      changed = true
    elseif deadline > r.D then
      r.D = deadline
    else
      -- Held on by its instance (hold_on) past this operation's own deadline: its
      -- pages and engagement ride on the visitor's, not expire on their own.
      deadline = r.D
    end
    if kind == 1 and not string.find(',' .. r.H .. ',', ',' .. me .. ',', 1, true) then
      r.H = r.H == '' and me or r.H .. ',' .. me
    end
    if op[6] ~= '' and r.A == '' then
      r.A = attr_code(op[6])
      local src, dev = string.match(op[6], '^(.*)|(.*)$')
      redis.call('HINCRBY', srcn, src, 1)
      redis.call('HINCRBY', devn, dev ~= '' and dev or 'unknown', 1)
    end
    if not counted then
      uv[#uv + 1] = tok
    end
    for _, page in ipairs(pg) do
      seen[page] = true
    end
    local opened = {} -- the page ids of this op
    for i, page in ipairs(pg) do
      local id = page_id(page, true)
      opened[i] = id
      local e = r.pg[id]
      if not e then
        r.pg[id] = {deadline, nil}
        r.order[#r.order + 1] = id
        redis.call('ZINCRBY', rank, -R, page)
        changed = true
        redis.call('ZADD', pages, now, page)
      elseif deadline > e[1] then
        e[1] = deadline
      end
    end
    if op[5] == 1 then
      if r.F ~= 'e' then
        r.F = 'e'
        redis.call('INCR', engn)
      end
      for i, id in ipairs(opened) do
        local e = r.pg[id]
        if not e[2] then
          e[2] = deadline
          redis.call('ZINCRBY', erank, 1, pg[i])
        elseif deadline > e[2] then
          e[2] = deadline
        end
      end
    elseif op[5] == 0 then
      if r.F == 'e' then
        r.F = 'o'
        redis.call('DECR', engn)
      end
      for _, id in ipairs(opened) do
        local e = r.pg[id]
        if e[2] then
          e[2] = nil
          engaged_gone(id)
        end
      end
    end
    vput(r)
  elseif r and kind == 4 then -- CLOSE_PAGES
    local deadline = ms(at + b.grace)
    for _, page in ipairs(pg) do
      pair_down(r, page_id(page, false), deadline)
    end
    vput(r)
  elseif r then -- LEAVE (5), BYE (6)
    local alive = {}
    if r.H ~= '' then
      for h in string.gmatch(r.H, '[^,]+') do
        if not (kind == 5 and h == me) then
          local d = redis.call('ZSCORE', inst, h)
          if d and tonumber(d) > now then
            alive[#alive + 1] = h
          end
        end
      end
    end
    r.H = table.concat(alive, ',')
    if #alive == 0 then
      local deadline = ms(at + b.grace)
      for _, page in ipairs(pg) do
        pair_down(r, page_id(page, false), deadline)
      end
      if r.F ~= 'a' and deadline < r.D then
        r.D = deadline
        if deadline <= nowms then
          gone(r)
        end
      end
    end
    vput(r)
  end
end

-- 2b. Plain refreshes alone, nothing due, nothing a snapshot shows changed, and
-- the instance holds the snapshot of this tag: what is left to do is the
-- drill-down's bucket of this minute for each page (3b), when it has none yet.
-- The rest would write nothing: no views, titles, visitors or timer slots, and
-- the history entry of this minute exists (a new minute makes the site due).
if all_plain and not expire and not changed and not wheel_moved and #uv == 0
    and #b.views == 0 and #b.titles == 0 and #b.ar == 0 and b.vt == 0 and not b.cs
    and tag and tag ~= '' and was_due ~= '' and b.kv == tag and not b.detail and not b.pm then
  local minute = math.floor(now / 60)
  local fresh = {}
  for page in pairs(seen) do
    local id = page_id(page, false)
    if id and redis.call('EXISTS', P .. 'pm:' .. minute .. ':' .. id) == 0 then
      fresh[page] = true
    end
  end
  if next(fresh) == nil then
    return cjson.encode({same = 1, v = tag, due = was_due, ts = string.format('%.6f', now),
                         lp = lapsed, old = unannounced_peer()})
  end
  seen = fresh -- a new bucket each: 3b below, then the whole script
end

-- 3. Views and titles. Views per minute go in buckets of 64 page ids.
if #b.views > 0 then
  changed = true
  local minute = math.floor(now / 60)
  local touched = {}
  local topk, top_added = P .. 'top:' .. b.day, false
  for _, pv in ipairs(b.views) do
    -- The day's views per page, for its top articles (a new page: trim, expire).
    if tonumber(redis.call('ZINCRBY', topk, pv[2], pv[1])) == pv[2] then
      top_added = true
    end
    local id = page_id(pv[1], true)
    redis.call('ZINCRBY', rank, -pv[2], pv[1])
    redis.call('ZADD', pages, now, pv[1])
    local part = minute .. ':' .. math.floor(tonumber(id, 36) / 64)
    redis.call('HINCRBY', P .. 'vb:' .. part, id, pv[2])
    if not touched[part] then
      touched[part] = true
      redis.call('ZADD', vbi, minute, part)
      redis.call('EXPIRE', P .. 'vb:' .. part, math.floor(b.win) + 180)
    end
  end
  if top_added then
    local n = redis.call('ZCARD', topk)
    if n > TOP_TODAY then
      redis.call('ZREMRANGEBYRANK', topk, 0, n - TOP_TODAY - 1)
    end
    redis.call('EXPIRE', topk, LONG_TTL)
  end
end
for _, pt in ipairs(b.titles) do
  -- Tracked pages only: the cap below then bounds titles too (excluded pages,
  -- goodbyes and HTTP beats name pages that are never tracked).
  if redis.call('ZSCORE', pages, pt[1]) and redis.call('HGET', titles, pt[1]) ~= pt[2] then
    redis.call('HSET', titles, pt[1], pt[2])
    changed = true
  end
end
local tracked = redis.call('ZCARD', pages)
if redis.call('HLEN', titles) > tracked then
  -- Titles of pages no longer tracked, left by versions before titles followed
  -- the cap: a random few checked per flush, until only tracked pages' remain.
  for _, page in ipairs(redis.call('HRANDFIELD', titles, 32)) do
    if not redis.call('ZSCORE', pages, page) then
      redis.call('HDEL', titles, page)
    end
  end
end
if tracked > b.cap then
  local evicted = redis.call('ZPOPMIN', pages, tracked - b.cap)
  for i = 1, #evicted, 2 do
    local page = evicted[i]
    redis.call('HDEL', titles, page)
    redis.call('ZREM', rank, page)
    changed = true
    redis.call('ZREM', erank, page)
    local id = redis.call('HGET', pid, page)
    if id then
      -- Pairs and view buckets still naming this id find no page and count nothing.
      redis.call('HDEL', pid, page)
      redis.call('HDEL', pname, id)
    end
  end
end

-- 3b. The drill-down's buckets, pm:<minute>:<page id> (store/page_minutes.py):
-- most readers and engaged readers of the pages present ops touched, and this
-- tick's views by source and device; only pages still tracked. The minute's
-- first flush (it is due then: section 5) gives every page read now its bucket:
-- visitors held by their instance (hold_on) send no operation to touch them.
do
  local minute = math.floor(now / 60)
  if not redis.call('HGET', P .. 'hist:' .. math.floor(minute / 1440), minute) then
    for _, page in ipairs(redis.call('ZRANGEBYSCORE', rank, '-inf', -R)) do
      seen[page] = true
    end
  end
  local function bucket(id)
    local key = P .. 'pm:' .. minute .. ':' .. id
    if redis.call('EXISTS', key) == 0 then
      redis.call('HSET', key, 'v', 0)
      redis.call('EXPIRE', key, b.pmt)
    end
    return key
  end
  for page in pairs(seen) do
    local id = redis.call('HGET', pid, page)
    if id then
      local key = bucket(id)
      local score = -tonumber(redis.call('ZSCORE', rank, page) or '0')
      local readers = math.floor(score / R)
      local engaged = tonumber(redis.call('ZSCORE', erank, page) or '0')
      local had = redis.call('HMGET', key, 'r', 'e')
      if readers > tonumber(had[1] or '0') then
        redis.call('HSET', key, 'r', readers)
      end
      if engaged > tonumber(had[2] or '0') then
        redis.call('HSET', key, 'e', engaged)
      end
    end
  end
  for _, a in ipairs(b.ar) do
    local id = redis.call('HGET', pid, a[1])
    if id then
      local key = bucket(id)
      local kind, previous = a[2], ''
      if string.sub(kind, 1, 9) == 'internal:' then
        kind, previous = 'internal:', string.sub(kind, 10)
      end
      redis.call('HINCRBY', key, 'v', a[4])
      redis.call('HINCRBY', key, 's:' .. kind, a[4])
      redis.call('HINCRBY', key, 'd:' .. (a[3] ~= '' and a[3] or 'unknown'), a[4])
      local from = previous ~= '' and redis.call('HGET', pid, previous)
      if from then
        redis.call('HINCRBY', key, 'i:' .. from, a[4])
      end
    end
  end
end

-- 4. Day counters and the per-minute history.
if visits > 0 or b.vt > 0 then
  changed = true
end
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
  if redis.call('PFADD', uvk, unpack(uv, i, math.min(i + 499, #uv))) == 1 then
    changed = true
  end
end
local online = math.max(0, tonumber(redis.call('GET', onl) or '0'))
local peak = tonumber(redis.call('HGET', dayk, 'peak_online') or '0')
if online > peak then
  redis.call('HSET', dayk, 'peak_online', online, 'peak_at', tostring(now))
  changed = true
end
if visits > 0 or b.vt > 0 or online > peak or #uv > 0 then
  redis.call('EXPIRE', dayk, LONG_TTL)
  redis.call('EXPIRE', uvk, DAY_TTL)
end

-- 4b. This month and this year (keys named by the local day's YYYYMM, YYYY),
-- and the day turn: the first flush of a day with anything to count makes the
-- day before a finished day, its visitors a number and its top pages TOP_DAY.
local monk, yrk = P .. 'mon:' .. string.sub(b.day, 1, 6), P .. 'yr:' .. string.sub(b.day, 1, 4)
local uvm, uvy = P .. 'uvm:' .. string.sub(b.day, 1, 6), P .. 'uvy:' .. string.sub(b.day, 1, 4)
for _, field in ipairs({{'visits', visits}, {'views', b.vt}}) do
  if field[2] > 0 then
    for _, pk in ipairs({{monk, MONTH_TTL}, {yrk, YEAR_TTL}}) do
      if tonumber(redis.call('HINCRBY', pk[1], field[1], field[2])) == field[2] then
        redis.call('EXPIRE', pk[1], pk[2])
      end
    end
  end
end
for i = 1, #uv, 500 do
  local chunk = {unpack(uv, i, math.min(i + 499, #uv))}
  if redis.call('PFADD', uvm, unpack(chunk)) == 1 then
    redis.call('EXPIRE', uvm, MONTH_TTL)
  end
  if redis.call('PFADD', uvy, unpack(chunk)) == 1 then
    redis.call('EXPIRE', uvy, YEAR_TTL)
  end
end
if visits > 0 or b.vt > 0 or #uv > 0 then
  local last = redis.call('GET', P .. 'today')
  -- Only forward: an instance whose clock is still on yesterday turns nothing.
  if not last or last < b.day then
    if last then
      local lastk = P .. 'day:' .. last
      if redis.call('EXISTS', lastk) == 1 then
        redis.call('HSET', lastk, 'visitors', redis.call('PFCOUNT', P .. 'uv:' .. last))
      end
      redis.call('DEL', P .. 'uv:' .. last)
      redis.call('ZREMRANGEBYRANK', P .. 'top:' .. last, 0, -TOP_DAY - 1)
    end
    redis.call('SET', P .. 'today', b.day)
    changed = true -- yesterday's visitors are now a number
    -- Days written by versions that kept them DAY_TTL (40 days) are kept as long
    -- as the others: the 40 days before today get the expiry they would have had
    -- (GT: an expiry is only ever lengthened).
    local y, m, d = tonumber(string.sub(b.day, 1, 4)), tonumber(string.sub(b.day, 5, 6)),
      tonumber(string.sub(b.day, 7, 8))
    for age = 1, 40 do
      d = d - 1
      if d == 0 then
        m = m - 1
        if m == 0 then m, y = 12, y - 1 end
        d = ({31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31})[m]
        if m == 2 and y % 4 == 0 and (y % 100 ~= 0 or y % 400 == 0) then d = 29 end
      end
      redis.call('EXPIRE', string.format('%sday:%04d%02d%02d', P, y, m, d),
        LONG_TTL - age * 86400, 'GT')
    end
  end
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

-- 5. The content's tag and when the site next has something due: a timer
-- slot, views leaving the window, or the next minute (its history entry). An
-- instance that already holds the snapshot of this tag gets only the tag.
local old_tag = tag
if changed or not tag or tag == '' then
  local epoch, n = string.match(tag or '', '^(.*)%.(%d+)$')
  if not epoch then
    epoch, n = b36(nowms), 0 -- a new series: no old tag can match it
  end
  tag = epoch .. '.' .. (tonumber(n) + 1)
end
local next_due = (this_minute + 1) * 60
local first_slot = redis.call('ZRANGE', dqi, 0, 0)[1]
if first_slot then
  next_due = math.min(next_due, EPOCH + tonumber(first_slot) * SLOT_MS / 1000)
end
local first_part = redis.call('ZRANGE', vbi, 0, 0, 'WITHSCORES')
if first_part[2] then
  local expires = (tonumber(first_part[2]) + 1) * 60 + b.win
  next_due = math.min(next_due, expires)
end
next_due = string.format('%.3f', next_due)
local state = tag .. '|' .. next_due
if state ~= old_state then
  redis.call('SET', st, state)
  -- A later DUE alone is not announced: an instance that still expects the old
  -- one reads `st` then, and finds the new one (one read, not a message to every
  -- instance each time a timer moves on).
  if b.pub and (tag ~= old_tag or not was_due or was_due == ''
                or tonumber(next_due) < tonumber(was_due)) then
    redis.call(b.pub, st, string.format('%.6f', now) .. '|' .. state)
  end
end
if b.kv == tag and not b.detail and not b.pm then
  return cjson.encode({same = 1, v = tag, due = next_due, ts = string.format('%.6f', now),
                       lp = lapsed, old = unannounced_peer()})
end

-- 6. The snapshot.
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
  local d = redis.call('HMGET', key, 'visits', 'views', 'peak_online', 'peak_at', 'visitors')
  -- A finished day's visitors were counted at the day turn (4b).
  local visitors = tonumber(d[5]) or redis.call('PFCOUNT', hll)
  return {tonumber(d[1] or '0'), tonumber(d[2] or '0'), visitors,
          tonumber(d[3] or '0'), d[4] or false}
end

local function period(key, hll)
  local d = redis.call('HMGET', key, 'visits', 'views')
  return {tonumber(d[1] or '0'), tonumber(d[2] or '0'), redis.call('PFCOUNT', hll)}
end

local answer = {
  online = online,
  trending = top(b.n),
  today = day_counts(dayk, uvk),
  total = tonumber(redis.call('GET', total) or '0'),
  ts = string.format('%.6f', now),
  lp = lapsed,
  v = tag,
  due = next_due,
  old = unannounced_peer(),
}
if b.y ~= false then
  answer.yesterday = day_counts(P .. 'day:' .. b.y, P .. 'uv:' .. b.y)
end
if b.detail or b.pm then
  answer.month = period(monk, uvm)
  answer.year = period(yrk, uvy)
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
    engaged = math.max(0, tonumber(redis.call('GET', engn) or '0')),
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
