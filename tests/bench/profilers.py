"""Profilers attached to the service during the measurement window, and what
their output says: py-spy for Python frames, perf for C and the kernel."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any, BinaryIO

IDLE_FRAMES = ("EpollSelector.select", "_PollLikeSelector.select")
# Kernel and C functions whose share (with what they call) explains the fan-out's cost.
PERF_CALLS = (
    "__send",
    "net_rx_action",
    "sock_def_readable",
    "ucs2lib_utf8_encoder",
    "epoll_wait",
)


def _spawn(command: list[str], log: Path) -> subprocess.Popen[bytes]:
    errors: BinaryIO = open(log, "wb")  # noqa: SIM115 - kept by the child
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors)


def start_py_spy(
    pid: int, seconds: int, out: Path, rate: int = 100
) -> subprocess.Popen[bytes] | None:
    """Sample `pid`'s Python stacks at `rate` Hz for `seconds` into out/profile.txt."""
    py_spy = shutil.which("py-spy")
    if py_spy is None:
        return None
    command = [py_spy, "record", "--pid", str(pid), "--duration", str(seconds)]
    command += ["--rate", str(rate), "--nonblocking", "--format", "raw"]
    return _spawn([*command, "--output", str(out / "profile.txt")], out / "py-spy.log")


def start_perf(pid: int, seconds: int, out: Path) -> subprocess.Popen[bytes] | None:
    """On-CPU samples of `pid` with call chains, kernel included, into out/perf.data."""
    perf = shutil.which("perf")
    if perf is None:
        return None
    command = [perf, "record", "-F", "499", "-g", "-p", str(pid), "-o", str(out / "perf.data")]
    return _spawn([*command, "--", "sleep", str(seconds)], out / "perf.log")


def top_frames(path: Path, limit: int = 15) -> dict[str, Any]:
    """The hottest functions of a py-spy raw (collapsed) profile, as shares of the
    busy samples: those not waiting in the event loop's selector."""
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    busy = idle = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        if frames[-1].startswith(IDLE_FRAMES):
            idle += count
            continue
        busy += count
        own[frames[-1]] = own.get(frames[-1], 0) + count
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + count

    def top(shares: dict[str, int]) -> list[tuple[str, float]]:
        ranked = sorted(shares.items(), key=lambda item: -item[1])[:limit]
        return [(frame, round(100 * n / max(1, busy), 1)) for frame, n in ranked]

    return {
        "busy_samples": busy,
        "idle_samples": idle,
        "self_percent": top(own),
        "inclusive_percent": top(inclusive),
    }


def perf_shares(out: Path) -> dict[str, Any]:
    """Shares of the service's CPU in out/perf.data: by library, and in `PERF_CALLS`."""
    perf, data = shutil.which("perf") or "perf", str(out / "perf.data")

    def report(*options: str) -> list[tuple[float, str]]:
        text = subprocess.run(
            [perf, "report", "-i", data, "--stdio", "-g", "none", *options],
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout
        rows = []
        for line in text.splitlines():
            fields = line.split()
            if fields and fields[0].endswith("%") and not line.startswith("#"):
                rows.append((float(fields[0].rstrip("%")), fields[-1]))
        return rows

    by_dso = report("--no-children", "--sort", "dso")[:6]
    calls = {
        name: share for share, name in report("--children", "--sort", "sym") if name in PERF_CALLS
    }
    return {"by_library": by_dso, "calls_with_children": calls}
