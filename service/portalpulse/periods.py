"""This month and this year beside today, for answers that are not the tick's.

The tick's snapshot carries them only when an editor watches the site (they
cost the store a few reads); the stats API reads them here, at most once a
second per site however often it is asked, so a busy stats endpoint costs
the store no more than a dashboard does.
"""

from __future__ import annotations

import time

from starlette.requests import HTTPConnection

from .domain import PeriodCounts, SiteSnapshot, day_key

FRESH_SECONDS = 1.0


class PeriodsCache:
    def __init__(self) -> None:
        # One entry per configured site (ids are checked against the config first).
        self._kept: dict[str, tuple[float, str, tuple[PeriodCounts, PeriodCounts]]] = {}

    async def of(
        self, conn: HTTPConnection, snap: SiteSnapshot
    ) -> tuple[PeriodCounts, PeriodCounts]:
        if snap.month is not None and snap.year is not None:
            return snap.month, snap.year
        pulse = conn.app.state.pulse
        server = pulse.settings.server
        day = day_key(time.time() + server.clock_offset, server.zone)
        now = time.monotonic()
        kept = self._kept.get(snap.site)
        if kept is not None and kept[0] > now and kept[1] == day:
            return kept[2]
        periods: tuple[PeriodCounts, PeriodCounts] = await pulse.store.periods(snap.site, day)
        self._kept[snap.site] = (now + FRESH_SECONDS, day, periods)
        return periods


def periods_of(conn: HTTPConnection) -> PeriodsCache:
    """This app's cache, made on first use."""
    cache: PeriodsCache | None = getattr(conn.app.state, "periods_cache", None)
    if cache is None:
        cache = conn.app.state.periods_cache = PeriodsCache()
    return cache
