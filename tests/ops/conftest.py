"""Fixtures of the operations tests (helpers live in ops_support.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from ops_support import RunningService, start_redis, start_service, stop


@pytest.fixture
def service(tmp_path: Path) -> Iterator[RunningService]:
    """The real service on a free loopback port, stopped after the test."""
    running = start_service(tmp_path)
    try:
        yield running
    finally:
        stop(running.process)


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A throw-away redis-server without persistence, stopped after the test."""
    url, process = start_redis(tmp_path)
    try:
        yield url
    finally:
        stop(process)


@pytest.fixture
def replicas(tmp_path: Path, redis_url: str) -> Iterator[Callable[[int], list[RunningService]]]:
    """Starts replicas on the test's Redis: `replicas(2)`; all are stopped after."""
    started: list[RunningService] = []

    def start(count: int) -> list[RunningService]:
        new = [start_service(tmp_path, redis_url=redis_url) for _ in range(count)]
        started.extend(new)
        return new

    try:
        yield start
    finally:
        for replica in started:
            stop(replica.process)
