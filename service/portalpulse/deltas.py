"""What a connection with `want` (CONTRACT §3a) is sent. No I/O here.

A site's latest snapshot is kept as four fields (online, today, total,
trending), each with the sequence number of its last change. A connection
remembers the sequence number it was last brought up to (`synced`); what it
lacks is then the wanted fields changed after that, whatever it missed in
between (a skipped push, a conflated frame). So the frame a connection needs
depends only on (its want, its `synced`), which nearly all connections of a
site share: the fan-out encodes each distinct frame once per change, not once
per connection.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from .config import SiteSettings
from .domain import SiteSnapshot
from .protocol import WANTABLE, dumps, snapshot_payload

ONLINE, TODAY, TOTAL, TRENDING = (1 << i for i in range(len(WANTABLE)))
BITS = dict(zip(WANTABLE, (ONLINE, TODAY, TOTAL, TRENDING), strict=True))
NEVER = -1
"""`synced` of a connection that has had no snapshot yet: it lacks every field."""

# The order fields have in a v1 snapshot, kept in deltas so both read alike.
_FRAME_ORDER = (ONLINE, TRENDING, TODAY, TOTAL)


def want_mask(want: Iterable[str]) -> int:
    """The bits of the named fields (names already checked by `protocol`)."""
    mask = 0
    for name in want:
        mask |= BITS[name]
    return mask


class SiteFields:
    """One site's latest snapshot as versioned fields, and its delta frames."""

    __slots__ = ("_changed_at", "_fragments", "_frames", "_head", "_ts", "_values", "seq")

    def __init__(self, site: str) -> None:
        self.seq = 0  # 0: nothing recorded yet
        self._head = '{"type":"snapshot","site":' + json.dumps(site) + ","
        self._values: dict[int, object] = {}
        self._fragments: dict[int, str] = {}
        self._changed_at = dict.fromkeys(BITS.values(), 0)
        self._frames: dict[int, str] = {}  # mask -> frame at this `seq`
        self._ts = ""

    def record(self, snap: SiteSnapshot, site: SiteSettings) -> int:
        """Take the site's newest snapshot. Returns the bits of the fields that
        changed (0: nothing new for anybody)."""
        values: dict[int, object] = {
            ONLINE: snap.online,
            TODAY: snap.today,
            TOTAL: snap.total_visits,
            TRENDING: snap.trending,
        }
        changed = 0
        for bit, value in values.items():
            if bit not in self._values or self._values[bit] != value:
                changed |= bit
        if not changed:
            return 0
        self.seq += 1
        self._frames = {}
        payload = snapshot_payload(snap, site)
        self._ts = dumps(payload["ts"])
        for bit in _FRAME_ORDER:
            if changed & bit:
                self._values[bit] = values[bit]
                self._fragments[bit] = _fragment(bit, payload)
                self._changed_at[bit] = self.seq
        return changed

    def missing(self, want: int, synced: int) -> int:
        """The wanted fields changed after `synced`."""
        if synced >= self.seq:
            return 0
        changed_at = self._changed_at
        return sum(bit for bit in BITS.values() if want & bit and changed_at[bit] > synced)

    def frame(self, mask: int) -> str:
        """The snapshot frame carrying exactly the fields in `mask`, encoded once per `seq`."""
        frame = self._frames.get(mask)
        if frame is None:
            fields = ",".join(self._fragments[bit] for bit in _FRAME_ORDER if mask & bit)
            frame = self._frames[mask] = f'{self._head}{fields},"ts":{self._ts}}}'
        return frame

    def frame_for(self, want: int, synced: int) -> str | None:
        """What a connection with `want`, brought up to `synced`, must be sent now."""
        if not self.seq:
            return None
        mask = self.missing(want, synced)
        return self.frame(mask) if mask else None

    def grouped(self) -> Callable[[int, int], str | None]:
        """`frame_for`, remembered per (want, synced) for one fan-out: connections
        that share both get the same string, looked up once."""
        known: dict[tuple[int, int], str | None] = {}

        def lookup(want: int, synced: int) -> str | None:
            key = (want, synced)
            if key not in known:
                known[key] = self.frame_for(want, synced)
            return known[key]

        return lookup


def _fragment(bit: int, payload: dict[str, Any]) -> str:
    if bit == ONLINE:
        return '"online":' + dumps(payload["online"])
    if bit == TODAY:
        return '"today":' + dumps(payload["today"])
    if bit == TOTAL:
        return '"total_visits":' + dumps(payload["total_visits"])
    return '"trending":' + dumps(payload["trending"])
