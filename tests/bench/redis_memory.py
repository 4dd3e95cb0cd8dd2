"""Redis memory per online visitor and per tracked page, straight through the store.

Starts its own redis-server and drives `RedisStore.flush` as the hub would,
moving the store's clock instead of waiting:

- arrival: N visitors open one of P pages (a Pareto choice), each with a
  source and a device, 70 % engaged, one view each;
- steady state (`--minutes`, default 35: longer than the 30-minute trending
  window and the 30-minute visit memory): every 15 s (one beat interval) each
  online visitor is refreshed, 10 % move to another page (a view), 5 % leave
  and as many new visitors arrive, so that about N stay online.

After each phase it prints MEMORY USAGE of the site's keys, grouped by kind,
and `used_memory`, per online visitor.

    python tests/bench/redis_memory.py --visitors 10000 --pages 1000
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import secrets
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from zoneinfo import ZoneInfo

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO / "service"), str(REPO / "tests")]

from portalpulse.store.base import (  # noqa: E402
    OpKind,
    PresenceOp,
    SiteBatch,
    VisitAttrs,
    day_keys,
)
from portalpulse.store.redis import RedisStore, site_prefix  # noqa: E402
from support.processes import redis_server  # noqa: E402

SOURCES = ("search:google|mobile", "social:facebook|mobile", "direct:|desktop", "social:zalo|")
SITE = "bench"
BEAT = 15.0
FLUSH_OPS = 1000  # ops per flush: a tick of a busy instance


def batch(store: RedisStore, ops: list[PresenceOp], views: dict[str, int]) -> SiteBatch:
    today, yesterday = day_keys(time.time() + store.clock_offset, ZoneInfo("Asia/Ho_Chi_Minh"))
    return SiteBatch(
        site=SITE, presence_ttl=45, leave_grace=5, trending_window=1800, trending_size=10,
        max_pages=10_000, day=today, yesterday=yesterday, ops=ops, views=views,
        total_views=sum(views.values()), titles={p: title(p) for p in views}, want_yesterday=True,
    )  # fmt: skip


def title(path: str) -> str:
    return f"Hội nghị trực tuyến triển khai kế hoạch chuyển đổi số, {path}"


class Readers:
    """The simulated visitors: who is online and on which page."""

    def __init__(self, pages: int, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        self.paths = [f"/tin-tuc/bai-viet-so-{i}.html" for i in range(pages)]
        self.on: dict[str, str] = {}  # visitor -> page

    def pick(self) -> str:
        return self.paths[min(int(self.rng.paretovariate(1.2)) - 1, len(self.paths) - 1)]

    def arrive(self) -> tuple[PresenceOp, str]:
        visitor, page = secrets.token_urlsafe(16), self.pick()
        self.on[visitor] = page
        engaged = self.rng.random() < 0.7
        return PresenceOp(
            OpKind.HOLD, visitor, (page,), 0.0, engaged, VisitAttrs.unpack(self.rng.choice(SOURCES))
        ), page


async def run_ops(store: RedisStore, ops: list[PresenceOp], views: dict[str, int]) -> None:
    """Flush in ticks of FLUSH_OPS ops; views go with the first tick."""
    for start in range(0, max(len(ops), 1), FLUSH_OPS):
        await store.flush(
            [batch(store, ops[start : start + FLUSH_OPS], views if start == 0 else {})]
        )


async def report(store: RedisStore, phase: str, before: int) -> None:
    assert store.client is not None
    (snap,) = await store.flush([batch(store, [], {})])
    online = snap.online
    keys = [k async for k in store.client.scan_iter(match=site_prefix(SITE) + "*", count=1000)]
    groups: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    encodings: dict[str, set[str]] = defaultdict(set)
    for key in keys:
        name = re.sub(r":[0-9]+(:[0-9]+)?$", ":*", key.decode()[len(site_prefix(SITE)) :])
        groups[name][0] += 1
        groups[name][1] += await store.client.memory_usage(key, samples=0) or 0
        encodings[name].add((await store.client.object("encoding", key)).decode())
    total = sum(size for _, size in groups.values())
    memory = await store.client.info("memory")
    used = memory["used_memory"] - before
    tracked = await store.client.zcard(site_prefix(SITE) + "pages")
    calls = (await store.client.info("commandstats")).get("cmdstat_evalsha", {})
    print(f"\n{phase}: online {online}, tracked pages {tracked}")
    if calls:
        print(f"  flushes so far: {calls['calls']}, {calls['usec_per_call']:.0f} µs each in Redis")
    print(f"  {'key':12} {'keys':>6} {'bytes':>12} {'per online visitor':>20}  encoding")
    for name, (count, size) in sorted(groups.items(), key=lambda kv: -kv[1][1]):
        shown = ",".join(sorted(encodings[name]))
        print(f"  {name:12} {count:>6} {size:>12,} {size / online:>16.1f} B  {shown}")
    print(f"  site keys: {total:,} B = {total / online:.0f} B per online visitor")
    print(f"  used_memory growth: {used:,} B = {used / online:.0f} B per online visitor")
    print(
        f"  (used_memory {memory['used_memory']:,} B: dataset {memory['used_memory_dataset']:,},"
        f" overhead {memory['used_memory_overhead']:,}; {before:,} before the run)"
    )


async def measure(url: str, visitors: int, pages: int, minutes: float) -> None:
    store = RedisStore(url)
    await store.open()
    assert store.client is not None
    # Redis keeps some 0.6-0.8 MB after the first large scripts and pipelines
    # whatever the data (it stays after FLUSHALL): warm up, then measure from there.
    await simulate(store, min(visitors, 2000), pages, 1.0, None)
    await store.client.flushall()
    store.clock_offset = 0.0
    before = (await store.client.info("memory"))["used_memory"]
    await simulate(store, visitors, pages, minutes, before)
    await store.close()


async def simulate(
    store: RedisStore, visitors: int, pages: int, minutes: float, before: int | None
) -> None:
    readers = Readers(pages)
    ops, views = [], defaultdict(int)
    for _ in range(visitors):
        op, page = readers.arrive()
        ops.append(op)
        views[page] += 1
    await run_ops(store, ops, dict(views))
    if before is not None:
        await report(store, "after arrival", before)

    steps = int(minutes * 60 / BEAT)
    rng = readers.rng
    started = time.monotonic()
    for _ in range(steps):
        store.clock_offset += BEAT
        ops, views = [], defaultdict(int)
        for visitor, page in list(readers.on.items()):
            roll = rng.random()
            if roll < 0.05:
                ops.append(PresenceOp(OpKind.LEAVE, visitor, (page,)))
                del readers.on[visitor]
                op, new_page = readers.arrive()
                ops.append(op)
                views[new_page] += 1
            elif roll < 0.15:
                new_page = readers.pick()
                if new_page != page:
                    ops.append(PresenceOp(OpKind.CLOSE_PAGES, visitor, (page,)))
                readers.on[visitor] = new_page
                ops.append(
                    PresenceOp(OpKind.REFRESH, visitor, (new_page,), 0.0, rng.random() < 0.7)
                )
                views[new_page] += 1
            else:
                ops.append(PresenceOp(OpKind.REFRESH, visitor, (page,), 0.0, rng.random() < 0.7))
        await run_ops(store, ops, dict(views))
    spent = time.monotonic() - started
    if before is not None:
        await report(
            store, f"after {minutes:g} min of steady state ({steps} beats, {spent:.0f} s)", before
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--visitors", type=int, default=10_000)
    parser.add_argument("--pages", type=int, default=1_000)
    parser.add_argument("--minutes", type=float, default=35.0, help="steady state, store time")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, redis_server(Path(tmp)) as server:
        asyncio.run(measure(server.url, args.visitors, args.pages, args.minutes))


if __name__ == "__main__":
    main()
