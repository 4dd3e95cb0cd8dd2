"""Failed sign-ins per client address, so tokens cannot be guessed by trying.

Only failures count: an editor who signs in at once is never slowed. Memory
is bounded: old failures are forgotten, and past `max_addresses` the address
seen longest ago is dropped.

Why not `limiter.TokenBucket`, the service's one rate rule: the limit here is
"at most `MAX_FAILURES` tries in any `WINDOW_SECONDS`", a sliding window, and it
holds across instances through the store's event log (`Store.take_event`: the
times of the failures, in one atomic step on Redis). A bucket of 5 refilling
at 5 a minute lets a guesser try 5 at once and 4 more within that same minute
(one every 12 s), 9 in the first minute; the window allows 5, then none until
the first has aged out. Both the local record and the shared one are lists of
times read by the one function `wait_for`, so the wait an editor is told
(Retry-After) follows one rule whichever of the two refused the try.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque

from .. import metrics

MAX_FAILURES = 5
WINDOW_SECONDS = 60.0
MAX_ADDRESSES = 10_000


def wait_for(times: list[float], max_failures: int, window: float, now: float) -> int:
    """Whole seconds to wait after failures at `times` (oldest first); 0: may try now."""
    if len(times) < max_failures:
        return 0
    # Free again once enough of the failures in the window have aged out of it.
    oldest_that_blocks = times[len(times) - max_failures]
    return max(1, math.ceil(oldest_that_blocks + window - now))


class FailureLimiter:
    def __init__(
        self,
        max_failures: int = MAX_FAILURES,
        window: float = WINDOW_SECONDS,
        max_addresses: int = MAX_ADDRESSES,
    ) -> None:
        self.max_failures = max_failures
        self.window = window
        self.max_addresses = max_addresses
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, address: str, now: float) -> deque[float] | None:
        times = self._failures.get(address)
        if times is None:
            return None
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[address]
            return None
        return times

    def retry_after(self, address: str, now: float) -> int:
        """Whole seconds `address` must wait before trying again; 0 when it may try now."""
        return wait_for(list(self._recent(address, now) or ()), self.max_failures, self.window, now)

    def reserve(self, address: str, now: float) -> int:
        """Count a try from `address` now, unless it must wait: 0 when counted, else
        the seconds to wait. No await between the check and the count, so concurrent
        tries cannot all slip through; `succeeded` clears the count."""
        wait = self.retry_after(address, now)
        if not wait:
            self.failed(address, now)
        return wait

    def failed(self, address: str, now: float) -> None:
        """Record a failed sign-in from `address`."""
        times = self._recent(address, now)
        if times is None:
            times = self._failures[address] = deque(maxlen=self.max_failures)
        times.append(now)
        self._failures.move_to_end(address)
        while len(self._failures) > self.max_addresses:
            self._failures.popitem(last=False)
        metrics.tracked_addresses.labels("signin_failures").set(len(self._failures))

    def succeeded(self, address: str) -> None:
        """A good token clears the address's record."""
        self._failures.pop(address, None)

    def __len__(self) -> int:
        return len(self._failures)
