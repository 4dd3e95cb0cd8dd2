"""The drill-down: `GET /dashboard/api/sites/{site}/pages?path=...` answers an article's
last hour to signed-in editors only, and a click on an article shows it. Against the
real service on a real Redis, in headless Chromium."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from dashboard_support import CONFIG, MYHAO_ORIGIN, MYHAO_TOKEN, sign_in
from playwright.async_api import Browser, expect
from test_dashboard_access import signed_in

from support.client import Reader, page
from support.processes import RedisServer, Service
from support.waiting import until

ServiceFactory = Callable[..., Service]


ARRIVALS = [
    ("https://www.google.com/", "mobile"),
    ("https://zalo.me/", "desktop"),
    (f"{MYHAO_ORIGIN}/?utm=x", "desktop"),  # from the portal's home page
]


async def article_readers(service: Service) -> list[Reader]:
    """Two readers of /tin/a.html from outside, one from the portal's home page,
    and a reader of the home page (a page the store tracks)."""
    home = await Reader.open(
        service.ws_url, site="myhao", origin=MYHAO_ORIGIN, pages=[page("/", "Trang chủ")]
    )
    readers = [
        await Reader.open(
            service.ws_url,
            site="myhao",
            origin=MYHAO_ORIGIN,
            pages=[page("/tin/a.html", "Tin A", referrer)],
            device=device,
        )
        for referrer, device in ARRIVALS
    ]
    await readers[-1].wait_online(4, 5)
    return [home, *readers]


async def test_an_article_s_hour_for_signed_in_editors_only(
    redis: RedisServer, make_service: ServiceFactory
) -> None:
    service = make_service(config=CONFIG, redis_url=redis.url)
    readers = await article_readers(service)
    url = f"/dashboard/api/sites/myhao/pages?path={quote('/tin/a.html')}"
    anonymous = service.get(url)
    assert anonymous.status_code == 401 and anonymous.json()["error"] == "unauthorized"
    client = signed_in(service)

    def counted() -> dict[str, Any] | None:
        body: dict[str, Any] = client.get(url).json()
        return body if body.get("readers") == 3 and body.get("views") == 3 else None

    # The readers reach the store within a tick or two.
    body = await until(counted, 5, "the three readers in the page's hour", every=0.1)
    assert body["path"] == "/tin/a.html" and body["title"] == "Tin A"
    assert body["readers"] == 3 and body["views"] == 3
    ts, readers_then, engaged_then = body["minutes"][-1]
    assert ts % 60 == 0 and readers_then == 3 and engaged_then == 3
    assert body["sources"] == {"direct": 0, "search": 1, "social": 1, "internal": 1, "other": 0}
    assert body["referrers"] == {"google": 1, "zalo": 1}
    assert body["devices"] == {"mobile": 1, "tablet": 0, "desktop": 2, "unknown": 0}
    assert body["internal"] == [{"path": "/", "views": 1}]
    assert 0 < body["engaged_seconds"] <= 3600
    assert client.get("/dashboard/api/sites/myhao/pages?path=/never.html").status_code == 404
    for bad in ("", "tin/a.html", "/" + "x" * 600):
        response = client.get(f"/dashboard/api/sites/myhao/pages?path={quote(bad)}")
        assert response.status_code == 400 and response.json()["error"] == "bad_path", bad
    assert client.get("/dashboard/api/sites/vanlam/pages?path=/").status_code == 403
    assert client.get("/dashboard/api/sites/nowhere/pages?path=/").status_code == 404
    for one in readers:
        await one.close()


async def test_a_click_on_an_article_shows_its_hour(
    chromium: Browser, redis: RedisServer, make_service: ServiceFactory
) -> None:
    service = make_service(config=CONFIG, redis_url=redis.url)
    readers = await article_readers(service)
    context = await chromium.new_context(viewport={"width": 1366, "height": 768})
    tab = await context.new_page()
    await sign_in(tab, service.base, "myhao", MYHAO_TOKEN)
    row = tab.locator("#pages tr[data-path='/tin/a.html']")
    await expect(row.locator(".readers")).to_have_text("3", timeout=5000)
    async with tab.expect_response("**/dashboard/api/sites/myhao/pages?path=%2Ftin%2Fa.html"):
        await row.locator(".title").click()
    drill = tab.locator("#drill")
    await expect(drill).to_be_visible()
    assert tab.url.startswith(service.base)  # the click did not follow the portal link
    await expect(tab.locator("#drill-title")).to_have_text("Tin A")
    await expect(tab.locator("#drill-readers")).to_have_attribute("data-value", "3")
    await expect(tab.locator("#drill-views")).to_have_attribute("data-value", "3")
    for box, key, n in (
        ("#drill-referrers", "google", 1),
        ("#drill-referrers", "zalo", 1),
        ("#drill-sources", "internal", 1),
        ("#drill-devices", "mobile", 1),
        ("#drill-devices", "desktop", 2),
    ):
        await expect(tab.locator(f"{box} .bar-row[data-key='{key}']")).to_have_attribute(
            "data-value", str(n)
        )
    from_home = tab.locator("#drill-internal li[data-path='/']")
    await expect(from_home).to_have_attribute("data-value", "1")
    await expect(from_home.locator(".from")).to_have_text("Trang chủ")
    seconds = await tab.locator("#drill-engaged-time").get_attribute("data-value")
    assert seconds is not None and 0 < int(seconds) <= 3600
    await expect(tab.locator("#drill-engaged-time")).to_have_text(re.compile(r"\d+ (giây|phút)"))
    shown = (await tab.evaluate("PortalPulseDashboard.status()"))["drill"]
    assert shown["path"] == "/tin/a.html" and len(shown["readers"]) == 60
    assert shown["readers"][-1] == 3 and shown["engaged"][-1] == 3, shown
    folder = os.environ.get("PP_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        await tab.screenshot(path=str(Path(folder) / "1366x768-drill.png"))
    await tab.keyboard.press("Escape")
    await expect(drill).to_be_hidden()
    await context.close()
    for one in readers:
        await one.close()


async def test_the_embedded_store_keeps_the_last_hour_over_a_restart(
    make_service: ServiceFactory, tmp_path: Path
) -> None:
    """One instance on its data file, restarted: trending and the drill-down still
    show the last hour (a rollout of a small single-instance install loses nothing)."""
    data = tmp_path / "data"
    first = make_service(config=CONFIG, data_dir=data)
    readers = await article_readers(first)
    await readers[-1].wait_for(lambda s: s["today"]["views"] == 4, 5)
    for reader in readers:
        await reader.close()
    first.stop()
    second = make_service(config=CONFIG, data_dir=data)
    trending = {p["path"]: p for p in second.stats("myhao")["trending"]}
    assert trending["/tin/a.html"]["title"] == "Tin A"
    assert trending["/tin/a.html"]["views"] == 3
    body = signed_in(second).get(f"/dashboard/api/sites/myhao/pages?path={quote('/tin/a.html')}")
    detail = body.json()
    assert detail["title"] == "Tin A" and detail["views"] == 3
    assert detail["referrers"] == {"google": 1, "zalo": 1}
    assert detail["internal"] == [{"path": "/", "views": 1}]
    assert max(readers_then for _, readers_then, _ in detail["minutes"]) == 3
