"""The Grafana dashboard is importable and asks only for metrics that exist."""

from __future__ import annotations

import json
import re
from typing import Any

import yaml
from ops_support import DEPLOY, METRIC_NAME, registered_metric_names

DASHBOARD = DEPLOY / "grafana" / "portalpulse.json"


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def panels() -> list[dict[str, Any]]:
    return [p for p in dashboard()["panels"] if p["type"] != "row"]


def expressions() -> list[str]:
    return [target["expr"] for panel in panels() for target in panel["targets"]]


def test_dashboard_is_an_importable_document() -> None:
    board = dashboard()
    assert board["id"] is None and board["uid"] == "portalpulse"
    assert 36 <= board["schemaVersion"] <= 41
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))


def test_every_panel_reads_the_selected_datasource() -> None:
    for panel in panels():
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]


def test_panels_do_not_overlap() -> None:
    taken: set[tuple[int, int]] = set()
    for panel in dashboard()["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        cells = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & taken, f"{panel['title']} overlaps another panel"
        taken |= cells


def test_dashboard_shows_what_operators_read() -> None:
    titles = " | ".join(p["title"] for p in panels()).lower()
    for wanted in (
        "online visitors by site",
        "connections by transport",
        "fan-out",
        "redis latency",
        "store errors",
        "rejected",
        "event-loop lag",
        "snapshots sent / conflated",
        "cpu",
        "memory",
        "file descriptors",
    ):
        assert wanted in titles, wanted


def test_online_visitors_are_never_summed_across_replicas() -> None:
    for expr in expressions():
        if "portalpulse_online_visitors" in expr:
            assert re.search(r"max by \(site\) \(portalpulse_online_visitors", expr), expr


def test_dashboard_only_uses_metrics_the_service_exports() -> None:
    exported = registered_metric_names() | {"up"}
    used = {name for expr in expressions() for name in METRIC_NAME.findall(expr)}
    assert len(used) >= 15
    assert used - exported == set()


def test_provisioning_points_at_the_mounted_dashboard() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    grafana = compose["services"]["grafana"]
    mounts = dict(v.split(":")[:2] for v in grafana["volumes"])
    provider = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "dashboards" / "portalpulse.yaml").read_text()
    )
    path = provider["providers"][0]["options"]["path"]
    assert mounts["./grafana/portalpulse.json"].rsplit("/", 1)[0] == path
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
    datasource = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yaml").read_text()
    )
    (prometheus,) = datasource["datasources"]
    assert prometheus["type"] == "prometheus" and prometheus["url"] == "http://prometheus:9090"
    assert "prometheus" in compose["services"]
