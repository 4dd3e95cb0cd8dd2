"""Static and operational endpoints: the widget, the demo page, health, metrics."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from importlib import resources
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from .. import metrics
from ..runtime import Pulse
from ..store.base import StoreUnavailable
from .http import error_response

READY_TIMEOUT = 2.0


def load_widget() -> bytes | None:
    """The widget source: packaged in the wheel, or from the checkout."""
    packaged = resources.files("portalpulse").joinpath("static/widget.js")
    if packaged.is_file():
        return packaged.read_bytes()
    checkout = Path(__file__).resolve().parents[3] / "frontend-widget" / "widget.js"
    if checkout.is_file():
        return checkout.read_bytes()
    return None


def widget_endpoint() -> Callable[[Request], Awaitable[Response]]:
    """`GET /widget.js`: cacheable, with an ETag (GZipMiddleware compresses it)."""
    body = load_widget()
    etag = '"' + hashlib.sha256(body or b"").hexdigest()[:20] + '"'
    headers = {
        "ETag": etag,
        "Cache-Control": "public, max-age=300",
        "Access-Control-Allow-Origin": "*",
    }

    async def widget(request: Request) -> Response:
        if body is None:
            return error_response(404, "widget_missing", "widget.js is not installed")
        if etag in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers=headers)
        return Response(body, media_type="text/javascript; charset=utf-8", headers=headers)

    return widget


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
