"""Quiet sites are skipped by the tick, and readers miss nothing.

A site with readers here, nothing new and a snapshot Redis vouches for is
parked: the tick passes it by (`portalpulse_sites_parked` counts it) for up
to 5 s. What another instance changes still reaches its readers within a
tick or two, a reader's own change is flushed at once, and a visitor whose
instance stopped, or a page left behind, still leaves on time. On one Redis and on a real 3-master
Cluster, each instance a `Hub` on its own `RedisStore`, ticked as `serve`
ticks them.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from portalpulse import metrics
from portalpulse.config import ServerSettings, SiteSettings
from portalpulse.hub import Hub
from portalpulse.protocol import Hello, Page
from portalpulse.store.redis import RedisStore
from support.processes import offset_to_local_noon

SITE = SiteSettings(id="parked", name="Parked", origins=("*",))
TICK = 0.1


class Screen:
    """A widget's connection: keeps every snapshot frame it is offered."""

    want = 0

    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []

    def offer(self, frame: str) -> bool:
        self.frames.append(json.loads(frame))
        return True

    def offer_fields(self, fields: object, frame_for: object) -> bool:
        raise AssertionError("a v1 reader")

    def shut(self, code: int, reason: str = "") -> None:
        pass

    def online(self) -> int | None:
        return self.frames[-1]["online"] if self.frames else None

    def read(self) -> dict[str, int]:
        """The pages being read now, with their readers (trending also ranks by views)."""
        return {p["path"]: p["readers"] for p in self.frames[-1]["trending"] if p["readers"]}


def parked() -> float:
    return metrics.REGISTRY.get_sample_value("portalpulse_sites_parked") or 0.0


async def instance(stores: Callable[..., Any], ttl: float = 45.0) -> Hub:
    store: RedisStore = await stores()
    server = ServerSettings(
        push_interval=TICK, presence_ttl=ttl, leave_grace=0.5, clock_offset=offset_to_local_noon()
    )
    return Hub(server, {SITE.id: SITE}, store)


def hello(visitor: str, path: str) -> Hello:
    return Hello(visitor=visitor, pages=(Page(path=path, title=path),), engaged=True)


async def ticks_until(hubs: list[Hub], seconds: float, check: Callable[[], bool]) -> float:
    """Tick every hub each TICK until `check` holds; how long it took."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < seconds, f"not within {seconds} s"
        for hub in hubs:
            await hub.flush_round(push=True)
        await asyncio.sleep(TICK)
    return time.monotonic() - start


async def test_a_parked_site_still_shows_what_another_instance_and_its_reader_change(
    stores: Callable[..., Any],
) -> None:
    here, there = await instance(stores), await instance(stores)
    screen = Screen()
    here.join(SITE.id, screen, hello("parked-reader-0001", "/a"))
    await ticks_until([here], 5, lambda: screen.online() == 1 and parked() == 1)
    seen = len(screen.frames)
    for _ in range(10):  # quiet: skipped, and nothing is sent again
        await here.flush_round(push=True)
        await asyncio.sleep(TICK)
    assert parked() == 1
    assert len(screen.frames) == seen

    # Another instance's arrival: announced, and shown within a tick or two.
    there.join(SITE.id, Screen(), hello("parked-reader-0002", "/b"))
    await there.flush_round(push=True)
    took = await ticks_until([here], 2, lambda: screen.online() == 2)
    assert took < 1.0, f"a peer's change took {took:.2f} s to show on a parked site"
    assert screen.read() == {"/a": 1, "/b": 1}

    # Parked again, then the reader's own page change goes out on the next tick.
    await ticks_until([here, there], 5, lambda: parked() == 1)
    here.change_pages(
        SITE.id,
        "parked-reader-0001",
        (Page(path="/a", title="/a"),),
        (Page(path="/c", title="/c"),),
    )
    await here.flush_round(push=True)
    assert screen.read()["/c"] == 1
    # The page left goes once its `leave_grace` is over: a time the store has due.
    await ticks_until([here], 0.5 + 1.0, lambda: screen.read() == {"/b": 1, "/c": 1})
    await there.stop()


async def test_a_visitor_whose_instance_stopped_leaves_a_parked_site_on_time(
    stores: Callable[..., Any],
) -> None:
    ttl = 3.0
    here, there = await instance(stores, ttl), await instance(stores, ttl)
    screen = Screen()
    here.join(SITE.id, screen, hello("parked-reader-0003", "/a"))
    there.join(SITE.id, Screen(), hello("parked-reader-0004", "/b"))
    await ticks_until([here, there], 5, lambda: screen.online() == 2)
    # `there` stops ticking (its process died): no flush, no touch from now on.
    stopped = time.monotonic()
    await ticks_until([here], ttl + 5, lambda: screen.online() == 1)
    gone = time.monotonic() - stopped
    # CONTRACT §2: within presence_ttl of its instance's last sign of life, plus
    # push_interval and 1 s.
    assert gone <= ttl + TICK + 1.0, f"left after {gone:.2f} s"
    assert screen.read() == {"/a": 1}
