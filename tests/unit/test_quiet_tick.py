"""The tick and a quiet site: when the store answers the very snapshot the hub
holds (the Redis store does while nothing changed), nothing is pushed again; a
snapshot the fan-out put off (too soon after the last push) still goes out on a
later tick, though the store answers that same object again."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, cast

from portalpulse.config import ServerSettings, SiteSettings
from portalpulse.domain import DayCounts, SiteBatch, SiteSnapshot
from portalpulse.hub import Hub
from portalpulse.protocol import Hello, Page
from portalpulse.store.base import Store

SITE = SiteSettings(id="quiet", name="Quiet", origins=("*",))


class HeldStore:
    """Answers every flush with the one snapshot it holds (the same object)."""

    holds_by_instance = False

    def __init__(self, snap: SiteSnapshot) -> None:
        self.snap = snap

    def take_lapsed(self) -> tuple[str, ...]:
        return ()

    def take_woken(self) -> tuple[str, ...]:
        return ()

    def quiet_until(self, site: str) -> float:
        return 0.0  # vouches for nothing: every tick flushes

    async def flush(self, batches: Sequence[SiteBatch]) -> list[SiteSnapshot]:
        return [self.snap for _ in batches]

    async def ping(self) -> None:
        return None


class Screen:
    want = 0

    def __init__(self) -> None:
        self.frames: list[str] = []

    def offer(self, frame: str) -> bool:
        self.frames.append(frame)
        return True

    def offer_fields(self, fields: Any, frame_for: Any) -> bool:
        raise AssertionError("a v1 reader")

    def shut(self, code: int, reason: str = "") -> None:
        pass


def snapshot(online: int) -> SiteSnapshot:
    return SiteSnapshot("quiet", online, (), DayCounts(visits=online), online, 1000.0)


async def test_an_unchanged_snapshot_is_not_pushed_and_a_put_off_one_is_pushed_later() -> None:
    store = HeldStore(snapshot(1))
    hub = Hub(ServerSettings(push_interval=0.05), {"quiet": SITE}, cast(Store, store))
    screen = Screen()
    hub.join("quiet", screen, Hello("quiet-reader-01", (Page("/a", "A"),), engaged=True))
    await hub.flush_round(push=True)
    assert len(screen.frames) == 1
    for _ in range(3):
        await hub.flush_round(push=True)
    assert len(screen.frames) == 1, "the same snapshot: nothing new to push"
    # A change the fan-out puts off (the last push was just now), then the store
    # answers that same object tick after tick: it still goes out.
    store.snap = snapshot(2)
    await hub.flush_round(push=True)
    for _ in range(100):
        if len(screen.frames) == 2:
            break
        await asyncio.sleep(0.02)
        await hub.flush_round(push=True)
    assert len(screen.frames) == 2 and '"online":2' in screen.frames[1]
    for _ in range(3):
        await hub.flush_round(push=True)
    assert len(screen.frames) == 2
    # An HTTP read of the held snapshot carries the time of the store's last answer.
    assert (await hub.read_snapshot("quiet")).ts >= 1000.0
