"""The editors' dashboard in headless Chromium against the real service on a real Redis,
with simulated readers: what an editor sees."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import pytest
from dashboard_support import (
    CONFIG,
    MYHAO_NAME,
    MYHAO_ORIGIN,
    MYHAO_TOKEN,
    MYHAO_TOKEN_IDS,
    PROVINCE_TOKEN,
    SESSION_SECRET,
    VANLAM_NAME,
    VANLAM_ORIGIN,
    sign_in,
)
from playwright.async_api import Browser, Page, expect

from portalpulse.dashboard.sessions import Session, SessionSigner
from support.client import Reader, page
from support.processes import RedisServer, Service

pytestmark = pytest.mark.browser

ServiceFactory = Callable[..., Service]
MOVE = 5000  # ms: a reader counts within push_interval + 1 s; leaves within leave_grace + that


async def dashboard_page(
    chromium: Browser,
    service: Service,
    token: str = MYHAO_TOKEN,
    site: str = "myhao",
    lang: str = "",
) -> Page:
    context = await chromium.new_context(viewport={"width": 1600, "height": 1000})
    tab = await context.new_page()
    await sign_in(tab, service.base, site, token, lang)
    await expect(tab.locator("#status")).to_have_attribute("data-state", "live")
    return tab


def value(tab: Page, selector: str):  # type: ignore[no-untyped-def]
    return expect(tab.locator(selector))


async def reader(
    service: Service,
    path: str,
    title: str = "",
    *,
    referrer: str | None = None,
    device: str | None = None,
    engaged: bool = True,
    site: str = "myhao",
    origin: str = MYHAO_ORIGIN,
) -> Reader:
    fields = {"device": device} if device else {}
    return await Reader.open(
        service.ws_url,
        site=site,
        origin=origin,
        pages=[page(path, title, referrer)],
        engaged=engaged,
        **fields,
    )


async def test_signed_in_numbers_move_as_readers_arrive_and_leave(
    chromium: Browser, redis: RedisServer, make_service: ServiceFactory
) -> None:
    service = make_service(config=CONFIG, redis_url=redis.url)
    tab = await dashboard_page(chromium, service)
    assert tab.url.endswith("/dashboard/?site=myhao")
    await expect(tab.locator("#site-name")).to_have_text(MYHAO_NAME)
    await value(tab, "#online").to_have_attribute("data-value", "0")

    busy = [await reader(service, "/tin/a.html", "Tin A") for _ in range(2)]
    idle = await reader(service, "/tin/b.html", "Tin B", engaged=False)
    await value(tab, "#online").to_have_attribute("data-value", "3", timeout=MOVE)
    await value(tab, "#online").to_have_text("3")
    await value(tab, "#engaged").to_have_attribute("data-value", "2", timeout=MOVE)
    await value(tab, "#idle").to_have_attribute("data-value", "1", timeout=MOVE)
    first = tab.locator("#pages tr").first
    await expect(first).to_have_attribute("data-path", "/tin/a.html", timeout=MOVE)
    await expect(first.locator(".readers")).to_have_text("2")
    await expect(first.locator(".engaged")).to_have_text("2")
    await expect(first.locator(".views")).to_have_text("2")
    await expect(first.locator("a.title")).to_have_attribute("href", f"{MYHAO_ORIGIN}/tin/a.html")
    await value(tab, "#today-visits").to_have_attribute("data-value", "3", timeout=MOVE)
    await value(tab, "#total-visits").to_have_text("1.000.003", timeout=MOVE)

    await busy[0].close()
    await idle.close()
    await value(tab, "#online").to_have_attribute("data-value", "1", timeout=MOVE)
    await value(tab, "#idle").to_have_attribute("data-value", "0", timeout=MOVE)
    await expect(tab.locator("#pages tr[data-path='/tin/b.html'] .readers")).to_have_text(
        "0", timeout=MOVE
    )
    await busy[1].close()
    await value(tab, "#online").to_have_attribute("data-value", "0", timeout=MOVE)


async def test_the_charts_are_drawn_by_uplot(
    chromium: Browser, redis: RedisServer, make_service: ServiceFactory
) -> None:
    service = make_service(config=CONFIG, redis_url=redis.url)
    one = await reader(service, "/tin/a.html")
    tab = await dashboard_page(chromium, service)
    await value(tab, "#online").to_have_attribute("data-value", "1", timeout=MOVE)
    for chart in ("#chart-minutes", "#chart-hours"):
        await expect(tab.locator(f"{chart} .uplot")).to_have_count(1)
        box = await tab.locator(f"{chart} canvas").bounding_box()
        assert box is not None and box["width"] > 150 and box["height"] > 100, (chart, box)
    # The last hour's line ends at the reader now online: its newest point counts them.
    shown = await tab.evaluate("PortalPulseDashboard.status()")
    assert shown["minutes"] and shown["minutes"][-1][1] >= 1, shown["minutes"]
    # The hour chart has today's views up to the current hour, and yesterday's 24 hours.
    hours = shown["hours"]
    assert hours is not None and len(hours["yesterday"]) == 24
    assert sum(v or 0 for v in hours["today"]) >= 1
    # The last 24 hours, read from the history API with the editor's session.
    async with tab.expect_response("**/api/v1/sites/myhao/history?minutes=1440") as answer:
        await tab.click(".range button[data-minutes='1440']")
    assert (await answer.value).status == 200
    await expect(tab.locator("#minutes-title")).to_have_text("Online từng phút, 24 giờ qua")
    await expect(tab.locator(".range button[data-minutes='1440']")).to_have_attribute(
        "aria-pressed", "true"
    )
    shown = await tab.evaluate("PortalPulseDashboard.status()")
    assert shown["range"] == 1440 and shown["minutes"][-1][1] >= 1, shown
    await expect(tab.locator("#chart-minutes .uplot")).to_have_count(1)
    await one.close()


async def test_sources_and_devices_split_by_referrer_and_viewport(
    chromium: Browser, redis: RedisServer, make_service: ServiceFactory
) -> None:
    service = make_service(config=CONFIG, redis_url=redis.url)
    arrivals = [
        ("https://www.google.com/", "mobile"),
        ("https://www.google.com.vn/", "mobile"),
        ("https://coccoc.com/search?query=my+hao", "desktop"),
        ("https://www.facebook.com/", "mobile"),
        ("https://zalo.me/", "tablet"),
        (f"{MYHAO_ORIGIN}/tin/khac.html", "desktop"),
        ("", "desktop"),
        ("https://baomoi.com/tin.html", None),
    ]
    readers = [
        await reader(service, f"/tin/{i}.html", referrer=ref, device=device)
        for i, (ref, device) in enumerate(arrivals)
    ]
    tab = await dashboard_page(chromium, service)
    await value(tab, "#online").to_have_attribute("data-value", str(len(arrivals)), timeout=MOVE)
    expected = {
        "#sources": {"search": 3, "social": 2, "internal": 1, "direct": 1, "other": 1},
        "#referrers": {"google": 2, "coccoc": 1, "facebook": 1, "zalo": 1},
        "#devices": {"mobile": 3, "tablet": 1, "desktop": 3, "unknown": 1},
    }
    for box, counts in expected.items():
        for key, n in counts.items():
            row = tab.locator(f"{box} .bar-row[data-key='{key}']")
            await expect(row).to_have_attribute("data-value", str(n), timeout=MOVE)
    await expect(tab.locator("#referrers .bar-row[data-key='coccoc'] .label")).to_have_text(
        "Cốc Cốc"
    )
    await expect(tab.locator("#sources .bar-row[data-key='search'] .label")).to_have_text(
        "Tìm kiếm"
    )
    for one in readers:
        await one.close()


async def test_a_title_with_html_is_shown_as_text(
    chromium: Browser, redis: RedisServer, make_service: ServiceFactory
) -> None:
    service = make_service(config=CONFIG, redis_url=redis.url)
    hostile = "<img src=x onerror=alert(1)>"
    one = await reader(service, "/tin/xss.html", hostile)
    tab = await dashboard_page(chromium, service)
    dialogs: list[str] = []
    tab.on("dialog", lambda d: dialogs.append(d.message))
    row = tab.locator("#pages tr[data-path='/tin/xss.html']")
    await expect(row.locator(".title")).to_have_text(hostile, timeout=MOVE)
    assert await tab.locator("#pages img").count() == 0
    await tab.wait_for_timeout(300)
    assert dialogs == []
    await one.close()


async def test_a_wrong_token_is_refused_with_a_clear_message(
    chromium: Browser, redis: RedisServer, make_service: ServiceFactory
) -> None:
    service = make_service(config=CONFIG, redis_url=redis.url)
    context = await chromium.new_context()
    tab = await context.new_page()
    refused: list[int] = []
    tab.on("response", lambda r: refused.append(r.status) if r.request.method == "POST" else None)
    await sign_in(tab, service.base, "myhao", "not-the-token")
    await expect(tab.locator(".error")).to_contain_text("Mã truy cập không đúng")
    assert refused == [401]
    # Another site's token does not open this one either.
    await tab.select_option("#site", "vanlam")
    await tab.fill("#token", MYHAO_TOKEN)
    await tab.click("button[type=submit]")
    await expect(tab.locator(".error")).to_contain_text("Mã truy cập không đúng")
    await tab.goto(f"{service.base}/dashboard/")
    assert "/dashboard/login" in tab.url
    assert not [c for c in await context.cookies() if c["name"] == "pp_dashboard"]
    # In English, when the editor asked for it.
    await tab.goto(f"{service.base}/dashboard/login?lang=en")
    await tab.fill("#token", "still-wrong")
    await tab.click("button[type=submit]")
    await expect(tab.locator(".error")).to_contain_text("Wrong access token")


async def test_a_province_wide_token_may_pick_any_site(
    chromium: Browser, redis: RedisServer, make_service: ServiceFactory
) -> None:
    service = make_service(config=CONFIG, redis_url=redis.url)
    there = await reader(service, "/van-lam.html", "Văn Lâm", site="vanlam", origin=VANLAM_ORIGIN)
    tab = await dashboard_page(chromium, service, token=PROVINCE_TOKEN)
    picker = tab.locator("#site-picker")
    await expect(picker).to_be_visible()
    await expect(picker.locator("option")).to_have_count(2)
    await value(tab, "#online").to_have_attribute("data-value", "0", timeout=MOVE)
    await picker.select_option("vanlam")
    await expect(tab.locator("#site-name")).to_have_text(VANLAM_NAME, timeout=MOVE)
    await value(tab, "#online").to_have_attribute("data-value", "1", timeout=MOVE)
    await expect(tab.locator("#pages a.title")).to_have_attribute(
        "href", f"{VANLAM_ORIGIN}/van-lam.html"
    )
    assert "site=vanlam" in tab.url
    await there.close()


async def test_english_is_selectable_and_remembered(
    chromium: Browser, redis: RedisServer, make_service: ServiceFactory
) -> None:
    service = make_service(config=CONFIG, redis_url=redis.url)
    tab = await dashboard_page(chromium, service)
    await expect(tab.locator("#now-title")).to_have_text("Đang online")
    await expect(tab.locator("html")).to_have_attribute("lang", "vi")
    await tab.click("#lang-toggle")
    await expect(tab.locator("#now-title")).to_have_text("Online now")
    await expect(tab.locator("#sources .bar-row[data-key='social'] .label")).to_have_text("Social")
    await tab.reload()
    await expect(tab.locator("#now-title")).to_have_text("Online now")
    await expect(tab.locator("#chart-minutes .uplot")).to_have_count(1, timeout=MOVE)
    await tab.goto(f"{service.base}/dashboard/?lang=vi")
    await expect(tab.locator("#now-title")).to_have_text("Đang online")


async def test_signing_out_ends_the_session(
    chromium: Browser, redis: RedisServer, make_service: ServiceFactory
) -> None:
    service = make_service(config=CONFIG, redis_url=redis.url)
    tab = await dashboard_page(chromium, service)
    await tab.click("#logout-form button")
    await expect(tab.locator(".notice")).to_contain_text("đăng xuất")
    assert "/dashboard/login" in tab.url
    response = await tab.request.get(f"{service.base}/dashboard/api/session")
    assert response.status == 401
    await tab.goto(f"{service.base}/dashboard/")
    assert "/dashboard/login" in tab.url


async def test_the_page_keeps_to_its_content_security_policy(
    chromium: Browser, redis: RedisServer, make_service: ServiceFactory
) -> None:
    service = make_service(config=CONFIG, redis_url=redis.url)
    context = await chromium.new_context()
    tab = await context.new_page()
    problems: list[str] = []
    tab.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda e: problems.append(str(e)))
    await sign_in(tab, service.base, "myhao", MYHAO_TOKEN)
    await expect(tab.locator("#status")).to_have_attribute("data-state", "live")
    one = await reader(service, "/tin/a.html", "Tin A")
    await value(tab, "#online").to_have_attribute("data-value", "1", timeout=MOVE)
    await asyncio.sleep(0.3)  # time passes on purpose: a refused script would report meanwhile
    assert problems == []
    response = await tab.request.get(f"{service.base}/dashboard/")
    headers = response.headers
    assert "script-src 'self'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "same-origin"
    await one.close()


async def test_an_expired_session_returns_the_editor_to_the_sign_in_form(
    chromium: Browser, redis: RedisServer, make_service: ServiceFactory
) -> None:
    service = make_service(config=CONFIG, redis_url=redis.url)
    context = await chromium.new_context()
    short = SessionSigner(SESSION_SECRET).sign(
        Session(frozenset({"myhao"}), time.time() + 3, MYHAO_TOKEN_IDS)
    )
    await context.add_cookies([{"name": "pp_dashboard", "value": short, "url": service.base + "/"}])
    tab = await context.new_page()
    await tab.goto(f"{service.base}/dashboard/?site=myhao&lang=en")
    await expect(tab.locator("#status")).to_have_attribute("data-state", "live")
    await expect(tab.locator(".notice")).to_contain_text("session has ended", timeout=8000)
    assert "/dashboard/login" in tab.url and "next=%2Fdashboard%2F%3Fsite%3Dmyhao" in tab.url
    await expect(tab.locator("#site")).to_have_value("myhao")
    await tab.fill("#token", MYHAO_TOKEN)
    await tab.click("button[type=submit]")
    await expect(tab.locator("#status")).to_have_attribute("data-state", "live")
    assert tab.url.endswith("/dashboard/?site=myhao")


FIXED_TS = 1764232200.0  # 2025-11-27 15:30 in Asia/Ho_Chi_Minh
FIXED_FRAME = {
    "type": "dashboard",
    "site": "myhao",
    "name": MYHAO_NAME,
    "ts": FIXED_TS,
    "online": 1234,
    "engaged": 456,
    "idle": 778,
    "pages": [{"path": "/tin/a.html", "title": "", "readers": 12, "engaged": 5, "views": 340}],
    "sources": {"direct": 50, "search": 30, "social": 25, "internal": 10, "other": 5},
    "referrers": {"google": 20, "facebook": 15, "zalo": 8},
    "devices": {"mobile": 70, "tablet": 5, "desktop": 40, "unknown": 5},
    "today": {
        "visits": 8520,
        "views": 20114,
        "visitors": 6302,
        "peak_online": 1240,
        "peak_at": FIXED_TS - 5400,
    },
    "yesterday": {
        "visits": 9020,
        "views": 2400,
        "visitors": 7000,
        "peak_online": 1500,
        "peak_at": FIXED_TS - 86400,
    },
    "total_visits": 12345678,
    "minutes": [[FIXED_TS - 30 - 60 * (59 - i), 1000 + i] for i in range(60)],
    "hours": {"today": [10] * 24, "yesterday": [100] * 24},
}


async def test_every_part_of_a_frame_is_shown(
    chromium: Browser, redis: RedisServer, make_service: ServiceFactory
) -> None:
    """The page against the frame's schema, with numbers fixed (the socket is stubbed)."""
    service = make_service(config=CONFIG, redis_url=redis.url)
    context = await chromium.new_context(viewport={"width": 1600, "height": 1000})
    tab = await context.new_page()
    await tab.route_web_socket(
        "**/dashboard/ws?site=myhao", lambda ws: ws.send(json.dumps(FIXED_FRAME))
    )
    await sign_in(tab, service.base, "myhao", MYHAO_TOKEN)
    await value(tab, "#online").to_have_text("1.234")
    await value(tab, "#engaged-share").to_have_text("(37 %)")
    await value(tab, "#today-peak").to_have_text("1.240 lúc 14:00")
    await value(tab, "#yesterday-peak").to_have_text("1.500 lúc 15:30")
    await value(tab, "#total-visits").to_have_text("12.345.678")
    # Yesterday by this time: 15 whole hours of 100 views and half of the 16th.
    await value(tab, "#yesterday-views-so-far").to_have_text("1.550")
    # A page without a title shows its path, still linked to the portal.
    link = tab.locator("#pages a.title")
    await expect(link).to_have_text("/tin/a.html")
    await expect(link).to_have_attribute("href", f"{MYHAO_ORIGIN}/tin/a.html")
    labels = await tab.locator("#referrers .label").all_text_contents()
    assert labels == ["Google", "Facebook", "Zalo"]
    shown = await tab.evaluate("PortalPulseDashboard.status()")
    assert len(shown["minutes"]) == 60 and shown["minutes"][-1][1] == 1059
    assert shown["hours"]["today"][15] == 10 and shown["hours"]["today"][16] is None
    await tab.click("#lang-toggle")
    await value(tab, "#online").to_have_text("1,234")
    await value(tab, "#today-peak").to_have_text("1,240 at 14:00")
    await expect(tab.locator("#devices .label")).to_have_text(
        ["Mobile", "Tablet", "Desktop", "Unknown"]
    )
