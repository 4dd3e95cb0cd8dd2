"""The fan-out's framing: the bytes written straight to sockets are valid WebSocket frames."""

from __future__ import annotations

import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from portalpulse.fanout import DirectWriter


def parse(data: bytes) -> Frame:
    reader = StreamReader()
    reader.feed_data(data)
    parser = Frame.parse(reader.read_exact, mask=False)
    try:
        next(parser)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    raise AssertionError("incomplete frame")


@pytest.mark.parametrize("size", [0, 1, 125, 126, 1000, 65535, 65536, 100_000])
def test_wire_frames_are_unmasked_text_frames_of_any_size(size: int) -> None:
    text = ("ạ" * size)[:size]
    frame = parse(DirectWriter.wire(text))
    assert frame.opcode is Opcode.TEXT and frame.fin
    assert frame.data.decode() == text


def test_one_string_is_framed_once() -> None:
    text = '{"type":"snapshot","online":1011}'
    first = DirectWriter.wire(text)
    assert DirectWriter.wire(text) is first
    assert DirectWriter.wire(text + " ") is not first


@pytest.mark.parametrize("bits", [9, 12, 15])
def test_deflated_frames_inflate_to_the_text_and_are_compressed_once(bits: int) -> None:
    import json
    import zlib

    text = json.dumps({"type": "snapshot", "trending": [{"title": "Tin nóng"}] * 40})
    wire = DirectWriter.wire(text, bits)
    assert wire[0] == 0xC1  # FIN, RSV1 (compressed), text
    size = wire[1]
    assert size < 126
    inflated = zlib.decompressobj(-bits).decompress(wire[2:] + b"\x00\x00\xff\xff")
    assert size == len(wire) - 2 and inflated.decode() == text and len(wire) < len(text)
    assert DirectWriter.wire(text, bits) is wire  # once for every connection
    assert DirectWriter.wire(text) == DirectWriter.wire(text, 0) != wire


def test_a_frame_deflate_does_not_shrink_goes_plain() -> None:
    text = '{"online":7}'
    frame = parse(DirectWriter.wire(text, 15))
    assert not frame.rsv1 and frame.data.decode() == text


def test_address_rate_allows_bursts_then_the_rate_and_forgets_idle_addresses() -> None:
    from portalpulse.limiter import AddressRate

    limit = AddressRate(rate=5)
    allowed = [limit.allow("10.0.0.1", now=100.0) for _ in range(12)]
    assert allowed.count(True) == 10  # a burst of twice the rate
    assert limit.allow("10.0.0.2", now=100.0), "addresses are counted apart"
    assert not limit.allow("10.0.0.1", now=100.1)
    assert limit.allow("10.0.0.1", now=100.3)  # 1.5 tokens back after 0.3 s
    limit.allow("10.0.0.3", now=200.0)  # a minute later: the idle ones are swept
    assert set(limit._buckets) == {"10.0.0.3"}
