"""When the process's periodic work runs: on the same instants.

Each wake-up of a process costs CPU whatever the work (about 0.2 ms on the
machines of docs/BENCHMARKS.md, more than a quiet site's tick). The tick, the
keepalive timer and uvicorn's housekeeping each run once a second; on whole
seconds of the event loop's clock they share one wake-up instead of three.
"""

from __future__ import annotations

import math


def next_instant(now: float, every: float, phase: float = 0.0) -> float:
    """The first time after `now` that is `phase` past a multiple of `every`."""
    return (math.floor((now - phase) / every) + 1) * every + phase
