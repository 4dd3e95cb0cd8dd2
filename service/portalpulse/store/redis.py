"""The Redis store: one Redis, or a Redis Cluster (found out from the server).

This module connects and answers the reads; the rest lives beside it:
- `redis_flush.py`: the tick's flush (lua/flush.lua) and the quiet-site check,
- `redis_feed.py`: what Redis announces of each site, so quiet sites need no read,
- `redis_replies.py`: the script's replies read into snapshots,
- `redis_history.py`: days, top pages, months and years,
- `redis_shared.py`: once-claims, event logs and notes every instance shares.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Collection, Iterator, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from . import redis_shared as shared
from .base import (
    HISTORY_MINUTES,
    DayCounts,
    PeriodCounts,
    SiteBatch,
    SiteSnapshot,
    Store,
    StoreUnavailable,
)
from .page_minutes import PAGE_MINUTES, PageDetail, detail_from_buckets
from .redis_feed import Feed
from .redis_flush import Flusher, new_instance_id, site_prefix
from .redis_history import read_days, read_periods, read_top_pages
from .redis_replies import text

__all__ = ["POOL_SIZE", "TIMEOUT", "RedisStore", "site_prefix", "unavailable_on_error"]

log = logging.getLogger("portalpulse.store")

TIMEOUT = 5.0
POOL_SIZE = 32
"""Connections to one Redis per process; a caller beyond them waits (up to TIMEOUT)
where redis-py's default pool fails ("Too many connections"). Why so few suffice:
docs/OPERATIONS.md, "Connections per replica"."""


@contextlib.contextmanager
def unavailable_on_error() -> Iterator[None]:
    """Redis or network errors become `StoreUnavailable`, which callers handle."""
    try:
        yield
    except (RedisError, OSError) as exc:
        raise StoreUnavailable(str(exc) or type(exc).__name__) from exc


class RedisStore(Store):
    def __init__(self, url: str, clock_offset: float = 0.0, follow: bool = True) -> None:
        self.url = url
        self.instance_id = new_instance_id()
        self.flusher = Flusher(self.instance_id, clock_offset)
        self.follow = follow  # False: read every quiet site's `st` each tick, as before
        self.client: aioredis.Redis | RedisCluster | None = None
        self.cluster = False
        self._connecting = asyncio.Lock()

    holds_by_instance = True

    def holds(self, site: str) -> bool:
        # Not while an instance of an older version shares the site: its flushes
        # would let visitors held by this one go at their deadline.
        known = self.flusher.known.get(site)
        return known is None or not known.unannounced

    def take_lapsed(self) -> Collection[str]:
        lapsed = self.flusher.lapsed
        if not lapsed:
            return ()
        self.flusher.lapsed = set()
        return lapsed

    def quiet_until(self, site: str) -> float:
        return self.flusher.quiet_until(site)

    def take_woken(self) -> Collection[str]:
        return self.flusher.take_woken()

    def renew_identity(self) -> None:
        self.instance_id = self.flusher.instance_id = new_instance_id()
        log.warning(
            "store: operations were dropped; holding visitors again as %s", self.instance_id
        )

    @property
    def clock_offset(self) -> float:
        """Seconds added to the store's clock (tests move time with it); the
        flusher's, which sends it to the script."""
        return self.flusher.clock_offset

    @clock_offset.setter
    def clock_offset(self, seconds: float) -> None:
        self.flusher.clock_offset = seconds
        self.flusher.wake_all()  # what was due later may be due now

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
        await self.flusher.load_script(client)
        self.flusher.publish = "SPUBLISH" if self.cluster else "PUBLISH"
        if self.follow and self.flusher.feed is None:
            self.flusher.feed = Feed(self.url, options)
        self.client = client
        log.info("store: %s at %s", "redis cluster" if self.cluster else "redis", self._safe_url())
        return client

    async def close(self) -> None:
        feed, self.flusher.feed = self.flusher.feed, None
        if feed is not None:
            await feed.close()
        if self.client is not None:
            await self.client.aclose()
            self.client = None

    def store_now(self) -> float:
        """The store's clock now (with `clock_offset`), as last seen by a flush."""
        return self.flusher.store_now()

    async def flush(self, batches: Sequence[SiteBatch]) -> list[SiteSnapshot]:
        if not batches:
            return []
        with unavailable_on_error():
            client = await self._connect()
            return await self.flusher.flush(client, self.cluster, batches)

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
                pipe.hgetall(f"{prefix}pm:{minute}:{text(found)}")
            raw = await pipe.execute()
            buckets = [
                (minute, {text(k): int(v) for k, v in fields.items()})
                for minute, fields in zip(minutes, raw, strict=True)
                if fields
            ]
            previous = sorted({k[2:] for _, f in buckets for k in f if k.startswith("i:")})
            names = await client.hmget(f"{prefix}pname", previous) if previous else []
        page_of = {i: text(n) for i, n in zip(previous, names, strict=True) if n is not None}
        return detail_from_buckets(page, text(title or ""), buckets, page_of)

    async def ping(self) -> None:
        with unavailable_on_error():
            client = await self._connect()
            await client.ping()

    # Shared across instances: redis_shared.py.

    async def claim_once(self, name: str, seconds: float) -> bool:
        with unavailable_on_error():
            return await shared.claim_once(await self._connect(), name, seconds)

    async def recent_events(self, name: str, now: float, window: float) -> list[float] | None:
        with unavailable_on_error():
            return await shared.recent_events(await self._connect(), name, now, window)

    async def add_event(self, name: str, now: float, window: float) -> None:
        with unavailable_on_error():
            await shared.add_event(await self._connect(), name, now, window)

    async def take_event(
        self, name: str, now: float, window: float, limit: int
    ) -> list[float] | None:
        with unavailable_on_error():
            return await shared.take_event(await self._connect(), name, now, window, limit)

    async def note(self, name: str) -> str | None:
        with unavailable_on_error():
            return await shared.note(await self._connect(), name)

    async def set_note(self, name: str, value: str) -> None:
        with unavailable_on_error():
            await shared.set_note(await self._connect(), name, value)

    async def clear_events(self, name: str) -> None:
        with unavailable_on_error():
            await shared.clear_events(await self._connect(), name)
