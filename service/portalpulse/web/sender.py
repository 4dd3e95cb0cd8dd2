"""Writing to a connection without waiting on it.

The fan-out is a plain loop over connections. A frame goes straight to the
socket when the fan-out's delivery gives the connection a direct writer and
the socket takes it at once (`fanout.DirectDelivery`); otherwise through the
ASGI `send`, which on a socket with room completes without suspending, so it
is run eagerly, inline. Only a connection whose send does suspend (its peer
reads too slowly) gets a task that finishes the send, and meanwhile keeps just
the newest snapshot (`OneSlotSender.offer`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine
from typing import Any

from starlette.websockets import WebSocket

from .. import metrics
from ..deltas import NEVER, SiteFields
from ..fanout import Delivery, abort_of
from ..protocol import CloseCode

FrameFor = Callable[[int, int], str | None]

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
        "synced",
        "want",
        "ws",
    )

    def __init__(self, ws: WebSocket, slow_after: float, delivery: Delivery) -> None:
        self.ws = ws
        self.slow_after = slow_after
        self.closed = False
        self.close_code: int = CloseCode.ABNORMAL
        self._sending: asyncio.Task[None] | None = None
        # A v1 frame, or (with `want`) the site's fields: what it lacks is worked
        # out when the stuck write ends, so no change is lost to conflation.
        self._pending: str | SiteFields | None = None
        self.want = 0  # CONTRACT §3a: the wanted fields' bits; 0 for a v1 client
        self.synced = NEVER  # the `SiteFields.seq` this connection was brought up to
        self._blocked_since = 0.0
        self._closing: asyncio.Task[None] | None = None
        self._direct = delivery.direct_writer(ws.scope)

    def offer(self, frame: str) -> bool:
        """A v1 client's whole snapshot; True when it went out now (the caller
        counts it: the fan-out adds one sum per push, not one per connection)."""
        if self.closed:
            return False
        if self._sending is not None:
            self._hold(frame)
            return False
        return self._send_now(frame)

    def offer_fields(self, fields: SiteFields, frame_for: FrameFor) -> bool:
        """A client with `want`: the wanted fields changed since its last frame, if any.
        `frame_for` is `fields.frame_for`, or its per-fan-out memo (`grouped`). True
        when a frame went out now (the caller counts it)."""
        if self.closed:
            return False
        if self._sending is not None:
            self._hold(fields)
            return False
        frame = frame_for(self.want, self.synced)
        if frame is None:
            return False
        self.synced = fields.seq
        return self._send_now(frame)

    def _hold(self, pending: str | SiteFields) -> None:
        if self._pending is not None:
            metrics.snapshots_conflated.inc()
        self._pending = pending
        if time.monotonic() - self._blocked_since > self.slow_after:
            self.too_slow()

    def too_slow(self) -> None:
        self.lost()

    def _send_now(self, frame: str) -> bool:
        """Write `frame` now (directly, or through ASGI); False when the socket is gone."""
        direct = self._direct
        if direct is not None and direct.write(frame):
            return True
        try:
            task = run_eagerly(self.ws.send({"type": "websocket.send", "text": frame}))
        except Exception:
            self.lost()
            return False
        if task is not None:
            self._sending = task
            self._blocked_since = time.monotonic()
            task.add_done_callback(self._sent)
        return True

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._sending = None
        if task.cancelled() or task.exception() is not None:
            self.lost()
            return
        pending, self._pending = self._pending, None
        if isinstance(pending, SiteFields):
            sent = self.offer_fields(pending, pending.frame_for)
        else:
            sent = pending is not None and not self.closed and self._send_now(pending)
        if sent:
            metrics.snapshots_sent.inc()

    def lost(self) -> None:
        """The peer is gone or hopeless: drop the socket without a goodbye."""
        self.closed = True
        abort = abort_of(self.ws.scope)
        if abort is not None:
            abort()

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
        abort = abort_of(self.ws.scope)
        if abort is not None and code != CloseCode.SHUTDOWN:
            asyncio.get_running_loop().call_later(ABORT_AFTER, abort)
