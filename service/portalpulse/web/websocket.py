"""The widget's WebSocket: `GET /ws?site=SITE` (CONTRACT §3)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from starlette.datastructures import QueryParams
from starlette.types import Message
from starlette.websockets import WebSocket

from .. import metrics, protocol
from ..config import SiteSettings
from ..deltas import want_mask
from ..fanout import text_handler_of
from ..limiter import TokenBucket
from ..protocol import Beat, Bye, CloseCode, Hello, Page, ProtocolError
from ..runtime import Pulse
from .clientaddr import client_address, limit_key
from .http import error_response
from .sender import OneSlotSender

log = logging.getLogger("portalpulse.ws")


PATH = "/ws"


async def websocket_endpoint(ws: WebSocket) -> None:
    pulse: Pulse = ws.app.state.pulse
    # Not `ws.query_params`, which would keep a parsed copy for the connection's life.
    site = pulse.settings.sites.get(QueryParams(ws.scope["query_string"]).get("site", ""))
    if site is None:
        metrics.handshakes_refused.labels("404").inc()
        metrics.messages_rejected.labels("unknown_site").inc()
        await ws.send_denial_response(error_response(404, "unknown_site", "no such site"))
        return
    origin = ws.headers.get("origin")
    if not site.allows_origin(origin):
        metrics.handshakes_refused.labels("403").inc()
        metrics.messages_rejected.labels("forbidden_origin").inc()
        log.info("refused origin %r for site %s", origin, site.id)
        await ws.send_denial_response(
            error_response(403, "forbidden_origin", "this page's origin may not use the site")
        )
        return
    ip = limit_key(client_address(ws))
    forget_headers(ws)
    await ws.accept()
    if pulse.closing:
        await ws.close(CloseCode.SHUTDOWN)
        return
    conn = WsConnection(pulse, site, ws)
    if not pulse.admit(ip, conn):
        metrics.messages_rejected.labels("too_many_connections").inc()
        metrics.connections_closed.labels(str(CloseCode.OVERLOADED)).inc()
        await ws.close(CloseCode.OVERLOADED, "too many connections from this address")
        return
    metrics.connections.labels("ws").inc()
    metrics.connections_opened.labels("ws").inc()
    try:
        await conn.run()
    finally:
        pulse.release(ip, conn)
        metrics.connections.labels("ws").dec()
        metrics.connections_closed.labels(str(conn.close_code)).inc()
        pulse.hub.part(site.id, conn, conn.visitor, conn.pages, conn.engaged)


def forget_headers(ws: WebSocket) -> None:
    """Empty the handshake's headers once read (`ws.headers` is empty from now on):
    the scope and `ws.headers` would otherwise keep them, about 1 KB, for as long
    as the connection is held."""
    ws.scope["headers"].clear()  # the one list both of them hold


class WsConnection(OneSlotSender):
    """One widget connection: its receive loop, and a one-slot mailbox for snapshots."""

    __slots__ = ("_bucket", "engaged", "pages", "pulse", "site", "visitor")

    def __init__(self, pulse: Pulse, site: SiteSettings, ws: WebSocket) -> None:
        server = pulse.settings.server
        super().__init__(ws, server.max_pending_send_seconds, pulse.delivery)
        self.pulse = pulse
        self.site = site
        self.visitor: str | None = None
        self.pages: tuple[Page, ...] = ()
        self.engaged = False
        # `max_messages_per_second` at once, refilled at that rate.
        self._bucket = TokenBucket(server.max_messages_per_second, time.monotonic())

    def too_slow(self) -> None:
        metrics.messages_rejected.labels("slow_reader").inc()
        self.shut(CloseCode.OVERLOADED, "reading too slowly")

    async def _refuse(self, exc: ProtocolError, close: int) -> None:
        metrics.messages_rejected.labels(exc.code).inc()
        if not self.closed:
            with contextlib.suppress(Exception):
                await self.ws.send_text(protocol.error_frame(exc.code, exc.message))
        await self.close(close, exc.code)

    # -- receiving ---------------------------------------------------------------

    async def _text_of(self, message: Message) -> str | None:
        """The text of a received message; None when the connection ended or was refused."""
        if message["type"] == "websocket.disconnect":
            if not self.closed:
                self.close_code = int(message.get("code") or CloseCode.ABNORMAL)
                if self.close_code == CloseCode.TOO_BIG:
                    metrics.messages_rejected.labels("too_big").inc()
            self.closed = True
            return None
        text: str | None = message.get("text")
        server = self.pulse.settings.server
        if text is None:
            await self._refuse(
                ProtocolError("bad_message", "frames must be JSON text"), CloseCode.BAD_MESSAGE
            )
            return None
        if self._too_big(text):
            metrics.messages_rejected.labels("too_big").inc()
            await self.close(CloseCode.TOO_BIG, "frame too big")
            return None
        rate = server.max_messages_per_second
        if not self._bucket.take(time.monotonic(), rate, rate):
            await self._refuse(
                ProtocolError("rate", f"more than {rate} messages a second"), CloseCode.RATE
            )
            return None
        return text

    def _too_big(self, text: str) -> bool:
        limit = self.pulse.settings.server.max_frame_bytes
        return len(text) > limit or len(text.encode()) > limit

    async def run(self) -> None:
        if not await self._hello():
            return
        # The loop itself waits, with no local holding the last message: the
        # shallowest stack a held connection can keep (docs/BENCHMARKS.md).
        while not self.closed:
            if not await self._take(await self.ws.receive()):
                return

    async def _hello(self) -> bool:
        """The first message, a hello in time, welcomed; False: the connection ended."""
        try:
            async with asyncio.timeout(self.pulse.settings.server.hello_timeout):
                text = await self._text_of(await self.ws.receive())
        except TimeoutError:
            await self._refuse(
                ProtocolError("hello_timeout", "no hello in time"), CloseCode.HELLO_TIMEOUT
            )
            return False
        if text is None:
            return False
        try:
            first = protocol.parse_client_frame(text, self.site)
            if not isinstance(first, Hello):
                raise ProtocolError("out_of_order", f"{type(first).__name__.lower()} before hello")
        except ProtocolError as exc:
            await self._refuse(exc, CloseCode.BAD_MESSAGE)
            return False
        self._welcome(first)
        take = text_handler_of(self.ws.scope)
        if take is not None:
            take(self._take_beat)
        return True

    async def _take(self, received: Message) -> bool:
        """A message after hello; False: the connection ended."""
        text = await self._text_of(received)
        if text is None:
            return False
        try:
            message = protocol.parse_client_frame(text, self.site)
            if isinstance(message, Hello):
                raise ProtocolError("out_of_order", "hello was already sent")
        except ProtocolError as exc:
            await self._refuse(exc, CloseCode.BAD_MESSAGE)
            return False
        metrics.ws_beats.inc()
        if isinstance(message, Bye):
            await self.close(CloseCode.BYE, "bye")
            return False
        self._beat(message)
        return True

    def _take_beat(self, text: str) -> bool:
        """A message as the server reads it (TEXT_EXTENSION): a beat is handled here
        and now, at no task switch; anything else (a bye, an error to answer)
        goes to the receive loop, which checks it again and answers."""
        if self.closed or self._too_big(text):
            return False
        try:
            message = protocol.parse_client_frame(text, self.site)
        except ProtocolError:
            return False
        rate = self.pulse.settings.server.max_messages_per_second
        if not isinstance(message, Beat) or not self._bucket.take(time.monotonic(), rate, rate):
            return False
        metrics.ws_beats.inc()
        self._beat(message)
        return True

    def _welcome(self, hello: Hello) -> None:
        metrics.ws_beats.inc()
        self.visitor, self.pages, self.engaged = hello.visitor, hello.pages, hello.engaged
        self.want = want_mask(hello.want) if hello.want else 0
        self.pulse.hub.join(self.site.id, self, hello)
        self._send_now(
            protocol.welcome_frame(self.site.id, self.pulse.settings.server.beat_interval)
        )
        if not self._offer_current():
            self.pulse.background(self._first_snapshot())

    def _offer_current(self) -> bool:
        """Offer the site's newest snapshot (the wanted fields of it); False: none yet."""
        hub = self.pulse.hub
        if self.want:
            fields = hub.current_fields(self.site.id)
            if fields is not None and self.offer_fields(fields, fields.frame_for):
                metrics.snapshots_sent.inc()
            return fields is not None
        frame = hub.current_frame(self.site.id)
        if frame is not None and self.offer(frame):
            metrics.snapshots_sent.inc()
        return frame is not None

    async def _first_snapshot(self) -> None:
        """This instance has no snapshot of the site yet: read one for the newcomer."""
        try:
            await self.pulse.hub.read_snapshot(self.site.id)
        except Exception:
            return
        self._offer_current()

    def _beat(self, beat: Beat) -> None:
        if beat.engaged != self.engaged and self.visitor is not None:
            self.pulse.hub.engage(self.site.id, self.visitor, self.engaged, beat.engaged)
        self.engaged = beat.engaged
        if beat.pages is not None:
            assert self.visitor is not None
            self.pulse.hub.change_pages(self.site.id, self.visitor, self.pages, beat.pages)
            self.pages = beat.pages
