"""The dashboard's files (HTML, JavaScript, CSS, vendored uPlot), read once at import,
and the security headers every dashboard answer carries."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable

from starlette.requests import Request
from starlette.responses import Response

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self' ws: wss:; "
    "img-src 'self' data:; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}
PRIVATE = {**SECURITY_HEADERS, "Cache-Control": "no-store"}

MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    "": "text/plain; charset=utf-8",  # LICENSE
}


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    media_type: str
    etag: str


def _walk(folder: Traversable, prefix: str = "") -> dict[str, Asset]:
    found: dict[str, Asset] = {}
    for entry in folder.iterdir():
        name = f"{prefix}{entry.name}"
        if entry.is_dir():
            found.update(_walk(entry, name + "/"))
            continue
        suffix = "." + entry.name.rsplit(".", 1)[1] if "." in entry.name else ""
        if suffix not in MEDIA_TYPES:
            continue
        body = entry.read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
        found[name] = Asset(body, MEDIA_TYPES[suffix], etag)
    return found


ASSETS = _walk(resources.files("portalpulse.dashboard").joinpath("static"))
"""Relative path under static/ -> file. Only these are ever served."""


def text(name: str) -> str:
    return ASSETS[name].body.decode("utf-8")


async def static_file(request: Request) -> Response:
    """`GET /dashboard/static/{path}`: code and styles only, no data, so no session
    is needed (the sign-in page uses them too)."""
    asset = ASSETS.get(request.path_params["path"])
    if asset is None or asset.media_type.startswith("text/html"):
        return Response("not found", status_code=404, headers=SECURITY_HEADERS)
    headers = {**SECURITY_HEADERS, "ETag": asset.etag, "Cache-Control": "no-cache"}
    if asset.etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)
