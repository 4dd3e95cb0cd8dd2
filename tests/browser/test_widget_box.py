"""The widget's own box (CONTRACT §5, v2) in real Chromium: on a phone it is a small
corner with finger-sized controls, it can be closed for the session, and what its
`hello` asks for (§3a) is what it shows."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from browser_support import Portal
from playwright.sync_api import BrowserContext, Page, expect

from support.processes import Service

pytestmark = pytest.mark.browser

PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
ONE = "1 người đang online"
VIEWPORT = '<meta name="viewport" content="width=device-width, initial-scale=1">'
ARTICLE = "<article>" + "<p>Nội dung bài viết, đoạn dài để trang cuộn được.</p>" * 60 + "</article>"
LEGAL = (
    "<footer id=legal style='background:#333;color:#ddd;padding:16px'>"
    "Cơ quan chủ quản: Ủy ban nhân dân thị xã · Địa chỉ: số 1 đường Trung tâm · "
    "Giấy phép số 123/GP-TTĐT</footer>"
)


def hellos(page: Page) -> list[tuple[Any, dict[str, Any]]]:
    """Each `hello` the page sends, with the socket it went on."""
    sent: list[tuple[Any, dict[str, Any]]] = []

    def on_socket(ws: Any) -> None:
        def on_frame(payload: str | bytes) -> None:
            message = json.loads(payload)
            if message.get("type") == "hello":
                sent.append((ws, message))

        ws.on("framesent", on_frame)

    page.on("websocket", on_socket)
    return sent


def rect(page: Page, selector: str) -> dict[str, float]:
    box = page.locator(selector).bounding_box()
    assert box is not None, selector
    return box


def overlap(a: dict[str, float], b: dict[str, float]) -> float:
    width = min(a["x"] + a["width"], b["x"] + b["width"]) - max(a["x"], b["x"])
    height = min(a["y"] + a["height"], b["y"] + b["height"]) - max(a["y"], b["y"])
    return max(0.0, width) * max(0.0, height)


def wait_until(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_on_a_phone_the_box_is_a_small_corner_until_opened(
    new_context: Any, portal: Portal, service: Service
) -> None:
    context: BrowserContext = new_context(**PHONE)
    page = context.new_page()
    sent = hellos(page)
    page.goto(
        portal.page(
            "/box/a.html", "box", title="Bài trên điện thoại", body=ARTICLE + LEGAL, head=VIEWPORT
        )
    )
    expect(page.locator("[data-portalpulse-box] .online")).to_have_text(ONE, timeout=5000)

    # Unopened it shows only the count, and asks for only that.
    assert [hello["want"] for _, hello in sent] == [["online"]]
    box = rect(page, "[data-portalpulse-box]")
    assert box["width"] * box["height"] <= 0.06 * 390 * 844, box
    close = page.get_by_role("button", name="Đóng")
    toggle = page.get_by_role("button", name="Tin đang được quan tâm")
    for control in (close, toggle):
        size = control.bounding_box()
        assert size is not None and size["width"] >= 44 and size["height"] >= 44, size
    expect(toggle).to_have_attribute("aria-expanded", "false")

    # At the end of the article the legal footer ends above the box, not under it.
    page.evaluate("window.scrollTo(0, document.documentElement.scrollHeight)")
    page.wait_for_timeout(100)
    assert overlap(rect(page, "#legal"), rect(page, "[data-portalpulse-box]")) == 0

    # Opened: a new connection asks for the list too (no new view), the old one goes.
    toggle.tap()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    link = page.locator("[data-portalpulse-box] ol li a")
    expect(link).to_have_text("Bài trên điện thoại", timeout=3000)
    expect(page.locator("[data-portalpulse-box] .stats")).to_contain_text("Hôm nay: 1")
    assert [hello["want"] for _, hello in sent] == [
        ["online"],
        ["online", "today", "total", "trending"],
    ]
    assert sent[1][1]["resume"] is True
    wait_until(lambda: sent[0][0].is_closed(), 3, "the first connection stays open")
    size = link.bounding_box()
    assert size is not None and size["height"] >= 44, size
    stats = service.stats("box")
    assert stats["online"] == 1 and stats["today"]["views"] == 1, stats


def test_closing_the_box_hides_it_for_the_session_and_keeps_the_reader_counted(
    new_context: Any, portal: Portal, service: Service
) -> None:
    context: BrowserContext = new_context()
    page = context.new_page()
    sent = hellos(page)
    page.goto(portal.page("/closing/a.html", "closing", body=ARTICLE))
    expect(page.locator("[data-portalpulse-box] .online")).to_have_text(ONE, timeout=5000)
    assert sent[0][1]["want"] == ["online", "today", "total"]  # wide: the stats line shows
    sibling = context.new_page()
    sibling.goto(portal.page("/closing/b.html", "closing", body=ARTICLE))
    expect(sibling.locator("[data-portalpulse-box] .online")).to_have_text(ONE, timeout=5000)

    page.get_by_role("button", name="Đóng").click()
    expect(page.locator("[data-portalpulse-box]")).to_have_count(0)
    expect(sibling.locator("[data-portalpulse-box]")).to_have_count(0, timeout=3000)

    # The next page of the site, in this tab: no box, still counted over its WebSocket.
    page.goto(portal.page("/closing/c.html", "closing", body=ARTICLE))
    wait_until(lambda: page.evaluate("PortalPulse.snapshot()"), 5, "no snapshot")
    assert page.evaluate("PortalPulse.status().transport") in ("websocket", "follower")
    wait_until(
        lambda: (
            {t["path"] for t in service.stats("closing")["trending"] if t["readers"]}
            == {"/closing/b.html", "/closing/c.html"}
        ),
        5,
        "the reader is not counted on the next page",
    )
    assert page.locator("[data-portalpulse-box]").count() == 0
    assert service.stats("closing")["online"] == 1

    english = new_context().new_page()
    english.goto(portal.page("/closing/en.html", "closing", lang="en"))
    expect(english.get_by_role("button", name="Close")).to_be_visible(timeout=5000)
