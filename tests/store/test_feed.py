"""Quiet sites cost Redis nothing at all while it announces no change.

An instance that holds a site's snapshot follows the site's channel: while
nothing is announced it answers from what it holds and sends Redis no
command, yet what another instance changes shows within a moment; when the
subscription is cut, or an instance of an older version (one that announces
nothing) shares the site, it reads `st` again, so nothing is missed.
On one Redis and on a real 3-master Cluster (sharded channels).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from redis.asyncio.cluster import RedisCluster
from test_store_contract import batch, flush, hold

from conftest import calls
from portalpulse.store import redis_feed
from portalpulse.store.base import SiteSnapshot
from portalpulse.store.redis import RedisStore
from portalpulse.store.redis_flush import AUDIT_EVERY
from support.processes import RedisServer

WORK = ("evalsha", "mget", "get")  # what a tick may ask of Redis for a quiet site


async def work_done(nodes: list[RedisServer]) -> int:
    """Commands a quiet tick may send (EVALSHA, MGET, GET), on every node."""
    return calls(nodes, *WORK)


async def seen_within(
    store: RedisStore, seconds: float, check: Callable[[SiteSnapshot], bool]
) -> tuple[SiteSnapshot, float]:
    """Flush as the ticks would (every 50 ms) until `check` holds: the snapshot
    and how long it took."""
    start = time.monotonic()
    while True:
        snap = await flush(store)
        if check(snap):
            return snap, time.monotonic() - start
        assert time.monotonic() - start < seconds, f"not seen within {seconds} s: {snap}"
        await asyncio.sleep(0.05)


async def following(store: RedisStore, nodes: list[RedisServer]) -> None:
    """Flush quietly until a tick sends Redis nothing (subscribed and synced)."""
    deadline = time.monotonic() + 5
    while True:
        before = await work_done(nodes)
        await flush(store)
        if await work_done(nodes) == before:
            return
        assert time.monotonic() < deadline, "the quiet site is still read every tick"
        await asyncio.sleep(0.05)


async def test_a_followed_quiet_site_costs_redis_nothing_and_misses_no_change(
    stores: Callable[..., object], nodes: list[RedisServer]
) -> None:
    store = await stores()  # type: ignore[misc]
    other = await stores()  # type: ignore[misc]
    await flush(store, hold("feed-reader-00001", "/a"))
    await following(store, nodes)
    before = await work_done(nodes)
    for _ in range(20):
        snap = await flush(store)
        assert snap.online == 1
    assert await work_done(nodes) == before, "quiet ticks of a followed site send nothing"
    # Another instance's arrival is announced: seen at once, by one script run.
    await other.flush([batch("s1", hold("feed-reader-00002", "/b"), store=other)])
    snap, took = await seen_within(store, 1.0, lambda s: s.online == 2)
    assert {p.path for p in snap.trending} == {"/a", "/b"}
    assert took < 0.5
    await following(store, nodes)


async def test_a_cut_subscription_is_read_around_and_then_followed_again(
    stores: Callable[..., object], nodes: list[RedisServer]
) -> None:
    store = await stores()  # type: ignore[misc]
    other = await stores()  # type: ignore[misc]
    await flush(store, hold("feed-reader-00003", "/a"))
    await following(store, nodes)
    for node in nodes:
        node.cli("client", "kill", "type", "pubsub")
    await asyncio.sleep(0.1)
    # What changes while the subscription is down still shows at once: the site
    # is read every tick from the moment the loss shows until it is followed again.
    await other.flush([batch("s1", hold("feed-reader-00004", "/b"), store=other)])
    await seen_within(store, 0.5, lambda s: s.online == 2)
    await following(store, nodes)
    await other.flush([batch("s1", hold("feed-reader-00005", "/c"), store=other)])
    await seen_within(store, 1.0, lambda s: s.online == 3)


async def test_an_instance_that_announces_nothing_is_read_around(
    stores: Callable[..., object], nodes: list[RedisServer]
) -> None:
    store = await stores()  # type: ignore[misc]
    old = await stores(follow=False, announces=False)  # type: ignore[misc]
    await flush(store, hold("feed-reader-00006", "/a"))
    await following(store, nodes)
    # Its change is not announced: the reads every AUDIT_EVERY seconds find it.
    await old.flush([batch("s1", hold("feed-reader-00007", "/b"), store=old)])
    await seen_within(store, AUDIT_EVERY + 1.0, lambda s: s.online == 2)
    # From then on the script tells that such an instance shares the site: read
    # every tick, so its next change shows at once.
    await old.flush([batch("s1", hold("feed-reader-00008", "/c"), store=old)])
    _, took = await seen_within(store, 1.0, lambda s: s.online == 3)
    assert took < 0.5
    assert isinstance(store.client, RedisCluster) == (len(nodes) > 1)


def test_an_announcement_is_read_or_ignored() -> None:
    """Anything on a channel that is not "TIME|TAG|DUE" changes nothing."""
    assert redis_feed.parse("1.5|t.2|9.25") == redis_feed.Heard(1.5, "t.2", 9.25)
    assert redis_feed.parse("no announcement") is None
    assert redis_feed.parse("x|t|y") is None
