"""What the dashboard's tests share: tokens, the service's config, signing in."""

from __future__ import annotations

from playwright.async_api import Page

from portalpulse.dashboard.grants import token_id
from portalpulse.dashboard.tokens import token_hash
from support.processes import FAST_TIMING

MYHAO_TOKEN = "myhao-editor-token-for-tests-0000000000000"
VANLAM_TOKEN = "vanlam-editor-token-for-tests-000000000000"
PROVINCE_TOKEN = "province-token-for-tests-0000000000000000"
MYHAO_ORIGIN = "https://myhao.example.vn"
VANLAM_ORIGIN = "https://vanlam.example.vn"
MYHAO_NAME = "Cổng TTĐT thị xã Mỹ Hào"
VANLAM_NAME = "Cổng TTĐT huyện Văn Lâm"
SESSION_SECRET = "dashboard-test-secret-0123456789"
MYHAO_TOKEN_IDS = frozenset({token_id(token_hash(MYHAO_TOKEN))})
"""What a session signed in with MYHAO_TOKEN carries."""

CONFIG = (
    FAST_TIMING
    + f"""
[dashboard]
session_secret = "{SESSION_SECRET}"
tokens = ["{token_hash(PROVINCE_TOKEN)}"]

[sites.myhao]
name = "{MYHAO_NAME}"
origins = ["{MYHAO_ORIGIN}"]
dashboard_tokens = ["{token_hash(MYHAO_TOKEN)}"]
total_visits_offset = 1000000

[sites.vanlam]
name = "{VANLAM_NAME}"
origins = ["{VANLAM_ORIGIN}"]
dashboard_tokens = ["{token_hash(VANLAM_TOKEN)}"]
"""
)


async def sign_in(page: Page, base: str, site: str, token: str, lang: str = "") -> None:
    """Open the dashboard, land on the sign-in form, and sign in."""
    await page.goto(f"{base}/dashboard/" + (f"?lang={lang}" if lang else ""))
    await page.select_option("#site", site)
    await page.fill("#token", token)
    await page.click("button[type=submit]")
