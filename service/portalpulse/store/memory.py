"""The embedded store: one process, no Redis. Counters survive restarts in a
JSON data file, written atomically a few seconds after they change and on close."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

from .base import (
    DAY_KEEP_DAYS,
    HISTORY_MINUTES,
    DayCounts,
    PeriodCounts,
    SiteBatch,
    SiteSnapshot,
    Store,
)
from .page_minutes import PageDetail
from .presence import SitePresence

log = logging.getLogger("portalpulse.store")

SAVE_EVERY = 5.0
DATA_FILE = "counters.json"


class MemoryStore(Store):
    def __init__(self, data_dir: Path | None, clock_offset: float = 0.0) -> None:
        self.instance_id = uuid.uuid4().hex[:12]
        self.clock_offset = clock_offset
        self.data_dir = data_dir
        self.sites: dict[str, SitePresence] = {}
        self._dirty = False
        self._saver: asyncio.Task[None] | None = None
        self._claims: dict[str, float] = {}  # name -> until (see claim_once)

    def now(self) -> float:
        return time.time() + self.clock_offset

    def _site(self, site: str) -> SitePresence:
        presence = self.sites.get(site)
        if presence is None:
            presence = self.sites[site] = SitePresence(site)
        return presence

    async def open(self) -> None:
        if self.data_dir is None:
            return
        path = self.data_dir / DATA_FILE
        if path.exists():
            try:
                state = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise RuntimeError(f"cannot read the data file {path}: {exc}") from exc
            for site, site_state in state.get("sites", {}).items():
                self._site(site).restore(site_state)
            log.info("restored counters of %d sites from %s", len(state.get("sites", {})), path)
        self._saver = asyncio.create_task(self._save_loop())

    async def close(self) -> None:
        if self._saver is not None:
            self._saver.cancel()
            self._saver = None
        self.save()

    async def ping(self) -> None:
        return None

    async def history(self, site: str, minutes: int) -> list[tuple[float, int]]:
        return list(self._site(site).history(self.now(), min(minutes, HISTORY_MINUTES)))

    async def page_detail(self, site: str, page: str) -> PageDetail | None:
        return self._site(site).page_detail(page, self.now())

    async def days(self, site: str, first: str, last: str) -> list[tuple[str, DayCounts]]:
        kept = self._site(site).days
        return [(key, kept[key].counts()) for key in sorted(kept) if first <= key <= last]

    async def top_pages(self, site: str, day: str, limit: int) -> list[tuple[str, str, int]]:
        presence = self._site(site)
        return [
            (path, presence.titles.get(path, ""), views)
            for path, views in presence.calendar.top_pages(day, limit)
        ]

    async def periods(self, site: str, day: str) -> tuple[PeriodCounts, PeriodCounts]:
        return self._site(site).periods(day)

    MAX_CLAIMS = 10_000

    async def claim_once(self, name: str, seconds: float) -> bool:
        now = self.now()
        if self._claims.get(name, 0.0) > now:
            return False
        if len(self._claims) >= self.MAX_CLAIMS:
            self._claims = {k: until for k, until in self._claims.items() if until > now}
            if len(self._claims) >= self.MAX_CLAIMS:
                return False  # a flood of names: refuse rather than grow
        self._claims[name] = now + seconds
        return True

    async def flush(self, batches: Sequence[SiteBatch]) -> list[SiteSnapshot]:
        now = self.now()
        out = [self._site(b.site).flush(b, self.instance_id, now) for b in batches]
        if any(b.ops or b.total_views for b in batches):
            self._dirty = True
        return out

    async def _save_loop(self) -> None:
        while True:
            await asyncio.sleep(SAVE_EVERY)
            if self._dirty:
                try:
                    self.save()
                except OSError:
                    log.exception("could not write the data file")

    def save(self) -> None:
        if self.data_dir is None:
            return
        oldest = (
            dt.datetime.fromtimestamp(self.now()) - dt.timedelta(days=DAY_KEEP_DAYS)
        ).strftime("%Y%m%d")
        for presence in self.sites.values():
            presence.forget_days_before(oldest)
        state = {"sites": {site: p.durable_state() for site, p in self.sites.items()}}
        self.data_dir.mkdir(parents=True, exist_ok=True)
        path = self.data_dir / DATA_FILE
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(state, handle, ensure_ascii=False, separators=(",", ":"))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        self._dirty = False
