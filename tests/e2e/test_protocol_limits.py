"""Every refusal of CONTRACT §3-4: the right code, an error first, no count changed, no 500."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from support.client import Reader, page, visitor_id
from support.processes import DEMO_SITE, FAST_TIMING, metric, wait_until
from support.raw_ws import masked_text, read_until_closed, stalled_reader

PUSH = 0.5


async def handshake_status(url: str, origin: str | None) -> int:
    try:
        async with connect(url, origin=origin, open_timeout=5):  # type: ignore[arg-type]
            return 101
    except InvalidStatus as exc:
        return exc.response.status_code


async def test_handshake_refusals(make_service) -> None:
    service = make_service()
    ws = service.ws_url
    assert await handshake_status(f"{ws}?site=nope", "http://localhost:1") == 404
    assert await handshake_status(f"{ws}?site=demo", None) == 403
    assert await handshake_status(f"{ws}?site=demo", "https://evil.example") == 403
    assert await handshake_status(f"{ws}?site=demo", "http://localhost:1234") == 101


@pytest.mark.parametrize(
    ("first", "code"),
    [
        ("not json", "bad_json"),
        (json.dumps({"type": "beat", "engaged": True}), "out_of_order"),
        (json.dumps({"type": "hello", "visitor": "short", "pages": []}), "bad_visitor"),
        (
            json.dumps(
                {"type": "hello", "visitor": "x" * 16, "pages": [page(f"/{i}") for i in range(21)]}
            ),
            "too_many_pages",
        ),
        (
            json.dumps(
                {"type": "hello", "visitor": "x" * 16, "pages": [{"path": "http://evil/x"}]}
            ),
            "bad_page",
        ),
        (json.dumps({"type": "hello", "visitor": "x" * 16, "pages": "/"}), "bad_message"),
        (json.dumps({"type": "nope"}), "bad_message"),
        (json.dumps([1, 2]), "bad_message"),
    ],
)
async def test_malformed_first_messages_get_an_error_then_4400(make_service, first, code) -> None:
    service = make_service()
    reader = await Reader.open(service.ws_url, hello=False)
    await reader.send(first)
    assert await reader.wait_closed(5) == 4400
    assert reader.frames[0]["type"] == "error" and reader.frames[0]["code"] == code
    assert service.stats()["online"] == 0
    assert service.stats()["today"]["views"] == 0


async def test_bad_messages_after_hello_close_4400_and_count_nothing_new(make_service) -> None:
    service = make_service()
    reader = await Reader.open(service.ws_url, pages=[page("/a")])
    await reader.wait_online(1, PUSH + 1)
    await reader.send({"type": "hello", "visitor": visitor_id(), "pages": [page("/b")]})
    assert await reader.wait_closed(5) == 4400
    assert [f["code"] for f in reader.frames if f["type"] == "error"] == ["out_of_order"]
    assert service.stats()["today"]["views"] == 1
    binary = await Reader.open(service.ws_url)
    await binary.ws.send(b"\x00\x01")
    assert await binary.wait_closed(5) == 4400


async def test_a_beat_behind_a_bad_message_is_not_counted(make_service) -> None:
    # One TCP segment: a bad message, then a beat that opens a page. The service
    # takes beats as it reads them, but not past a message still waiting for an
    # answer: the connection closes 4400 and the page is never counted.
    service = make_service()
    sock = stalled_reader(service.port, origin="http://localhost:8000")
    try:
        wait_until(lambda: service.stats()["today"]["views"] == 1, PUSH + 2, "the hello's view")
        bad = json.dumps({"type": "nope"})
        beat = json.dumps({"type": "beat", "engaged": True, "pages": [page("/khac.html")]})
        sock.sendall(masked_text(bad) + masked_text(beat))
        assert read_until_closed(sock, 5)
    finally:
        sock.close()
    time.sleep(PUSH * 3)  # let a wrongly counted view reach the store
    assert service.stats()["today"]["views"] == 1


async def test_no_hello_in_time_closes_4408(make_service) -> None:
    service = make_service()  # hello_timeout = 2
    reader = await Reader.open(service.ws_url, hello=False)
    assert await reader.wait_closed(5) == 4408


async def test_over_ten_messages_a_second_closes_4429(make_service) -> None:
    service = make_service()
    reader = await Reader.open(service.ws_url)
    for _ in range(15):
        await reader.send({"type": "beat", "engaged": True})
    assert await reader.wait_closed(5) == 4429


async def test_a_frame_over_4096_bytes_closes_1009(make_service) -> None:
    service = make_service()
    reader = await Reader.open(service.ws_url)
    await reader.wait_for(lambda s: s["today"]["views"] == 1, PUSH + 1)
    await reader.send({"type": "beat", "engaged": True, "pad": "x" * 5000})
    assert await reader.wait_closed(5) == 1009
    assert service.stats()["today"]["views"] == 1


async def test_titles_are_plain_text_cut_to_200_and_query_kept_only_for_keep_query(
    make_service,
) -> None:
    service = make_service()
    title = "  <b>Tin\x00 nóng</b>\n\t" + "ạ" * 300
    reader = await Reader.open(
        service.ws_url,
        pages=[{"path": "/tin?ItemID=7&utm_source=fb#top", "title": title}],
    )
    snap = await reader.wait_for(lambda s: bool(s["trending"]), PUSH + 1)
    item = snap["trending"][0]
    assert item["path"] == "/tin?ItemID=7"
    assert item["title"].startswith("<b>Tin nóng</b> ạ")
    assert len(item["title"]) == 200


async def test_page_changes_in_beats_count_views_and_move_readers(make_service) -> None:
    service = make_service()
    reader = await Reader.open(service.ws_url, pages=[page("/one")])
    await reader.wait_for(lambda s: s["today"]["views"] == 1, PUSH + 1)
    await reader.send({"type": "beat", "engaged": False, "pages": [page("/two")]})
    snap = await reader.wait_for(
        lambda s: {p["path"]: p["readers"] for p in s["trending"]} == {"/two": 1, "/one": 0},
        PUSH + 1 + 1 + 0.5,
    )
    assert snap["today"]["views"] == 2
    await reader.send({"type": "beat", "engaged": True})  # no pages: no view
    await reader.send({"type": "beat", "engaged": True, "pages": [page("/two")]})  # same set
    assert service.stats()["today"]["views"] == 2


def test_http_bad_input_gets_clear_4xx_json(make_service) -> None:
    service = make_service()
    beats = "/api/v1/sites/demo/beats"
    good = {"visitor": visitor_id(), "pages": [page("/a")]}
    cases = [
        (service.post("/api/v1/sites/nope/beats", json=good), 404, "unknown_site"),
        (
            service.post(beats, content=b"{not json", headers={"Content-Type": "application/json"}),
            400,
            "bad_json",
        ),
        (service.post(beats, json={"visitor": "bad"}), 400, "bad_visitor"),
        (service.post(beats, json={**good, "pages": [{"path": "nope"}]}), 400, "bad_page"),
        (service.post(beats, json={**good, "engaged": "yes"}), 400, "bad_message"),
        (
            service.post(beats, content=b"x" * 20000, headers={"Content-Type": "text/plain"}),
            413,
            "too_big",
        ),
        (
            service.post(beats, json=good, headers={"Origin": "https://evil.example"}),
            403,
            "forbidden_origin",
        ),
        (
            service.post(
                beats, content=b"a=1", headers={"Content-Type": "application/x-www-form-urlencoded"}
            ),
            415,
            "bad_content_type",
        ),
        (service.get("/api/v1/sites/nope/stats"), 404, "unknown_site"),
        (service.get("/api/v1/sites/demo/badge.svg?lang=fr"), 400, "bad_lang"),
        (service.get("/api/v1/sites/demo/beats"), 405, "method_not_allowed"),
        (service.get("/nothing-here"), 404, "not_found"),
    ]
    for response, status, code in cases:
        assert response.status_code == status, (code, response.text)
        assert response.json()["error"] == code
        assert response.json()["message"]
    stats = service.stats()
    assert stats["online"] == 0 and stats["today"]["views"] == 0


def test_cors_preflight_only_for_the_site_origins(make_service) -> None:
    service = make_service()
    ask = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    ok = httpx.options(
        service.base + "/api/v1/sites/demo/beats",
        headers={"Origin": "http://127.0.0.1:9000", **ask},
    )
    assert ok.status_code == 204
    assert ok.headers["access-control-allow-origin"] == "http://127.0.0.1:9000"
    bad = httpx.options(
        service.base + "/api/v1/sites/demo/beats", headers={"Origin": "https://evil.example", **ask}
    )
    assert bad.status_code == 403
    assert "access-control-allow-origin" not in bad.headers
    stats = service.get("/api/v1/sites/demo/stats", headers={"Origin": "https://anyone.example"})
    assert stats.headers["access-control-allow-origin"] == "*"
    assert stats.headers["cache-control"] == "max-age=1"


async def test_stats_and_badge_show_the_count_in_vietnamese(make_service) -> None:
    config = (
        FAST_TIMING
        + """
[sites.demo]
origins = ["*"]
total_visits_offset = 12000000
"""
    )
    service = make_service(config)
    readers = [await Reader.open(service.ws_url) for _ in range(3)]
    await readers[0].wait_online(3, PUSH + 1)
    stats = service.stats()
    assert stats["online"] == 3
    assert stats["total_visits"] == 12000003
    assert set(stats["yesterday"]) == {"visits", "views", "visitors", "peak_online"}
    badge = service.get("/api/v1/sites/demo/badge.svg")
    assert badge.headers["content-type"].startswith("image/svg+xml")
    assert "3 người đang online" in badge.text
    assert service.stats()["online"] == 3  # the badge counted nobody


async def test_too_many_connections_from_one_address_close_1013(make_service) -> None:
    config = (
        FAST_TIMING.replace("[server]", "[server]\nmax_connections_per_ip = 2")
        + """
[sites.demo]
origins = ["*"]
"""
    )
    service = make_service(config)
    first = await Reader.open(service.ws_url)
    second = await Reader.open(service.ws_url)
    await first.wait_online(2, PUSH + 1)
    third = await Reader.open(service.ws_url, hello=False)
    assert await third.wait_closed(5) == 1013
    await second.close()
    fourth = await Reader.open(service.ws_url)
    await fourth.wait_online(2, PUSH + 1 + 1)
    assert fourth.close_code is None, "a freed slot takes a new connection"


async def test_excluded_pages_never_trend_but_their_readers_are_online(make_service) -> None:
    config = (
        FAST_TIMING
        + """
[sites.demo]
origins = ["*"]
exclude = ["/", "/tim-kiem*"]
trending_size = 2
"""
    )
    service = make_service(config)
    readers = [
        await Reader.open(service.ws_url, pages=[page("/")]),
        await Reader.open(service.ws_url, pages=[page("/tim-kiem?q=le-hoi")]),
        await Reader.open(service.ws_url, pages=[page("/tin/a.html")]),
        await Reader.open(service.ws_url, pages=[page("/tin/b.html")]),
        await Reader.open(service.ws_url, pages=[page("/tin/b.html")]),
        await Reader.open(service.ws_url, pages=[page("/tin/c.html")]),
    ]
    snap = await readers[0].wait_online(6, PUSH + 1)
    assert [(p["path"], p["readers"]) for p in snap["trending"]] == [
        ("/tin/b.html", 2),
        ("/tin/a.html", 1),
    ]
    assert snap["today"]["views"] == 6


def test_too_many_http_beats_from_one_address_get_429(make_service) -> None:
    config = FAST_TIMING.replace("[server]", "[server]\nmax_http_beats_per_ip = 2") + (
        '\n[sites.demo]\norigins = ["*"]\n'
    )
    service = make_service(config)
    beat = {"visitor": visitor_id(), "pages": [page("/a")], "resume": True}
    # A burst of twice the rate passes, then the bucket refills 2 a second: however slow
    # this machine is, no more than that gets through.
    started = time.monotonic()
    replies = [service.post("/api/v1/sites/demo/beats", json=beat) for _ in range(20)]
    elapsed = time.monotonic() - started
    codes = [r.status_code for r in replies]
    assert codes[:4] == [200] * 4
    assert codes.count(200) <= 4 + 2 * elapsed + 1, (codes, elapsed)
    refused = [r for r in replies if r.status_code == 429]
    assert refused, codes
    assert all(r.json()["error"] == "rate" for r in refused)


def test_visitors_kept_by_http_beats_are_bounded_by_max_http_visitors(make_service) -> None:
    """Issue 9: every map keyed by client input has a hard bound. Past it a new visitor
    on HTTP beats gets 503 "overloaded" and counts nothing; those kept go on."""
    config = FAST_TIMING.replace("[server]", "[server]\nmax_http_visitors = 3") + DEMO_SITE
    service = make_service(config)
    beats = "/api/v1/sites/demo/beats"
    kept = [visitor_id() for _ in range(3)]
    for visitor in kept:
        answer = service.post(beats, json={"visitor": visitor, "pages": [page("/a")]})
        assert answer.status_code == 200, answer.text
    for _ in range(2):
        beat = {"visitor": visitor_id(), "pages": [page("/moi.html", "Tin mới")]}
        refused = service.post(beats, json=beat)
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"] == "overloaded"
    stats = service.stats()
    assert stats["online"] == 3 and stats["today"]["views"] == 3, stats
    assert stats["today"]["visits"] == 3 and "/moi.html" not in str(stats["trending"]), stats
    # Those kept go on; a bye frees a place for a newcomer.
    again = {"visitor": kept[0], "pages": [page("/a")], "resume": True}
    assert service.post(beats, json=again).json()["online"] == 3
    bye = service.post(beats, json={"visitor": kept[1], "pages": [page("/a")], "bye": True})
    assert bye.status_code == 200, bye.text
    newcomer = service.post(beats, json={"visitor": visitor_id(), "pages": [page("/b")]})
    assert newcomer.status_code == 200, newcomer.text
    text = service.get("/metrics").text
    assert metric(text, "portalpulse_messages_rejected_total", 'reason="overloaded"') == 2
    assert metric(text, "portalpulse_beats_total", 'transport="http"') == 6
    wait_until(
        lambda: (
            metric(service.get("/metrics").text, "portalpulse_connections", 'transport="http"') == 3
        ),
        5,
        "the map's size in portalpulse_connections{transport=http}",
    )
    # One info line for the refusals (at most one a minute), nothing louder.
    lines = [json.loads(line) for line in service.logs().splitlines() if line.startswith("{")]
    told = [e for e in lines if "new visitor(s) on HTTP beats" in e["message"]]
    assert [e["level"] for e in told] == ["info"], told
    assert "refused 1 new visitor(s)" in told[0]["message"]
    assert {e["level"] for e in lines} <= {"debug", "info"}, lines
