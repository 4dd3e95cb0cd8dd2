"""One article's last hour, for the dashboard's drill-down:
`GET /dashboard/api/sites/{site}/pages?path=/the/page`, with the editor's session.

The store keeps it per page and minute (store/page_minutes.py); this turns it
into what the panel shows: readers per minute, sources, named referrers,
devices, the pages that sent readers here, and an estimate of engaged time.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..dashboard_feed import device_counts, split_sources
from ..protocol import MAX_PATH_BYTES
from ..store.base import StoreUnavailable
from ..store.page_minutes import PageDetail
from ..web.http import error_response
from . import assets
from .access import pulse_of, session_of
from .pages import unauthorized


def refuse(status: int, code: str, message: str) -> JSONResponse:
    return error_response(status, code, message, assets.PRIVATE)


def site_of_request(request: Request) -> str | Response:
    """The `{site}` of the path when this editor may see it, else the refusal."""
    session = session_of(request)
    if session is None:
        return unauthorized()
    site_id: str = request.path_params["site"]
    if site_id not in pulse_of(request).settings.sites:
        return refuse(404, "unknown_site", "no such site")
    if not session.may_see(site_id):
        return refuse(403, "forbidden_site", "this session may not see that site")
    return site_id


def store_down() -> JSONResponse:
    return refuse(503, "store_unavailable", "the store does not answer; try again")


def engaged_seconds(detail: PageDetail) -> int:
    """Average engaged time of the hour's readers, estimated: each minute counts
    its most engaged readers as engaged for that minute (engaged reader-minutes),
    shared among the hour's views (or its most readers, when more)."""
    reader_minutes = sum(engaged for _, _, engaged in detail.minutes)
    readers = max([detail.views, 1, *(r for _, r, _ in detail.minutes)])
    return round(60 * reader_minutes / readers)


def page_payload(site_id: str, detail: PageDetail) -> dict[str, Any]:
    kinds, named = split_sources(detail.sources)
    return {
        "site": site_id,
        "path": detail.path,
        "title": detail.title,
        "readers": detail.minutes[-1][1] if detail.minutes else 0,
        "minutes": [[ts, readers, engaged] for ts, readers, engaged in detail.minutes],
        "views": detail.views,
        "sources": kinds,
        "referrers": named,
        "devices": device_counts(detail.devices),
        "internal": [{"path": path, "views": n} for path, n in detail.internal.items()],
        "engaged_seconds": engaged_seconds(detail),
    }


async def get_page(request: Request) -> Response:
    """A tracked page's last hour; 404 `unknown_page` for a page the store does not track."""
    site_id = site_of_request(request)
    if isinstance(site_id, Response):
        return site_id
    path = request.query_params.get("path", "")
    if not path.startswith("/") or len(path.encode()) > MAX_PATH_BYTES:
        return refuse(
            400, "bad_path", f"path must start with / and be at most {MAX_PATH_BYTES} bytes"
        )
    try:
        detail = await pulse_of(request).store.page_detail(site_id, path)
    except StoreUnavailable:
        return store_down()
    if detail is None:
        return refuse(404, "unknown_page", "no reader of this page in the last hour")
    return JSONResponse(page_payload(site_id, detail), headers=assets.PRIVATE)
