"""The embedded store's long memory of a site: views per page per day (the day's
top articles) and distinct visitors per month and per year. The day counters
themselves live in presence.py's `Day`; this module adds what the history
view, its CSV and the month/year counters need, bounded like the Redis
layout (lua/flush.lua): today keeps `TOP_PAGES_TODAY` pages, a finished day
its `TOP_PAGES_DAY`, and nothing is kept past `DAY_KEEP_DAYS`.
"""

from __future__ import annotations

import heapq
from typing import Any

from ..domain import PeriodCounts
from .base import TOP_PAGES_DAY, TOP_PAGES_TODAY
from .hyperloglog import HyperLogLog


def trim_top(pages: dict[str, int], keep: int) -> None:
    """Drop the pages with the fewest views until `keep` are left (ties: the
    first path in sort order goes first, as Redis's ZREMRANGEBYRANK)."""
    extra = len(pages) - keep
    if extra > 0:
        for _views, path in heapq.nsmallest(extra, ((n, p) for p, n in pages.items())):
            del pages[path]


class Calendar:
    __slots__ = ("months", "top", "years")

    def __init__(self) -> None:
        self.top: dict[str, dict[str, int]] = {}  # day -> page -> views that day
        self.months: dict[str, HyperLogLog] = {}  # YYYYMM -> visitors
        self.years: dict[str, HyperLogLog] = {}  # YYYY -> visitors

    def new_day(self, day: str) -> None:
        """The first flush of `day`: the days before it keep only their top pages."""
        for key, pages in self.top.items():
            if key < day:
                trim_top(pages, TOP_PAGES_DAY)

    def visitor(self, day: str, visitor: str) -> None:
        """A visitor seen for the first time on `day`."""
        for periods, key in ((self.months, day[:6]), (self.years, day[:4])):
            sketch = periods.get(key)
            if sketch is None:
                sketch = periods[key] = HyperLogLog()
            sketch.add(visitor)

    def views(self, day: str, views: dict[str, int]) -> None:
        if not views:
            return
        pages = self.top.setdefault(day, {})
        for path, count in views.items():
            pages[path] = pages.get(path, 0) + count
        trim_top(pages, TOP_PAGES_TODAY)

    def top_pages(self, day: str, limit: int) -> list[tuple[str, int]]:
        pages = self.top.get(day, {})
        return sorted(pages.items(), key=lambda pv: (-pv[1], pv[0]))[:limit]

    def period(self, key: str, visits: int, views: int) -> PeriodCounts:
        sketches = self.months if len(key) == 6 else self.years
        sketch = sketches.get(key)
        return PeriodCounts(visits, views, sketch.count() if sketch else 0)

    def forget_before(self, oldest_day: str) -> None:
        for key in [k for k in self.top if k < oldest_day]:
            del self.top[key]
        # A month is kept while any of its days is; a year likewise.
        for sketches, size in ((self.months, 6), (self.years, 4)):
            for key in [k for k in sketches if k < oldest_day[:size]]:
                del sketches[key]

    def durable_state(self) -> dict[str, Any]:
        return {
            "top": self.top,
            "months": {k: s.dump() for k, s in self.months.items()},
            "years": {k: s.dump() for k, s in self.years.items()},
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.top = {
            day: {str(p): int(n) for p, n in pages.items()}
            for day, pages in state.get("top", {}).items()
        }
        self.months = {k: HyperLogLog.load(v) for k, v in state.get("months", {}).items()}
        self.years = {k: HyperLogLog.load(v) for k, v in state.get("years", {}).items()}
