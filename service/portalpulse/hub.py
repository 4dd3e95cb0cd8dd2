"""The tick: it flushes what this instance saw to the store, reads every busy
site's snapshot back, and hands each to the fan-out; also the store's health
and the snapshot cache that HTTP answers read.

Transports never wait on the store: they report events here, which the ledger
records (`ledger.py`); the tick sends them all in one store round trip, and
the fan-out (`fanout.py`) offers each changed snapshot, encoded once, to every
local connection of the site.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, replace

from . import metrics
from .clock import next_instant
from .config import ServerSettings, SiteSettings
from .dashboard_feed import dashboard_frame
from .deltas import SiteFields
from .domain import SiteSnapshot, calendar_at
from .fanout import Fanout, Reader, Subscriber
from .ledger import Ledger
from .protocol import Hello, Page
from .rising import MAX_SAMPLE_GAP
from .rising_webhook import RisingAlerts
from .singleflight import SingleFlight
from .store.base import Store, StoreUnavailable

log = logging.getLogger("portalpulse.hub")

URGENT_DELAY = 0.05
"""Arrivals and departures are flushed this soon, not at the next tick, so that
other instances count them in their next snapshot."""

STORE_CHECK_EVERY = 5.0
"""Seconds between store pings while no site needs a flush."""

REFUSALS_LOGGED_EVERY = 60.0
"""Seconds between log lines about HTTP-beat visitors refused (a flood logs little)."""

PARKED_AT_MOST = MAX_SAMPLE_GAP / 2
"""Seconds a quiet site goes unticked at most, whatever the store vouches for:
its rising averages then lose no time (`RisingTracker.hold`)."""


@dataclass(slots=True)
class SiteRead:
    """The site's last snapshot, and how long the tick keeps reading it."""

    snapshot: SiteSnapshot | None = None
    snapshot_at: float = 0.0  # when the store last answered it (monotonic)
    taken_at: float = 0.0  # when the store first answered it (`snapshot.ts` then)
    # The fan-out put off offering it (too soon after the last push): the next tick
    # offers it even when the store answers the same snapshot again.
    unpushed: bool = False
    # Keep reading the site a while after its last local visitor, until the
    # store has seen them leave; then its gauge is withdrawn, not left stale.
    linger_until: float = 0.0
    # What its gauge shows: set again only when it changes (a labelled lookup per
    # site and tick was a third of a quiet site's CPU).
    shown_online: int | None = None

    def stamped(self, snap: SiteSnapshot) -> SiteSnapshot:
        """`snap`; when it is the one held, with the `ts` of the store's last answer."""
        if snap is not self.snapshot or self.snapshot_at <= self.taken_at:
            return snap
        return replace(snap, ts=snap.ts + (self.snapshot_at - self.taken_at))

    def answered(self, snap: SiteSnapshot, now: float, store_now: float) -> bool:
        """The store answered `snap` at `now` (monotonic; `store_now`: the store's time,
        near enough): False when it is the snapshot already held (a quiet site: the
        store answers the very object, store/redis_flush.py)."""
        self.snapshot_at = now
        if snap is self.snapshot:
            return False
        # A snapshot held in the store since before (it has not changed) is as old as its ts.
        self.snapshot, self.taken_at = snap, now - max(0.0, store_now - snap.ts)
        return True


class Hub:
    def __init__(
        self, server: ServerSettings, sites: dict[str, SiteSettings], store: Store
    ) -> None:
        self.server = server
        self.store = store
        self.ledger = Ledger(
            server, sites.values(), store.holds if store.holds_by_instance else None
        )
        self.fanout = Fanout(sites, server.push_interval)
        self.reads = {site_id: SiteRead() for site_id in sites}
        # The sites the tick looks at: those with a visitor, a listener or news
        # here, and those lingering after (a configured site nobody reads costs
        # nothing a tick). In the order they came.
        self._active: dict[str, None] = {}
        # Quiet sites the tick skips, each until a monotonic time: nothing new here,
        # nothing for a dashboard or the rising averages, and the store vouches that
        # their snapshot holds until then (`Store.quiet_until`). Anything reported
        # for a site, or the store's word (`Store.take_woken`), ends it at once.
        self._parked: dict[str, float] = {}
        self._calendar: tuple[str, str, int] | None = None  # of the last tick
        self.changed_at = float("-inf")  # monotonic time a tick last had a new snapshot
        # One store read in flight per site, whoever asks (see singleflight.py).
        self._reads: SingleFlight[str, SiteSnapshot] = SingleFlight()
        self._dashboard_reads: SingleFlight[str, str] = SingleFlight()
        self.rising = RisingAlerts(server, store)  # rising articles, and their webhook
        self._urgent = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._store_ok = True
        self._waiters: list[asyncio.Future[None]] = []
        self._checked_at = 0.0
        self.closing = False
        # New HTTP-beat visitors refused since the last log line about them, and when.
        self._refused = 0
        self._refused_logged_at = float("-inf")

    # -- what transports report ------------------------------------------------

    def join(self, site_id: str, subscriber: Reader, hello: Hello) -> None:
        """A live connection said hello: it gets the site's snapshots from now on."""
        self.fanout.subscribe(site_id, subscriber)
        self.ledger.join(site_id, hello, time.monotonic())
        self._wake(site_id)
        self._urgent.set()

    def _wake(self, site_id: str) -> None:
        """Something happened on the site here: the next tick looks at it."""
        self._active[site_id] = None
        self._parked.pop(site_id, None)

    def engage(self, site_id: str, visitor: str, was: bool, engaged: bool) -> None:
        self.ledger.engage(site_id, visitor, was, engaged, time.monotonic())
        self._wake(site_id)

    def change_pages(
        self, site_id: str, visitor: str, old: tuple[Page, ...], new: tuple[Page, ...]
    ) -> None:
        self.ledger.change_pages(site_id, visitor, old, new, time.monotonic())
        self._wake(site_id)

    def part(
        self,
        site_id: str,
        subscriber: Reader,
        visitor: str | None,
        pages: tuple[Page, ...],
        engaged: bool = False,
    ) -> None:
        """A live connection ended (after hello, when `visitor` is set)."""
        self.fanout.unsubscribe(site_id, subscriber)
        self._wake(site_id)
        if visitor is not None and self.ledger.part(
            site_id, visitor, pages, engaged, time.monotonic()
        ):
            self._urgent.set()

    def http_beat(self, site_id: str, hello: Hello) -> bool:
        """A beat over HTTP (the fallback, or sendBeacon on unload). False, nothing
        counted, when this instance keeps `max_http_visitors` already and the beat's
        visitor is not one of them."""
        now = time.monotonic()
        self._wake(site_id)
        if not self.ledger.http_beat(site_id, hello, now):
            self._refused += 1
            if now - self._refused_logged_at >= REFUSALS_LOGGED_EVERY:
                log.info(
                    "refused %d new visitor(s) on HTTP beats: %d kept here already "
                    "(server.max_http_visitors)",
                    self._refused,
                    self.ledger.http_visitor_count(),
                )
                self._refused, self._refused_logged_at = 0, now
            return False
        self._urgent.set()
        return True

    # -- the tick --------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="portalpulse-tick")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.rising.close()

    async def drain(self) -> None:
        """Shutting down: every local visitor leaves (they reconnect elsewhere within
        `leave_grace`, so the count does not dip), and the store hears it now."""
        self.closing = True
        self.ledger.leave_all(time.monotonic())
        self._parked.clear()
        try:
            await self.flush_round(push=False)
        except Exception:
            log.warning("could not tell the store about departing visitors")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self.server.push_interval
        next_tick = next_instant(loop.time(), interval)
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
                next_tick += interval
                if next_tick < loop.time() + interval / 2:  # overrun: the next instant
                    next_tick = next_instant(loop.time() + interval / 2, interval)
                urgent_done = False
            self._urgent.clear()
            started = time.perf_counter()
            try:
                await self.flush_round(push=True)
            except Exception:
                log.exception("tick failed")
            if is_tick:
                metrics.tick_seconds.observe(time.perf_counter() - started)

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

    def _sites_to_flush(self, now: float, calendar: tuple[str, str, int]) -> list[str]:
        """The sites this tick flushes: every active one not parked."""
        parked = self._parked
        if calendar != self._calendar:
            self._calendar = calendar
            parked.clear()  # a new hour: every quiet batch is new
        for site_id in self.ledger.due_refreshes(now):
            parked.pop(site_id, None)
        for site_id in self.store.take_woken():
            parked.pop(site_id, None)
        linger = self.server.presence_ttl + self.server.leave_grace + 2 * self.server.push_interval
        busy, gone = [], []
        for site_id in self._active:
            wake = parked.get(site_id)
            if wake is not None:
                if now < wake:
                    continue
                del parked[site_id]
            read = self.reads[site_id]
            if self.ledger.sites[site_id].busy or self.fanout.listened(site_id):
                read.linger_until = now + linger
            if now < read.linger_until:
                busy.append(site_id)
                self.ledger.expire_http(site_id, now)
                continue
            gone.append(site_id)
            if read.linger_until:
                read.linger_until, read.shown_online = 0.0, None
                metrics.online_visitors.remove(site_id)
        for site_id in gone:
            del self._active[site_id]
        metrics.sites_parked.set(len(parked))
        return busy

    def _park(self, site_id: str, now: float) -> None:
        """Skip the quiet site in the ticks while the store vouches for it."""
        ledger = self.ledger.sites[site_id]
        if (
            ledger.quiet  # nothing came in while the flush was out
            and not ledger.http_visitors  # expired here each tick
            and not self.fanout.watched(site_id)
            and self.rising.idle(site_id)
            and not self.closing
        ):
            until = self.store.quiet_until(site_id)
            if until > now:
                self._parked[site_id] = min(until, now + PARKED_AT_MOST)

    async def _flush_round(self, push: bool) -> None:
        now = time.monotonic()
        wall = time.time()
        calendar = calendar_at(wall + self.server.clock_offset, self.server.zone)
        busy = self._sites_to_flush(now, calendar)
        metrics.connections.labels("http").set(self.ledger.http_visitor_count())
        if not busy:
            if now - self._checked_at >= STORE_CHECK_EVERY:
                await self.check_store()
            return
        batches = [
            self.ledger.sites[site_id].take_batch(now, wall, self.fanout.watched(site_id), calendar)
            for site_id in busy
        ]
        metrics.store_flush_ops.observe(sum(b.size for b in batches))
        started = time.perf_counter()
        try:
            snapshots = await self.store.flush(batches)
        except StoreUnavailable as exc:
            metrics.store_errors.labels("flush").inc()
            self._store_state(exc)
            for site_id in busy:
                self.ledger.sites[site_id].give_back()
            return
        metrics.store_seconds.labels("flush").observe(time.perf_counter() - started)
        if not self._store_ok:
            if self.ledger.take_dropped():
                # A `leave` may be among the operations dropped in the outage: under a
                # new id, this instance holds its live visitors again, and the store
                # lets go of whatever only the old id held once it is not live.
                self.store.renew_identity()
            # The outage may have outlived this instance's liveness in the store, and
            # so its visitors there (a flush cut off by a timeout still runs late):
            # hold them all again.
            for site_id in self.ledger.sites:
                self.ledger.rehold(site_id, now)
        self._store_state(None)
        for site_id in self.store.take_lapsed():
            self.ledger.rehold(site_id, now)
        push = push and not self.closing
        store_now = wall + self.server.clock_offset
        for site_id, snap in zip(busy, snapshots, strict=True):
            read = self.reads[site_id]
            site = self.ledger.sites[site_id].site
            if read.answered(snap, now, store_now):
                self.changed_at = now
                if snap.online != read.shown_online:
                    metrics.online_visitors.labels(site_id).set(snap.online)
                    read.shown_online = snap.online
                self.rising.observe(site, snap)
            elif not read.unpushed:
                # A quiet site: no gauge, no push; the rising averages count the time.
                self.rising.hold(site, snap, snap.ts + (now - read.taken_at))
                self._park(site_id, now)
                continue
            if push:
                read.unpushed = not await self.fanout.push(site_id, snap, now)
                if snap.detail is not None:
                    self.fanout.push_dashboard(site_id, snap, self.rising.current(site_id))

    # -- editors' dashboards: one frame per site per tick, whatever the number of editors --

    def watch(self, site_id: str, watcher: Subscriber) -> None:
        self.fanout.watch(site_id, watcher)
        self._wake(site_id)

    def unwatch(self, site_id: str, watcher: Subscriber) -> None:
        self.fanout.unwatch(site_id, watcher)

    async def read_dashboard(self, site_id: str) -> str:
        """The site's dashboard frame now (for a dashboard that just connected)."""
        frame = self.fanout.current_dashboard(site_id)
        if frame is not None:
            return frame
        return await self._dashboard_reads.run(site_id, lambda: self._read_dashboard(site_id))

    async def _read_dashboard(self, site_id: str) -> str:
        ledger = self.ledger.sites[site_id]
        batch = ledger.empty_batch(time.time())
        batch.detail = True
        (snap,) = await self.store.flush([batch])
        frame, _ = dashboard_frame(snap, ledger.site, self.rising.current(site_id))
        return frame

    async def history(self, site_id: str, minutes: int) -> list[tuple[float, int]]:
        return await self.store.history(site_id, minutes)

    # -- reads -----------------------------------------------------------------

    async def read_snapshot(self, site_id: str) -> SiteSnapshot:
        """The site's snapshot: the tick's own when fresh, else from the store, in one
        read shared by every caller that asks while it runs (newcomers, stats and
        badges on a cold instance: a storm costs one read per site, not one each)."""
        read = self.reads[site_id]
        now = time.monotonic()
        if read.snapshot is not None and now < self._parked.get(site_id, 0.0):
            read.snapshot_at = now  # the store vouches for it until then
        if read.snapshot is not None and now - read.snapshot_at <= self.server.push_interval * 1.5:
            return read.stamped(read.snapshot)
        return await self._reads.run(site_id, lambda: self._read_store(site_id))

    async def _read_store(self, site_id: str) -> SiteSnapshot:
        read = self.reads[site_id]
        now = time.monotonic()
        batch = self.ledger.sites[site_id].empty_batch(time.time())
        started = time.perf_counter()
        try:
            (snap,) = await self.store.flush([batch])
        except StoreUnavailable:
            metrics.store_errors.labels("read").inc()
            raise
        metrics.store_seconds.labels("read").observe(time.perf_counter() - started)
        if now >= read.snapshot_at:  # the tick may have read a newer one meanwhile
            read.answered(snap, now, time.time() + self.server.clock_offset)
        return read.stamped(snap)

    def current_fields(self, site_id: str) -> SiteFields | None:
        """The site's newest fields, for a connection with `want` that just said hello."""
        return self.fanout.current_fields(site_id, self.reads[site_id].snapshot)

    def current_frame(self, site_id: str) -> str | None:
        """The latest snapshot frame, for a connection that just said hello."""
        return self.fanout.current_frame(site_id, self.reads[site_id].snapshot)
