"""deploy/nginx/portalpulse.conf in a real nginx, in front of the real
service: WebSockets upgrade through it, widget.js is compressed, /metrics
stays private."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from ops_support import RunningService, http_get, running_nginx, widget

pytestmark = pytest.mark.slow


@pytest.fixture
def nginx(tmp_path: Path, service: RunningService) -> Iterator[str]:
    """nginx on a free port, both upstream replicas pointing at `service`."""
    with running_nginx(tmp_path, (service.port, service.port)) as address:
        yield address


def test_websocket_upgrades_through_nginx(nginx: str) -> None:
    with widget(nginx) as websocket:
        snapshot = json.loads(websocket.recv(timeout=10))
        assert snapshot["type"] == "snapshot"
        # The snapshot may be read before or after this visitor's first flush.
        while snapshot["online"] != 1:
            snapshot = json.loads(websocket.recv(timeout=10))
            assert snapshot["type"] == "snapshot"


def test_widget_is_served_compressed(nginx: str) -> None:
    status, headers, body = http_get(
        f"http://{nginx}/widget.js", headers={"Accept-Encoding": "gzip"}, timeout=5
    )
    assert status == 200, body[:200]
    assert headers.get("content-encoding") == "gzip", headers
    assert b"portalpulse" in gzip.decompress(body).lower()


def test_metrics_are_not_public(nginx: str, service: RunningService) -> None:
    status, _, _ = http_get(f"http://{nginx}/metrics")
    assert status == 404
    status, _, body = http_get(f"{service.base_url}/metrics")
    assert status == 200 and b"portalpulse_online_visitors" in body


def test_health_and_api_pass_through(nginx: str) -> None:
    status, _, body = http_get(f"http://{nginx}/healthz")
    assert status == 200 and json.loads(body) == {"status": "ok"}
    status, _, body = http_get(f"http://{nginx}/api/v1/sites/demo/stats")
    assert status == 200, body[:200]
    assert "online" in json.loads(body)
