"""Real processes for tests: redis-server, a Redis Cluster, the service itself."""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_cluster_port() -> int:
    """A port below 55535 whose cluster bus port (+10000) is free too."""
    import random

    for _ in range(200):
        port = random.randint(20000, 45000)
        try:
            for candidate in (port, port + 10000):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


def need(binary: str) -> str:
    path = shutil.which(binary)
    if path is None:
        raise RuntimeError(f"{binary} is not installed: run the README's test command")
    return path


def wait_until(check, timeout: float, what: str, every: float = 0.05):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except Exception as exc:
            last_error = exc
        time.sleep(every)
    raise TimeoutError(f"{what} not within {timeout}s (last error: {last_error!r})")


@dataclass
class RedisServer:
    port: int
    dir: Path
    proc: subprocess.Popen[bytes] | None = None
    appendonly: bool = False

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [
            need("redis-server"),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.dir),
            "--save",
            "",
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--appendfsync",
            "always",
        ]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(self._ping, 10, f"redis-server on {self.port}")

    def _ping(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None

    def cli(self, *args: str) -> str:
        out = subprocess.run(
            [need("redis-cli"), "-p", str(self.port), *args],
            check=True,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return out.stdout.strip()


@contextmanager
def redis_server(tmp: Path, appendonly: bool = False) -> Iterator[RedisServer]:
    server = RedisServer(free_port(), tmp, appendonly=appendonly)
    tmp.mkdir(parents=True, exist_ok=True)
    server.start()
    try:
        yield server
    finally:
        server.kill()


@contextmanager
def redis_cluster(tmp: Path, masters: int = 3) -> Iterator[list[RedisServer]]:
    """A real Redis Cluster of `masters` primaries on loopback."""
    nodes = []
    try:
        for index in range(masters):
            node_dir = tmp / f"node{index}"
            node_dir.mkdir(parents=True, exist_ok=True)
            port = free_cluster_port()
            proc = subprocess.Popen(
                [
                    need("redis-server"),
                    "--port",
                    str(port),
                    "--bind",
                    "127.0.0.1",
                    "--dir",
                    str(node_dir),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "2000",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            node = RedisServer(port, node_dir, proc)
            wait_until(node._ping, 10, f"cluster node on {port}")
            nodes.append(node)
        subprocess.run(
            [
                need("redis-cli"),
                "--cluster",
                "create",
                *[f"127.0.0.1:{n.port}" for n in nodes],
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=30,
        )
        wait_until(
            lambda: all("cluster_state:ok" in n.cli("cluster", "info") for n in nodes),
            20,
            "cluster state ok",
        )
        yield nodes
    finally:
        for node in nodes:
            node.kill()


@dataclass
class Service:
    """A `portalpulse serve` process."""

    port: int
    config: Path
    data_dir: Path
    redis_url: str | None = None
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def start(self, extra: list[str] | None = None) -> None:
        args = [
            sys.executable,
            "-m",
            "portalpulse.cli",
            "serve",
            "--config",
            str(self.config),
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
            *(extra or []),
        ]
        if self.redis_url:
            args += ["--redis", self.redis_url]
        env = {**os.environ, "PYTHONPATH": str(REPO / "service")}
        env.pop("PORTALPULSE_CONFIG", None)
        env.pop("PORTALPULSE_REDIS_URL", None)
        self.log_path = self.data_dir / f"service-{self.port}.log"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - kept open for the child
        self.proc = subprocess.Popen(args, stdout=log, stderr=log, env=env)
        wait_until(self._healthy, 20, f"service on {self.port}")

    def _healthy(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"service exited: {self.logs()}")
        return httpx.get(self.base + "/healthz", timeout=1).status_code == 200

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        code = self.proc.returncode
        self.proc = None
        return code

    def get(self, path: str, **kw) -> httpx.Response:  # type: ignore[no-untyped-def]
        return httpx.get(self.base + path, timeout=5, **kw)

    def post(self, path: str, **kw) -> httpx.Response:  # type: ignore[no-untyped-def]
        return httpx.post(self.base + path, timeout=5, **kw)

    def stats(self, site: str = "demo") -> dict:  # type: ignore[type-arg]
        response = self.get(f"/api/v1/sites/{site}/stats")
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]


def offset_to_local_noon(zone: str = "Asia/Ho_Chi_Minh") -> float:
    """Seconds from now to noon of the next day in `zone`."""
    now = time.time()
    local = dt.datetime.fromtimestamp(now, ZoneInfo(zone))
    noon = (local + dt.timedelta(days=1)).replace(hour=12, minute=0, second=0, microsecond=0)
    return noon.timestamp() - now


# Services under test live at noon of the next day (server.clock_offset, a test
# hook), so that no test counting today's visits or views sees the day turn
# because it happened to run at local midnight.
FAST_TIMING = f"""
[server]
beat_interval = 1
presence_ttl = 3
leave_grace = 1
push_interval = 0.5
hello_timeout = 2
clock_offset = {offset_to_local_noon():.3f}
"""

# The site most tests use, and what a service log must never hold.
DEMO_SITE = """
[sites.demo]
name = "Demo"
origins = ["http://localhost:*", "http://127.0.0.1:*"]
keep_query = ["ItemID"]
"""

LOG_FAULTS = ("Traceback", "Exception in ASGI", '"level": "error"')


def write_config(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body, encoding="utf-8")
    return path


def metric(text: str, name: str, labels: str = "") -> float:
    """One sample of a Prometheus text exposition (any labels when none are given)."""
    pattern = (
        re.escape(name)
        + (re.escape("{" + labels + "}") if labels else r"(?:\{[^}]*\})?")
        + r" (\S+)"
    )
    match = re.search("^" + pattern + "$", text, re.M)
    assert match, f"{name}{{{labels}}} not in /metrics"
    return float(match.group(1))


@contextmanager
def service_on_redis(tmp: Path, config: str) -> Iterator[Service]:
    """One `portalpulse serve` on its own fresh redis-server, both under `tmp`."""
    with redis_server(tmp / "redis") as redis:
        service = Service(
            port=free_port(),
            config=write_config(tmp / "config.toml", config),
            data_dir=tmp / "data",
            redis_url=redis.url,
        )
        service.start()
        try:
            yield service
        finally:
            service.stop()
