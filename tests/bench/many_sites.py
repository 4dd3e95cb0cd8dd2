"""Benchmark what many small sites cost: S sites x I instances x R readers a site.

    python tests/bench/many_sites.py --sites 200 --instances 1 --readers 4 --mode quiet
    python tests/bench/many_sites.py --sites 200 --instances 4 --readers 4 --mode quiet

Installs the service of `--service-revision` the way the README does (`pip
install .` into a fresh venv, cached per commit), starts one private
redis-server and I `portalpulse serve` processes sharing it, each with the
same S sites, then opens R WebSocket readers per site, reader k of a site on
instance k mod I (so with R >= I every instance holds every site).
`--mode quiet`: readers say hello on one page and beat every 15 s with nothing
new (nothing a reader can see changes). `--mode churn`: every beat opens a new
page (a view, a new trending order). After `--settle` seconds it measures for
`--duration` seconds and prints Redis CPU (INFO CPU), the commands Redis ran
(INFO commandstats, script bodies included) and the services' CPU (/proc),
each per site-second. Not a pytest test; figures in docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import measures
import profilers
import redis
from stack import (
    REPO,
    RedisProc,
    ServiceProc,
    add_with_option,
    cpu_seconds,
    installed,
    machine_cpu,
    raise_fd_limit,
    rss_kb,
    wait_idle,
    wakeups,
    with_children,
)
from wsclient import WsClient

sys.path.insert(0, str(REPO / "tests"))
from support.processes import redis_cluster

ORIGIN = "https://bench.portalpulse.test"
SOURCES = [f"127.0.0.{n}" for n in range(2, 251)]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sites", type=int, default=200)
    p.add_argument("--instances", type=int, default=1)
    p.add_argument("--readers", type=int, default=4, help="readers per site")
    p.add_argument("--mode", choices=("quiet", "churn"), default="quiet")
    p.add_argument(
        "--beat-every",
        type=float,
        default=15,
        help="seconds between a reader's beats (the widget's: 15); less to profile beats",
    )
    p.add_argument("--duration", type=float, default=60, help="measurement window, seconds")
    p.add_argument("--settle", type=float, default=20, help="seconds after the ramp, unmeasured")
    p.add_argument("--service-revision", default="HEAD", help="git revision of the service")
    p.add_argument(
        "--cluster", type=int, default=0, metavar="MASTERS", help="a private Redis Cluster instead"
    )
    p.add_argument(
        "--wait-quiet", type=float, default=60, help="wait up to this long for idle CPUs"
    )
    p.add_argument("--out", help="write the JSON summary here")
    add_with_option(p)
    p.add_argument("--py-spy", help="profile the first instance over the window into this dir")
    p.add_argument(
        "--py-spy-rate",
        type=int,
        default=100,
        help="py-spy's samples a second (a quiet service needs 1000 for a profile)",
    )
    return p.parse_args(argv)


class Reader(WsClient):
    """A widget on a quiet page (beats with nothing new), or one that keeps reading on."""

    def __init__(
        self, port: int, site: str, visitor: str, page: int, churn: bool, every: float
    ) -> None:
        super().__init__("127.0.0.1", port, f"/ws?site={site}", ORIGIN)
        self.visitor, self.page, self.churn, self.every = visitor, page, churn, every
        self.snapshots = 0
        self._timer: asyncio.TimerHandle | None = None

    def _page(self) -> str:
        return f'{{"path":"/tin/{self.page}.html","title":"Tin {self.page}"}}'

    def on_open(self) -> None:
        self.send_text(
            f'{{"type":"hello","visitor":"{self.visitor}","pages":[{self._page()}],"engaged":true}}'
        )
        self._timer = asyncio.get_running_loop().call_later(
            random.uniform(0, self.every), self.beat
        )

    def beat(self) -> None:
        if not self.open:
            return
        if self.churn:
            self.page = random.randrange(1, 50)
            self.send_text(f'{{"type":"beat","engaged":true,"pages":[{self._page()}]}}')
        else:
            self.send_text('{"type":"beat","engaged":true}')
        every = self.every
        self._timer = asyncio.get_running_loop().call_later(
            random.uniform(every * 0.9, every * 1.1), self.beat
        )

    def on_text(self, payload: bytes, received_at: float) -> None:
        if payload.startswith(b'{"type":"snapshot"'):
            self.snapshots += 1

    def on_closed(self) -> None:
        if self._timer is not None:
            self._timer.cancel()


def readers_main(
    plan: list[tuple[int, str]], churn: bool, every: float, control: Any, results: Any
) -> None:
    """One load-generator process: open every (port, site) reader, hold until told to stop."""
    raise_fd_limit()

    async def main() -> dict[str, int]:
        readers: list[Reader] = []
        failed = 0
        gate = asyncio.Semaphore(100)
        loop = asyncio.get_running_loop()

        async def one(n: int, port: int, site: str) -> None:
            nonlocal failed
            visitor = "".join(random.choices("abcdefghijklmnopqrstuvwxyz0123456789", k=22))
            reader = Reader(port, site, visitor, random.randrange(1, 50), churn, every)
            async with gate:
                try:
                    source = (SOURCES[n % len(SOURCES)], 0)
                    await loop.create_connection(
                        lambda: reader, "127.0.0.1", port, local_addr=source
                    )
                    await asyncio.wait_for(asyncio.shield(reader.ready), 20)
                except (OSError, TimeoutError, ConnectionError):
                    failed += 1
                    reader.abort()
                    return
            readers.append(reader)

        await asyncio.gather(*(one(n, port, site) for n, (port, site) in enumerate(plan)))
        control[0] = len(readers)
        control[1] = failed
        while not control[2]:
            await asyncio.sleep(0.2)
        report = {
            "held": sum(1 for r in readers if r.open),
            "failed": failed,
            "snapshots": sum(r.snapshots for r in readers),
            "pings": sum(r.pings for r in readers),
        }
        for reader in readers:
            reader.abort()
        return report

    results.send(asyncio.run(main()))


def redis_cpu(info: dict[str, Any]) -> float:
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def command_usec(after: dict[str, Any], before: dict[str, Any], names: tuple[str, ...]) -> float:
    """Microseconds Redis spent executing these top-level commands (INFO commandstats;
    a script's usec includes the commands it ran)."""
    total = 0.0
    for name in names:
        new, old = after.get(f"cmdstat_{name}") or {}, before.get(f"cmdstat_{name}") or {}
        total += float(new.get("usec", 0)) - float(old.get("usec", 0))
    return total


class ManySites:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.workdir = Path(tempfile.mkdtemp(prefix="portalpulse-many-"))
        self.venv, self.commit = installed(args.service_revision, tuple(args.extra))
        self.redis = RedisProc(self.workdir)
        self.stack = contextlib.ExitStack()
        self.redis_ports = [self.redis.port]
        url = self.redis.url
        if args.cluster:
            nodes = self.stack.enter_context(redis_cluster(self.workdir / "cluster", args.cluster))
            self.redis_ports, url = [n.port for n in nodes], nodes[0].url
        self.sites = [f"s{n:05d}" for n in range(args.sites)]
        self.instances = []
        for n in range(args.instances):
            (self.workdir / f"i{n}").mkdir()
            self.instances.append(
                ServiceProc(self.workdir / f"i{n}", url, self.sites, venv=self.venv)
            )
        self.result: dict[str, Any] = {"args": vars(args), "service_commit": self.commit}

    def run(self) -> dict[str, Any]:
        args = self.args
        ctx = multiprocessing.get_context("fork")
        control = ctx.RawArray("d", 3)
        receiver, sender = ctx.Pipe(duplex=False)
        worker = None
        try:
            self._wait_quiet()
            if not args.cluster:
                self.redis.start()
            for instance in self.instances:
                instance.start()
            # What Redis and the services cost with no reader at all (timers, pings).
            idle_before = self._readings()
            time.sleep(10)
            idle_after = self._readings()
            idle_seconds = idle_after["wall"] - idle_before["wall"]
            self.result["idle"] = {
                "redis_cpu_share": (
                    redis_cpu(idle_after["redis"]) - redis_cpu(idle_before["redis"])
                )
                / idle_seconds,
                "service_cpu_share": (idle_after["service_cpu"] - idle_before["service_cpu"])
                / idle_seconds,
            }
            plan = [
                (self.instances[(s + k) % args.instances].port, site)
                for s, site in enumerate(self.sites)
                for k in range(args.readers)
            ]
            worker = ctx.Process(
                target=readers_main,
                args=(plan, args.mode == "churn", args.beat_every, control, sender),
            )
            worker.start()
            deadline = time.monotonic() + 120
            while control[0] + control[1] < len(plan) and time.monotonic() < deadline:
                time.sleep(1)
            print(f"[ramp] {int(control[0])} readers open, {int(control[1])} failed", flush=True)
            time.sleep(args.settle)
            before = self._readings()
            spy = None
            if args.py_spy:
                Path(args.py_spy).mkdir(parents=True, exist_ok=True)
                spy = profilers.start_py_spy(
                    self.instances[0].pid,
                    int(args.duration) - 2,
                    Path(args.py_spy),
                    args.py_spy_rate,
                )
            time.sleep(args.duration)
            after = self._readings()
            if spy is not None:
                spy.wait(30)
                self.result["profile"] = profilers.top_frames(Path(args.py_spy) / "profile.txt")
            control[2] = 1
            clients = receiver.recv() if receiver.poll(30) else {}
            self._summarise(before, after, clients, worker.pid or 0)
        finally:
            control[2] = 1
            for instance in self.instances:
                self.result.setdefault("log_tails", []).append(instance.log_tail(5))
                instance.stop()
            if not args.cluster:
                self.redis.stop()
            self.stack.close()
            if worker is not None:
                worker.join(10)
                if worker.is_alive():
                    worker.kill()
        return self.result

    def _wait_quiet(self) -> None:
        self.result["busy_before_start"] = wait_idle(self.args.wait_quiet, 0.3)

    def _redis_info(self) -> dict[str, Any]:
        """INFO of the Redis, or the CPU and command counts summed over a Cluster's nodes."""
        if not self.args.cluster:
            info = self.redis.info("all")
            return {**info, "wakeups": wakeups(int(str(info["process_id"])))}
        total: dict[str, Any] = {"used_cpu_sys": 0.0, "used_cpu_user": 0.0, "wakeups": 0}
        for port in self.redis_ports:
            with redis.Redis(port=port) as client:
                info = client.info("all")
            total["wakeups"] += wakeups(int(info["process_id"]))
            for key in ("used_cpu_sys", "used_cpu_user"):
                total[key] += float(info[key])
            for key, value in info.items():
                if key.startswith("cmdstat_"):
                    mine = total.setdefault(key, {"calls": 0, "usec": 0.0})
                    mine["calls"] += int(value["calls"])
                    mine["usec"] += float(value["usec"])
        return total

    def _readings(self) -> dict[str, Any]:
        service = [pid for i in self.instances for pid in with_children(i.pid)]
        return {
            "wall": time.time(),
            "redis": self._redis_info(),
            "service_cpu": sum(cpu_seconds(pid) for pid in service),
            "service_wakeups": sum(wakeups(pid) for pid in service),
            "service_rss_kb": sum(rss_kb(pid) for pid in service),
            "machine": machine_cpu(),
        }

    def _summarise(
        self, before: dict[str, Any], after: dict[str, Any], clients: dict[str, Any], pid: int
    ) -> None:
        seconds = after["wall"] - before["wall"]
        site_seconds = len(self.sites) * seconds
        r0, r1 = before["redis"], after["redis"]
        calls = measures.commandstats_delta(r1, r0)
        busy = sum(after["machine"][k] - before["machine"][k] for k in after["machine"])
        idle = sum(after["machine"][k] - before["machine"][k] for k in ("idle", "iowait"))
        service_cpu = after["service_cpu"] - before["service_cpu"]
        redis_cpu_s = redis_cpu(r1) - redis_cpu(r0)
        self.result["window"] = {
            "seconds": round(seconds, 1),
            "readers_held": clients.get("held"),
            "readers_failed": clients.get("failed"),
            "snapshots_per_reader": clients.get("snapshots", 0) / max(1, clients.get("held") or 1),
            "pings_per_reader": clients.get("pings", 0) / max(1, clients.get("held") or 1),
            "redis_cpu_share": redis_cpu_s / seconds,
            "redis_us_per_site_second": redis_cpu_s * 1e6 / site_seconds,
            "redis_net_us_per_site_second": (
                redis_cpu_s - self.result["idle"]["redis_cpu_share"] * seconds
            )
            * 1e6
            / site_seconds,
            "redis_script_us_per_site_second": command_usec(r1, r0, ("evalsha", "mget", "get"))
            / site_seconds,
            "redis_calls": calls,
            "redis_commands_per_site_second": sum(calls.values()) / site_seconds,
            "evalsha_per_site_second": calls.get("evalsha", 0) / site_seconds,
            "service_cpu_share": service_cpu / seconds,
            "service_us_per_site_second": service_cpu * 1e6 / site_seconds,
            "service_net_us_per_site_second": (
                service_cpu - self.result["idle"]["service_cpu_share"] * seconds
            )
            * 1e6
            / site_seconds,
            "redis_wakeups_per_site_second": (r1["wakeups"] - r0["wakeups"]) / site_seconds,
            "service_wakeups_per_site_second": (
                after["service_wakeups"] - before["service_wakeups"]
            )
            / site_seconds,
            "service_rss_mib": after["service_rss_kb"] / 1024,
            "machine_busy_other_share": (busy - idle) / seconds
            - (service_cpu + redis_cpu_s) / seconds,
        }
        del pid


def report(result: dict[str, Any]) -> str:
    a, w = result["args"], result["window"]
    top = ", ".join(
        f"{name} {n / w['seconds']:.0f}/s" for name, n in list(w["redis_calls"].items())[:6]
    )
    rows = [
        ("service", f"{result['service_commit'][:12]} (pip install . into a venv)"),
        (
            "sites x instances x readers",
            f"{a['sites']} x {a['instances']} x {a['readers']} ({a['mode']})",
        ),
        ("readers held / failed", f"{w['readers_held']} / {w['readers_failed']}"),
        ("window", f"{w['seconds']} s"),
        ("snapshots per reader (whole run)", f"{w['snapshots_per_reader']:.1f}"),
        ("pings per reader (whole run)", f"{w.get('pings_per_reader', 0):.1f}"),
        ("Redis CPU", f"{w['redis_cpu_share']:.1%} of a core"),
        ("Redis CPU per site-second", f"{w['redis_us_per_site_second']:.1f} µs"),
        (
            "  less Redis idle CPU",
            f"{w['redis_net_us_per_site_second']:.1f} µs"
            f" (idle {result['idle']['redis_cpu_share']:.2%} of a core)",
        ),
        (
            "  in EVALSHA + MGET + GET",
            f"{w['redis_script_us_per_site_second']:.1f} µs (INFO commandstats usec)",
        ),
        ("Redis commands per site-second", f"{w['redis_commands_per_site_second']:.1f}"),
        (
            "Redis wake-ups per site-second",
            f"{w.get('redis_wakeups_per_site_second', 0):.3f} (voluntary context switches)",
        ),
        ("EVALSHA per site-second", f"{w['evalsha_per_site_second']:.2f}"),
        ("Redis commands", top),
        ("service CPU (all instances)", f"{w['service_cpu_share']:.1%} of a core"),
        ("service CPU per site-second", f"{w['service_us_per_site_second']:.1f} µs"),
        (
            "  less its CPU with no reader",
            f"{w['service_net_us_per_site_second']:.1f} µs"
            f" (idle {result['idle']['service_cpu_share']:.2%} of a core)",
        ),
        (
            "service wake-ups per site-second",
            f"{w.get('service_wakeups_per_site_second', 0):.3f} (voluntary context switches)",
        ),
        ("service RSS (all instances)", f"{w['service_rss_mib']:.0f} MiB"),
        ("other processes", f"{w['machine_busy_other_share']:.0%} of a CPU"),
    ]
    return measures.table(rows)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bench = ManySites(args)
    print(f"work dir {bench.workdir}", flush=True)
    result = bench.run()
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2, default=str))
    print(report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
