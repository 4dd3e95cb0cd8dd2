"""CONTRACT §3a with raw WebSocket clients: what a connection with `want` is sent,
and that a client without it (v1) still gets whole snapshots."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from support.client import Reader, page, visitor_id
from support.waiting import until

PUSH = 0.5  # FAST_TIMING's push_interval
SNAPSHOT_KEYS = {"type", "site", "online", "trending", "today", "total_visits", "ts"}


def snapshots(reader: Reader) -> list[dict[str, Any]]:
    return [f for f in reader.frames if f["type"] == "snapshot"]


def fields(frame: dict[str, Any]) -> set[str]:
    return set(frame) - {"type", "site", "ts"}


async def next_snapshot(reader: Reader, seen: int, timeout: float) -> dict[str, Any]:
    """The first snapshot after the `seen` first ones."""
    await until(lambda: len(snapshots(reader)) > seen, timeout, f"a snapshot after {seen}", 0.02)
    return snapshots(reader)[seen]


async def test_v1_and_each_want_get_what_they_asked_for(make_service) -> None:
    service = make_service()
    v1 = await Reader.open(service.ws_url, pages=[page("/a")])
    online = await Reader.open(service.ws_url, pages=[page("/a")], want=["online"])
    numbers = await Reader.open(
        service.ws_url, pages=[page("/a")], want=["total", "online", "today"]
    )
    hot = await Reader.open(service.ws_url, pages=[page("/a")], want=["trending"])
    await v1.wait_for(lambda s: s["online"] == 4, PUSH + 1)

    def pushed_to_all() -> bool:
        counted = all(any(s.get("online") == 4 for s in snapshots(r)) for r in (online, numbers))
        return counted and bool(snapshots(hot))

    await until(pushed_to_all, PUSH + 1, "every join pushed to every reader")

    # The first snapshot carries every wanted field, and nothing else.
    assert fields(snapshots(online)[0]) == {"online"}
    assert fields(snapshots(numbers)[0]) == {"online", "today", "total_visits"}
    assert fields(snapshots(hot)[0]) == {"trending"}
    assert all(set(s) == SNAPSHOT_KEYS for s in snapshots(v1))  # v1: whole, every time
    assert all(s["site"] == "demo" and isinstance(s["ts"], float) for s in snapshots(online))

    # A returning reader with no page: only the count moves, and only the
    # connections that want it hear of it; the online-only frame is small.
    visitor = visitor_id()
    first = await Reader.open(service.ws_url, pages=[], visitor=visitor)  # a visit, a peak
    await online.wait_for(lambda s: s.get("online") == 5, PUSH + 1)
    await first.close()
    await online.wait_for(lambda s: s.get("online") == 4, 3 * PUSH + 2)
    counts = {r: len(snapshots(r)) for r in (v1, online, numbers, hot)}
    back = await Reader.open(service.ws_url, pages=[], visitor=visitor, resume=True)
    frame = await next_snapshot(online, counts[online], PUSH + 1)
    assert frame["online"] == 5 and fields(frame) == {"online"}
    raw = next(m for m in online.raw if json.loads(m) == frame)
    assert isinstance(raw, str) and len(raw.encode()) < 100, raw
    changed = await next_snapshot(numbers, counts[numbers], PUSH + 1)
    assert fields(changed) == {"online"}, changed  # today and total did not change
    assert set(await next_snapshot(v1, counts[v1], PUSH + 1)) == SNAPSHOT_KEYS
    await asyncio.sleep(2 * PUSH)  # time passes on purpose: no frame for `hot` meanwhile
    assert len(snapshots(hot)) == counts[hot], snapshots(hot)  # trending did not change

    # A new page read: trending changes, and the trending-only client gets just that.
    await back.send({"type": "beat", "engaged": True, "pages": [page("/hot", "Tin nóng")]})
    listed = await next_snapshot(hot, counts[hot], PUSH + 1)
    assert fields(listed) == {"trending"}
    assert "/hot" in {t["path"] for t in listed["trending"]}
    for reader in (v1, online, numbers, hot, back):
        await reader.close()


async def test_an_empty_or_unknown_want_gets_an_error_then_4400(make_service) -> None:
    service = make_service()
    for want in ([], ["online", "views"], "online"):
        reader = await Reader.open(service.ws_url, want=want)
        assert await reader.wait_closed(5) == 4400, want
        assert [(f["type"], f["code"]) for f in reader.frames] == [("error", "bad_message")]
    assert service.stats()["online"] == 0
    assert service.stats()["today"]["views"] == 0
