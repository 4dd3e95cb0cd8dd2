"""A reconnect storm at start-up: a fresh instance (no snapshot of the site yet) on a
healthy Redis takes 2,000 WebSockets in bursts of 500 and 300 concurrent stats/badge
reads, with no store error, /readyz 200 throughout, and a snapshot for every client."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx

from support.processes import DEMO_SITE, FAST_TIMING, RedisServer, Service
from support.storm import store_errors, storm, summary
from support.waiting import until

ServiceFactory = Callable[..., Service]
CONFIG = FAST_TIMING.replace("[server]", "[server]\nmax_connections_per_ip = 100000") + DEMO_SITE


async def test_a_storm_of_2000_websockets_at_start_up(
    redis: RedisServer, make_service: ServiceFactory
) -> None:
    service = make_service(CONFIG, redis_url=redis.url)
    result = await storm(service.base, connections=2000, burst=500)
    try:
        figures = summary(result, store_errors(service.get("/metrics").text))
        print("storm:", figures)
        assert figures["refused"] == 0, figures
        assert figures["without_snapshot"] == 0, figures
        assert figures["readyz_checks"] > 0 and figures["readyz_not_200"] == 0, figures
        assert figures["store_errors"] == {}, figures

        # Everyone is counted, by every reader's snapshots.
        def everyone() -> bool:
            return min(r.online for r in result.readers) >= 2000

        await until(everyone, 10, f"every reader sees 2000 ({figures})", every=0.2)
        # Nothing lost, nothing twice: one visit and one view per newcomer.
        today = service.stats()["today"]
        assert (today["visits"], today["views"]) == (2000, 2000), today
    finally:
        result.close_all()
    assert "store unavailable" not in service.logs()


async def test_300_concurrent_stats_and_badge_reads_on_a_fresh_instance(
    redis: RedisServer, make_service: ServiceFactory
) -> None:
    service = make_service(CONFIG, redis_url=redis.url)
    limits = httpx.Limits(max_connections=300, max_keepalive_connections=300)
    async with httpx.AsyncClient(base_url=service.base, timeout=20, limits=limits) as http:
        answers = await asyncio.gather(
            *(
                http.get("/api/v1/sites/demo/" + ("stats" if i % 2 else "badge.svg"))
                for i in range(300)
            )
        )
        statuses = [a.status_code for a in answers]
        assert statuses.count(200) == 300, {s: statuses.count(s) for s in set(statuses)}
        assert store_errors((await http.get("/metrics")).text) == {}
    assert "store unavailable" not in service.logs()
