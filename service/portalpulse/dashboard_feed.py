"""The editors' dashboard frame: built once per site per tick from the store's detail."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from . import protocol, sources
from .config import SiteSettings
from .domain import DayCounts, SiteSnapshot


def split_sources(counts: dict[str, int]) -> tuple[dict[str, int], dict[str, int]]:
    """'kind:name' counts -> (every kind, named sources with a count)."""
    kinds = dict.fromkeys(sources.KINDS, 0)
    names: dict[str, int] = {}
    for key, count in counts.items():
        kind, _, name = key.partition(":")
        if kind in kinds:
            kinds[kind] += count
        if name:
            names[name] = names.get(name, 0) + count
    return kinds, {name: n for name, n in sorted(names.items()) if n > 0}


def device_counts(counts: dict[str, int]) -> dict[str, int]:
    devices = {"mobile": 0, "tablet": 0, "desktop": 0, "unknown": 0}
    for device, count in counts.items():
        devices[device if device in devices else "unknown"] += count
    return devices


def dashboard_frame(
    snap: SiteSnapshot, site: SiteSettings, rising: Collection[str] = ()
) -> tuple[str, tuple[object, ...]]:
    """(the JSON frame, a key that changes when anything but the time changed).

    `rising`: the paths the site's rising tracker marks now (see rising.py)."""
    detail = snap.detail
    assert detail is not None, "dashboard frames need a snapshot with detail"
    kinds, names = split_sources(detail.sources)
    devices = device_counts(detail.devices)
    body: dict[str, Any] = {
        "type": "dashboard",
        "site": site.id,
        "name": site.name,
        "online": snap.online,
        "engaged": min(detail.engaged, snap.online),
        "idle": max(0, snap.online - detail.engaged),
        "pages": [
            {
                "path": p.path,
                "title": p.title,
                "readers": p.readers,
                "engaged": detail.page_engaged.get(p.path, 0),
                "views": p.views,
                "rising": p.path in rising,
            }
            for p in detail.pages
        ],
        "sources": kinds,
        "referrers": names,
        "devices": devices,
        "today": protocol.day_payload(snap.today),
        "yesterday": protocol.day_payload(snap.yesterday or DayCounts()),
        # "Tháng này", "Năm nay": this month and this year, in the site's time zone.
        "month": protocol.period_payload(snap.month),
        "year": protocol.period_payload(snap.year),
        "total_visits": snap.total_visits + site.total_visits_offset,
        "minutes": [[ts, n] for ts, n in detail.minutes],
        "hours": {"today": list(detail.hours_today), "yesterday": list(detail.hours_yesterday)},
    }
    content_key: tuple[object, ...] = tuple((k, repr(v)) for k, v in body.items())
    body["ts"] = round(snap.ts, 3)
    return protocol.dumps(body), content_key
