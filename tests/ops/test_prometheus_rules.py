"""The Prometheus rules check and pass their unit tests, and every alert and
metric they name exists: in the runbook and in the service's registry."""

from __future__ import annotations

import re

import yaml
from ops_support import DEPLOY, METRIC_NAME, REPO, registered_metric_names, run_tool

RULES = DEPLOY / "prometheus" / "rules" / "portalpulse.rules.yml"
OPERATIONS = REPO / "docs" / "OPERATIONS.md"


def rules() -> list[dict]:  # type: ignore[type-arg]
    document = yaml.safe_load(RULES.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_rules_pass_promtool_check() -> None:
    output = run_tool(["promtool", "check", "rules", str(RULES.relative_to(REPO))])
    assert f"SUCCESS: {len(rules())} rules found" in output, output


def test_prometheus_config_passes_promtool_check() -> None:
    output = run_tool(["promtool", "check", "config", "deploy/prometheus/prometheus.yml"])
    assert "SUCCESS: 1 rule files found" in output, output


def test_rule_unit_tests_pass() -> None:
    tests = sorted((DEPLOY / "prometheus" / "tests").glob("*.test.yml"))
    assert tests, "no rule unit tests in deploy/prometheus/tests"
    output = run_tool(["promtool", "test", "rules", *(str(t.relative_to(REPO)) for t in tests)])
    assert "SUCCESS" in output and "FAILED" not in output, output


def test_every_alert_is_unit_tested() -> None:
    tested = set()
    for path in (DEPLOY / "prometheus" / "tests").glob("*.test.yml"):
        for case in yaml.safe_load(path.read_text())["tests"]:
            for alert in case.get("alert_rule_test", []):
                if alert["exp_alerts"]:
                    tested.add(alert["alertname"])
    alerts = {rule["alert"] for rule in rules() if "alert" in rule}
    assert alerts - tested == set(), "alerts never shown to fire in a unit test"


def test_every_alert_has_a_runbook_section() -> None:
    runbook = OPERATIONS.read_text()
    headings = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in runbook.splitlines()
        if line.startswith("#")
    }
    for rule in rules():
        if "alert" not in rule:
            continue
        link = rule["annotations"]["runbook"]
        path, anchor = link.split("#")
        assert path == "docs/OPERATIONS.md"
        assert anchor == rule["alert"].lower()
        assert anchor in headings, (
            f"{rule['alert']}: no '### {rule['alert']}' in docs/OPERATIONS.md"
        )
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}


def test_rules_only_use_metrics_the_service_exports() -> None:
    exported = registered_metric_names() | {"up"}
    used = set()
    for rule in rules():
        for name in METRIC_NAME.findall(rule["expr"]):
            used.add(name)
    assert used, "no metric names found in the rules"
    assert used - exported == set(), (
        f"not exported by service/portalpulse/metrics.py: {used - exported}"
    )
