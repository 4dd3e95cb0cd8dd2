"""The process's periodic timers fall on common instants (clock.next_instant),
so that an idle process wakes once for all of them."""

from __future__ import annotations

from portalpulse.clock import next_instant


def test_the_next_instant_is_the_next_whole_multiple_after_now() -> None:
    assert next_instant(1234.2, 1.0) == 1235.0
    assert next_instant(1235.0, 1.0) == 1236.0  # never now itself
    assert next_instant(10.1, 0.5) == 10.5
    assert next_instant(99.99, 1.0, phase=0.1) == 100.1
    assert next_instant(100.1, 1.0, phase=0.1) == 101.1


def test_timers_started_at_different_times_share_their_instants() -> None:
    tick = next_instant(5000.37, 1.0)
    housekeeping = next_instant(5000.91, 1.0)
    keepalive_slot = 5001 * 1.0  # Keepalive: slots of 1 s on the loop's clock
    assert tick == housekeeping == keepalive_slot
