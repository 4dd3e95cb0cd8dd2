"""`GET /api/v1/openapi.json` (CONTRACT §4): the HTTP API described for programs.

The document is built once from small pieces: schemas for what the API sends
and takes, one helper per kind of answer, and one entry per endpoint in
`OPERATIONS`. A new `/api/v1` endpoint adds its entry (and any new schema)
here; tests/e2e/test_openapi.py checks every documented answer against a
live service, so the document cannot drift from what the service does.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from .. import __version__, protocol
from ..dashboard.sessions import COOKIE_NAME

Schema = dict[str, Any]

COUNT: Schema = {"type": "integer", "minimum": 0}
SITE_ID = r"^[a-z0-9][a-z0-9-]{0,62}$"


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(properties: dict[str, Schema], optional: tuple[str, ...] = ()) -> Schema:
    """An object whose properties are all required except `optional`; more may come
    later (the contract lets new fields appear), so extra properties are allowed."""
    return {
        "type": "object",
        "required": [name for name in properties if name not in optional],
        "properties": properties,
    }


DAY = obj(
    {
        "visits": COUNT,
        "views": COUNT,
        "visitors": COUNT,
        "peak_online": COUNT,
        "peak_at": {"type": ["number", "null"], "description": "Unix time of today's peak"},
    }
)
YESTERDAY = obj({"visits": COUNT, "views": COUNT, "visitors": COUNT, "peak_online": COUNT})
PERIOD = obj(
    {
        "visits": COUNT,
        "views": COUNT,
        "visitors": {**COUNT, "description": "an estimate (HyperLogLog), within about 2 %"},
    }
)
DATE: Schema = {"type": "string", "format": "date", "description": "YYYY-MM-DD, site's time zone"}
HISTORY_DAY = obj({"date": DATE, **DAY["properties"]})
TRENDING_PAGE = obj(
    {
        "path": {"type": "string"},
        "title": {"type": "string", "maxLength": protocol.MAX_TITLE_CHARS},
        "readers": COUNT,
        "views": {**COUNT, "description": "views in the last trending_window"},
    }
)
SNAPSHOT_FIELDS: dict[str, Schema] = {
    "site": {"type": "string", "pattern": SITE_ID},
    "online": COUNT,
    "trending": {"type": "array", "items": ref("TrendingPage")},
    "today": ref("Day"),
    "total_visits": {**COUNT, "description": "includes the site's total_visits_offset"},
    "ts": {"type": "number", "description": "server's Unix time when the snapshot was taken"},
}
BEAT_INTERVAL: Schema = {"type": "number", "exclusiveMinimum": 0}
PAGE = obj(
    {
        # What location.pathname (+ search) gives: already percent-encoded ASCII. The
        # service also takes raw Unicode paths, up to 512 bytes once percent-encoded.
        "path": {
            "type": "string",
            "pattern": r"^/(?!/)[A-Za-z0-9/%:@!$&'()*+,;=._~-]*(\?[A-Za-z0-9%=&._~-]*)?$",
            "maxLength": protocol.MAX_PATH_BYTES,
            "description": "the page's path (and query), starting with a single '/'",
        },
        "title": {"type": "string", "description": "plain text, cut to 200 characters"},
        "referrer": {"type": "string"},
    },
    optional=("title", "referrer"),
)
BEAT_BODY = obj(
    {
        "type": {"type": "string", "enum": ["hello", "beat"]},
        "visitor": {"type": "string", "pattern": protocol.VISITOR_ID.pattern},
        "pages": {"type": "array", "maxItems": protocol.MAX_PAGES, "items": ref("Page")},
        "engaged": {"type": "boolean"},
        "resume": {"type": "boolean", "description": "a reconnect: counts no views"},
        "device": {"type": "string", "enum": list(protocol.DEVICES)},
        "bye": {"type": "boolean", "description": "this browser's last tab is leaving"},
        "want": {
            "type": "array",
            "minItems": 1,
            "items": {"enum": list(protocol.WANTABLE)},
            "description": "as in the WebSocket hello; HTTP answers carry the whole snapshot",
        },
    },
    optional=("type", "pages", "engaged", "resume", "device", "bye", "want"),
)
ERROR = obj(
    {
        "error": {"type": "string", "description": "a stable code programs may test"},
        "message": {"type": "string", "description": "for people; may change"},
    }
)

SCHEMAS: dict[str, Schema] = {
    "Day": DAY,
    "Yesterday": YESTERDAY,
    "TrendingPage": TRENDING_PAGE,
    "Snapshot": obj(SNAPSHOT_FIELDS),
    "Stats": obj(
        {
            **SNAPSHOT_FIELDS,
            "yesterday": ref("Yesterday"),
            "month": {**ref("Period"), "description": "this month, in the site's time zone"},
            "year": {**ref("Period"), "description": "this year, in the site's time zone"},
        }
    ),
    "Period": PERIOD,
    "HistoryDay": HISTORY_DAY,
    "TopPages": obj(
        {
            "site": SNAPSHOT_FIELDS["site"],
            "date": DATE,
            "pages": {
                "type": "array",
                "maxItems": 100,
                "items": obj(
                    {"path": {"type": "string"}, "title": {"type": "string"}, "views": COUNT}
                ),
            },
        }
    ),
    "BeatAnswer": obj({**SNAPSHOT_FIELDS, "beat_interval": BEAT_INTERVAL}),
    "BeatAccepted": obj({"site": SNAPSHOT_FIELDS["site"], "beat_interval": BEAT_INTERVAL}),
    "Page": PAGE,
    "Beat": BEAT_BODY,
    "History": obj(
        {
            "site": SNAPSHOT_FIELDS["site"],
            "minutes": {
                "type": "array",
                "description": "[minute's Unix time, online], oldest first",
                "items": {
                    "type": "array",
                    # Both numbers, not two prefixItems: some validators still read
                    # `items` the draft-4 way.
                    "items": {"type": "number", "minimum": 0},
                    "minItems": 2,
                    "maxItems": 2,
                },
            },
            "from": DATE,
            "to": DATE,
            "days": {
                "type": "array",
                "maxItems": 400,
                "description": "every day from `from` to `to`, oldest first",
                "items": ref("HistoryDay"),
            },
            "month": ref("Period"),
            "year": ref("Period"),
        },
        optional=("minutes", "from", "to", "days", "month", "year"),
    ),
    "Error": ERROR,
}


# -- answers ----------------------------------------------------------------------


def json_answer(description: str, schema: Schema) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def error_answer(description: str, *codes: str) -> Schema:
    """An error body whose `error` is one of `codes` (the codes this answer uses)."""
    schema = {"allOf": [ref("Error"), {"properties": {"error": {"enum": list(codes)}}}]}
    return json_answer(description, schema)


UNKNOWN_SITE = error_answer("No such site", "unknown_site")
STORE_DOWN = error_answer("The store does not answer; try again", "store_unavailable")

SITE_PARAM: Schema = {
    "name": "site",
    "in": "path",
    "required": True,
    "description": "the site's id",
    "schema": {"type": "string", "pattern": SITE_ID},
    "example": "demo",
}
CORS_ORIGIN: Schema = {
    "Access-Control-Allow-Origin": {
        "description": "the request's Origin when it is one of the site's origins",
        "schema": {"type": "string"},
    }
}


# -- endpoints ----------------------------------------------------------------------


def post_beats() -> Schema:
    body_schema = ref("Beat")
    return {
        "operationId": "postBeat",
        "summary": "A beat over HTTP: the WebSocket fallback, and sendBeacon on unload",
        "parameters": [SITE_PARAM],
        "requestBody": {
            "required": True,
            "description": f"at most {16 * 1024} bytes",
            "content": {
                "application/json": {"schema": body_schema},
                # What sendBeacon sends: the same JSON object, as text.
                "text/plain": {
                    "schema": {
                        "type": "string",
                        "contentMediaType": "application/json",
                        "contentSchema": body_schema,
                    }
                },
            },
        },
        "responses": {
            "200": {
                **json_answer("The site's snapshot, this beat counted", ref("BeatAnswer")),
                "headers": CORS_ORIGIN,
            },
            "202": json_answer(
                "Beat kept; the store is down, it is counted once the store is back",
                ref("BeatAccepted"),
            ),
            "400": error_answer(
                "Malformed beat; counts nothing",
                "bad_json",
                "bad_message",
                "bad_visitor",
                "bad_page",
                "too_many_pages",
            ),
            "403": error_answer("The Origin is not one of the site's origins", "forbidden_origin"),
            "404": UNKNOWN_SITE,
            "413": error_answer("Body larger than 16 KiB", "too_big"),
            "415": error_answer("Send application/json or text/plain", "bad_content_type"),
            "429": error_answer("Too many beats from this address", "rate"),
            "503": error_answer(
                "This instance is shutting down, or keeps as many visitors on HTTP beats "
                "as it may (server.max_http_visitors): a new one is refused, counted nothing",
                "shutting_down",
                "overloaded",
            ),
        },
    }


def preflight_beats() -> Schema:
    return {
        "operationId": "preflightBeat",
        "summary": "CORS preflight for beats, for the site's origins only",
        "parameters": [SITE_PARAM],
        "responses": {
            "204": {"description": "The origin may post beats", "headers": CORS_ORIGIN},
            "403": error_answer("The Origin is not one of the site's origins", "forbidden_origin"),
            "404": UNKNOWN_SITE,
        },
    }


def get_stats() -> Schema:
    return {
        "operationId": "getStats",
        "summary": "Public numbers of a site: its snapshot plus yesterday",
        "parameters": [SITE_PARAM],
        "responses": {
            "200": json_answer("The site's snapshot and yesterday's counts", ref("Stats")),
            "404": UNKNOWN_SITE,
            "503": STORE_DOWN,
        },
    }


def get_badge() -> Schema:
    return {
        "operationId": "getBadge",
        "summary": "A counter image for pages without JavaScript; counts nobody",
        "parameters": [
            SITE_PARAM,
            {
                "name": "lang",
                "in": "query",
                "required": False,
                "schema": {"type": "string", "enum": ["vi", "en"], "default": "vi"},
            },
        ],
        "responses": {
            "200": {
                "description": "An SVG image, e.g. '1.011 người đang online'",
                "content": {"image/svg+xml": {"schema": {"type": "string"}}},
            },
            "400": error_answer("lang is neither vi nor en", "bad_lang"),
            "404": UNKNOWN_SITE,
            "503": STORE_DOWN,
        },
    }


READER_SECURITY: list[dict[str, list[str]]] = [{"bearerToken": []}, {"dashboardSession": []}]
UNAUTHORIZED = error_answer("No bearer token of the site, and no dashboard session", "unauthorized")
FORBIDDEN = error_answer("The token or session may not read this site", "forbidden_site")
SPAN_PARAMS: list[Schema] = [
    {
        "name": "days",
        "in": "query",
        "required": False,
        "description": "the last N days, today included",
        "schema": {"type": "integer", "minimum": 1, "maximum": 400},
    },
    {"name": "from", "in": "query", "required": False, "schema": DATE},
    {"name": "to", "in": "query", "required": False, "schema": DATE},
]
CSV_ANSWER = {
    "content": {"text/csv": {"schema": {"type": "string"}}},
}


def get_history() -> Schema:
    return {
        "operationId": "getHistory",
        "summary": "Online per minute (the dashboard's chart), and with days or from/to the "
        "days (kept 400), this month and this year; a bearer token or an editor's session",
        "security": READER_SECURITY,
        "parameters": [
            SITE_PARAM,
            {
                "name": "minutes",
                "in": "query",
                "required": False,
                "schema": {"type": "integer", "minimum": 1, "maximum": 8 * 24 * 60, "default": 60},
            },
            *SPAN_PARAMS,
        ],
        "responses": {
            "200": json_answer("Online per minute and/or the days, oldest first", ref("History")),
            "400": error_answer(
                "minutes, days or from/to out of range", "bad_minutes", "bad_days", "bad_range"
            ),
            "401": UNAUTHORIZED,
            "403": FORBIDDEN,
            "404": UNKNOWN_SITE,
            "503": STORE_DOWN,
        },
    }


def get_history_csv() -> Schema:
    return {
        "operationId": "getHistoryCsv",
        "summary": "The days as CSV: date, visits, views, visitors, peak_online, peak_at",
        "security": READER_SECURITY,
        "parameters": [SITE_PARAM, *SPAN_PARAMS],
        "responses": {
            "200": {"description": "One row a day, oldest first (UTF-8 with BOM)", **CSV_ANSWER},
            "400": error_answer("days or from/to out of range", "bad_days", "bad_range"),
            "401": UNAUTHORIZED,
            "403": FORBIDDEN,
            "404": UNKNOWN_SITE,
            "503": STORE_DOWN,
        },
    }


def get_top(csv: bool) -> Schema:
    what = "as CSV: rank, path, title, views" if csv else ""
    answer = (
        {"description": "The day's most viewed pages", **CSV_ANSWER}
        if csv
        else json_answer("The day's most viewed pages", ref("TopPages"))
    )
    return {
        "operationId": "getTopCsv" if csv else "getTop",
        "summary": f"A day's most viewed pages (at most 100) {what}".strip(),
        "security": READER_SECURITY,
        "parameters": [
            SITE_PARAM,
            {"name": "date", "in": "query", "required": False, "schema": DATE},
        ],
        "responses": {
            "200": answer,
            "400": error_answer("date is not a date", "bad_range"),
            "401": UNAUTHORIZED,
            "403": FORBIDDEN,
            "404": UNKNOWN_SITE,
            "503": STORE_DOWN,
        },
    }


def get_openapi() -> Schema:
    return {
        "operationId": "getOpenApi",
        "summary": "This document",
        "responses": {
            "200": json_answer("An OpenAPI 3.1 document", {"type": "object"}),
        },
    }


SITE_PATH = "/api/v1/sites/{site}"
OPERATIONS: dict[str, dict[str, Schema]] = {
    f"{SITE_PATH}/beats": {"post": post_beats(), "options": preflight_beats()},
    f"{SITE_PATH}/stats": {"get": get_stats()},
    f"{SITE_PATH}/badge.svg": {"get": get_badge()},
    f"{SITE_PATH}/history": {"get": get_history()},
    f"{SITE_PATH}/history.csv": {"get": get_history_csv()},
    f"{SITE_PATH}/top": {"get": get_top(csv=False)},
    f"{SITE_PATH}/top.csv": {"get": get_top(csv=True)},
    "/api/v1/openapi.json": {"get": get_openapi()},
}


def document() -> dict[str, Any]:
    """The whole OpenAPI 3.1 document."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Portal Pulse HTTP API",
            "version": __version__,
            "description": "Real-time readership of portals. Bad input gets a 4xx with "
            '`{"error": CODE, "message": ...}` and changes no count.',
        },
        "paths": OPERATIONS,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "dashboardSession": {"type": "apiKey", "in": "cookie", "name": COOKIE_NAME},
                "bearerToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "a program's token; the config holds its SHA-256 "
                    "(api_tokens of the site, or [api] tokens for every site)",
                },
            },
        },
    }


_ENCODED = json.dumps(document(), ensure_ascii=False, separators=(",", ":")).encode()


async def get_document(request: Request) -> Response:
    return Response(
        _ENCODED,
        media_type="application/json",
        headers={"Cache-Control": "max-age=300", "Access-Control-Allow-Origin": "*"},
    )
