"""Fixtures of the operations tests (helpers live in ops_support.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from ops_support import RunningService, start_service, stop


@pytest.fixture
def service(tmp_path: Path) -> Iterator[RunningService]:
    """The real service on a free loopback port, stopped after the test."""
    running = start_service(tmp_path)
    try:
        yield running
    finally:
        stop(running.process)
