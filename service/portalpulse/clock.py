"""When the process's periodic work runs: on the same instants.

Each wake-up of a process costs CPU whatever the work (about 0.2 ms on the
machines of docs/BENCHMARKS.md, more than a quiet site's tick). The tick, the
keepalive timer and uvicorn's housekeeping each run once a second; on common
instants they share one wake-up instead of three.

The instants are whole seconds of the event loop's clock shifted by a fraction
drawn once per process (`SHIFT`): instances on one machine share that clock,
and in step they would all find a site due at the same tick and all run its
script, where the first one's answer spares the others.
"""

from __future__ import annotations

import math
import random

SHIFT = random.random()
"""This process's instants fall this fraction of a period past the period's multiples."""


def next_instant(now: float, every: float, offset: float = 0.0) -> float:
    """The first of this process's instants after `now`: `(k + SHIFT) * every + offset`."""
    start = SHIFT * every + offset
    return (math.floor((now - start) / every) + 1) * every + start


def slot_of(at: float, step: float) -> int:
    """The first slot of `step` seconds on this process's instants at or after `at`
    (an instant itself, to a nanosecond, is its own slot)."""
    return math.ceil(at / step - SHIFT - 1e-9)


def slot_time(slot: int, step: float) -> float:
    """When `slot` (slot_of) begins, on the loop's clock."""
    return (slot + SHIFT) * step
