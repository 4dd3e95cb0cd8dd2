"""The public HTTP API (CONTRACT §4): beats fallback, stats, badge."""

from __future__ import annotations

import logging
from typing import Any
from xml.sax.saxutils import escape

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .. import metrics, protocol
from ..config import SiteSettings
from ..periods import periods_of
from ..protocol import ProtocolError
from ..runtime import Pulse
from ..store.base import StoreUnavailable
from .clientaddr import client_address, limit_key
from .http import error_response, read_body

log = logging.getLogger("portalpulse.api")

MAX_BODY = 16 * 1024
BEAT_CONTENT_TYPES = ("application/json", "text/plain", "")


def error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """Refuse bad input: counted in `portalpulse_messages_rejected_total`."""
    metrics.messages_rejected.labels(code).inc()
    return error_response(status, code, message, headers)


def _pulse(request: Request) -> Pulse:
    pulse: Pulse = request.app.state.pulse
    return pulse


def _site(request: Request) -> SiteSettings | None:
    return _pulse(request).settings.sites.get(request.path_params["site"])


def _cors_for(site: SiteSettings, request: Request) -> dict[str, str]:
    origin = request.headers.get("origin")
    if origin and site.allows_origin(origin):
        return {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Methods": "POST, OPTIONS",
            "Access-Control-Allow-Headers": "Content-Type",
            "Access-Control-Max-Age": "600",
            "Vary": "Origin",
        }
    return {"Vary": "Origin"}


async def beats_preflight(request: Request) -> Response:
    site = _site(request)
    if site is None:
        return error(404, "unknown_site", "no such site")
    headers = _cors_for(site, request)
    if "Access-Control-Allow-Origin" not in headers:
        return error(403, "forbidden_origin", "this origin may not use the site", headers)
    return Response(status_code=204, headers=headers)


async def post_beat(request: Request) -> Response:
    site = _site(request)
    if site is None:
        return error(404, "unknown_site", "no such site")
    pulse = _pulse(request)
    headers = _cors_for(site, request)
    origin = request.headers.get("origin")
    if origin is not None and "Access-Control-Allow-Origin" not in headers:
        return error(403, "forbidden_origin", "this origin may not use the site", headers)
    if pulse.closing:
        # Before any other check: the client should retry on another instance at once.
        return error(503, "shutting_down", "this instance is shutting down", headers)
    if not pulse.http_beats.allow(limit_key(client_address(request))):
        return error(429, "rate", "too many beats from this address; slow down", headers)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in BEAT_CONTENT_TYPES:
        return error(415, "bad_content_type", "send application/json or text/plain", headers)
    try:
        body = await read_body(request, MAX_BODY)
        data = protocol.decode_object(body)
        if data.get("type", "hello") not in ("hello", "beat"):
            raise ProtocolError("bad_message", "'type' must be hello (or left out)")
        hello = protocol.parse_hello(data, site)
    except ProtocolError as exc:
        status = 413 if exc.code == "too_big" else 400
        return error(status, exc.code, exc.message, headers)
    if not pulse.hub.http_beat(site.id, hello):
        message = "this instance keeps as many visitors on HTTP beats as it may; try later"
        return error(503, "overloaded", message, headers)
    metrics.beats.labels("http").inc()
    # Answer with a count that includes this beat: wait for its flush (one tick at most).
    await pulse.hub.settled(pulse.settings.server.push_interval + 1)
    try:
        snap = await pulse.hub.read_snapshot(site.id)
    except StoreUnavailable:
        # The beat is kept and counted once the store is back.
        return JSONResponse(
            {"site": site.id, "beat_interval": pulse.settings.server.beat_interval},
            status_code=202,
            headers=headers,
        )
    body_out: dict[str, Any] = protocol.snapshot_payload(snap, site)
    body_out["beat_interval"] = pulse.settings.server.beat_interval
    return JSONResponse(body_out, headers={**headers, "Cache-Control": "no-store"})


async def get_stats(request: Request) -> Response:
    site = _site(request)
    cors = {"Access-Control-Allow-Origin": "*"}
    if site is None:
        return error(404, "unknown_site", "no such site", cors)
    try:
        snap = await _pulse(request).hub.read_snapshot(site.id)
        periods = await periods_of(request).of(request, snap)
    except StoreUnavailable:
        return error(503, "store_unavailable", "the store does not answer; try again", cors)
    return JSONResponse(
        protocol.stats_payload(snap, site, periods),
        headers={**cors, "Cache-Control": "max-age=1"},
    )


def group_digits(n: int, lang: str) -> str:
    """12345678 -> '12.345.678' (vi-VN) or '12,345,678' (en)."""
    return f"{n:,}".replace(",", "." if lang == "vi" else ",")


BADGE_TEXT = {"vi": "{n} người đang online", "en": "{n} online now"}


async def get_badge(request: Request) -> Response:
    site = _site(request)
    if site is None:
        return error(404, "unknown_site", "no such site")
    lang = request.query_params.get("lang", "vi")
    if lang not in BADGE_TEXT:
        return error(400, "bad_lang", "lang must be vi or en")
    try:
        snap = await _pulse(request).hub.read_snapshot(site.id)
    except StoreUnavailable:
        return error(503, "store_unavailable", "the store does not answer; try again")
    text = BADGE_TEXT[lang].format(n=group_digits(snap.online, lang))
    width = 16 + int(len(text) * 7.2)
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="22" role="img" '
        f'aria-label="{escape(text)}"><title>{escape(text)}</title>'
        f'<rect width="{width}" height="22" rx="4" fill="#b3261e"/>'
        f'<text x="{width // 2}" y="15" fill="#fff" text-anchor="middle" '
        f'font-family="Arial,Helvetica,sans-serif" font-size="12">{escape(text)}</text></svg>'
    )
    return Response(
        svg,
        media_type="image/svg+xml; charset=utf-8",
        headers={"Cache-Control": "max-age=5", "Access-Control-Allow-Origin": "*"},
    )
