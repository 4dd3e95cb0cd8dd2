"""Header-read and body-read timeouts for uvicorn's HTTP/1.1 protocol (h11).

uvicorn closes idle keep-alive connections but sets no limit on how long a
client may take to send a request: 1,000 half-sent requests (slowloris) would
hold 1,000 sockets for ever. This subclass, passed to uvicorn through its
public `http=` setting, arms one timer per request: the headers must be
complete within `header_timeout` seconds of the request's first byte (or of
the connection, for the first one), and the body within `body_timeout` after
them. A request that misses either gets 408 with the contract's JSON error and
the connection is closed; data trickling in does not re-arm the timer.

It reads h11's connection state (`self.conn.their_state`) and the transport,
which uvicorn's H11Protocol has kept unchanged for years; pyproject pins the
tested uvicorn range.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from .. import metrics


def _timeout_answer(message: str) -> bytes:
    body = json.dumps({"error": "timeout", "message": message}).encode()
    head = (
        "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


HEADERS_LATE = _timeout_answer("request headers not received in time")
BODY_LATE = _timeout_answer("request body not received in time")


class TimedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline on each request's headers and body."""

    header_timeout = 10.0
    body_timeout = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._waiting_for: object | None = None
        self._upgraded = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(h11.IDLE, self.header_timeout)

    def data_received(self, data: bytes) -> None:
        if self._waiting_for is None and self.conn.their_state is h11.IDLE:
            # The first bytes of a next request on a kept-alive connection.
            self._arm(h11.IDLE, self.header_timeout)
        super().data_received(data)
        self._follow()

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        # The WebSocket protocol takes the connection over (with its own pings).
        self._disarm()
        self._upgraded = True
        super().handle_websocket_upgrade(event)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._follow()

    def _follow(self) -> None:
        """Move the deadline along as the request's headers, then its body, arrive."""
        state = self.conn.their_state
        if state is self._waiting_for or self._upgraded:
            return
        self._disarm()
        if state is h11.SEND_BODY:
            self._arm(h11.SEND_BODY, self.body_timeout)

    def _arm(self, state: object, seconds: float) -> None:
        self._disarm()
        self._waiting_for = state
        self._deadline = asyncio.get_running_loop().call_later(seconds, self._too_late, state)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline, self._waiting_for = None, None

    def _too_late(self, state: object) -> None:
        self._deadline = None
        if self.transport.is_closing() or self.conn.their_state is not state:
            return
        metrics.messages_rejected.labels("request_timeout").inc()
        # Only when no answer has begun: otherwise the 408 would land inside it.
        if self.conn.our_state in (h11.IDLE, h11.SEND_RESPONSE) and (
            self.cycle is None or not self.cycle.response_started
        ):
            self.transport.write(HEADERS_LATE if state is h11.IDLE else BODY_LATE)
        self.transport.close()


def timed_h11(header_timeout: float, body_timeout: float) -> type[TimedH11Protocol]:
    """The protocol class for uvicorn's `http=`, with these timeouts."""
    return type(
        "TimedH11Protocol",
        (TimedH11Protocol,),
        {"header_timeout": header_timeout, "body_timeout": body_timeout},
    )
