"""Redis memory per online visitor and per tracked page, straight through the store.

Starts its own redis-server, flushes N visitors over P pages through
`RedisStore.flush` (as the hub would: hello with source and device, 70 %
engaged), and prints MEMORY USAGE of every key of the site.

    python tests/bench/redis_memory.py --visitors 10000 --pages 1000
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import sys
import tempfile
import time
from pathlib import Path
from zoneinfo import ZoneInfo

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO / "service"), str(REPO / "tests")]

from portalpulse.store.base import OpKind, PresenceOp, SiteBatch, day_keys  # noqa: E402
from portalpulse.store.redis import RedisStore, site_prefix  # noqa: E402
from support.processes import redis_server  # noqa: E402

SOURCES = ("search:google|mobile", "social:facebook|mobile", "direct:|desktop", "social:zalo|")


def batch(
    site: str, ops: list[PresenceOp], views: dict[str, int], titles: dict[str, str]
) -> SiteBatch:
    today, yesterday = day_keys(time.time(), ZoneInfo("Asia/Ho_Chi_Minh"))
    return SiteBatch(
        site=site, presence_ttl=45, leave_grace=5, trending_window=1800, trending_size=10,
        max_pages=10_000, day=today, yesterday=yesterday, ops=ops, views=views,
        total_views=sum(views.values()), titles=titles, want_yesterday=True,
    )  # fmt: skip


async def measure(url: str, visitors: int, pages: int) -> None:
    store = RedisStore(url)
    await store.open()
    assert store.client is not None
    site = "bench"
    paths = [f"/tin-tuc/bai-viet-so-{i}.html" for i in range(pages)]
    titles = {
        p: f"Hội nghị trực tuyến triển khai kế hoạch chuyển đổi số, bài {i}"
        for i, p in enumerate(paths)
    }
    before = (await store.client.info("memory"))["used_memory"]
    rng = random.Random(7)
    for start in range(0, visitors, 1000):
        ops, views = [], {}
        for _ in range(start, min(start + 1000, visitors)):
            page = paths[min(int(rng.paretovariate(1.2)) - 1, pages - 1)]
            views[page] = views.get(page, 0) + 1
            ops.append(
                PresenceOp(
                    OpKind.HOLD,
                    secrets.token_urlsafe(16),
                    (page,),
                    0.0,
                    rng.random() < 0.7,
                    rng.choice(SOURCES),
                )
            )
        await store.flush([batch(site, ops, views, {p: titles[p] for p in views})])
    (snap,) = await store.flush([batch(site, [], {}, {})])
    after = (await store.client.info("memory"))["used_memory"]
    keys = [k async for k in store.client.scan_iter(match=site_prefix(site) + "*")]
    sizes = {k.decode(): await store.client.memory_usage(k, samples=0) for k in keys}
    total = sum(sizes.values())
    print(f"online {snap.online}, over {pages} pages")
    for key, size in sorted(sizes.items(), key=lambda kv: -kv[1]):
        print(f"  {key:40} {size:>12,} B  {size / visitors:8.1f} B per visitor")
    print(f"site keys: {total:,} B = {total / visitors:.0f} B per online visitor")
    grown = after - before
    print(f"used_memory growth: {grown:,} B = {grown / visitors:.0f} B per online visitor")
    await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--visitors", type=int, default=10_000)
    parser.add_argument("--pages", type=int, default=1_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, redis_server(Path(tmp)) as server:
        asyncio.run(measure(server.url, args.visitors, args.pages))


if __name__ == "__main__":
    main()
