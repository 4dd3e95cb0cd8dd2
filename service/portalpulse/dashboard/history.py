"""The long history of a site: its days (400 kept), this month and this year, a
day's top articles; as JSON and CSV for programs (a bearer token) and editors
(a dashboard session), and the history page of the dashboard.

Programs send `Authorization: Bearer <token>`; the config holds the token's
SHA-256 only, per site (`api_tokens`) or for every site (`[api] tokens`).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from .. import protocol
from ..domain import DayCounts, day_key
from ..store.base import DAY_KEEP_DAYS, TOP_PAGES_DAY, StoreUnavailable
from ..web.http import error_response
from . import assets
from .access import pulse_of, session_of
from .feed import DEFAULT_HISTORY_MINUTES, MAX_HISTORY_MINUTES, feed_of
from .tokens import matches_any

DEFAULT_DAYS = 30
CSV_FIELDS = ("date", "visits", "views", "visitors", "peak_online", "peak_at")
TOP_CSV_FIELDS = ("rank", "path", "title", "views")
ASK = {"WWW-Authenticate": 'Bearer realm="portalpulse"'}


class BadQuery(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def fail(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return error_response(status, code, message, {**assets.PRIVATE, **(headers or {})})


def _bearer(request: Request) -> str | None:
    """The bearer token of the request, '' for a malformed header, None without one."""
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def refusal(request: Request, site_id: str) -> Response | None:
    """None when the request may read `site_id`'s history (a bearer token of the site
    or of every site, or an editor's session for it); else the error to answer."""
    settings = pulse_of(request).settings
    site = settings.sites.get(site_id)
    if site is None:
        return fail(404, "unknown_site", "no such site")
    token = _bearer(request)
    if token is not None:
        if matches_any(token, settings.api_tokens) or matches_any(token, site.api_tokens):
            return None
        # Constant-time over every site: a token of another site is a 403, not a 401.
        if any([matches_any(token, s.api_tokens) for s in settings.sites.values()]):
            return fail(403, "forbidden_site", "this token may not read that site")
        return fail(
            401, "unauthorized", "send Authorization: Bearer <token> with a token of the site", ASK
        )
    session = session_of(request)
    if session is None:
        return fail(
            401, "unauthorized", "sign in to the dashboard first, or send a bearer token", ASK
        )
    if not session.may_see(site_id):
        return fail(403, "forbidden_site", "this session may not see that site")
    return None


def today_of(request: Request) -> dt.date:
    server = pulse_of(request).settings.server
    key = day_key(time.time() + server.clock_offset, server.zone)
    return dt.datetime.strptime(key, "%Y%m%d").date()


def _date(name: str, value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value) if len(value) == 10 else _no_date(name, value)
    except ValueError:
        return _no_date(name, value)


def _no_date(name: str, value: str) -> dt.date:
    raise BadQuery("bad_range", f"{name} must be a date like 2026-12-03, got {value[:20]!r}")


def day_span(params: Any, today: dt.date) -> tuple[dt.date, dt.date]:
    """`?days=N` (the last N days, today included) or `?from=&to=` (dates, both
    included; `to` defaults to today, `from` to 29 days before `to`)."""
    if "days" in params:
        raw = params["days"]
        if not raw.isdigit() or not 1 <= int(raw[:6]) <= DAY_KEEP_DAYS:
            raise BadQuery("bad_days", f"days must be a whole number from 1 to {DAY_KEEP_DAYS}")
        return today - dt.timedelta(days=int(raw) - 1), today
    last = _date("to", params["to"]) if "to" in params else today
    first = _date("from", params["from"]) if "from" in params else last - dt.timedelta(days=29)
    if first > last:
        raise BadQuery("bad_range", "from must not be after to")
    if (last - first).days >= DAY_KEEP_DAYS:
        raise BadQuery("bad_range", f"at most {DAY_KEEP_DAYS} days at once")
    return first, last


def wants_days(params: Any) -> bool:
    return any(name in params for name in ("days", "from", "to"))


async def read_days(request: Request, site_id: str, first: dt.date, last: dt.date) -> list[Any]:
    """Every day of the span, oldest first; days with nothing counted read 0."""
    store = pulse_of(request).store
    kept = dict(await store.days(site_id, first.strftime("%Y%m%d"), last.strftime("%Y%m%d")))
    out = []
    for n in range((last - first).days + 1):
        day = first + dt.timedelta(days=n)
        counts = kept.get(day.strftime("%Y%m%d"), DayCounts())
        out.append({"date": day.isoformat(), **protocol.day_payload(counts)})
    return out


Handler = Callable[[Request, str], Awaitable[Response]]


def guarded(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """The endpoint for `handler`: who may read is checked first, and a bad query
    or a store that does not answer become the contract's JSON errors."""

    async def endpoint(request: Request) -> Response:
        site_id = request.path_params["site"]
        refused = refusal(request, site_id)
        if refused is not None:
            return refused
        try:
            return await handler(request, site_id)
        except BadQuery as exc:
            return fail(400, exc.code, exc.message)
        except StoreUnavailable:
            return fail(503, "store_unavailable", "the store does not answer; try again")

    endpoint.__doc__ = handler.__doc__
    return endpoint


@guarded
async def get_history(request: Request, site_id: str) -> Response:
    """`GET /api/v1/sites/{site}/history`: online per minute (`?minutes=N`, the
    default), and with `?days=N` or `?from=&to=` the days, this month and this year."""
    params = request.query_params
    body: dict[str, Any] = {"site": site_id}
    if wants_days(params):
        first, last = day_span(params, today_of(request))
    if "minutes" in params or not wants_days(params):
        minutes = _minutes(params.get("minutes", str(DEFAULT_HISTORY_MINUTES)))
        points = await feed_of(request).history(site_id, minutes)
        body["minutes"] = [[ts, online] for ts, online in points]
    if wants_days(params):
        body["from"], body["to"] = first.isoformat(), last.isoformat()
        body["days"] = await read_days(request, site_id, first, last)
        today = today_of(request).strftime("%Y%m%d")
        month, year = await pulse_of(request).store.periods(site_id, today)
        body["month"] = protocol.period_payload(month)
        body["year"] = protocol.period_payload(year)
    return JSONResponse(body, headers=assets.PRIVATE)


def _minutes(raw: str) -> int:
    if not raw.isdigit() or len(raw) > 6 or not 1 <= int(raw) <= MAX_HISTORY_MINUTES:
        raise BadQuery(
            "bad_minutes", f"minutes must be a whole number from 1 to {MAX_HISTORY_MINUTES}"
        )
    return int(raw)


def _cell(value: object) -> object:
    """Text a spreadsheet would run as a formula (titles come from readers' pages)
    is kept as text."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def csv_response(rows: Iterable[Iterable[object]], filename: str) -> Response:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for row in rows:
        writer.writerow([_cell(v) for v in row])
    # The byte-order mark makes spreadsheets read the Vietnamese as UTF-8.
    return Response(
        "\ufeff" + out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={**assets.PRIVATE, "Content-Disposition": f'attachment; filename="{filename}"'},
    )


def local_time(when: float | None, request: Request) -> str:
    if when is None:
        return ""
    zone = pulse_of(request).settings.server.zone
    return dt.datetime.fromtimestamp(when, zone).isoformat(timespec="seconds")


@guarded
async def get_history_csv(request: Request, site_id: str) -> Response:
    """`GET /api/v1/sites/{site}/history.csv?days=N` (or `from`/`to`): one row a day."""
    first, last = day_span(request.query_params, today_of(request))
    days = await read_days(request, site_id, first, last)
    rows: list[Iterable[object]] = [CSV_FIELDS]
    rows += [
        [d["date"], d["visits"], d["views"], d["visitors"], d["peak_online"],
         local_time(d["peak_at"], request)]
        for d in days
    ]  # fmt: skip
    name = f"{site_id}-days-{first:%Y%m%d}-{last:%Y%m%d}.csv"
    return csv_response(rows, name)


async def _top(request: Request, site_id: str) -> tuple[dt.date, list[tuple[str, str, int]]]:
    day = _date("date", request.query_params.get("date", today_of(request).isoformat()))
    pages = await pulse_of(request).store.top_pages(site_id, day.strftime("%Y%m%d"), TOP_PAGES_DAY)
    return day, pages


@guarded
async def get_top(request: Request, site_id: str) -> Response:
    """`GET /api/v1/sites/{site}/top?date=YYYY-MM-DD`: the day's most viewed pages."""
    day, pages = await _top(request, site_id)
    body = {
        "site": site_id,
        "date": day.isoformat(),
        "pages": [{"path": p, "title": t, "views": v} for p, t, v in pages],
    }
    return JSONResponse(body, headers=assets.PRIVATE)


@guarded
async def get_top_csv(request: Request, site_id: str) -> Response:
    """`GET /api/v1/sites/{site}/top.csv?date=YYYY-MM-DD`: the same as CSV."""
    day, pages = await _top(request, site_id)
    rows: list[Iterable[object]] = [TOP_CSV_FIELDS]
    rows += [[rank, p, t, v] for rank, (p, t, v) in enumerate(pages, 1)]
    return csv_response(rows, f"{site_id}-top-{day:%Y%m%d}.csv")


async def history_page(request: Request) -> Response:
    """`GET /dashboard/{site}/history`: the page (its script reads the API above)."""
    site_id = request.path_params["site"]
    if site_id not in pulse_of(request).settings.sites:
        return fail(404, "unknown_site", "no such site")
    session = session_of(request)
    if session is None or not session.may_see(site_id):
        query = urlencode({"next": f"/dashboard/{site_id}/history", "site": site_id})
        return RedirectResponse(
            f"/dashboard/login?{query}", status_code=303, headers=assets.PRIVATE
        )
    return HTMLResponse(assets.text("history.html"), headers=assets.PRIVATE)
