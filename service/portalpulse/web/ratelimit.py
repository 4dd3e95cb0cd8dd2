"""Bounds per client address: HTTP beats a second (token buckets, forgotten when
idle) and open WebSockets. Each map holds at most `MAX_ADDRESSES` addresses, so a
client with many addresses cannot grow this process's memory without bound."""

from __future__ import annotations

import time

from .. import metrics

MAX_ADDRESSES = 10_000
"""Entries per map, at most (addresses are at most 45 characters: ~2 MB a map)."""


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
        # address -> (allowance, when), least recently heard first.
        self._buckets: dict[str, tuple[float, float]] = {}
        self._swept = float("-inf")

    def allow(self, address: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        burst = 2 * self.rate
        allowance, when = self._buckets.pop(address, (burst, now))
        allowance = min(burst, allowance + (now - when) * self.rate)
        allowed = allowance >= 1.0
        self._buckets[address] = (allowance - 1.0 if allowed else allowance, now)
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
        for address, (_, when) in list(self._buckets.items()):
            if now - when <= self.FORGET_AFTER:
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
