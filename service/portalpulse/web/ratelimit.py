"""A bound on HTTP beats per client address: token buckets, forgotten when idle."""

from __future__ import annotations

import time


class AddressRate:
    """At most `rate` requests a second per address, in bursts of twice that."""

    __slots__ = ("_buckets", "_swept", "rate")

    FORGET_AFTER = 60.0

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._buckets: dict[str, tuple[float, float]] = {}  # address -> (allowance, when)
        self._swept = float("-inf")

    def allow(self, address: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        burst = 2 * self.rate
        allowance, when = self._buckets.get(address, (burst, now))
        allowance = min(burst, allowance + (now - when) * self.rate)
        allowed = allowance >= 1.0
        self._buckets[address] = (allowance - 1.0 if allowed else allowance, now)
        if now - self._swept > self.FORGET_AFTER:
            self._sweep(now)
        return allowed

    def _sweep(self, now: float) -> None:
        # Once a minute: an address idle that long has a full bucket anyway.
        self._swept = now
        idle = [a for a, (_, when) in self._buckets.items() if now - when > self.FORGET_AFTER]
        for address in idle:
            del self._buckets[address]
