"""One article's last hour, for the dashboard's drill-down: per page and minute,
the most readers and engaged readers seen, and where its views came from.

Both stores keep the same buckets, one per (page, minute), with these fields:
  r           most readers seen in the minute
  e           most engaged readers seen in the minute
  v           views that began in the minute
  s:<source>  those views by source ('search:google', 'internal:', 'direct:', ...)
  d:<device>  those views by device
  i:<id>      those views that came from another page of the site (its page id)
Buckets are named by page id, never by path: a page dropped by the `max_pages`
cap loses its id, so its buckets (and its mentions as a previous page) count no
more, and they expire an hour later (Redis: by EXPIRE; embedded: by minute).
The embedded store's ids work the same way as the Redis ones (pid/pname).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Container
from dataclasses import dataclass
from typing import Any

PAGE_MINUTES = 60
"""How far back the drill-down looks, in minutes."""
BUCKET_TTL = PAGE_MINUTES * 60 + 120
"""Seconds a Redis bucket lives after its minute began."""
INTERNAL = "internal:"


@dataclass(frozen=True, slots=True)
class PageDetail:
    """A tracked page's last hour."""

    path: str
    title: str
    minutes: tuple[tuple[float, int, int], ...]
    """(minute start, most readers, most engaged readers), oldest first; minutes
    without readers are left out."""
    views: int
    sources: dict[str, int]
    devices: dict[str, int]
    internal: dict[str, int]
    """Previous page path -> views that came from it (recirculation)."""


def split_source(source: str) -> tuple[str, str]:
    """('internal:', '/previous/path') for an internal arrival, else (source, '')."""
    if source.startswith(INTERNAL):
        return INTERNAL, source[len(INTERNAL) :]
    return source, ""


def detail_from_buckets(
    path: str,
    title: str,
    buckets: list[tuple[int, dict[str, int]]],
    page_of: dict[str, str],
) -> PageDetail:
    """Sum the buckets (minute, fields) of a page; `page_of` names the page ids
    still tracked (internal mentions of others are dropped)."""
    minutes = []
    totals: Counter[str] = Counter()
    for minute, fields in sorted(buckets):
        readers = fields.get("r", 0)
        if readers > 0:
            minutes.append((minute * 60.0, readers, min(fields.get("e", 0), readers)))
        for name, n in fields.items():
            if name == "v" or name[:2] in ("s:", "d:", "i:"):
                totals[name] += n
    sources = {k[2:]: n for k, n in totals.items() if k.startswith("s:") and n > 0}
    devices = {k[2:]: n for k, n in totals.items() if k.startswith("d:") and n > 0}
    internal: dict[str, int] = {}
    for key, n in totals.items():
        if key.startswith("i:") and key[2:] in page_of and n > 0:
            name = page_of[key[2:]]
            internal[name] = internal.get(name, 0) + n
    return PageDetail(
        path=path,
        title=title,
        minutes=tuple(minutes),
        views=totals.get("v", 0),
        sources=dict(sorted(sources.items())),
        devices=dict(sorted(devices.items())),
        internal=dict(sorted(internal.items(), key=lambda kv: (-kv[1], kv[0]))),
    )


class PageMinutes:
    """The embedded store's buckets; every map is bounded by the pages tracked
    (ids) and the last hour (minutes)."""

    __slots__ = ("_next", "buckets", "ids", "names")

    def __init__(self) -> None:
        self.ids: dict[str, str] = {}  # tracked page -> id
        self.names: dict[str, str] = {}  # id -> page
        self.buckets: dict[int, dict[str, Counter[str]]] = {}  # minute -> id -> fields
        self._next = 0

    def _id(self, page: str) -> str:
        found = self.ids.get(page)
        if found is None:
            self._next += 1
            found = self.ids[page] = format(self._next, "x")
            self.names[found] = page
        return found

    def forget(self, page: str) -> None:
        """The page is no longer tracked: its buckets count no more."""
        found = self.ids.pop(page, None)
        if found is not None:
            del self.names[found]

    def _bucket(self, minute: int, page: str) -> Counter[str]:
        return self.buckets.setdefault(minute, {}).setdefault(self._id(page), Counter())

    def seen(self, minute: int, page: str, readers: int, engaged: int) -> None:
        bucket = self._bucket(minute, page)
        bucket["r"] = max(bucket["r"], readers)
        bucket["e"] = max(bucket["e"], engaged)

    def arrived(
        self, minute: int, page: str, source: str, device: str, n: int, tracked: Container[str]
    ) -> None:
        """`n` views of a tracked `page`; an internal source names its previous page,
        counted when that page is `tracked` too."""
        bucket = self._bucket(minute, page)
        kind, previous = split_source(source)
        bucket["v"] += n
        bucket["s:" + kind] += n
        bucket["d:" + (device or "unknown")] += n
        if previous and previous in tracked:
            bucket["i:" + self._id(previous)] += n

    def expire(self, now: float) -> None:
        first_kept = int(now // 60) - PAGE_MINUTES + 1
        for minute in [m for m in self.buckets if m < first_kept]:
            del self.buckets[minute]

    def detail(self, page: str, title: str, now: float) -> PageDetail | None:
        found = self.ids.get(page)
        if found is None:
            return None
        last = int(now // 60)
        buckets = [
            (minute, dict(self.buckets[minute][found]))
            for minute in range(last - PAGE_MINUTES + 1, last + 1)
            if found in self.buckets.get(minute, {})
        ]
        return detail_from_buckets(page, title, buckets, self.names)

    def durable_state(self) -> dict[str, Any]:
        """The last hour, for the embedded store's data file (a restart keeps it)."""
        return {
            "ids": self.ids,
            "next": self._next,
            "buckets": {
                str(minute): {pid: dict(fields) for pid, fields in by_id.items()}
                for minute, by_id in self.buckets.items()
            },
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.ids = {str(page): str(pid) for page, pid in state.get("ids", {}).items()}
        self.names = {pid: page for page, pid in self.ids.items()}
        self._next = int(state.get("next", 0))
        self.buckets = {
            int(minute): {
                pid: Counter({k: int(n) for k, n in fields.items()})
                for pid, fields in by_id.items()
            }
            for minute, by_id in state.get("buckets", {}).items()
        }
