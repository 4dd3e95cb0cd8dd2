"""Rate and count bounds: the one token bucket (messages a second on a WebSocket,
HTTP beats a second per client address) and open WebSockets per address.

Each map keyed by address holds at most `MAX_ADDRESSES` addresses, so a client
with many addresses cannot grow this process's memory without bound. No I/O.
"""

from __future__ import annotations

import time

from . import metrics

MAX_ADDRESSES = 10_000
"""Entries per map, at most (addresses are at most 45 characters: ~2 MB a map)."""


class TokenBucket:
    """`burst` requests at once, then `rate` a second: each request takes a token,
    and tokens come back at `rate` a second up to `burst`.

    Two floats: one per WebSocket, where a deque of times would cost ~600 bytes.
    The owner keeps `rate` and `burst` (the same for all its buckets)."""

    __slots__ = ("tokens", "when")

    def __init__(self, burst: float, now: float) -> None:
        self.tokens = float(burst)
        self.when = now

    def take(self, now: float, rate: float, burst: float) -> bool:
        """Take a token at `now`: False (nothing taken) when none is left."""
        self.tokens = min(burst, self.tokens + (now - self.when) * rate)
        self.when = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


class AddressRate:
    """At most `rate` requests a second per address, in bursts of twice that.

    Past `max_addresses` the address heard from longest ago is forgotten: it gets a
    full bucket if it comes back, so the cap can only make the limit more lenient
    for an address, never refuse one that is within it."""

    __slots__ = ("_buckets", "_swept", "max_addresses", "rate")

    FORGET_AFTER = 60.0

    def __init__(self, rate: float, max_addresses: int = MAX_ADDRESSES) -> None:
        self.rate = rate
        self.max_addresses = max_addresses
        # address -> its bucket, least recently heard first.
        self._buckets: dict[str, TokenBucket] = {}
        self._swept = float("-inf")

    def allow(self, address: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        burst = 2 * self.rate
        bucket = self._buckets.pop(address, None) or TokenBucket(burst, now)
        allowed = bucket.take(now, self.rate, burst)
        self._buckets[address] = bucket
        if len(self._buckets) > self.max_addresses:
            del self._buckets[next(iter(self._buckets))]
        if now - self._swept > self.FORGET_AFTER:
            self._sweep(now)
        metrics.tracked_addresses.labels("http_beats").set(len(self._buckets))
        return allowed

    def _sweep(self, now: float) -> None:
        # Once a minute: an address idle that long has a full bucket anyway. The
        # map is in the order addresses were last heard, so the idle ones lead.
        self._swept = now
        for address, bucket in list(self._buckets.items()):
            if now - bucket.when <= self.FORGET_AFTER:
                break
            del self._buckets[address]

    def __len__(self) -> int:
        return len(self._buckets)


class AddressCounts:
    """Open connections per address, at most `limit` each. An entry lives while its
    address has a connection open; past `max_addresses` a new address is refused
    (1013, retry later), as an instance with that many clients is overloaded anyway."""

    __slots__ = ("_counts", "limit", "max_addresses")

    def __init__(self, limit: int, max_addresses: int = MAX_ADDRESSES * 10) -> None:
        self.limit = limit
        self.max_addresses = max_addresses
        self._counts: dict[str, int] = {}

    def open(self, address: str) -> bool:
        """Count a new connection from `address`; False (not counted) when refused."""
        count = self._counts.get(address, 0)
        if count >= self.limit or (count == 0 and len(self._counts) >= self.max_addresses):
            return False
        self._counts[address] = count + 1
        metrics.tracked_addresses.labels("ws_connections").set(len(self._counts))
        return True

    def close(self, address: str) -> None:
        count = self._counts.get(address, 0) - 1
        if count > 0:
            self._counts[address] = count
        else:
            self._counts.pop(address, None)
        metrics.tracked_addresses.labels("ws_connections").set(len(self._counts))

    def __getitem__(self, address: str) -> int:
        return self._counts.get(address, 0)

    def __len__(self) -> int:
        return len(self._counts)
