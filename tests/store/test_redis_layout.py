"""What an operator sees in Redis: compact per-visitor keys that clean up after themselves."""

from __future__ import annotations

import time
from collections import Counter
from zoneinfo import ZoneInfo

from portalpulse.store.base import OpKind, PresenceOp, SiteBatch, VisitAttrs, day_keys
from portalpulse.store.redis import RedisStore, site_prefix
from support.processes import RedisServer

SITE = "layout"
KINDS = {
    "v", "vx", "a", "an", "dq", "inst", "rank", "pages", "titles", "total", "onl", "engn", "erank",
    "srcn", "devn", "pid", "pname", "dqi", "vbi", "codes", "day", "uv", "hist", "hours", "pm",
    "top", "today", "mon", "yr", "uvm", "uvy",  # the long history (flush.lua, 4b)
    "st",  # the snapshot's tag and next due time (quiet sites)
}  # fmt: skip


def batch(store: RedisStore, *ops: PresenceOp) -> SiteBatch:
    today, yesterday = day_keys(time.time() + store.clock_offset, ZoneInfo("Asia/Ho_Chi_Minh"))
    return SiteBatch(
        site=SITE, presence_ttl=45, leave_grace=5, trending_window=1800, trending_size=10,
        max_pages=10_000, day=today, yesterday=yesterday, ops=list(ops), views={}, titles={},
        total_views=0, want_yesterday=False,
    )  # fmt: skip


async def keys(store: RedisStore, pattern: str) -> list[str]:
    assert store.client is not None
    found = store.client.scan_iter(match=site_prefix(SITE) + pattern, count=1000)
    return [key.decode() async for key in found]


async def test_visitor_records_stay_small_and_leavers_expire_by_themselves(
    redis: RedisServer,
) -> None:
    store = RedisStore(redis.url)
    await store.open()
    try:
        visitors = [f"layout-visitor-{i:06d}-abcdefgh" for i in range(3000)]
        ops = [
            PresenceOp(OpKind.HOLD, v, (f"/tin-tuc/bai-viet-rat-dai-so-{i % 40}.html",), 0.0,
                       i % 3 > 0, VisitAttrs("search:google", "mobile"))
            for i, v in enumerate(visitors)
        ]  # fmt: skip
        (snap,) = await store.flush([batch(store, *ops)])
        assert snap.online == 3000
        assert store.client is not None
        buckets = await keys(store, "v:*")
        assert len(buckets) > 900
        encodings = {(await store.client.object("encoding", key)).decode() for key in buckets}
        assert encodings == {"listpack"}, "visitor records must stay in listpack hashes"

        leavers = [PresenceOp(OpKind.LEAVE, op.visitor, op.pages) for op in ops[:100]]
        await store.flush([batch(store, *leavers)])
        store.clock_offset += 6
        (snap,) = await store.flush([batch(store)])
        assert snap.online == 2900
        away = await keys(store, "a:*")
        assert away, "leavers are remembered for the visit rule"
        for key in away + await keys(store, "an:*"):
            # Redis drops a slot once a return would be a new visit anyway.
            assert 30 * 60 < await store.client.ttl(key) <= 41 * 60, key
        page_minutes = await keys(store, "pm:*")
        # The 6 s may cross into the next minute, whose first flush writes a bucket
        # for every page still read: 40 in each minute seen.
        per_minute = Counter(key.split(":")[-2] for key in page_minutes)
        assert set(per_minute.values()) == {40}, "one drill-down bucket per page and minute"
        for key in page_minutes:
            assert 60 * 60 < await store.client.ttl(key) <= 62 * 60, key
        kinds = {key[len(site_prefix(SITE)) :].split(":")[0] for key in await keys(store, "*")}
        assert kinds <= KINDS, kinds - KINDS
    finally:
        await store.close()


async def test_a_visitor_with_many_pages_keeps_its_bucket_compact(redis: RedisServer) -> None:
    store = RedisStore(redis.url)
    await store.open()
    try:
        assert store.client is not None
        many = tuple(f"/tin-tuc/chuyen-muc-{i}/bai-viet-{i}.html" for i in range(20))
        tabs = PresenceOp(
            OpKind.HOLD, "many-tabs-visitor-0001", many, 0.0, True, VisitAttrs("direct:")
        )
        others = [PresenceOp(OpKind.HOLD, f"neighbour-{i:05d}", many[:1]) for i in range(3000)]
        (snap,) = await store.flush([batch(store, tabs, *others)])
        assert snap.online == 3001
        encodings = {
            (await store.client.object("encoding", k)).decode() for k in await keys(store, "v:*")
        }
        assert encodings == {"listpack"}
        assert len(await keys(store, "vx:*")) == 1, "its long record lives in a key of its own"
        b = batch(store)
        b.trending_size = 20
        (snap,) = await store.flush([b])
        assert {p.path: p.readers for p in snap.trending} == {
            many[0]: 3001,
            **{path: 1 for path in many[1:]},
        }
        # Closing all but one page makes the record short again.
        await store.flush([batch(store, PresenceOp(OpKind.CLOSE_PAGES, tabs.visitor, many[1:]))])
        store.clock_offset += 6
        (snap,) = await store.flush([b])
        assert {p.path: p.readers for p in snap.trending} == {many[0]: 3001}
        assert await keys(store, "vx:*") == []
    finally:
        await store.close()


async def test_titles_left_by_older_versions_are_cleaned_up(redis: RedisServer) -> None:
    """Before titles followed the page cap, titles of pages never tracked stayed in
    Redis (21,010 for 1,000 tracked pages): flushes drop them, a few at a time."""
    store = RedisStore(redis.url)
    await store.open()
    try:
        assert store.client is not None
        titles = site_prefix(SITE) + "titles"
        one = batch(store)
        one.views["/kept.html"] = 1
        one.titles["/kept.html"] = "Tin giữ lại"
        await store.flush([one])
        await store.client.hset(titles, mapping={f"/old-{i}.html": "cũ" for i in range(2000)})
        for _ in range(400):
            again = batch(store)
            again.views["/kept.html"] = 1  # something new: the site's script runs
            await store.flush([again])
            if await store.client.hlen(titles) == 1:
                break
        assert await store.client.hgetall(titles) == {b"/kept.html": "Tin giữ lại".encode()}
        (snap,) = await store.flush([batch(store)])
        assert [(p.path, p.title) for p in snap.trending] == [("/kept.html", "Tin giữ lại")]
    finally:
        await store.close()
