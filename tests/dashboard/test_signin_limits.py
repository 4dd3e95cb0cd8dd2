"""Sign-in under attack (issue 9): concurrent guesses are limited like sequential ones.
Against the real service, on the embedded store and on a real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest
from dashboard_support import CONFIG, MYHAO_TOKEN

from support.processes import RedisServer, Service

ServiceFactory = Callable[..., Service]


async def concurrent_wrong_tokens(service: Service, n: int) -> list[int]:
    async with httpx.AsyncClient(base_url=service.base, timeout=10) as client:
        replies = await asyncio.gather(
            *(
                client.post("/dashboard/login", data={"site": "myhao", "token": f"guess-{i}"})
                for i in range(n)
            )
        )
    return [reply.status_code for reply in replies]


@pytest.mark.parametrize("store", ["embedded", "redis"])
async def test_thirty_concurrent_wrong_tokens_get_at_most_five_checks(
    make_service: ServiceFactory, store: str, request: pytest.FixtureRequest
) -> None:
    redis_url = request.getfixturevalue("redis").url if store == "redis" else None
    service = make_service(config=CONFIG, redis_url=redis_url)
    codes = await concurrent_wrong_tokens(service, 30)
    assert codes.count(401) <= 5, codes  # checked, and wrong
    assert codes.count(429) >= 25, codes  # refused before any check
    assert set(codes) == {401, 429}, codes
    # The right token waits too: the address is held for the window.
    late = service.post("/dashboard/login", data={"site": "myhao", "token": MYHAO_TOKEN})
    assert late.status_code == 429


async def test_concurrent_tries_across_two_instances_share_the_limit(
    redis: RedisServer, make_service: ServiceFactory
) -> None:
    replicas = [make_service(config=CONFIG, redis_url=redis.url) for _ in range(2)]
    both = await asyncio.gather(*(concurrent_wrong_tokens(r, 15) for r in replicas))
    codes = both[0] + both[1]
    assert codes.count(401) <= 5, codes


def test_forged_forwarded_for_does_not_reset_the_sign_in_limit(
    make_service: ServiceFactory,
) -> None:
    # No trusted proxies: a guesser cannot be a new address on every try.
    service = make_service(config=CONFIG)
    codes = [
        service.post(
            "/dashboard/login",
            data={"site": "myhao", "token": "guess"},
            headers={"X-Forwarded-For": f"203.0.113.{i}"},
        ).status_code
        for i in range(7)
    ]
    assert codes == [401] * 5 + [429] * 2, codes
