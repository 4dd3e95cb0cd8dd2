"""What the service counts and answers, as plain values: presence operations in,
snapshots out. No I/O and no imports from the rest of the package.

The ledger (`ledger.py`) makes operations and batches, every store takes them
and answers snapshots, and `protocol.py` turns snapshots into the contract's
JSON: all three share these types, and none of them owns them.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from dataclasses import dataclass, field
from enum import IntEnum
from zoneinfo import ZoneInfo


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
class VisitAttrs:
    """Where a visit came from and on what: kept by the store while the visitor is online.

    `source` is `sources.classify`'s 'kind:name' ('search:google', 'direct:');
    `device` is 'mobile', 'tablet', 'desktop' or '' (unknown).
    """

    source: str
    device: str = ""

    def packed(self) -> str:
        """'kind:name|device': how the Redis store keeps it (its codes table is keyed by it)."""
        return f"{self.source}|{self.device}"

    @classmethod
    def unpack(cls, text: str) -> VisitAttrs:
        source, _, device = text.partition("|")
        return cls(source, device)


@dataclass(frozen=True, slots=True)
class PresenceOp:
    kind: OpKind
    visitor: str
    pages: tuple[str, ...] = ()
    age: float = 0.0
    """Seconds between the event and the flush: deadlines count from the event."""
    engaged: bool | None = None
    """With HOLD/REFRESH/BEAT: whether the visitor is engaged now (None: unknown)."""
    attrs: VisitAttrs | None = None
    """With HOLD/BEAT: where the visit came from, kept while the visitor is online."""


@dataclass(frozen=True, slots=True)
class CounterSet:
    """Views recorded between two flushes, under a token: the Redis store applies
    a set once, whichever flush carrying it runs first (a flush cut off by a timeout
    may still run late, beside the retry that carries the same set again)."""

    token: str
    views: dict[str, int]
    total_views: int
    arrivals: dict[tuple[str, str, str], int]


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
    periods: bool = False
    """Also answer this month's and this year's counts (always with `detail`)."""
    arrivals: dict[tuple[str, str, str], int] = field(default_factory=dict)
    """(page, source, device) -> views, for the drill-down (store/page_minutes.py):
    source is 'kind:name' or 'internal:' followed by the previous page's path."""
    counter_sets: list[CounterSet] = field(default_factory=list)
    """`views`, `total_views` and `arrivals` above are these sets added up."""
    day_start: float = 0.0
    """When `day` began (Unix time, with the clock offset; 0: unknown): a visitor
    refreshed since then is among the day's visitors already (flush.lua)."""

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


@dataclass(frozen=True, slots=True)
class PeriodCounts:
    """A month's or a year's counts, in the site's time zone; `visitors` is an
    estimate (a HyperLogLog of the period's visitors, within about 2 %)."""

    visits: int = 0
    views: int = 0
    visitors: int = 0


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
    month: PeriodCounts | None = None
    year: PeriodCounts | None = None

    def content_key(self) -> tuple[object, ...]:
        """Everything but the time: two snapshots with equal keys need no new push."""
        return (self.online, self.trending, self.today, self.total_visits)


def day_key(when: float, zone: ZoneInfo) -> str:
    """The local calendar day of a Unix time, as YYYYMMDD."""
    return dt.datetime.fromtimestamp(when, zone).strftime("%Y%m%d")


def day_keys(when: float, zone: ZoneInfo) -> tuple[str, str]:
    """(today, yesterday) in `zone` at Unix time `when`."""
    today = dt.datetime.fromtimestamp(when, zone).date()
    return today.strftime("%Y%m%d"), (today - dt.timedelta(days=1)).strftime("%Y%m%d")


def local_hour(when: float, zone: ZoneInfo) -> int:
    return dt.datetime.fromtimestamp(when, zone).hour


@functools.lru_cache(maxsize=4)
def _calendar_of_second(second: int, zone: ZoneInfo) -> tuple[str, str, int]:
    return (*day_keys(second, zone), local_hour(second, zone))


@functools.lru_cache(maxsize=4)
def day_start(day: str, zone: ZoneInfo) -> float:
    """The Unix time at which the local day `day` (YYYYMMDD) begins in `zone`."""
    return dt.datetime.strptime(day, "%Y%m%d").replace(tzinfo=zone).timestamp()


def calendar_at(when: float, zone: ZoneInfo) -> tuple[str, str, int]:
    """(today, yesterday, local hour) at Unix time `when`: worked out once a second,
    not once per site and tick. Days and hours turn on whole seconds (zones are
    whole seconds off UTC), so the second `when` falls in has the same answers."""
    return _calendar_of_second(math.floor(when), zone)
