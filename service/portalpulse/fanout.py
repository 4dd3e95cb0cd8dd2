"""Delivery of each site's frames to the connections that listen here: readers'
widgets (`Reader`s) and editors' dashboards (watchers).

A snapshot is encoded once per change and offered to every connection of the
site in one plain loop; a reader with `want` (CONTRACT §3a) gets the fields it
lacks instead, each distinct such frame encoded once (`deltas.py`). `offer`
never blocks: a connection whose socket takes
the frame at once gets it now, a blocked one keeps only the newest (see
`web/sender.py`).

How a frame reaches a socket is this module's one seam, `Delivery`, chosen once
at start-up (`choose_delivery`): `DirectDelivery` frames each snapshot once and
writes the bytes straight to every socket that takes them at once, through the
`portalpulse.direct_write` extension that `web/uvicorn_ws.py` puts in the ASGI
scope; `AsgiDelivery` sends through each connection's ASGI `send`.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from . import metrics, protocol
from .config import SiteSettings
from .dashboard_feed import dashboard_frame
from .deltas import SiteFields
from .domain import SiteSnapshot

log = logging.getLogger("portalpulse.fanout")

FANOUT_SLICE = 1000
"""Connections written to between two yields to the event loop in one fan-out."""


class Subscriber(Protocol):
    """A local connection that receives a site's frames."""

    def offer(self, frame: str) -> bool:
        """Take the newest frame; never block the caller. True: it went out now."""

    def shut(self, code: int, reason: str = "") -> None:
        """Close the connection (shutting down)."""


class Reader(Subscriber, Protocol):
    """A widget's connection: a v1 client (`want` 0) takes whole snapshot frames,
    one with `want` only the fields it lacks."""

    want: int

    def offer_fields(self, fields: SiteFields, frame_for: Callable[[int, int], str | None]) -> bool:
        """Take what it lacks of the site's newest fields; never block the caller.
        True: a frame went out now."""


@dataclass(slots=True)
class Audience:
    """One site's listeners here, and the last frames they were sent."""

    site: SiteSettings
    fields: SiteFields
    subscribers: set[Reader] = field(default_factory=set)
    watchers: set[Subscriber] = field(default_factory=set)  # editors' dashboards
    frame: str | None = None
    pushed_key: tuple[object, ...] | None = None
    pushed_at: float = 0.0
    dashboard_frame: str | None = None
    dashboard_key: tuple[object, ...] | None = None


class Fanout:
    """Every site's audience on this instance."""

    def __init__(self, sites: Mapping[str, SiteSettings], push_interval: float) -> None:
        self.audiences = {
            site_id: Audience(site, SiteFields(site_id)) for site_id, site in sites.items()
        }
        self.push_interval = push_interval

    def subscribe(self, site_id: str, subscriber: Reader) -> None:
        self.audiences[site_id].subscribers.add(subscriber)

    def unsubscribe(self, site_id: str, subscriber: Reader) -> None:
        self.audiences[site_id].subscribers.discard(subscriber)

    def watch(self, site_id: str, watcher: Subscriber) -> None:
        self.audiences[site_id].watchers.add(watcher)

    def unwatch(self, site_id: str, watcher: Subscriber) -> None:
        self.audiences[site_id].watchers.discard(watcher)

    def listened(self, site_id: str) -> bool:
        """Anyone here listens to the site."""
        audience = self.audiences[site_id]
        return bool(audience.subscribers or audience.watchers)

    def watched(self, site_id: str) -> bool:
        """An editor's dashboard here shows the site (its snapshots need the detail)."""
        return bool(self.audiences[site_id].watchers)

    def shut_all(self, code: int, reason: str) -> None:
        """Close every dashboard (shutting down; readers' connections close by the runtime)."""
        for audience in self.audiences.values():
            for watcher in list(audience.watchers):
                watcher.shut(code, reason)

    async def push(self, site_id: str, snap: SiteSnapshot, now: float) -> bool:
        """Offer the site's snapshot to every reader here, when it changed and
        the last push is at least `push_interval` old. False: put off (too soon)."""
        audience = self.audiences[site_id]
        key = snap.content_key()
        if key == audience.pushed_key:
            return True
        if now - audience.pushed_at < self.push_interval * 0.9:
            return False  # too soon after the last push; the next tick sends it
        frame = audience.frame = protocol.snapshot_frame(snap, audience.site)
        audience.pushed_key, audience.pushed_at = key, now
        started = time.perf_counter()
        fields = audience.fields
        fields.record(snap, audience.site)
        frame_for = fields.grouped()  # each distinct delta encoded once
        subscribers = list(audience.subscribers)
        sent = 0
        for first in range(0, len(subscribers), FANOUT_SLICE):
            if first:
                # Let pongs, beats and new connections in between slices.
                await asyncio.sleep(0)
            for subscriber in subscribers[first : first + FANOUT_SLICE]:
                if subscriber.want:
                    sent += subscriber.offer_fields(fields, frame_for)
                else:
                    sent += subscriber.offer(frame)
        metrics.snapshots_sent.inc(sent)  # once per push: a counter's lock per frame costs
        metrics.push_seconds.observe(time.perf_counter() - started)
        return True

    def push_dashboard(
        self, site_id: str, snap: SiteSnapshot, rising: frozenset[str] = frozenset()
    ) -> None:
        """One dashboard frame per site per tick, whatever the number of editors;
        `rising`: the articles marked rising (rising_webhook.py)."""
        audience = self.audiences[site_id]
        frame, key = dashboard_frame(snap, audience.site, rising)
        audience.dashboard_frame = frame
        if key == audience.dashboard_key:
            return
        audience.dashboard_key = key
        sent = 0
        for watcher in list(audience.watchers):
            sent += watcher.offer(frame)
        metrics.snapshots_sent.inc(sent)

    def current_frame(self, site_id: str, snap: SiteSnapshot | None) -> str | None:
        """The frame of `snap` (the site's latest), for a connection that just said hello."""
        if snap is None:
            return None
        audience = self.audiences[site_id]
        if audience.frame is None or audience.pushed_key != snap.content_key():
            return protocol.snapshot_frame(snap, audience.site)
        return audience.frame

    def current_fields(self, site_id: str, snap: SiteSnapshot | None) -> SiteFields | None:
        """The site's fields as of `snap` (its latest), for a connection with `want`
        that just said hello."""
        if snap is None:
            return None
        audience = self.audiences[site_id]
        audience.fields.record(snap, audience.site)
        return audience.fields

    def current_dashboard(self, site_id: str) -> str | None:
        """The dashboard frame of the last tick, while dashboards here keep it current."""
        audience = self.audiences[site_id]
        return audience.dashboard_frame if audience.watchers else None


# -- the seam: how an offered frame reaches a connection's socket ---------------------

DIRECT_WRITE_EXTENSION = "portalpulse.direct_write"
"""ASGI scope extension: {"write": (frame: bytes) -> bool, "deflate": int}, a whole
server frame written now when the socket takes it at once; "deflate": the window
bits of the connection's permessage-deflate (no server context takeover), 0 when
it has none (see `web/uvicorn_ws.py`)."""
ABORT_EXTENSION = "portalpulse.abort"
"""ASGI scope extension: {"abort": () -> None}, drop the socket without a goodbye."""
TEXT_EXTENSION = "portalpulse.text"
"""ASGI scope extension: {"take": (handler: (text: str) -> bool) -> None}. From then
on the server hands each text message to `handler` as it reads it, when no message
waits in the receive queue; True: handled, False: queued for `receive()` as usual.
A beat then costs no task switch (see `web/websocket.py`)."""


def _extension(scope: Mapping[str, Any], name: str, key: str) -> Any:
    extension = (scope.get("extensions") or {}).get(name) or {}
    return extension.get(key)


def text_handler_of(scope: Mapping[str, Any]) -> Callable[[Callable[[str], bool]], None] | None:
    """The server's way to hand this connection's text messages to a handler as it
    reads them (TEXT_EXTENSION), when it offers one."""
    take: Callable[[Callable[[str], bool]], None] | None = _extension(scope, TEXT_EXTENSION, "take")
    return take


def abort_of(scope: Mapping[str, Any]) -> Callable[[], None] | None:
    """The server's way to drop this connection's socket at once, when it offers one."""
    abort: Callable[[], None] | None = _extension(scope, ABORT_EXTENSION, "abort")
    return abort


class DirectWriter:
    """One connection's direct writes: the same bytes for every connection of a
    site, framed once per distinct frame (and compressed once, for connections
    that negotiated permessage-deflate)."""

    __slots__ = ("_deflate", "_write")

    # A fan-out offers a few distinct strings (the v1 snapshot, a delta per `want`
    # group) to connections in any order: each is framed once per kind of wire.
    _wires: ClassVar[dict[tuple[str, int], bytes]] = {}
    _WIRES_KEPT = 64

    def __init__(self, write: Callable[[bytes], bool], deflate: int = 0) -> None:
        self._write = write
        self._deflate = deflate

    @classmethod
    def wire(cls, text: str, deflate: int = 0) -> bytes:
        """`text` as one whole server frame; with `deflate` (the connection's
        negotiated window bits, permessage-deflate without context takeover), its
        payload compressed when that makes it smaller (RSV1 set), else plain."""
        key = (text, deflate)
        wire = cls._wires.get(key)
        if wire is None:
            payload, first = text.encode(), 0x81
            if deflate:
                packed = compress(payload, deflate)
                if len(packed) < len(payload):
                    payload, first = packed, 0xC1
            if len(cls._wires) >= cls._WIRES_KEPT:
                cls._wires.clear()
            wire = cls._wires[key] = frame_header(first, len(payload)) + payload
        return wire

    def write(self, text: str) -> bool:
        """True when the frame went out; False: use the ASGI path instead."""
        return self._write(self.wire(text, self._deflate))


def frame_header(first: int, size: int) -> bytes:
    """An unmasked server frame's header: `first` is FIN, RSV1 and the opcode."""
    if size < 126:
        return bytes((first, size))
    if size < 65536:
        return struct.pack("!BBH", first, 126, size)
    return struct.pack("!BBQ", first, 127, size)


def compress(payload: bytes, window_bits: int) -> bytes:
    """One message's permessage-deflate payload (RFC 7692 §7.2.1) from a fresh
    compressor: readable by any connection that negotiated
    server_no_context_takeover and at least `window_bits`."""
    encoder = zlib.compressobj(DEFLATE_LEVEL, zlib.DEFLATED, -window_bits, DEFLATE_MEMORY)
    data = encoder.compress(payload) + encoder.flush(zlib.Z_SYNC_FLUSH)
    return data[:-4]  # the sync flush's empty block, 00 00 ff ff, is left out


DEFLATE_LEVEL = 6
DEFLATE_MEMORY = 8
"""zlib's defaults: a frame is compressed once per push for every connection, so
its cost does not grow with readers."""


class Delivery(Protocol):
    """The fan-out's seam, chosen once at start-up (`choose_delivery`)."""

    impl: str
    """"direct" or "asgi": exported as `portalpulse_fanout_info{impl}`."""

    def direct_writer(self, scope: Mapping[str, Any]) -> DirectWriter | None:
        """For a new connection: its direct writer, or None to send through ASGI."""


class AsgiDelivery:
    """Every frame goes through the ASGI `send` of its connection (framed per socket)."""

    impl = "asgi"

    def direct_writer(self, scope: Mapping[str, Any]) -> DirectWriter | None:
        return None


class DirectDelivery:
    """Frames are written straight to each socket that takes them at once; a
    connection whose socket is full, closing or not yet open goes through ASGI."""

    impl = "direct"

    def direct_writer(self, scope: Mapping[str, Any]) -> DirectWriter | None:
        write = _extension(scope, DIRECT_WRITE_EXTENSION, "write")
        if write is None:
            return None
        return DirectWriter(write, _extension(scope, DIRECT_WRITE_EXTENSION, "deflate") or 0)


def choose_delivery(wanted: str, direct_unavailable: str | None) -> Delivery:
    """The delivery for this process: `server.fanout`, unless the direct path cannot
    be served (`direct_unavailable` says why), which is logged loudly."""
    if wanted == "asgi":
        log.info('fan-out: the ASGI path (server.fanout = "asgi")')
        return AsgiDelivery()
    if direct_unavailable is not None:
        log.warning(
            "fan-out: THE DIRECT-WRITE PATH CANNOT BE USED (%s); every snapshot goes "
            "through ASGI, framed once per connection, at several times the CPU per "
            "reader (docs/BENCHMARKS.md). Run `portalpulse serve` with a tested uvicorn.",
            direct_unavailable,
        )
        return AsgiDelivery()
    log.info("fan-out: the direct-write path (each snapshot framed once, written to each socket)")
    return DirectDelivery()
