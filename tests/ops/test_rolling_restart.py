"""A rolling restart as deployed: two replicas on one Redis behind the
shipped nginx config. Stopping the replica that holds a visitor closes it
with 1001; the visitor reconnects through nginx to the other replica, and the
site's online count never dips (docs/OPERATIONS.md, "Rolling updates")."""

from __future__ import annotations

import json
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from ops_support import HELLO, RunningService, http_get, running_nginx, widget
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection

pytestmark = pytest.mark.slow

RESUME = json.dumps({**json.loads(HELLO), "resume": True})


@dataclass
class Stack:
    replicas: list[RunningService]
    nginx: str


@pytest.fixture
def stack(tmp_path: Path, replicas: Callable[[int], list[RunningService]]) -> Iterator[Stack]:
    """Two replicas on one Redis behind nginx, as deploy/compose.yaml runs them."""
    first, second = replicas(2)
    with running_nginx(tmp_path, (first.port, second.port)) as address:
        yield Stack(replicas=[first, second], nginx=address)


def open_connections(replica: RunningService) -> float:
    _, _, body = http_get(f"{replica.base_url}/metrics", timeout=5)
    lines = re.findall(r"^portalpulse_connections\{[^}]*\} (\S+)$", body.decode(), re.M)
    return sum(float(value) for value in lines)


def online(replica: RunningService) -> int:
    status, _, body = http_get(f"{replica.base_url}/api/v1/sites/demo/stats", timeout=5)
    assert status == 200, body
    return int(json.loads(body)["online"])


def wait_for_online(websocket: ClientConnection, expected: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        frame = json.loads(websocket.recv(timeout=10))
        if frame["type"] == "snapshot" and frame["online"] == expected:
            return
    pytest.fail(f"no snapshot with online == {expected} within 10 s")


def holding_and_other(stack: Stack) -> tuple[RunningService, RunningService]:
    """(the replica that holds the one connection, the other one)."""
    holding = [r for r in stack.replicas if open_connections(r) == 1]
    assert len(holding) == 1, [open_connections(r) for r in stack.replicas]
    (other,) = [r for r in stack.replicas if r is not holding[0]]
    assert online(other) == 1, "the other replica reads the same count from Redis"
    return holding[0], other


def stop_and_expect_1001(replica: RunningService, websocket: ClientConnection) -> None:
    replica.process.send_signal(signal.SIGTERM)
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            websocket.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
    assert replica.process.wait(timeout=15) == 0


class CountWatcher:
    """Reads a replica's online count every 0.2 s in a thread."""

    def __init__(self, replica: RunningService) -> None:
        self.seen: list[tuple[float, int]] = []
        self._running = threading.Event()
        self._running.set()
        self._thread = threading.Thread(target=self._watch, args=(replica,))

    def _watch(self, replica: RunningService) -> None:
        while self._running.is_set():
            self.seen.append((time.monotonic(), online(replica)))
            time.sleep(0.2)

    def __enter__(self) -> CountWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._running.clear()
        self._thread.join(timeout=10)


@contextmanager
def handover(stack: Stack, websocket: ClientConnection) -> Iterator[CountWatcher]:
    """Stops the replica holding `websocket` (SIGTERM, as an orchestrator
    does), with the other replica's count watched from just before."""
    wait_for_online(websocket, 1)
    stopped, survivor = holding_and_other(stack)
    with CountWatcher(survivor) as watcher:
        stop_and_expect_1001(stopped, websocket)
        yield watcher


def test_stopping_a_replica_loses_no_visitor(stack: Stack) -> None:
    # The widget comes back at once (resume: no new view), through nginx, and
    # is watched past leave_grace (5 s) + push_interval (1 s).
    with (
        widget(stack.nginx) as websocket,
        handover(stack, websocket) as watcher,
        widget(stack.nginx, hello=RESUME) as again,
    ):
        wait_for_online(again, 1)
        time.sleep(8)
    counts = [count for _, count in watcher.seen]
    assert len(counts) > 20
    assert set(counts) == {1}, f"the online count dipped during the restart: {counts}"


def test_a_visitor_that_does_not_come_back_leaves(stack: Stack) -> None:
    """The other side of the same bound: without a reconnect the count drops
    within leave_grace + push_interval + 1 s (CONTRACT §2)."""
    with widget(stack.nginx) as websocket, handover(stack, websocket) as watcher:
        closed_at = time.monotonic()
        time.sleep(9)
    after = [(at - closed_at, count) for at, count in watcher.seen if at > closed_at]
    assert after[-1][1] == 0, after
    left_at = next(at for at, count in after if count == 0)
    assert left_at <= 5 + 1 + 1, after
