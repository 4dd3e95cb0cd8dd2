"""uvicorn's websockets-sansio protocol, offering the app a direct frame writer
and an abort through the ASGI scope's extensions (see `fanout.py`).

The only module that knows uvicorn's protocol from the inside: it uses what the
parent class offers, for the uvicorn versions `TESTED` (pinned in pyproject.toml).
`portalpulse serve` runs uvicorn with `ws=PulseWebSocketProtocol`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import uvicorn
from uvicorn.config import Config
from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState
from websockets.extensions.permessage_deflate import (
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
)
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol

from ..clock import slot_of, slot_time
from ..fanout import ABORT_EXTENSION, DIRECT_WRITE_EXTENSION, TEXT_EXTENSION, DirectWriter
from .small_frames import SHORT_READS, small_text

if TYPE_CHECKING:  # only the types of uvicorn's own send() and receive(), for the overrides
    from uvicorn._types import ASGIReceiveEvent, ASGISendEvent

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

QUEUED_BEFORE_PAUSE = 8
"""Messages waiting for the app before reading from the socket pauses (uvicorn
pauses and resumes reading around every message: two system calls a beat)."""

KEEPALIVE_STEP = 1.0
"""Seconds between the keepalive timer's runs (at most; less for short pings)."""

PING_AT_LEAST_EVERY = 45.0
"""Seconds: the longest a connection goes without a ping, beats or not. Behind a
proxy a quiet site's connection carries nothing else from the server, and
nginx closes one whose upstream sent nothing for `proxy_read_timeout` (60 s by
default)."""

PING_GRACE = 0.2
"""A beat may come this share of `ping_interval` late before a ping goes out
instead: tabs beat every `beat_interval`, a little late by their timers and
the network."""


def keepalive_plan(
    now: float,
    heard: float,
    pinged: float,
    pending: bool,
    interval: float,
    timeout: float | None,
) -> tuple[str, float]:
    """What the keepalive timer does for one connection at `now`: "dead",
    "ping" or "wait", and when (loop time) it looks at the connection again.

    `heard` is when the connection last sent anything (a beat, a pong, any
    frame), `pinged` when the last ping went out, `pending` whether it is
    unanswered (anything heard after the ping answers it too).

    A tab that beats every `interval` shows that it is alive: it gets no ping
    but the one every PING_AT_LEAST_EVERY seconds that keeps proxies open. A
    connection silent for `interval` (and a grace) is pinged, and one silent
    for `interval + timeout` with that ping unanswered is dead: the bound of
    CONTRACT §2, as when every connection was pinged every `interval`."""
    if pending and heard <= pinged and timeout is not None:
        deadline = heard + interval + timeout
        return ("dead", now) if now >= deadline else ("wait", deadline)
    grace = interval * PING_GRACE if timeout is None else min(interval * PING_GRACE, timeout / 2)
    due = min(max(heard, pinged) + interval + grace, pinged + max(interval, PING_AT_LEAST_EVERY))
    if now < due:
        return "wait", due
    return "ping", now + interval if timeout is None else heard + interval + timeout


class Keepalive:
    """Every connection's keepalive on one timer (one per event loop), in slots of
    `step` seconds, instead of a ping timer and a pong timer per connection: a
    connection is looked at when `keepalive_plan` says, beside the others of
    its slot (at most one slot late), and has no timer of its own. What a
    connection receives does not touch the timer: the connection only notes
    the time."""

    def __init__(self, loop: asyncio.AbstractEventLoop, step: float) -> None:
        self.loop = loop
        self.step = step
        self.slots: dict[int, dict[PulseWebSocketProtocol, None]] = {}
        self.timer: asyncio.TimerHandle | None = None
        self._running = False

    def add(self, conn: PulseWebSocketProtocol, at: float) -> None:
        """Run `conn.keepalive_due` at `at` (loop time), or at most one slot after it."""
        slot = slot_of(at, self.step)
        self.remove(conn)
        self.slots.setdefault(slot, {})[conn] = None
        conn.keepalive_slot = slot
        when = slot_time(slot, self.step)
        if not self._running and (self.timer is None or when < self.timer.when()):
            if self.timer is not None:
                self.timer.cancel()
            self.timer = self.loop.call_at(when, self._run)

    def remove(self, conn: PulseWebSocketProtocol) -> None:
        slot, conn.keepalive_slot = conn.keepalive_slot, None
        waiting = self.slots.get(slot) if slot is not None else None
        if waiting is not None:
            waiting.pop(conn, None)
            if not waiting:
                del self.slots[cast(int, slot)]

    def _run(self) -> None:
        self.timer, self._running = None, True
        now = self.loop.time()
        try:
            for slot in sorted(s for s in self.slots if slot_time(s, self.step) <= now + 0.001):
                for conn in self.slots.pop(slot):
                    conn.keepalive_slot = None
                    conn.keepalive_due(now)
        finally:
            self._running = False
            if self.slots:  # the first slot left
                self.timer = self.loop.call_at(slot_time(min(self.slots), self.step), self._run)


_keepalive: Keepalive | None = None


def keepalive_of(loop: asyncio.AbstractEventLoop, interval: float) -> Keepalive:
    """The keepalive timer of the server's event loop (one a process)."""
    global _keepalive
    if _keepalive is None or _keepalive.loop is not loop:
        _keepalive = Keepalive(loop, min(KEEPALIVE_STEP, interval / 15))
    return _keepalive


class Inbox:
    """The messages waiting for the app, and the app's wait for the next one: what
    uvicorn keeps in an asyncio.Queue, whose three deques and Event took 3 KB of
    every held connection. One reader (the app's task); `put_nowait`, `qsize`
    and `empty` as the Queue's, which uvicorn's protocol calls."""

    __slots__ = ("_messages", "_reader")

    def __init__(self) -> None:
        self._messages: list[ASGIReceiveEvent] = []  # a few at most (QUEUED_BEFORE_PAUSE)
        self._reader: asyncio.Future[None] | None = None

    def put_nowait(self, message: ASGIReceiveEvent) -> None:
        self._messages.append(message)
        if self._reader is not None and not self._reader.done():
            self._reader.set_result(None)

    def qsize(self) -> int:
        return len(self._messages)

    def empty(self) -> bool:
        return not self._messages

    def pop(self) -> ASGIReceiveEvent:
        """The oldest message (there is one: see `empty`)."""
        return self._messages.pop(0)

    def arrival(self) -> asyncio.Future[None]:
        """Done when a message is put (the reader awaits it while `empty`)."""
        if self._reader is None or self._reader.done():
            self._reader = asyncio.get_running_loop().create_future()
        return self._reader


class Writable:
    """Whether the socket takes more data, as the asyncio.Event uvicorn keeps for it
    (`set`, `clear`, `is_set`, `wait`), without the Event's deque per connection."""

    __slots__ = ("_open", "_waiters")

    def __init__(self) -> None:
        self._open = True
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._open

    def set(self) -> None:
        self._open = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._open = False

    async def wait(self) -> None:
        if self._open:
            return
        waiter = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            if self._waiters is not None and waiter in self._waiters:
                self._waiters.remove(waiter)


def deflate_factory() -> ServerPerMessageDeflateFactory:
    """permessage-deflate as the service offers it (RFC 7692): without context
    takeover either way, so that one compressed frame suits every connection
    (`fanout.DirectWriter`) and no connection keeps a compressor or a
    decompressor between messages."""
    return ServerPerMessageDeflateFactory(
        server_no_context_takeover=True, client_no_context_takeover=True
    )


DEFLATE_OFFER = (deflate_factory(),)
"""What every connection offers (a factory keeps only its settings): one for all."""


class PulseWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websockets-sansio protocol with three ASGI extensions:
    `portalpulse.direct_write` {"write": bytes -> bool, "deflate": int},
    `portalpulse.abort` {"abort": () -> None} and `portalpulse.text` {"take":
    handler -> None} (`fanout.TEXT_EXTENSION`); a failed connection (a frame
    over the size limit) that lets its close frame reach the client; and, with
    uvicorn's `ws_per_message_deflate` (`server.ws_deflate`), permessage-deflate
    without context takeover, each distinct text frame compressed once for every
    connection, whichever path (direct or ASGI) sends it."""

    # Every attribute, uvicorn's too, in a slot: a protocol's instance dict of some
    # 40 keys, too many to share its keys with the others, took 1.5 KB a connection.
    __slots__ = (
        *("app", "app_state", "asgi_version", "client", "close_sent", "close_timeout"),
        *("close_timer", "config", "conn", "connections", "curr_msg_data_type"),
        *("default_headers", "disconnected", "frames", "handshake_complete"),
        *("handshake_initiated", "initial_response", "last_ping_rtt", "logger", "loop"),
        *("pending_ping_payload", "ping_interval", "ping_sent_at", "ping_timeout"),
        *("ping_timer", "pong_timer", "queue", "read_paused", "request", "response"),
        *("root_path", "scheme", "scope", "server", "tasks", "transport", "writable"),
        *("_deflate", "_failed", "_keepalive", "_text_handler", "heard", "keepalive_slot"),
    )

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self._failed = False
        self._deflate = 0  # the negotiated window bits; 0: frames go uncompressed
        self.keepalive_slot: int | None = None
        self._keepalive: Keepalive | None = None
        self.heard = 0.0  # loop time the client last sent anything
        self._text_handler: Callable[[str], bool] | None = None
        super().__init__(config, server_state, app_state, _loop)
        # Lighter stand-ins for uvicorn's asyncio.Queue and Event, with the methods
        # its protocol calls on them (memory per held connection, docs/BENCHMARKS.md).
        self.queue = Inbox()  # type: ignore[assignment]
        self.writable = Writable()  # type: ignore[assignment]
        if config.ws_per_message_deflate:
            # uvicorn's own offer keeps a compressor per connection (context takeover).
            self.conn = ServerProtocol(
                extensions=DEFLATE_OFFER,
                max_size=config.ws_max_size,
                logger=logging.getLogger("uvicorn.error"),
            )

    # -- keepalive: one timer for every connection (`Keepalive`) --

    def start_keepalive(self) -> None:
        if self.ping_interval is not None and self.ping_interval > 0:
            self._keepalive = keepalive_of(self.loop, self.ping_interval)
            self.heard = self.ping_sent_at = now = self.loop.time()
            self._keepalive.add(self, now + self.ping_interval)

    def stop_keepalive(self) -> None:
        super().stop_keepalive()
        if self._keepalive is not None:
            self._keepalive.remove(self)

    def keepalive_due(self, now: float) -> None:
        """The keepalive timer's call (`keepalive_plan`): the connection is dead,
        or a ping is due, or neither yet."""
        if self.close_sent or self.transport.is_closing():
            return
        assert self._keepalive is not None and self.ping_interval is not None
        pending = self.pending_ping_payload is not None
        action, again = keepalive_plan(
            now, self.heard, self.ping_sent_at, pending, self.ping_interval, self.ping_timeout
        )
        if action == "dead":
            self.keepalive_timeout()
            return
        if action == "ping":
            self.pending_ping_payload = struct.pack("!I", random.getrandbits(32))
            self.ping_sent_at = now
            self.conn.send_ping(self.pending_ping_payload)
            self.transport.write(b"".join(self.conn.data_to_send()))
        elif pending and self.heard > self.ping_sent_at:
            self.pending_ping_payload = None  # spoken since: the ping is answered
        self._keepalive.add(self, again)

    # -- receiving --

    async def receive(self) -> ASGIReceiveEvent:
        """The app's next message, as uvicorn's receive: reading resumes once no
        message waits."""
        inbox = cast(Inbox, self.queue)
        while inbox.empty():
            await inbox.arrival()
        message = inbox.pop()
        if self.read_paused and inbox.empty():
            self.read_paused = False
            self.transport.resume_reading()
        return message

    def take_text(self, handler: Callable[[str], bool]) -> None:
        """From now on, hand text messages to `handler` as they are read (TEXT_EXTENSION)."""
        self._text_handler = handler

    def send_receive_event_to_app(self) -> None:
        """Hand a text message to the app's handler when it takes it (nothing
        waiting before it), else queue the message for the app, pausing reading
        only once QUEUED_BEFORE_PAUSE messages wait (uvicorn pauses after each one)."""
        handler = self._text_handler
        if (
            handler is not None
            and self.curr_msg_data_type == "text"
            and not self.close_sent
            and self.queue.empty()
        ):
            data = self.frames[0] if len(self.frames) == 1 else b"".join(self.frames)
            try:
                text = data.decode()
            except UnicodeDecodeError:
                text = None  # uvicorn's own path refuses it (1007)
            if text is not None and handler(text):
                self.frames = []
                return
        paused = self.read_paused
        self.read_paused = True  # so that uvicorn does not pause reading now
        try:
            super().send_receive_event_to_app()
        finally:
            self.read_paused = paused
        if not paused and self.queue.qsize() >= QUEUED_BEFORE_PAUSE:
            self.read_paused = True
            self.transport.pause_reading()

    def data_received(self, data: bytes) -> None:
        self.heard = self.loop.time()
        if self._failed:
            self.conn.receive_data(data)  # the failed protocol discards it
            return
        handler = self._text_handler
        if handler is not None and SHORT_READS and self._between_messages():
            text = small_text(data)
            if text is not None and handler(text):
                return  # a beat, taken: websockets' parser never saw the frame
        super().data_received(data)

    def _between_messages(self) -> bool:
        """Whether the connection is open with nothing part-read: no partial frame,
        no fragmented message, no message waiting for the app."""
        conn = self.conn
        return (
            conn.state is State.OPEN
            and not conn.reader.buffer
            and conn.current_size is None
            and not self.frames
            and not self.close_sent
            and self.queue.empty()
        )

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

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        if self.close_sent:
            return  # refused by websockets: no scope, no app
        # The app's task is created but has not run: its scope gets the extensions.
        # (Not in a run_asgi override: that would be one more coroutine frame held
        # by every connection for its whole life.)
        extensions = cast(dict[str, Any], self.scope).setdefault("extensions", {})
        for extension in self.conn.extensions:
            if isinstance(extension, PerMessageDeflate):
                assert extension.local_no_context_takeover
                self._deflate = extension.local_max_window_bits
        extensions[DIRECT_WRITE_EXTENSION] = {"write": self.write_frame, "deflate": self._deflate}
        extensions[ABORT_EXTENSION] = {"abort": self.abort}
        extensions[TEXT_EXTENSION] = {"take": self.take_text}

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

    async def send(self, message: ASGISendEvent) -> None:
        """uvicorn's send, but a text frame on a connection with permessage-deflate
        goes out as the shared compressed frame, as the direct path writes it."""
        text = message.get("text") if message["type"] == "websocket.send" else None
        if (
            not self._deflate
            or not isinstance(text, str)
            or not self.handshake_complete
            or self.close_sent
            or self.initial_response is not None
        ):
            await super().send(message)
            if message["type"] == "websocket.accept" and self.handshake_complete:
                self.forget_handshake()
            return
        await self.writable.wait()
        if self.disconnected or self.conn.state is not State.OPEN:
            raise ClientDisconnected()
        self.transport.write(DirectWriter.wire(text, self._deflate))

    def forget_handshake(self) -> None:
        """The handshake is answered: its request's and response's headers are not
        read again, yet uvicorn keeps both, and the websockets parser keeps the
        request for as long as the connection lives (about 3 KB a connection)."""
        self.request.headers.clear()
        self.response.headers.clear()

    def abort(self) -> None:
        """Drop the socket at once, without waiting for unsent data to flush: for a
        peer that stopped reading, whose close frame would wait forever."""
        if self.transport is not None:
            self.transport.abort()
