"""Wiring: settings -> store -> hub -> Starlette routes, and the lifecycle."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
from collections.abc import AsyncIterator, Coroutine
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute

from . import config, dashboard, metrics
from .hub import Hub
from .store import Store, make_store
from .web import api, openapi, pages
from .web.ratelimit import AddressCounts, AddressRate
from .web.websocket import websocket_endpoint

if TYPE_CHECKING:
    from .web.websocket import WsConnection

log = logging.getLogger("portalpulse")

LAG_PROBE_EVERY = 0.1
DRAIN_WAIT = 1.0


class Pulse:
    """One process's service: its settings, store, hub and live connections."""

    def __init__(self, settings: config.Settings, store: Store | None = None) -> None:
        self.settings = settings
        self.store = store or make_store(settings)
        self.hub = Hub(settings.server, dict(settings.sites), self.store)
        self.connections: set[WsConnection] = set()
        self.per_ip = AddressCounts(settings.server.max_connections_per_ip)
        self.http_beats = AddressRate(settings.server.max_http_beats_per_ip)
        self.closing = False
        self._lag_task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()

    def background(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run `coro` on its own, keeping a reference until it ends."""
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def start(self) -> None:
        dashboard = self.settings.dashboard
        uses_dashboard = dashboard.tokens or any(
            site.dashboard_tokens for site in self.settings.sites.values()
        )
        if uses_dashboard and dashboard.session_secret is None:
            log.warning(
                "[dashboard] session_secret is not set: editors' sessions will not survive "
                "a restart nor work across instances"
            )
        await self.store.open()
        await self.hub.check_store()
        self.hub.start()
        self._lag_task = asyncio.create_task(self._probe_lag())
        # Long-lived start-up objects need no more collection passes, and fewer,
        # larger young-generation passes keep GC pauses short with many connections.
        gc.collect()
        gc.freeze()
        gc.set_threshold(50_000, 50, 100)

    async def drain(self) -> None:
        """Shutdown: close every WebSocket with 1001 and tell the store who left."""
        if self.closing:
            return
        self.closing = True
        log.info("draining %d connections", len(self.connections))
        for conn in list(self.connections):
            conn.shut(1001, "server shutting down")
        for site in self.hub.sites.values():
            for watcher in list(site.watchers):
                watcher.shut(1001, "server shutting down")
        await self.hub.drain()
        # Give close frames a moment to go out before the server drops sockets.
        deadline = asyncio.get_running_loop().time() + DRAIN_WAIT
        while self.connections and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        await self.drain()
        if self._lag_task is not None:
            self._lag_task.cancel()
        await self.hub.stop()
        await self.store.close()

    async def _probe_lag(self) -> None:
        # A fixed schedule, often: a probe re-armed after each firing falls into step
        # with the tick and never sees the loop blocked by a fan-out.
        loop = asyncio.get_running_loop()
        expected = loop.time()
        while True:
            expected += LAG_PROBE_EVERY
            await asyncio.sleep(max(0.0, expected - loop.time()))
            lag = loop.time() - expected
            metrics.event_loop_lag.observe(max(0.0, lag))
            if lag > LAG_PROBE_EVERY:
                expected = loop.time()  # skip the probes the stall swallowed


async def _bad_request(request: Request, exc: Exception) -> Response:
    return JSONResponse({"error": "bad_request", "message": str(exc)[:200]}, status_code=400)


async def _not_found(request: Request, exc: Exception) -> Response:
    return JSONResponse({"error": "not_found", "message": "no such endpoint"}, status_code=404)


async def _method_not_allowed(request: Request, exc: Exception) -> Response:
    return JSONResponse(
        {"error": "method_not_allowed", "message": "method not allowed"}, status_code=405
    )


async def _server_error(request: Request, exc: Exception) -> Response:
    log.error("unexpected error on %s: %r", request.url.path, exc)
    return JSONResponse({"error": "internal", "message": "unexpected error"}, status_code=500)


def create_app(settings: config.Settings, store: Store | None = None) -> Starlette:
    pulse = Pulse(settings, store)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await pulse.start()
        try:
            yield
        finally:
            await pulse.stop()

    site_path = "/api/v1/sites/{site}"
    routes = [
        Route("/", pages.home),
        Route("/widget.js", pages.widget_endpoint()),
        Route("/favicon.ico", pages.favicon),
        Route("/healthz", pages.healthz),
        Route("/readyz", pages.readyz),
        Route("/metrics", pages.metrics_endpoint),
        Route(f"{site_path}/beats", api.post_beat, methods=["POST"]),
        Route(f"{site_path}/beats", api.beats_preflight, methods=["OPTIONS"]),
        Route(f"{site_path}/stats", api.get_stats, methods=["GET"]),
        Route(f"{site_path}/badge.svg", api.get_badge, methods=["GET"]),
        Route("/api/v1/openapi.json", openapi.get_document, methods=["GET"]),
        WebSocketRoute("/ws", websocket_endpoint),
        *dashboard.routes(),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[Middleware(GZipMiddleware, minimum_size=500)],
        exception_handlers={
            400: _bad_request,
            404: _not_found,
            405: _method_not_allowed,
            500: _server_error,
        },
    )
    app.state.pulse = pulse
    return app


def app_from_env() -> Starlette:
    """Factory for uvicorn workers: the CLI passes settings through the environment."""
    settings = config.load(os.environ.get("PORTALPULSE_CONFIG"))
    overrides = {}
    if os.environ.get("PORTALPULSE_DATA_DIR"):
        from pathlib import Path

        overrides["data_dir"] = Path(os.environ["PORTALPULSE_DATA_DIR"])
    return create_app(settings.with_overrides(**overrides) if overrides else settings)
