"""The tick works out the day and hour once a second for every site: the same
answers as asking at the exact time, on both sides of a local midnight."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from portalpulse.domain import calendar_at, day_keys, local_hour


def test_calendar_at_agrees_with_the_exact_time_around_midnight() -> None:
    for name in ("Asia/Ho_Chi_Minh", "America/St_Johns", "Asia/Kathmandu", "UTC"):
        zone = ZoneInfo(name)
        midnight = dt.datetime(2026, 3, 8, tzinfo=zone).timestamp()
        for when in (midnight - 3600.4, midnight - 0.3, midnight, midnight + 0.3, midnight + 59.9):
            assert calendar_at(when, zone) == (*day_keys(when, zone), local_hour(when, zone))
    zone = ZoneInfo("Asia/Ho_Chi_Minh")
    midnight = dt.datetime(2026, 12, 4, tzinfo=zone).timestamp()
    assert calendar_at(midnight - 0.001, zone) == ("20261203", "20261202", 23)
    assert calendar_at(midnight, zone) == ("20261204", "20261203", 0)
