"""Rising articles: a page whose readers reach 3x its own 15-minute average.

Computed once per site per tick from the readers the tick's snapshot lists
(no I/O here). Each instance keeps its own averages: every instance that
flushes a site reads the same shared snapshot from the store each tick, so
their averages agree to within a tick's sampling, and no state needs sharing.
An instance that just started knows no averages yet: it marks nothing until
it has watched the site for a third of the window, so that a restart does
not make every busy page look rising.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

RISING_FACTOR = 3.0
RISING_MIN_READERS = 5
BUCKETS = 15
"""The window is kept in this many buckets (a minute each for 15 minutes)."""
MAX_SAMPLE_GAP = 10.0
"""A longer gap between two ticks (the site was idle here) counts as this long."""


@dataclass(frozen=True, slots=True)
class RisingPage:
    path: str
    readers: int
    average: float


class RisingTracker:
    """One site's pages: reader-seconds per bucket over the last `window` seconds.

    A page not listed in a tick had no readers that tick (only pages with
    fewer readers than the listed ones go unlisted, and those cannot be rising
    past the bigger ones). At most `max_pages` pages are kept, the ones seen
    least recently dropped first.
    """

    def __init__(self, window: float = 900.0, max_pages: int = 10_000) -> None:
        self.window = window
        self.warm_up = window / 3
        self.max_pages = max_pages
        self._bucket_seconds = window / BUCKETS
        self._seconds: dict[int, float] = {}  # bucket -> seconds watched in it
        self._pages: dict[str, dict[int, float]] = {}  # page -> bucket -> reader-seconds
        self._last: float | None = None
        self._bucket = -1
        # The readers of the last `observe`, and the seconds they have held since in
        # `_held_bucket` (`hold`), not yet added to the buckets (`_add_held`).
        self._readers: Mapping[str, int] = {}
        self._held = 0.0
        self._held_bucket = -1
        self._may_rise = False  # a page of `_readers` has RISING_MIN_READERS or more

    @property
    def may_rise(self) -> bool:
        """A page of the last `observe` has readers enough to rise."""
        return self._may_rise

    @property
    def pages_kept(self) -> int:
        return len(self._pages)

    def observe(self, now: float, readers: Mapping[str, int]) -> list[RisingPage]:
        """Take a tick's readers per page; answer the pages rising now, most readers first."""
        self._add_held()
        gap = self._gap(now)
        bucket = self._bucket
        if gap > 0:
            self._add(bucket, gap, readers)
        self._readers = readers
        self._may_rise = any(count >= RISING_MIN_READERS for count in readers.values())
        watched = sum(self._seconds.values())
        if watched < self.warm_up or watched <= 0:
            return []
        rising = []
        for path, count in readers.items():
            if count < RISING_MIN_READERS:
                continue
            average = sum(self._pages.get(path, {}).values()) / watched
            if count >= RISING_FACTOR * average:
                rising.append(RisingPage(path, count, round(average, 2)))
        rising.sort(key=lambda p: (-p.readers, p.path))
        return rising

    def hold(self, now: float) -> list[RisingPage]:
        """A tick whose readers are those of the last `observe` (the site's snapshot did
        not change): the same answer as `observe(now, <those readers>)`. While no page
        has RISING_MIN_READERS, none can rise, and the seconds are only added up, into
        the buckets when the bucket changes or at the next `observe`: a quiet site
        costs a few operations a tick, whatever its number of pages."""
        if self._may_rise:
            return self.observe(now, self._readers)
        gap = self._gap(now)
        if gap > 0:
            self._held += gap
            self._held_bucket = self._bucket
        return []

    def _gap(self, now: float) -> float:
        """The seconds since the last tick that count (moving to `now`'s bucket)."""
        gap = 0.0 if self._last is None else min(max(0.0, now - self._last), MAX_SAMPLE_GAP)
        self._last = now
        bucket = math.floor(now / self._bucket_seconds)
        if bucket != self._bucket:
            self._add_held()  # into its own bucket, before old buckets are forgotten
            self._bucket = bucket
            self._forget_before(bucket - BUCKETS + 1)
        return gap

    def _add_held(self) -> None:
        if self._held > 0:
            held, self._held = self._held, 0.0
            self._add(self._held_bucket, held, self._readers)

    def _add(self, bucket: int, seconds: float, readers: Mapping[str, int]) -> None:
        self._seconds[bucket] = self._seconds.get(bucket, 0.0) + seconds
        for path, count in readers.items():
            if count <= 0:
                continue
            buckets = self._pages.pop(path, None) or {}
            buckets[bucket] = buckets.get(bucket, 0.0) + count * seconds
            self._pages[path] = buckets  # now the most recently seen
        while len(self._pages) > self.max_pages:
            del self._pages[next(iter(self._pages))]

    def _forget_before(self, first: int) -> None:
        for bucket in [b for b in self._seconds if b < first]:
            del self._seconds[bucket]
        for path in list(self._pages):
            buckets = self._pages[path]
            for bucket in [b for b in buckets if b < first]:
                del buckets[bucket]
            if not buckets:
                del self._pages[path]
