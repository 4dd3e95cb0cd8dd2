"""One site's presence and counters in memory: the embedded store's model.

The Redis script (lua/flush.lua) implements the same rules on Redis data
structures; the store contract suite holds the two to the same answers.
Every operation costs O(log n) in what it touches; expiry pops exactly the
expired entries from heaps, never scanning all visitors.
"""

from __future__ import annotations

import heapq
import math
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Any

from .base import (
    DETAIL_MINUTES,
    DETAIL_PAGES,
    HISTORY_MINUTES,
    VISIT_GAP,
    DayCounts,
    OpKind,
    PeriodCounts,
    PresenceOp,
    SiteBatch,
    SiteDetail,
    SiteSnapshot,
    TrendingPage,
    VisitAttrs,
)
from .calendar import Calendar
from .page_minutes import PageDetail, PageMinutes

PRESENT = (OpKind.HOLD, OpKind.REFRESH, OpKind.BEAT)


@dataclass(slots=True)
class Day:
    visits: int = 0
    views: int = 0
    peak_online: int = 0
    peak_at: float | None = None
    visitors: set[str] = field(default_factory=set)
    # Once a day is over its visitor set is dropped and only its size kept.
    visitor_count: int = 0
    hours: list[int] = field(default_factory=lambda: [0] * 24)

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

    def discard(self, key: Any) -> None:
        self.deadline.pop(key, None)  # its heap entry goes stale and is skipped

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


class PageCounts:
    """(page, visitor) pairs with deadlines, and per page how many are live."""

    __slots__ = ("count", "pairs")

    def __init__(self) -> None:
        self.pairs = Deadlines()
        self.count: dict[str, int] = {}

    def up(self, page: str, visitor: str, deadline: float) -> bool:
        """Keep the pair until at least `deadline`; True when it is new."""
        key = (page, visitor)
        current = self.pairs.deadline.get(key)
        if current is None:
            self.count[page] = self.count.get(page, 0) + 1
        if current is None or deadline > current:
            self.pairs.set(key, deadline)
        return current is None

    def down(self, page: str, visitor: str, deadline: float, now: float) -> None:
        """Lower the pair's deadline (never raise it); gone at once when it passed."""
        key = (page, visitor)
        current = self.pairs.deadline.get(key)
        if current is None or deadline >= current:
            return
        if deadline <= now:
            self.pairs.discard(key)
            self._less(page)
        else:
            self.pairs.set(key, deadline)

    def _less(self, page: str) -> None:
        if page in self.count:
            self.count[page] -= 1
            if self.count[page] <= 0:
                del self.count[page]

    def expire(self, now: float) -> None:
        for (page, _visitor), _ in self.pairs.pop_expired(now):
            self._less(page)


class SitePresence:
    def __init__(self, site: str) -> None:
        self.site = site
        self.online = Deadlines()  # visitor -> deadline
        self.away = Deadlines()  # visitor -> when it left + VISIT_GAP
        self.engaged: set[str] = set()  # online visitors last reported engaged
        self.holders: dict[str, set[str]] = {}
        self.instances: dict[str, float] = {}
        self.readers = PageCounts()
        self.engaged_readers = PageCounts()
        self.attrs: dict[str, VisitAttrs] = {}  # online visitor -> where from, on what
        self.sources: Counter[str] = Counter()
        self.devices: Counter[str] = Counter()
        self.window_views: dict[str, int] = {}
        self.buckets: dict[int, dict[str, int]] = {}
        self.pages: OrderedDict[str, None] = OrderedDict()  # least recently opened first
        self.titles: dict[str, str] = {}
        self.days: dict[str, Day] = {}
        self.calendar = Calendar()  # top pages per day, visitors per month and year
        self.minutes: dict[int, int] = {}  # minute -> most online seen in it
        self.page_minutes = PageMinutes()  # the drill-down's last hour per page
        self.total_visits = 0

    # -- flush -------------------------------------------------------------

    def flush(self, batch: SiteBatch, instance: str, now: float) -> SiteSnapshot:
        self._expire(now, batch.trending_window)
        self.instances[instance] = now + batch.presence_ttl
        if batch.day not in self.days:
            self.calendar.new_day(batch.day)
        day = self.days.setdefault(batch.day, Day())
        for op in batch.ops:
            self._apply(op, batch, instance, now, day)
        minute = int(now // 60)
        for path, count in batch.views.items():
            self._touch_page(path, batch.max_pages)
            self.window_views[path] = self.window_views.get(path, 0) + count
            bucket = self.buckets.setdefault(minute, {})
            bucket[path] = bucket.get(path, 0) + count
        self._page_minutes(batch, minute)
        # Titles of tracked pages only (after the views that track them): the cap on
        # pages then bounds titles too, whatever pages clients name.
        for path, title in batch.titles.items():
            if path in self.pages:
                self.titles[path] = title
        self.calendar.views(batch.day, batch.views)
        day.views += batch.total_views
        day.hours[batch.hour] += batch.total_views
        online = len(self.online.deadline)
        if online > day.peak_online:
            day.peak_online, day.peak_at = online, now
        if online > self.minutes.get(minute, -1):
            self.minutes[minute] = online
        yesterday = None
        if batch.want_yesterday or batch.detail:
            yesterday = self.days.get(batch.yesterday, Day()).counts()
        month = year = None
        if batch.periods or batch.detail:
            month, year = self.periods(batch.day)
        return SiteSnapshot(
            site=self.site,
            online=online,
            trending=self._top(batch.trending_size),
            today=day.counts(),
            total_visits=self.total_visits,
            ts=now,
            yesterday=yesterday,
            detail=self._detail(batch, now) if batch.detail else None,
            month=month,
            year=year,
        )

    def periods(self, day: str) -> tuple[PeriodCounts, PeriodCounts]:
        """This month's and this year's counts: the sums of their kept days."""
        counts = []
        for key in (day[:6], day[:4]):
            days = [d for k, d in self.days.items() if k.startswith(key)]
            visits, views = sum(d.visits for d in days), sum(d.views for d in days)
            counts.append(self.calendar.period(key, visits, views))
        return counts[0], counts[1]

    def _apply(self, op: PresenceOp, batch: SiteBatch, instance: str, now: float, day: Day) -> None:
        at = now - op.age
        visitor = op.visitor
        if op.kind in PRESENT:
            deadline = at + batch.presence_ttl
            current = self.online.deadline.get(visitor)
            if current is None:
                self._arrive(visitor, day)
            if current is None or deadline > current:
                self.online.set(visitor, deadline)
            if op.kind is OpKind.HOLD:
                self.holders.setdefault(visitor, set()).add(instance)
            if op.attrs and visitor not in self.attrs:
                self._set_attrs(visitor, op.attrs)
            if visitor not in day.visitors:
                day.visitors.add(visitor)
                self.calendar.visitor(batch.day, visitor)
            for page in op.pages:
                if self.readers.up(page, visitor, deadline):
                    self._touch_page(page, batch.max_pages)
            if op.engaged:
                self.engaged.add(visitor)
                for page in op.pages:
                    self.engaged_readers.up(page, visitor, deadline)
            elif op.engaged is False:
                self.engaged.discard(visitor)
                for page in op.pages:
                    self.engaged_readers.down(page, visitor, now, now)
        elif op.kind is OpKind.CLOSE_PAGES:
            for page in op.pages:
                self.readers.down(page, visitor, at + batch.leave_grace, now)
                self.engaged_readers.down(page, visitor, at + batch.leave_grace, now)
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
            for page in op.pages:
                self.readers.down(page, visitor, deadline, now)
                self.engaged_readers.down(page, visitor, deadline, now)
            current = self.online.deadline.get(visitor)
            if current is not None and deadline < current:
                if deadline <= now:
                    self.online.discard(visitor)
                    self._gone(visitor, deadline)
                else:
                    self.online.set(visitor, deadline)

    def _arrive(self, visitor: str, day: Day) -> None:
        if visitor not in self.away.deadline:
            day.visits += 1
            self.total_visits += 1
        else:
            self.away.discard(visitor)

    def _set_attrs(self, visitor: str, attrs: VisitAttrs) -> None:
        self.attrs[visitor] = attrs
        self.sources[attrs.source] += 1
        self.devices[attrs.device or "unknown"] += 1

    def _gone(self, visitor: str, deadline: float) -> None:
        """The visitor is no longer online (its deadline passed at `deadline`)."""
        self.holders.pop(visitor, None)
        self.engaged.discard(visitor)
        self.away.set(visitor, deadline + VISIT_GAP)
        attrs = self.attrs.pop(visitor, None)
        if attrs is not None:
            device = attrs.device or "unknown"
            for counter, key in ((self.sources, attrs.source), (self.devices, device)):
                counter[key] -= 1
                if counter[key] <= 0:
                    del counter[key]

    def _touch_page(self, page: str, max_pages: int) -> None:
        self.pages[page] = None
        self.pages.move_to_end(page)
        while len(self.pages) > max_pages:
            evicted, _ = self.pages.popitem(last=False)
            self.page_minutes.forget(evicted)
            self.titles.pop(evicted, None)
            self.readers.count.pop(evicted, None)
            self.engaged_readers.count.pop(evicted, None)
            self.window_views.pop(evicted, None)

    def _page_minutes(self, batch: SiteBatch, minute: int) -> None:
        """The drill-down: readers of the pages present ops touched, views by source."""
        touched = {page for op in batch.ops if op.kind in PRESENT for page in op.pages}
        for page in touched:
            if page in self.pages:
                self.page_minutes.seen(
                    minute,
                    page,
                    self.readers.count.get(page, 0),
                    self.engaged_readers.count.get(page, 0),
                )
        for (page, source, device), n in batch.arrivals.items():
            if page in self.pages:
                self.page_minutes.arrived(minute, page, source, device, n, self.pages)

    def page_detail(self, page: str, now: float) -> PageDetail | None:
        return self.page_minutes.detail(page, self.titles.get(page, ""), now)

    def _expire(self, now: float, window: float) -> None:
        self.page_minutes.expire(now)
        for visitor, deadline in self.online.pop_expired(now):
            self._gone(visitor, deadline)
        self.away.pop_expired(now)
        self.readers.expire(now)
        self.engaged_readers.expire(now)
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
        first_kept = int(now // 60) - HISTORY_MINUTES
        while self.minutes and next(iter(self.minutes)) < first_kept:
            del self.minutes[next(iter(self.minutes))]

    def _top(self, size: int) -> tuple[TrendingPage, ...]:
        readers = self.readers.count
        candidates = set(readers) | set(self.window_views)
        top = sorted(
            candidates,
            key=lambda p: (-readers.get(p, 0), -self.window_views.get(p, 0), p),
        )[:size]
        return tuple(
            TrendingPage(p, self.titles.get(p, ""), readers.get(p, 0), self.window_views.get(p, 0))
            for p in top
        )

    def _detail(self, batch: SiteBatch, now: float) -> SiteDetail:
        pages = self._top(DETAIL_PAGES)
        today = self.days.get(batch.day, Day())
        yesterday = self.days.get(batch.yesterday, Day())
        return SiteDetail(
            engaged=len(self.engaged),
            pages=pages,
            page_engaged={p.path: self.engaged_readers.count.get(p.path, 0) for p in pages},
            sources=dict(self.sources),
            devices=dict(self.devices),
            minutes=self.history(now, DETAIL_MINUTES),
            hours_today=tuple(today.hours),
            hours_yesterday=tuple(yesterday.hours),
        )

    def history(self, now: float, minutes: int) -> tuple[tuple[float, int], ...]:
        last = int(now // 60)
        return tuple(
            (m * 60.0, self.minutes[m])
            for m in range(last - minutes + 1, last + 1)
            if m in self.minutes
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
                    "hours": d.hours,
                }
                for key, d in self.days.items()
            },
            # Visitors online now count as having left now: after a restart, their
            # return within 30 min is not a new visit.
            "away": {
                **self.away.deadline,
                **{v: d + VISIT_GAP for v, d in self.online.deadline.items()},
            },
            "minutes": {str(m): n for m, n in self.minutes.items()},
            "calendar": self.calendar.durable_state(),
            # The last hour, so a restart keeps trending and the drill-down: the
            # tracked pages (least recently opened first), their titles, the
            # trending window's views per minute and the drill-down's buckets.
            "pages": [[page, self.titles.get(page, "")] for page in self.pages],
            "views": {str(m): bucket for m, bucket in self.buckets.items()},
            "page_minutes": self.page_minutes.durable_state(),
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
                hours=[int(n) for n in d.get("hours", [0] * 24)],
            )
        for visitor, until in state.get("away", {}).items():
            self.away.set(visitor, float(until))
        for minute, n in sorted(state.get("minutes", {}).items(), key=lambda kv: int(kv[0])):
            self.minutes[int(minute)] = int(n)
        self.calendar.restore(state.get("calendar", {}))
        for page, title in state.get("pages", []):
            self.pages[page] = None
            if title:
                self.titles[page] = title
        for minute, bucket in state.get("views", {}).items():
            kept = self.buckets[int(minute)] = {p: int(n) for p, n in bucket.items()}
            for page, n in kept.items():
                if page in self.pages:  # an evicted page's views count no more
                    self.window_views[page] = self.window_views.get(page, 0) + n
        self.page_minutes.restore(state.get("page_minutes", {}))

    def forget_days_before(self, oldest_day: str) -> None:
        for key in [k for k in self.days if k < oldest_day]:
            del self.days[key]
        self.calendar.forget_before(oldest_day)
        # Unique visitor sets are only read for today and yesterday.
        for key in sorted(self.days)[:-2]:
            day = self.days[key]
            if day.visitors:
                day.visitor_count, day.visitors = len(day.visitors), set()
