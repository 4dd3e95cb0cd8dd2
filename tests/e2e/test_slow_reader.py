"""A reader that stops reading: the service closes it with 1013, others are not held up.

The stalled client is a bare socket with a tiny receive buffer that completes
the handshake, says hello, and never reads again; big snapshots (100 trending
pages with long titles, changing every push) fill what the kernel and the
service will buffer for it.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from support.client import Reader, page, visitor_id
from support.processes import FAST_TIMING, metric
from support.raw_ws import read_until_closed, stalled_reader

# 200 characters of three bytes each in UTF-8: 100 of them make a 60 KB snapshot.
TITLE = "{0:03d} " + "ễ" * 196
CONFIG = (
    FAST_TIMING.replace("beat_interval = 1", "beat_interval = 30")
    .replace("presence_ttl = 3", "presence_ttl = 60")
    .replace("push_interval = 0.5", "push_interval = 0.1")
    .replace("[server]", "[server]\nmax_pending_send_seconds = 1")
    + '\n[sites.demo]\norigins = ["*"]\ntrending_size = 100\n'
)


@pytest.mark.parametrize("fanout", ["direct", "asgi"])
async def test_a_reader_that_stops_reading_is_closed_1013_and_others_go_on(
    make_service, fanout: str
) -> None:
    service = make_service(CONFIG, fanout=fanout)
    watcher = await Reader.open(service.ws_url)
    beat = "/api/v1/sites/demo/beats"

    def visit(path: str, title: str = "") -> dict[str, object]:
        return {"visitor": visitor_id(), "pages": [page(path, title)]}

    async with httpx.AsyncClient(base_url=service.base, timeout=10) as http:
        # 100 trending pages with 200-character titles.
        answers = await asyncio.gather(
            *(
                http.post(beat, json=visit(f"/tin/{i:03d}.html", TITLE.format(i)))
                for i in range(100)
            )
        )
        assert {a.status_code for a in answers} == {200}
        stalled = await asyncio.to_thread(stalled_reader, service.port)
        views: list[asyncio.Task[httpx.Response]] = []
        try:
            closed = 0.0
            deadline = time.monotonic() + 40
            while time.monotonic() < deadline and not closed:
                # New views all the time: every push (0.1 s) carries a new 60 KB snapshot.
                for _ in range(5):
                    path = f"/tin/{len(views) % 100:03d}.html"
                    views.append(asyncio.create_task(http.post(beat, json=visit(path))))
                    await asyncio.sleep(0.05)  # on purpose: the views' pace
                text = (await http.get("/metrics")).text
                if 'portalpulse_connections_closed_total{code="1013"}' in text:
                    closed = metric(text, "portalpulse_connections_closed_total", 'code="1013"')
            assert closed == 1, "the stalled reader was not closed within 40 s"
            text = (await http.get("/metrics")).text
            assert metric(text, "portalpulse_messages_rejected_total", 'reason="slow_reader"') == 1
            assert await asyncio.to_thread(read_until_closed, stalled, 15), "still open"
        finally:
            stalled.close()
            await asyncio.gather(*views, return_exceptions=True)
        # The other reader was never held up, and still gets every change.
        assert watcher.close_code is None
        online = (await http.get("/api/v1/sites/demo/stats")).json()["online"]
        last = await http.post(beat, json=visit("/tin/moi.html"))
        await watcher.wait_for(lambda s: s["online"] > online, 5)
        # Nothing lost, nothing twice: one visit and one view for every visitor that
        # was answered (the 100 first, the views, the last), the watcher and the
        # stalled reader, though the stalled one was cut off.
        answered = [*answers, *(await asyncio.gather(*views, return_exceptions=True)), last]
        counted = sum(1 for a in answered if isinstance(a, httpx.Response) and a.is_success) + 2
        today = (await http.get("/api/v1/sites/demo/stats")).json()["today"]
        assert (today["visits"], today["views"]) == (counted, counted), (today, counted)
