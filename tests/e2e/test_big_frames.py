"""A frame far over the limit gets close 1009, even when the client keeps sending and
reads late: the service does not reset the socket with the client's bytes unread
(a reset can overtake the close frame, and the client would see 1006)."""

from __future__ import annotations

import time
from collections import Counter

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect


def close_code_after_a_huge_frame(ws_url: str) -> int | None:
    with connect(f"{ws_url}?site=demo", origin="http://localhost:8000", open_timeout=5) as ws:
        try:
            ws.send("x" * 8_000_000)  # far more than the socket buffers hold
            ws.send('{"type": "bye"}')
        except ConnectionClosed:
            pass
        time.sleep(0.3)  # on purpose: a busy client reads late
        try:
            while True:
                ws.recv(timeout=5)
        except ConnectionClosed:
            pass
        return ws.protocol.close_rcvd.code if ws.protocol.close_rcvd else None


def test_a_huge_frame_closes_1009_not_1006(make_service) -> None:
    service = make_service()
    codes = Counter(close_code_after_a_huge_frame(service.ws_url) for _ in range(5))
    assert codes == {1009: 5}, codes
    stats = service.stats()
    assert stats["online"] == 0 and stats["today"]["views"] == 0
