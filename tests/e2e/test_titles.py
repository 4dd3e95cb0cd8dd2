"""The site's name is cut from titles: the stats API, the widget's trending list
and the dashboard show the article's own title, on either store."""

from __future__ import annotations

import pytest
from playwright.async_api import async_playwright, expect

from support.chromium import CHROMIUM, CHROMIUM_ARGS
from support.client import Reader, page
from support.processes import FAST_TIMING

ARTICLE = "Hội nghị trực tuyến triển khai kế hoạch chuyển đổi số năm 2026"
NOTICE = "Kết quả kỳ thi tuyển công chức cấp xã năm 2026"
MYHAO = "Cổng thông tin điện tử thị xã Mỹ Hào"


async def test_the_demo_pages_trending_shows_the_articles_own_title(make_service) -> None:
    service = make_service(FAST_TIMING)  # no sites: the demo portal at /
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            tab = await browser.new_page()
            await tab.goto(service.base + "/")
            item = tab.locator('[data-portalpulse="trending"] a').first
            await expect(item).to_have_text(ARTICLE, timeout=10_000)
            # A link of the demo portal opens a page of its own, with the link's title.
            other = await browser.new_page()
            await other.goto(service.base + "/?ItemID=202")
            items = tab.locator('[data-portalpulse="trending"] a')
            await expect(items).to_have_count(2, timeout=10_000)
            await expect(items.filter(has_text=NOTICE)).to_have_attribute("href", "/?ItemID=202")
        finally:
            await browser.close()
    titles = {t["path"]: t["title"] for t in service.stats("demo")["trending"]}
    assert titles == {"/": ARTICLE, "/?ItemID=202": NOTICE}


@pytest.mark.parametrize("store", ["embedded", "redis"])
async def test_stats_show_titles_without_the_configured_suffix(
    request: pytest.FixtureRequest, store: str
) -> None:
    config = f"""
[sites.myhao]
name = "{MYHAO}"
origins = ["*"]
title_suffixes = [" - {MYHAO}", " :: Mỹ Hào"]
"""
    # Redis first, so that it stops after the service.
    redis_url = request.getfixturevalue("redis").url if store == "redis" else None
    service = request.getfixturevalue("make_service")(FAST_TIMING + config, redis_url=redis_url)
    reader = await Reader.open(
        service.ws_url,
        site="myhao",
        pages=[page("/a.html", f"Tin A - {MYHAO}"), page("/b.html", "Tin B :: Mỹ Hào")],
    )
    snap = await reader.wait_for(lambda s: len(s["trending"]) == 2, 3)
    assert sorted(t["title"] for t in snap["trending"]) == ["Tin A", "Tin B"]
    assert sorted(t["title"] for t in service.stats("myhao")["trending"]) == ["Tin A", "Tin B"]
    await reader.close()
