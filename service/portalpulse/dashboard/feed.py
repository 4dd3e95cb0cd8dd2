"""The dashboard's live data: its WebSocket and the history API.

The hub computes one dashboard frame per site per tick, however many editors
watch; each socket here only receives that same string through a one-slot
mailbox (a newer frame replaces an unsent older one), so a slow screen costs
nothing and never delays the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Protocol, cast

from starlette.requests import Request
from starlette.websockets import WebSocket

from .. import metrics
from ..fanout import Subscriber
from ..protocol import CloseCode
from ..store.base import StoreUnavailable
from ..web.http import error_response
from ..web.sender import OneSlotSender
from .access import access_of, pulse_of, same_origin, session_of
from .sessions import Session

log = logging.getLogger("portalpulse.dashboard")

MAX_HISTORY_MINUTES = 8 * 24 * 60
DEFAULT_HISTORY_MINUTES = 60
SESSION_ENDED = CloseCode.SESSION_ENDED
"""Close code when the editor's session expires while watching: sign in again."""
SLOW_SCREEN_SECONDS = 30.0
"""A screen that has not taken a frame for this long is closed (it reconnects)."""


class DashboardFeed(Protocol):
    """What the hub offers the dashboard."""

    def watch(self, site_id: str, subscriber: Subscriber) -> None: ...

    def unwatch(self, site_id: str, subscriber: Subscriber) -> None: ...

    async def read_dashboard(self, site_id: str) -> str: ...

    async def history(self, site_id: str, minutes: int) -> list[tuple[float, int]]: ...


def feed_of(conn: Request | WebSocket) -> DashboardFeed:
    return cast(DashboardFeed, pulse_of(conn).hub)


class DashboardWatcher(OneSlotSender):
    """One open dashboard: takes the site's frames without ever blocking the hub."""

    __slots__ = ()


async def _refuse(ws: WebSocket, status: int, code: str, message: str) -> None:
    await ws.send_denial_response(error_response(status, code, message))


async def dashboard_socket(ws: WebSocket) -> None:
    """`GET /dashboard/ws?site=SITE`: refused at the handshake (403) without a session
    for the site; then the current frame at once, and every changed one after."""
    session = session_of(ws)
    if session is None or not same_origin(ws):
        await _refuse(ws, 403, "unauthorized", "sign in to the dashboard first")
        return
    pulse = pulse_of(ws)
    site_id = ws.query_params.get("site", "")
    if site_id not in pulse.settings.sites:
        await _refuse(ws, 404, "unknown_site", "no such site")
        return
    if not session.may_see(site_id):
        await _refuse(ws, 403, "forbidden_site", "this session may not see that site")
        return
    await ws.accept()
    if pulse.closing:
        await ws.close(CloseCode.SHUTDOWN)
        return
    feed = feed_of(ws)
    watcher = DashboardWatcher(ws, SLOW_SCREEN_SECONDS, pulse.delivery)
    feed.watch(site_id, watcher)
    try:
        with contextlib.suppress(StoreUnavailable):
            if watcher.offer(await feed.read_dashboard(site_id)):
                metrics.snapshots_sent.inc()
        await _hold(ws, watcher, session, site_id)
    finally:
        watcher.closed = True
        feed.unwatch(site_id, watcher)


async def _hold(ws: WebSocket, watcher: DashboardWatcher, session: Session, site_id: str) -> None:
    """Keep reading (so pings and closes are seen) until the socket ends, the session
    expires or its token is withdrawn (checked every `token_check_seconds`); the
    screen sends nothing that matters."""
    access = access_of(ws)
    store = pulse_of(ws).store
    while not watcher.closed:
        now = time.time()
        if access.grants.due(now):
            await access.grants.refresh(store, now)
        current = access.grants.check(session)
        left = session.expires - now
        if current is None or not current.may_see(site_id) or left <= 0:
            watcher.closed = True
            reason = "session expired" if left <= 0 else "session ended: token withdrawn"
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(SESSION_ENDED, reason), 2.0)
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(min(left, access.grants.every)):
                while not watcher.closed:
                    message = await ws.receive()
                    if message["type"] == "websocket.disconnect":
                        return
