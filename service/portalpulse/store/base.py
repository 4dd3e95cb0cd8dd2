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
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from zoneinfo import ZoneInfo

VISIT_GAP = 1800.0
"""Seconds without being online after which an arrival is a new visit."""

DAY_KEEP_DAYS = 40
"""Daily counters are kept this many days."""


class OpKind(IntEnum):
    # A live connection on this instance opened for the visitor (register the hold).
    HOLD = 1
    # The visitor is still held here: refresh deadlines, no new hold.
    REFRESH = 2
    # An HTTP beat: presence for `presence_ttl`, no hold.
    BEAT = 3
    # These pages are no longer open for the visitor here: their pairs get `leave_grace`.
    CLOSE_PAGES = 4
    # The visitor's last connection here closed (or an HTTP beat said bye).
    LEAVE = 5
    # Like LEAVE, from HTTP: no hold of this instance to remove.
    BYE = 6


@dataclass(frozen=True, slots=True)
class PresenceOp:
    kind: OpKind
    visitor: str
    pages: tuple[str, ...] = ()
    age: float = 0.0
    """Seconds between the event and the flush: deadlines count from the event."""
    engaged: bool | None = None
    """With HOLD/REFRESH/BEAT: whether the visitor is engaged now (None: unknown)."""
    attrs: str = ""
    """With HOLD/BEAT: 'kind:name|device' of the visit, kept while the visitor is online."""


@dataclass(slots=True)
class SiteBatch:
    """What one site's flush carries. Pages here are normalised, excluded ones left out
    of `ops`, `views` and `titles` (they still count in `total_views`)."""

    site: str
    presence_ttl: float
    leave_grace: float
    trending_window: float
    trending_size: int
    max_pages: int
    day: str
    yesterday: str
    ops: list[PresenceOp] = field(default_factory=list)
    views: dict[str, int] = field(default_factory=dict)
    total_views: int = 0
    titles: dict[str, str] = field(default_factory=dict)
    want_yesterday: bool = False
    hour: int = 0
    """The local hour now (0-23): views are also counted per hour of the day."""
    detail: bool = False
    """Also answer the editors' dashboard detail."""

    @property
    def size(self) -> int:
        return len(self.ops) + len(self.views)


@dataclass(frozen=True, slots=True)
class TrendingPage:
    path: str
    title: str
    readers: int
    views: int


@dataclass(frozen=True, slots=True)
class DayCounts:
    visits: int = 0
    views: int = 0
    visitors: int = 0
    peak_online: int = 0
    peak_at: float | None = None


DETAIL_PAGES = 30
DETAIL_MINUTES = 60
HISTORY_DAYS = 8
HISTORY_MINUTES = HISTORY_DAYS * 1440


@dataclass(frozen=True, slots=True)
class SiteDetail:
    """What the editors' dashboard adds to a snapshot."""

    engaged: int
    pages: tuple[TrendingPage, ...]
    page_engaged: dict[str, int]
    sources: dict[str, int]
    devices: dict[str, int]
    minutes: tuple[tuple[float, int], ...]
    hours_today: tuple[int, ...]
    hours_yesterday: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class SiteSnapshot:
    site: str
    online: int
    trending: tuple[TrendingPage, ...]
    today: DayCounts
    total_visits: int
    ts: float
    yesterday: DayCounts | None = None
    detail: SiteDetail | None = None

    def content_key(self) -> tuple[object, ...]:
        """Everything but the time: two snapshots with equal keys need no new push."""
        return (self.online, self.trending, self.today, self.total_visits)


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
    async def ping(self) -> None:
        """Return when the store answers; raise `StoreUnavailable` otherwise."""

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


def day_key(when: float, zone: ZoneInfo) -> str:
    """The local calendar day of a Unix time, as YYYYMMDD."""
    return dt.datetime.fromtimestamp(when, zone).strftime("%Y%m%d")


def day_keys(when: float, zone: ZoneInfo) -> tuple[str, str]:
    """(today, yesterday) in `zone` at Unix time `when`."""
    today = dt.datetime.fromtimestamp(when, zone).date()
    return today.strftime("%Y%m%d"), (today - dt.timedelta(days=1)).strftime("%Y%m%d")


def local_hour(when: float, zone: ZoneInfo) -> int:
    return dt.datetime.fromtimestamp(when, zone).hour
