"""A reconnect storm against a fresh instance: N WebSockets opened in bursts.

    python tests/bench/storm.py --connections 10000 --burst 500

Starts a private redis-server and one `portalpulse serve` process (default timing:
beat 15 s, push 1 s), then at once opens the connections from this process in
bursts (each burst all at once, the next when it is open), each saying hello, while
/readyz is polled every 0.1 s. Prints a JSON summary: connections refused, clients
with no snapshot within 30 s, first-snapshot latency, /readyz answers other than
200, and `portalpulse_store_errors_total` by op. Stops by itself and ends every
process it started. The CI's bounded version is tests/chaos/test_storm.py; figures
are in docs/OPERATIONS.md ("Failure modes").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from support.processes import DEMO_SITE, service_on_redis
from support.storm import store_errors, storm, summary

CONFIG = "[server]\nmax_connections_per_ip = 1000000\n" + DEMO_SITE


async def main(args: argparse.Namespace) -> dict[str, object]:
    with (
        tempfile.TemporaryDirectory(prefix="pp-storm-") as tmp,
        service_on_redis(Path(tmp), CONFIG) as service,
    ):
        result = await storm(service.base, args.connections, args.burst, settle=args.settle)
        figures = summary(result, store_errors(service.get("/metrics").text))
        figures["store_unavailable_logged"] = "store unavailable" in service.logs()
        result.close_all()
        await asyncio.sleep(1)
        return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--burst", type=int, default=500)
    parser.add_argument("--settle", type=float, default=30.0)
    options = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    print(json.dumps(asyncio.run(main(options)), indent=2))
