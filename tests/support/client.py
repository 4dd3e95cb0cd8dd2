"""A widget-like WebSocket client written from CONTRACT.md (the `websockets` library)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

Snapshot = dict[str, Any]


def visitor_id() -> str:
    return secrets.token_urlsafe(16)


def page(path: str, title: str = "", referrer: str | None = None) -> dict[str, str]:
    item = {"path": path, "title": title or f"Trang {path}"}
    if referrer is not None:
        item["referrer"] = referrer
    return item


class Reader:
    """One connection: says hello, keeps the latest snapshot, can wait for one."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.frames: list[dict[str, Any]] = []
        self.raw: list[str | bytes] = []  # the frames as they came, for their size
        self.snapshot: Snapshot | None = None
        self.close_code: int | None = None
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._read())

    @classmethod
    async def open(
        cls,
        ws_url: str,
        site: str = "demo",
        origin: str | None = "http://localhost:8000",
        visitor: str | None = None,
        pages: list[dict[str, str]] | None = None,
        hello: bool = True,
        resume: bool = False,
        engaged: bool = True,
        **fields: Any,
    ) -> Reader:
        ws = await connect(
            f"{ws_url}?site={site}",
            origin=origin,  # type: ignore[arg-type]
            ping_interval=None,
            open_timeout=5,
            max_size=None,
        )
        reader = cls(ws)
        if hello:
            await reader.send(
                {
                    "type": "hello",
                    "visitor": visitor or visitor_id(),
                    "pages": pages if pages is not None else [page("/")],
                    "engaged": engaged,
                    **({"resume": True} if resume else {}),
                    **fields,
                }
            )
        return reader

    async def send(self, message: dict[str, Any] | str) -> None:
        await self.ws.send(message if isinstance(message, str) else json.dumps(message))

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                self.raw.append(raw)
                frame = json.loads(raw)
                self.frames.append(frame)
                if frame.get("type") == "snapshot":
                    self.snapshot = frame
                self._changed.set()
        except ConnectionClosed:
            pass
        finally:
            self.close_code = self.ws.close_code
            self._changed.set()

    async def wait_for(self, check: Callable[[Snapshot], bool], timeout: float) -> Snapshot:
        """The first snapshot (latest first) for which `check` holds, within `timeout` s."""
        deadline = time.monotonic() + timeout
        while True:
            if self.snapshot is not None and check(self.snapshot):
                return self.snapshot
            left = deadline - time.monotonic()
            if left <= 0 or self.close_code is not None:
                raise AssertionError(
                    f"no matching snapshot within {timeout}s; last: {self.snapshot}, "
                    f"closed: {self.close_code}"
                )
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)

    async def wait_online(self, n: int, timeout: float) -> Snapshot:
        return await self.wait_for(lambda s: s["online"] == n, timeout)

    async def wait_closed(self, timeout: float) -> int | None:
        await asyncio.wait_for(asyncio.shield(self._task), timeout)
        return self.close_code

    async def close(self) -> None:
        await self.ws.close()
        await asyncio.wait_for(asyncio.shield(self._task), 5)

    def abort(self) -> None:
        """Drop the TCP connection with no close frame."""
        self.ws.transport.abort()
