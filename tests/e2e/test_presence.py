"""Presence as a widget sees it, against real service processes (CONTRACT §2).

Timing used here: beat_interval 1, presence_ttl 3, leave_grace 1, push_interval 0.5.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from support.client import Reader, page, visitor_id
from support.processes import REPO, metric
from support.waiting import throughout

BEAT, TTL, GRACE, PUSH = 1.0, 3.0, 1.0, 0.5
COUNTED = PUSH + 1
LEFT = GRACE + PUSH + 1
SILENT_LEFT = 2 * BEAT + GRACE + PUSH + 1
HTTP_LEFT = TTL + PUSH + 1


async def never_below(reader: Reader, n: int, seconds: float) -> None:
    """Watch every snapshot for `seconds` (time passes on purpose): the count must
    never dip below n."""
    start = len(reader.frames)

    def no_dip() -> bool:
        frames = reader.frames[start:]
        return all(f["online"] >= n for f in frames if f.get("type") == "snapshot")

    await throughout(no_dip, seconds, f"the count stays at {n} or more")


# The core cases run under both implementations of the fan-out (fanout.Delivery).
BOTH_FANOUTS = pytest.mark.parametrize("fanout", ["direct", "asgi"])


@BOTH_FANOUTS
async def test_a_new_visitor_is_counted_and_tabs_count_once(make_service, fanout: str) -> None:
    service = make_service(fanout=fanout)
    async with httpx.AsyncClient(base_url=service.base) as http:
        text = (await http.get("/metrics")).text
    assert metric(text, "portalpulse_fanout_info", f'impl="{fanout}"') == 1
    watcher = await Reader.open(service.ws_url)
    await watcher.wait_online(1, COUNTED)
    visitor = visitor_id()
    tabs = [
        await Reader.open(service.ws_url, visitor=visitor, pages=[page(f"/tab{i}")])
        for i in range(3)
    ]
    snap = await watcher.wait_online(2, COUNTED)
    await never_below(watcher, 2, 1.0)
    assert watcher.snapshot is not None and watcher.snapshot["online"] == 2
    readers = {p["path"]: p["readers"] for p in snap["trending"]}
    assert readers.get("/tab0") == 1
    for tab in tabs:
        await tab.close()
    await watcher.wait_online(1, LEFT)


async def test_two_instances_on_one_redis_show_one_count(redis, make_service) -> None:
    a = make_service(redis_url=redis.url)
    b = make_service(redis_url=redis.url)
    on_a = await Reader.open(a.ws_url)
    on_b = await Reader.open(b.ws_url)
    started = time.monotonic()
    await on_a.wait_online(2, COUNTED)
    await on_b.wait_online(2, COUNTED)
    assert time.monotonic() - started <= COUNTED + 0.2
    # One visitor on both instances counts once, and leaving one keeps it.
    visitor = visitor_id()
    t1 = await Reader.open(a.ws_url, visitor=visitor)
    t2 = await Reader.open(b.ws_url, visitor=visitor)
    await on_b.wait_online(3, COUNTED)
    await t1.close()
    await never_below(on_a, 3, LEFT + 0.5)
    await t2.close()
    await on_a.wait_online(2, LEFT)
    await on_b.wait_online(2, LEFT)


@BOTH_FANOUTS
async def test_departures_close_bye_and_tcp_drop_leave_within_grace(
    redis, make_service, fanout: str
) -> None:
    service = make_service(redis_url=redis.url, fanout=fanout)
    watcher = await Reader.open(service.ws_url)
    closer = await Reader.open(service.ws_url)
    byer = await Reader.open(service.ws_url)
    dropper = await Reader.open(service.ws_url)
    await watcher.wait_online(4, COUNTED)
    for leave in (closer.close, lambda: byer.send({"type": "bye"}), dropper.abort):
        started = time.monotonic()
        before = watcher.snapshot["online"]  # type: ignore[index]
        result = leave()
        if asyncio.iscoroutine(result):
            await result
        await watcher.wait_online(before - 1, LEFT)
        assert time.monotonic() - started <= LEFT + 0.1


async def test_reconnect_to_another_instance_does_not_dip(redis, make_service) -> None:
    a = make_service(redis_url=redis.url)
    b = make_service(redis_url=redis.url)
    watcher = await Reader.open(b.ws_url)
    visitor = visitor_id()
    first = await Reader.open(a.ws_url, visitor=visitor, pages=[page("/bai-viet")])
    await watcher.wait_online(2, COUNTED)
    first.abort()
    await asyncio.sleep(0.3)  # on purpose: the widget reconnects a moment later
    second = await Reader.open(b.ws_url, visitor=visitor, pages=[page("/bai-viet")], resume=True)
    await never_below(watcher, 2, LEFT + 1)
    snap = watcher.snapshot
    assert snap is not None
    assert snap["today"]["views"] == 2  # the resumed hello counted no view
    assert snap["today"]["visits"] == 2
    await second.close()


@BOTH_FANOUTS
async def test_a_frozen_client_is_found_dead_by_pings(make_service, fanout: str) -> None:
    service = make_service(fanout=fanout)
    watcher = await Reader.open(service.ws_url)
    frozen = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "tests/support/silent_client.py"),
            f"{service.ws_url}?site=demo",
            visitor_id(),
        ],
        stdout=subprocess.PIPE,
        env={**os.environ},
    )
    try:
        assert frozen.stdout is not None and frozen.stdout.readline().startswith(b"hello sent")
        await watcher.wait_online(2, COUNTED)
        os.kill(frozen.pid, signal.SIGSTOP)
        started = time.monotonic()
        await watcher.wait_online(1, SILENT_LEFT)
        assert time.monotonic() - started <= SILENT_LEFT + 0.1
    finally:
        os.kill(frozen.pid, signal.SIGKILL)
        frozen.wait()


async def test_a_dead_instance_s_visitors_leave_within_ttl(redis, make_service) -> None:
    a = make_service(redis_url=redis.url)
    b = make_service(redis_url=redis.url)
    watcher = await Reader.open(b.ws_url)
    await Reader.open(a.ws_url)
    await Reader.open(a.ws_url)
    await watcher.wait_online(3, COUNTED)
    a.stop(signal.SIGKILL)
    started = time.monotonic()
    await watcher.wait_online(1, TTL + PUSH + 1)
    assert time.monotonic() - started <= TTL + PUSH + 1.1


async def test_http_beats_count_and_expire_and_bye_leaves(make_service) -> None:
    service = make_service()
    watcher = await Reader.open(service.ws_url)
    await watcher.wait_online(1, COUNTED)
    beat = {"visitor": visitor_id(), "pages": [page("/fallback")], "engaged": True}
    origin = {"Origin": "http://localhost:3000"}
    response = service.post("/api/v1/sites/demo/beats", json=beat, headers=origin)
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == "http://localhost:3000"
    assert response.json()["online"] == 2, "the answer counts the beat it answers"
    assert response.json()["beat_interval"] == 1
    await watcher.wait_online(2, COUNTED)
    started = time.monotonic()
    await watcher.wait_online(1, HTTP_LEFT)
    assert time.monotonic() - started >= TTL - 1  # kept by its beat meanwhile
    # sendBeacon posts text/plain; a bye leaves within the grace.
    import json

    beacon = {"Content-Type": "text/plain;charset=UTF-8", **origin}
    service.post("/api/v1/sites/demo/beats", content=json.dumps(beat), headers=beacon)
    await watcher.wait_online(2, COUNTED)
    bye = {**beat, "bye": True, "resume": True}
    service.post("/api/v1/sites/demo/beats", content=json.dumps(bye), headers=beacon)
    started = time.monotonic()
    await watcher.wait_online(1, LEFT)


async def test_the_asgi_fanout_path_counts_the_same(make_service) -> None:
    from support.processes import FAST_TIMING

    config = FAST_TIMING.replace("[server]", '[server]\nfanout = "asgi"') + (
        '\n[sites.demo]\norigins = ["*"]\n'
    )
    service = make_service(config)
    readers = [await Reader.open(service.ws_url) for _ in range(3)]
    for reader in readers:
        await reader.wait_online(3, COUNTED)
    await readers[2].close()
    await readers[0].wait_online(2, LEFT)
