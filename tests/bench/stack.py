"""The processes under test: a private redis-server and one `portalpulse serve`.

Both listen on loopback ports picked free at start; `stop()` ends them for
sure (SIGTERM, then SIGKILL). Also the readings taken from outside:
/proc for memory and CPU, Redis INFO, and the service's /metrics.
"""

from __future__ import annotations

import argparse
import http.client
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

REPO = Path(__file__).resolve().parents[2]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SERVER_TIMING = (
    "[server]",
    "beat_interval = 15",
    "push_interval = 1.0",
    "presence_ttl = 45",
    "leave_grace = 5",
    'log_level = "warning"',
)
"""The [server] table of every benchmark: the default timing, quiet logs."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def raise_fd_limit() -> None:
    """In the child before exec: as many open files as the hard limit allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def rss_kb(pid: int) -> int:
    """Resident memory of `pid` (VmRSS), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time `pid` has used so far."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state): utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def wakeups(pid: int) -> int:
    """How many times `pid`'s threads have gone to sleep and woken so far (their
    voluntary context switches): a count of wake-ups that a busy machine does not blur."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            status = (task / "status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("voluntary_ctxt_switches:"):
                total += int(line.split()[1])
    return total


def with_children(pid: int) -> list[int]:
    """`pid` and its direct children (the workers of `portalpulse serve --workers N`)."""
    pids = [pid]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
                pids.append(int(entry.name))
    return pids


def scheduling(pid: int) -> dict[str, float]:
    """Seconds `pid` ran and waited runnable for a CPU (/proc/PID/schedstat), and
    its context switches: a process that is neither running nor waiting was blocked."""
    run_ns, wait_ns, _ = Path(f"/proc/{pid}/schedstat").read_text().split()
    counts = {"ran": int(run_ns) / 1e9, "waited_for_cpu": int(wait_ns) / 1e9}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"):
            counts[name] = float(value)
    return counts


def machine_cpu() -> dict[str, float]:
    """The machine's CPU time so far by state (/proc/stat), in seconds over all CPUs."""
    names = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    return {name: int(value) / CLOCK_TICKS for name, value in zip(names, fields, strict=False)}


def wait_idle(seconds: float, busy_below: float) -> float:
    """Others may share this machine (test suites, builds): wait up to `seconds` until
    they keep less than `busy_below` CPUs busy. Returns the last busy figure."""
    deadline = time.monotonic() + seconds
    while True:
        before = machine_cpu()
        time.sleep(2)
        after = machine_cpu()
        idle = sum(after[k] - before[k] for k in ("idle", "iowait")) / 2
        busy = (os.cpu_count() or 1) - idle
        if busy < busy_below or time.monotonic() > deadline:
            return round(busy, 2)
        print(f"[wait] others keep {busy:.0%} of a CPU busy", flush=True)


def _stop(proc: subprocess.Popen[bytes] | None, wait: float = 15.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(wait)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def _wait_until(check, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as exc:  # retried until the deadline
            last = exc
        time.sleep(0.1)
    raise TimeoutError(f"{what} not up within {timeout}s (last error: {last!r})")


class RedisProc:
    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None
        self.client: redis.Redis | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        log = open(self.workdir / "redis.log", "wb")  # noqa: SIM115 - kept for the child
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.workdir),
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=raise_fd_limit,
        )
        self.client = redis.Redis(port=self.port, decode_responses=True)
        _wait_until(self.client.ping, 10, "redis-server")

    def info(self, section: str | None = None) -> dict[str, object]:
        assert self.client is not None
        return self.client.info(section) if section else self.client.info()

    def key_sizes(self, prefix: str) -> dict[str, dict[str, object]]:
        """Each key under `prefix` (named without it): type, elements, bytes (exact)."""
        assert self.client is not None
        client = self.client
        count = {"zset": client.zcard, "hash": client.hlen, "set": client.scard}
        sizes: dict[str, dict[str, object]] = {}
        for key in sorted(client.scan_iter(match=prefix + "*", count=1000)):
            kind = client.type(key)
            sizes[key.removeprefix(prefix)] = {
                "type": kind,
                "elements": int(count[kind](key)) if kind in count else 1,
                "bytes": int(client.memory_usage(key, samples=0) or 0),
            }
        return sizes

    def stop(self) -> None:
        if self.client is not None:
            self.client.close()
        _stop(self.proc)


def export_service(revision: str, into: Path) -> tuple[Path, str]:
    """The `service/` tree of `revision` ("worktree": the files as they are now),
    so that a benchmark measures one known version while others edit the tree.
    Returns the source root and the commit (with "+worktree" when not committed)."""
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "HEAD" if revision == "worktree" else revision],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    if revision == "worktree":
        return REPO / "service", commit + "+worktree"
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", commit, "service"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into / "service", commit


VENVS = Path(tempfile.gettempdir()) / "portalpulse-bench-venvs"


def add_with_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--with",
        dest="extra",
        action="append",
        default=[],
        metavar="PACKAGE",
        help="also pip install PACKAGE into the service's venv (e.g. uvloop)",
    )


def installed(revision: str, extras: tuple[str, ...] = ()) -> tuple[Path, str]:
    """A venv with the service of `revision` installed as the README says (`pip
    install .`), plus any `extras` (e.g. "uvloop"); cached per commit and extras."""
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", revision], check=True, capture_output=True, text=True
    ).stdout.strip()
    venv = VENVS / "+".join([commit[:12], *extras])
    if (venv / "bin" / "portalpulse").exists():
        return venv, commit
    src = VENVS / f"src-{commit[:12]}"
    src.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", commit], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    print(f"[install] pip install . {' '.join(extras)} ({commit[:12]}) into {venv}", flush=True)
    pip = [str(venv / "bin" / "pip"), "install", "-q", str(src), *extras]
    subprocess.run(pip, check=True, cwd=str(src))
    return venv, commit


class ServiceProc:
    """`portalpulse serve` on Redis: from an installed venv, or from `source`."""

    def __init__(
        self,
        workdir: Path,
        redis_url: str,
        sites: list[str],
        source: Path | None = None,
        workers: int = 1,
        server_lines: tuple[str, ...] = (),
        venv: Path | None = None,
    ) -> None:
        self.workers = workers
        self.server_lines = server_lines  # extra `key = value` lines for [server]
        self.source = source  # the directory that holds the `portalpulse` package
        self.venv = venv  # or a venv where it is installed
        self.port = free_port()
        self.workdir = workdir
        self.redis_url = redis_url
        self.sites = sites
        self.proc: subprocess.Popen[bytes] | None = None
        self.config = workdir / "portalpulse.toml"
        self.log = workdir / "service.log"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        lines = [*SERVER_TIMING, *self.server_lines, ""]
        for site in self.sites:
            lines += [f"[sites.{site}]", f'name = "Cổng thông tin {site}"', 'origins = ["*"]', ""]
        self.config.write_text("\n".join(lines))
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PORTALPULSE_CONFIG")}
        if self.venv is not None:
            command = [str(self.venv / "bin" / "portalpulse"), "serve"]
        else:
            env["PYTHONPATH"] = str(self.source)
            command = [sys.executable, "-m", "portalpulse.cli", "serve"]
        options = {
            "--config": str(self.config),
            "--port": str(self.port),
            "--redis": self.redis_url,
            "--workers": str(self.workers),
        }
        for option, value in options.items():
            command += [option, value]
        self.proc = subprocess.Popen(
            command,
            stdout=open(self.log, "wb"),  # noqa: SIM115 - kept for the child
            stderr=subprocess.STDOUT,
            env=env,
            cwd=self.workdir,
            preexec_fn=raise_fd_limit,
        )
        _wait_until(lambda: self.get("/readyz")[0] == 200, 60, "portalpulse serve")

    def get(self, path: str) -> tuple[int, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, response.read().decode()
        finally:
            conn.close()

    def metrics(self) -> dict[str, float]:
        """The /metrics samples, keyed by `name{labels}` as exposed."""
        status, body = self.get("/metrics")
        if status != 200:
            raise RuntimeError(f"/metrics answered {status}")
        samples = {}
        for line in body.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                samples[name] = float(value)
        return samples

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        _stop(self.proc, wait=20)
