"""Where a held widget connection's memory goes: tracemalloc in the service.

    python tests/bench/conn_memory.py --connections 2000

Starts a private redis-server and `portalpulse serve` (the `portalpulse` this
interpreter imports: run it with the worktree's venv) under tracemalloc,
opens a few connections to warm it up, takes a snapshot, opens `--connections`
more (each says hello on one of 1,000 pages and stays), waits a few ticks,
takes another, and prints the Python allocations the held connections added,
per connection: the total, then by source line and by file. RSS under
tracemalloc is about twice the real one; run_bench.py gives the real figure.
Not a pytest test (see docs/BENCHMARKS.md, "Memory per connection").
"""

from __future__ import annotations

import argparse
import asyncio
import linecache
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from stack import SERVER_TIMING, RedisProc, free_port, raise_fd_limit, rss_kb
from wsclient import WsClient

WARM_UP = 200
PAGES = 1000


def serve_traced(snapshots: str, argv: list[str]) -> int:
    """In the service's process: `portalpulse serve argv`, each SIGUSR1 writing a
    tracemalloc snapshot to `snapshots`/N.tm (then N.done)."""
    tracemalloc.start(1)
    taken = 0

    def dump(signum: int, frame: Any) -> None:
        nonlocal taken
        import gc

        taken += 1
        gc.collect()
        tracemalloc.take_snapshot().dump(f"{snapshots}/{taken}.tm")
        Path(f"{snapshots}/{taken}.done").write_text(str(rss_kb(os.getpid())))

    signal.signal(signal.SIGUSR1, dump)
    from portalpulse.cli import main

    return main(["serve", *argv])


class Reader(WsClient):
    def on_open(self) -> None:
        visitor = "".join(random.choices("abcdefghijklmnopqrstuvwxyz0123456789", k=22))
        k = random.randrange(PAGES)
        page = f'{{"path":"/tin-tuc/bai-viet-so-{k}.html","title":"Bài viết số {k} về một chủ đề"}}'
        self.send_text(f'{{"type":"hello","visitor":"{visitor}","pages":[{page}],"engaged":true}}')


async def open_readers(port: int, count: int, first: int) -> list[Reader]:
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(100)
    readers: list[Reader] = []

    async def one(n: int) -> None:
        async with gate:
            _, reader = await loop.create_connection(
                lambda: Reader("127.0.0.1", port, "/ws?site=bench", "https://example.com"),
                "127.0.0.1",
                port,
                local_addr=(f"127.0.0.{2 + n % 240}", 0),
            )
            await reader.ready
            readers.append(reader)

    await asyncio.gather(*(one(first + n) for n in range(count)))
    return readers


def snapshot(proc: subprocess.Popen[bytes], folder: Path, n: int) -> tuple[Path, int]:
    proc.send_signal(signal.SIGUSR1)
    done = folder / f"{n}.done"
    deadline = time.monotonic() + 300
    while not done.exists():
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError("the service wrote no snapshot")
        time.sleep(0.2)
    return folder / f"{n}.tm", int(done.read_text())


def short(filename: str) -> str:
    """A source file's name from its package on (site-packages, stdlib, service)."""
    return re.split(r"site-packages/|service/|/lib/python3\.\d+/", filename)[-1]


def report(before: Path, after: Path, rss: tuple[int, int], count: int, lines: int) -> None:
    old = tracemalloc.Snapshot.load(str(before))
    new = tracemalloc.Snapshot.load(str(after))
    by_line = new.compare_to(old, "lineno")
    total = sum(stat.size_diff for stat in by_line)
    print(f"held connections: {count}")
    print(f"Python allocations per connection: {total / count:.0f} B")
    print(f"RSS per connection (under tracemalloc): {(rss[1] - rss[0]) / count * 1024:.0f} B")
    print("\nper connection, by line (bytes, blocks):")
    for stat in by_line[:lines]:
        where = stat.traceback[0]
        source = linecache.getline(where.filename, where.lineno).strip()[:60]
        print(
            f"{stat.size_diff / count:7.0f} {stat.count_diff / count:6.2f}  "
            f"{short(where.filename)}:{where.lineno}  {source}"
        )
    print("\nper connection, by file:")
    for stat in new.compare_to(old, "filename")[:lines]:
        print(f"{stat.size_diff / count:7.0f}  {short(stat.traceback[0].filename)}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--connections", type=int, default=2000)
    p.add_argument("--settle", type=float, default=8.0, help="seconds after the last opened")
    p.add_argument("--lines", type=int, default=40, help="rows of each table")
    args = p.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="portalpulse-connmem-"))
    redis_proc = RedisProc(workdir)
    service: subprocess.Popen[bytes] | None = None
    try:
        redis_proc.start()
        port = free_port()
        config = workdir / "portalpulse.toml"
        site = ["[sites.bench]", 'name = "bench"', 'origins = ["*"]', ""]
        config.write_text("\n".join([*SERVER_TIMING, "", *site]))
        serve = ["--config", str(config), "--port", str(port), "--redis", redis_proc.url]
        service = subprocess.Popen(
            [sys.executable, __file__, "--serve-traced", str(workdir), *serve],
            stdout=open(workdir / "service.log", "wb"),  # noqa: SIM115 - kept for the child
            stderr=subprocess.STDOUT,
            preexec_fn=raise_fd_limit,
        )
        raise_fd_limit()
        asyncio.run(measure(service, workdir, port, args))
    finally:
        if service is not None and service.poll() is None:
            service.send_signal(signal.SIGTERM)
            try:
                service.wait(20)
            except subprocess.TimeoutExpired:
                service.kill()
        redis_proc.stop()


async def measure(
    service: subprocess.Popen[bytes], workdir: Path, port: int, args: argparse.Namespace
) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            break
        except OSError:
            if time.monotonic() > deadline or service.poll() is not None:
                raise RuntimeError("portalpulse serve did not start") from None
            await asyncio.sleep(0.3)
    warm = await open_readers(port, WARM_UP, 0)
    await asyncio.sleep(args.settle)
    before, rss_before = await asyncio.to_thread(snapshot, service, workdir, 1)
    held = await open_readers(port, args.connections, WARM_UP)
    await asyncio.sleep(args.settle)
    after, rss_after = await asyncio.to_thread(snapshot, service, workdir, 2)
    report(before, after, (rss_before, rss_after), len(held), args.lines)
    for reader in warm + held:
        reader.abort()


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--serve-traced":
        sys.exit(serve_traced(sys.argv[2], sys.argv[3:]))
    main()
