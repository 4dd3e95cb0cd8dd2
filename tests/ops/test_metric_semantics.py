"""What the alerts and the dashboard read from the metrics must hold on real
replicas sharing one Redis:

- `portalpulse_store_up` is 1 on a replica that reaches Redis, even an idle
  one (else PortalPulseStoreUnreachable pages for nothing);
- `max by (site) (portalpulse_online_visitors)` is the site's online count:
  a replica that no longer holds a visitor of the site must not keep
  reporting an old, higher count (the dashboard and the drop alert would
  read it forever)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable

import pytest
from ops_support import HELLO, RunningService, http_get, widget

pytestmark = pytest.mark.slow

# leave_grace (5 s) + push_interval (1 s) + 1 s, with defaults (CONTRACT §2), and a margin.
LEAVE_BOUND = 5 + 1 + 1 + 2


def metric(replica: RunningService, name: str) -> dict[str, float]:
    """`name`'s samples on `replica`, by their label text."""
    _, _, body = http_get(f"{replica.base_url}/metrics", timeout=5)
    pattern = rf"^{name}(\{{[^}}]*\}})? (\S+)$"
    samples = re.findall(pattern, body.decode(), re.M)
    return {labels: float(value) for labels, value in samples}


def site_online(replicas: list[RunningService]) -> float | None:
    """What the dashboard shows: max over replicas of the demo site's gauge."""
    values = [
        value
        for replica in replicas
        for labels, value in metric(replica, "portalpulse_online_visitors").items()
        if labels == '{site="demo"}'
    ]
    return max(values) if values else None


def test_an_idle_replica_on_reachable_redis_reports_store_up(
    replicas: Callable[[int], list[RunningService]],
) -> None:
    (replica,) = replicas(1)
    status, _, body = http_get(f"{replica.base_url}/readyz")
    assert status == 200, body
    time.sleep(2)
    assert metric(replica, "portalpulse_store_up") == {"": 1.0}


def test_max_by_site_follows_visitors_leaving_each_replica(
    replicas: Callable[[int], list[RunningService]],
) -> None:
    first, second = both = replicas(2)
    other_visitor = json.dumps({**json.loads(HELLO), "visitor": "zyxwvutsrqponmlk9876"})
    with widget(f"127.0.0.1:{second.port}", hello=other_visitor):
        with widget(f"127.0.0.1:{first.port}"):
            deadline = time.monotonic() + 10
            while site_online(both) != 2 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert site_online(both) == 2
        # The first replica's only visitor left; one visitor is online.
        time.sleep(LEAVE_BOUND)
        assert site_online(both) == 1
    time.sleep(LEAVE_BOUND)
    assert site_online(both) in (0, None)
