"""What lua/flush.lua answers, read into the domain's values: a site's
`SiteSnapshot` (with its dashboard `SiteDetail`, month and year) from the
script's JSON reply, plus the small conversions the Redis store's other
reads share."""

from __future__ import annotations

import time
from typing import Any

from .base import DayCounts, PeriodCounts, SiteDetail, SiteSnapshot, TrendingPage


def snapshot_from_reply(site: str, data: dict[str, Any]) -> SiteSnapshot:
    """The snapshot in a flush script's reply (`data`, its decoded JSON)."""
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


def as_list(value: Any) -> list[Any]:
    """A Lua array as a list; cjson encodes an empty Lua table as {}."""
    return value if isinstance(value, list) else []


def text(value: bytes | str) -> str:
    """A Redis reply as text, whether the client decodes replies or not."""
    return value.decode() if isinstance(value, bytes) else value


def _day(raw: list[Any]) -> DayCounts:
    visits, views, visitors, peak, peak_at = raw
    return DayCounts(
        int(visits), int(views), int(visitors), int(peak), float(peak_at) if peak_at else None
    )


def _pages(raw: Any) -> tuple[TrendingPage, ...]:
    return tuple(TrendingPage(str(p), str(t), int(r), int(v)) for p, t, r, v in as_list(raw))


def _flat_counts(raw: Any) -> dict[str, int]:
    flat = as_list(raw)
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
            p.path: int(n) for p, n in zip(pages, as_list(raw["page_engaged"]), strict=False)
        },
        sources=_flat_counts(raw["sources"]),
        devices=_flat_counts(raw["devices"]),
        minutes=tuple((float(m), int(n)) for m, n in as_list(raw["minutes"])),
        hours_today=_hours(raw["hours_today"]),
        hours_yesterday=_hours(raw["hours_yesterday"]),
    )
