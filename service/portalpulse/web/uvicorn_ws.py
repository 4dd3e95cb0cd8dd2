"""uvicorn's websockets-sansio protocol, offering the app a direct frame writer
and an abort through the ASGI scope's extensions (see `fanout.py`).

The only module that knows uvicorn's protocol from the inside: it uses what the
parent class offers, for the uvicorn versions `TESTED` (pinned in pyproject.toml).
`portalpulse serve` runs uvicorn with `ws=PulseWebSocketProtocol`.
"""

from __future__ import annotations

from typing import Any, cast

import uvicorn
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import State

from ..fanout import ABORT_EXTENSION, DIRECT_WRITE_EXTENSION

TESTED = ((0, 55), (0, 56))
"""uvicorn versions [0.55, 0.56), as pinned in pyproject.toml (websockets-sansio
arrived in 0.35; only 0.55 is tested here)."""


def unsupported(version: str = uvicorn.__version__) -> str | None:
    """Why this uvicorn cannot serve the direct path; None when it can."""
    try:
        major_minor = tuple(int(part) for part in version.split(".")[:2])
    except ValueError:
        return f"uvicorn {version}: unknown version"
    low, high = TESTED
    if not low <= major_minor < high:
        return (
            f"uvicorn {version} is outside the tested range "
            f"{low[0]}.{low[1]} to below {high[0]}.{high[1]}"
        )
    return None


LINGER = 2.0
"""Seconds a failed connection keeps reading (and dropping) what its client still
sends before the socket is closed."""


class PulseWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websockets-sansio protocol with two ASGI extensions:
    `portalpulse.direct_write` {"write": bytes -> bool} and
    `portalpulse.abort` {"abort": () -> None}; and a failed connection (a frame
    over the size limit) that lets its close frame reach the client."""

    _failed = False

    def data_received(self, data: bytes) -> None:
        if self._failed:
            self.conn.receive_data(data)  # the failed protocol discards it
            return
        super().data_received(data)

    def handle_parser_exception(self) -> None:
        """A frame too big (1009) or malformed (1002): send the close frame, half-close,
        and keep reading until the client closes (or LINGER s). uvicorn closes the
        socket at once, and a socket closed with unread input sends a reset, which
        can overtake the close frame: the client then sees 1006, not 1009."""
        close = self.conn.close_sent
        code, reason = (close.code, close.reason) if close is not None else (1006, "")
        self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = self._failed = True
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.close_timer = self.loop.call_later(LINGER, self.transport.close)

    async def run_asgi(self) -> None:
        extensions = cast(dict[str, Any], self.scope).setdefault("extensions", {})
        extensions[DIRECT_WRITE_EXTENSION] = {"write": self.write_frame}
        extensions[ABORT_EXTENSION] = {"abort": self.abort}
        await super().run_asgi()

    def write_frame(self, frame: bytes) -> bool:
        """Write one whole server frame now, when the connection is open and its
        socket takes data without waiting; False (nothing written) otherwise.

        Server frames are unmasked, so the same bytes suit every connection; and
        ASGI sends on this protocol write in call order too, so frames keep their order.
        """
        if (
            not self.handshake_complete
            or self.close_sent
            or self.initial_response is not None
            or not self.writable.is_set()
            or self.transport.is_closing()
            or self.conn.state is not State.OPEN
        ):
            return False
        self.transport.write(frame)
        return True

    def abort(self) -> None:
        """Drop the socket at once, without waiting for unsent data to flush: for a
        peer that stopped reading, whose close frame would wait forever."""
        if self.transport is not None:
            self.transport.abort()
