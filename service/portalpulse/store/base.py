"""The store interface: what every store (embedded, Redis, Redis Cluster) accepts
and answers. The hub speaks only this.

One `flush` carries, for each site, the presence operations that happened on
this instance since the last tick, and answers each site's snapshot as it is
after them: one round trip per tick, whatever the number of beats.

Presence rules (the same in every store):
- a visitor is online while its deadline is in the future; `present` ops set it
  to the event time + `presence_ttl` (never lowering it), `leave` lowers it to the
  event time + `leave_grace` unless another live instance still holds the visitor;
- (page, visitor) pairs follow the same deadlines; a page's readers are its live pairs;
- a visitor arriving after 30 min or more without being online makes a visit.
"""

from __future__ import annotations

import abc
from collections.abc import Collection, Sequence

# The domain's types, re-exported: stores and their tests name them from here.
from ..domain import (
    DayCounts,
    OpKind,
    PeriodCounts,
    PresenceOp,
    SiteBatch,
    SiteDetail,
    SiteSnapshot,
    TrendingPage,
    VisitAttrs,
    day_key,
    day_keys,
    local_hour,
)
from .page_minutes import PageDetail

__all__ = [
    "DAY_KEEP_DAYS",
    "DETAIL_MINUTES",
    "DETAIL_PAGES",
    "HISTORY_DAYS",
    "HISTORY_MINUTES",
    "TOP_PAGES_DAY",
    "TOP_PAGES_TODAY",
    "VISIT_GAP",
    "DayCounts",
    "OpKind",
    "PeriodCounts",
    "PresenceOp",
    "SiteBatch",
    "SiteDetail",
    "SiteSnapshot",
    "Store",
    "StoreUnavailable",
    "TrendingPage",
    "VisitAttrs",
    "day_key",
    "day_keys",
    "local_hour",
]

VISIT_GAP = 1800.0
"""Seconds without being online after which an arrival is a new visit."""

DAY_KEEP_DAYS = 400
"""Daily counters (and each day's top pages) are kept this many days."""
TOP_PAGES_TODAY = 1000
"""Views per page today are kept for this many pages: when more are read, the
page with the fewest views so far is dropped (its count starts again if it
comes back), so the day's top pages are exact unless a page had fewer views
than the 1,000th when it was dropped."""
TOP_PAGES_DAY = 100
"""A finished day keeps its this many most viewed pages."""


DETAIL_PAGES = 30
DETAIL_MINUTES = 60
HISTORY_DAYS = 8
HISTORY_MINUTES = HISTORY_DAYS * 1440


class StoreUnavailable(RuntimeError):
    """The store did not answer; presence is kept in the hub and retried."""


class Store(abc.ABC):
    """A place where every instance's presence meets and counters are kept."""

    instance_id: str
    clock_offset: float = 0.0

    @abc.abstractmethod
    async def open(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def flush(self, batches: Sequence[SiteBatch]) -> list[SiteSnapshot]:
        """Apply every batch and answer each site's snapshot, in order, in one round trip."""

    @abc.abstractmethod
    async def history(self, site: str, minutes: int) -> list[tuple[float, int]]:
        """Online visitors per minute (minute start, most seen), oldest first,
        for the last `minutes` minutes (at most `HISTORY_MINUTES`)."""

    @abc.abstractmethod
    async def page_detail(self, site: str, page: str) -> PageDetail | None:
        """A tracked page's last hour (None when the page is not tracked)."""

    @abc.abstractmethod
    async def ping(self) -> None:
        """Return when the store answers; raise `StoreUnavailable` otherwise."""

    # The long history: days, their top pages, months and years.

    @abc.abstractmethod
    async def days(self, site: str, first: str, last: str) -> list[tuple[str, DayCounts]]:
        """The kept days from `first` to `last` (YYYYMMDD, both included), oldest first;
        days the store holds nothing for are left out."""

    @abc.abstractmethod
    async def top_pages(self, site: str, day: str, limit: int) -> list[tuple[str, str, int]]:
        """A day's most viewed pages: (path, title, views), most views first, at most
        `limit` (`TOP_PAGES_DAY` for a finished day). The title is the one the
        page has now, '' when the page is no longer tracked."""

    @abc.abstractmethod
    async def periods(self, site: str, day: str) -> tuple[PeriodCounts, PeriodCounts]:
        """(the month, the year) that hold `day`, up to now."""

    # Presence held through the instance: a store shared by instances may keep a
    # visitor held through a live connection online for as long as the instance
    # holding it is live there, so that the instance need not refresh each visitor.

    holds_by_instance = False
    """Whether this store may keep held visitors online through this instance's
    liveness (then the ledger's rounds hold them again rarely: ledger.py)."""

    def holds(self, site: str) -> bool:
        """Whether the store keeps `site`'s held visitors online through this
        instance's liveness now (False: refresh them as usual)."""
        return False

    def take_lapsed(self) -> Collection[str]:
        """Sites whose held visitors the store may have lost since the last call
        (this instance stopped being live there, or the store lost its keys)."""
        return ()

    def renew_identity(self) -> None:  # noqa: B027
        """Go on under a new instance id (what only the old one held then leaves)."""

    # A quiet site the store vouches for is skipped by the tick until its time
    # comes or the store wakes it (hub.py): its snapshot cannot change meanwhile.

    def quiet_until(self, site: str) -> float:
        """The monotonic time until which a flush of `site` with nothing new from
        this instance would answer the very snapshot it answered last, unless the
        site is among `take_woken` first. 0: no such promise (flush it each tick)."""
        return 0.0

    def take_woken(self) -> Collection[str]:
        """Sites whose `quiet_until` no longer holds since the last call (another
        instance changed them, or the store cannot vouch for them any more)."""
        return ()

    async def claim_once(self, name: str, seconds: float) -> bool:
        """True for the first caller of `name` within `seconds` across every
        instance of the store (one process here: see the stores)."""
        return True

    # A log of recent events under a name, shared by every instance of the store
    # (the dashboard's failed sign-ins per address). A store of one process has
    # nothing to share: None, and the caller keeps its own log.

    async def recent_events(self, name: str, now: float, window: float) -> list[float] | None:
        """Times of the events of the last `window` seconds, oldest first."""
        return None

    async def add_event(self, name: str, now: float, window: float) -> None:  # noqa: B027
        """Log an event at `now`, kept `window` seconds (nothing here: nothing shared)."""

    async def clear_events(self, name: str) -> None:  # noqa: B027
        """Forget every event under `name` (nothing here: nothing shared)."""

    # A short note every instance can read (the newest dashboard token list). A
    # store of one process has nothing to share: None, and writing does nothing.

    async def note(self, name: str) -> str | None:
        """The note last written under `name`, if any."""
        return None

    async def set_note(self, name: str, value: str) -> None:  # noqa: B027
        """Write the note `name` (nothing here: nothing shared)."""

    async def take_event(
        self, name: str, now: float, window: float, limit: int
    ) -> list[float] | None:
        """Log an event at `now` only if fewer than `limit` are in the last `window`
        seconds, in one atomic step (concurrent callers cannot all pass): [] when it
        was logged, else the times of the events that refused it, oldest first.
        None: nothing shared."""
        return None
