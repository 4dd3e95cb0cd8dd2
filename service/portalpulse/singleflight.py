"""At most one call in flight per key: callers that arrive meanwhile wait for it.

A reconnect storm on a cold instance asks for the same site's snapshot thousands
of times at once; one store read answers them all, so the storm costs the store
one round trip per site instead of one per newcomer (and never exhausts the
connection pool).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SingleFlight(Generic[K, V]):
    """Shares one running call per key among every caller that asks while it runs.

    Every caller gets the call's result, or its exception. A caller that is
    cancelled leaves the call running for the others. Once the call ends, the
    key is free: the next caller starts a new one (nothing is cached here).
    The map holds only calls in flight, so its size is bounded by the keys
    callers use at once (here: configured site ids).
    """

    __slots__ = ("_flights",)

    def __init__(self) -> None:
        self._flights: dict[K, asyncio.Future[V]] = {}

    def in_flight(self, key: K) -> bool:
        return key in self._flights

    async def run(self, key: K, call: Callable[[], Awaitable[V]]) -> V:
        flight = self._flights.get(key)
        if flight is None:
            flight = asyncio.ensure_future(call())
            self._flights[key] = flight
            flight.add_done_callback(lambda done: self._landed(key, done))
        # shield: one waiter's cancellation must not cancel the call the others wait on.
        return await asyncio.shield(flight)

    def _landed(self, key: K, flight: asyncio.Future[V]) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]
