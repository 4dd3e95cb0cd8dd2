"""Rising alerts per site (rising_webhook.RisingAlerts), in-process on the embedded store."""

from __future__ import annotations

import asyncio

from portalpulse.config import ServerSettings, SiteSettings
from portalpulse.domain import DayCounts, SiteSnapshot, TrendingPage
from portalpulse.rising_webhook import RisingAlerts
from portalpulse.store.memory import MemoryStore

# Nothing listens on the discard port here: a post fails at once, as the log says.
SITE = SiteSettings("myhao", "Mỹ Hào", ("*",), rising_webhook="http://127.0.0.1:9/hook")


def snapshot(ts: float, *pages: TrendingPage) -> SiteSnapshot:
    return SiteSnapshot("myhao", sum(p.readers for p in pages), pages, DayCounts(), 0, ts)


async def test_a_page_rising_on_a_held_tick_is_marked_though_that_snapshot_lists_it_not() -> None:
    """The hub holds the snapshot a stats read brought (not observed): a page of the
    last observed snapshot can start rising on a held tick without being listed."""
    alerts = RisingAlerts(ServerSettings(), MemoryStore(None))
    for t in range(250):  # one reader on /x, while the tracker warms up (300 s)
        alerts.observe(SITE, snapshot(t, TrendingPage("/x", "X", 1, 1)))
    assert alerts.observe(SITE, snapshot(250, TrendingPage("/x", "X", 9, 9))) == frozenset()
    held = snapshot(250, TrendingPage("/y", "Y", 1, 1))
    for t in range(251, 320):
        alerts.hold(SITE, held, float(t))
    assert alerts.current("myhao") == frozenset({"/x"})
    await asyncio.sleep(0.1)  # the post, to nowhere, ends
