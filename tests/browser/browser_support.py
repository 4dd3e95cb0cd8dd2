"""What the widget's browser tests share: Chromium's flags, the service's timing, a portal."""

from __future__ import annotations

from dataclasses import dataclass, field

# Short intervals (CONTRACT §2), so that the bounds the tests check are short too.
BEAT_INTERVAL = 2
PRESENCE_TTL = 4
LEAVE_GRACE = 1
PUSH_INTERVAL = 0.5
TOTAL_OFFSET = 12_345_000
SITES = (
    "tabs",
    "second",
    "takeover",
    "hostile",
    "english",
    "fallback",
    "trending",
    "portal",
    "restart",
    "engaged",
    "busy",
    "nolocks",
    "reload",
    "box",
    "closing",
    "loader",
)


def service_config() -> str:
    lines = [
        "[server]",
        f"beat_interval = {BEAT_INTERVAL}",
        f"presence_ttl = {PRESENCE_TTL}",
        f"leave_grace = {LEAVE_GRACE}",
        f"push_interval = {PUSH_INTERVAL}",
    ]
    for site in SITES:
        lines += [
            f"[sites.{site}]",
            f'name = "Cổng thông tin {site}"',
            'origins = ["*"]',
            f"total_visits_offset = {TOTAL_OFFSET}",
        ]
    return "\n".join(lines) + "\n"


@dataclass
class Portal:
    """A portal's web server: tests put pages on it, each embedding the widget."""

    url: str
    service_url: str
    pages: dict[str, str] = field(default_factory=dict)

    def page(
        self,
        path: str,
        site: str,
        *,
        title: str = "Tin tức",
        body: str = "",
        head: str = "",
        lang: str | None = None,
        service_url: str | None = None,
    ) -> str:
        """Publish an HTML page at `path` that embeds the widget; returns its URL."""
        lang_attr = f' data-lang="{lang}"' if lang else ""
        src = f"{service_url or self.service_url}/widget.js"
        self.pages[path] = (
            "<!doctype html><html lang=vi><head><meta charset=utf-8>"
            f"<title>{title}</title>{head}"
            f'<script src="{src}" data-site="{site}"{lang_attr} async>'
            f"</script></head><body><h1 id=headline>Cổng thông tin</h1>{body}</body></html>"
        )
        return self.url + path
