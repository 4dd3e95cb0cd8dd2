"""The short way a beat is read (web/small_frames.py) agrees with websockets'
own parser: for any bytes a client may send, it either leaves them to the
parser or reads exactly the one text message the parser would."""

from __future__ import annotations

import os

from hypothesis import given
from hypothesis import strategies as st
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.server import ServerProtocol

from portalpulse.web.small_frames import SHORT_READS, apply_mask, small_text

HANDSHAKE = (
    b"GET /ws?site=s HTTP/1.1\r\nHost: example.test\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n\r\n"
)


def parsed(data: bytes) -> list[Frame] | None:
    """The frames websockets reads from `data` on an open server connection; None
    when it fails the connection."""
    server = ServerProtocol()
    server.receive_data(HANDSHAKE)
    (request,) = server.events_received()
    server.send_response(server.accept(request))
    assert server.state is State.OPEN
    server.receive_data(data)
    if server.parser_exc is not None:
        return None
    return [e for e in server.events_received() if isinstance(e, Frame)]


def client_frame(payload: bytes, first: int = 0x81, mask: bytes | None = None) -> bytes:
    mask = os.urandom(4) if mask is None else mask
    return bytes([first, 0x80 | len(payload)]) + mask + apply_mask(payload, mask)


@given(st.text(max_size=60))
def test_a_small_text_frame_is_read_as_the_parser_reads_it(text: str) -> None:
    payload = text.encode()
    if not 0 < len(payload) <= 125:
        return
    frame = client_frame(payload)
    assert small_text(frame) == text
    frames = parsed(frame)
    assert frames is not None and len(frames) == 1
    assert frames[0].opcode is Opcode.TEXT and frames[0].data == payload


def near_frames() -> st.SearchStrategy[bytes]:
    """Bytes shaped like a client frame, each part free to be wrong."""
    return st.builds(
        lambda first, second, mask, payload, extra: bytes([first, second]) + mask + payload + extra,
        st.one_of(st.sampled_from([0x81, 0x01, 0xC1, 0x89, 0x88, 0x82]), st.integers(0, 255)),
        st.one_of(st.integers(0x80, 0x80 + 127), st.integers(0, 255)),
        st.binary(min_size=4, max_size=4),
        st.one_of(st.text(max_size=40).map(str.encode), st.binary(max_size=130)),
        st.one_of(st.just(b""), st.binary(max_size=3)),
    )


@given(st.one_of(st.binary(max_size=140), near_frames()))
def test_any_other_bytes_are_left_to_the_parser_or_read_alike(data: bytes) -> None:
    text = small_text(data)
    if text is None:
        return
    frames = parsed(data)
    assert frames is not None and len(frames) == 1
    assert frames[0].opcode is Opcode.TEXT and frames[0].fin
    assert frames[0].data.decode() == text


def test_what_the_short_way_leaves_to_the_parser() -> None:
    beat = b'{"type":"beat","engaged":true}'
    assert small_text(client_frame(beat)) is not None
    assert small_text(client_frame(beat, first=0x01)) is None  # a first fragment
    assert small_text(client_frame(beat, first=0xC1)) is None  # compressed (RSV1)
    assert small_text(client_frame(beat, first=0x89)) is None  # a ping
    assert small_text(client_frame(beat, first=0x88)) is None  # a close
    assert small_text(client_frame(beat) * 2) is None  # two frames in one read
    assert small_text(client_frame(beat)[:-1]) is None  # part of one
    unmasked = bytes([0x81, len(beat)]) + beat
    assert small_text(unmasked) is None
    assert small_text(client_frame(b"\xff\xfe")) is None  # not UTF-8
    assert small_text(client_frame(b"")) is None  # empty


def test_the_websockets_tested_here_shows_its_parser_state() -> None:
    # Else beats would all take the general parser: correct, but slower.
    assert SHORT_READS
