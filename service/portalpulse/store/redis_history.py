"""Reads of the long history on Redis (written by lua/flush.lua, step 4b):
days, a day's top pages, this month and this year. Each is one pipeline on
keys of one site, so one Redis Cluster slot."""

from __future__ import annotations

import datetime as dt
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from .base import DayCounts, PeriodCounts

Client = Redis | RedisCluster
DAY_FIELDS = ("visits", "views", "peak_online", "peak_at", "visitors")


def day_range(first: str, last: str) -> list[str]:
    """Every YYYYMMDD from `first` to `last`, both included."""
    start = dt.datetime.strptime(first, "%Y%m%d").date()
    end = dt.datetime.strptime(last, "%Y%m%d").date()
    return [
        (start + dt.timedelta(days=n)).strftime("%Y%m%d") for n in range((end - start).days + 1)
    ]


def _int(value: Any) -> int:
    return int(value) if value is not None else 0


async def read_days(
    client: Client, prefix: str, first: str, last: str
) -> list[tuple[str, DayCounts]]:
    days = day_range(first, last)
    pipe = client.pipeline(transaction=False)
    for day in days:
        pipe.hmget(f"{prefix}day:{day}", *DAY_FIELDS)
        # Today (and a day not yet turned) still counts its visitors in a HyperLogLog.
        pipe.execute_command("PFCOUNT", f"{prefix}uv:{day}")  # ClusterPipeline blocks .pfcount()
    results = await pipe.execute()
    out = []
    for index, day in enumerate(days):
        visits, views, peak, peak_at, visitors = results[2 * index]
        if visits is None and views is None and peak is None:
            continue
        unique = _int(visitors) if visitors is not None else int(results[2 * index + 1])
        at = float(peak_at) if peak_at else None
        out.append((day, DayCounts(_int(visits), _int(views), unique, _int(peak), at)))
    return out


async def read_top_pages(
    client: Client, prefix: str, day: str, limit: int
) -> list[tuple[str, str, int]]:
    ranked: list[Any] = await client.zrevrange(f"{prefix}top:{day}", 0, limit - 1, withscores=True)
    if not ranked:
        return []
    paths = [p.decode() if isinstance(p, bytes) else str(p) for p, _ in ranked]
    titles = await client.hmget(f"{prefix}titles", paths)
    return [
        (path, (title.decode() if isinstance(title, bytes) else title or ""), int(views))
        for path, title, (_, views) in zip(paths, titles, ranked, strict=True)
    ]


async def read_periods(client: Client, prefix: str, day: str) -> tuple[PeriodCounts, PeriodCounts]:
    pipe = client.pipeline(transaction=False)
    for hash_key, hll in (("mon:", "uvm:"), ("yr:", "uvy:")):
        size = 6 if hash_key == "mon:" else 4
        pipe.hmget(f"{prefix}{hash_key}{day[:size]}", "visits", "views")
        pipe.execute_command(
            "PFCOUNT", f"{prefix}{hll}{day[:size]}"
        )  # ClusterPipeline blocks .pfcount()
    (mv, mviews), month_visitors, (yv, yviews), year_visitors = await pipe.execute()
    return (
        PeriodCounts(_int(mv), _int(mviews), int(month_visitors)),
        PeriodCounts(_int(yv), _int(yviews), int(year_visitors)),
    )
