"""Slowloris (issue 9): a request whose headers or body do not arrive in time gets
408 and its connection is closed; the service keeps serving meanwhile."""

from __future__ import annotations

import json
import selectors
import socket
import time

from support.client import Reader, page
from support.processes import FAST_TIMING, Service

TIMEOUT = 1.0
SLACK = 3.0


def config() -> str:
    timeouts = f"[server]\nheader_timeout = {TIMEOUT}\nbody_timeout = {TIMEOUT}"
    return FAST_TIMING.replace("[server]", timeouts) + '\n[sites.demo]\norigins = ["*"]\n'


def half_sent(service: Service, data: bytes, count: int) -> list[socket.socket]:
    socks = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", service.port), timeout=5)
        sock.sendall(data)
        socks.append(sock)
    return socks


def wait_all_closed(socks: list[socket.socket], within: float) -> dict[socket.socket, bytes]:
    """What each socket got until the server closed it; fails past `within` seconds."""
    answers = {sock: b"" for sock in socks}
    selector = selectors.DefaultSelector()
    for sock in socks:
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
    deadline = time.monotonic() + within
    open_left = len(socks)
    while open_left and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=0.2):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if chunk:
                answers[sock] += chunk
            else:
                selector.unregister(sock)
                open_left -= 1
    selector.close()
    for sock in socks:
        sock.close()
    assert open_left == 0, f"{open_left} of {len(socks)} half-sent requests still open"
    return answers


def assert_408(answer: bytes) -> None:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), answer[:200]
    assert json.loads(body)["error"] == "timeout"


async def test_half_sent_requests_are_closed_after_the_timeouts(make_service) -> None:
    service = make_service(config())
    started = time.monotonic()
    headers = half_sent(service, b"GET /api/v1/sites/demo/stats HTTP/1.1\r\nHost: x\r\n", 150)
    nothing = half_sent(service, b"", 20)
    beats = b"POST /api/v1/sites/demo/beats HTTP/1.1\r\nHost: x\r\n"
    body = half_sent(
        service,
        beats + b"Content-Type: application/json\r\nContent-Length: 400\r\n\r\n" + b"{" * 30,
        30,
    )
    # Meanwhile the service answers others at once.
    reader = await Reader.open(service.ws_url, pages=[page("/a")])
    await reader.wait_online(1, 2)
    answers = wait_all_closed(headers + nothing + body, TIMEOUT + SLACK)
    assert time.monotonic() - started < TIMEOUT + SLACK + 2
    for sock in headers + nothing + body:
        assert_408(answers[sock])
    # The socket opened before the timeouts stays: WebSockets are not cut by them.
    assert reader.close_code is None
    assert service.stats()["online"] == 1


def test_trickled_headers_do_not_rearm_the_timer(make_service) -> None:
    service = make_service(config())
    (sock,) = half_sent(service, b"G", 1)
    started = time.monotonic()
    answer = b""
    for byte in b"ET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 20:
        try:
            sock.sendall(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            break
        time.sleep(0.2)  # on purpose: one byte at a time, slowly
        if time.monotonic() - started > TIMEOUT + SLACK:
            break
    sock.settimeout(SLACK)
    try:
        while chunk := sock.recv(65536):
            answer += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    sock.close()
    assert_408(answer)
    assert time.monotonic() - started < TIMEOUT + SLACK
    # A whole request on a kept-alive connection is answered as usual.
    assert service.get("/healthz").status_code == 200
