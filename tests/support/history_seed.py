"""Finished days written into the embedded store's data file before a service starts:
a month of history without waiting a month."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path


def seed_days(
    data_dir: Path, today: dt.date, count: int, site: str = "myhao"
) -> dict[str, dict[str, object]]:
    """A data file with `count` finished days before `today`, as the embedded store keeps them."""
    days: dict[str, dict[str, object]] = {}
    for n in range(1, count + 1):
        day = today - dt.timedelta(days=n)
        days[day.strftime("%Y%m%d")] = {
            "visits": 100 + n,
            "views": 300 + n,
            "peak_online": 10 + n,
            "peak_at": time.time() - n * 86400,
            "visitors": [],
            "visitor_count": 80 + n,
            "hours": [0] * 24,
        }
    data_dir.mkdir(parents=True, exist_ok=True)
    state = {"sites": {site: {"total_visits": 0, "days": days}}}
    (data_dir / "counters.json").write_text(json.dumps(state), encoding="utf-8")
    return days
