"""One call in flight per key: callers that come meanwhile share its result."""

from __future__ import annotations

import asyncio

import pytest

from portalpulse.singleflight import SingleFlight


class Store:
    """A slow read that counts how often it really ran."""

    def __init__(self, fail: bool = False) -> None:
        self.calls = 0
        self.fail = fail
        self.release = asyncio.Event()

    async def read(self) -> int:
        self.calls += 1
        await self.release.wait()
        if self.fail:
            raise ConnectionError("store down")
        return self.calls


async def test_a_thousand_callers_share_one_call() -> None:
    flights: SingleFlight[str, int] = SingleFlight()
    store = Store()
    waiting = [asyncio.create_task(flights.run("demo", store.read)) for _ in range(1000)]
    await asyncio.sleep(0)
    assert flights.in_flight("demo")
    store.release.set()
    assert await asyncio.gather(*waiting) == [1] * 1000
    assert store.calls == 1
    assert not flights.in_flight("demo")


async def test_keys_fly_apart_and_a_finished_call_is_not_cached() -> None:
    flights: SingleFlight[str, int] = SingleFlight()
    store = Store()
    store.release.set()
    assert await asyncio.gather(flights.run("a", store.read), flights.run("b", store.read)) == [
        1,
        2,
    ]
    assert await flights.run("a", store.read) == 3


async def test_every_caller_gets_the_error_and_the_next_caller_tries_again() -> None:
    flights: SingleFlight[str, int] = SingleFlight()
    store = Store(fail=True)
    waiting = [asyncio.create_task(flights.run("demo", store.read)) for _ in range(10)]
    await asyncio.sleep(0)
    store.release.set()
    results = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)
    assert store.calls == 1
    store.fail = False
    assert await flights.run("demo", store.read) == 2


async def test_a_cancelled_caller_does_not_cancel_the_others() -> None:
    flights: SingleFlight[str, int] = SingleFlight()
    store = Store()
    impatient = asyncio.create_task(flights.run("demo", store.read))
    patient = asyncio.create_task(flights.run("demo", store.read))
    await asyncio.sleep(0)
    impatient.cancel()
    with pytest.raises(asyncio.CancelledError):
        await impatient
    store.release.set()
    assert await patient == 1
