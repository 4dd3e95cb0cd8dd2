"""One site's presence and counters in memory: the embedded store's model.

The Redis script (lua/flush.lua) implements the same rules on Redis data
structures; the store contract suite holds the two to the same answers.
Every operation costs O(log n) in what it touches; expiry pops exactly the
expired entries from heaps, never scanning all visitors.
"""

from __future__ import annotations

import heapq
import math
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from .base import (
    VISIT_GAP,
    DayCounts,
    OpKind,
    PresenceOp,
    SiteBatch,
    SiteSnapshot,
    TrendingPage,
)


@dataclass(slots=True)
class Day:
    visits: int = 0
    views: int = 0
    peak_online: int = 0
    peak_at: float | None = None
    visitors: set[str] = field(default_factory=set)
    # Once a day is over its visitor set is dropped and only its size kept.
    visitor_count: int = 0

    def counts(self) -> DayCounts:
        unique = max(len(self.visitors), self.visitor_count)
        return DayCounts(self.visits, self.views, unique, self.peak_online, self.peak_at)


class Deadlines:
    """key -> deadline, with the keys whose deadline passed popped in order."""

    __slots__ = ("_heap", "deadline")

    def __init__(self) -> None:
        self.deadline: dict[Any, float] = {}
        self._heap: list[tuple[float, Any]] = []

    def set(self, key: Any, when: float) -> None:
        self.deadline[key] = when
        heapq.heappush(self._heap, (when, key))

    def pop_expired(self, now: float) -> list[tuple[Any, float]]:
        """Remove and return (key, deadline) of the keys whose deadline is <= now."""
        out = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            when, key = heapq.heappop(heap)
            if self.deadline.get(key) == when:
                del self.deadline[key]
                out.append((key, when))
        if len(heap) > 64 and len(heap) > 4 * len(self.deadline):
            # Refreshes leave stale entries behind; rebuild when they dominate.
            self._heap = [(w, k) for k, w in self.deadline.items()]
            heapq.heapify(self._heap)
        return out


class SitePresence:
    def __init__(self, site: str) -> None:
        self.site = site
        self.online: Deadlines = Deadlines()  # visitor -> deadline
        self.away: Deadlines = Deadlines()  # visitor -> when it left + VISIT_GAP
        self.holders: dict[str, set[str]] = {}
        self.instances: dict[str, float] = {}
        self.pairs: Deadlines = Deadlines()  # (page, visitor) -> deadline
        self.readers: dict[str, int] = {}
        self.window_views: dict[str, int] = {}
        self.buckets: dict[int, dict[str, int]] = {}
        self.pages: OrderedDict[str, None] = OrderedDict()  # least recently opened first
        self.titles: dict[str, str] = {}
        self.days: dict[str, Day] = {}
        self.total_visits = 0

    # -- flush -------------------------------------------------------------

    def flush(self, batch: SiteBatch, instance: str, now: float) -> SiteSnapshot:
        self._expire(now, batch.trending_window)
        self.instances[instance] = now + batch.presence_ttl
        day = self.days.setdefault(batch.day, Day())
        for op in batch.ops:
            self._apply(op, batch, instance, now, day)
        for path, title in batch.titles.items():
            if path in self.pages or path in batch.views:
                self.titles[path] = title
        minute = int(now // 60)
        for path, count in batch.views.items():
            self._touch_page(path, batch.max_pages)
            self.window_views[path] = self.window_views.get(path, 0) + count
            bucket = self.buckets.setdefault(minute, {})
            bucket[path] = bucket.get(path, 0) + count
        day.views += batch.total_views
        online = len(self.online.deadline)
        if online > day.peak_online:
            day.peak_online, day.peak_at = online, now
        yesterday = None
        if batch.want_yesterday:
            yesterday = (
                self.days[batch.yesterday].counts() if batch.yesterday in self.days else DayCounts()
            )
        return SiteSnapshot(
            site=self.site,
            online=online,
            trending=self._trending(batch.trending_size),
            today=day.counts(),
            total_visits=self.total_visits,
            ts=now,
            yesterday=yesterday,
        )

    def _apply(self, op: PresenceOp, batch: SiteBatch, instance: str, now: float, day: Day) -> None:
        at = now - op.age
        visitor = op.visitor
        if op.kind in (OpKind.HOLD, OpKind.REFRESH, OpKind.BEAT):
            deadline = at + batch.presence_ttl
            current = self.online.deadline.get(visitor)
            if current is None:
                self._arrive(visitor, now, day)
            if current is None or deadline > current:
                self.online.set(visitor, deadline)
            if op.kind is OpKind.HOLD:
                self.holders.setdefault(visitor, set()).add(instance)
            day.visitors.add(visitor)
            for page in op.pages:
                self._pair_up(page, visitor, deadline, batch.max_pages)
        elif op.kind is OpKind.CLOSE_PAGES:
            for page in op.pages:
                self._pair_down(page, visitor, at + batch.leave_grace)
        else:  # LEAVE, BYE
            holders = self.holders.get(visitor, set())
            if op.kind is OpKind.LEAVE:
                holders.discard(instance)
            alive = {h for h in holders if self.instances.get(h, 0) > now}
            if alive:
                self.holders[visitor] = alive
                return
            self.holders.pop(visitor, None)
            deadline = at + batch.leave_grace
            if visitor in self.online.deadline:
                self.online.set(visitor, deadline)
            for page in op.pages:
                self._pair_down(page, visitor, deadline)

    def _arrive(self, visitor: str, now: float, day: Day) -> None:
        if visitor not in self.away.deadline:
            day.visits += 1
            self.total_visits += 1
        else:
            del self.away.deadline[visitor]

    def _pair_up(self, page: str, visitor: str, deadline: float, max_pages: int) -> None:
        key = (page, visitor)
        current = self.pairs.deadline.get(key)
        if current is None:
            self.readers[page] = self.readers.get(page, 0) + 1
            self._touch_page(page, max_pages)
        if current is None or deadline > current:
            self.pairs.set(key, deadline)

    def _pair_down(self, page: str, visitor: str, deadline: float) -> None:
        key = (page, visitor)
        current = self.pairs.deadline.get(key)
        if current is not None and deadline < current:
            self.pairs.set(key, deadline)

    def _touch_page(self, page: str, max_pages: int) -> None:
        self.pages[page] = None
        self.pages.move_to_end(page)
        while len(self.pages) > max_pages:
            evicted, _ = self.pages.popitem(last=False)
            self.titles.pop(evicted, None)
            self.readers.pop(evicted, None)
            self.window_views.pop(evicted, None)

    def _expire(self, now: float, window: float) -> None:
        for visitor, deadline in self.online.pop_expired(now):
            self.holders.pop(visitor, None)
            self.away.set(visitor, deadline + VISIT_GAP)
        self.away.pop_expired(now)
        for (page, _visitor), _ in self.pairs.pop_expired(now):
            if page in self.readers:
                self.readers[page] -= 1
                if self.readers[page] <= 0:
                    del self.readers[page]
        oldest = math.floor((now - window) / 60)
        for minute in [m for m in self.buckets if m < oldest]:
            for path, count in self.buckets.pop(minute).items():
                if path in self.window_views:
                    left = self.window_views[path] - count
                    if left > 0:
                        self.window_views[path] = left
                    else:
                        del self.window_views[path]
        for dead in [i for i, until in self.instances.items() if until <= now]:
            del self.instances[dead]

    def _trending(self, size: int) -> tuple[TrendingPage, ...]:
        candidates = set(self.readers) | set(self.window_views)
        top = sorted(
            candidates,
            key=lambda p: (-self.readers.get(p, 0), -self.window_views.get(p, 0), p),
        )[:size]
        return tuple(
            TrendingPage(
                p, self.titles.get(p, ""), self.readers.get(p, 0), self.window_views.get(p, 0)
            )
            for p in top
        )

    # -- persistence: counters and visit memory are durable, presence is not --

    def durable_state(self) -> dict[str, Any]:
        return {
            "total_visits": self.total_visits,
            "days": {
                key: {
                    "visits": d.visits,
                    "views": d.views,
                    "peak_online": d.peak_online,
                    "peak_at": d.peak_at,
                    "visitors": sorted(d.visitors),
                    "visitor_count": d.visitor_count,
                }
                for key, d in self.days.items()
            },
            # Visitors online now count as having left now: after a restart, their
            # return within 30 min is not a new visit.
            "away": {
                **self.away.deadline,
                **{v: d + VISIT_GAP for v, d in self.online.deadline.items()},
            },
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.total_visits = int(state.get("total_visits", 0))
        for key, d in state.get("days", {}).items():
            self.days[key] = Day(
                visits=int(d["visits"]),
                views=int(d["views"]),
                peak_online=int(d["peak_online"]),
                peak_at=d.get("peak_at"),
                visitors=set(d.get("visitors", [])),
                visitor_count=int(d.get("visitor_count", 0)),
            )
        for visitor, until in state.get("away", {}).items():
            self.away.set(visitor, float(until))

    def forget_days_before(self, oldest_day: str) -> None:
        for key in [k for k in self.days if k < oldest_day]:
            del self.days[key]
        # Unique visitor sets are only read for today and yesterday.
        for key in sorted(self.days)[:-2]:
            day = self.days[key]
            if day.visitors:
                day.visitor_count, day.visitors = len(day.visitors), set()
