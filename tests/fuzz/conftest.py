"""One service on a real Redis per fuzz module: examples share it, as real traffic
would, and the counts it ends with must be exactly what the accepted input made."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from portalpulse.dashboard.tokens import token_hash
from support.fuzz_target import EDITOR_TOKEN, Fuzzed
from support.processes import DEMO_SITE, FAST_TIMING, service_on_redis

# Every example comes from loopback: lift the per-address bounds that would
# otherwise refuse the fuzzer itself (they have tests of their own).
CONFIG = (
    FAST_TIMING.replace("[server]", "[server]\nmax_http_beats_per_ip = 100000")
    + DEMO_SITE
    + f"""dashboard_tokens = ["{token_hash(EDITOR_TOKEN)}"]

[dashboard]
session_secret = "fuzz-test-secret-0123456789abcdef"
"""
)


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzed]:
    with service_on_redis(tmp_path_factory.mktemp("fuzz"), CONFIG) as service:
        state = Fuzzed(service)
        yield state
    state.check_logs()
