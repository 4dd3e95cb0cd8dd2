"""The process's periodic timers fall on common instants (clock.py), so that an
idle process wakes once for all of them, shifted by a fraction of their own so
that instances on one machine do not tick in step."""

from __future__ import annotations

import math

import pytest

from portalpulse import clock
from portalpulse.clock import next_instant, slot_of, slot_time


@pytest.mark.parametrize("shift", [0.0, 0.37, 0.999])
def test_the_next_instant_is_the_next_shifted_multiple_after_now(
    monkeypatch: pytest.MonkeyPatch, shift: float
) -> None:
    monkeypatch.setattr(clock, "SHIFT", shift)
    for now in (1234.2, 1235.0 + shift, 10.1, 99.99):
        for every, offset in ((1.0, 0.0), (0.5, 0.0), (1.0, 0.1)):
            at = next_instant(now, every, offset)
            assert now < at <= now + every + 1e-9  # after now, never a period late
            k = (at - offset) / every - shift
            assert math.isclose(k, round(k), abs_tol=1e-6)  # on the process's instants


def test_timers_started_at_different_times_share_their_instants() -> None:
    tick = next_instant(5000.37, 1.0)
    housekeeping = next_instant(5000.91, 1.0)
    assert math.isclose(housekeeping - tick, 0.0, abs_tol=1e-9) or math.isclose(
        housekeeping - tick, 1.0
    )
    keepalive = slot_time(slot_of(tick, 1.0), 1.0)
    assert math.isclose(tick, keepalive)
    assert math.isclose(next_instant(tick, 1.0, 0.1) - tick, 0.1)  # the lag probe
