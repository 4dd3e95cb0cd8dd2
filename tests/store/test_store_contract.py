"""One contract for every store: embedded, one Redis, a real 3-master Redis Cluster.

Time passes by moving the store's clock (`clock_offset`), not by sleeping.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from portalpulse.store.base import (
    OpKind,
    PresenceOp,
    SiteBatch,
    SiteSnapshot,
    Store,
    VisitAttrs,
    day_keys,
)
from portalpulse.store.memory import MemoryStore
from portalpulse.store.redis import RedisStore, site_prefix
from support.processes import offset_to_local_noon

TTL, GRACE = 45.0, 5.0
ZONE = ZoneInfo("Asia/Ho_Chi_Minh")


@pytest.fixture(params=["memory", "redis", "cluster"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "memory":
        made: Store = MemoryStore(tmp_path / "data")
    elif request.param == "redis":
        server = request.getfixturevalue("redis")
        made = RedisStore(server.url)
    else:
        nodes = request.getfixturevalue("cluster")
        for node in nodes:
            node.cli("flushall")
        made = RedisStore(f"redis://127.0.0.1:{nodes[0].port}/0")
    # Start every test at noon, local time, of the next day: the hours a test
    # moves forward never cross a midnight unless it means to.
    made.clock_offset = offset_to_local_noon()
    await made.open()
    yield made
    await made.close()


def batch(
    site: str = "s1",
    *ops: PresenceOp,
    views: dict[str, int] | None = None,
    titles: dict[str, str] | None = None,
    total_views: int | None = None,
    store: Store | None = None,
    size: int = 10,
    max_pages: int = 10_000,
    window: float = 1800,
) -> SiteBatch:
    offset = store.clock_offset if store else 0.0
    today, yesterday = day_keys(time.time() + offset, ZONE)
    views = views or {}
    return SiteBatch(
        site=site,
        presence_ttl=TTL,
        leave_grace=GRACE,
        trending_window=window,
        trending_size=size,
        max_pages=max_pages,
        day=today,
        yesterday=yesterday,
        ops=list(ops),
        views=views,
        titles=titles or {},
        total_views=sum(views.values()) if total_views is None else total_views,
        want_yesterday=True,
    )


def hold(visitor: str, *pages: str, age: float = 0.0) -> PresenceOp:
    return PresenceOp(OpKind.HOLD, visitor, pages, age)


def leave(visitor: str, *pages: str) -> PresenceOp:
    return PresenceOp(OpKind.LEAVE, visitor, pages)


async def flush(store: Store, *ops: PresenceOp, site: str = "s1", **kw) -> SiteSnapshot:  # type: ignore[no-untyped-def]
    (snap,) = await store.flush([batch(site, *ops, store=store, **kw)])
    return snap


async def later(store: Store, seconds: float) -> None:
    store.clock_offset += seconds


async def test_new_visitors_are_online_and_counted_once(store: Store) -> None:
    snap = await flush(store, hold("v1" * 8, "/a"), hold("v2" * 8, "/a"), hold("v1" * 8, "/b"))
    assert snap.online == 2
    assert snap.today.visits == 2 and snap.total_visits == 2
    assert snap.today.visitors == 2
    assert snap.today.peak_online == 2 and snap.today.peak_at is not None


async def test_held_visitor_stays_while_refreshed_and_expires_after_ttl(store: Store) -> None:
    v = "held-visitor-0001"
    if store.holds_by_instance:
        # Redis keeps a visitor held through a connection online for as long as
        # the instance holding it is live there: no refresh needed, however long.
        observer = RedisStore(store.url, store.clock_offset)
        await observer.open()
        try:
            await flush(store, PresenceOp(OpKind.HOLD, v, ("/a", "/b"), 0.0, True))
            for _ in range(4):
                await later(store, TTL - 1)
                await flush(store)  # the instance is live: it flushes, or touches
            observer.clock_offset = store.clock_offset
            (snap,) = await observer.flush([batch("s1", store=observer)])
            assert snap.online == 1
            assert [(p.path, p.readers) for p in snap.trending] == [("/a", 1), ("/b", 1)]
            # The instance stops (no flush, no touch): the visitor leaves within the TTL.
            observer.clock_offset += TTL - 1
            (snap,) = await observer.flush([batch("s1", store=observer)])
            assert snap.online == 1
            observer.clock_offset += 2
            (snap,) = await observer.flush([batch("s1", store=observer)])
            assert snap.online == 0 and snap.trending == ()
        finally:
            await observer.close()
        return
    await flush(store, hold(v, "/a"))
    await later(store, TTL - 1)
    snap = await flush(store, PresenceOp(OpKind.REFRESH, v, ("/a",)))
    assert snap.online == 1
    await later(store, TTL - 1)
    assert (await flush(store)).online == 1
    await later(store, 2)
    snap = await flush(store)
    assert snap.online == 0
    assert snap.trending == ()


async def test_leave_keeps_the_visitor_for_the_grace_then_drops_it(store: Store) -> None:
    v = "leaving-visitor-01"
    await flush(store, hold(v, "/a"))
    snap = await flush(store, leave(v, "/a"))
    assert snap.online == 1
    await later(store, GRACE + 0.5)
    snap = await flush(store)
    assert snap.online == 0
    assert snap.trending == ()  # no views, and no readers left


async def test_reconnect_within_grace_does_not_dip_or_make_a_visit(store: Store) -> None:
    v = "reconnect-visitor1"
    await flush(store, hold(v, "/a"))
    await flush(store, leave(v, "/a"))
    await later(store, GRACE - 1)
    snap = await flush(store, hold(v, "/a"))
    assert snap.online == 1
    await later(store, GRACE + 1)
    snap = await flush(store)
    assert snap.online == 1
    assert snap.today.visits == 1


async def test_a_visitor_held_by_another_live_instance_does_not_leave(store: Store) -> None:
    v = "two-instances-vis"
    other = RedisStore(store.url, store.clock_offset) if isinstance(store, RedisStore) else None
    if other is None:
        # The embedded store is one process: one instance holds everything.
        await flush(store, hold(v, "/a"), hold(v, "/a"), leave(v, "/a"))
        await later(store, GRACE + 1)
        assert (await flush(store)).online == 0
        return
    await other.open()
    try:
        await flush(store, hold(v, "/a"))
        (snap,) = await other.flush([batch("s1", hold(v, "/a"), store=other)])
        snap = await flush(store, leave(v, "/a"))
        await later(store, GRACE + 1)
        other.clock_offset = store.clock_offset
        snap = await flush(store)
        assert snap.online == 1, "the other instance still holds the visitor"
        (snap,) = await other.flush([batch("s1", leave(v, "/a"), store=other)])
        await later(store, GRACE + 1)
        assert (await flush(store)).online == 0
    finally:
        await other.close()


async def test_http_beats_keep_presence_for_ttl_and_bye_leaves(store: Store) -> None:
    a, b = "http-visitor-0001", "http-visitor-0002"
    snap = await flush(store, PresenceOp(OpKind.BEAT, a, ("/x",)), PresenceOp(OpKind.BEAT, b, ()))
    assert snap.online == 2
    snap = await flush(store, PresenceOp(OpKind.BYE, b, ()))
    await later(store, GRACE + 0.5)
    assert (await flush(store)).online == 1
    await later(store, TTL)
    assert (await flush(store)).online == 0


async def test_visit_after_30_minutes_away_but_not_after_29(store: Store) -> None:
    v = "returning-visitor"
    await flush(store, hold(v), leave(v))
    await later(store, GRACE + 29 * 60)
    snap = await flush(store, hold(v))
    assert snap.today.visits == 1
    await flush(store, leave(v))
    await later(store, GRACE + 31 * 60)
    snap = await flush(store, hold(v))
    assert snap.total_visits == 2


async def test_trending_order_readers_then_views_then_path(store: Store) -> None:
    ops = [hold(f"reader-{i:012d}", "/two") for i in range(2)]
    ops += [hold("reader-single-0001", "/one-b"), hold("reader-single-0002", "/one-a")]
    snap = await flush(
        store,
        *ops,
        views={"/two": 1, "/one-a": 3, "/one-b": 3, "/zero": 9, "/zero-b": 1},
        titles={"/two": "Hai", "/one-a": "Một A", "/zero": "<b>Không</b>"},
        size=4,
    )
    assert [(p.path, p.readers, p.views) for p in snap.trending] == [
        ("/two", 2, 1),
        ("/one-a", 1, 3),
        ("/one-b", 1, 3),
        ("/zero", 0, 9),
    ]
    assert snap.trending[3].title == "<b>Không</b>"
    assert snap.today.views == 17


async def test_views_leave_the_trending_window(store: Store) -> None:
    await flush(store, views={"/old": 5}, window=600)
    await later(store, 300)
    snap = await flush(store, views={"/new": 1}, window=600)
    assert {p.path: p.views for p in snap.trending} == {"/old": 5, "/new": 1}
    await later(store, 400)
    snap = await flush(store, window=600)
    assert [p.path for p in snap.trending] == ["/new"]
    assert snap.today.views == 6


async def test_tracked_pages_are_capped_least_recent_first(store: Store) -> None:
    for i in range(15):
        await flush(store, views={f"/p{i:02d}": 1}, titles={f"/p{i:02d}": f"T{i}"}, max_pages=10)
    snap = await flush(store, size=100, max_pages=10)
    assert sorted(p.path for p in snap.trending) == [f"/p{i:02d}" for i in range(5, 15)]


async def test_closing_a_page_drops_its_reader_after_grace(store: Store) -> None:
    v = "page-closer-00001"
    await flush(store, hold(v, "/a", "/b"))
    await flush(store, PresenceOp(OpKind.CLOSE_PAGES, v, ("/b",)))
    await later(store, GRACE + 1)
    snap = await flush(store, PresenceOp(OpKind.REFRESH, v, ("/a",)))
    assert {p.path: p.readers for p in snap.trending} == {"/a": 1}
    assert snap.online == 1


async def test_day_turns_at_local_midnight_and_yesterday_is_kept(store: Store) -> None:
    now_local = dt.datetime.fromtimestamp(time.time() + store.clock_offset, ZONE)
    midnight = (now_local + dt.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    await later(store, (midnight - now_local).total_seconds() - 15)  # 23:59:45 local
    snap = await flush(store, hold("late-night-reader", "/a"), views={"/a": 1})
    assert snap.today.visits == 1 and snap.today.views == 1
    await later(store, 30)  # 00:00:15 local, the next day
    snap = await flush(store, hold("early-bird-reader", "/a"), views={"/a": 1})
    assert snap.today.visits == 1 and snap.today.views == 1
    assert snap.yesterday is not None
    assert snap.yesterday.visits == 1 and snap.yesterday.views == 1
    assert snap.total_visits == 2
    assert snap.today.peak_online == 2  # the late reader is still online


async def test_sites_are_independent_in_one_flush(store: Store) -> None:
    snaps = await store.flush(
        [
            batch("alpha", hold("alpha-visitor-001"), store=store),
            batch("beta", hold("beta-visitor-0001"), hold("beta-visitor-0002"), store=store),
        ]
    )
    assert [s.online for s in snaps] == [1, 2]


async def test_redis_keys_share_the_site_hash_tag(store: Store) -> None:
    if not isinstance(store, RedisStore):
        return
    await flush(store, hold("hash-tag-visitor1", "/a"), views={"/a": 1}, site="myhao")
    assert site_prefix("myhao") == "pp:{myhao}:"


def present(
    visitor: str,
    *pages: str,
    engaged: bool | None = None,
    attrs: str = "",
    kind: OpKind = OpKind.HOLD,
) -> PresenceOp:
    return PresenceOp(
        kind, visitor, pages, 0.0, engaged, VisitAttrs.unpack(attrs) if attrs else None
    )


async def detailed(store: Store, *ops: PresenceOp, **kw) -> SiteSnapshot:  # type: ignore[no-untyped-def]
    b = batch("s1", *ops, store=store, **kw)
    b.detail = True
    (snap,) = await store.flush([b])
    assert snap.detail is not None
    return snap


async def test_detail_counts_engaged_visitors_and_engaged_readers(store: Store) -> None:
    snap = await detailed(
        store,
        present("engaged-reader-01", "/a", engaged=True),
        present("engaged-reader-02", "/a", "/b", engaged=True),
        present("idle-reader-00001", "/a", engaged=False),
    )
    assert snap.detail and snap.detail.engaged == 2
    assert snap.detail.page_engaged == {"/a": 2, "/b": 1}
    snap = await detailed(
        store, present("engaged-reader-02", "/a", "/b", engaged=False, kind=OpKind.REFRESH)
    )
    assert snap.detail and snap.detail.engaged == 1
    assert snap.detail.page_engaged == {"/a": 1, "/b": 0}
    await flush(store, leave("engaged-reader-01", "/a"))
    await later(store, GRACE + 1)
    snap = await detailed(store)
    assert snap.detail and snap.detail.engaged == 0 and snap.online == 2


async def test_detail_splits_online_visitors_by_source_and_device(store: Store) -> None:
    snap = await detailed(
        store,
        present("from-google-00001", "/a", attrs="search:google|mobile"),
        present("from-google-00002", "/a", attrs="search:google|desktop"),
        present("from-zalo-0000001", "/a", attrs="social:zalo|mobile"),
        present("typed-it-0000001", "/a", attrs="direct:|"),
        present("from-google-00001", "/b", attrs="social:facebook|tablet", kind=OpKind.REFRESH),
    )
    assert snap.detail is not None
    assert snap.detail.sources == {"search:google": 2, "social:zalo": 1, "direct:": 1}
    assert snap.detail.devices == {"mobile": 2, "desktop": 1, "unknown": 1}
    await flush(store, leave("from-zalo-0000001", "/a"))
    await later(store, GRACE + 1)
    snap = await detailed(store)
    assert snap.detail is not None
    assert snap.detail.sources == {"search:google": 2, "direct:": 1}
    assert snap.detail.devices == {"mobile": 1, "desktop": 1, "unknown": 1}


async def test_history_keeps_online_per_minute(store: Store) -> None:
    await flush(store, present("history-visitor-1"), present("history-visitor-2"))
    await later(store, 60)  # the first two expired (ttl 45), a third arrives
    await flush(store, present("history-visitor-3", kind=OpKind.BEAT))
    history = await store.history("s1", 5)
    assert [n for _, n in history] == [2, 1]
    assert history[1][0] - history[0][0] == 60.0
    assert all(ts % 60 == 0 for ts, _ in history)
    snap = await detailed(store)
    assert snap.detail and [n for _, n in snap.detail.minutes][-2:] == [2, 1]
    first_minute = history[0][0]
    await later(store, 8 * 86400 + 120)
    await flush(store)
    kept = await store.history("s1", 11520)
    assert kept and all(ts > first_minute for ts, _ in kept), "older than 8 days is gone"


async def test_detail_counts_views_per_local_hour(store: Store) -> None:
    b = batch("s1", views={"/a": 3}, store=store)
    b.hour, b.detail = 9, True
    (snap,) = await store.flush([b])
    assert snap.detail is not None
    assert snap.detail.hours_today[9] == 3 and sum(snap.detail.hours_today) == 3
    assert len(snap.detail.hours_yesterday) == 24


async def test_returns_within_30_minutes_are_no_visit_whenever_they_left(store: Store) -> None:
    # Visitors leave at different moments over 20 minutes (the Redis store files
    # leavers in ten-minute slots); each comes back 29 minutes after it left.
    leavers = [f"phase-visitor-{i:04d}" for i in range(8)]
    for v in leavers:
        await flush(store, hold(v, "/a"), leave(v, "/a"))
        await later(store, 150)
    await later(store, 29 * 60 - 8 * 150 + GRACE)
    for v in leavers:
        snap = await flush(store, hold(v, "/a"))
        await later(store, 150)
    assert snap.total_visits == len(leavers)
    # Once 31 minutes away, the same visitors make new visits.
    for v in leavers:
        await flush(store, leave(v, "/a"))
    await later(store, 31 * 60 + GRACE)
    snap = await flush(store, *(hold(v, "/a") for v in leavers))
    assert snap.total_visits == 2 * len(leavers)


async def test_shared_event_logs_on_redis_none_on_the_embedded_store(store: Store) -> None:
    name = "signin-failures:198.51.100.7"
    if isinstance(store, MemoryStore):
        assert await store.recent_events(name, 1000.0, 60) is None  # one process: nothing shared
        return
    for at in (1000.0, 1010.0, 1020.0):
        await store.add_event(name, at, 60)
    assert await store.recent_events(name, 1030.0, 60) == [1000.0, 1010.0, 1020.0]
    assert await store.recent_events(name, 1065.0, 60) == [1010.0, 1020.0]
    await store.clear_events(name)
    assert await store.recent_events(name, 1065.0, 60) == []


async def test_taking_an_event_is_atomic_under_concurrency(store: Store) -> None:
    # Thirty sign-in tries at once from one address: the limit's worth are logged.
    name = "signin-failures:198.51.100.8"
    answers = await asyncio.gather(*(store.take_event(name, 1000.0, 60, 5) for _ in range(30)))
    if isinstance(store, MemoryStore):
        assert answers == [None] * 30  # one process: nothing shared, the caller counts
        return
    assert answers.count([]) == 5
    refused = [a for a in answers if a]
    assert len(refused) == 25 and all(a == [1000.0] * 5 for a in refused)
    assert await store.take_event(name, 1061.0, 60, 5) == []  # the window moved on


async def titles_kept(store: Store, site: str = "s1") -> int:
    if isinstance(store, MemoryStore):
        return len(store.sites[site].titles)
    assert isinstance(store, RedisStore)
    client = await store._connect()
    return int(await client.hlen(site_prefix(site) + "titles"))


async def test_titles_are_kept_for_tracked_pages_only(store: Store) -> None:
    # 10,000 distinct paths in 1,000-path flushes: titles of excluded pages (no op,
    # no view), of pages only said goodbye to, and of pages of HTTP beats.
    for chunk in range(10):
        paths = [f"/c{chunk}/p{i:03d}" for i in range(1000)]
        titles = {path: f"Bài {path}" for path in paths}
        beats = [
            PresenceOp(OpKind.BEAT, f"beat-{chunk}-{i:03d}-0000000", (path,))
            for i, path in enumerate(paths[600:])
        ]
        byes = [
            PresenceOp(OpKind.BYE, f"bye-{chunk}-{i:03d}-00000000", (path,))
            for i, path in enumerate(paths[300:600])
        ]
        views = {path: 1 for path in paths[600:]}
        await flush(store, *beats, *byes, views=views, titles=titles, max_pages=10)
    snap = await flush(store, size=100, max_pages=10)
    assert len(snap.trending) == 10, snap.trending
    assert all(p.title for p in snap.trending), snap.trending
    assert await titles_kept(store) <= 10


async def test_notes_are_shared_on_redis_none_on_the_embedded_store(store: Store) -> None:
    await store.set_note("dashboard-tokens", '{"at": 1, "ids": []}')
    if isinstance(store, MemoryStore):
        assert await store.note("dashboard-tokens") is None  # one process: nothing shared
        return
    assert await store.note("dashboard-tokens") == '{"at": 1, "ids": []}'
    assert await store.note("nothing-here") is None
