"""A minimal WebSocket client on a bare asyncio Protocol, for the load generator.

Ten thousand connections of a full client library cost more CPU than the
service they measure. This one does only what a widget needs: the opening
handshake by hand, masked client frames (text, pong, close), and server
frames parsed in place (text, ping, close). Servers never mask nor, for
frames this small, fragment; a frame that breaks those assumptions closes
the connection as a protocol error (1002), which the harness reports.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import struct
import time
import zlib

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA

NO_STATUS = 1005
ABNORMAL = 1006
PROTOCOL_ERROR = 1002


def mask_payload(payload: bytes, key: bytes) -> bytes:
    """XOR `payload` with the 4-byte `key` repeated (RFC 6455 §5.3)."""
    n = len(payload)
    if n == 0:
        return b""
    stream = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(stream, "little")).to_bytes(
        n, "little"
    )


def client_frame(opcode: int, payload: bytes, rsv1: bool = False) -> bytes:
    """One final, masked client frame (`rsv1`: its payload is compressed)."""
    key = os.urandom(4)
    n = len(payload)
    first = 0x80 | (0x40 if rsv1 else 0) | opcode
    if n < 126:
        head = struct.pack("!BB", first, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", first, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", first, 0x80 | 127, n)
    return head + key + mask_payload(payload, key)


DEFLATE_OFFER = "permessage-deflate; client_max_window_bits"
"""What Chromium offers; the service answers without context takeover either way."""


def deflate(payload: bytes) -> bytes:
    """A message compressed as a browser does (a fresh compressor: no context takeover)."""
    encoder = zlib.compressobj(6, zlib.DEFLATED, -15)
    return (encoder.compress(payload) + encoder.flush(zlib.Z_SYNC_FLUSH))[:-4]


def inflate(payload: bytes) -> bytes:
    return zlib.decompressobj(-15).decompress(payload + b"\x00\x00\xff\xff")


def handshake_request(
    host: str, port: int, path: str, origin: str, offer: str | None = None
) -> tuple[bytes, bytes]:
    """The HTTP upgrade request, and the Sec-WebSocket-Accept it must be answered with."""
    key = base64.b64encode(os.urandom(16))
    accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
    request = (
        f"GET {path} HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key.decode()}\r\n"
        "Sec-WebSocket-Version: 13\r\n"
        f"Origin: {origin}\r\n"
        + (f"Sec-WebSocket-Extensions: {offer}\r\n" if offer else "")
        + "User-Agent: portalpulse-bench\r\n"
        "\r\n"
    ).encode()
    return request, accept


class WsClient(asyncio.Protocol):
    """One client connection. Subclasses override the `on_*` hooks.

    `on_text(payload, received_at)` gets each text frame with the wall-clock
    time at which its bytes arrived (taken once per read, before any parsing).
    """

    def __init__(
        self, host: str, port: int, path: str, origin: str, offer_deflate: bool = False
    ) -> None:
        self.transport: asyncio.Transport | None = None
        offer = DEFLATE_OFFER if offer_deflate else None
        self._request, self._accept = handshake_request(host, port, path, origin, offer)
        self.deflate = False  # negotiated: frames may come compressed, ours go compressed
        self._buf = bytearray()
        self.upgraded = False
        self.open = False
        self.close_code: int | None = None  # set once the connection is over
        self.handshake_status: int | None = None
        self.pings = 0
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    # -- asyncio.Protocol ---------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        now = time.time()
        if not self.upgraded:
            self._buf += data
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head, rest = bytes(self._buf[:end]), bytes(self._buf[end + 4 :])
            self._buf.clear()
            if not self._check_handshake(head):
                return
            data = rest
            if not data:
                return
        if not self._buf and self._whole_frame(data, now):
            return  # the common case: exactly one frame in one read
        self._buf += data
        self._parse(now)

    def connection_lost(self, exc: Exception | None) -> None:
        self.open = False
        if self.close_code is None:
            self.close_code = ABNORMAL
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(self._failure()))
        self.on_closed()

    # -- handshake ----------------------------------------------------------------

    def _check_handshake(self, head: bytes) -> bool:
        lines = head.split(b"\r\n")
        try:
            self.handshake_status = int(lines[0].split()[1])
        except (IndexError, ValueError):
            self.handshake_status = 0
        accept = b""
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"sec-websocket-accept":
                accept = value.strip()
            if name.strip().lower() == b"sec-websocket-extensions":
                self.deflate = b"permessage-deflate" in value
        if self.handshake_status != 101 or accept != self._accept:
            self.close_code = ABNORMAL
            self.abort()
            return False
        self.upgraded = self.open = True
        self.ready.set_result(None)
        self.on_open()
        return True

    def _failure(self) -> str:
        if self.handshake_status is None:
            return "no handshake answer"
        return f"handshake status {self.handshake_status}"

    # -- frames in -----------------------------------------------------------------

    def _whole_frame(self, data: bytes, now: float) -> bool:
        """Handle `data` when it is exactly one short unfragmented frame."""
        n = len(data)
        if n < 2:
            return False
        b0, b1 = data[0], data[1]
        length = b1 & 0x7F
        if b1 & 0x80 or not b0 & 0x80:
            return False
        if length < 126:
            head = 2
        elif length == 126 and n >= 4:
            head, length = 4, (data[2] << 8) | data[3]
        else:
            return False
        if head + length != n:
            return False
        self._frame(b0, data[head:], now)
        return True

    def _parse(self, now: float) -> None:
        buf = self._buf
        while self.open and len(buf) >= 2:
            b0, b1 = buf[0], buf[1]
            if b1 & 0x80 or not b0 & 0x80:
                self._fail()
                return
            length, head = b1 & 0x7F, 2
            if length == 126:
                if len(buf) < 4:
                    return
                length, head = struct.unpack_from("!H", buf, 2)[0], 4
            elif length == 127:
                if len(buf) < 10:
                    return
                length, head = struct.unpack_from("!Q", buf, 2)[0], 10
            if len(buf) < head + length:
                return
            payload = bytes(buf[head : head + length])
            del buf[: head + length]
            self._frame(b0, payload, now)

    def _frame(self, b0: int, payload: bytes, now: float) -> None:
        opcode = b0 & 0x0F
        if opcode == OP_TEXT:
            if b0 & 0x40:
                if not self.deflate:
                    self._fail()
                    return
                payload = inflate(payload)
            self.on_text(payload, now)
        elif opcode == OP_PING:
            self.pings += 1
            self._write(OP_PONG, payload)
        elif opcode == OP_CLOSE:
            code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else NO_STATUS
            self.close_code = code
            self._write(OP_CLOSE, payload[:2])
            self.open = False
            if self.transport is not None:
                self.transport.close()
        elif opcode in (OP_CONT, OP_BINARY):
            self._fail()

    def _fail(self) -> None:
        self.close_code = PROTOCOL_ERROR
        self.abort()

    # -- frames out ----------------------------------------------------------------

    def _write(self, opcode: int, payload: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(client_frame(opcode, payload))

    def send_text(self, text: str) -> None:
        if self.open and self.deflate:
            if self.transport is not None and not self.transport.is_closing():
                self.transport.write(client_frame(OP_TEXT, deflate(text.encode()), rsv1=True))
        elif self.open:
            self._write(OP_TEXT, text.encode())

    def close(self, code: int = 1000) -> None:
        """Start the closing handshake; the socket is aborted if still open later."""
        if self.open:
            self.open = False
            self._write(OP_CLOSE, struct.pack("!H", code))
        self._abort_later()

    def _abort_later(self) -> None:
        asyncio.get_running_loop().call_later(2.0, self.abort)

    def abort(self) -> None:
        """Drop the connection at once, without a closing handshake."""
        self.open = False
        if self.transport is not None:
            self.transport.abort()

    # -- hooks ---------------------------------------------------------------------

    def on_open(self) -> None:
        """The handshake succeeded."""

    def on_text(self, payload: bytes, received_at: float) -> None:
        """A text frame arrived."""

    def on_closed(self) -> None:
        """The connection is over; `close_code` says how."""
