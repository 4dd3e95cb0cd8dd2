"""One keepalive timer for every WebSocket (web/uvicorn_ws.Keepalive): each
connection is called in its slot, never before its time and at most a slot
after, and a connection removed is not called. What the call does
(`keepalive_plan`): a tab that beats gets a ping only every
PING_AT_LEAST_EVERY seconds, a silent one is pinged within its interval and a
grace, and one that stays silent is found dead within CONTRACT §2's bound."""

from __future__ import annotations

from typing import Any, cast

from portalpulse.web.uvicorn_ws import (
    PING_AT_LEAST_EVERY,
    Keepalive,
    PulseWebSocketProtocol,
    keepalive_plan,
)


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


def test_each_connection_is_called_in_its_slot_never_before_its_time() -> None:
    loop = FakeLoop()
    keepalive = Keepalive(cast(Any, loop), 0.25)
    due, gone = Conn(), Conn()
    for conn in (due, gone):
        keepalive.add(cast(PulseWebSocketProtocol, conn), 115.1)
    keepalive.remove(cast(PulseWebSocketProtocol, gone))
    loop.advance(115.0)
    assert due.calls == []
    loop.advance(115.35)
    assert len(due.calls) == 1 and 115.1 <= due.calls[0] <= 115.35
    assert gone.calls == [] and keepalive.slots == {}


def test_a_connection_added_again_moves_and_a_later_slot_still_runs() -> None:
    loop = FakeLoop()
    keepalive = Keepalive(cast(Any, loop), 0.25)
    first, second = Conn(), Conn()
    keepalive.add(cast(PulseWebSocketProtocol, first), 120.0)
    keepalive.add(cast(PulseWebSocketProtocol, second), 105.0)
    keepalive.add(cast(PulseWebSocketProtocol, first), 110.0)  # moved
    loop.advance(130.0)
    assert len(second.calls) == 1 and 105.0 <= second.calls[0] < 105.25
    assert len(first.calls) == 1 and 110.0 <= first.calls[0] < 110.25


INTERVAL = 15.0  # beat_interval, the ping interval and timeout of `portalpulse serve`
STEP = 1.0  # the keepalive timer's slot


def run(until: float, sends: list[float], pong_delay: float | None) -> tuple[list[float], float]:
    """One connection opened at 0 under the keepalive timer (looked at when
    `keepalive_plan` says, at most a slot late): the client sends frames at
    `sends` and answers each ping after `pong_delay` s (None: never). The pings'
    times, and when it was found dead (inf: never)."""
    heard = pinged = 0.0
    pending_since: float | None = None
    pings: list[float] = []
    look = INTERVAL
    frames = sorted(sends)
    while look <= until:
        now = -(-look // STEP) * STEP  # the slot it falls in
        while frames and frames[0] <= now:
            heard = max(heard, frames.pop(0))
        if (
            pending_since is not None
            and pong_delay is not None
            and pending_since + pong_delay <= now
        ):
            heard, pending_since = max(heard, pending_since + pong_delay), None
        action, look = keepalive_plan(
            now, heard, pinged, pending_since is not None, INTERVAL, INTERVAL
        )
        assert look > now or action == "dead"
        if action == "dead":
            return pings, now
        if action == "ping":
            pings.append(now)
            pinged = pending_since = now
        elif pending_since is not None and heard > pinged:
            pending_since = None
    return pings, float("inf")


def beats(until: float, every: float = INTERVAL, jitter: float = 0.6) -> list[float]:
    """A tab's beats: every `every` s, each up to `jitter` s late."""
    times, at = [], 0.0
    while at < until:
        at += every + jitter * ((len(times) * 7919) % 10) / 10
        times.append(at)
    return times


def test_a_tab_that_beats_is_pinged_only_to_keep_proxies_open() -> None:
    pings, dead = run(600, beats(600), pong_delay=0.05)
    assert dead == float("inf")
    assert 600 / (PING_AT_LEAST_EVERY + STEP) - 1 <= len(pings) <= 600 / PING_AT_LEAST_EVERY
    assert all(
        later - earlier <= PING_AT_LEAST_EVERY + STEP
        for earlier, later in zip([0.0, *pings], pings, strict=False)
    )


def test_a_connection_that_only_answers_pings_is_pinged_every_interval_and_lives() -> None:
    pings, dead = run(600, [], pong_delay=0.2)
    assert dead == float("inf")
    gaps = [later - earlier for earlier, later in zip([0.0, *pings], pings, strict=False)]
    assert all(INTERVAL <= gap <= INTERVAL * 1.2 + 2 * STEP for gap in gaps)


def test_a_silent_connection_is_dead_within_the_bound_and_had_time_to_answer() -> None:
    for last in (0.0, 14.9, 30.2, 47.0):
        sends = [t for t in beats(600) if t <= last] or []
        heard = sends[-1] if sends else 0.0
        pings, dead = run(600, sends, pong_delay=None)
        # CONTRACT §2: found dead within 2 x beat_interval of the last frame, plus the slot.
        assert heard + 2 * INTERVAL <= dead <= heard + 2 * INTERVAL + STEP
        assert dead - pings[-1] >= INTERVAL / 2  # the last ping had time to be answered


def test_a_beat_after_a_ping_answers_it() -> None:
    # The floor ping goes out; the pong never comes, but the tab goes on beating.
    pings, dead = run(300, beats(300), pong_delay=None)
    assert dead == float("inf") and len(pings) >= 300 // (PING_AT_LEAST_EVERY + STEP) - 1
