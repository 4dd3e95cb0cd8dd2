"""The Redis store: one Redis, or a Redis Cluster (found out from the server).

Each site's flush is one EVALSHA of lua/flush.lua on keys that share the
hash tag `{site}`; all sites of a tick go in one pipeline, so a tick costs one
round trip per Redis node whatever the number of beats.

A quiet site costs almost nothing: a site with nothing new from this instance,
nothing due to expire and a snapshot already held is checked with one key read
(all such sites in one MGET), and flushed only when another instance changed
what its snapshot shows (see `Known`).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import math
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from importlib import resources
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import NoScriptError, RedisError, ResponseError

from .base import (
    DETAIL_MINUTES,
    DETAIL_PAGES,
    HISTORY_MINUTES,
    DayCounts,
    PeriodCounts,
    SiteBatch,
    SiteDetail,
    SiteSnapshot,
    Store,
    StoreUnavailable,
    TrendingPage,
)
from .page_minutes import BUCKET_TTL, PAGE_MINUTES, PageDetail, detail_from_buckets
from .redis_history import read_days, read_periods, read_top_pages

log = logging.getLogger("portalpulse.store")

FLUSH_SCRIPT = resources.files("portalpulse.store").joinpath("lua/flush.lua").read_text("utf-8")
KEY_NAMES = (
    "inst", "rank", "pages", "titles", "total", "onl", "engn", "erank",
    "srcn", "devn", "pid", "pname", "dqi", "vbi", "codes", "st",
)  # fmt: skip
TIMEOUT = 5.0
POOL_SIZE = 32
"""Connections to one Redis per process; a caller beyond them waits (up to TIMEOUT)
where redis-py's default pool fails ("Too many connections"). Why so few suffice:
docs/OPERATIONS.md, "Connections per replica"."""


@dataclass(slots=True)
class Known:
    """The last snapshot this instance read of a site, and what makes it stale.

    The flush script names the content of every snapshot with a tag kept in the
    site's `st` key, beside the store time when the site next has something due
    (a visitor's deadline, views leaving the trending window, the next minute's
    history entry). Whichever instance reads first that it is due runs the
    script; the others then read the new tag and due time.

    This instance need not flush to stay listed as live in the site's `inst`
    set: it holds visitors there only through connections, whose REFRESH
    operations come well within `presence_ttl`."""

    tag: str
    due: float  # store time
    shape: tuple[object, ...]  # what the batch asked for: `_shape`
    flushed: float  # store time of the flush that answered `snapshot`
    snapshot: SiteSnapshot

    def holds(self, batch: SiteBatch) -> bool:
        """Whether `batch` may be answered from this snapshot if the tag is unchanged
        and nothing is due."""
        return (
            not batch.ops
            and not batch.views
            and not batch.total_views
            and not batch.titles
            and not batch.detail
            and not batch.periods
            and not batch.arrivals
            and not batch.counter_sets
            and _shape(batch) == self.shape
        )


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


def visitor_token(visitor: str) -> str:
    """What Redis keeps of a visitor id: 10 characters (60 bits) of its BLAKE2b hash.

    Shorter than most ids, so records stay small. The chance that any two of a
    million visitors share a token is below one in a million."""
    digest = hashlib.blake2b(visitor.encode(), digest_size=8).digest()
    return base64.urlsafe_b64encode(digest).decode()[:10]


@contextlib.contextmanager
def unavailable_on_error() -> Iterator[None]:
    """Redis or network errors become `StoreUnavailable`, which callers handle."""
    try:
        yield
    except (RedisError, OSError) as exc:
        raise StoreUnavailable(str(exc) or type(exc).__name__) from exc


def site_prefix(site: str) -> str:
    """Every key of a site starts with this: the hash tag keeps a site on one slot."""
    return f"pp:{{{site}}}:"


class RedisStore(Store):
    def __init__(self, url: str, clock_offset: float = 0.0) -> None:
        self.url = url
        self.instance_id = uuid.uuid4().hex[:8]
        self.clock_offset = clock_offset
        self.client: aioredis.Redis | RedisCluster | None = None
        self.cluster = False
        self._sha = ""
        self._connecting = asyncio.Lock()
        # Per configured site (never keyed by client input).
        self.known: dict[str, Known] = {}
        # The store's clock minus this machine's (clock_offset aside), from the
        # `ts` of flushes: tells when a site is due without asking the store.
        self._skew = 0.0

    async def open(self) -> None:
        """Connect; a store that is down at start-up is retried by every later call."""
        try:
            await self._connect()
        except (RedisError, OSError) as exc:
            log.warning("redis at %s is not reachable yet: %s", self._safe_url(), exc)

    def _safe_url(self) -> str:
        # Never log a password.
        if "@" in self.url:
            scheme, _, rest = self.url.partition("://")
            return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
        return self.url

    async def _connect(self) -> aioredis.Redis | RedisCluster:
        if self.client is not None:
            return self.client
        async with self._connecting:  # callers at start-up share one client
            if self.client is not None:
                return self.client
            return await self._new_client()

    async def _new_client(self) -> aioredis.Redis | RedisCluster:
        options: dict[str, Any] = {
            "socket_timeout": TIMEOUT,
            "socket_connect_timeout": TIMEOUT,
            "health_check_interval": 15,
        }
        probe = aioredis.Redis.from_url(self.url, **options)
        try:
            info = await probe.info("cluster")
        finally:
            await probe.aclose()
        client: aioredis.Redis | RedisCluster
        if info.get("cluster_enabled") in (1, "1"):
            client = RedisCluster.from_url(self.url, **options)
            await client.initialize()
            self.cluster = True
        else:
            pool = aioredis.BlockingConnectionPool.from_url(
                self.url, max_connections=POOL_SIZE, timeout=TIMEOUT, **options
            )
            client = aioredis.Redis.from_pool(pool)
        self._sha = await client.script_load(FLUSH_SCRIPT)
        self.client = client
        log.info("store: %s at %s", "redis cluster" if self.cluster else "redis", self._safe_url())
        return client

    async def close(self) -> None:
        if self.client is not None:
            await self.client.aclose()
            self.client = None

    async def history(self, site: str, minutes: int) -> list[tuple[float, int]]:
        minutes = max(1, min(minutes, HISTORY_MINUTES))
        with unavailable_on_error():
            client = await self._connect()
            (seconds, micros) = await client.time()
            last = int((seconds + micros / 1e6 + self.clock_offset) // 60)
            first = last - minutes + 1
            prefix = site_prefix(site)
            pipe = client.pipeline(transaction=False)
            days = range(first // 1440, last // 1440 + 1)
            for day in days:
                pipe.hgetall(f"{prefix}hist:{day}")
            results = await pipe.execute()
        seen: dict[int, int] = {}
        for fields in results:
            for minute, online in fields.items():
                seen[int(minute)] = int(online)
        return [(m * 60.0, seen[m]) for m in range(first, last + 1) if m in seen]

    async def days(self, site: str, first: str, last: str) -> list[tuple[str, DayCounts]]:
        with unavailable_on_error():
            return await read_days(await self._connect(), site_prefix(site), first, last)

    async def top_pages(self, site: str, day: str, limit: int) -> list[tuple[str, str, int]]:
        with unavailable_on_error():
            return await read_top_pages(await self._connect(), site_prefix(site), day, limit)

    async def periods(self, site: str, day: str) -> tuple[PeriodCounts, PeriodCounts]:
        with unavailable_on_error():
            return await read_periods(await self._connect(), site_prefix(site), day)

    async def claim_once(self, name: str, seconds: float) -> bool:
        key = "pp:once:" + hashlib.sha256(name.encode()).hexdigest()[:24]
        with unavailable_on_error():
            client = await self._connect()
            won = await client.set(key, "1", nx=True, px=max(1, int(seconds * 1000)))
        return bool(won)

    async def page_detail(self, site: str, page: str) -> PageDetail | None:
        prefix = site_prefix(site)
        with unavailable_on_error():
            client = await self._connect()
            (seconds, micros) = await client.time()
            pipe = client.pipeline(transaction=False)
            pipe.hget(f"{prefix}pid", page)
            pipe.hget(f"{prefix}titles", page)
            found, title = await pipe.execute()
            if found is None:
                return None
            last = int((seconds + micros / 1e6 + self.clock_offset) // 60)
            minutes = range(last - PAGE_MINUTES + 1, last + 1)
            pipe = client.pipeline(transaction=False)
            for minute in minutes:
                pipe.hgetall(f"{prefix}pm:{minute}:{_text(found)}")
            raw = await pipe.execute()
            buckets = [
                (minute, {_text(k): int(v) for k, v in fields.items()})
                for minute, fields in zip(minutes, raw, strict=True)
                if fields
            ]
            previous = sorted({k[2:] for _, f in buckets for k in f if k.startswith("i:")})
            names = await client.hmget(f"{prefix}pname", previous) if previous else []
        page_of = {i: _text(n) for i, n in zip(previous, names, strict=True) if n is not None}
        return detail_from_buckets(page, _text(title or ""), buckets, page_of)

    async def ping(self) -> None:
        with unavailable_on_error():
            client = await self._connect()
            await client.ping()

    EVENTS_KEPT = 50  # at most this many events per name

    @staticmethod
    def _events_key(name: str) -> str:
        return "pp:ev:" + hashlib.sha256(name.encode()).hexdigest()[:24]

    async def recent_events(self, name: str, now: float, window: float) -> list[float] | None:
        key = self._events_key(name)
        with unavailable_on_error():
            client = await self._connect()
            pipe = client.pipeline(transaction=False)
            pipe.zremrangebyscore(key, "-inf", now - window)
            pipe.zrange(key, 0, -1, withscores=True)
            _, events = await pipe.execute()
        return [float(at) for _, at in events]

    async def add_event(self, name: str, now: float, window: float) -> None:
        key = self._events_key(name)
        with unavailable_on_error():
            client = await self._connect()
            pipe = client.pipeline(transaction=False)
            pipe.zadd(key, {f"{now:.6f}:{uuid.uuid4().hex[:8]}": now})
            pipe.zremrangebyrank(key, 0, -self.EVENTS_KEPT - 1)
            pipe.expire(key, max(1, math.ceil(window)))
            await pipe.execute()

    async def take_event(
        self, name: str, now: float, window: float, limit: int
    ) -> list[float] | None:
        member = f"{now:.6f}:{uuid.uuid4().hex[:8]}"
        with unavailable_on_error():
            client = await self._connect()
            raw = await client.eval(
                TAKE_EVENT, 1, self._events_key(name), repr(now), repr(window), limit, member
            )
        return [float(at) for at in _list(raw)]

    async def note(self, name: str) -> str | None:
        with unavailable_on_error():
            client = await self._connect()
            raw = await client.get("pp:note:" + name)
        return raw.decode() if isinstance(raw, bytes) else raw

    async def set_note(self, name: str, value: str) -> None:
        with unavailable_on_error():
            client = await self._connect()
            await client.set("pp:note:" + name, value)

    async def clear_events(self, name: str) -> None:
        with unavailable_on_error():
            client = await self._connect()
            await client.delete(self._events_key(name))

    def _args(self, batch: SiteBatch, known: str) -> tuple[list[str], list[str]]:
        prefix = site_prefix(batch.site)
        keys = [prefix + name for name in KEY_NAMES]
        payload = {
            "kv": known,
            "i": self.instance_id,
            "off": self.clock_offset,
            "ttl": batch.presence_ttl,
            "grace": batch.leave_grace,
            "win": batch.trending_window,
            "n": batch.trending_size,
            "cap": batch.max_pages,
            "day": batch.day,
            "y": batch.yesterday if batch.want_yesterday or batch.detail else False,
            "hour": batch.hour,
            "detail": batch.detail,
            "pm": batch.periods,
            "dn": DETAIL_PAGES,
            "dm": DETAIL_MINUTES,
            "ops": [
                [
                    int(op.kind),
                    visitor_token(op.visitor),
                    round(op.age, 3),
                    list(op.pages),
                    -1 if op.engaged is None else int(op.engaged),
                    op.attrs.packed() if op.attrs is not None else "",
                ]
                for op in batch.ops
            ],
            "titles": [[page, title] for page, title in batch.titles.items()],
            "pmt": BUCKET_TTL,
        }
        if batch.counter_sets:
            # The views go in their sets: the script counts each set once (flush.lua).
            payload["views"], payload["vt"], payload["ar"] = [], 0, []
            payload["cs"] = [
                [
                    counted.token,
                    [[page, n] for page, n in counted.views.items()],
                    counted.total_views,
                    [[*key, n] for key, n in counted.arrivals.items()],
                ]
                for counted in batch.counter_sets
            ]
        else:
            payload["views"] = [[page, n] for page, n in batch.views.items()]
            payload["vt"] = batch.total_views
            payload["ar"] = [[*key, n] for key, n in batch.arrivals.items()]
        return keys, [prefix, json.dumps(payload, ensure_ascii=False, separators=(",", ":"))]

    def store_now(self) -> float:
        """The store's clock now (with `clock_offset`), as last seen by a flush."""
        return time.time() + self._skew + self.clock_offset

    async def flush(self, batches: Sequence[SiteBatch]) -> list[SiteSnapshot]:
        if not batches:
            return []
        now = self.store_now()
        answers: list[SiteSnapshot | None] = [None] * len(batches)
        with unavailable_on_error():
            client = await self._connect()
            quiet = [
                i
                for i, batch in enumerate(batches)
                if (known := self.known.get(batch.site)) is not None and known.holds(batch)
            ]
            if quiet:
                await self._check_quiet(client, batches, quiet, answers, now)
            rest = [i for i, answer in enumerate(answers) if answer is None]
            if rest:
                await self._flush_scripts(client, [batches[i] for i in rest], rest, answers)
        return [answer for answer in answers if answer is not None]

    async def _check_quiet(
        self,
        client: aioredis.Redis | RedisCluster,
        batches: Sequence[SiteBatch],
        quiet: list[int],
        answers: list[SiteSnapshot | None],
        now: float,
    ) -> None:
        """Answer the quiet sites whose tag is unchanged from the snapshot held."""
        keys = [site_prefix(batches[i].site) + "st" for i in quiet]
        if self.cluster:
            pipe = client.pipeline(transaction=False)
            for key in keys:
                pipe.get(key)
            states: list[Any] = await pipe.execute()
        else:
            # One command for every quiet site: cheaper for Redis than one read each.
            states = await client.mget(keys)
        ts = round(self.store_now(), 3)
        for i, state in zip(quiet, states, strict=True):
            if state is None:
                continue
            known = self.known[batches[i].site]
            tag, _, due = _text(state).partition("|")
            # Due as read now: whichever instance read it first has run it.
            known.due = float(due) if due else 0.0
            if tag == known.tag and now < known.due:
                answers[i] = replace(known.snapshot, ts=ts)

    async def _flush_scripts(
        self,
        client: aioredis.Redis | RedisCluster,
        batches: list[SiteBatch],
        places: list[int],
        answers: list[SiteSnapshot | None],
    ) -> None:
        calls, held = [], []
        for batch in batches:
            known = self.known.get(batch.site)
            if known is None or known.shape != _shape(batch) or batch.detail or batch.periods:
                known = None
            held.append(known)
            calls.append(self._args(batch, known.tag if known is not None else ""))
        pipe = client.pipeline(transaction=False)
        for keys, args in calls:
            # ClusterPipeline refuses .evalsha(); the raw command routes by its keys.
            pipe.execute_command("EVALSHA", self._sha, len(keys), *keys, *args)
        results: list[Any] = await pipe.execute(raise_on_error=False)
        for index, result in enumerate(results):
            if isinstance(result, NoScriptError) or (
                isinstance(result, ResponseError) and "NOSCRIPT" in str(result)
            ):
                # A restarted or failed-over Redis forgot the script: load it again.
                self._sha = await client.script_load(FLUSH_SCRIPT)
                keys, args = calls[index]
                results[index] = await client.evalsha(self._sha, len(keys), *keys, *args)
        for batch, place, known, result in zip(batches, places, held, results, strict=True):
            if isinstance(result, Exception):
                raise StoreUnavailable(f"flush of {batch.site}: {result}")
            answers[place] = self._answer(batch, known, json.loads(result))

    def _answer(self, batch: SiteBatch, known: Known | None, data: dict[str, Any]) -> SiteSnapshot:
        """The snapshot a script answered, or the one held when it answered `same`
        (only to the flush that named the held snapshot's tag)."""
        ts = float(data["ts"])
        self._skew = ts - self.clock_offset - time.time()
        if data.get("same") and known is not None:
            snapshot = replace(known.snapshot, ts=ts)
        else:
            snapshot = _snapshot(batch.site, data)
        latest = self.known.get(batch.site)
        if latest is None or latest.flushed <= ts:
            # Kept for quiet flushes, which ask for no detail and no month or year: a
            # dashboard's extras would be stale by then.
            kept = replace(snapshot, detail=None, month=None, year=None)
            self.known[batch.site] = Known(
                str(data["v"]), float(data["due"]), _shape(batch), ts, kept
            )
        return snapshot


def _day(raw: list[Any]) -> DayCounts:
    visits, views, visitors, peak, peak_at = raw
    return DayCounts(
        int(visits), int(views), int(visitors), int(peak), float(peak_at) if peak_at else None
    )


def _list(value: Any) -> list[Any]:
    # cjson encodes an empty Lua table as {}.
    return value if isinstance(value, list) else []


def _pages(raw: Any) -> tuple[TrendingPage, ...]:
    return tuple(TrendingPage(str(p), str(t), int(r), int(v)) for p, t, r, v in _list(raw))


def _flat_counts(raw: Any) -> dict[str, int]:
    flat = _list(raw)
    return {str(flat[i]): int(flat[i + 1]) for i in range(0, len(flat), 2)}


def _hours(raw: Any) -> tuple[int, ...]:
    hours = [0] * 24
    for hour, n in _flat_counts(raw).items():
        hours[int(hour)] = n
    return tuple(hours)


def _detail(raw: dict[str, Any]) -> SiteDetail:
    pages = _pages(raw["pages"])
    return SiteDetail(
        engaged=int(raw["engaged"]),
        pages=pages,
        page_engaged={
            p.path: int(n) for p, n in zip(pages, _list(raw["page_engaged"]), strict=False)
        },
        sources=_flat_counts(raw["sources"]),
        devices=_flat_counts(raw["devices"]),
        minutes=tuple((float(m), int(n)) for m, n in _list(raw["minutes"])),
        hours_today=_hours(raw["hours_today"]),
        hours_yesterday=_hours(raw["hours_yesterday"]),
    )


def _shape(batch: SiteBatch) -> tuple[object, ...]:
    """What a snapshot depends on besides the store: the day, and what was asked."""
    return (batch.day, batch.trending_size, batch.want_yesterday and batch.yesterday)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _snapshot(site: str, data: dict[str, Any]) -> SiteSnapshot:
    return SiteSnapshot(
        site=site,
        online=int(data["online"]),
        trending=_pages(data["trending"]),
        today=_day(data["today"]),
        total_visits=int(data["total"]),
        ts=float(data["ts"]) if data.get("ts") else time.time(),
        yesterday=_day(data["yesterday"]) if "yesterday" in data else None,
        detail=_detail(data["detail"]) if "detail" in data else None,
        month=PeriodCounts(*map(int, data["month"])) if "month" in data else None,
        year=PeriodCounts(*map(int, data["year"])) if "year" in data else None,
    )
