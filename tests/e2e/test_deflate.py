"""permessage-deflate with raw WebSocket clients: a client that offers it gets
compressed frames (RSV1) that inflate to the JSON a plain client gets; a client
that does not offer it gets plain frames; v1 clients likewise. On both fan-out
paths, and off when `server.ws_deflate = false`."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

import pytest

from support.client import Reader, page, visitor_id
from support.processes import DEMO_SITE, FAST_TIMING

PUSH = 0.5  # FAST_TIMING's push_interval
OFFER = "permessage-deflate; client_max_window_bits"


@dataclass
class RawFrame:
    compressed: bool
    opcode: int
    wire: int  # bytes on the wire: header and payload
    text: str


@dataclass(eq=False)
class RawClient:
    """A WebSocket client by hand, to see each frame's RSV1 bit and wire size."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    extensions: str
    frames: list[RawFrame] = field(default_factory=list)

    @classmethod
    async def open(cls, port: int, offer: str | None, hello: dict[str, Any]) -> RawClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        key = base64.b64encode(os.urandom(16)).decode()
        offered = f"Sec-WebSocket-Extensions: {offer}\r\n" if offer else ""
        writer.write(
            (
                f"GET /ws?site=demo HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                f"Origin: http://localhost:8000\r\n{offered}\r\n"
            ).encode()
        )
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        assert head.startswith("HTTP/1.1 101"), head
        extensions = ""
        for line in head.split("\r\n")[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "sec-websocket-extensions":
                extensions = value.strip()
        client = cls(reader, writer, extensions)
        client.send(json.dumps(hello))
        return client

    def send(self, text: str, compress: bool = False) -> None:
        """A masked text frame, plain or (where negotiated) compressed."""
        payload, mask, first = text.encode(), os.urandom(4), 0x81
        if compress:
            encoder = zlib.compressobj(6, zlib.DEFLATED, -15)
            payload = (encoder.compress(payload) + encoder.flush(zlib.Z_SYNC_FLUSH))[:-4]
            first = 0xC1
        size = len(payload)
        head = bytes((first, 0x80 | size)) if size < 126 else struct.pack("!BBH", first, 254, size)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.writer.write(head + mask + masked)

    async def read(self) -> RawFrame:
        first, second = await self.reader.readexactly(2)
        size, header = second & 0x7F, 2
        if size == 126:
            size, header = struct.unpack("!H", await self.reader.readexactly(2))[0], 4
        elif size == 127:
            size, header = struct.unpack("!Q", await self.reader.readexactly(8))[0], 10
        payload = await self.reader.readexactly(size)
        compressed, opcode = bool(first & 0x40), first & 0x0F
        if opcode == 9:  # a ping (the server's keepalive): pong, masked with a zero key
            self.writer.write(bytes((0x8A, 0x80 | size)) + b"\0\0\0\0" + payload)
            return await self.read()
        if compressed:  # no context takeover: each message inflates on its own
            payload = zlib.decompressobj(-15).decompress(payload + b"\x00\x00\xff\xff")
        frame = RawFrame(compressed, opcode, header + size, payload.decode(errors="replace"))
        self.frames.append(frame)
        return frame

    async def snapshot(self, timeout: float) -> tuple[RawFrame, dict[str, Any]]:
        async with asyncio.timeout(timeout):
            while True:
                frame = await self.read()
                if frame.opcode == 1 and json.loads(frame.text)["type"] == "snapshot":
                    return frame, json.loads(frame.text)

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


def hello(**extra: Any) -> dict[str, Any]:
    return {"type": "hello", "visitor": visitor_id(), "pages": [page("/a", "Tin")], **extra}


@pytest.mark.parametrize("fanout", ["direct", "asgi"])
async def test_a_client_offering_deflate_gets_compressed_frames_of_the_same_json(
    make_service, fanout: str
) -> None:
    service = make_service(fanout=fanout)
    want = ["online", "today", "total", "trending"]
    packed = await RawClient.open(service.port, OFFER, hello(want=want))
    plain = await RawClient.open(service.port, None, hello(want=want))
    v1_packed = await RawClient.open(service.port, OFFER, hello())
    v1_plain = await RawClient.open(service.port, None, hello())

    assert "permessage-deflate" in packed.extensions
    assert "server_no_context_takeover" in packed.extensions
    assert "client_no_context_takeover" in packed.extensions
    assert plain.extensions == v1_plain.extensions == ""

    # Each client's frames until all four are here: the same JSON, packed or not.
    async def until_four(client: RawClient) -> list[dict[str, Any]]:
        seen = []
        while not seen or seen[-1].get("online", 0) < 4:
            seen.append((await client.snapshot(PUSH + 2))[1])
        return seen

    got = {c: await until_four(c) for c in (packed, plain, v1_packed, v1_plain)}
    assert got[packed][-1] == got[plain][-1]
    assert got[v1_packed][-1] == got[v1_plain][-1]
    assert set(got[v1_packed][-1]) >= {"trending", "today", "total_visits", "online"}

    # The big frames went compressed, and smaller on the wire, only where offered.
    assert all(not f.compressed for f in plain.frames + v1_plain.frames)
    whole_packed = [f for f in v1_packed.frames if f.compressed and "trending" in f.text]
    whole_plain = [f for f in v1_plain.frames if "trending" in f.text]
    assert whole_packed and whole_plain
    assert whole_packed[-1].wire < whole_plain[-1].wire
    # A frame deflate does not shrink goes plain (RSV1 clear), which a client reads too.
    for frame in packed.frames:
        size = len(frame.text.encode())
        assert frame.wire <= size + (2 if size < 126 else 4), frame

    # A compressed beat is read: it changes the page (a view, trending).
    beat = {"type": "beat", "engaged": True, "pages": [page("/b", "Mới")]}
    packed.send(json.dumps(beat), compress=True)
    while True:
        _, snapshot = await plain.snapshot(PUSH + 2)
        if "/b" in {t["path"] for t in snapshot.get("trending", [])}:
            break
    for client in (packed, plain, v1_packed, v1_plain):
        await client.close()


async def test_a_library_client_with_deflate_reads_every_frame(make_service) -> None:
    """websockets offers permessage-deflate by default and checks RSV1 and the
    negotiated parameters itself: the suite's `Reader` is such a client."""
    service = make_service()
    reader = await Reader.open(service.ws_url, pages=[page("/a")], want=["online"])
    other = await Reader.open(service.ws_url, pages=[page("/a")])
    await reader.wait_for(lambda s: s.get("online") == 2, PUSH + 2)
    assert reader.ws.protocol.extensions, "websockets negotiated no extension"
    await other.close()
    await reader.wait_for(lambda s: s.get("online") == 1, 3 * PUSH + 3)
    await reader.close()


async def test_with_deflate_off_nobody_gets_it(make_service) -> None:
    config = FAST_TIMING.replace("[server]", "[server]\nws_deflate = false", 1) + DEMO_SITE
    service = make_service(config=config)
    client = await RawClient.open(service.port, OFFER, hello(want=["online"]))
    assert client.extensions == ""
    snapshot: dict[str, Any] = {}
    while snapshot.get("online") != 1:
        _, snapshot = await client.snapshot(PUSH + 2)
    assert client.frames and not any(f.compressed for f in client.frames)
    await client.close()
