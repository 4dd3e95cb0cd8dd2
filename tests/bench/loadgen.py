"""The load generator: simulated widget connections, in one or more processes.

Each simulated reader opens `GET /ws?site=...` from its own loopback source
address (127.0.0.2 .. 127.0.0.250, so no source runs out of ephemeral ports
and no address reaches the service's per-address cap), says `hello` with a
random visitor id and one page, then beats every `beat_interval` with jitter,
sometimes reporting a new page, and answers every ping with a pong.

Snapshot latency is the frame's arrival time minus its `ts` (the server's
clock when the snapshot was taken; both ends share this machine's clock),
recorded only for snapshots whose `ts` falls inside the measurement window
that the orchestrator publishes through shared memory.
"""

from __future__ import annotations

import asyncio
import random
import resource
import string
import time
from array import array
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from wsclient import WsClient

# Shared control block, written by the orchestrator and read by every worker.
WINDOW_START, WINDOW_END, STOP = 0, 1, 2
# Per-worker progress, written by the worker: opened, failed, closed since opened.
OPENED, FAILED, LOST = 0, 1, 2

SOURCES = [f"127.0.0.{n}" for n in range(2, 251)]
VISITOR_CHARS = string.ascii_letters + string.digits + "_-"
HANDSHAKE_TIMEOUT = 20.0
IN_FLIGHT = 200


def page_path(k: int) -> str:
    return f"/tin-tuc/bai-viet-so-{k}.html"


def page_title(k: int) -> str:
    return f"Tin số {k}: Hội nghị trực tuyến triển khai kế hoạch phát triển kinh tế - xã hội"


def page_json(k: int) -> str:
    return (
        f'{{"path":"{page_path(k)}","title":"{page_title(k)}",'
        '"referrer":"https://www.google.com/"}'
    )


@dataclass
class Plan:
    """What one worker process does."""

    index: int
    host: str
    port: int
    site: str
    connections: int
    pages: int
    ramp_rate: float  # new connections per second, this worker
    beat_interval: float
    page_change: float  # chance that a beat reports a new page
    engaged_share: float
    seed: int
    origin: str = "https://bench.portalpulse.test"
    deflate: bool = False  # offer permessage-deflate, as browsers do


@dataclass
class Stats:
    """What one worker measured."""

    latencies: array = field(default_factory=lambda: array("d"))
    handshake_seconds: array = field(default_factory=lambda: array("d"))
    failures: Counter[str] = field(default_factory=Counter)
    closes: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    snapshots_total: int = 0
    snapshot_bytes: int = 0  # the size of the last snapshot frame's payload
    beats: int = 0
    page_changes: int = 0
    pings: int = 0


class Reader(WsClient):
    """One simulated widget: hello, beats, pongs, and snapshot timing."""

    def __init__(self, gen: LoadGenerator, visitor: str, page: int) -> None:
        plan = gen.plan
        super().__init__(plan.host, plan.port, f"/ws?site={plan.site}", plan.origin, plan.deflate)
        self.gen = gen
        self.visitor = visitor
        self.page = page
        self.started = time.monotonic()
        self.in_window = 0
        self._beat: asyncio.TimerHandle | None = None

    def on_open(self) -> None:
        gen = self.gen
        gen.stats.handshake_seconds.append(time.monotonic() - self.started)
        self.send_text(
            f'{{"type":"hello","visitor":"{self.visitor}","pages":[{page_json(self.page)}],'
            '"engaged":true}'
        )
        first = gen.rng.uniform(0.0, gen.plan.beat_interval)
        self._beat = gen.loop.call_later(first, self.beat)

    def beat(self) -> None:
        if not self.open:
            return
        gen = self.gen
        rng = gen.rng
        engaged = "true" if rng.random() < gen.plan.engaged_share else "false"
        if rng.random() < gen.plan.page_change:
            self.page = gen.pick_page()
            gen.stats.page_changes += 1
            self.send_text(
                f'{{"type":"beat","engaged":{engaged},"pages":[{page_json(self.page)}]}}'
            )
        else:
            self.send_text(f'{{"type":"beat","engaged":{engaged}}}')
        gen.stats.beats += 1
        interval = gen.plan.beat_interval
        self._beat = gen.loop.call_later(rng.uniform(0.9 * interval, 1.1 * interval), self.beat)

    def on_text(self, payload: bytes, received_at: float) -> None:
        if payload.startswith(b'{"type":"snapshot"'):
            gen = self.gen
            gen.stats.snapshots_total += 1
            gen.stats.snapshot_bytes = len(payload)
            at = payload.rfind(b'"ts":')
            end = payload.find(b"}", at)
            comma = payload.find(b",", at)
            if 0 <= comma < end:
                end = comma
            ts = float(payload[at + 5 : end])
            if gen.window_start <= ts < gen.window_end:
                gen.stats.latencies.append(received_at - ts)
                self.in_window += 1
        elif payload.startswith(b'{"type":"error"'):
            start = payload.find(b'"code":"') + 8
            self.gen.stats.errors[payload[start : payload.find(b'"', start)].decode()] += 1

    def on_closed(self) -> None:
        if self._beat is not None:
            self._beat.cancel()
        gen = self.gen
        if self.upgraded and not gen.stopping:
            gen.stats.closes[str(self.close_code)] += 1
            gen.progress[LOST] += 1


class LoadGenerator:
    def __init__(self, plan: Plan, control: Any, progress: Any) -> None:
        self.plan = plan
        self.control = control
        self.progress = progress
        self.rng = random.Random(plan.seed)
        self.stats = Stats()
        self.readers: list[Reader] = []
        self.window_start = float("inf")
        self.window_end = float("inf")
        self.stopping = False
        self.loop = asyncio.get_running_loop()
        # A mild skew: a few pages are read much more than the rest, as on a portal.
        self._weights = [1.0 / (k + 1) ** 0.6 for k in range(plan.pages)]
        self._cum: list[float] = []
        total = 0.0
        for w in self._weights:
            total += w
            self._cum.append(total)

    def pick_page(self) -> int:
        return self.rng.choices(range(self.plan.pages), cum_weights=self._cum)[0] + 1

    def new_visitor(self) -> str:
        return "".join(self.rng.choices(VISITOR_CHARS, k=22))

    async def _open_one(self, n: int, gate: asyncio.Semaphore) -> None:
        plan = self.plan
        source = SOURCES[(plan.index + n * 7) % len(SOURCES)]
        reader = Reader(self, self.new_visitor(), self.pick_page())
        try:
            async with gate:
                await asyncio.wait_for(
                    self.loop.create_connection(
                        lambda: reader, plan.host, plan.port, local_addr=(source, 0)
                    ),
                    HANDSHAKE_TIMEOUT,
                )
                await asyncio.wait_for(asyncio.shield(reader.ready), HANDSHAKE_TIMEOUT)
        except (OSError, TimeoutError, ConnectionError) as exc:
            reason = str(exc) if isinstance(exc, ConnectionError) else type(exc).__name__
            if isinstance(exc, OSError) and exc.errno is not None:
                reason = f"{type(exc).__name__} errno {exc.errno}"
            self.stats.failures[reason] += 1
            self.progress[FAILED] += 1
            reader.abort()
            return
        self.readers.append(reader)
        self.progress[OPENED] += 1

    async def run(self) -> dict[str, Any]:
        plan = self.plan
        gate = asyncio.Semaphore(IN_FLIGHT)
        opening: set[asyncio.Task[None]] = set()
        began = time.monotonic()
        for n in range(plan.connections):
            due = began + n / plan.ramp_rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if self.control[STOP]:
                break
            task = asyncio.create_task(self._open_one(n, gate))
            opening.add(task)
            task.add_done_callback(opening.discard)
        if opening:
            await asyncio.wait(opening)
        while not self.control[STOP]:
            self.window_start = self.control[WINDOW_START] or float("inf")
            self.window_end = self.control[WINDOW_END] or float("inf")
            await asyncio.sleep(0.2)
        self.stopping = True
        return self._report()

    def _report(self) -> dict[str, Any]:
        stats = self.stats
        held = [r for r in self.readers if r.open]
        for reader in self.readers:
            stats.pings += reader.pings
        report = {
            "index": self.plan.index,
            "opened": len(self.readers),
            "held": len(held),
            "starved": sum(1 for r in held if r.in_window == 0),
            "failures": dict(stats.failures),
            "closes": dict(stats.closes),
            "errors": dict(stats.errors),
            "latencies": stats.latencies.tobytes(),
            "handshake_seconds": stats.handshake_seconds.tobytes(),
            "snapshots_total": stats.snapshots_total,
            "snapshot_bytes": stats.snapshot_bytes,
            "beats": stats.beats,
            "page_changes": stats.page_changes,
            "pings": stats.pings,
        }
        for reader in self.readers:
            reader.abort()
        return report


def raise_fd_limit() -> None:
    """Up to the hard limit: every connection is a file descriptor."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def worker_main(
    plan: Plan,
    control: Any,
    progress: Any,
    results: Connection,
) -> None:
    """Entry point of one load-generator process; sends its report through `results`."""
    raise_fd_limit()

    async def main() -> dict[str, Any]:
        return await LoadGenerator(plan, control, progress).run()

    try:
        results.send(asyncio.run(main()))
    except Exception as exc:  # reported to the orchestrator rather than lost
        results.send({"index": plan.index, "crash": repr(exc)})
    finally:
        results.close()
