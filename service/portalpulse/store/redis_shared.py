"""What every instance shares on Redis beside the sites' keys: once-claims
(`claim_once`), event logs (the dashboard's failed sign-ins per address) and
notes (the newest dashboard token list). Each function takes the connected
client; `RedisStore` turns Redis errors into `StoreUnavailable`."""

from __future__ import annotations

import hashlib
import math
import uuid

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from .redis_replies import as_list

Client = Redis | RedisCluster

EVENTS_KEPT = 50  # at most this many events per name

# Check and log in one step: a burst of concurrent callers is counted one by one.
# Answers nothing when the event was logged, else the times of the logged events.
TAKE_EVENT = """
local key, now, window, limit = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
if redis.call('ZCARD', key) >= limit then
  local out = {}
  for i, at in ipairs(redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')) do
    if i % 2 == 0 then out[#out + 1] = at end
  end
  return out
end
redis.call('ZADD', key, now, ARGV[4])
redis.call('EXPIRE', key, math.ceil(window))
return {}
"""


def _events_key(name: str) -> str:
    return "pp:ev:" + hashlib.sha256(name.encode()).hexdigest()[:24]


def _event_member(now: float) -> str:
    return f"{now:.6f}:{uuid.uuid4().hex[:8]}"


async def claim_once(client: Client, name: str, seconds: float) -> bool:
    key = "pp:once:" + hashlib.sha256(name.encode()).hexdigest()[:24]
    won = await client.set(key, "1", nx=True, px=max(1, int(seconds * 1000)))
    return bool(won)


async def recent_events(client: Client, name: str, now: float, window: float) -> list[float]:
    key = _events_key(name)
    pipe = client.pipeline(transaction=False)
    pipe.zremrangebyscore(key, "-inf", now - window)
    pipe.zrange(key, 0, -1, withscores=True)
    _, events = await pipe.execute()
    return [float(at) for _, at in events]


async def add_event(client: Client, name: str, now: float, window: float) -> None:
    key = _events_key(name)
    pipe = client.pipeline(transaction=False)
    pipe.zadd(key, {_event_member(now): now})
    pipe.zremrangebyrank(key, 0, -EVENTS_KEPT - 1)
    pipe.expire(key, max(1, math.ceil(window)))
    await pipe.execute()


async def take_event(
    client: Client, name: str, now: float, window: float, limit: int
) -> list[float]:
    key, member = _events_key(name), _event_member(now)
    raw = await client.eval(TAKE_EVENT, 1, key, repr(now), repr(window), limit, member)
    return [float(at) for at in as_list(raw)]


async def clear_events(client: Client, name: str) -> None:
    await client.delete(_events_key(name))


async def note(client: Client, name: str) -> str | None:
    raw = await client.get("pp:note:" + name)
    return raw.decode() if isinstance(raw, bytes) else raw


async def set_note(client: Client, name: str, value: str) -> None:
    await client.set("pp:note:" + name, value)
