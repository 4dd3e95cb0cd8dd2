"""The dashboard's HTTP side: sign-in, sign-out, the page, and who the editor is."""

from __future__ import annotations

import html
import time
from string import Template
from typing import Any
from urllib.parse import parse_qs, urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from ..config import SiteSettings
from ..protocol import ProtocolError
from ..web.clientaddr import client_address, limit_key
from ..web.http import error_response, read_body
from . import assets
from .access import (
    access_of,
    clear_session_cookie,
    pulse_of,
    same_origin,
    session_of,
    set_session_cookie,
)
from .sessions import COOKIE_NAME
from .tokens import sites_for_token, token_hash

MAX_FORM_BYTES = 4096
LOGIN_PATH = "/dashboard/login"
HOME_PATH = "/dashboard/"

LOGIN_TEXT: dict[str, dict[str, str]] = {
    "vi": {
        "title": "Đăng nhập bảng theo dõi — Portal Pulse",
        "heading": "Bảng theo dõi bạn đọc",
        "lead": "Dành cho biên tập viên: nhập mã truy cập của cổng thông tin.",
        "site_label": "Cổng thông tin",
        "token_label": "Mã truy cập",
        "submit": "Đăng nhập",
        "hint": "Chưa có mã? Xin quản trị hệ thống tạo mã bằng lệnh "
        "portalpulse token --site MÃ_CỔNG.",
        "other_lang_label": "English",
        "wrong_token": "Mã truy cập không đúng cho cổng thông tin này. Hãy kiểm tra lại.",
        "too_many": "Nhập sai quá nhiều lần. Hãy thử lại sau {n} giây.",
        "bad_request": "Yêu cầu không hợp lệ. Hãy tải lại trang và thử lại.",
        "signed_out": "Bạn đã đăng xuất.",
        "expired": "Phiên làm việc đã hết hạn hoặc chưa đăng nhập. Hãy đăng nhập.",
    },
    "en": {
        "title": "Sign in to the dashboard — Portal Pulse",
        "heading": "Readership dashboard",
        "lead": "For editors: enter your portal's access token.",
        "site_label": "Portal",
        "token_label": "Access token",
        "submit": "Sign in",
        "hint": "No token yet? Ask your administrator to make one with "
        "portalpulse token --site SITE_ID.",
        "other_lang_label": "Tiếng Việt",
        "wrong_token": "Wrong access token for this portal. Please check it.",
        "too_many": "Too many failed attempts. Try again in {n} seconds.",
        "bad_request": "Bad request. Reload the page and try again.",
        "signed_out": "You have signed out.",
        "expired": "Your session has ended or you are not signed in. Please sign in.",
    },
}
LOGIN_PAGE = Template(assets.text("login.html"))
# The words the sign-in page shows; the rest are messages.
PAGE_WORDS = frozenset(
    {"title", "heading", "lead", "site_label", "token_label", "submit", "hint", "other_lang_label"}
)


def pick_lang(value: str | None) -> str:
    return value if value in LOGIN_TEXT else "vi"


def safe_next(value: str | None) -> str:
    """Where to go after signing in: only a dashboard path of this service."""
    if value and value.startswith(HOME_PATH) and "//" not in value and "\\" not in value:
        return value
    return HOME_PATH


def site_link(site: SiteSettings) -> str | None:
    """The portal's address for links to its pages: its first concrete origin."""
    for origin in site.origins:
        if origin != "*" and not origin.endswith(":*"):
            return origin.rstrip("/")
    return None


def login_page(
    request: Request,
    lang: str,
    *,
    status: int = 200,
    message: str = "",
    notice: str = "",
    chosen_site: str = "",
    next_path: str = HOME_PATH,
    headers: dict[str, str] | None = None,
) -> Response:
    words = LOGIN_TEXT[lang]
    sites = pulse_of(request).settings.sites
    options = "\n".join(
        f'      <option value="{html.escape(site.id)}"'
        f"{' selected' if site.id == chosen_site else ''}>"
        f"{html.escape(site.name)} ({html.escape(site.id)})</option>"
        for site in sorted(sites.values(), key=lambda s: s.name)
    )
    error = ""
    if message:
        error = f'<p class="error" role="alert">{html.escape(message)}</p>'
    elif notice:
        error = f'<p class="notice" role="status">{html.escape(notice)}</p>'
    other = "en" if lang == "vi" else "vi"
    query = {"lang": other, **({"site": chosen_site} if chosen_site else {})}
    if next_path != HOME_PATH:
        query["next"] = next_path
    body = LOGIN_PAGE.substitute(
        lang=lang,
        error=error,
        next=html.escape(next_path),
        site_options=options,
        other_lang=other,
        other_lang_href=html.escape(f"{LOGIN_PATH}?{urlencode(query)}"),
        **{key: html.escape(value) for key, value in words.items() if key in PAGE_WORDS},
    )
    return HTMLResponse(body, status_code=status, headers={**assets.PRIVATE, **(headers or {})})


async def get_login(request: Request) -> Response:
    params = request.query_params
    lang = pick_lang(params.get("lang"))
    notice = ""
    if params.get("signed_out"):
        notice = LOGIN_TEXT[lang]["signed_out"]
    elif params.get("expired"):
        notice = LOGIN_TEXT[lang]["expired"]
    return login_page(
        request,
        lang,
        notice=notice,
        chosen_site=params.get("site", ""),
        next_path=safe_next(params.get("next")),
    )


async def _read_form(request: Request) -> dict[str, str] | None:
    try:
        body = await read_body(request, MAX_FORM_BYTES)
    except ProtocolError:
        return None  # too big, or abandoned half-way (then no one reads the answer)
    try:
        fields = parse_qs(body.decode("utf-8"), max_num_fields=10, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        return None
    return {key: values[0] for key, values in fields.items()}


async def post_login(request: Request) -> Response:
    """Check a token (by its SHA-256, in constant time) and start a session."""
    access = access_of(request)
    address = limit_key(client_address(request))
    now = time.time()
    form = await _read_form(request)
    lang = pick_lang((form or {}).get("lang"))
    words = LOGIN_TEXT[lang]
    if form is None or not same_origin(request):
        return login_page(request, lang, status=400, message=words["bad_request"])
    site_id = form.get("site", "")
    next_path = safe_next(form.get("next"))
    store = pulse_of(request).store
    retry = await access.reserve_sign_in(store, address)
    if retry:
        return login_page(
            request,
            lang,
            status=429,
            message=words["too_many"].format(n=retry),
            chosen_site=site_id,
            next_path=next_path,
            headers={"Retry-After": str(retry)},
        )
    sites = sites_for_token(form.get("token", "").strip(), access.settings, site_id)
    if sites is None:  # the try reserved above counts as the failure
        return login_page(
            request,
            lang,
            status=401,
            message=words["wrong_token"],
            chosen_site=site_id,
            next_path=next_path,
        )
    await access.sign_in_succeeded(store, address)
    session = access.new_session(sites, now, token_hash(form.get("token", "").strip()))
    earlier = session_of(request)
    if earlier is not None:
        session = earlier.joined(session)
    if next_path == HOME_PATH and site_id in access.settings.sites:
        next_path = f"{HOME_PATH}?{urlencode({'site': site_id})}"
    response = RedirectResponse(next_path, status_code=303, headers=assets.PRIVATE)
    set_session_cookie(response, request, access, session)
    return response


async def logout(request: Request) -> Response:
    """Sign out: the cookie is cleared (GET or POST)."""
    lang = pick_lang(request.query_params.get("lang"))
    response = RedirectResponse(
        f"{LOGIN_PATH}?{urlencode({'signed_out': '1', 'lang': lang})}",
        status_code=303,
        headers=assets.PRIVATE,
    )
    clear_session_cookie(response, request, access_of(request))
    return response


def _to_login(request: Request) -> Response:
    query = request.url.query
    next_path = HOME_PATH + (f"?{query}" if query else "")
    params = {"next": next_path}
    if COOKIE_NAME in request.cookies:
        params["expired"] = "1"  # had a session that no longer holds
    lang = request.query_params.get("lang")
    if lang in LOGIN_TEXT:
        params["lang"] = lang
    return RedirectResponse(
        f"{LOGIN_PATH}?{urlencode(params)}", status_code=303, headers=assets.PRIVATE
    )


async def home(request: Request) -> Response:
    """`GET /dashboard/`: the page for a signed-in editor (`?wall=1`: wall mode); else
    off to sign in."""
    if session_of(request) is None:
        return _to_login(request)
    page = assets.text("index.html")
    if request.query_params.get("wall") == "1":
        # Wall mode from the first paint: set by the script, it would move everything once.
        page = page.replace('<html lang="vi">', '<html lang="vi" class="wall">', 1)
    return HTMLResponse(page, headers=assets.PRIVATE)


async def home_without_slash(request: Request) -> Response:
    query = request.url.query
    return RedirectResponse(HOME_PATH + (f"?{query}" if query else ""), status_code=308)


def unauthorized() -> JSONResponse:
    return error_response(401, "unauthorized", "sign in to the dashboard first", assets.PRIVATE)


async def whoami(request: Request) -> Response:
    """`GET /dashboard/api/session`: the sites this editor may see, for the page."""
    session = session_of(request)
    if session is None:
        return unauthorized()
    settings = pulse_of(request).settings
    visible = [site for site in settings.sites.values() if session.may_see(site.id)]
    body: dict[str, Any] = {
        "sites": [
            {"id": site.id, "name": site.name, "url": site_link(site)}
            for site in sorted(visible, key=lambda s: s.name)
        ],
        "every_site": session.every_site,
        "expires": round(session.expires, 3),
        "timezone": settings.server.timezone,
    }
    return JSONResponse(body, headers=assets.PRIVATE)
