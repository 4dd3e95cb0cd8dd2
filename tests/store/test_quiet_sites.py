"""A quiet site costs the store next to nothing, and loses nothing for it.

A flush that carries nothing new for a site whose snapshot the instance
already holds reads one key instead of running the flush script, yet every
change made through another instance, and every expiry, shows at once.
"""

from __future__ import annotations

import asyncio
import time

from redis.asyncio.cluster import RedisCluster
from test_store_contract import GRACE, TTL, batch, flush, hold, later, leave, store

from portalpulse.store.base import OpKind, PresenceOp, Store
from portalpulse.store.redis import RedisStore

__all__ = ["store"]  # the fixture: every store, embedded, Redis and Cluster


async def command_calls(store: Store, name: str) -> int:
    """How many times the store's Redis ran command `name` (scripts' inner calls too)."""
    if not isinstance(store, RedisStore) or store.client is None:
        return 0
    if isinstance(store.client, RedisCluster):
        infos = await store.client.info("commandstats", target_nodes=RedisCluster.PRIMARIES)
        per_node = list(infos.values())
    else:
        per_node = [await store.client.info("commandstats")]
    return sum(int(info.get(f"cmdstat_{name}", {}).get("calls", 0)) for info in per_node)


async def scripts_run(store: Store) -> int:
    """How many flush scripts the store's Redis has run (INFO commandstats)."""
    return await command_calls(store, "evalsha")


async def second_instance(store: Store) -> Store:
    if isinstance(store, RedisStore):
        other = RedisStore(store.url, store.clock_offset)
        await other.open()
        return other
    return store  # the embedded store is one process: one instance holds everything


async def test_quiet_flushes_run_no_script_yet_see_other_instances_and_expiry(
    store: Store,
) -> None:
    other = await second_instance(store)
    try:
        reader, passer = "quiet-reader-0001", "passing-reader-01"
        await flush(store, hold(reader, "/a"))
        before = await scripts_run(store)
        for _ in range(5):
            snap = await flush(store)
            assert snap.online == 1
            assert [p.path for p in snap.trending] == ["/a"]
        if isinstance(store, RedisStore):
            assert await scripts_run(store) == before, "a quiet site runs no flush script"
        # An arrival through the other instance shows in this one's next flush
        # (once Redis's announcement of it has come: test_feed.py).
        (seen,) = await other.flush([batch("s1", hold(passer, "/b"), store=other)])
        assert seen.online == 2
        await asyncio.sleep(0.1)
        snap = await flush(store)
        assert snap.online == 2 and {p.path for p in snap.trending} == {"/a", "/b"}
        assert snap.today.visits == 2
        # Its departure shows once the grace is over, with no flush of the other
        # instance in between: this one runs the expiry when it falls due.
        await other.flush([batch("s1", leave(passer, "/b"), store=other)])
        await asyncio.sleep(0.1)  # its expiry time is announced
        assert (await flush(store)).online == 2, "within the grace"
        await later(store, GRACE + 0.5)
        snap = await flush(store)
        assert snap.online == 1 and [p.path for p in snap.trending] == ["/a"]
        if store.holds_by_instance:
            # The reader stays while this instance is live, with no refresh: the
            # instance touches its liveness, and the expiry run moves the reader's
            # deadline on. Once it stops, the reader leaves on time (the other
            # instance runs the expiry).
            for _ in range(3):
                await later(store, TTL - 1)
                assert (await flush(store)).online == 1
            other.clock_offset = store.clock_offset + TTL - 1
            (seen,) = await other.flush([batch("s1", store=other)])
            assert seen.online == 1
            other.clock_offset += 2
            (seen,) = await other.flush([batch("s1", store=other)])
            assert seen.online == 0 and seen.trending == ()
            return
        # The reader this instance holds is refreshed; unrefreshed, it expires on time.
        await later(store, TTL - 1)
        snap = await flush(store, PresenceOp(OpKind.REFRESH, reader, ("/a",)))
        assert snap.online == 1
        await later(store, TTL - 1)
        assert (await flush(store)).online == 1
        await later(store, 2)
        snap = await flush(store)
        assert snap.online == 0 and snap.trending == ()
    finally:
        if other is not store:
            await other.close()


async def test_views_and_titles_from_another_instance_show_on_a_quiet_one(store: Store) -> None:
    other = await second_instance(store)
    try:
        await flush(store, hold("quiet-reader-0002", "/a"))
        await flush(store)
        await other.flush([batch("s1", views={"/c": 3}, titles={"/c": "Tin C"}, store=other)])
        snap = await flush(store)
        assert [(p.path, p.title, p.views) for p in snap.trending] == [
            ("/a", "", 0),  # a reader first, then views
            ("/c", "Tin C", 3),
        ]
        assert snap.today.views == 3
        # A new title alone is news too.
        await other.flush([batch("s1", titles={"/c": "Tin C (cập nhật)"}, store=other)])
        snap = await flush(store)
        assert snap.trending[1].title == "Tin C (cập nhật)"
    finally:
        if other is not store:
            await other.close()


async def test_a_quiet_flush_after_a_dashboard_s_carries_none_of_its_extras(store: Store) -> None:
    await flush(store, hold("quiet-reader-0003", "/a"))
    b = batch("s1", store=store)
    b.detail = b.periods = True
    (snap,) = await store.flush([b])
    assert snap.detail is not None and snap.month is not None and snap.year is not None
    snap = await flush(store)
    assert (snap.detail, snap.month, snap.year) == (None, None, None)
    assert snap.online == 1


async def test_a_quiet_flush_answers_the_very_snapshot_it_holds(store: Store) -> None:
    """Nothing changed: the Redis store answers the object it answered before (the
    hub then skips the site: no push, no gauge), until something changes."""
    if not isinstance(store, RedisStore):
        return  # the embedded store computes each snapshot afresh
    other = await second_instance(store)
    try:
        first = await flush(store, hold("quiet-reader-0004", "/a"))
        held = await flush(store)
        before = await scripts_run(store)
        assert await flush(store) is held and await flush(store) is held
        assert await scripts_run(store) == before, "no script for an unchanged site"
        assert held.online == first.online == 1
        await other.flush([batch("s1", hold("quiet-reader-0005", "/a"), store=other)])
        await asyncio.sleep(0.1)  # Redis's announcement of it is a message, not a reply
        changed = await flush(store)
        assert changed is not held and changed.online == 2
    finally:
        await other.close()


async def test_plain_refreshes_cost_a_short_script_and_counts_stay_exact(store: Store) -> None:
    """An instance refreshing its readers (nothing else new, nothing due) changes
    nothing a snapshot shows: the script answers early, counts no visitor again,
    and the other instance's snapshot stays what it was. A refresh after the day
    turned counts its visitor among the new day's visitors."""
    other = await second_instance(store)
    try:
        mine, theirs = "plain-refresh-01", "plain-refresh-02"
        await flush(store, hold(mine, "/a"))
        await other.flush([batch("s1", hold(theirs, "/a"), store=other)])
        held = await flush(store)
        assert (held.online, held.today.visitors, held.today.visits) == (2, 2, 2)
        pfadds, zcards = await command_calls(store, "pfadd"), await command_calls(store, "zcard")
        refresh = batch("s1", PresenceOp(OpKind.REFRESH, mine, ("/a",)), store=store)
        refresh.day_start = time.time() + store.clock_offset - 3600
        (snap,) = await store.flush([refresh])
        assert (snap.online, snap.today.visitors, snap.today.visits) == (2, 2, 2)
        if isinstance(store, RedisStore):
            assert snap is held, "nothing a snapshot shows changed"
            assert await command_calls(store, "pfadd") == pfadds, "counted today already"
            assert await command_calls(store, "zcard") == zcards, "answered before section 3"
        (seen,) = await other.flush([batch("s1", store=other)])
        assert (seen.online, seen.today.visitors) == (2, 2)
        # The day turned since the last refresh: the visitor is one of the new day's.
        await later(store, 10)
        turned = batch("s1", PresenceOp(OpKind.REFRESH, mine, ("/a",)), store=store)
        turned.day, turned.yesterday = "20991231", turned.day
        turned.day_start = time.time() + store.clock_offset - 5
        (snap,) = await store.flush([turned])
        assert snap.online == 2 and snap.today.visitors == 1 and snap.today.visits == 0
    finally:
        if other is not store:
            await other.close()
