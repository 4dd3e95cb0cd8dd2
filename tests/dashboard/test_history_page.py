"""The history page in headless Chromium: a month of days, this month and this year,
a day's top articles and the CSV links, as an editor sees them."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from dashboard_support import CONFIG, MYHAO_ORIGIN, MYHAO_TOKEN, sign_in
from playwright.async_api import Browser, expect

from support.client import Reader, page
from support.history_seed import seed_days
from support.processes import Service, offset_to_local_noon

pytestmark = pytest.mark.browser
ServiceFactory = Callable[..., Service]


async def test_a_month_of_history_its_totals_top_articles_and_csv(
    chromium: Browser, make_service: ServiceFactory, tmp_path: Path
) -> None:
    today = dt.datetime.fromtimestamp(
        time.time() + offset_to_local_noon(), ZoneInfo("Asia/Ho_Chi_Minh")
    ).date()
    seed_days(tmp_path / "data", today, 40)
    service = make_service(config=CONFIG, data_dir=tmp_path / "data")
    reader = await Reader.open(
        service.ws_url,
        site="myhao",
        origin=MYHAO_ORIGIN,
        pages=[page("/tin/chuyen-doi-so.html", "Hội nghị chuyển đổi số - Cổng TTĐT thị xã Mỹ Hào")],
    )
    await reader.wait_for(lambda s: s["today"]["views"] == 1, 3)
    context = await chromium.new_context(viewport={"width": 1366, "height": 768})
    tab = await context.new_page()
    await tab.goto(f"{service.base}/dashboard/myhao/history")
    assert "/dashboard/login" in tab.url  # no session: off to sign in, and back after
    await tab.select_option("#site", "myhao")
    await tab.fill("#token", MYHAO_TOKEN)
    await tab.click("button[type=submit]")
    await expect(tab).to_have_url(f"{service.base}/dashboard/myhao/history")

    rows = tab.locator("#days tbody tr")
    await expect(rows).to_have_count(30)
    yesterday = today - dt.timedelta(days=1)
    first = rows.nth(1).locator("td")  # newest first: today, then yesterday
    await expect(first.nth(0)).to_have_text(yesterday.strftime("%d/%m/%Y"))
    await expect(first.nth(1)).to_have_text("101")
    await expect(first.nth(2)).to_have_text("301")
    await expect(tab.locator("#chart rect")).to_have_count(30)
    await expect(tab.locator("#today-visits")).to_have_text("1")
    seeded_this_month = sum(
        100 + n for n in range(1, 41) if (today - dt.timedelta(days=n)).month == today.month
    )
    month_text = f"{seeded_this_month + 1:,}".replace(",", ".")
    await expect(tab.locator("#month-visits")).to_have_text(month_text)
    await expect(tab.get_by_role("heading", name="Năm nay")).to_be_visible()

    await rows.nth(0).get_by_role("button").click()
    await expect(tab.locator("#top li").first).to_contain_text("Hội nghị chuyển đổi số")
    await expect(tab.locator("#top li").first).not_to_contain_text("Cổng TTĐT")

    await tab.get_by_role("button", name="90 ngày").click()
    await expect(rows).to_have_count(90)
    href = await tab.locator("#days-csv").get_attribute("href")
    assert href == "/api/v1/sites/myhao/history.csv?days=90"
    cookies = {c["name"]: c["value"] for c in await context.cookies()}
    sheet = httpx.get(service.base + href, cookies=cookies, timeout=5)
    lines = sheet.text.lstrip("\ufeff").splitlines()
    assert len(lines) == 91 and lines[-2].startswith(f"{yesterday.isoformat()},101,301,81,11,")

    # The live dashboard and the history page link to each other, for the site shown.
    await tab.get_by_role("link", name="Bảng trực tiếp").click()
    await expect(tab).to_have_url(f"{service.base}/dashboard/?site=myhao")
    await expect(tab.locator("#online")).to_have_text("1")
    await tab.get_by_role("link", name="Lịch sử").click()
    await expect(tab).to_have_url(f"{service.base}/dashboard/myhao/history")
    await expect(rows).to_have_count(30)
    await context.close()
    await reader.close()


async def test_the_history_page_speaks_english_when_asked(
    chromium: Browser, make_service: ServiceFactory
) -> None:
    service = make_service(config=CONFIG)
    context = await chromium.new_context()
    tab = await context.new_page()
    await sign_in(tab, service.base, "myhao", MYHAO_TOKEN)
    await tab.goto(f"{service.base}/dashboard/myhao/history?lang=en")
    await expect(tab.get_by_role("heading", name="This month")).to_be_visible()
    await expect(tab.locator("#days tbody tr")).to_have_count(30)
    await context.close()
