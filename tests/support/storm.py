"""A reconnect storm: many widget connections opened in bursts against one instance,
while /readyz is watched. Shared by tests/chaos/test_storm.py (bounded, in CI) and
`python tests/bench/storm.py` (the full 10,000-connection storm)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.wsclient import WsClient


class StormReader(WsClient):
    """Says hello when the handshake succeeds; notes when the first snapshot came."""

    def __init__(
        self,
        host: str,
        port: int,
        site: str,
        origin: str,
        page: str,
        visitor: str | None = None,
        resume: bool = False,
    ) -> None:
        super().__init__(host, port, f"/ws?site={site}", origin)
        self.visitor = visitor or secrets.token_urlsafe(16)
        self.resume = resume
        self.page = page
        self.opened_at = time.monotonic()
        self.snapshot_after: float | None = None  # seconds from open to the first snapshot
        self.online = 0
        self.errors: list[str] = []

    def on_open(self) -> None:
        hello: dict[str, Any] = {
            "type": "hello",
            "visitor": self.visitor,
            "pages": [{"path": self.page}],
        }
        if self.resume:
            hello["resume"] = True  # a reconnect: no new view
        self.send_text(json.dumps(hello))

    def on_text(self, payload: bytes, received_at: float) -> None:
        frame = json.loads(payload)
        if frame["type"] == "snapshot":
            if self.snapshot_after is None:
                self.snapshot_after = time.monotonic() - self.opened_at
            self.online = frame.get("online", self.online)
        elif frame["type"] == "error":
            self.errors.append(frame["code"])


@dataclass
class StormResult:
    readers: list[StormReader]
    opened_in: float = 0.0  # seconds to open every connection
    ready_statuses: list[int] = field(default_factory=list)  # /readyz during the storm

    @property
    def refused(self) -> int:
        return sum(1 for r in self.readers if not r.open)

    @property
    def without_snapshot(self) -> int:
        return sum(1 for r in self.readers if r.snapshot_after is None)

    def snapshot_seconds(self, quantile: float) -> float:
        times = sorted(r.snapshot_after for r in self.readers if r.snapshot_after is not None)
        return times[min(len(times) - 1, int(quantile * len(times)))] if times else float("nan")

    def close_all(self) -> None:
        for reader in self.readers:
            reader.close()


async def _watch_ready(base: str, statuses: list[int], stop: asyncio.Event) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=5) as http:
        while not stop.is_set():
            try:
                statuses.append((await http.get("/readyz")).status_code)
            except httpx.HTTPError:
                statuses.append(0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.1)


async def open_one(
    host: str,
    port: int,
    site: str,
    origin: str,
    page: str,
    timeout: float,
    visitor: str | None = None,
    resume: bool = False,
) -> StormReader:
    loop = asyncio.get_running_loop()
    _, reader = await loop.create_connection(
        lambda: StormReader(host, port, site, origin, page, visitor, resume), host, port
    )
    with contextlib.suppress(ConnectionError, TimeoutError):
        await asyncio.wait_for(asyncio.shield(reader.ready), timeout)
    return reader


async def storm(
    base: str,
    connections: int,
    burst: int,
    site: str = "demo",
    origin: str = "http://localhost:8000",
    pages: int = 50,
    settle: float = 10.0,
) -> StormResult:
    """Open `connections` in bursts of `burst` (each burst all at once, the next as
    soon as it is open), then wait up to `settle` s for every reader's first snapshot."""
    url = httpx.URL(base)
    host, port = url.host, url.port or 80
    stop = asyncio.Event()
    result = StormResult([])
    watcher = asyncio.create_task(_watch_ready(base, result.ready_statuses, stop))
    started = time.monotonic()
    try:
        for first in range(0, connections, burst):
            count = min(burst, connections - first)
            result.readers += await asyncio.gather(
                *(
                    open_one(host, port, site, origin, f"/tin/{(first + i) % pages}.html", 30)
                    for i in range(count)
                )
            )
        result.opened_in = time.monotonic() - started
        deadline = time.monotonic() + settle
        while result.without_snapshot > result.refused and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        await watcher
    return result


def store_errors(metrics_text: str) -> dict[str, float]:
    """`portalpulse_store_errors_total` by `op` (none when the store never failed)."""
    out: dict[str, float] = {}
    for line in metrics_text.splitlines():
        if line.startswith("portalpulse_store_errors_total{"):
            labels, _, value = line.partition("} ")
            out[labels.split('op="')[1].rstrip('"')] = float(value)
    return out


def summary(result: StormResult, errors: dict[str, Any]) -> dict[str, Any]:
    ready = result.ready_statuses
    return {
        "connections": len(result.readers),
        "refused": result.refused,
        "without_snapshot": result.without_snapshot,
        "opened_in_s": round(result.opened_in, 2),
        "first_snapshot_p50_s": round(result.snapshot_seconds(0.5), 3),
        "first_snapshot_p99_s": round(result.snapshot_seconds(0.99), 3),
        "readyz_checks": len(ready),
        "readyz_not_200": sum(1 for s in ready if s != 200),
        "store_errors": errors,
    }
