"""What this instance saw happen, per site, until the store hears it. No I/O.

Events come in from the transports (`join`, `engage`, `change_pages`, `part`,
`http_beat`), each with the monotonic time it happened; store operations go
out as one `SiteBatch` per site (`take_batch`, undone by `give_back` when the
store did not answer). Here are decided the rules a connection cannot see on
its own: three tabs of one visitor count once, a `resume` counts no views,
excluded pages count as online and as views but never trend, a visitor's last
connection closing is a departure.

The hub (`hub.py`) owns the clock and the store; this module only counts, so
it is tested in-process (tests/unit/test_ledger.py).
"""

from __future__ import annotations

import heapq
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from . import protocol, sources
from .config import ServerSettings, SiteSettings
from .domain import (
    CounterSet,
    OpKind,
    PresenceOp,
    SiteBatch,
    VisitAttrs,
    calendar_at,
    day_start,
)
from .protocol import Hello, Page

MAX_PENDING_OPS = 200_000
"""Per site, while the store is down: the oldest operations are dropped beyond this."""


@dataclass(slots=True)
class VisitorHere:
    """A visitor's connections on this instance and the pages they have open."""

    connections: int = 0
    pages: Counter[str] = field(default_factory=Counter)
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


@dataclass(slots=True)
class Taken:
    """What the last `take_batch` removed, so that `give_back` can restore it."""

    ops: list[tuple[float, PresenceOp]]
    titles: dict[str, str]
    sets: list[CounterSet] = field(default_factory=list)


NOTHING_TAKEN = Taken([], {})  # never changed: give_back only reads it
MAX_UNCONFIRMED = 16
"""Sets of views kept apart while the store fails, at most (then the oldest fold)."""


class SiteLedger:
    """One site's visitors here, and what the store has not heard yet."""

    def __init__(self, site: SiteSettings, server: ServerSettings) -> None:
        self.site = site
        self.server = server
        self.hosts = sources.hosts_of(site.origins)
        self.visitors: dict[str, VisitorHere] = {}
        # (monotonic time of the event, its op): the op's age is set when it is taken.
        self.ops: deque[tuple[float, PresenceOp]] = deque()
        self.views: Counter[str] = Counter()
        # (page, where the view came from, device) -> views, for the drill-down.
        self.arrivals: Counter[tuple[str, str, str]] = Counter()
        self.total_views = 0
        self.titles: dict[str, str] = {}
        # visitor -> until, in the order of `until` (each beat moves its visitor to
        # the end), so expiry pops from the front and never scans the rest.
        self.http_visitors: dict[str, float] = {}
        self._taken = NOTHING_TAKEN
        # Views the store may or may not have counted (its flush failed): sent again
        # under their tokens until a flush succeeds, so they count once either way.
        self.unconfirmed: list[CounterSet] = []
        # When this site's live visitors are next refreshed, all in one round (0: none
        # due): one batch carries them all, so the store runs one flush for them, not
        # one per visitor on its own schedule.
        self.refresh_at = 0.0
        # Operations were dropped (MAX_PENDING_OPS, in a long outage of the store): a
        # `leave` among them would leave its visitor held for good (see `Ledger`).
        self.dropped = False
        # The batch of a quiet tick, made once per calendar hour: it is never changed.
        self._quiet: tuple[tuple[str, str, int], SiteBatch] | None = None

    @property
    def busy(self) -> bool:
        """Something here for the store, or a visitor kept by HTTP beats."""
        return bool(
            self.ops or self.views or self.total_views or self.http_visitors or self.unconfirmed
        )

    @property
    def quiet(self) -> bool:
        """Nothing here for the store: a tick's batch would only read the snapshot."""
        return not (
            self.ops
            or self.views
            or self.total_views
            or self.titles
            or self.arrivals
            or self.unconfirmed
        )

    def ranked(self, pages: Iterable[Page]) -> tuple[str, ...]:
        """The pages that may trend; excluded ones still count as online and as views."""
        return tuple(p.path for p in pages if not protocol.is_excluded(p.path, self.site.exclude))

    def count_views(self, pages: Iterable[Page], device: str = "") -> None:
        site = self.site
        for page in pages:
            self.total_views += 1
            if not protocol.is_excluded(page.path, site.exclude):
                self.views[page.path] += 1
                source = sources.arrival(page.referrer, self.hosts, site.keep_query, site.exclude)
                self.arrivals[(page.path, source, device)] += 1

    def note_titles(self, pages: Iterable[Page]) -> None:
        for page in pages:
            if page.title:
                self.titles[page.path] = page.title

    def attrs_of(self, hello: Hello) -> VisitAttrs:
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
            self.dropped = True

    def expire_http(self, now: float) -> int:
        """Forget the visitors whose last HTTP beat is older than `presence_ttl`;
        how many (`Ledger.expire_http` keeps the count over every site)."""
        kept = self.http_visitors
        gone = 0
        while kept and kept[next(iter(kept))] <= now:
            del kept[next(iter(kept))]
            gone += 1
        return gone

    def empty_batch(self, wall: float) -> SiteBatch:
        """A batch that changes nothing: it only reads the site's snapshot."""
        server = self.server
        return self._batch_of(calendar_at(wall + server.clock_offset, server.zone))

    def _batch_of(self, calendar: tuple[str, str, int]) -> SiteBatch:
        server = self.server
        today, yesterday, hour = calendar
        return SiteBatch(
            hour=hour,
            site=self.site.id,
            presence_ttl=server.presence_ttl,
            leave_grace=server.leave_grace,
            trending_window=server.trending_window,
            trending_size=self.site.trending_size,
            max_pages=self.site.max_pages,
            day=today,
            yesterday=yesterday,
            want_yesterday=True,
            day_start=day_start(today, server.zone),
        )

    def take_batch(
        self,
        now: float,
        wall: float,
        detail: bool = False,
        calendar: tuple[str, str, int] | None = None,
    ) -> SiteBatch:
        """Everything recorded since the last take (with the dashboard's `detail`);
        `give_back` undoes it. A quiet site's batch is the same object every tick
        of the hour: nobody may change it. `calendar`: `calendar_at` of `wall`
        when the caller has it (one per tick, not one per site)."""
        quiet = self.quiet
        if quiet:
            self._taken = NOTHING_TAKEN
        if quiet and not detail:
            # A quiet site, the common case: nothing to take, nothing to allocate.
            if calendar is None:
                calendar = calendar_at(wall + self.server.clock_offset, self.server.zone)
            if self._quiet is None or self._quiet[0] != calendar:
                self._quiet = (calendar, self._batch_of(calendar))
            return self._quiet[1]
        batch = self.empty_batch(wall)
        batch.detail = detail
        if quiet:
            return batch
        batch.ops = [
            PresenceOp(o.kind, o.visitor, o.pages, max(0.0, now - at), o.engaged, o.attrs)
            for at, o in self.ops
        ]
        sets = self.unconfirmed
        if self.views or self.total_views or self.arrivals:
            token = uuid.uuid4().hex[:16]
            sets = [
                *sets,
                CounterSet(token, dict(self.views), self.total_views, dict(self.arrivals)),
            ]
        batch.counter_sets = sets
        for counted in sets:
            for page, n in counted.views.items():
                batch.views[page] = batch.views.get(page, 0) + n
            for key, n in counted.arrivals.items():
                batch.arrivals[key] = batch.arrivals.get(key, 0) + n
            batch.total_views += counted.total_views
        batch.titles = self.titles
        self._taken = Taken(list(self.ops), self.titles, sets)
        self.ops, self.views, self.total_views, self.titles = deque(), Counter(), 0, {}
        self.arrivals = Counter()
        self.unconfirmed = []
        return batch

    def give_back(self) -> None:
        """The store did not take the last batch: keep it for the next one. Its views
        stay in their sets, with their tokens (the store may have counted them)."""
        taken, self._taken = self._taken, NOTHING_TAKEN
        self.ops.extendleft(reversed(taken.ops))
        self.titles = {**taken.titles, **self.titles}
        sets = taken.sets
        if len(sets) > MAX_UNCONFIRMED:
            # A long outage: fold the oldest into one set under a new token. Should
            # one of them have run late, its views count twice: never lost.
            fold = sets[: len(sets) - MAX_UNCONFIRMED + 1]
            views: Counter[str] = Counter()
            arrivals: Counter[tuple[str, str, str]] = Counter()
            for counted in fold:
                views.update(counted.views)
                arrivals.update(counted.arrivals)
            total = sum(counted.total_views for counted in fold)
            folded = CounterSet(uuid.uuid4().hex[:16], dict(views), total, dict(arrivals))
            sets = [folded, *sets[len(fold) :]]
        self.unconfirmed = sets


REFRESH_AT_LEAST_EVERY = 30.0
"""Seconds: the longest a live visitor goes without a refresh in the store."""

REHOLD_EVERY = 600.0
"""Seconds between rounds that hold a site's live visitors again, in a store that
keeps them online through this instance's liveness (`Store.holds_by_instance`)."""


class Ledger:
    """Every site's ledger, and when each live visitor's presence is due a refresh."""

    def __init__(
        self,
        server: ServerSettings,
        sites: Iterable[SiteSettings],
        holds: Callable[[str], bool] | None = None,
    ) -> None:
        self.server = server
        self.sites = {site.id: SiteLedger(site, server) for site in sites}
        # A live connection keeps its visitor present by itself, whatever the
        # page's own timers do: twice per `presence_ttl`, so that a refresh the
        # store missed is retried on the next ticks long before it forgets the
        # visitor; and at least twice a minute, so that every minute's drill-down
        # sees every reader. Each refresh is a flush per site and instance: the
        # rarer, the less quiet sites cost Redis.
        self.refresh_every = min(
            REFRESH_AT_LEAST_EVERY,
            max(server.push_interval, (server.presence_ttl - server.push_interval) / 2),
        )
        # A store that keeps visitors held through this instance's liveness (Redis:
        # flush.lua's hold_on) needs no refresh: `holds(site)` says when it does so
        # for a site, and its rounds then only hold every visitor again (HOLD, not
        # REFRESH), every REHOLD_EVERY: a store that lost them (a restart, a
        # failover) has them back, and visitors whose `leave` was lost (`dropped`)
        # leave once the store's instance id is renewed.
        self.holds = holds
        self.round_kind = OpKind.REFRESH if holds is None else OpKind.HOLD
        self._rounds: list[tuple[float, str]] = []  # a heap of (refresh_at, site)
        self._http_kept = 0  # visitors kept by HTTP beats, every site's together

    def _round_every(self, site_id: str) -> float:
        holds = self.holds
        if holds is not None and holds(site_id):
            return max(self.refresh_every, REHOLD_EVERY)
        return self.refresh_every

    def rehold(self, site_id: str, now: float) -> None:
        """Hold the site's live visitors again on the next tick (the store lost them,
        or stopped keeping them through this instance)."""
        site = self.sites[site_id]
        if site.visitors and site.refresh_at != now:
            site.refresh_at = now
            heapq.heappush(self._rounds, (now, site_id))

    def take_dropped(self) -> bool:
        """Whether any site dropped operations since the last call."""
        dropped = False
        for site in self.sites.values():
            dropped = dropped or site.dropped
            site.dropped = False
        return dropped

    def join(self, site_id: str, hello: Hello, now: float) -> None:
        """A live connection said hello: its first for the visitor holds it here."""
        site = self.sites[site_id]
        visitor = hello.visitor
        here = site.visitors.get(visitor)
        first = here is None
        if here is None:
            here = site.visitors[visitor] = VisitorHere()
            here.attrs = site.attrs_of(hello)
            if not site.refresh_at:
                # The first refresh comes within `refresh_every` of this hold.
                site.refresh_at = now + self._round_every(site_id)
                heapq.heappush(self._rounds, (site.refresh_at, site_id))
        here.connections += 1
        here.engaged += hello.engaged
        ranked = site.ranked(hello.pages)
        here.pages.update(ranked)
        site.note_titles(hello.pages)
        if not hello.resume:
            site.count_views(hello.pages, hello.device)
        kind = OpKind.HOLD if first else OpKind.REFRESH
        site.add_op(kind, visitor, ranked, now, here.engaged > 0, here.attrs)

    def engage(self, site_id: str, visitor: str, was: bool, engaged: bool, now: float) -> None:
        """A connection's engagement changed; the visitor's only when no other tab is."""
        site = self.sites[site_id]
        here = site.visitors.get(visitor)
        if here is None or was == engaged:
            return
        before = here.engaged > 0
        here.engaged += 1 if engaged else -1
        if (here.engaged > 0) != before:
            site.add_op(OpKind.REFRESH, visitor, tuple(here.pages), now, not before)

    def change_pages(
        self, site_id: str, visitor: str, old: tuple[Page, ...], new: tuple[Page, ...], now: float
    ) -> None:
        """A connection's set of pages changed: new ones are views, closed ones lose a reader."""
        site = self.sites[site_id]
        here = site.visitors.get(visitor)
        if here is None:
            return
        old_paths = {p.path for p in old}
        opened = tuple(p for p in new if p.path not in old_paths)
        new_paths = {p.path for p in new}
        closed = site.ranked(p for p in old if p.path not in new_paths)
        site.note_titles(new)
        site.count_views(opened, here.attrs.device if here.attrs else "")
        ranked_opened = site.ranked(opened)
        here.pages.update(ranked_opened)
        gone = here.close_pages(closed)
        if ranked_opened:
            site.add_op(OpKind.REFRESH, visitor, ranked_opened, now, here.engaged > 0)
        if gone:
            site.add_op(OpKind.CLOSE_PAGES, visitor, gone, now)

    def part(
        self, site_id: str, visitor: str, pages: tuple[Page, ...], engaged: bool, now: float
    ) -> bool:
        """A live connection that had said hello ended. True when it was the visitor's
        last one here: a departure, which the store should hear soon."""
        site = self.sites[site_id]
        here = site.visitors.get(visitor)
        if here is None:
            return False
        here.connections -= 1
        ranked = site.ranked(pages)
        if engaged and here.connections > 0:
            self.engage(site_id, visitor, True, False, now)
        if here.connections <= 0:
            del site.visitors[visitor]
            site.add_op(OpKind.LEAVE, visitor, tuple(set(ranked) | set(here.pages)), now)
            return True
        gone = here.close_pages(ranked)
        if gone:
            site.add_op(OpKind.CLOSE_PAGES, visitor, gone, now)
        return False

    def http_visitor_count(self) -> int:
        """Visitors kept by HTTP beats here, on every site (kept as they come and
        go: no beat counts the sites)."""
        return self._http_kept

    def expire_http(self, site_id: str, now: float) -> None:
        """The site's visitors whose last HTTP beat is older than `presence_ttl` go."""
        self._http_kept -= self.sites[site_id].expire_http(now)

    def http_beat(self, site_id: str, hello: Hello, now: float) -> bool:
        """A beat over HTTP (the fallback, or sendBeacon on unload). False, and nothing
        counted, when it would keep one visitor more than `max_http_visitors`: the
        map is keyed by client input, so it has a hard bound (those kept go on)."""
        site = self.sites[site_id]
        known = site.http_visitors.pop(hello.visitor, None) is not None
        if not hello.bye and not known and self._http_kept >= self.server.max_http_visitors:
            return False
        self._http_kept -= known
        ranked = site.ranked(hello.pages)
        site.note_titles(hello.pages)
        if hello.bye:
            site.add_op(OpKind.BYE, hello.visitor, ranked, now)
            return True
        if not hello.resume:
            site.count_views(hello.pages, hello.device)
        site.http_visitors[hello.visitor] = now + self.server.presence_ttl
        self._http_kept += 1
        attrs = site.attrs_of(hello)
        site.add_op(OpKind.BEAT, hello.visitor, ranked, now, hello.engaged, attrs)
        return True

    def due_refreshes(self, now: float) -> list[str]:
        """Refresh the presence of every live visitor whose turn has come; the sites
        that have operations for the store now."""
        rounds = self._rounds
        sites = []
        while rounds and rounds[0][0] <= now:
            due, site_id = heapq.heappop(rounds)
            site = self.sites[site_id]
            if site.refresh_at != due:
                continue
            if not site.visitors:
                site.refresh_at = 0.0
                continue
            kind = self.round_kind
            for visitor, here in site.visitors.items():
                site.add_op(kind, visitor, tuple(here.pages), now, here.engaged > 0)
            sites.append(site_id)
            site.refresh_at = now + self._round_every(site_id)
            heapq.heappush(rounds, (site.refresh_at, site_id))
        return sites

    def leave_all(self, now: float) -> None:
        """Shutting down: every visitor held here leaves."""
        for site in self.sites.values():
            for visitor, here in site.visitors.items():
                site.add_op(OpKind.LEAVE, visitor, tuple(here.pages), now)
            site.visitors.clear()
