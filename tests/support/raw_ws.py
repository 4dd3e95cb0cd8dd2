"""A WebSocket client made of a bare socket: it can stop reading, which no library client does."""

from __future__ import annotations

import base64
import json
import os
import socket
import time

from support.client import page, visitor_id


def masked_text(text: str) -> bytes:
    data, mask = text.encode(), os.urandom(4)
    size = len(data)
    header = bytes((0x81, 0x80 | size)) if size < 126 else bytes((0x81, 0xFE)) + size.to_bytes(2)
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data))


def stalled_reader(port: int, origin: str = "https://portal.example") -> socket.socket:
    """Open /ws, say hello, and from then on read nothing."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(5)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET /ws?site=demo HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        f"Origin: {origin}\r\n\r\n".encode()
    )
    head = b""
    while not head.endswith(b"\r\n\r\n"):  # byte by byte: no frame is read
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    hello = {"type": "hello", "visitor": visitor_id(), "pages": [page("/tin/cham.html")]}
    sock.sendall(masked_text(json.dumps(hello)))
    return sock


def read_until_closed(sock: socket.socket, within: float) -> bool:
    """Drain what the service sent; True when it ended the connection."""
    deadline = time.monotonic() + within
    sock.settimeout(0.5)
    while time.monotonic() < deadline:
        try:
            if not sock.recv(65536):
                return True
        except TimeoutError:
            continue
        except ConnectionResetError:
            return True
    return False
