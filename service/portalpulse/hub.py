"""This process's connections per site, the tick that flushes presence to the
store, and the fan-out of snapshots.

Transports never wait on the store: they record what happened here, and the
tick sends it all in one store round trip, reads every site's snapshot back,
encodes each changed snapshot once and offers it to every local connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from . import metrics, protocol, sources
from .config import ServerSettings, SiteSettings
from .dashboard_feed import dashboard_frame
from .domain import (
    OpKind,
    PresenceOp,
    SiteBatch,
    SiteSnapshot,
    VisitAttrs,
    day_keys,
    local_hour,
)
from .protocol import Page
from .store.base import Store, StoreUnavailable

log = logging.getLogger("portalpulse.hub")

URGENT_DELAY = 0.05
"""Arrivals and departures are flushed this soon, not at the next tick, so that
other instances count them in their next snapshot."""

FANOUT_SLICE = 1000
"""Connections written to between two yields to the event loop in one fan-out."""

STORE_CHECK_EVERY = 5.0
"""Seconds between store pings while no site needs a flush."""

MAX_PENDING_OPS = 200_000
"""Per site, while the store is down: the oldest operations are dropped beyond this."""


class Subscriber(Protocol):
    """A local connection that receives a site's snapshots."""

    def offer(self, frame: str) -> None:
        """Take the newest snapshot frame; never block the caller."""

    def shut(self, code: int, reason: str = "") -> None:
        """Close the connection (shutting down)."""


@dataclass(slots=True)
class VisitorHere:
    """A visitor's connections on this instance and the pages they have open."""

    connections: int = 0
    pages: Counter[str] = field(default_factory=Counter)
    refresh_due: float = 0.0
    engaged: int = 0  # how many of its connections here are engaged
    attrs: VisitAttrs | None = None  # where the visit came from, from its first hello

    def close_pages(self, paths: Iterable[str]) -> tuple[str, ...]:
        """One connection closed these pages; those no other connection has open."""
        gone = []
        for path in paths:
            self.pages[path] -= 1
            if self.pages[path] <= 0:
                del self.pages[path]
                gone.append(path)
        return tuple(gone)


class SiteHub:
    def __init__(self, site: SiteSettings) -> None:
        self.site = site
        self.subscribers: set[Subscriber] = set()
        self.watchers: set[Subscriber] = set()  # editors' dashboards
        self.hosts = sources.hosts_of(site.origins)
        self.dashboard_frame: str | None = None
        self.dashboard_key: tuple[object, ...] | None = None
        # Keep reading the site a while after its last local visitor, until the
        # store has seen them leave; then its gauge is withdrawn, not left stale.
        self.linger_until = 0.0
        self.visitors: dict[str, VisitorHere] = {}
        # (monotonic time of the event, its op): the op's age is set when it is flushed.
        self.ops: deque[tuple[float, PresenceOp]] = deque()
        self.views: Counter[str] = Counter()
        self.total_views = 0
        self.titles: dict[str, str] = {}
        # visitor -> until, in the order of `until` (each beat moves its visitor to
        # the end), so expiry pops from the front and never scans the rest.
        self.http_visitors: dict[str, float] = {}
        self.snapshot: SiteSnapshot | None = None
        self.snapshot_at = 0.0
        self.frame: str | None = None
        self.pushed_key: tuple[object, ...] | None = None
        self.pushed_at = 0.0

    @property
    def busy(self) -> bool:
        return bool(
            self.subscribers
            or self.watchers
            or self.ops
            or self.views
            or self.total_views
            or self.http_visitors
        )

    def ranked(self, pages: Iterable[Page]) -> tuple[str, ...]:
        """The pages that may trend; excluded ones still count as online and as views."""
        return tuple(p.path for p in pages if not protocol.is_excluded(p.path, self.site.exclude))

    def count_views(self, pages: Iterable[Page]) -> None:
        for page in pages:
            self.total_views += 1
            if not protocol.is_excluded(page.path, self.site.exclude):
                self.views[page.path] += 1

    def note_titles(self, pages: Iterable[Page]) -> None:
        for page in pages:
            if page.title:
                self.titles[page.path] = page.title

    def attrs_of(self, hello: protocol.Hello) -> VisitAttrs:
        """Where a visit's first page came from, and on what."""
        referrer = next((p.referrer for p in hello.pages if p.referrer), "")
        return VisitAttrs(sources.classify(referrer, self.hosts), hello.device)

    def add_op(
        self,
        kind: OpKind,
        visitor: str,
        pages: tuple[str, ...],
        at: float,
        engaged: bool | None = None,
        attrs: VisitAttrs | None = None,
    ) -> None:
        self.ops.append((at, PresenceOp(kind, visitor, pages, 0.0, engaged, attrs)))
        while len(self.ops) > MAX_PENDING_OPS:
            self.ops.popleft()

    def empty_batch(self, server: ServerSettings, wall: float) -> SiteBatch:
        today, yesterday = day_keys(wall + server.clock_offset, server.zone)
        return SiteBatch(
            hour=local_hour(wall + server.clock_offset, server.zone),
            site=self.site.id,
            presence_ttl=server.presence_ttl,
            leave_grace=server.leave_grace,
            trending_window=server.trending_window,
            trending_size=self.site.trending_size,
            max_pages=self.site.max_pages,
            day=today,
            yesterday=yesterday,
            want_yesterday=True,
        )

    def take_batch(self, server: ServerSettings, now: float, wall: float) -> SiteBatch:
        """Everything recorded since the last flush; `give_back` undoes it."""
        batch = self.empty_batch(server, wall)
        batch.ops = [
            PresenceOp(o.kind, o.visitor, o.pages, max(0.0, now - at), o.engaged, o.attrs)
            for at, o in self.ops
        ]
        batch.detail = bool(self.watchers)
        batch.views = dict(self.views)
        batch.total_views = self.total_views
        batch.titles = self.titles
        self._taken: tuple[list[tuple[float, PresenceOp]], Counter[str], int, dict[str, str]] = (
            list(self.ops),
            self.views,
            self.total_views,
            self.titles,
        )
        self.ops, self.views, self.total_views, self.titles = deque(), Counter(), 0, {}
        return batch

    def give_back(self) -> None:
        """The store did not take the last batch: keep it for the next tick."""
        ops, views, total_views, titles = self._taken
        self.ops.extendleft(reversed(ops))
        self.views.update(views)
        self.total_views += total_views
        self.titles = {**titles, **self.titles}


class Hub:
    def __init__(
        self, server: ServerSettings, sites: dict[str, SiteSettings], store: Store
    ) -> None:
        self.server = server
        self.store = store
        self.sites = {site_id: SiteHub(site) for site_id, site in sites.items()}
        self.refresh_every = min(
            server.beat_interval,
            max(server.push_interval, (server.presence_ttl - server.push_interval) / 2),
        )
        self._refresh: deque[tuple[float, str, str]] = deque()  # (due, site, visitor)
        self._urgent = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._store_ok = True
        self._waiters: list[asyncio.Future[None]] = []
        self._checked_at = 0.0
        self.closing = False

    # -- what transports report ------------------------------------------------

    def join(self, site_id: str, subscriber: Subscriber, hello: protocol.Hello) -> None:
        """A live connection said hello."""
        hub = self.sites[site_id]
        now = time.monotonic()
        hub.subscribers.add(subscriber)
        visitor = hello.visitor
        here = hub.visitors.get(visitor)
        first = here is None
        if here is None:
            here = hub.visitors[visitor] = VisitorHere(refresh_due=now + self.refresh_every)
            here.attrs = hub.attrs_of(hello)
            self._refresh.append((here.refresh_due, site_id, visitor))
        here.connections += 1
        here.engaged += hello.engaged
        ranked = hub.ranked(hello.pages)
        here.pages.update(ranked)
        hub.note_titles(hello.pages)
        if not hello.resume:
            hub.count_views(hello.pages)
        kind = OpKind.HOLD if first else OpKind.REFRESH
        hub.add_op(kind, visitor, ranked, now, here.engaged > 0, here.attrs)
        self._urgent.set()

    def engage(self, site_id: str, visitor: str, was: bool, engaged: bool) -> None:
        """A connection's engagement changed; the visitor's only when no other tab is."""
        hub = self.sites[site_id]
        here = hub.visitors.get(visitor)
        if here is None or was == engaged:
            return
        before = here.engaged > 0
        here.engaged += 1 if engaged else -1
        if (here.engaged > 0) != before:
            hub.add_op(OpKind.REFRESH, visitor, tuple(here.pages), time.monotonic(), not before)

    def change_pages(
        self, site_id: str, visitor: str, old: tuple[Page, ...], new: tuple[Page, ...]
    ) -> None:
        """A connection's set of pages changed: new ones are views, closed ones lose a reader."""
        hub = self.sites[site_id]
        here = hub.visitors.get(visitor)
        if here is None:
            return
        now = time.monotonic()
        old_paths = {p.path for p in old}
        opened = tuple(p for p in new if p.path not in old_paths)
        new_paths = {p.path for p in new}
        closed = hub.ranked(p for p in old if p.path not in new_paths)
        hub.note_titles(new)
        hub.count_views(opened)
        ranked_opened = hub.ranked(opened)
        here.pages.update(ranked_opened)
        gone = here.close_pages(closed)
        if ranked_opened:
            hub.add_op(OpKind.REFRESH, visitor, ranked_opened, now, here.engaged > 0)
        if gone:
            hub.add_op(OpKind.CLOSE_PAGES, visitor, gone, now)

    def part(
        self,
        site_id: str,
        subscriber: Subscriber,
        visitor: str | None,
        pages: tuple[Page, ...],
        engaged: bool = False,
    ) -> None:
        """A live connection ended (after hello, when `visitor` is set)."""
        hub = self.sites[site_id]
        hub.subscribers.discard(subscriber)
        if visitor is None:
            return
        here = hub.visitors.get(visitor)
        if here is None:
            return
        now = time.monotonic()
        here.connections -= 1
        ranked = hub.ranked(pages)
        if engaged and here.connections > 0:
            self.engage(site_id, visitor, True, False)
        if here.connections <= 0:
            del hub.visitors[visitor]
            hub.add_op(OpKind.LEAVE, visitor, tuple(set(ranked) | set(here.pages)), now)
            self._urgent.set()
            return
        gone = here.close_pages(ranked)
        if gone:
            hub.add_op(OpKind.CLOSE_PAGES, visitor, gone, now)

    def http_beat(self, site_id: str, hello: protocol.Hello) -> None:
        """A beat over HTTP (the fallback, or sendBeacon on unload)."""
        hub = self.sites[site_id]
        now = time.monotonic()
        ranked = hub.ranked(hello.pages)
        hub.note_titles(hello.pages)
        if hello.bye:
            hub.http_visitors.pop(hello.visitor, None)
            hub.add_op(OpKind.BYE, hello.visitor, ranked, now)
        else:
            if not hello.resume:
                hub.count_views(hello.pages)
            hub.http_visitors.pop(hello.visitor, None)
            hub.http_visitors[hello.visitor] = now + self.server.presence_ttl
            attrs = hub.attrs_of(hello)
            hub.add_op(OpKind.BEAT, hello.visitor, ranked, now, hello.engaged, attrs)
        self._urgent.set()

    # -- the tick --------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="portalpulse-tick")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def drain(self) -> None:
        """Shutting down: every local visitor leaves (they reconnect elsewhere within
        `leave_grace`, so the count does not dip), and the store hears it now."""
        self.closing = True
        now = time.monotonic()
        for hub in self.sites.values():
            for visitor, here in hub.visitors.items():
                hub.add_op(OpKind.LEAVE, visitor, tuple(here.pages), now)
            hub.visitors.clear()
        try:
            await self.flush_round(push=False)
        except Exception:
            log.warning("could not tell the store about departing visitors")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self.server.push_interval
        next_tick = loop.time() + interval
        urgent_done = False
        while True:
            wait = next_tick - loop.time()
            if wait > 0 and not urgent_done:
                try:
                    async with asyncio.timeout(wait):
                        await self._urgent.wait()
                except TimeoutError:
                    pass
            elif wait > 0:
                await asyncio.sleep(wait)
            is_tick = loop.time() >= next_tick
            if not is_tick:
                # Arrivals and departures: one early flush per tick, gathered briefly.
                await asyncio.sleep(URGENT_DELAY)
                urgent_done = True
            else:
                next_tick = max(next_tick + interval, loop.time() + interval / 2)
                urgent_done = False
            self._urgent.clear()
            started = time.perf_counter()
            try:
                await self.flush_round(push=True)
            except Exception:
                log.exception("tick failed")
            if is_tick:
                metrics.tick_seconds.observe(time.perf_counter() - started)

    def _due_refreshes(self, now: float) -> None:
        """Live connections keep their visitors present, with no help from page timers."""
        queue = self._refresh
        while queue and queue[0][0] <= now:
            due, site_id, visitor = queue.popleft()
            hub = self.sites[site_id]
            here = hub.visitors.get(visitor)
            if here is None or here.refresh_due != due:
                continue
            hub.add_op(OpKind.REFRESH, visitor, tuple(here.pages), now, here.engaged > 0)
            here.refresh_due = now + self.refresh_every
            queue.append((here.refresh_due, site_id, visitor))

    async def check_store(self) -> None:
        """With no site to flush, a ping keeps `portalpulse_store_up` true to the store."""
        self._checked_at = time.monotonic()
        try:
            await self.store.ping()
        except StoreUnavailable as exc:
            self._store_state(exc)
            return
        self._store_state(None)

    def _store_state(self, error: StoreUnavailable | None) -> None:
        """Log and export the store's state once per change."""
        if error is not None:
            metrics.store_up.set(0)
            if self._store_ok:
                log.error("store unavailable: %s", error)
            self._store_ok = False
            return
        if not self._store_ok:
            log.info("store is back")
            metrics.store_reconnects.inc()
        self._store_ok, self._checked_at = True, time.monotonic()
        metrics.store_up.set(1)

    async def settled(self, timeout: float) -> None:
        """Wait until what was recorded so far has reached the store (or `timeout`)."""
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._urgent.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(waiter), timeout)

    async def flush_round(self, push: bool) -> None:
        waiters, self._waiters = self._waiters, []
        try:
            await self._flush_round(push)
        finally:
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    async def _flush_round(self, push: bool) -> None:
        now = time.monotonic()
        wall = time.time()
        self._due_refreshes(now)
        linger = self.server.presence_ttl + self.server.leave_grace + 2 * self.server.push_interval
        hubs = []
        for hub in self.sites.values():
            if hub.busy:
                hub.linger_until = now + linger
            if now < hub.linger_until:
                hubs.append(hub)
            elif hub.linger_until:
                hub.linger_until = 0.0
                metrics.online_visitors.remove(hub.site.id)
        for hub in hubs:
            kept = hub.http_visitors
            while kept and kept[next(iter(kept))] <= now:
                del kept[next(iter(kept))]
        metrics.connections.labels("http").set(sum(len(h.http_visitors) for h in hubs))
        if not hubs:
            if now - self._checked_at >= STORE_CHECK_EVERY:
                await self.check_store()
            return
        batches = [hub.take_batch(self.server, now, wall) for hub in hubs]
        metrics.store_flush_ops.observe(sum(b.size for b in batches))
        started = time.perf_counter()
        try:
            snapshots = await self.store.flush(batches)
        except StoreUnavailable as exc:
            metrics.store_errors.labels("flush").inc()
            self._store_state(exc)
            for hub in hubs:
                hub.give_back()
            return
        metrics.store_seconds.labels("flush").observe(time.perf_counter() - started)
        self._store_state(None)
        for hub, snap in zip(hubs, snapshots, strict=True):
            hub.snapshot, hub.snapshot_at = snap, now
            metrics.online_visitors.labels(hub.site.id).set(snap.online)
            if push and not self.closing:
                await self._push(hub, snap, now)
                if snap.detail is not None:
                    self._push_dashboard(hub, snap)

    async def _push(self, hub: SiteHub, snap: SiteSnapshot, now: float) -> None:
        key = snap.content_key()
        if key == hub.pushed_key:
            return
        if now - hub.pushed_at < self.server.push_interval * 0.9:
            return  # too soon after the last push; the next tick sends it
        hub.frame = protocol.snapshot_frame(snap, hub.site)
        hub.pushed_key, hub.pushed_at = key, now
        started = time.perf_counter()
        frame = hub.frame
        subscribers = list(hub.subscribers)
        for first in range(0, len(subscribers), FANOUT_SLICE):
            if first:
                # Let pongs, beats and new connections in between slices.
                await asyncio.sleep(0)
            for subscriber in subscribers[first : first + FANOUT_SLICE]:
                subscriber.offer(frame)
        metrics.push_seconds.observe(time.perf_counter() - started)

    def _push_dashboard(self, hub: SiteHub, snap: SiteSnapshot) -> None:
        frame, key = dashboard_frame(snap, hub.site)
        hub.dashboard_frame = frame
        if key == hub.dashboard_key:
            return
        hub.dashboard_key = key
        for watcher in list(hub.watchers):
            watcher.offer(frame)

    # -- editors' dashboards: one frame per site per tick, whatever the number of editors --

    def watch(self, site_id: str, watcher: Subscriber) -> None:
        self.sites[site_id].watchers.add(watcher)

    def unwatch(self, site_id: str, watcher: Subscriber) -> None:
        self.sites[site_id].watchers.discard(watcher)

    async def read_dashboard(self, site_id: str) -> str:
        """The site's dashboard frame now (for a dashboard that just connected)."""
        hub = self.sites[site_id]
        if hub.dashboard_frame is not None and hub.watchers:
            return hub.dashboard_frame
        batch = hub.empty_batch(self.server, time.time())
        batch.detail = True
        (snap,) = await self.store.flush([batch])
        frame, _ = dashboard_frame(snap, hub.site)
        return frame

    async def history(self, site_id: str, minutes: int) -> list[tuple[float, int]]:
        return await self.store.history(site_id, minutes)

    # -- reads -----------------------------------------------------------------

    async def read_snapshot(self, site_id: str) -> SiteSnapshot:
        """The site's snapshot: the tick's own when fresh, else straight from the store."""
        hub = self.sites[site_id]
        now = time.monotonic()
        if hub.snapshot is not None and now - hub.snapshot_at <= self.server.push_interval * 1.5:
            return hub.snapshot
        batch = hub.empty_batch(self.server, time.time())
        started = time.perf_counter()
        try:
            (snap,) = await self.store.flush([batch])
        except StoreUnavailable:
            metrics.store_errors.labels("read").inc()
            raise
        metrics.store_seconds.labels("read").observe(time.perf_counter() - started)
        hub.snapshot, hub.snapshot_at = snap, now
        return snap

    def current_frame(self, site_id: str) -> str | None:
        """The latest snapshot frame, for a connection that just said hello."""
        hub = self.sites[site_id]
        if hub.snapshot is None:
            return None
        if hub.frame is None or hub.pushed_key != hub.snapshot.content_key():
            return protocol.snapshot_frame(hub.snapshot, hub.site)
        return hub.frame
