"""Days turn at local midnight in the configured timezone (the clock is moved by config)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from support.client import Reader, page

PUSH = 0.5


def offset_to_just_before_midnight(zone: str, seconds_before: float) -> float:
    now = dt.datetime.now(ZoneInfo(zone))
    midnight = (now + dt.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return (midnight - now).total_seconds() - seconds_before


@pytest.mark.parametrize("zone", ["Asia/Ho_Chi_Minh", "Europe/Paris"])
async def test_counters_turn_over_at_local_midnight(redis, make_service, zone) -> None:
    offset = offset_to_just_before_midnight(zone, 6.0)
    config = f"""
[server]
beat_interval = 1
presence_ttl = 3
leave_grace = 1
push_interval = 0.5
timezone = "{zone}"
clock_offset = {offset}

[sites.demo]
origins = ["*"]
"""
    service = make_service(config, redis_url=redis.url)
    reader = await Reader.open(service.ws_url, pages=[page("/dem-khuya")])
    before = await reader.wait_for(lambda s: s["today"]["visits"] == 1, PUSH + 1)
    assert before["today"]["views"] == 1
    late = dt.datetime.fromtimestamp(before["ts"], ZoneInfo(zone))
    assert (late.hour, late.minute) == (23, 59), "the service started too slowly to see midnight"
    after = await reader.wait_for(lambda s: s["today"]["visits"] == 0, 8)
    assert after["today"]["views"] == 0
    assert after["online"] == 1 and after["today"]["peak_online"] == 1
    assert after["total_visits"] == 1
    stats = service.stats()
    assert stats["yesterday"]["visits"] == 1 and stats["yesterday"]["views"] == 1
    local = dt.datetime.fromtimestamp(after["ts"], ZoneInfo(zone))
    assert local.hour == 0
