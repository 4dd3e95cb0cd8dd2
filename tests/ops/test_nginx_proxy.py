"""deploy/nginx/portalpulse.conf in a real nginx, in front of the real
service: WebSockets upgrade through it, widget.js is compressed, /metrics
stays private."""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from ops_support import RunningService, http_get, running_nginx, start_service, stop, widget

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
    loader = gzip.decompress(body)
    assert b"Portal Pulse" in loader
    # The versioned widget the loader loads, compressed too and cached a year.
    versioned = re.search(rb"widget\.[0-9a-f]{12}\.js", loader)
    assert versioned, loader
    status, headers, body = http_get(
        f"http://{nginx}/{versioned.group().decode()}",
        headers={"Accept-Encoding": "gzip"},
        timeout=5,
    )
    assert status == 200 and headers.get("content-encoding") == "gzip", headers
    assert "immutable" in headers.get("cache-control", ""), headers
    assert b"new WebSocket" in gzip.decompress(body)


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


def test_a_client_cannot_choose_its_address_through_nginx(tmp_path: Path) -> None:
    """nginx sends the peer it saw as X-Forwarded-For, and the service trusts that
    header from nginx alone: a forged one changes nothing, a real client's address
    is its own (CONTRACT §6)."""
    import httpx

    config = tmp_path / "behind-nginx.toml"
    config.write_text(
        '[server]\ntrusted_proxies = ["127.0.0.1"]\nmax_http_beats_per_ip = 1\n'
        '[sites.demo]\norigins = ["*"]\n'
    )
    service = start_service(tmp_path, config=config)
    beat = {"visitor": "abcdefghijklmnop1234", "pages": [{"path": "/a"}], "resume": True}
    try:
        with running_nginx(tmp_path, (service.port, service.port)) as address:

            def beats_from(source: str, count: int) -> list[int]:
                transport = httpx.HTTPTransport(local_address=source)
                with httpx.Client(transport=transport, timeout=10) as client:
                    return [
                        client.post(
                            f"http://{address}/api/v1/sites/demo/beats",
                            json=beat,
                            headers={"X-Forwarded-For": f"203.0.113.{i}"},
                        ).status_code
                        for i in range(count)
                    ]

            forged = beats_from("127.0.0.2", 8)
            assert forged[:2] == [200, 200] and 429 in forged, forged
            assert beats_from("127.0.0.3", 1) == [200], "another client has its own limit"
    finally:
        stop(service.process)
