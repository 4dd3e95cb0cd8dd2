"""The dashboard on newsroom screens, in headless Chromium against the real service on a
real Redis with 30 simulated readers: what fits without scrolling, whole titles,
layout shift (PerformanceObserver 'layout-shift'), a dropped connection, phones.

PP_SCREENSHOTS=/some/dir saves what each screen showed, for a person to look at.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dashboard_support import CONFIG, MYHAO_ORIGIN, MYHAO_TOKEN, sign_in
from playwright.async_api import Browser, Page, expect

from support.client import Reader, page
from support.processes import RedisServer, Service

ServiceFactory = Callable[..., Service]
MOVE = 5000

LONG_TITLE = (
    "Hội nghị trực tuyến triển khai Kế hoạch phát triển kinh tế - xã hội "
    "và chuyển đổi số năm 2026 của thị xã Mỹ Hào"
)
ARTICLES = [
    ("/tin/hoi-nghi-truc-tuyen.html", LONG_TITLE, 7),
    ("/tin/lich-cat-dien.html", "Lịch cắt điện tuần này trên địa bàn thị xã", 5),
    ("/tin/tuyen-dung.html", "Thông báo tuyển dụng viên chức giáo dục năm 2026", 4),
    ("/tin/dat-dai.html", "Công khai kế hoạch sử dụng đất năm 2026 của thị xã Mỹ Hào", 3),
    ("/tin/hoc-bong.html", "Trao học bổng cho học sinh nghèo vượt khó", 3),
    ("/tin/giao-thong.html", "Phân luồng giao thông phục vụ thi công cầu vượt", 2),
    ("/tin/y-te.html", "Tiêm chủng mở rộng đợt 2 tại các trạm y tế phường", 2),
    ("/tin/van-hoa.html", "Lễ hội truyền thống đình làng Nhân Lý", 1),
    ("/tin/nong-nghiep.html", "Hướng dẫn phòng chống rét cho cây trồng vụ đông", 1),
    ("/tin/the-thao.html", "Giải bóng đá thiếu niên nhi đồng thị xã", 1),
    ("/", "Trang chủ", 1),
]
REFERRERS = ["https://www.google.com/", "https://zalo.me/", "", f"{MYHAO_ORIGIN}/"]
DEVICES = ["mobile", "desktop", "tablet"]

# Sums every layout shift not caused by the editor's input (a stricter figure than
# CLS's worst five-second window), from the first paint of each page.
CLS_OBSERVER = """
window.__cls = 0;
window.__shifts = [];
new PerformanceObserver(function (list) {
  list.getEntries().forEach(function (entry) {
    if (entry.hadRecentInput) return;
    window.__cls += entry.value;
    window.__shifts.push({value: entry.value, sources: (entry.sources || []).map(function (s) {
      return s.node ? (s.node.id || s.node.className || s.node.nodeName) : "?";
    })});
  });
}).observe({type: "layout-shift", buffered: true});
"""


# How opaque an element looks: its opacity times its ancestors'.
SEEN_OPACITY = """e => {
  let seen = 1;
  for (let el = e; el; el = el.parentElement) seen *= Number(getComputedStyle(el).opacity);
  return seen;
}"""


async def thirty_readers(service: Service) -> list[Reader]:
    readers = []
    for path, title, count in ARTICLES:
        for _ in range(count):
            n = len(readers)
            readers.append(
                await Reader.open(
                    service.ws_url,
                    site="myhao",
                    origin=MYHAO_ORIGIN,
                    pages=[page(path, title, REFERRERS[n % len(REFERRERS)])],
                    device=DEVICES[n % len(DEVICES)],
                    engaged=n % 3 > 0,
                )
            )
    assert len(readers) == 30
    return readers


async def open_dashboard(
    chromium: Browser, service: Service, width: int, height: int, query: str = ""
) -> Page:
    context = await chromium.new_context(viewport={"width": width, "height": height})
    await context.add_init_script(CLS_OBSERVER)
    tab = await context.new_page()
    await sign_in(tab, service.base, "myhao", MYHAO_TOKEN)
    await expect(tab.locator("#status")).to_have_attribute("data-state", "live")
    if query:
        await tab.goto(f"{service.base}/dashboard/?site=myhao&{query}")
    await expect(tab.locator("#online")).to_have_attribute("data-value", "30", timeout=MOVE)
    await expect(tab.locator("#chart-minutes .uplot")).to_have_count(1)
    await tab.wait_for_timeout(1500)  # a few more pushes: anything that moves, moves now
    return tab


async def shot(tab: Page, name: str) -> None:
    folder = os.environ.get("PP_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        await tab.screenshot(path=str(Path(folder) / f"{name}.png"))


async def measures(tab: Page, name: str) -> dict[str, Any]:
    """What the screen shows; printed (pytest -s) for the record."""
    seen: dict[str, Any] = await tab.evaluate(
        """() => {
          const rows = [...document.querySelectorAll('#pages tr[data-path]')].map(r => {
            const box = r.getBoundingClientRect();
            const title = r.querySelector('.title');
            const lineHeight = parseFloat(getComputedStyle(title).lineHeight);
            // The same words in a plain block of the same font and width: the lines they need.
            const lines = Math.round(title.getBoundingClientRect().height / lineHeight);
            const style = getComputedStyle(title);
            const probe = document.createElement('div');
            probe.textContent = title.textContent;
            Object.assign(probe.style, {position: 'absolute', visibility: 'hidden', left: '0',
              top: '0', fontFamily: style.fontFamily, fontSize: style.fontSize,
              fontWeight: style.fontWeight, letterSpacing: style.letterSpacing,
              lineHeight: style.lineHeight,
              overflowWrap: style.overflowWrap, width: title.getBoundingClientRect().width + 'px'});
            document.body.appendChild(probe);
            const needed = Math.round(probe.getBoundingClientRect().height / lineHeight);
            probe.remove();
            return {path: r.dataset.path, top: box.top, bottom: box.bottom,
                    readers: Number(r.querySelector('.readers').dataset.value),
                    quiet: r.classList.contains('quiet'),
                    text: title.textContent, tooltip: title.title,
                    lines: lines, needed: needed, clipped: needed > lines};
          });
          const bottom = (s) => document.querySelector(s).getBoundingClientRect().bottom;
          const header = document.querySelector('header.top').getBoundingClientRect();
          const h1 = document.querySelector('.top h1').getBoundingClientRect();
          return {scrollHeight: document.scrollingElement.scrollHeight,
                  scrollWidth: document.scrollingElement.scrollWidth,
                  innerHeight: innerHeight, innerWidth: innerWidth,
                  headerHeight: header.height, h1Height: h1.height,
                  sourcesBottom: bottom('.sources-card'), daysBottom: bottom('.days'),
                  cls: window.__cls, shifts: window.__shifts, rows: rows};
        }"""
    )
    rows = seen["rows"]
    print(
        f"{name}: page {seen['scrollWidth']}x{seen['scrollHeight']} in "
        f"{seen['innerWidth']}x{seen['innerHeight']}, header {seen['headerHeight']:.0f} px, "
        f"layout shift {seen['cls']:.4f}, {len(rows)} rows, first at y={rows[0]['top']:.0f}, "
        f"fifth ends at y={rows[min(4, len(rows) - 1)]['bottom']:.0f}"
    )
    return seen


async def test_the_dashboard_fits_newsroom_screens_and_phones(
    chromium: Browser, redis: RedisServer, make_service: ServiceFactory
) -> None:
    service = make_service(config=CONFIG, redis_url=redis.url)
    readers = await thirty_readers(service)

    for query in ("", "wall=1"):
        wall = await open_dashboard(chromium, service, 1920, 1080, query)
        seen = await measures(wall, f"1920x1080{' wall' if query else ''}")
        await shot(wall, f"1920x1080{'-wall' if query else ''}")
        # Nothing scrolls on a wall screen, and every card is on it.
        assert seen["scrollHeight"] <= seen["innerHeight"], seen
        assert seen["sourcesBottom"] <= 1080 and seen["daysBottom"] <= 1080, seen
        assert seen["cls"] < 0.1, seen["shifts"]
        rows = seen["rows"]
        # Readers first; pages nobody reads now never sit among them.
        read = [r["readers"] for r in rows if not r["quiet"]]
        assert read == sorted(read, reverse=True) and min(read) > 0, rows
        assert all(r["readers"] == 0 for r in rows if r["quiet"]), rows
        # The long title whole, on two lines at most, its full text in the tooltip.
        first = rows[0]
        assert first["path"] == "/tin/hoi-nghi-truc-tuyen.html", rows
        assert first["text"] == LONG_TITLE and first["tooltip"] == LONG_TITLE
        assert first["lines"] <= 2 and not first["clipped"], str(first)
        assert all(r["bottom"] <= 1080 for r in rows[:10]), rows
        if query:
            await expect(wall.locator("#logout-form")).to_be_hidden()
            await expect(wall.locator("#wall-toggle")).to_have_attribute("aria-pressed", "true")
        await wall.context.close()

    laptop = await open_dashboard(chromium, service, 1366, 768)
    seen = await measures(laptop, "1366x768")
    await shot(laptop, "1366x768")
    assert seen["h1Height"] < 40 and seen["headerHeight"] < 64, seen  # one line
    assert seen["cls"] < 0.1, seen["shifts"]
    top5 = seen["rows"][:5]
    assert len(top5) == 5 and all(r["top"] >= 0 and r["bottom"] <= 768 for r in top5), top5
    assert top5[0]["top"] < 200, top5
    # Narrower here: a title longer than two lines ends in an ellipsis, whole in its tooltip.
    assert all(r["lines"] <= 2 and r["tooltip"] == r["text"] for r in top5), top5
    await laptop.context.close()

    phone = await open_dashboard(chromium, service, 390, 844)
    seen = await measures(phone, "390x844")
    await shot(phone, "390x844")
    assert seen["scrollWidth"] <= 390, seen
    assert seen["cls"] < 0.1, seen["shifts"]
    overflowing = await phone.evaluate(
        """() => [...document.querySelectorAll('.card, .card *')].filter(el => {
             const card = el.closest('.card').getBoundingClientRect();
             const box = el.getBoundingClientRect();
             return box.width > 0 && (box.right > card.right + 0.5 || box.left < card.left - 0.5);
           }).map(el => el.id || el.className)"""
    )
    assert overflowing == [], overflowing
    await phone.context.close()

    context = await chromium.new_context(viewport={"width": 390, "height": 844})
    login = await context.new_page()
    await login.goto(f"{service.base}/dashboard/login")
    await shot(login, "390x844-sign-in")
    box = await login.locator(".login-box").bounding_box()
    width = await login.evaluate("document.scrollingElement.scrollWidth")
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390, box
    assert width <= 390
    await context.close()

    for one in readers:
        await one.close()


async def test_a_dropped_connection_dims_the_numbers_without_moving_them(
    chromium: Browser, redis: RedisServer, make_service: ServiceFactory
) -> None:
    service = make_service(config=CONFIG, redis_url=redis.url)
    readers = await thirty_readers(service)
    tab = await open_dashboard(chromium, service, 1366, 768)
    assert await tab.locator("#online").evaluate(SEEN_OPACITY) == 1
    service.stop()
    await expect(tab.locator("#status")).to_have_attribute("data-state", "offline", timeout=MOVE)
    await tab.wait_for_timeout(700)  # the dimming's transition
    await shot(tab, "1366x768-offline")
    for number in ("#online", "#today-visits", "#pages tr[data-path] .readers >> nth=0"):
        opacity = await tab.locator(number).evaluate(SEEN_OPACITY)
        assert opacity < 0.5, (number, opacity)
    await expect(tab.locator("#online")).to_have_text("30")  # the last numbers, dimmed
    await expect(tab.locator("#status-text")).to_have_text("Mất kết nối, đang thử lại…")
    seen = await measures(tab, "1366x768 after the connection dropped")
    assert seen["cls"] < 0.1, seen["shifts"]
    for one in readers:
        await one.close()


STUB_TS = 1764232200.0  # 2025-11-27 15:30 in Asia/Ho_Chi_Minh


def stub_frame() -> dict[str, Any]:
    """A frame with counts in the thousands, for what the page makes of them."""
    return {
        "type": "dashboard",
        "site": "myhao",
        "name": "Mỹ Hào",
        "ts": STUB_TS,
        "online": 1234,
        "engaged": 456,
        "idle": 778,
        "pages": [
            {"path": "/tin/a.html", "title": "Tin A", "readers": 40, "engaged": 5, "views": 90,
             "rising": True},
            {"path": "/tin/b.html", "title": "Tin B", "readers": 30, "engaged": 5, "views": 340,
             "rising": False},
            {"path": "/tin/c.html", "title": "Tin C", "readers": 0, "engaged": 0, "views": 500},
        ],
        "sources": {}, "referrers": {}, "devices": {},
        "today": {"visits": 1, "views": 1, "visitors": 1, "peak_online": 1, "peak_at": STUB_TS},
        "yesterday": {"visits": 1, "views": 1, "visitors": 1, "peak_online": 1, "peak_at": None},
        "total_visits": 1,
        "minutes": [[STUB_TS - 30 - 60 * (59 - i), 1000 + 20 * i] for i in range(60)],
        "hours": {"today": [1500] * 24, "yesterday": [2500] * 24},
    }  # fmt: skip


async def test_axes_speak_the_dashboard_s_language_and_rising_articles_are_marked(
    chromium: Browser, redis: RedisServer, make_service: ServiceFactory
) -> None:
    """In a browser set to American English, the Vietnamese dashboard still writes 1.000."""
    service = make_service(config=CONFIG, redis_url=redis.url)
    context = await chromium.new_context(
        viewport={"width": 1920, "height": 1080}, locale="en-US", timezone_id="America/New_York"
    )
    tab = await context.new_page()
    frame = json.dumps(stub_frame())
    await tab.route_web_socket("**/dashboard/ws?site=myhao", lambda ws: ws.send(frame))
    await sign_in(tab, service.base, "myhao", MYHAO_TOKEN)
    await expect(tab.locator("#online")).to_have_text("1.234")
    await expect(tab.locator("#chart-hours .uplot")).to_have_count(1)
    axes = (await tab.evaluate("PortalPulseDashboard.status()"))["axes"]
    for labels in (axes["minutes"], axes["hours"]):
        assert labels and all(re.fullmatch(r"\d{1,3}(\.\d{3})*", label) for label in labels), axes
        assert any("." in label for label in labels), axes
    # The rising article is marked; pages nobody reads now come after, apart.
    rising = tab.locator("#pages tr[data-path='/tin/a.html']")
    await expect(rising).to_have_class(re.compile(r"\brising\b"))
    await expect(rising.locator(".rising-badge")).to_have_text("▲ Đang lên")
    assert await tab.locator("#pages tr[data-path='/tin/b.html'] .rising-badge").count() == 0
    await expect(tab.locator("#pages tr.quiet")).to_have_attribute("data-path", "/tin/c.html")
    await expect(tab.locator("#pages tr.quiet-head")).to_have_count(1)
    await tab.click("#lang-toggle")
    await expect(tab.locator("#chart-hours .uplot")).to_have_count(1)
    axes = (await tab.evaluate("PortalPulseDashboard.status()"))["axes"]
    assert any("," in label for label in axes["hours"]), axes
    await expect(rising.locator(".rising-badge")).to_have_text("▲ Rising")
    await shot(tab, "1920x1080-stub-en")
    # Wall mode from its button: controls but the way out go, the address keeps it.
    await tab.click("#wall-toggle")
    await expect(tab.locator("html")).to_have_class(re.compile(r"\bwall\b"))
    await expect(tab.locator("#logout-form")).to_be_hidden()
    assert "wall=1" in tab.url
    await tab.click("#wall-toggle")
    await expect(tab.locator("#logout-form")).to_be_visible()
    assert "wall=1" not in tab.url
    await context.close()
