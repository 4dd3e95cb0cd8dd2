"""Writing to a connection without waiting on it.

The fan-out is a plain loop over connections. An ASGI `send` on a connection
whose socket buffer has room completes without suspending, so it is run
eagerly, inline; only a connection whose send does suspend (its peer reads
too slowly) gets a task that finishes the send, and meanwhile keeps just the
newest snapshot (see `websocket.WsConnection.offer`).
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
from collections.abc import Coroutine
from typing import Any

from starlette.websockets import WebSocket
from websockets.protocol import State

from .. import metrics

ABORT_AFTER = 2.0
"""Seconds a closing connection may take to flush before its socket is aborted."""


def run_eagerly(coro: Coroutine[Any, Any, Any]) -> asyncio.Task[None] | None:
    """Run `coro` until it first suspends.

    Returns None when it finished at once; otherwise a task that drives it to the
    end. An exception raised before the first suspension propagates to the caller.
    """
    try:
        yielded = coro.send(None)
    except StopIteration:
        return None
    except BaseException:
        coro.close()
        raise
    return asyncio.ensure_future(_resume(coro, yielded))


async def _resume(coro: Coroutine[Any, Any, Any], yielded: Any) -> None:
    while True:
        try:
            if isinstance(yielded, asyncio.Future):
                # Wait without consuming its outcome: the coroutine reads it on resume.
                await asyncio.wait({yielded})
            else:
                await asyncio.sleep(0)
        except asyncio.CancelledError:
            coro.close()
            raise
        try:
            yielded = coro.send(None)
        except StopIteration:
            return


def uvicorn_transport(receive: Any) -> asyncio.Transport | None:
    """The socket transport behind an ASGI `receive`, when the server is uvicorn.

    Used only to abort a connection that can no longer be closed politely (its peer
    stopped reading, so a close frame would wait forever); None elsewhere.
    """
    protocol = getattr(receive, "__self__", None)
    transport = getattr(protocol, "transport", None)
    if isinstance(transport, asyncio.Transport):
        return transport
    return None


class DirectWriter:
    """The fast path of the fan-out, under uvicorn's websockets-sansio protocol:
    server frames are unmasked, so every connection of a site gets the same bytes,
    framed once per snapshot and written straight to each socket.

    It writes only while the connection is open and its socket takes data without
    waiting; anything else goes the ASGI way (`OneSlotSender`), which also keeps
    the order of frames since both write in the order they are called.
    """

    __slots__ = ("_protocol",)

    _last_text: str | None = None
    _last_wire = b""

    def __init__(self, protocol: Any) -> None:
        self._protocol = protocol

    @classmethod
    def of(cls, receive: Any) -> DirectWriter | None:
        protocol = getattr(receive, "__self__", None)
        if type(protocol).__name__ != "WebSocketsSansIOProtocol":
            return None
        needed = ("transport", "writable", "close_sent", "handshake_complete", "conn")
        return cls(protocol) if all(hasattr(protocol, a) for a in needed) else None

    @classmethod
    def wire(cls, text: str) -> bytes:
        # The fan-out offers one string to every connection in turn: frame it once.
        if text is not cls._last_text:
            payload = text.encode()
            size = len(payload)
            if size < 126:
                header = bytes((0x81, size))
            elif size < 65536:
                header = struct.pack("!BBH", 0x81, 126, size)
            else:
                header = struct.pack("!BBQ", 0x81, 127, size)
            cls._last_text, cls._last_wire = text, header + payload
        return cls._last_wire

    def write(self, text: str) -> bool:
        """True when the frame went out; False: use the ASGI path instead."""
        p = self._protocol
        if (
            not p.handshake_complete
            or p.close_sent
            or not p.writable.is_set()
            or p.transport.is_closing()
            or p.conn.state is not State.OPEN
        ):
            return False
        p.transport.write(self.wire(text))
        return True


class OneSlotSender:
    """Frames to one ASGI WebSocket without ever blocking the caller.

    A write that completes at once is the common case. While a write is stuck
    (the peer reads slowly), only the newest frame waits: a newer one replaces it.
    A peer stuck longer than `slow_after` seconds is `too_slow`.
    """

    __slots__ = (
        "_blocked_since",
        "_closing",
        "_direct",
        "_pending",
        "_sending",
        "close_code",
        "closed",
        "slow_after",
        "ws",
    )

    def __init__(self, ws: WebSocket, slow_after: float, direct: bool = True) -> None:
        self.ws = ws
        self.slow_after = slow_after
        self.closed = False
        self.close_code = 1006
        self._sending: asyncio.Task[None] | None = None
        self._pending: str | None = None
        self._blocked_since = 0.0
        self._closing: asyncio.Task[None] | None = None
        self._direct = DirectWriter.of(ws._receive) if direct else None

    def offer(self, frame: str) -> None:
        if self.closed:
            return
        if self._sending is not None:
            if self._pending is not None:
                metrics.snapshots_conflated.inc()
            self._pending = frame
            if time.monotonic() - self._blocked_since > self.slow_after:
                self.too_slow()
            return
        self._send_now(frame)

    def too_slow(self) -> None:
        self.lost()

    def _send_now(self, frame: str) -> None:
        if self._direct is not None and self._direct.write(frame):
            metrics.snapshots_sent.inc()
            return
        try:
            task = run_eagerly(self.ws.send({"type": "websocket.send", "text": frame}))
        except Exception:
            self.lost()
            return
        metrics.snapshots_sent.inc()
        if task is not None:
            self._sending = task
            self._blocked_since = time.monotonic()
            task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._sending = None
        if task.cancelled() or task.exception() is not None:
            self.lost()
            return
        frame, self._pending = self._pending, None
        if frame is not None and not self.closed:
            self._send_now(frame)

    def lost(self) -> None:
        """The peer is gone or hopeless: drop the socket without a goodbye."""
        self.closed = True
        transport = uvicorn_transport(self.ws._receive)
        if transport is not None:
            transport.abort()

    def shut(self, code: int, reason: str = "") -> None:
        """Close from outside the receive loop (shutdown, a slow reader)."""
        if self.closed:
            return
        self._closing = asyncio.ensure_future(self.close(code, reason))

    async def close(self, code: int, reason: str = "") -> None:
        self.closed = True
        self.close_code = code
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(code, reason), ABORT_AFTER)
        # A peer that stopped reading never lets the close frame out: do not wait on it.
        transport = uvicorn_transport(self.ws._receive)
        if transport is not None and code != 1001:
            asyncio.get_running_loop().call_later(ABORT_AFTER, transport.abort)
