"""Redis run as deploy/compose.yaml runs it (AOF, fsync every second) keeps
the service's counters through a crash: what docs/OPERATIONS.md promises
under "Redis: Persistence"."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from ops_support import DEPLOY, RunningService, http_get, start_redis, start_service, stop, widget

pytestmark = pytest.mark.slow


def compose_redis_options() -> tuple[str, ...]:
    """The redis-server options of the compose file's redis service."""
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    command: list[str] = compose["services"]["redis"]["command"]
    assert command[0] == "redis-server"
    return tuple(command[1:])


def stats(replica: RunningService) -> dict[str, Any]:
    status, _, body = http_get(f"{replica.base_url}/api/v1/sites/demo/stats", timeout=5)
    assert status == 200, body
    answer: dict[str, Any] = json.loads(body)
    return answer


def wait_for_stats(replica: RunningService, check: str, within: float) -> dict[str, Any]:
    deadline = time.monotonic() + within
    last: dict[str, Any] | str = {}
    while time.monotonic() < deadline:
        try:
            last = stats(replica)
            if last["total_visits"] >= 1 and last["today"]["visits"] >= 1:
                return last
        except (OSError, AssertionError) as error:
            last = repr(error)
        time.sleep(0.2)
    pytest.fail(f"{check}: no visit counted within {within} s: {last}")


def test_counters_survive_a_redis_crash(tmp_path: Path) -> None:
    options = compose_redis_options()
    assert "--appendonly" in options
    redis_url, redis = start_redis(tmp_path, options=options)
    port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    replica = start_service(tmp_path, redis_url=redis_url)
    try:
        with widget(f"127.0.0.1:{replica.port}"):
            before = wait_for_stats(replica, "before the crash", within=10)
        # appendfsync everysec: what is older than a second is on disk.
        time.sleep(2.5)
        redis.send_signal(signal.SIGKILL)
        redis.wait(timeout=10)

        redis_url, redis = start_redis(tmp_path, port=port, options=options)
        after = wait_for_stats(replica, "after the restart", within=20)
        assert after["total_visits"] == before["total_visits"]
        assert after["today"]["visits"] == before["today"]["visits"]
        assert after["today"]["views"] == before["today"]["views"]
    finally:
        stop(replica.process)
        stop(redis)


def test_without_persistence_the_counters_are_lost(tmp_path: Path) -> None:
    """The same crash on a Redis without AOF or snapshots loses them, so the
    test above does show what AOF keeps."""
    redis_url, redis = start_redis(tmp_path)
    port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    replica = start_service(tmp_path, redis_url=redis_url)
    try:
        with widget(f"127.0.0.1:{replica.port}"):
            wait_for_stats(replica, "before the crash", within=10)
        time.sleep(2.5)
        redis.send_signal(signal.SIGKILL)
        redis.wait(timeout=10)
        redis_url, redis = start_redis(tmp_path, port=port)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if stats(replica)["total_visits"] == 0:
                    return
            except (OSError, AssertionError):
                pass
            time.sleep(0.2)
        pytest.fail(f"counters still there after a crash without persistence: {stats(replica)}")
    finally:
        stop(replica.process)
        stop(redis)
