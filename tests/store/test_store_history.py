"""The long history on every store: days kept 400 days, each day's top pages,
this month and this year. Time passes by moving the store's clock."""

from __future__ import annotations

import datetime as dt
import time

import pytest

# The contract suite's `store` fixture (embedded, Redis, Cluster), under another name here.
from test_store_contract import ZONE, batch, flush, hold, later, leave
from test_store_contract import store as contract_store

from portalpulse.store.base import DAY_KEEP_DAYS, TOP_PAGES_DAY, Store
from portalpulse.store.memory import MemoryStore
from portalpulse.store.redis import RedisStore, site_prefix
from support.processes import offset_to_local_noon

store = contract_store


def local_day(store: Store, days_later: float = 0) -> str:
    when = time.time() + store.clock_offset + days_later * 86400
    return dt.datetime.fromtimestamp(when, ZONE).strftime("%Y%m%d")


async def with_periods(store: Store, *ops, **kw):  # type: ignore[no-untyped-def]
    b = batch("s1", *ops, store=store, **kw)
    b.periods = True
    (snap,) = await store.flush([b])
    return snap


async def test_a_day_is_kept_400_days_with_its_counts(store: Store) -> None:
    first = local_day(store)
    await flush(store, hold("history-reader-01", "/a"), views={"/a": 2})
    await flush(store, hold("history-reader-02", "/b"), views={"/b": 1})
    await later(store, 86400)  # the next day: the first day is finished
    await flush(store, hold("history-reader-03", "/a"), views={"/a": 1})
    days = dict(await store.days("s1", first, local_day(store)))
    assert days[first].visits == 2 and days[first].views == 3
    assert days[first].visitors == 2 and days[first].peak_online == 2
    assert days[first].peak_at is not None
    assert days[local_day(store)].visits == 1 and days[local_day(store)].visitors == 1
    if isinstance(store, RedisStore):
        # Redis expires keys on its own clock: the keys say how long they stay.
        assert store.client is not None
        for key in (f"day:{first}", f"top:{first}"):
            ttl = await store.client.ttl(site_prefix("s1") + key)
            assert 400 * 86400 <= ttl <= 401 * 86400, key
        assert await store.client.exists(site_prefix("s1") + f"uv:{first}") == 0
        return
    assert isinstance(store, MemoryStore)
    await later(store, (DAY_KEEP_DAYS - 2) * 86400)
    store.save()
    assert [d for d, _ in await store.days("s1", first, first)] == [first]
    await later(store, 3 * 86400)
    store.save()
    assert await store.days("s1", first, first) == []


async def test_a_days_top_pages_are_its_most_viewed_and_kept_to_100(store: Store) -> None:
    day = local_day(store)
    views = {f"/tin/{i:03d}.html": 1 + i for i in range(150)}
    await flush(store, views=views, titles={"/tin/149.html": "Tin nhiều người xem nhất"})
    top = await store.top_pages("s1", day, 3)
    assert top == [
        ("/tin/149.html", "Tin nhiều người xem nhất", 150),
        ("/tin/148.html", "", 149),
        ("/tin/147.html", "", 148),
    ]
    assert len(await store.top_pages("s1", day, 1000)) == 150  # today keeps them all
    await later(store, 86400)
    await flush(store, views={"/tin/000.html": 1})  # the day turns
    kept = await store.top_pages("s1", day, 1000)
    assert len(kept) == TOP_PAGES_DAY
    assert kept[-1] == ("/tin/050.html", "", 51)


async def test_month_and_year_sum_their_days_and_count_visitors_once(store: Store) -> None:
    day = local_day(store)
    snap = await with_periods(store, hold("month-reader-001", "/a"), views={"/a": 2})
    assert snap.month is not None and snap.year is not None
    assert (snap.month.visits, snap.month.views, snap.month.visitors) == (1, 2, 1)
    await flush(store, leave("month-reader-001", "/a"))
    await later(store, 86400)  # the next day: a new visit of the same reader, and another
    snap = await with_periods(
        store, hold("month-reader-001", "/a"), hold("month-reader-002", "/b"), views={"/b": 1}
    )
    tomorrow = local_day(store)
    month, year = snap.month, snap.year
    assert month is not None and year is not None
    if day[:6] == tomorrow[:6]:
        assert (month.visits, month.views, month.visitors) == (3, 3, 2)
    else:  # the test runs on a month's last day: the new month has one day
        assert (month.visits, month.views, month.visitors) == (2, 1, 2)
    if day[:4] == tomorrow[:4]:
        assert (year.visits, year.views, year.visitors) == (3, 3, 2)
    assert await store.periods("s1", tomorrow) == (month, year)
    # A reader in the month after: this month starts from nothing, the day's month keeps its.
    now_local = dt.datetime.fromtimestamp(time.time() + store.clock_offset, ZONE)
    next_month = (now_local.replace(day=28) + dt.timedelta(days=4)).replace(day=1, hour=12)
    await later(store, (next_month - now_local).total_seconds())
    snap = await with_periods(store, hold("month-reader-003", "/c"), views={"/c": 5})
    assert snap.month is not None
    assert (snap.month.visits, snap.month.views, snap.month.visitors) == (1, 5, 1)
    before, _ = await store.periods("s1", tomorrow)
    assert before == month


@pytest.mark.parametrize("server", ["redis", "cluster"])
async def test_days_from_before_the_400_day_history_are_kept_as_long(
    request: pytest.FixtureRequest, server: str
) -> None:
    """Versions before the long history let a day expire 40 days after it was last
    written; the next day turn after an upgrade gives those days 400 days too."""
    if server == "redis":
        url = request.getfixturevalue("redis").url
    else:
        nodes = request.getfixturevalue("cluster")
        for node in nodes:
            node.cli("flushall")
        url = f"redis://127.0.0.1:{nodes[0].port}/0"
    store = RedisStore(url)
    store.clock_offset = offset_to_local_noon()
    await store.open()
    try:
        assert store.client is not None
        old = {age: local_day(store, -age) for age in (3, 39, 41)}  # back over a month's end
        for day in old.values():
            await store.client.hset(site_prefix("s1") + f"day:{day}", "visits", 7)
            await store.client.expire(site_prefix("s1") + f"day:{day}", 40 * 86400 - 5)
        await flush(store, hold("history-reader-04", "/a"))  # today: the day turns
        key = site_prefix("s1") + "day:"
        ttl = {age: await store.client.ttl(key + day) for age, day in old.items()}
        assert 397 * 86400 <= ttl[3] <= 398 * 86400, ttl
        assert 361 * 86400 <= ttl[39] <= 362 * 86400, ttl
        assert ttl[41] < 40 * 86400, ttl  # out of reach: it was gone before the upgrade
        days = dict(await store.days("s1", old[39], old[3]))
        assert days[old[39]].visits == days[old[3]].visits == 7
    finally:
        await store.close()
