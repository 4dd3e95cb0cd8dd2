"""The widget in real headless Chromium against the real service: what a reader sees."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from browser_support import (
    BEAT_INTERVAL,
    LEAVE_GRACE,
    PRESENCE_TTL,
    PUSH_INTERVAL,
    TOTAL_OFFSET,
    Portal,
    service_config,
)
from playwright.sync_api import BrowserContext, Page, WebSocket, expect

from support.processes import Service, free_port, write_config

pytestmark = pytest.mark.browser

NewContext = Callable[..., BrowserContext]
ONE = "1 người đang online"
TWO = "2 người đang online"


def open_tab(context: BrowserContext, url: str, sockets: list[WebSocket] | None = None) -> Page:
    page = context.new_page()
    if sockets is not None:
        page.on("websocket", lambda ws: sockets.append(ws))
    page.goto(url)
    return page


def online_line(page: Page):  # type: ignore[no-untyped-def]
    """The count in the widget's own box (Playwright's CSS reaches into its shadow root)."""
    return page.locator("[data-portalpulse-box] .online")


def online_texts(pages: list[Page]) -> list[str]:
    return [
        page.evaluate(
            "() => document.querySelector('[data-portalpulse-box]')?.shadowRoot"
            ".querySelector('.online')?.textContent ?? ''"
        )
        for page in pages
    ]


def wait_for_text(pages: list[Page], text: str, timeout: float) -> float:
    """Polls every tab until all show `text`; returns the time (monotonic) they did."""
    deadline = time.monotonic() + timeout
    while True:
        seen = online_texts(pages)
        if all(shown == text for shown in seen):
            return time.monotonic()
        assert time.monotonic() < deadline, f"tabs show {seen}, not {text!r}"
        time.sleep(0.05)


def leaders(pages: list[Page]) -> list[Page]:
    return [page for page in pages if page.evaluate("PortalPulse.status().leader")]


def test_three_tabs_of_one_browser_count_once_over_one_websocket(
    new_context: NewContext, portal: Portal, service: Service
) -> None:
    context = new_context()
    sockets: list[WebSocket] = []
    tabs = [
        open_tab(context, portal.page(f"/tabs/{i}.html", "tabs", title=f"Bài {i}"), sockets)
        for i in range(3)
    ]
    for tab in tabs:
        expect(online_line(tab)).to_have_text(ONE, timeout=5000)
    # The leader speaks for its sibling tabs: all three pages have a reader.
    deadline = time.monotonic() + 5
    while True:
        readers = {t["path"]: t["readers"] for t in service.stats("tabs")["trending"]}
        if len(readers) == 3:
            break
        assert time.monotonic() < deadline, f"trending is {readers}"
        time.sleep(0.1)
    assert readers == {"/tabs/0.html": 1, "/tabs/1.html": 1, "/tabs/2.html": 1}
    assert service.stats("tabs")["online"] == 1
    assert len(sockets) == 1, [ws.url for ws in sockets]
    assert len(leaders(tabs)) == 1
    assert [tab.evaluate("PortalPulse.status().transport") for tab in tabs].count("websocket") == 1


def test_a_second_browser_shows_in_every_tab_within_the_push_bound(
    new_context: NewContext, portal: Portal
) -> None:
    first = new_context()
    tabs = [open_tab(first, portal.page(f"/second/{i}.html", "second")) for i in range(3)]
    wait_for_text(tabs, ONE, timeout=5)

    hello_at: list[float] = []
    other = new_context().new_page()
    other.on(
        "websocket",
        lambda ws: ws.on(
            "framesent",
            lambda payload: (
                hello_at.append(time.monotonic()) if '"hello"' in str(payload) else None
            ),
        ),
    )
    other.goto(portal.page("/second/other.html", "second"))
    shown_at = wait_for_text([*tabs, other], TWO, timeout=5)
    assert hello_at, "the second browser sent no hello"
    # CONTRACT §2: counted within push_interval + 1 s (plus one poll of this loop).
    assert shown_at - hello_at[0] <= PUSH_INTERVAL + 1 + 0.1


def test_closing_the_leader_tab_hands_over_without_a_dip(
    new_context: NewContext, portal: Portal, service: Service
) -> None:
    context = new_context()
    tabs = [open_tab(context, portal.page(f"/takeover/{i}.html", "takeover")) for i in range(3)]
    other = open_tab(new_context(), portal.page("/takeover/other.html", "takeover"))
    wait_for_text([*tabs, other], TWO, timeout=5)

    [leader] = leaders(tabs)
    rest = [tab for tab in tabs if tab is not leader]
    new_sockets: list[WebSocket] = []
    for tab in rest:
        tab.on("websocket", lambda ws: new_sockets.append(ws))
    leader.close()

    # Long enough for a visitor that really left to be gone (CONTRACT §2).
    samples: list[tuple[list[str], int]] = []
    until = time.monotonic() + LEAVE_GRACE + PUSH_INTERVAL + 2
    while time.monotonic() < until:
        shown = online_texts([*rest, other])
        samples.append((shown, service.stats("takeover")["online"]))
        time.sleep(0.1)
    assert len(samples) > 10
    dips = [sample for sample in samples if sample != ([TWO, TWO, TWO], 2)]
    assert not dips, dips[:5]
    assert len(leaders(rest)) == 1
    assert len(new_sockets) == 1
    [new_leader] = leaders(rest)
    assert new_leader.evaluate("PortalPulse.status().transport") == "websocket"

    # When the browser's last tab closes, its reader leaves within the contract's bound.
    for tab in rest:
        tab.close()
    left_at = time.monotonic()
    wait_for_text([other], ONE, timeout=LEAVE_GRACE + PUSH_INTERVAL + 1 + 1)
    assert time.monotonic() - left_at <= LEAVE_GRACE + PUSH_INTERVAL + 1


def test_hostile_page_css_cannot_hide_the_box(new_context: NewContext, portal: Portal) -> None:
    # Everything the portal draws is hidden and shrunk to font-size 0. (A rule that hid
    # <html> itself would hide the whole page, box or no box: that is not a page.)
    hostile = (
        "<style>* { display: none !important; font-size: 0 !important;"
        " visibility: hidden !important; opacity: 0 !important }"
        " html, body { display: block !important }</style>"
    )
    page = open_tab(
        new_context(),
        portal.page(
            "/hostile/a.html", "hostile", head=hostile, body="<p id=story>Nội dung bài viết</p>"
        ),
    )
    line = online_line(page)
    expect(line).to_have_text(ONE, timeout=5000)
    expect(line).to_be_visible()
    expect(page.locator("#story")).to_be_hidden()  # the hostile CSS does apply to the page
    box = line.bounding_box()
    assert box is not None and box["height"] >= 12 and box["width"] > 50
    assert float(line.evaluate("el => parseFloat(getComputedStyle(el).fontSize)")) >= 12
    expect(page.locator("[data-portalpulse-box] .stats")).to_contain_text("Tổng lượt truy cập")


def test_data_lang_en_shows_english(new_context: NewContext, portal: Portal) -> None:
    page = open_tab(new_context(), portal.page("/english/a.html", "english", lang="en"))
    expect(online_line(page)).to_have_text("1 online now", timeout=5000)
    stats = page.locator("[data-portalpulse-box] .stats")
    expect(stats).to_contain_text("Today: 1")
    # en groups thousands with commas: the offset is 12,345,000.
    expect(stats).to_contain_text("Total visits: 12,345,")


def test_the_embed_loads_the_versioned_widget_cached_a_year(
    new_context: NewContext, portal: Portal
) -> None:
    """The unchanged embed (`/widget.js`, data-site, data-lang) loads a loader, cached
    minutes, that loads `/widget.HASH.js`, cached a year; the widget reads the
    embed's attributes; on the next page only the loader is asked for again, if at all."""
    context = new_context()
    page = context.new_page()
    scripts: list[tuple[str, str]] = []
    page.on(
        "response",
        lambda r: (
            scripts.append((r.url, r.headers.get("cache-control", "")))
            if "/widget" in r.url
            else None
        ),
    )
    page.goto(portal.page("/loader/a.html", "loader", lang="en"))
    expect(online_line(page)).to_have_text("1 online now", timeout=5000)
    fetched = (
        "() => performance.getEntriesByType('resource')"
        ".filter((e) => /widget\\.[0-9a-f]{12}\\.js$/.test(e.name)).map((e) => e.transferSize)"
    )
    assert page.evaluate(fetched)[0] > 0, "the first page fetched no versioned widget"
    loader, widget = scripts[0], scripts[1]
    assert loader[0].endswith("/widget.js") and loader[1].startswith("public, max-age=300"), scripts
    assert re.search(r"/widget\.[0-9a-f]{12}\.js$", widget[0]), scripts
    assert widget[1] == "public, max-age=31536000, immutable", scripts
    page.goto(portal.page("/loader/b.html", "loader", lang="en"))
    expect(online_line(page)).to_have_text("1 online now", timeout=5000)
    assert page.evaluate(fetched) == [0], "the versioned widget came over the network again"


def test_without_websocket_http_beats_keep_the_reader_counted(
    new_context: NewContext, portal: Portal, service: Service
) -> None:
    # Every WebSocket this page opens goes to a closed port: refused, never opened.
    dead = free_port()
    context = new_context()
    context.add_init_script(
        "(() => { const Real = window.WebSocket;"
        " window.WebSocket = class extends Real { constructor(url, protocols) {"
        f" const dead = 'ws://127.0.0.1:{dead}/' + String(url).split('/').slice(3).join('/');"
        " super(dead, protocols); } }; })();"
    )
    sockets: list[WebSocket] = []
    page = open_tab(context, portal.page("/fallback/a.html", "fallback"), sockets)
    expect(online_line(page)).to_have_text(ONE, timeout=8000)
    assert page.evaluate("PortalPulse.status().transport") == "http"
    assert sockets and all(f":{dead}/" in ws.url for ws in sockets)

    # A reader on WebSocket and one on HTTP beats are two, and the HTTP one stays
    # counted past presence_ttl: its beats repeat.
    other = open_tab(new_context(), portal.page("/fallback/b.html", "fallback"))
    wait_for_text([page, other], TWO, timeout=5)
    until = time.monotonic() + PRESENCE_TTL + 1
    while time.monotonic() < until:
        assert service.stats("fallback")["online"] == 2
        time.sleep(0.25)
    wait_for_text([page, other], TWO, timeout=2)


def test_trending_titles_show_as_literal_text(new_context: NewContext, portal: Portal) -> None:
    title = '<b>Tin "nóng"</b> & <img src=x onerror=alert(1)>'
    escaped = title.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    page = new_context().new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(
        portal.page(
            "/trending/a.html",
            "trending",
            title=escaped,
            body='<h2>Tin đang được quan tâm</h2><ol id=hot data-portalpulse="trending"></ol>',
        )
    )
    link = page.locator("#hot li a")
    expect(link).to_have_text(title, timeout=5000)
    expect(link).to_have_attribute("href", "/trending/a.html")
    assert page.locator("#hot b, #hot img").count() == 0
    assert dialogs == []


def test_portal_placeholders_show_the_numbers(new_context: NewContext, portal: Portal) -> None:
    footer = (
        '<footer><span id=online data-portalpulse="online"></span> người đang online ·'
        ' Hôm nay: <span id=today data-portalpulse="today"></span> ·'
        ' Tổng: <span id=total data-portalpulse="total"></span>'
        ' <ul id=hot data-portalpulse="trending"></ul></footer>'
    )
    page = open_tab(
        new_context(), portal.page("/portal/a.html", "portal", title="Trang chủ", body=footer)
    )
    expect(page.locator("#online")).to_have_text("1", timeout=5000)
    expect(page.locator("#today")).to_have_text("1")
    expect(page.locator("#total")).to_have_text(f"{TOTAL_OFFSET + 1:,}".replace(",", "."))
    expect(page.locator("#hot li a")).to_have_text("Trang chủ")
    assert page.locator(".box").count() == 0  # placeholders: no box of its own
    live = page.locator("[aria-live=polite]")
    expect(live).to_have_text(ONE)

    # An in-page (SPA) navigation is a new page that readers see in trending.
    page.evaluate("history.pushState({}, '', '/portal/spa.html'); document.title = 'Trang mới'")
    expect(page.locator('#hot li a[href="/portal/spa.html"]')).to_have_text(
        "Trang mới", timeout=5000
    )


def test_readers_come_back_after_the_service_restarts(
    new_context: NewContext, portal: Portal, tmp_path: Path
) -> None:
    own = Service(
        port=free_port(),
        config=write_config(tmp_path / "pulse.toml", service_config()),
        data_dir=tmp_path / "data",
    )
    own.start()
    try:
        sockets: list[WebSocket] = []
        url = portal.page("/restart/a.html", "restart", service_url=own.base)
        page = open_tab(new_context(), url, sockets)
        expect(online_line(page)).to_have_text(ONE, timeout=5000)

        own.stop()  # SIGTERM: the service closes its WebSockets with 1001
        own.start()
        back_at = time.monotonic()
        # Over a new WebSocket or HTTP beats, the open page is counted again by itself.
        while own.stats("restart")["online"] != 1:
            assert time.monotonic() - back_at < BEAT_INTERVAL + PUSH_INTERVAL + 2, "not back"
            time.sleep(0.1)
        other = open_tab(
            new_context(), portal.page("/restart/b.html", "restart", service_url=own.base)
        )
        wait_for_text([page, other], TWO, timeout=5)
        assert len(sockets) >= 2  # it did try WebSocket again
    finally:
        own.stop()
    assert "Traceback" not in own.logs()


def record_frames(page: Page) -> list[tuple[float, str]]:
    """Every frame the page's WebSockets send, with the time it went."""
    frames: list[tuple[float, str]] = []
    page.on(
        "websocket",
        lambda ws: ws.on(
            "framesent", lambda payload: frames.append((time.monotonic(), str(payload)))
        ),
    )
    return frames


def test_input_in_any_tab_is_reported_engaged_at_once(
    new_context: NewContext, portal: Portal
) -> None:
    context = new_context()
    leader = context.new_page()
    frames = record_frames(leader)
    leader.goto(portal.page("/engaged/a.html", "engaged"))
    follower = open_tab(context, portal.page("/engaged/b.html", "engaged"))
    wait_for_text([leader, follower], ONE, timeout=5)
    assert leaders([leader, follower]) == [leader]
    assert follower.evaluate("document.visibilityState") == "visible"
    hello = json.loads(next(text for _, text in frames if '"hello"' in text))
    assert hello["engaged"] is False and hello["device"] == "desktop"

    # The reader scrolls in the follower tab: the leader beats engaged at once.
    sent = len(frames)
    moved_at = time.monotonic()
    follower.mouse.move(200, 200)
    follower.mouse.wheel(0, 300)
    while not any(json.loads(text).get("engaged") for _, text in frames[sent:]):
        assert time.monotonic() - moved_at < 1, frames[sent:]
        leader.wait_for_timeout(50)  # (Playwright delivers frame events while it waits)


def test_a_busy_page_stays_within_the_frame_size_and_rate_limits(
    new_context: NewContext, portal: Portal, service: Service
) -> None:
    page = new_context().new_page()
    frames = record_frames(page)
    closes: list[str] = []
    page.on("websocket", lambda ws: ws.on("close", lambda _: closes.append(ws.url)))
    page.goto(portal.page("/busy/a.html", "busy"))
    expect(online_line(page)).to_have_text(ONE, timeout=5000)

    # A single-page app that rewrites its URL and a very long title on every scroll step.
    page.evaluate("""async () => {
        for (let i = 0; i < 60; i++) {
            document.title = 'Tiêu đề rất dài ' + i + ' ' + 'đ'.repeat(3000);
            history.replaceState({}, '', '/busy/step-' + i + '.html?q=' + 'x'.repeat(600));
            window.dispatchEvent(new Event('scroll'));
            await new Promise((done) => setTimeout(done, 20));
        }
    }""")
    deadline = time.monotonic() + 5
    while "/busy/step-59.html" not in {t["path"] for t in service.stats("busy")["trending"]}:
        assert time.monotonic() < deadline, service.stats("busy")["trending"]
        page.wait_for_timeout(100)
    assert closes == []  # never closed for too big a frame or too many messages
    assert all(len(text.encode()) <= 4096 for _, text in frames)
    times = [at for at, _ in frames]
    busiest = max(sum(1 for t in times if start <= t < start + 1) for start in times)
    assert busiest <= 10, busiest


def test_without_web_locks_each_tab_connects_but_the_browser_counts_once(
    new_context: NewContext, portal: Portal, service: Service
) -> None:
    context = new_context()
    context.add_init_script("delete Navigator.prototype.locks;")
    sockets: list[WebSocket] = []
    tabs = [
        open_tab(context, portal.page(f"/nolocks/{i}.html", "nolocks"), sockets) for i in range(2)
    ]
    assert tabs[0].evaluate("navigator.locks") is None
    wait_for_text(tabs, ONE, timeout=5)
    assert len(sockets) == 2
    assert len(leaders(tabs)) == 2
    deadline = time.monotonic() + 5
    while {t["path"] for t in service.stats("nolocks")["trending"]} != {
        "/nolocks/0.html",
        "/nolocks/1.html",
    }:
        assert time.monotonic() < deadline, service.stats("nolocks")
        time.sleep(0.1)
    assert service.stats("nolocks")["online"] == 1


def test_a_reload_is_the_same_reader_without_a_flicker(
    new_context: NewContext, portal: Portal, service: Service
) -> None:
    page = open_tab(new_context(), portal.page("/reload/a.html", "reload"))
    expect(online_line(page)).to_have_text(ONE, timeout=5000)
    visitor = page.evaluate("localStorage.getItem('portalpulse:visitor')")
    assert visitor and 16 <= len(visitor) <= 64

    page.reload()
    counts = []
    until = time.monotonic() + LEAVE_GRACE + PUSH_INTERVAL + 2
    while time.monotonic() < until:
        counts.append(service.stats("reload")["online"])
        time.sleep(0.1)
    assert set(counts) == {1}, counts
    expect(online_line(page)).to_have_text(ONE)
    expect(page.locator("[data-portalpulse-box] .stats")).to_contain_text("Hôm nay: 1 ")
    assert page.evaluate("localStorage.getItem('portalpulse:visitor')") == visitor
    today = service.stats("reload")["today"]
    assert today["visits"] == 1 and today["views"] == 2, today
