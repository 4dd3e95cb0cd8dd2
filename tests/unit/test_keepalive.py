"""One keepalive timer for every WebSocket (web/uvicorn_ws.Keepalive): each
connection is called in its slot, a ping never later than its interval and a
pong deadline never before its timeout, and a connection removed is not called."""

from __future__ import annotations

from typing import Any, cast

from portalpulse.web.uvicorn_ws import Keepalive, PulseWebSocketProtocol


class Timer:
    def __init__(self, loop: FakeLoop, when: float) -> None:
        self.loop, self._when, self.cancelled = loop, when, False

    def when(self) -> float:
        return self._when

    def cancel(self) -> None:
        self.cancelled = True


class FakeLoop:
    """Only what Keepalive asks of a loop; time moves when the test says."""

    def __init__(self) -> None:
        self.now = 100.0
        self.timers: list[tuple[Timer, Any]] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Any) -> Timer:
        timer = Timer(self, when)
        self.timers.append((timer, callback))
        return timer

    def advance(self, to: float) -> None:
        """Run the timers due up to `to`, in order."""
        while True:
            due = [(t, c) for t, c in self.timers if not t.cancelled and t.when() <= to]
            if not due:
                break
            timer, callback = min(due, key=lambda item: item[0].when())
            self.timers.remove((timer, callback))
            self.now = timer.when()
            callback()
        self.now = to


class Conn:
    def __init__(self) -> None:
        self.keepalive_slot: int | None = None
        self.calls: list[float] = []

    def keepalive_due(self, now: float) -> None:
        self.calls.append(now)


def test_each_connection_is_called_in_its_slot_early_for_pings_late_for_deadlines() -> None:
    loop = FakeLoop()
    keepalive = Keepalive(cast(Any, loop), 0.25)
    ping, deadline, gone = Conn(), Conn(), Conn()
    for conn, early in ((ping, True), (deadline, False), (gone, True)):
        keepalive.add(cast(PulseWebSocketProtocol, conn), 115.1, early)
    keepalive.remove(cast(PulseWebSocketProtocol, gone))
    loop.advance(115.1)
    assert len(ping.calls) == 1 and 115.1 - 0.5 < ping.calls[0] <= 115.1
    assert deadline.calls == []
    loop.advance(115.35)
    assert len(deadline.calls) == 1 and 115.1 <= deadline.calls[0] <= 115.35
    assert gone.calls == [] and keepalive.slots == {}


def test_a_connection_added_again_moves_and_a_later_slot_still_runs() -> None:
    loop = FakeLoop()
    keepalive = Keepalive(cast(Any, loop), 0.25)
    first, second = Conn(), Conn()
    keepalive.add(cast(PulseWebSocketProtocol, first), 120.0, early=False)
    keepalive.add(cast(PulseWebSocketProtocol, second), 105.0, early=False)
    keepalive.add(cast(PulseWebSocketProtocol, first), 110.0, early=False)  # moved
    loop.advance(130.0)
    assert second.calls == [105.0] and first.calls == [110.0]
