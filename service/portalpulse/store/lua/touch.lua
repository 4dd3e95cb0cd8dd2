-- A touch: renew this instance's deadline in a site's `inst` set to ARGV[2],
-- but only while it is live there at ARGV[3] (store time). An instance that
-- lapsed must not bring back, unseen, the visitors whose holder was gone: it
-- flushes instead, which lets them go, then holds its own again (flush.lua's
-- `lp`, store/redis_flush.py).
-- KEYS: 1 inst. ARGV: 1 instance id, 2 its new deadline, 3 now.
local live = redis.call('ZSCORE', KEYS[1], ARGV[1])
if live and tonumber(live) > tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
  return 1
end
return 0
