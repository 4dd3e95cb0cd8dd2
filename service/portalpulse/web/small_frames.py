"""Reading a widget's beat without the general WebSocket parser.

A beat is one small text frame, and most arrive alone in one read. websockets'
parser (a generator per connection, a `Frame`, events) costs several times
what reading such a frame takes; `small_text` reads exactly that case and
nothing else: FIN, opcode text, no extension bit, masked (as every client
frame must be), a length from 1 to 125 in the second byte, and the read holding
that one frame whole. Anything else, including a frame that is not UTF-8,
goes to the general parser (`web/uvicorn_ws.py`).
"""

from __future__ import annotations

try:  # websockets' C unmasking, as its own parser uses when built
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - a build without its C extension
    from websockets.utils import apply_mask


def _parser_state_readable() -> bool:
    """Whether this websockets shows what the short read must check first (a
    message part-read): `current_size` (named `cur_size` before 14) and the
    reader's buffer. If not, every frame takes the general parser."""
    from websockets.server import ServerProtocol

    conn = ServerProtocol()
    return hasattr(conn, "current_size") and isinstance(
        getattr(getattr(conn, "reader", None), "buffer", None), bytearray
    )


SHORT_READS = _parser_state_readable()

WHOLE_TEXT = 0x81  # FIN, no RSV bit (not compressed), opcode 1 (text)
MASKED = 0x80
SMALL = 126  # a length byte below this is the length itself


def small_text(data: bytes) -> str | None:
    """The text of `data` when it is exactly one whole, small, masked text frame;
    None otherwise (the general parser reads it)."""
    if len(data) < 7 or data[0] != WHOLE_TEXT:
        return None
    length = data[1] ^ MASKED
    if not 0 < length < SMALL or len(data) != 6 + length:  # unmasked: length >= 128
        return None
    try:
        return apply_mask(data[6:], data[2:6]).decode()
    except UnicodeDecodeError:
        return None
