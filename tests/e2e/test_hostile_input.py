"""Hostile input (issue 9): a clear 4xx or 4400 with an error first, counts unchanged,
no 500, no 1006, and nothing at error level or a traceback in the logs."""

from __future__ import annotations

import json
import socket

import pytest

from support.client import Reader, page, visitor_id
from support.processes import Service, metric
from support.waiting import until

BEATS = "/api/v1/sites/demo/beats"
DEEP = "[" * 1000 + "]" * 1000
DEEP_OBJECT = '{"type": "hello", "pages": ' + DEEP + "}"
SURROGATE_PATH = (
    '{"type": "hello", "visitor": "abcdefghijklmnopq", "pages": [{"path": "/\\ud800"}]}'
)
SURROGATE_REFERRER = (
    '{"type": "hello", "visitor": "abcdefghijklmnopq", '
    '"pages": [{"path": "/a", "referrer": "https://x.vn/\\udc00"}]}'
)
NEWLINE_VISITOR = json.dumps({"type": "hello", "visitor": "abcdefghijklmnopq\n", "pages": []})

HOSTILE = [
    (DEEP, "bad_json"),
    (DEEP_OBJECT, "bad_json"),
    (SURROGATE_PATH, "bad_page"),
    (SURROGATE_REFERRER, "bad_message"),
    (NEWLINE_VISITOR, "bad_visitor"),
]
HOSTILE_IDS = [
    "deep-array",
    "deep-object",
    "surrogate-path",
    "surrogate-referrer",
    "newline-visitor",
]


def assert_quiet_logs(service: Service) -> None:
    """Client garbage is the client's problem: nothing at warning or above, no traceback."""
    for line in service.logs().splitlines():
        assert "Traceback" not in line, line
        if line.startswith("{"):
            assert json.loads(line)["level"] in ("debug", "info"), line


def assert_counted_nothing(service: Service) -> None:
    stats = service.stats()
    assert stats["online"] == 0 and stats["today"]["views"] == 0, stats
    assert stats["today"]["visits"] == 0 and stats["trending"] == [], stats


@pytest.mark.parametrize(
    ("body", "code"),
    HOSTILE,
    ids=HOSTILE_IDS,
)
def test_hostile_beat_bodies_get_400_json(make_service, body: str, code: str) -> None:
    service = make_service()
    for content_type in ("application/json", "text/plain"):
        reply = service.post(BEATS, content=body.encode(), headers={"Content-Type": content_type})
        assert reply.status_code == 400, reply.text
        assert reply.json()["error"] == code and reply.json()["message"]
    assert_counted_nothing(service)
    assert_quiet_logs(service)


@pytest.mark.parametrize(
    ("frame", "code"),
    HOSTILE,
    ids=HOSTILE_IDS,
)
async def test_hostile_frames_get_an_error_then_4400(make_service, frame: str, code: str) -> None:
    service = make_service()
    reader = await Reader.open(service.ws_url, hello=False)
    await reader.send(frame)
    assert await reader.wait_closed(5) == 4400
    assert reader.frames[0] == {
        "type": "error",
        "code": code,
        "message": reader.frames[0]["message"],
    }
    # After a hello too: a beat nested 1,000 deep.
    later = await Reader.open(service.ws_url, pages=[page("/a")])
    await later.wait_online(1, 2)
    await later.send('{"type": "beat", "engaged": true, "pages": ' + DEEP + "}")
    assert await later.wait_closed(5) == 4400
    assert [f["code"] for f in later.frames if f["type"] == "error"] == ["bad_json"]
    assert_quiet_logs(service)


async def test_invalid_utf8_in_a_text_frame_is_not_an_error_in_the_logs(make_service) -> None:
    service = make_service()
    reader = await Reader.open(service.ws_url, hello=False)
    await reader.ws.send(b'{"type": "hello", "visitor": "\xff\xfe"}', text=True)
    assert await reader.wait_closed(5) in (1007, 4400)
    assert_counted_nothing(service)
    assert_quiet_logs(service)


def raw_request(service: Service, data: bytes, wait: float = 2.0) -> bytes:
    with socket.create_connection(("127.0.0.1", service.port), timeout=wait) as sock:
        sock.sendall(data)
        try:
            return sock.recv(65536)
        except TimeoutError:
            return b""


async def test_abandoned_uploads_and_bad_http_log_nothing_at_error(make_service) -> None:
    service = make_service()
    head = (
        f"POST {BEATS} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Content-Length: 400\r\n\r\n"
    ).encode()
    for _ in range(3):
        # 30 bytes of the promised 400, then the client goes away.
        with socket.create_connection(("127.0.0.1", service.port)) as sock:
            sock.sendall(head + b'{"visitor": "abcdefghijklmnop')
    answer = raw_request(service, b"GARBAGE \x00\xff NOT HTTP\r\n\r\n")
    assert answer == b"" or answer.startswith(b"HTTP/1.1 400"), answer
    raw_request(service, b"GET / HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n")

    def abandoned() -> float:
        text = service.get("/metrics").text
        return metric(text, "portalpulse_messages_rejected_total", 'reason="incomplete_body"')

    # The service has seen every upload end before its logs are read.
    await until(lambda: abandoned() == 3, 5, "the 3 abandoned uploads refused")
    good = service.post(BEATS, json={"visitor": visitor_id(), "pages": [page("/a")]})
    assert good.status_code == 200, good.text
    assert good.json()["online"] == 1
    assert_quiet_logs(service)
