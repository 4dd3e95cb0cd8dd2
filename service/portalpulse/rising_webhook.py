"""Rising articles per site, and the webhook that tells a newsroom's chat.

Every instance that ticks a site feeds the tick's snapshot to the site's
`RisingTracker` (rising.py) and marks what rises on the dashboard frame. A
page that starts rising is posted to the site's `rising_webhook` once per
episode across every instance: the first instance to claim the page in the
store (Redis `SET NX` with an expiry of the rising window; in the embedded
store a local claim) posts, the others do not. An episode is the window:
a page that falls and rises again within it is not posted again.

The post runs on its own (a thread, with a timeout), never in the tick; at
most `MAX_IN_FLIGHT` at once, the rest dropped. Failures are logged at
warning and counted in `portalpulse_rising_webhooks_total{result}`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import replace

from . import metrics
from .config import ServerSettings, SiteSettings
from .domain import SiteSnapshot, TrendingPage
from .rising import RisingPage, RisingTracker
from .store.base import Store, StoreUnavailable

log = logging.getLogger("portalpulse.rising")

POST_TIMEOUT = 5.0
MAX_IN_FLIGHT = 8


def listed(snap: SiteSnapshot) -> dict[str, TrendingPage]:
    """The pages a snapshot lists by path: the dashboard's 30 when an editor
    watches, else the trending ones."""
    pages: Iterable[TrendingPage] = snap.detail.pages if snap.detail else snap.trending
    return {p.path: p for p in pages}


class RisingAlerts:
    """One process's rising trackers (one per configured site) and webhook posts."""

    def __init__(self, server: ServerSettings, store: Store) -> None:
        self.server = server
        self.store = store
        self._trackers: dict[str, RisingTracker] = {}
        self._rising: dict[str, frozenset[str]] = {}
        self._posts: set[asyncio.Task[None]] = set()

    def observe(self, site: SiteSettings, snap: SiteSnapshot) -> frozenset[str]:
        """The paths rising in this snapshot of `site` (posting new ones when asked)."""
        tracker = self._trackers.get(site.id)
        if tracker is None:
            tracker = RisingTracker(self.server.rising_window, site.max_pages)
            self._trackers[site.id] = tracker
        pages = listed(snap)
        rising = tracker.observe(snap.ts, {path: p.readers for path, p in pages.items()})
        return self._mark(site, rising, pages, snap.ts)

    def idle(self, site_id: str) -> bool:
        """Whether ticks of an unchanged snapshot of the site may go unseen for a
        while (at most `rising.MAX_SAMPLE_GAP`): no page of it can rise, none is
        marked rising, and `hold` adds the time up when it comes."""
        tracker = self._trackers.get(site_id)
        return tracker is not None and not tracker.may_rise and not self._rising.get(site_id)

    def hold(self, site: SiteSettings, snap: SiteSnapshot, now: float) -> None:
        """A tick at `now` whose snapshot of `site` is the one last observed (`snap`),
        unchanged: what `observe` would do, in a few operations while no page of
        it has readers enough to rise (`RisingTracker.hold`)."""
        tracker = self._trackers.get(site.id)
        if tracker is None:
            self.observe(site, replace(snap, ts=now))
            return
        rising = tracker.hold(now)
        if rising or self._rising.get(site.id):
            self._mark(site, rising, listed(snap), now)

    def _mark(
        self,
        site: SiteSettings,
        rising: list[RisingPage],
        pages: Mapping[str, TrendingPage],
        at: float,
    ) -> frozenset[str]:
        """Keep what rises now; post the pages that were not rising before."""
        now = frozenset(p.path for p in rising)
        before = self._rising.get(site.id, frozenset())
        self._rising[site.id] = now
        if site.rising_webhook:
            for page in rising:
                if page.path not in before:
                    # The tracker's readers may come from an earlier snapshot than `pages`
                    # (a held one): a page missing here posts without its title.
                    shown = pages.get(page.path)
                    self._post_later(site, page, shown.title if shown else "", at)
        return now

    def current(self, site_id: str) -> frozenset[str]:
        """What the last snapshot of `site_id` had rising."""
        return self._rising.get(site_id, frozenset())

    def _post_later(self, site: SiteSettings, page: RisingPage, title: str, at: float) -> None:
        if len(self._posts) >= MAX_IN_FLIGHT:
            metrics.rising_webhooks.labels("dropped").inc()
            log.warning("rising webhook of %s: too many posts in flight, one dropped", site.id)
            return
        task = asyncio.ensure_future(self._post(site, page, title, at))
        self._posts.add(task)
        task.add_done_callback(self._posts.discard)

    async def _post(self, site: SiteSettings, page: RisingPage, title: str, at: float) -> None:
        url = site.rising_webhook
        assert url is not None
        try:
            if not await self.store.claim_once(
                f"rising:{site.id}:{page.path}", self.server.rising_window
            ):
                return  # another instance posts this episode
        except StoreUnavailable as exc:
            metrics.rising_webhooks.labels("failed").inc()
            log.warning("rising webhook of %s: the store did not answer: %s", site.id, exc)
            return
        body = {
            "site": site.id,
            "path": page.path,
            "title": title,
            "readers": page.readers,
            "average": page.average,
            "time": round(at, 3),
        }
        try:
            await asyncio.to_thread(_send, url, body)
        except Exception as exc:  # whatever a remote hook does, it is only logged
            metrics.rising_webhooks.labels("failed").inc()
            log.warning("rising webhook of %s failed: %s", site.id, str(exc)[:200])
            return
        metrics.rising_webhooks.labels("sent").inc()

    async def close(self) -> None:
        """Let posts in flight finish (each is bounded by its timeout)."""
        if self._posts:
            await asyncio.wait(list(self._posts), timeout=POST_TIMEOUT + 1)


def _send(url: str, body: dict[str, object]) -> None:
    data = json.dumps(body, ensure_ascii=False).encode()
    request = urllib.request.Request(
        url, data=data, method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=POST_TIMEOUT) as answer:
        answer.read(1024)
