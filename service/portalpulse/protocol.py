"""What client messages mean, and the frames the server sends. No I/O here.

Every transport (WebSocket, HTTP beats) parses with these functions, so one
definition decides what is valid and what counts.
"""

from __future__ import annotations

import fnmatch
import json
import re
import unicodedata
from dataclasses import dataclass
from enum import IntEnum
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from .config import SiteSettings
from .domain import DayCounts, PeriodCounts, SiteSnapshot

# Always fullmatch: `$` alone also matches before a final newline.
VISITOR_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
MAX_PAGES = 20
MAX_PATH_BYTES = 512
MAX_TITLE_CHARS = 200
MAX_REFERRER_CHARS = 1024
DEVICES = ("mobile", "tablet", "desktop")
WANTABLE = ("online", "today", "total", "trending")
"""The fields a `hello` may ask for in `want` (CONTRACT §3a), in frame order."""


class ProtocolError(ValueError):
    """A client message the server refuses. `code` is the contract's error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Page:
    path: str
    title: str
    referrer: str = ""


@dataclass(frozen=True, slots=True)
class Hello:
    visitor: str
    pages: tuple[Page, ...]
    engaged: bool
    resume: bool = False
    device: str = ""
    bye: bool = False
    want: frozenset[str] | None = None  # None: a v1 client, sent whole snapshots


@dataclass(frozen=True, slots=True)
class Beat:
    engaged: bool
    pages: tuple[Page, ...] | None


@dataclass(frozen=True, slots=True)
class Bye:
    pass


ClientMessage = Hello | Beat | Bye


def clean_title(raw: Any, suffixes: tuple[str, ...] = ()) -> str:
    """Plain text: trimmed, control characters dropped, the first of the site's
    `suffixes` that ends it cut off, at most 200 characters.

    Never escaped or stripped of markup: every client shows it as text.
    """
    if not isinstance(raw, str):
        return ""
    text = "".join(
        " " if ch.isspace() else ch
        for ch in raw
        if ch.isspace() or unicodedata.category(ch)[0] != "C"
    )
    text = " ".join(text.split())
    return strip_suffix(text, suffixes)[:MAX_TITLE_CHARS]


def strip_suffix(text: str, suffixes: tuple[str, ...]) -> str:
    """`text` without the first suffix that ends it; a title that is only the
    suffix (a home page named after the portal) is kept whole."""
    for suffix in suffixes:
        # Compared as the title is, with white space collapsed; a suffix that
        # starts with a space must follow one, so "-Name" inside a word stays.
        tail = " ".join(suffix.split())
        if not tail or not text.endswith(tail):
            continue
        head = text[: -len(tail)]
        if suffix[:1].isspace() and not head.endswith(" "):
            continue
        head = head.rstrip()
        if head:
            return head
    return text


def normalise_path(raw: Any, keep_query: tuple[str, ...] = ()) -> str:
    """The contract's page: a path starting with '/', no scheme/host/fragment,
    the query reduced to the parameters in `keep_query` (sorted), at most 512 bytes.
    """
    if not isinstance(raw, str) or not raw.startswith("/") or raw.startswith("//"):
        raise ProtocolError("bad_page", "page path must start with a single '/'")
    if not _is_unicode(raw):
        raise ProtocolError("bad_page", "page path is not valid Unicode (a lone surrogate)")
    if any(ch in raw for ch in "\r\n\t\x00") or len(raw) > 4 * MAX_PATH_BYTES:
        raise ProtocolError("bad_page", "page path has control characters or is too long")
    parts = urlsplit(raw)
    path = parts.path or "/"
    path = quote(path, safe="/%:@!$&'()*+,;=-._~")
    if keep_query and parts.query:
        kept = sorted(
            (key, value)
            for key, value in parse_qsl(parts.query, keep_blank_values=True)
            if key in keep_query
        )
        if kept:
            path = f"{path}?{urlencode(kept)}"
    if len(path.encode()) > MAX_PATH_BYTES:
        raise ProtocolError("bad_page", f"page path longer than {MAX_PATH_BYTES} bytes")
    return path


def _is_unicode(text: str) -> bool:
    """False for a string JSON decoded with a lone surrogate (`"\\ud800"`): it has no
    UTF-8 form, so it could never be quoted, stored or sent back."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def is_excluded(path: str, exclude: tuple[str, ...]) -> bool:
    """True when `path` matches one of the site's shell-style `exclude` globs."""
    return any(fnmatch.fnmatchcase(path, pattern) for pattern in exclude)


def _bool(data: dict[str, Any], key: str, default: bool = False) -> bool:
    value = data.get(key, default)
    if not isinstance(value, bool):
        raise ProtocolError("bad_message", f"'{key}' must be true or false")
    return value


def _pages(raw: Any, site: SiteSettings) -> tuple[Page, ...]:
    if not isinstance(raw, list):
        raise ProtocolError("bad_message", "'pages' must be a list")
    if len(raw) > MAX_PAGES:
        raise ProtocolError("too_many_pages", f"at most {MAX_PAGES} pages per message")
    pages: dict[str, Page] = {}
    for item in raw:
        if not isinstance(item, dict):
            raise ProtocolError("bad_message", "each page must be an object with 'path'")
        path = normalise_path(item.get("path"), site.keep_query)
        referrer = item.get("referrer", "")
        if not isinstance(referrer, str) or not _is_unicode(referrer):
            raise ProtocolError("bad_message", "'referrer' must be a string of valid Unicode")
        pages[path] = Page(
            path, clean_title(item.get("title"), site.title_suffixes), referrer[:MAX_REFERRER_CHARS]
        )
    return tuple(pages.values())


def _want(data: dict[str, Any]) -> frozenset[str] | None:
    if "want" not in data:
        return None
    raw = data["want"]
    if not isinstance(raw, list) or not raw:
        raise ProtocolError("bad_message", "'want' must be a non-empty list")
    if any(not isinstance(name, str) or name not in WANTABLE for name in raw):
        raise ProtocolError("bad_message", f"'want' may name only {', '.join(WANTABLE)}")
    return frozenset(raw)


def parse_hello(data: dict[str, Any], site: SiteSettings) -> Hello:
    """The fields of a `hello` (also the body of an HTTP beat)."""
    visitor = data.get("visitor")
    if not isinstance(visitor, str) or not VISITOR_ID.fullmatch(visitor):
        raise ProtocolError("bad_visitor", "'visitor' must match ^[A-Za-z0-9_-]{16,64}$")
    device = data.get("device", "")
    if device not in DEVICES and device != "":
        raise ProtocolError("bad_message", f"'device' must be one of {', '.join(DEVICES)}")
    return Hello(
        visitor=visitor,
        pages=_pages(data.get("pages", []), site),
        engaged=_bool(data, "engaged"),
        resume=_bool(data, "resume"),
        device=device,
        bye=_bool(data, "bye"),
        want=_want(data),
    )


def decode_object(text: str | bytes) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError("bad_json", "message is not valid JSON") from exc
    except RecursionError as exc:
        # Arrays or objects nested ~1,000 deep exhaust the decoder's recursion limit.
        raise ProtocolError("bad_json", "message is nested too deeply") from exc
    if not isinstance(data, dict):
        raise ProtocolError("bad_message", "message must be a JSON object")
    return data


def parse_client_frame(text: str, site: SiteSettings) -> ClientMessage:
    """One WebSocket text frame from a widget."""
    data = decode_object(text)
    kind = data.get("type")
    if kind == "hello":
        return parse_hello(data, site)
    if kind == "beat":
        pages = _pages(data["pages"], site) if "pages" in data else None
        return Beat(engaged=_bool(data, "engaged"), pages=pages)
    if kind == "bye":
        return Bye()
    raise ProtocolError("bad_message", "'type' must be hello, beat or bye")


def dumps(message: dict[str, Any]) -> str:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"))


def welcome_frame(site: str, beat_interval: float) -> str:
    interval: float | int = int(beat_interval) if beat_interval.is_integer() else beat_interval
    return dumps({"type": "welcome", "site": site, "beat_interval": interval})


def error_frame(code: str, message: str) -> str:
    return dumps({"type": "error", "code": code, "message": message})


class CloseCode(IntEnum):
    """Every WebSocket close code the service sends or counts (CONTRACT §3)."""

    BYE = 1000  # the client said `bye`
    SHUTDOWN = 1001  # this instance is shutting down: reconnect elsewhere
    ABNORMAL = 1006  # the connection ended without a close frame
    TOO_BIG = 1009  # a frame over `max_frame_bytes`
    OVERLOADED = 1013  # a reader too slow, or too many connections from one address
    BAD_MESSAGE = 4400  # malformed or out of order (an `error` frame first): no reconnect
    SESSION_ENDED = 4401  # an editor's dashboard session expired: sign in again
    HELLO_TIMEOUT = 4408  # no `hello` within `hello_timeout`
    RATE = 4429  # over `max_messages_per_second`


def day_payload(day: DayCounts) -> dict[str, Any]:
    return {
        "visits": day.visits,
        "views": day.views,
        "visitors": day.visitors,
        "peak_online": day.peak_online,
        # To the millisecond, as `ts`: the embedded store keeps the clock's full
        # float, six digits no page needs, in every frame that carries `today`.
        "peak_at": None if day.peak_at is None else round(day.peak_at, 3),
    }


def snapshot_payload(snap: SiteSnapshot, site: SiteSettings) -> dict[str, Any]:
    """The contract's snapshot object (without `type`): shared by the WebSocket
    frame, the beats answer and the stats API."""
    return {
        "site": snap.site,
        "online": snap.online,
        "trending": [
            {"path": p.path, "title": p.title, "readers": p.readers, "views": p.views}
            for p in snap.trending
        ],
        "today": day_payload(snap.today),
        "total_visits": snap.total_visits + site.total_visits_offset,
        "ts": round(snap.ts, 3),
    }


def snapshot_frame(snap: SiteSnapshot, site: SiteSettings) -> str:
    return dumps({"type": "snapshot", **snapshot_payload(snap, site)})


def period_payload(period: PeriodCounts | None) -> dict[str, int]:
    period = period or PeriodCounts()
    return {"visits": period.visits, "views": period.views, "visitors": period.visitors}


def stats_payload(
    snap: SiteSnapshot,
    site: SiteSettings,
    periods: tuple[PeriodCounts, PeriodCounts] | None = None,
) -> dict[str, Any]:
    """The stats API's answer; `periods` (this month, this year) when known."""
    body = snapshot_payload(snap, site)
    yesterday = snap.yesterday or DayCounts()
    body["yesterday"] = {
        "visits": yesterday.visits,
        "views": yesterday.views,
        "visitors": yesterday.visitors,
        "peak_online": yesterday.peak_online,
    }
    if periods is not None:
        body["month"], body["year"] = (period_payload(p) for p in periods)
    return body
