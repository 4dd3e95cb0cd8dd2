"""The drill-down's last hour per page: the same answers from every store."""

from __future__ import annotations

import time

from test_store_contract import batch, hold, later, leave, store

from portalpulse.store.base import OpKind, PresenceOp, Store

__all__ = ["store"]  # the fixture: embedded, Redis, Redis Cluster


def engaged_hold(visitor: str, *pages: str) -> PresenceOp:
    return PresenceOp(OpKind.HOLD, visitor, pages, 0.0, True)


async def flush(store: Store, *ops: PresenceOp, arrivals=None, **kw) -> None:  # type: ignore[no-untyped-def]
    b = batch("s1", *ops, store=store, **kw)
    b.arrivals = arrivals or {}
    await store.flush([b])


async def test_a_page_shows_its_readers_per_minute_sources_devices_and_previous_pages(
    store: Store,
) -> None:
    # One second into a minute, so that the minutes below are whole ones.
    await later(store, 61 - (time.time() + store.clock_offset) % 60)
    await flush(
        store,
        engaged_hold("reader-one-000001", "/a"),
        hold("reader-two-000002", "/a"),
        hold("reader-six-000006", "/b"),
        views={"/a": 3, "/b": 1},
        titles={"/a": "Tin A"},
        arrivals={
            ("/a", "search:google", "mobile"): 1,
            ("/a", "internal:/b", "desktop"): 1,
            # From a page the store does not track: internal, but no previous page.
            ("/a", "internal:/nowhere", ""): 1,
            ("/b", "direct:", "desktop"): 1,
        },
    )
    detail = await store.page_detail("s1", "/a")
    assert detail is not None
    assert detail.title == "Tin A"
    assert detail.views == 3
    assert detail.sources == {"internal:": 2, "search:google": 1}
    assert detail.devices == {"desktop": 1, "mobile": 1, "unknown": 1}
    assert detail.internal == {"/b": 1}
    assert [(r, e) for _, r, e in detail.minutes] == [(2, 1)]
    assert detail.minutes[-1][0] % 60 == 0

    # A minute later the engaged reader has gone (no refresh within the TTL), the
    # other one refreshed: the next minute has its own count.
    await later(store, 60)
    await flush(store, hold("reader-two-000002", "/a"))
    detail = await store.page_detail("s1", "/a")
    assert detail is not None
    assert [(r, e) for _, r, e in detail.minutes] == [(2, 1), (1, 0)]
    assert detail.minutes[1][0] - detail.minutes[0][0] == 60

    # An hour after its last reader left, the page is still tracked but its hour
    # is empty.
    await flush(store, leave("reader-two-000002", "/a"))
    await later(store, 3600)
    await flush(store)
    detail = await store.page_detail("s1", "/a")
    assert detail is not None
    assert (detail.minutes, detail.views, detail.sources, detail.internal) == ((), 0, {}, {})
    assert await store.page_detail("s1", "/never-seen") is None


async def test_pages_dropped_by_the_cap_lose_their_hour(store: Store) -> None:
    await flush(
        store,
        hold("capped-visitor-01", "/old"),
        views={"/old": 1},
        arrivals={("/old", "direct:", "mobile"): 1},
        max_pages=2,
    )
    await later(store, 1)
    await flush(
        store,
        hold("capped-visitor-02", "/new"),
        views={"/new": 1},
        arrivals={("/new", "internal:/old", "mobile"): 1},
        max_pages=2,
    )
    detail = await store.page_detail("s1", "/new")
    assert detail is not None and detail.internal == {"/old": 1}
    await later(store, 1)
    await flush(store, hold("capped-visitor-03", "/third"), views={"/third": 1}, max_pages=2)
    assert await store.page_detail("s1", "/old") is None
    detail = await store.page_detail("s1", "/new")
    assert detail is not None
    assert detail.internal == {} and detail.sources == {"internal:": 1}
