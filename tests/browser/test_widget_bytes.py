"""What a reader's tab receives (CONTRACT §3a): our copy of a portal article whose
footer shows online, today and total, in real Chromium, while other readers come
and go every second. A byte count, not a timing: the bound is the issue's goal."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import secrets
import threading
import time
from collections.abc import Iterator
from importlib import resources
from typing import Any

import pytest
from browser_support import Portal
from playwright.sync_api import BrowserContext, Page, expect

from support.client import Reader
from support.processes import Service, free_port, write_config

pytestmark = pytest.mark.browser

SITE = "article"
WINDOW = 15.0  # seconds of frames counted, extrapolated to a minute
GOAL = 6000  # bytes a minute for a page that shows only numbers
DEMO = resources.files("portalpulse.web").joinpath("static/demo.html").read_text("utf-8")


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """Production's push_interval (it sets the frame rate); a short leave_grace so
    that a reader who leaves shows within the second, as one who arrives does."""
    work = tmp_path_factory.mktemp("bytes")
    config = (
        "[server]\nbeat_interval = 15\npresence_ttl = 45\nleave_grace = 0.5\n"
        f'push_interval = 1.0\n[sites.{SITE}]\nname = "Cổng"\norigins = ["*"]\n'
    )
    service = Service(
        port=free_port(), config=write_config(work / "c.toml", config), data_dir=work / "data"
    )
    service.start()
    try:
        yield service
    finally:
        service.stop()
    assert "Traceback" not in service.logs()


def article(portal: Portal, path: str, trending: bool) -> str:
    """The demo article as a portal serves it; without its trending box if asked."""
    html = DEMO.replace(
        'src="/widget.js" data-site="demo"',
        f'src="{portal.service_url}/widget.js" data-site="{SITE}"',
    )
    if not trending:
        html = re.sub(r"<aside>.*?</aside>", "", html, flags=re.S)
    portal.pages[path] = html
    return portal.url + path


class Churn:
    """Returning readers (raw clients) arrive four seconds in a row, then leave four
    seconds in a row: the online count moves every second."""

    def __init__(self, service: Service) -> None:
        self.url = service.ws_url
        self.stop = threading.Event()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self.run()), daemon=True)

    async def run(self) -> None:
        pool = [secrets.token_urlsafe(16) for _ in range(5)]
        # Their visits, and the day's peak with all of them here, before the measure.
        once = [await Reader.open(self.url, SITE, visitor=v, pages=[]) for v in pool]
        await once[-1].wait_for(lambda s: s["online"] >= len(pool) + 2, 5)
        for reader in once:
            await reader.close()
        await asyncio.sleep(1.5)
        self.ready.set()
        here: list[Reader] = []
        step = 0
        while not self.stop.is_set():
            if (step // 4) % 2 == 0:  # at most four here: under the day's peak
                page = {"path": f"/hot-{step % 3}.html", "title": "Tin nóng"}
                here.append(
                    await Reader.open(
                        self.url, SITE, visitor=pool[step % 5], pages=[page], resume=True
                    )
                )
            else:
                await here.pop(0).close()
            step += 1
            await asyncio.sleep(1)
        for reader in here:
            await reader.close()

    def __enter__(self) -> Churn:
        self.thread.start()
        assert self.ready.wait(20), "the returning readers never came once"
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(15)


def received(page: Page) -> list[tuple[float, str]]:
    frames: list[tuple[float, str]] = []
    page.on(
        "websocket",
        lambda ws: ws.on(
            "framereceived", lambda payload: frames.append((time.monotonic(), str(payload)))
        ),
    )
    return frames


def snapshots(frames: list[tuple[float, str]], since: float = 0.0) -> list[dict[str, Any]]:
    decoded = [(at, json.loads(text)) for at, text in frames if at >= since]
    return [f for _, f in decoded if f["type"] == "snapshot"]


def test_an_article_page_costs_under_6_kb_a_minute_and_gets_trending_only_when_it_changed(
    new_context: Any, portal: Portal, service: Service
) -> None:
    numbers: BrowserContext = new_context()
    page = numbers.new_page()
    frames = received(page)
    handshakes: list[dict[str, str]] = []
    cdp = numbers.new_cdp_session(page)
    cdp.on(
        "Network.webSocketHandshakeResponseReceived",
        lambda event: handshakes.append(event["response"]["headers"]),
    )
    cdp.send("Network.enable")
    page.goto(article(portal, "/article/a.html", trending=False))
    expect(page.locator('footer [data-portalpulse="online"]')).to_have_text("1", timeout=5000)
    listing = new_context().new_page()
    listed = received(listing)
    listing.goto(article(portal, "/article/b.html", trending=True))
    expect(listing.locator("[data-portalpulse=trending] li a").first).to_be_visible(timeout=5000)

    # Chromium offered permessage-deflate and the service took it, without context
    # takeover (each frame compressed once for every tab: tests/e2e/test_deflate.py).
    extensions = [
        value
        for h in handshakes
        for name, value in h.items()
        if name.lower() == "sec-websocket-extensions"
    ]
    assert extensions and "permessage-deflate" in extensions[0], handshakes
    assert "server_no_context_takeover" in extensions[0], extensions
    first = snapshots(frames)[0]
    assert set(first) == {"type", "site", "online", "today", "total_visits", "ts"}
    with Churn(service):
        # Frames reach these handlers only while Playwright runs: let the warm-up's in.
        page.wait_for_timeout(300)
        start = time.monotonic()
        page.wait_for_timeout(WINDOW * 1000)  # Playwright delivers frames meanwhile
        end = time.monotonic()
    window = [(at, text) for at, text in frames if start <= at < end]
    sizes = [len(text.encode()) + 2 for _, text in window]  # a frame under 126 B: 2 B header
    per_minute = sum(sizes) * 60 / WINDOW
    counts = [f["online"] for f in snapshots(window) if "online" in f]
    assert len(counts) >= WINDOW * 0.6, counts  # the count did move, about every second
    print(f"article page: {per_minute:.0f} B/min, {len(counts)} frames in {WINDOW:.0f} s")
    assert per_minute <= GOAL, (per_minute, window)
    others = [f for f in snapshots(window) if set(f) != {"type", "site", "online", "ts"}]
    assert not others, others  # today and total did not change: never sent again
    expect(page.locator('footer [data-portalpulse="total"]')).to_have_text(
        re.compile(r"^\d+$")  # kept from the first snapshot, never sent again
    )

    # The page with the list got it again only when it changed.
    lists = [f["trending"] for f in snapshots(listed) if "trending" in f]
    assert len(lists) >= 2
    assert all(a != b for a, b in itertools.pairwise(lists)), lists
