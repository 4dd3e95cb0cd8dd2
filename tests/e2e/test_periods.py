"""This month and this year beside today, in the stats API, on either store."""

from __future__ import annotations

import pytest

from support.client import Reader, page


@pytest.mark.parametrize("store", ["embedded", "redis"])
async def test_stats_carry_this_month_and_this_year(
    request: pytest.FixtureRequest, store: str
) -> None:
    redis_url = request.getfixturevalue("redis").url if store == "redis" else None
    service = request.getfixturevalue("make_service")(redis_url=redis_url)
    readers = [await Reader.open(service.ws_url, pages=[page(f"/p{i}")]) for i in range(3)]
    await readers[0].wait_for(lambda s: s["today"]["visits"] == 3, 3)
    stats = service.stats()
    assert stats["month"] == {"visits": 3, "views": 3, "visitors": 3}
    assert stats["year"] == stats["month"]
    assert stats["today"]["visits"] == 3  # the fields of before are all still there
    for reader in readers:
        await reader.close()
