"""Visitors held through a live connection stay online while their instance is.

An instance renews its own liveness in each site it serves (a flush, or a
touch of its `inst` entry every quarter of the TTL), not each visitor's
deadline: when a held visitor's deadline comes, the script moves it on to its
holder's, on a grid, so a quiet site comes due at most once per grid step
whatever the number of instances. An instance that stops lets its visitors go
within the TTL; one that lapsed (a stall, a store that lost its keys) is told
so, and holds them again. On one Redis and on a real 3-master Cluster.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable

from test_store_contract import TTL, batch, flush, hold, leave

from conftest import calls
from portalpulse.domain import OpKind, PresenceOp, SiteBatch
from portalpulse.store.redis import RedisStore, site_prefix
from support.processes import RedisServer


async def step(instances: list[RedisStore], seconds: float) -> None:
    """Move every instance's clock on, then let each flush once (quietly)."""
    for store in instances:
        store.clock_offset += seconds
    for store in instances:
        await flush(store)


async def test_four_live_instances_keep_their_readers_with_one_due_run_per_grid_step(
    stores: Callable[..., object], nodes: list[RedisServer]
) -> None:
    ttl = 3.0  # grid: 2 s; touches every 0.75 s

    def quick(store: RedisStore, *ops: PresenceOp) -> SiteBatch:
        return dataclasses.replace(batch("s1", *ops, store=store), presence_ttl=ttl)

    instances = [await stores() for _ in range(4)]  # type: ignore[misc]
    for n, store in enumerate(instances):
        (snap,) = await store.flush([quick(store, hold(f"held-reader-0000{n}", f"/p{n}"))])
    start = time.monotonic()
    scripts_before = None
    while time.monotonic() - start < 6 * ttl:
        if scripts_before is None and time.monotonic() - start >= 2 * ttl:
            # The readers' first deadlines (each its own) have come: from here on
            # they come due together, on the grid.
            scripts_before = calls(nodes, "evalsha")
        for store in instances:  # ticks of four instances, nothing new from any
            (snap,) = await store.flush([quick(store)])
            assert snap.online == 4
            assert {(p.path, p.readers) for p in snap.trending} == {(f"/p{n}", 1) for n in range(4)}
        await asyncio.sleep(0.05)
    assert scripts_before is not None
    scripts = calls(nodes, "evalsha") - scripts_before
    print(f"{scripts} flush scripts in {4 * ttl:.0f} s for 4 instances")
    # 12 s: 6 grid steps and a minute turn (6-7 measured), with room for a step
    # across the window's ends and a slow machine; a refresh of each reader by its
    # instance twice per TTL would be 32.
    assert scripts <= 10, scripts


async def test_a_stopped_instance_lets_its_readers_go_within_the_ttl(
    stores: Callable[..., object],
) -> None:
    a, b = await stores(), await stores()  # type: ignore[misc]
    await flush(a, hold("reader-of-a-00001", "/a"))
    await flush(b, hold("reader-of-b-00001", "/b"))
    await flush(a, PresenceOp(OpKind.HOLD, "reader-of-both-01", ("/c",), 0.0, True))
    await flush(b, hold("reader-of-both-01", "/c"))
    for _ in range(3):
        await step([a, b], TTL - 1)
    snap = await flush(b)
    assert snap.online == 3 and snap.today.visits == 3
    # A stops: no flush, no touch. Its reader leaves within the TTL; the reader
    # both hold stays, held by B.
    await step([b], TTL - 1)
    assert (await flush(b)).online == 3
    await step([b], 2)
    snap = await flush(b)
    assert snap.online == 2
    assert {p.path for p in snap.trending} >= {"/b", "/c"}
    assert "/a" not in {p.path for p in snap.trending}
    await flush(b, leave("reader-of-both-01", "/c"))
    await step([b], 6)
    assert (await flush(b)).online == 1


async def test_a_lapsed_instance_is_told_and_holds_its_readers_again(
    stores: Callable[..., object], nodes: list[RedisServer]
) -> None:
    a, b = await stores(), await stores()  # type: ignore[misc]
    reader = "lapsing-reader-001"
    await flush(a, hold(reader, "/a"))
    await flush(b)
    assert not a.take_lapsed()
    # A stalls past the TTL: B runs the expiry, and A's reader leaves.
    await step([b], TTL + 1)
    a.clock_offset = b.clock_offset
    assert (await flush(b)).online == 0
    # A's next tick finds itself lapsed (a touch refuses to revive it): the hub
    # then holds its readers again.
    await flush(a)
    assert set(a.take_lapsed()) == {"s1"}
    assert (await flush(a, hold(reader, "/a"))).online == 1
    assert not a.take_lapsed()
    # A store that lost its keys is found the same way.
    for node in nodes:
        node.cli("flushall")
    await step([a], TTL / 2)
    await flush(a)
    assert set(a.take_lapsed()) == {"s1"}


async def test_a_renewed_identity_lets_go_of_what_only_the_old_one_held(
    stores: Callable[..., object],
) -> None:
    a = await stores()  # type: ignore[misc]
    kept, lost = "still-connected-01", "leave-was-lost-001"
    await flush(a, hold(kept, "/a"), hold(lost, "/b"))
    old = a.instance_id
    a.renew_identity()
    assert a.instance_id != old and a.instance_id.endswith("+h")
    # The hub holds what is live again under the new id; the `leave` of the
    # other was dropped, so nobody holds it but the old id, which is live no more.
    await flush(a, hold(kept, "/a"))
    assert set(a.take_lapsed()) == {"s1"}, "the new id is not live yet: hold everything again"
    for _ in range(4):
        await step([a], TTL / 2)
    snap = await flush(a)
    assert snap.online == 1
    assert [p.path for p in snap.trending if p.readers] == ["/a"]


async def test_a_held_reader_counts_in_the_new_day_and_in_each_minute(
    stores: Callable[..., object],
) -> None:
    a = await stores()  # type: ignore[misc]
    # To 23:59:50 local: the reader is held across midnight with no operation.
    a.clock_offset -= 12 * 3600 + 10
    await flush(a, hold("midnight-reader-1", "/a"))
    for _ in range(8):
        await step([a], 10)
    snap = await flush(a)
    assert snap.online == 1
    assert snap.today.visitors == 1, "online into the new day: among its visitors"
    assert snap.yesterday.visitors == 1
    detail = await a.page_detail("s1", "/a")
    assert detail is not None
    # Every minute the reader was online has its count, though nothing was sent.
    assert [r for _, r, _ in detail.minutes] == [1, 1, 1]  # 23:59, 00:00, 00:01


async def test_a_page_opened_late_rides_on_its_held_visitor(
    stores: Callable[..., object],
) -> None:
    a = await stores()  # type: ignore[misc]
    reader = "late-page-reader1"
    await flush(a, hold(reader, "/a"))
    # A beat that waited 10 s in the instance (a stalled flush) opens /b: its own
    # deadline is earlier than the visitor's, which the instance holds on.
    await step([a], 1)
    await flush(a, PresenceOp(OpKind.BEAT, reader, ("/a", "/b"), 10.0, True))
    for _ in range(6):
        await step([a], 10)
    snap = await flush(a)
    assert snap.online == 1
    assert {(p.path, p.readers) for p in snap.trending} == {("/a", 1), ("/b", 1)}


async def test_a_big_sites_readers_come_due_in_phases_not_all_at_once(
    stores: Callable[..., object],
) -> None:
    a = await stores()  # type: ignore[misc]
    readers = [f"big-site-reader-{n:06d}" for n in range(3000)]
    await flush(a, *(hold(reader, "/a") for reader in readers))
    for _ in range(6):
        await step([a], 10)
        assert (await flush(a)).online == 3000
    # Re-armed once: about a thousand readers a phase, each phase its own flush,
    # so no one script re-arms them all (that would hold up the whole Redis).
    assert a.client is not None
    prefix = site_prefix("s1")
    waiting = []
    for slot in await a.client.zrange(f"{prefix}dqi", 0, -1):
        waiting.append(await a.client.llen(f"{prefix}dq:{slot.decode()}"))
    assert sum(waiting) >= 3000
    assert len([n for n in waiting if n > 0]) >= 3
    assert max(waiting) <= 1200, waiting
