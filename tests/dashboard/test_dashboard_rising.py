"""A rising article is marked on the editor's screen: one reader for a while, then
seven; in headless Chromium against the real service on a real Redis."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable

from dashboard_support import CONFIG, MYHAO_ORIGIN, MYHAO_TOKEN, sign_in
from playwright.async_api import Browser, expect

from support.client import Reader, page
from support.processes import RedisServer, Service

ServiceFactory = Callable[..., Service]
WINDOW = 9  # seconds: the rising window, short for the test (it warms up for a third)


async def test_an_article_that_jumps_is_marked_rising(
    chromium: Browser, redis: RedisServer, make_service: ServiceFactory
) -> None:
    config = CONFIG.replace("[server]", f"[server]\nrising_window = {WINDOW}", 1)
    service = make_service(config=config, redis_url=redis.url)

    async def readers_of(path: str, title: str, n: int) -> list[Reader]:
        return [
            await Reader.open(
                service.ws_url, site="myhao", origin=MYHAO_ORIGIN, pages=[page(path, title)]
            )
            for _ in range(n)
        ]

    steady = await readers_of("/tin/on-dinh.html", "Tin ổn định", 6)
    first = await readers_of("/tin/nong.html", "Tin nóng", 1)
    context = await chromium.new_context(viewport={"width": 1366, "height": 768})
    tab = await context.new_page()
    await sign_in(tab, service.base, "myhao", MYHAO_TOKEN)
    hot = tab.locator("#pages tr[data-path='/tin/nong.html']")
    await expect(hot.locator(".readers")).to_have_text("1", timeout=5000)
    await asyncio.sleep(WINDOW / 3 + 1)  # time passes on purpose: the warm-up, at one reader
    more = await readers_of("/tin/nong.html", "Tin nóng", 6)
    await expect(hot.locator(".rising-badge")).to_have_text("▲ Đang lên", timeout=5000)
    await expect(hot).to_have_class(re.compile(r"\brising\b"))
    # Six readers all along is no jump.
    steady_row = tab.locator("#pages tr[data-path='/tin/on-dinh.html']")
    assert await steady_row.locator(".rising-badge").count() == 0
    await context.close()
    for one in steady + first + more:
        await one.close()
