"""Benchmark Portal Pulse: N simulated widget connections against one service process.

    python tests/bench/run_bench.py --connections 1000 --pages 200 --duration 60

Starts a private redis-server and `portalpulse serve` (one process, the default
timing: beat 15 s, push 1 s, presence 45 s, grace 5 s), opens the connections
from load-generator processes over 127.0.0.2..250, lets them settle, then
measures for `--duration` seconds and prints a summary. It always stops by
itself and ends every process it started. Not a pytest test (see
docs/BENCHMARKS.md for the figures and how to read them).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import loadgen
import measures
import profilers
from stack import (
    RedisProc,
    ServiceProc,
    add_with_option,
    cpu_seconds,
    export_service,
    installed,
    machine_cpu,
    rss_kb,
    scheduling,
    wait_idle,
    with_children,
)
from summary import report

SITE = "bench"
REDIS_MEMORY_FIELDS = (
    "used_memory",
    "used_memory_dataset",
    "used_memory_overhead",
    "used_memory_scripts",
    "used_memory_vm_eval",
    "mem_clients_normal",
)
BUSY_STATES = ("user", "nice", "system", "irq", "softirq")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--connections", type=int, default=1000)
    p.add_argument("--pages", type=int, default=1000, help="distinct pages the readers choose from")
    p.add_argument("--duration", type=float, default=60, help="measurement window, seconds")
    p.add_argument("--settle", type=float, default=20, help="seconds after the ramp, unmeasured")
    p.add_argument("--ramp-rate", type=float, default=500, help="new connections per second")
    p.add_argument("--workers", type=int, default=0, help="load-generator processes (0: auto)")
    p.add_argument("--page-change", type=float, default=0.2, help="chance a beat changes page")
    p.add_argument(
        "--service-revision",
        default="HEAD",
        help='git revision to pip install and run, or "worktree": service/ as it is, uninstalled',
    )
    p.add_argument(
        "--wait-quiet",
        type=float,
        default=120,
        help="wait up to this many seconds for other processes to leave the CPUs idle",
    )
    p.add_argument(
        "--service-workers",
        type=int,
        default=1,
        help="portalpulse serve --workers N (service figures then sum over the processes)",
    )
    p.add_argument(
        "--server-option",
        action="append",
        default=[],
        metavar="'KEY = VALUE'",
        help="a TOML line added to the service's [server] table (repeatable)",
    )
    p.add_argument(
        "--deflate",
        action="store_true",
        help="readers offer permessage-deflate and send compressed frames, as browsers do",
    )
    p.add_argument("--perf", action="store_true", help="perf record the service (kernel too)")
    p.add_argument("--py-spy", action="store_true", help="profile the service over the window")
    p.add_argument("--out", help="directory for the JSON summary, logs and profile")
    add_with_option(p)
    return p.parse_args(argv)


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.workdir = Path(tempfile.mkdtemp(prefix="portalpulse-bench-"))
        self.out = Path(args.out) if args.out else self.workdir
        self.out.mkdir(parents=True, exist_ok=True)
        self.redis = RedisProc(self.workdir)
        source: Path | None = None
        venv: Path | None = None
        if args.service_revision == "worktree":
            source, self.commit = export_service("worktree", self.workdir / "src")
        else:
            # As the README installs it: `pip install .` into a venv of its own.
            venv, self.commit = installed(args.service_revision, tuple(args.extra))
        self.service = ServiceProc(
            self.workdir,
            self.redis.url,
            [SITE],
            source,
            workers=args.service_workers,
            server_lines=tuple(args.server_option),
            venv=venv,
        )
        self.workers: list[multiprocessing.Process] = []
        self.pipes: list[Any] = []
        self.progress: list[Any] = []
        self.control = multiprocessing.RawArray("d", 3)
        self.result: dict[str, Any] = {"args": vars(args), "service_commit": self.commit}
        self.notes: list[str] = []
        self.profiling: list[subprocess.Popen[bytes]] = []

    # -- phases ------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        try:
            self._wait_quiet()
            self.redis.start()
            self.service.start()
            time.sleep(2)
            base = self._readings()
            self.result["base"] = {"rss_kb": base["rss_kb"], "redis_used": base["redis_used"]}
            self._start_workers()
            self._ramp()
            self._watch(self.args.settle, "settle")
            self._window(base)
            self._collect()
        finally:
            self._stop_all()
        return self.result

    def _wait_quiet(self) -> None:
        """Others may share this machine (test suites, builds): start when it is idle."""
        self.result["busy_before_start"] = wait_idle(self.args.wait_quiet, 0.2)

    def _start_workers(self) -> None:
        args = self.args
        count = args.workers or (1 if args.connections <= 2000 else 2)
        ctx = multiprocessing.get_context("fork")
        for index in range(count):
            share = args.connections // count + (1 if index < args.connections % count else 0)
            plan = loadgen.Plan(
                index=index,
                host="127.0.0.1",
                port=self.service.port,
                site=SITE,
                connections=share,
                pages=args.pages,
                ramp_rate=args.ramp_rate / count,
                beat_interval=15.0,
                page_change=args.page_change,
                engaged_share=0.7,
                seed=1000 + index,
                deflate=args.deflate,
            )
            progress = ctx.RawArray("l", 3)
            receiver, sender = ctx.Pipe(duplex=False)
            proc = ctx.Process(
                target=loadgen.worker_main,
                args=(plan, self.control, progress, sender),
                daemon=True,
            )
            proc.start()
            sender.close()
            self.workers.append(proc)
            self.pipes.append(receiver)
            self.progress.append(progress)

    def _counts(self) -> tuple[int, int, int]:
        opened = sum(p[loadgen.OPENED] for p in self.progress)
        failed = sum(p[loadgen.FAILED] for p in self.progress)
        lost = sum(p[loadgen.LOST] for p in self.progress)
        return opened, failed, lost

    def _status(self, phase: str) -> str:
        opened, failed, lost = self._counts()
        rss = rss_kb(self.service.pid) if self.service.alive() else 0
        return (
            f"[{phase}] opened {opened} failed {failed} closed {lost} "
            f"service RSS {rss / 1024:.0f} MiB"
        )

    def _ramp(self) -> None:
        args = self.args
        began = time.monotonic()
        limit = args.connections / args.ramp_rate + 90
        while time.monotonic() - began < limit:
            opened, failed, _ = self._counts()
            if opened + failed >= args.connections or not self.service.alive():
                break
            time.sleep(1)
            print(self._status("ramp"), flush=True)
        self.result["ramp_seconds"] = round(time.monotonic() - began, 1)
        if not self.service.alive():
            raise RuntimeError("the service died during the ramp:\n" + self.service.log_tail())

    def _watch(self, seconds: float, phase: str) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            time.sleep(min(10, max(0.0, end - time.monotonic())))
            print(self._status(phase), flush=True)

    def _readings(self) -> dict[str, Any]:
        info = self.redis.info("all")
        service = with_children(self.service.pid)
        pids = {"redis": self.redis.proc.pid}  # type: ignore[union-attr]
        for n, proc in enumerate(self.workers):
            pids[f"loadgen{n}"] = proc.pid  # type: ignore[assignment]
        cpu = {name: cpu_seconds(pid) for name, pid in pids.items()}
        cpu["service"] = sum(cpu_seconds(pid) for pid in service)
        sched: dict[str, float] = {}
        for pid in service:
            for key, value in scheduling(pid).items():
                sched[key] = sched.get(key, 0.0) + value
        return {
            "wall": time.time(),
            "rss_kb": sum(rss_kb(pid) for pid in service),
            "cpu": cpu,
            "sched": sched,
            "machine": machine_cpu(),
            "redis_used": int(info["used_memory"]),  # type: ignore[call-overload]
            "redis_info": info,
            "metrics": self.service.metrics(),
        }

    def _window(self, base: dict[str, Any]) -> None:
        duration = self.args.duration
        start = time.time() + 1.0
        self.control[loadgen.WINDOW_START] = start
        self.control[loadgen.WINDOW_END] = start + duration
        time.sleep(max(0.0, start - time.time()))
        before = self._readings()
        self._start_profilers(int(duration) - 2)
        self._watch(duration - 0.5, "window")
        time.sleep(max(0.0, start + duration - time.time()))
        after = self._readings()
        self.result["redis_keys"] = self._redis_keys(after["metrics"])
        self._summarise_window(base, before, after)
        time.sleep(2)  # snapshots taken before the window's end are still arriving
        self.control[loadgen.STOP] = 1

    def _start_profilers(self, seconds: int) -> None:
        wanted = {"py-spy": (self.args.py_spy, profilers.start_py_spy)}
        wanted["perf"] = (self.args.perf, profilers.start_perf)
        for name, (on, start) in wanted.items():
            if on:
                proc = start(self.service.pid, seconds, self.out)
                if proc is None:
                    self.notes.append(f"{name} is not installed: no profile")
                else:
                    self.profiling.append(proc)

    def _collect(self) -> None:
        reports = []
        for pipe in self.pipes:
            if pipe.poll(60):
                reports.append(pipe.recv())
            else:
                self.notes.append("a load generator sent no report within 60 s")
        for worker in reports:
            if "crash" in worker:
                self.notes.append(f"load generator {worker['index']} crashed: {worker['crash']}")
        reports = [r for r in reports if "crash" not in r]
        self._summarise_clients(reports)
        try:
            for profiler in self.profiling:
                profiler.wait(30)
            if self.args.py_spy:
                self.result["profile"] = profilers.top_frames(self.out / "profile.txt")
            if self.args.perf:
                self.result["perf"] = profilers.perf_shares(self.out)
        except (subprocess.SubprocessError, OSError) as exc:
            self.notes.append(f"profile unavailable: {exc!r}")

    def _stop_all(self) -> None:
        self.control[loadgen.STOP] = 1
        for profiler in self.profiling:
            if profiler.poll() is None:
                profiler.kill()
                profiler.wait(5)
        self.result["service_log_tail"] = self.service.log_tail(40)
        self.service.stop()
        self.redis.stop()
        for proc in self.workers:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
                proc.join(5)
        self.result["notes"] = self.notes
        if self.out != self.workdir:
            for name in ("service.log", "redis.log", "portalpulse.toml"):
                if (self.workdir / name).exists():
                    shutil.copy(self.workdir / name, self.out / name)
            shutil.rmtree(self.workdir, ignore_errors=True)

    # -- figures -----------------------------------------------------------------

    def _redis_keys(self, metrics: dict[str, float]) -> dict[str, Any]:
        """Every key of the site with its type, elements and bytes; the online count
        as the service reports it; and how many pages the store tracks."""
        keys = self.redis.key_sizes(f"pp:{{{SITE}}}:")
        pages = keys.get("pages", keys.get("titles", {})).get("elements", 0)
        memory = self.redis.info("memory")
        return {
            "keys": keys,
            "total_bytes": sum(k["bytes"] for k in keys.values()),
            "online": int(metrics.get(f'portalpulse_online_visitors{{site="{SITE}"}}', 0)),
            "pages": pages,
            "memory": {k: v for k, v in memory.items() if k in REDIS_MEMORY_FIELDS},
        }

    def _summarise_window(
        self, base: dict[str, Any], before: dict[str, Any], after: dict[str, Any]
    ) -> None:
        seconds = after["wall"] - before["wall"]
        m0, m1 = before["metrics"], after["metrics"]
        opened, _, lost = self._counts()
        held_service = float(opened - lost)
        cpu = {name: (after["cpu"][name] - before["cpu"][name]) / seconds for name in after["cpu"]}
        ticks = measures.delta(m1, m0, "portalpulse_tick_seconds_count")
        flushes = measures.delta(m1, m0, 'portalpulse_store_seconds_count{op="flush"}')
        if self.args.service_workers > 1:
            # Each scrape reaches one worker at random: its counters say nothing of the others.
            self.notes.append(
                f"{self.args.service_workers} service workers: ticks are nominal"
                " (one per second per worker); histograms and GC from /metrics are left out"
            )
            m0 = m1 = {}
            ticks = flushes = round(seconds) * self.args.service_workers
        info0, info1 = before["redis_info"], after["redis_info"]
        commands = int(info1["total_commands_processed"]) - int(info0["total_commands_processed"])
        calls = measures.commandstats_delta(info1, info0)
        keys = self.result["redis_keys"]
        redis_delta = after["redis_used"] - base["redis_used"]
        self.result["window"] = {
            "seconds": seconds,
            "service_connections": held_service,
            "rss_kb_before": base["rss_kb"],
            "rss_kb_after": after["rss_kb"],
            "kb_per_connection": (after["rss_kb"] - base["rss_kb"]) / max(1.0, held_service),
            "cpu_share": cpu,
            "cpu_us_per_connection_second": cpu["service"] * 1e6 / max(1.0, held_service),
            "service_sched_per_second": {
                k: (after["sched"][k] - before["sched"][k]) / seconds for k in after["sched"]
            },
            "machine_share": {
                k: (after["machine"][k] - before["machine"][k]) / seconds for k in after["machine"]
            },
            "others_cpu_share": max(
                0.0,
                sum(after["machine"][k] - before["machine"][k] for k in BUSY_STATES) / seconds
                - sum(cpu.values()),
            ),
            "ticks": ticks,
            "flushes": flushes,
            # The closing INFO is the harness's own command inside the delta.
            "redis_commands": commands - 1,
            "redis_commands_per_tick": (commands - 1) / ticks if ticks else math.nan,
            "redis_calls": calls,
            "evalsha_per_tick": calls.get("evalsha", 0) / ticks if ticks else math.nan,
            "redis_used_delta": redis_delta,
            "redis_bytes_per_visitor": redis_delta / keys["online"] if keys["online"] else math.nan,
            "push": measures.histogram_delta(m1, m0, "portalpulse_push_seconds"),
            "tick": measures.histogram_delta(m1, m0, "portalpulse_tick_seconds"),
            "loop_lag": measures.histogram_delta(m1, m0, "portalpulse_event_loop_lag_seconds"),
            "gc_collections": {
                gen: measures.delta(m1, m0, f'python_gc_collections_total{{generation="{gen}"}}')
                for gen in ("0", "1", "2")
            },
            "snapshots_sent": measures.delta(m1, m0, "portalpulse_snapshots_sent_total"),
            "conflated": measures.delta(m1, m0, "portalpulse_snapshots_conflated_total"),
            "closed_by_service": {
                k: v for k, v in m1.items() if k.startswith("portalpulse_connections_closed_total")
            },
        }

    def _summarise_clients(self, reports: list[dict[str, Any]]) -> None:
        latencies = measures.merge_samples(reports, "latencies")
        handshakes = measures.merge_samples(reports, "handshake_seconds")
        held = sum(r["held"] for r in reports)
        self.result["clients"] = {
            "requested": self.args.connections,
            "opened": sum(r["opened"] for r in reports),
            "held": held,
            "starved": sum(r["starved"] for r in reports),
            "failures": measures.merge_counters(reports, "failures"),
            "closes": measures.merge_counters(reports, "closes"),
            "errors": measures.merge_counters(reports, "errors"),
            "beats": sum(r["beats"] for r in reports),
            "page_changes": sum(r["page_changes"] for r in reports),
            "pings_answered": sum(r["pings"] for r in reports),
            "samples": len(latencies),
            "snapshot_bytes": max((r.get("snapshot_bytes", 0) for r in reports), default=0),
            "snapshots_per_connection_second": (
                len(latencies) / (held * self.args.duration) if held else math.nan
            ),
            "latency": {f"p{q}": measures.percentile(latencies, q) for q in (50, 90, 95, 99, 99.9)}
            | {"max": latencies[-1] if latencies else math.nan},
            "handshake": {
                "p50": measures.percentile(handshakes, 50),
                "p99": measures.percentile(handshakes, 99),
            },
        }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bench = Bench(args)
    print(f"work dir {bench.workdir}; output {bench.out}", flush=True)
    try:
        result = bench.run()
    except Exception as exc:
        print(f"benchmark failed: {exc!r}", file=sys.stderr)
        print(bench.result.get("service_log_tail", ""), file=sys.stderr)
        return 1
    (bench.out / "summary.json").write_text(json.dumps(result, indent=2, default=str))
    print(report(result))
    print(f"\nfull figures: {bench.out / 'summary.json'}")
    if "Traceback" in result.get("service_log_tail", ""):
        print("the service logged a traceback; see service.log in the work dir", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
