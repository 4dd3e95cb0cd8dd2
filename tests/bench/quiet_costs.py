"""What a quiet site costs, in-process, for the service in this tree:

    python tests/bench/quiet_costs.py --sites 200

1. The tick: CPU time of `Hub.flush_round` per quiet site and tick, on a
   private redis-server, one reader held per site, nothing changing: with
   the sites parked (most ticks: the tick skips them), and checked (a tick
   that looks at each, as every site's does at least every 5 s).
2. A refresh round: one REFRESH of one reader per site, straight through the
   store, as Redis counts it (INFO commandstats: EVALSHA calls, µs per call,
   commands per call) and the service's CPU per flushed site.

Not a pytest test; figures in docs/BENCHMARKS.md. Run it with the service's
venv (`pip install -e .`), from the checkout whose code it measures.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
from portalpulse.config import ServerSettings, SiteSettings  # noqa: E402
from portalpulse.domain import OpKind  # noqa: E402
from portalpulse.hub import Hub  # noqa: E402
from portalpulse.protocol import Hello, Page  # noqa: E402
from portalpulse.store.redis import RedisStore  # noqa: E402
from support.processes import redis_server  # noqa: E402


class Reader:
    """A reader that takes every frame and does nothing with it."""

    want = 0

    def offer(self, frame: str) -> bool:
        return True

    def offer_fields(self, fields: object, frame_for: object) -> bool:
        return True

    def shut(self, code: int, reason: str = "") -> None:
        pass


async def tick_cost(url: str, sites: int, rounds: int, parked: bool) -> float:
    """CPU seconds of one quiet tick per site (the sites parked, or checked)."""
    settings = {
        f"s{n:05d}": SiteSettings(id=f"s{n:05d}", name="site", origins=("*",)) for n in range(sites)
    }
    store = RedisStore(url)
    await store.open()
    hub = Hub(ServerSettings(), settings, store)
    for n, site in enumerate(settings):
        page = Page(path=f"/tin/{n % 50}.html", title="Tin")
        hub.join(site, Reader(), Hello(visitor=f"visitor-{n:012d}", pages=(page,), engaged=True))
    for _ in range(3):  # the holds, then the snapshots held
        await hub.flush_round(push=True)
    spent = 0.0
    for _ in range(rounds):
        if not parked:
            hub._parked.clear()  # as when their time comes
        started = time.process_time()
        await hub.flush_round(push=True)
        spent += time.process_time() - started
    await store.close()
    return spent / rounds / sites


async def refresh_cost(url: str, sites: int, rounds: int) -> dict[str, float]:
    """Redis's count of one refresh round per site, and the service's CPU for it."""
    hub_settings = ServerSettings()
    store = RedisStore(url)
    await store.open()
    assert store.client is not None
    settings = {
        f"r{n:05d}": SiteSettings(id=f"r{n:05d}", name="r", origins=("*",)) for n in range(sites)
    }
    hub = Hub(hub_settings, settings, store)
    for n, site in enumerate(settings):
        page = Page(path="/a", title="A")
        hub.join(site, Reader(), Hello(visitor=f"refreshed-{n:010d}", pages=(page,), engaged=True))
    await hub.flush_round(push=False)
    await hub.flush_round(push=False)
    await store.client.config_resetstat()
    spent = 0.0
    for _ in range(rounds):
        batches = []
        for n, site in enumerate(settings):
            ledger = hub.ledger.sites[site]
            ledger.add_op(OpKind.REFRESH, f"refreshed-{n:010d}", ("/a",), time.monotonic(), True)
            batches.append(ledger.take_batch(time.monotonic(), time.time()))
        started = time.process_time()
        await store.flush(batches)
        spent += time.process_time() - started
    info = await store.client.info("commandstats")
    await store.close()
    evalsha = info["cmdstat_evalsha"]
    commands = sum(v["calls"] for k, v in info.items() if k.startswith("cmdstat_"))
    return {
        "evalsha": float(evalsha["calls"]),
        "usec_per_call": float(evalsha["usec_per_call"]),
        "commands_per_call": (commands - evalsha["calls"]) / evalsha["calls"],
        "service_us_per_site": spent / rounds / sites * 1e6,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sites", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=100)
    args = parser.parse_args(argv)
    with redis_server(Path(tempfile.mkdtemp(prefix="portalpulse-quiet-")) / "redis") as redis:
        parked = asyncio.run(tick_cost(redis.url, args.sites, args.rounds, parked=True))
        checked = asyncio.run(tick_cost(redis.url, args.sites, args.rounds, parked=False))
        refresh = asyncio.run(refresh_cost(redis.url, args.sites, 5))
    print(
        f"quiet tick                 {parked * 1e6:.1f} µs of service CPU per site and tick "
        f"parked, {checked * 1e6:.1f} µs checked"
    )
    print(
        f"refresh round (one reader) {refresh['commands_per_call']:.1f} commands, "
        f"{refresh['usec_per_call']:.1f} µs of Redis per EVALSHA, "
        f"{refresh['service_us_per_site']:.0f} µs of service CPU per site"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
