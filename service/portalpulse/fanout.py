"""Delivery of each site's frames to the connections that listen here: readers'
widgets (`Subscriber`s) and editors' dashboards (watchers).

A snapshot is encoded once per change and offered to every connection of the
site in one plain loop. `offer` never blocks: a connection whose socket takes
the frame at once gets it now, a blocked one keeps only the newest (see
`web/sender.py`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from . import metrics, protocol
from .config import SiteSettings
from .dashboard_feed import dashboard_frame
from .domain import SiteSnapshot

FANOUT_SLICE = 1000
"""Connections written to between two yields to the event loop in one fan-out."""


class Subscriber(Protocol):
    """A local connection that receives a site's frames."""

    def offer(self, frame: str) -> None:
        """Take the newest frame; never block the caller."""

    def shut(self, code: int, reason: str = "") -> None:
        """Close the connection (shutting down)."""


@dataclass(slots=True)
class Audience:
    """One site's listeners here, and the last frames they were sent."""

    site: SiteSettings
    subscribers: set[Subscriber] = field(default_factory=set)
    watchers: set[Subscriber] = field(default_factory=set)  # editors' dashboards
    frame: str | None = None
    pushed_key: tuple[object, ...] | None = None
    pushed_at: float = 0.0
    dashboard_frame: str | None = None
    dashboard_key: tuple[object, ...] | None = None


class Fanout:
    """Every site's audience on this instance."""

    def __init__(self, sites: Mapping[str, SiteSettings], push_interval: float) -> None:
        self.audiences = {site_id: Audience(site) for site_id, site in sites.items()}
        self.push_interval = push_interval

    def subscribe(self, site_id: str, subscriber: Subscriber) -> None:
        self.audiences[site_id].subscribers.add(subscriber)

    def unsubscribe(self, site_id: str, subscriber: Subscriber) -> None:
        self.audiences[site_id].subscribers.discard(subscriber)

    def watch(self, site_id: str, watcher: Subscriber) -> None:
        self.audiences[site_id].watchers.add(watcher)

    def unwatch(self, site_id: str, watcher: Subscriber) -> None:
        self.audiences[site_id].watchers.discard(watcher)

    def listened(self, site_id: str) -> bool:
        """Anyone here listens to the site."""
        audience = self.audiences[site_id]
        return bool(audience.subscribers or audience.watchers)

    def watched(self, site_id: str) -> bool:
        """An editor's dashboard here shows the site (its snapshots need the detail)."""
        return bool(self.audiences[site_id].watchers)

    def shut_all(self, code: int, reason: str) -> None:
        """Close every dashboard (shutting down; readers' connections close by the runtime)."""
        for audience in self.audiences.values():
            for watcher in list(audience.watchers):
                watcher.shut(code, reason)

    async def push(self, site_id: str, snap: SiteSnapshot, now: float) -> None:
        """Offer the site's snapshot to every reader here, when it changed and
        the last push is at least `push_interval` old."""
        audience = self.audiences[site_id]
        key = snap.content_key()
        if key == audience.pushed_key:
            return
        if now - audience.pushed_at < self.push_interval * 0.9:
            return  # too soon after the last push; the next tick sends it
        frame = audience.frame = protocol.snapshot_frame(snap, audience.site)
        audience.pushed_key, audience.pushed_at = key, now
        started = time.perf_counter()
        subscribers = list(audience.subscribers)
        for first in range(0, len(subscribers), FANOUT_SLICE):
            if first:
                # Let pongs, beats and new connections in between slices.
                await asyncio.sleep(0)
            for subscriber in subscribers[first : first + FANOUT_SLICE]:
                subscriber.offer(frame)
        metrics.push_seconds.observe(time.perf_counter() - started)

    def push_dashboard(
        self, site_id: str, snap: SiteSnapshot, rising: frozenset[str] = frozenset()
    ) -> None:
        """One dashboard frame per site per tick, whatever the number of editors;
        `rising`: the articles marked rising (rising_webhook.py)."""
        audience = self.audiences[site_id]
        frame, key = dashboard_frame(snap, audience.site, rising)
        audience.dashboard_frame = frame
        if key == audience.dashboard_key:
            return
        audience.dashboard_key = key
        for watcher in list(audience.watchers):
            watcher.offer(frame)

    def current_frame(self, site_id: str, snap: SiteSnapshot | None) -> str | None:
        """The frame of `snap` (the site's latest), for a connection that just said hello."""
        if snap is None:
            return None
        audience = self.audiences[site_id]
        if audience.frame is None or audience.pushed_key != snap.content_key():
            return protocol.snapshot_frame(snap, audience.site)
        return audience.frame

    def current_dashboard(self, site_id: str) -> str | None:
        """The dashboard frame of the last tick, while dashboards here keep it current."""
        audience = self.audiences[site_id]
        return audience.dashboard_frame if audience.watchers else None
