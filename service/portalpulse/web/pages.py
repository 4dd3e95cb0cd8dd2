"""Static and operational endpoints: the widget, the demo page, health, metrics."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from .. import metrics
from ..runtime import Pulse
from ..store.base import StoreUnavailable
from .http import error_response

READY_TIMEOUT = 2.0


def load_widget(name: str = "widget.js") -> bytes | None:
    """A file of the widget (`widget.js`, `loader.js`): packaged in the wheel, or
    from the checkout."""
    packaged = resources.files("portalpulse").joinpath(f"static/{name}")
    if packaged.is_file():
        return packaged.read_bytes()
    checkout = Path(__file__).resolve().parents[3] / "frontend-widget" / name
    if checkout.is_file():
        return checkout.read_bytes()
    return None


LOADER_CACHE = "public, max-age=300, stale-while-revalidate=86400"
"""The loader: a browser runs the one it has while it asks for a newer one, for a day."""
WIDGET_CACHE = "public, max-age=31536000, immutable"


@dataclass(frozen=True, slots=True)
class WidgetFiles:
    """What the embed loads: a loader at `/widget.js`, cached minutes, that loads
    the widget of this version at `/widget.HASH.js`, cached a year (HASH: of its
    content, worked out at start-up)."""

    widget: bytes | None
    loader: bytes | None
    version: str

    @classmethod
    def load(cls) -> WidgetFiles:
        widget, loader = load_widget(), load_widget("loader.js")
        version = hashlib.sha256(widget or b"").hexdigest()[:12]
        if widget is not None and loader is not None:
            loader = loader.replace(b"__WIDGET__", f"widget.{version}.js".encode())
        return cls(widget, loader, version)

    @property
    def path(self) -> str:
        return f"/widget.{self.version}.js"


def _script(body: bytes | None, cache: str) -> Callable[[Request], Awaitable[Response]]:
    """A script that is served with its ETag (GZipMiddleware compresses it)."""
    etag = '"' + hashlib.sha256(body or b"").hexdigest()[:20] + '"'
    headers = {
        "ETag": etag,
        "Cache-Control": cache,
        "Access-Control-Allow-Origin": "*",
        "Timing-Allow-Origin": "*",  # portals' timing tools (and our tests) see cache hits
    }

    async def script(request: Request) -> Response:
        if body is None:
            return error_response(404, "widget_missing", "widget.js is not installed")
        if etag in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers=headers)
        return Response(body, media_type="text/javascript; charset=utf-8", headers=headers)

    return script


def widget_routes() -> list[Route]:
    """`GET /widget.js` (the loader) and `GET /widget.HASH.js` (the widget). A
    request for another version's file (a loader cached before a deploy, or an
    instance not yet updated behind the same address) gets this version's widget,
    cached minutes only: every version speaks the same contract."""
    files = WidgetFiles.load()
    current = _script(files.widget, WIDGET_CACHE)
    other = _script(files.widget, LOADER_CACHE)

    async def versioned(request: Request) -> Response:
        if request.path_params["version"] == files.version:
            return await current(request)
        return await other(request)

    return [
        Route("/widget.js", _script(files.loader, LOADER_CACHE)),
        Route("/widget.{version:str}.js", versioned),
    ]


DEMO_PAGE = resources.files("portalpulse.web").joinpath("static/demo.html").read_text("utf-8")


async def home(request: Request) -> Response:
    pulse: Pulse = request.app.state.pulse
    if pulse.settings.demo:
        return HTMLResponse(DEMO_PAGE)
    sites = ", ".join(sorted(pulse.settings.sites))
    return HTMLResponse(
        "<!doctype html><meta charset=utf-8><title>Portal Pulse</title>"
        f"<h1>Portal Pulse</h1><p>Serving sites: {sites}.</p>"
        "<p>Embed: <code>&lt;script src=&quot;/widget.js&quot; data-site=&quot;SITE&quot; "
        "async&gt;&lt;/script&gt;</code></p>"
    )


async def favicon(request: Request) -> Response:
    # Browsers ask for it on the demo page; nothing to show, nothing to log.
    return Response(status_code=204, headers={"Cache-Control": "public, max-age=86400"})


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    pulse: Pulse = request.app.state.pulse
    if pulse.closing:
        return JSONResponse({"status": "unavailable", "reason": "shutting down"}, status_code=503)
    try:
        async with asyncio.timeout(READY_TIMEOUT):
            await pulse.store.ping()
    except (StoreUnavailable, TimeoutError) as exc:
        metrics.store_up.set(0)
        reason = str(exc) or "the store did not answer in time"
        return JSONResponse(
            {"status": "unavailable", "reason": f"store: {reason}"}, status_code=503
        )
    metrics.store_up.set(1)
    return JSONResponse({"status": "ready"})


async def metrics_endpoint(request: Request) -> Response:
    return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
