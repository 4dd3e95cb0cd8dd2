"""The Starlette application: every route, the error handlers, and the lifespan
that starts and stops the runtime (`runtime.Pulse`)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from . import config, dashboard
from .limiter import AddressCounts, AddressRate
from .runtime import NOT_SERVED, Pulse
from .store import Store
from .web import api, openapi, pages, websocket
from .web.http import error_response

log = logging.getLogger("portalpulse")


async def _bad_request(request: Request, exc: Exception) -> Response:
    return error_response(400, "bad_request", str(exc)[:200])


async def _not_found(request: Request, exc: Exception) -> Response:
    return error_response(404, "not_found", "no such endpoint")


async def _method_not_allowed(request: Request, exc: Exception) -> Response:
    return error_response(405, "method_not_allowed", "method not allowed")


async def _server_error(request: Request, exc: Exception) -> Response:
    log.error("unexpected error on %s: %r", request.url.path, exc)
    return error_response(500, "internal", "unexpected error")


class PulseApp(Starlette):
    """Starlette, but the readers' WebSocket (`websocket.PATH`, thousands held at
    once) goes to its endpoint straight, past the middleware and the router: none
    of them acts on a WebSocket, and their coroutines and closures, held for a
    connection's whole life, took some 5 KB of it (docs/BENCHMARKS.md)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"] == (
            scope.get("root_path", "") + websocket.PATH
        ):
            scope["app"] = self
            await websocket.websocket_endpoint(WebSocket(scope, receive, send))
            return
        await super().__call__(scope, receive, send)


def create_app(
    settings: config.Settings,
    store: Store | None = None,
    direct_unavailable: str | None = NOT_SERVED,
) -> Starlette:
    """The service's app. `direct_unavailable`: why its server cannot offer the
    fan-out's direct-write path, None when it can (`portalpulse serve` knows)."""
    server = settings.server
    pulse = Pulse(
        settings,
        http_beats=AddressRate(server.max_http_beats_per_ip),
        connections=AddressCounts(server.max_connections_per_ip),
        store=store,
        direct_unavailable=direct_unavailable,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await pulse.start()
        await dashboard.start(app)
        try:
            yield
        finally:
            await pulse.stop()

    site_path = "/api/v1/sites/{site}"
    routes = [
        Route("/", pages.home),
        *pages.widget_routes(),
        Route("/favicon.ico", pages.favicon),
        Route("/healthz", pages.healthz),
        Route("/readyz", pages.readyz),
        Route("/metrics", pages.metrics_endpoint),
        Route(f"{site_path}/beats", api.post_beat, methods=["POST"]),
        Route(f"{site_path}/beats", api.beats_preflight, methods=["OPTIONS"]),
        Route(f"{site_path}/stats", api.get_stats, methods=["GET"]),
        Route(f"{site_path}/badge.svg", api.get_badge, methods=["GET"]),
        Route("/api/v1/openapi.json", openapi.get_document, methods=["GET"]),
        WebSocketRoute(websocket.PATH, websocket.websocket_endpoint),
        *dashboard.routes(),
    ]
    app = PulseApp(
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
