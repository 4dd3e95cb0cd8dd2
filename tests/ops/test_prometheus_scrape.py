"""A real Prometheus scrapes a real Portal Pulse with one visitor online,
evaluates the shipped recording rules on it, and answers every query of the
Grafana dashboard."""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ops_support import (
    DEPLOY,
    RunningService,
    free_port,
    http_get,
    stop,
    tool,
    wait_until_answers,
    widget,
)
from websockets.sync.client import ClientConnection

pytestmark = pytest.mark.slow

RULES = DEPLOY / "prometheus" / "rules" / "portalpulse.rules.yml"
DASHBOARD = DEPLOY / "grafana" / "portalpulse.json"


class Prometheus:
    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"

    def query(self, promql: str) -> dict[str, Any]:
        status, _, body = http_get(
            f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql}), timeout=5
        )
        answer: dict[str, Any] = json.loads(body)
        assert status == 200 and answer["status"] == "success", f"{promql}: {status} {answer}"
        return answer

    def value(self, promql: str, labels: dict[str, str]) -> float | None:
        """The value of the one sample of `promql` with `labels`, or None."""
        for sample in self.query(promql)["data"]["result"]:
            if all(sample["metric"].get(k) == v for k, v in labels.items()):
                return float(sample["value"][1])
        return None

    def wait_for(self, promql: str, labels: dict[str, str], expected: float, within: float) -> None:
        deadline = time.monotonic() + within
        seen = None
        while time.monotonic() < deadline:
            seen = self.value(promql, labels)
            if seen == expected:
                return
            time.sleep(0.5)
        targets = http_get(f"{self.url}/api/v1/targets")[2].decode()
        pytest.fail(
            f"{promql}{labels} is {seen}, not {expected}, after {within} s; targets: {targets}"
        )


@pytest.fixture
def prometheus(tmp_path: Path, service: RunningService) -> Iterator[Prometheus]:
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        f"rule_files:\n  - {RULES}\n"
        "scrape_configs:\n  - job_name: portalpulse\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{service.port}']\n"
    )
    log = tmp_path / "prometheus.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                tool("prometheus"),
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_answers(f"http://127.0.0.1:{port}/-/ready", process, log, within=30)
        yield Prometheus(port)
    finally:
        stop(process)


@pytest.fixture
def visitor(service: RunningService) -> Iterator[ClientConnection]:
    """One widget connection to site demo, kept open for the test."""
    with widget(f"127.0.0.1:{service.port}") as websocket:
        yield websocket


def test_prometheus_reads_the_online_visitor(
    prometheus: Prometheus, visitor: ClientConnection
) -> None:
    prometheus.wait_for("up", {"job": "portalpulse"}, 1, within=30)
    prometheus.wait_for("portalpulse_online_visitors", {"site": "demo"}, 1, within=30)
    prometheus.wait_for("sum(portalpulse_connections)", {}, 1, within=30)
    # The shipped recording rule, evaluated by Prometheus itself.
    prometheus.wait_for("site:portalpulse_online_visitors:max", {"site": "demo"}, 1, within=30)
    assert prometheus.value("process_open_fds", {"job": "portalpulse"}) is not None


def test_prometheus_answers_every_dashboard_query(
    prometheus: Prometheus, visitor: ClientConnection
) -> None:
    prometheus.wait_for("portalpulse_online_visitors", {"site": "demo"}, 1, within=30)
    board = json.loads(DASHBOARD.read_text())
    queries = [
        target["expr"]
        for panel in board["panels"]
        if panel["type"] != "row"
        for target in panel["targets"]
    ]
    # What Grafana substitutes before it sends a query.
    substitutions = {"$__rate_interval": "1m", "$instance": ".*", "$site": ".*"}
    for expr in queries:
        for variable, value in substitutions.items():
            expr = expr.replace(variable, value)
        assert "$" not in expr, expr
        prometheus.query(expr)
    # The template variables' label_values(selector, label) find values.
    for variable in board["templating"]["list"]:
        if variable["type"] != "query":
            continue
        match = re.fullmatch(r"label_values\((.+), (\w+)\)", variable["query"])
        assert match, variable["query"]
        selector, label = match.groups()
        found = [r["metric"].get(label) for r in prometheus.query(selector)["data"]["result"]]
        assert any(found), f"${variable['name']}: {selector} has no {label} label"
    online = next(q for q in queries if q.startswith("max by (site) (portalpulse_online_visitors"))
    assert prometheus.value(online.replace("$site", ".*"), {"site": "demo"}) == 1
