"""deploy/ passes the linters and schemas that stand in for a Docker engine,
a Kubernetes API server and nginx, none of which runs on a CI machine."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml
from ops_support import DEPLOY, REPO, dockerignore_excludes, nginx_config_for_test, run_tool, tool

KUBERNETES = DEPLOY / "kubernetes"
KUBERNETES_VERSION = "1.30.0"  # the oldest minor the manifests promise to fit


def yaml_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.suffix in {".yml", ".yaml"})


# --- linters ------------------------------------------------------------------


def test_dockerfile_passes_hadolint() -> None:
    run_tool(["hadolint", "--failure-threshold", "info", "deploy/Dockerfile"])


def test_yaml_files_pass_yamllint() -> None:
    assert len(yaml_files()) >= 12, [str(p) for p in yaml_files()]
    run_tool(["yamllint", "--strict", "-c", "deploy/.yamllint.yaml", "deploy"])


def test_compose_file_matches_the_compose_specification() -> None:
    run_tool(["check-jsonschema", "--builtin-schema", "vendor.compose-spec", "deploy/compose.yaml"])


def test_kubernetes_manifests_match_the_api_schemas() -> None:
    manifests = [
        str(p.relative_to(REPO))
        for p in sorted(KUBERNETES.glob("*.yaml"))
        if p.name != "kustomization.yaml"
    ]
    output = run_tool(["kubernetes-validate", "--strict", "-k", KUBERNETES_VERSION, *manifests])
    # Every object was checked against a schema (none "couldn't find schema").
    for kind in (
        "configmap",
        "deployment",
        "service",
        "horizontalpodautoscaler",
        "poddisruptionbudget",
        "statefulset",
    ):
        assert f"passed for resource {kind}/" in output, output


def test_a_broken_manifest_is_refused(tmp_path: Path) -> None:
    """The schema check is strict: a misspelt field does not pass silently."""
    text = (KUBERNETES / "deployment.yaml").read_text()
    broken = tmp_path / "deployment.yaml"
    broken.write_text(text.replace("readinessProbe:", "readinesProbe:", 1))
    completed = subprocess.run(
        [tool("kubernetes-validate"), "--strict", "-k", KUBERNETES_VERSION, str(broken)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert completed.returncode != 0, completed.stdout + completed.stderr
    assert "readinesProbe" in completed.stdout + completed.stderr


def test_nginx_accepts_the_proxy_config(tmp_path: Path) -> None:
    conf = nginx_config_for_test(tmp_path, upstream_ports=(1, 2), listen_port=1)
    run_tool(["nginx", "-t", "-p", str(tmp_path), "-c", str(conf)])


# --- what the files promise ---------------------------------------------------


def load_yaml(path: Path) -> object:
    return yaml.safe_load(path.read_text())


def test_compose_runs_two_replicas_on_one_persistent_redis() -> None:
    compose = load_yaml(DEPLOY / "compose.yaml")
    assert isinstance(compose, dict)
    services = compose["services"]
    assert {"redis", "portalpulse-1", "portalpulse-2", "nginx", "prometheus", "grafana"} <= set(
        services
    )

    redis = services["redis"]
    command = " ".join(redis["command"])
    assert "--appendonly yes" in command and "--appendfsync everysec" in command
    assert any(str(v).endswith(":/data") for v in redis["volumes"])
    assert redis["volumes"][0].split(":")[0] in compose["volumes"]

    for name in ("portalpulse-1", "portalpulse-2"):
        replica = services[name]
        assert replica["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
        assert replica["environment"]["PORTALPULSE_REDIS_URL"] == "redis://redis:6379/0"
        assert replica["depends_on"]["redis"]["condition"] == "service_healthy"
        assert "/readyz" in " ".join(replica["healthcheck"]["test"])
        assert replica["ulimits"]["nofile"]["soft"] >= 20000

    for name in ("portalpulse-1", "portalpulse-2"):
        assert services["nginx"]["depends_on"][name]["condition"] == "service_healthy"
    assert services["grafana"]["depends_on"]["prometheus"]["condition"] == "service_healthy"
    for name, service in services.items():
        assert "healthcheck" in service, f"{name} has no healthcheck"


def test_every_file_compose_mounts_exists() -> None:
    compose = load_yaml(DEPLOY / "compose.yaml")
    assert isinstance(compose, dict)
    mounted = 0
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name} mounts missing {source}"
                mounted += 1
    assert mounted >= 6


def test_prometheus_scrapes_both_replicas_and_loads_the_rules() -> None:
    config = load_yaml(DEPLOY / "prometheus" / "prometheus.yml")
    assert isinstance(config, dict)
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "portalpulse"]
    targets = [t for group in job["static_configs"] for t in group["targets"]]
    assert sorted(targets) == ["portalpulse-1:8000", "portalpulse-2:8000"]
    rules = [p for pattern in config["rule_files"] for p in (DEPLOY / "prometheus").glob(pattern)]
    assert DEPLOY / "prometheus" / "rules" / "portalpulse.rules.yml" in rules


def test_nginx_proxies_websockets_with_a_timeout_above_two_beats() -> None:
    conf = (DEPLOY / "nginx" / "portalpulse.conf").read_text()
    assert "proxy_set_header Upgrade $http_upgrade;" in conf
    assert "proxy_set_header Connection $connection_upgrade;" in conf
    # The peer nginx saw, never a chain the client wrote (CONTRACT §6).
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in conf
    assert "proxy_add_x_forwarded_for" not in conf
    ws = conf[conf.index("location = /ws") :]
    ws = ws[: ws.index("}")]
    timeout = int(re.search(r"proxy_read_timeout (\d+)s;", ws).group(1))  # type: ignore[union-attr]
    beat_interval = tomllib.loads((DEPLOY / "config" / "portalpulse.toml").read_text())["server"][
        "beat_interval"
    ]
    assert timeout > 2 * beat_interval
    assert "proxy_buffering off;" in ws


def test_dockerfile_runs_one_process_as_a_non_root_user() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    instructions = [line for line in text.splitlines() if line and not line.startswith((" ", "#"))]
    froms = [line for line in instructions if line.startswith("FROM ")]
    assert len(froms) >= 2, "multi-stage build expected"
    assert "python:3.11-slim" in text
    (user,) = [line for line in instructions if line.startswith("USER ")]
    assert user.split()[1].split(":")[0] not in {"root", "0"}
    assert 'CMD ["portalpulse", "serve", "--host", "0.0.0.0", "--port", "8000"]' in instructions
    assert "STOPSIGNAL SIGTERM" in instructions
    assert "EXPOSE 8000" in instructions
    assert "--workers" not in text.split("HEALTHCHECK")[1]
    healthcheck = text[text.index("HEALTHCHECK") :]
    assert "/healthz" in healthcheck.split("\n\n")[0] and "curl" not in healthcheck


def test_dockerignore_sends_what_the_build_copies_and_nothing_else() -> None:
    patterns = [
        line.strip()
        for line in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    sources = [
        source
        for line in dockerfile.splitlines()
        if line.startswith("COPY ") and "--from" not in line
        for source in line.split()[1:-1]
    ]
    assert "pyproject.toml" in sources and "service" in sources
    for source in sources:
        assert not dockerignore_excludes(patterns, source), f"COPY {source} is excluded"
    kept_files = (
        "service/portalpulse/cli.py",
        "frontend-widget/widget.js",
        "frontend-widget/loader.js",
        "README.md",
    )
    for kept in kept_files:
        assert not dockerignore_excludes(patterns, kept), kept
    for left_out in (
        ".git/HEAD",
        "tests/ops/conftest.py",
        "deploy/compose.yaml",
        "docs/OPERATIONS.md",
        "service/portalpulse/__pycache__/cli.cpython-311.pyc",
        ".venv/bin/python",
        "frontend-widget/node_modules/x/index.js",
    ):
        assert dockerignore_excludes(patterns, left_out), left_out


def test_dockerignore_reader_follows_last_match_wins() -> None:
    assert dockerignore_excludes(["*"], "a/b.py")
    assert not dockerignore_excludes(["*", "!a/"], "a/b.py")
    assert dockerignore_excludes(["*", "!a/", "a/**/c"], "a/x/c/d.py")
    assert not dockerignore_excludes(["a/**/c"], "a/x/d.py")


def kubernetes_objects() -> dict[tuple[str, str], dict]:  # type: ignore[type-arg]
    objects = {}
    for path in sorted(KUBERNETES.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for document in yaml.safe_load_all(path.read_text()):
            objects[(document["kind"], document["metadata"]["name"])] = document
    return objects


def test_kustomization_lists_every_manifest() -> None:
    kustomization = load_yaml(KUBERNETES / "kustomization.yaml")
    assert isinstance(kustomization, dict)
    listed = set(kustomization["resources"])
    present = {p.name for p in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present
    assert "namespace" not in kustomization
    for document in kubernetes_objects().values():
        assert "namespace" not in document["metadata"]


def test_deployment_drains_before_it_stops() -> None:
    objects = kubernetes_objects()
    deployment = objects[("Deployment", "portalpulse")]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    sleep = int(container["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert pod["terminationGracePeriodSeconds"] > sleep + 10
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert "--workers" not in container["args"]
    assert container["resources"]["requests"]["cpu"], "the HPA needs a CPU request"
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0

    selector = deployment["spec"]["selector"]["matchLabels"]
    assert objects[("Service", "portalpulse")]["spec"]["selector"] == selector
    assert (
        objects[("PodDisruptionBudget", "portalpulse")]["spec"]["selector"]["matchLabels"]
        == selector
    )
    hpa = objects[("HorizontalPodAutoscaler", "portalpulse")]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"]["name"] == "portalpulse"
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"

    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["config"]["configMap"]["name"] == "portalpulse-config"
    config_map = objects[("ConfigMap", "portalpulse-config")]
    mount = next(m for m in container["volumeMounts"] if m["name"] == "config")
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["PORTALPULSE_CONFIG"] == mount["mountPath"] + "/" + next(iter(config_map["data"]))


def test_kubernetes_redis_keeps_an_append_only_file() -> None:
    redis = kubernetes_objects()[("StatefulSet", "portalpulse-redis")]
    args = " ".join(redis["spec"]["template"]["spec"]["containers"][0]["args"])
    assert "--appendonly yes" in args and "--appendfsync everysec" in args
    assert redis["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"


@pytest.mark.parametrize(
    "source",
    ["compose", "kubernetes"],
)
def test_example_configuration_loads_in_the_service(source: str) -> None:
    """The TOML shipped with each deployment is one the service accepts."""
    from portalpulse import config

    if source == "compose":
        text = (DEPLOY / "config" / "portalpulse.toml").read_text()
    else:
        text = kubernetes_objects()[("ConfigMap", "portalpulse-config")]["data"]["portalpulse.toml"]
    settings = config.parse(tomllib.loads(text), env={})
    assert "myhao" in settings.sites
    assert settings.sites["myhao"].allows_origin("https://myhao.hungyen.gov.vn")


def test_deployments_trust_forwarded_for_from_their_proxy_only() -> None:
    """CONTRACT §6: X-Forwarded-For is read only from the proxy's network, and no
    deployment turns uvicorn's own proxy-header trust back on."""
    import ipaddress

    from portalpulse import config

    compose = load_yaml(DEPLOY / "compose.yaml")
    assert isinstance(compose, dict)
    objects = kubernetes_objects()
    texts = {
        "compose": (DEPLOY / "config" / "portalpulse.toml").read_text(),
        "kubernetes": objects[("ConfigMap", "portalpulse-config")]["data"]["portalpulse.toml"],
    }
    for name, text in texts.items():
        proxies = config.parse(tomllib.loads(text), env={}).server.trusted_proxies
        assert proxies, f"{name}: no trusted_proxies"
        for network in proxies:
            assert network.prefixlen >= 8, f"{name}: {network} trusts far more than a proxy"
    nginx_address = compose["services"]["nginx"]["networks"]["default"]["ipv4_address"]
    proxies = config.parse(tomllib.loads(texts["compose"]), env={}).server.trusted_proxies
    assert [str(n) for n in proxies] == [f"{nginx_address}/32"]
    subnet = compose["networks"]["default"]["ipam"]["config"][0]["subnet"]
    assert ipaddress.ip_address(nginx_address) in ipaddress.ip_network(subnet)
    deploy_text = "\n".join(
        p.read_text()
        for p in [DEPLOY / "compose.yaml", DEPLOY / "Dockerfile", *KUBERNETES.glob("*")]
    )
    assert "FORWARDED_ALLOW_IPS" not in deploy_text
    assert "proxy-headers" not in deploy_text and "forwarded-allow-ips" not in deploy_text
