"""Settings: one TOML file plus environment overrides, checked once into frozen objects.

A bad file raises `ConfigError` whose message names the key and what is wrong;
the CLI prints it and exits, so a misconfigured instance never starts.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Patterns are used with fullmatch: `$` alone also matches before a final newline.
SITE_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
DEFAULT_PORT = 8000
DEFAULT_HOST = "127.0.0.1"


class ConfigError(ValueError):
    """The configuration is unusable; the message names the key."""


@dataclass(frozen=True, slots=True)
class SiteSettings:
    id: str
    name: str
    origins: tuple[str, ...]
    keep_query: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    trending_size: int = 10
    total_visits_offset: int = 0
    max_pages: int = 10_000
    # SHA-256 (hex) of the editors' tokens for this site's dashboard; never the tokens.
    dashboard_tokens: tuple[str, ...] = ()
    # Cut from the end of page titles, so lists show the article's own title.
    title_suffixes: tuple[str, ...] = ()
    # SHA-256 (hex) of programs' bearer tokens for this site's history and stats.
    api_tokens: tuple[str, ...] = ()
    # POSTed once per rising episode of an article (docs/DASHBOARD.md); None: no webhook.
    rising_webhook: str | None = None

    def allows_origin(self, origin: str | None) -> bool:
        """True when `origin` (the browser's Origin header) may use this site."""
        if not origin:
            return False
        return any(_origin_matches(pattern, origin) for pattern in self.origins)


@dataclass(frozen=True, slots=True)
class ServerSettings:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    beat_interval: float = 15.0
    presence_ttl: float = 45.0
    leave_grace: float = 5.0
    push_interval: float = 1.0
    trending_window: float = 1800.0
    # An article rises when its readers reach 3x their average over this window.
    rising_window: float = 900.0
    timezone: str = "Asia/Ho_Chi_Minh"
    hello_timeout: float = 10.0
    max_frame_bytes: int = 4096
    max_messages_per_second: int = 10
    max_connections_per_ip: int = 1000
    # HTTP beats a second per client address (bursts of twice that): one office
    # behind NAT with 1,000 readers on the fallback sends about 70 a second.
    max_http_beats_per_ip: int = 200
    # Visitors kept online only by HTTP beats, on this instance (every site): past
    # it a new one is refused (503 "overloaded"), those already kept go on.
    max_http_visitors: int = 100_000
    max_pending_send_seconds: float = 10.0
    # The reverse proxies in front (CONTRACT §6): only behind one of these is
    # X-Forwarded-For read. Default none: the socket's peer is the client.
    trusted_proxies: tuple[Network, ...] = ()
    # Seconds a client may take to send a request's headers, then its body: a
    # half-sent request (slowloris) gets 408 and is closed, not kept for ever.
    header_timeout: float = 10.0
    body_timeout: float = 10.0
    log_level: str = "info"
    # How snapshots reach sockets: "direct" frames each once and writes the bytes to
    # every socket (uvicorn websockets-sansio); "asgi" sends through ASGI per socket.
    fanout: str = "direct"
    # permessage-deflate for browsers that offer it, without context takeover: each
    # distinct frame compressed once for every connection (web/uvicorn_ws.py).
    ws_deflate: bool = True
    # Test hook: seconds added to the clock used for day boundaries, so tests can
    # cross local midnight without waiting for it. Never set in production.
    clock_offset: float = 0.0

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True, slots=True)
class DashboardSettings:
    # SHA-256 (hex) of province-wide tokens: they may see every site.
    tokens: tuple[str, ...] = ()
    # Signs session cookies; every instance behind one load balancer needs the same.
    session_secret: str | None = None
    session_hours: float = 12.0
    # Secure cookies: "auto" sets Secure when the request came over HTTPS.
    secure_cookie: str = "auto"
    # Seconds between each instance's checks that a session's token is still
    # configured (newest configuration in the store; open dashboards re-checked).
    token_check_seconds: float = 20.0


@dataclass(frozen=True, slots=True)
class Settings:
    server: ServerSettings = field(default_factory=ServerSettings)
    store_url: str | None = None
    data_dir: Path = Path(".portalpulse")
    sites: Mapping[str, SiteSettings] = field(default_factory=dict)
    demo: bool = False
    dashboard: DashboardSettings = field(default_factory=DashboardSettings)
    # SHA-256 (hex) of province-wide bearer tokens for programs ([api] tokens).
    api_tokens: tuple[str, ...] = ()

    def with_overrides(self, **changes: Any) -> Settings:
        return replace(self, **changes)


TITLE_SEPARATORS = (" - ", " | ", " \u2013 ")  # the last: an en dash
MAX_TITLE_SUFFIXES = 20
MAX_TITLE_SUFFIX_CHARS = 200


def default_title_suffixes(name: str) -> tuple[str, ...]:
    """Portals end titles with their own name after a separator: " - Cổng …"."""
    name = " ".join(name.split())
    return tuple(sep + name for sep in TITLE_SEPARATORS) if name else ()


DEMO_SITE = SiteSettings(
    id="demo",
    name="Cổng thông tin điện tử (demo)",
    origins=("http://localhost:*", "http://127.0.0.1:*"),
    keep_query=("ItemID",),
    title_suffixes=default_title_suffixes("Cổng thông tin điện tử (demo)"),
)


def _origin_matches(pattern: str, origin: str) -> bool:
    if pattern == "*":
        return True
    if pattern.endswith(":*"):
        prefix = pattern[:-2]
        if origin == prefix:
            return True
        if origin.startswith(prefix + ":"):
            return origin[len(prefix) + 1 :].isdigit()
        return False
    return origin.rstrip("/") == pattern.rstrip("/")


_SERVER_NUMBERS: dict[str, tuple[type, float, float]] = {
    # key: (type, lowest allowed, highest allowed)
    "beat_interval": (float, 0.1, 3600),
    "presence_ttl": (float, 0.2, 86400),
    "leave_grace": (float, 0.0, 3600),
    "push_interval": (float, 0.05, 60),
    "trending_window": (float, 60, 7 * 86400),
    "rising_window": (float, 3, 86400),
    "hello_timeout": (float, 0.1, 600),
    "max_frame_bytes": (int, 256, 1 << 20),
    "max_messages_per_second": (int, 1, 10_000),
    "max_connections_per_ip": (int, 1, 1_000_000),
    "max_http_beats_per_ip": (int, 1, 1_000_000),
    "max_http_visitors": (int, 1, 10_000_000),
    "max_pending_send_seconds": (float, 0.5, 600),
    "header_timeout": (float, 0.1, 600),
    "body_timeout": (float, 0.1, 600),
    "clock_offset": (float, -1e10, 1e10),
    "port": (int, 1, 65535),
}
_SERVER_STRINGS = ("host", "timezone", "log_level", "fanout")
_LOG_LEVELS = ("debug", "info", "warning", "error")


def _number(key: str, value: Any, kind: type, low: float, high: float) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{key}: must be a number, got {value!r}")
    if kind is int and not isinstance(value, int):
        raise ConfigError(f"{key}: must be a whole number, got {value!r}")
    if not low <= value <= high:
        raise ConfigError(f"{key}: must be between {low:g} and {high:g}, got {value!r}")
    return kind(value)  # type: ignore[no-any-return]


def _strings(key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{key}: must be a list of strings, got {value!r}")
    return tuple(value)


def _networks(key: str, value: Any) -> tuple[Network, ...]:
    networks = []
    for item in _strings(key, value):
        try:
            networks.append(ipaddress.ip_network(item.strip()))
        except ValueError as exc:
            raise ConfigError(
                f"{key}: {item!r} is not an address or a network like 10.1.0.0/16 ({exc})"
            ) from exc
    return tuple(networks)


def _parse_server(raw: Any) -> ServerSettings:
    if not isinstance(raw, dict):
        raise ConfigError("server: must be a table")
    values: dict[str, Any] = {}
    for key, value in raw.items():
        name = f"server.{key}"
        if key in _SERVER_NUMBERS:
            values[key] = _number(name, value, *_SERVER_NUMBERS[key])
        elif key in _SERVER_STRINGS:
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{name}: must be a non-empty string, got {value!r}")
            values[key] = value
        elif key == "trusted_proxies":
            values[key] = _networks(name, value)
        elif key == "ws_deflate":
            if not isinstance(value, bool):
                raise ConfigError(f"{name}: must be true or false, got {value!r}")
            values[key] = value
        else:
            raise ConfigError(f"{name}: unknown key")
    server = ServerSettings(**values)
    try:
        ZoneInfo(server.timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"server.timezone: unknown time zone {server.timezone!r}") from exc
    if server.fanout not in ("direct", "asgi"):
        raise ConfigError('server.fanout: must be "direct" or "asgi"')
    if server.log_level not in _LOG_LEVELS:
        raise ConfigError(f"server.log_level: must be one of {', '.join(_LOG_LEVELS)}")
    return server


_SITE_KEYS = {
    "name",
    "origins",
    "keep_query",
    "exclude",
    "trending_size",
    "total_visits_offset",
    "max_pages",
    "dashboard_tokens",
    "title_suffixes",
    "api_tokens",
    "rising_webhook",
}
TOKEN_HASH = re.compile(r"^[0-9a-f]{64}$")


def _token_hashes(key: str, value: Any) -> tuple[str, ...]:
    hashes = _strings(key, value)
    for item in hashes:
        if not TOKEN_HASH.fullmatch(item):
            raise ConfigError(
                f"{key}: {item[:12]!r}... is not a SHA-256 hex digest "
                "(put the line `portalpulse token --site SITE` prints, never the token)"
            )
    return hashes


def _title_suffixes(key: str, value: Any) -> tuple[str, ...]:
    suffixes = _strings(key, value)
    if len(suffixes) > MAX_TITLE_SUFFIXES:
        raise ConfigError(f"{key}: at most {MAX_TITLE_SUFFIXES} suffixes")
    for suffix in suffixes:
        if not suffix.strip() or len(suffix) > MAX_TITLE_SUFFIX_CHARS:
            raise ConfigError(
                f"{key}: {suffix[:40]!r} must be non-blank text of at most "
                f"{MAX_TITLE_SUFFIX_CHARS} characters"
            )
    return suffixes


def _parse_dashboard(raw: Any) -> DashboardSettings:
    if not isinstance(raw, dict):
        raise ConfigError("dashboard: must be a table")
    for key in raw:
        if key not in (
            "tokens",
            "session_secret",
            "session_hours",
            "secure_cookie",
            "token_check_seconds",
        ):
            raise ConfigError(f"dashboard.{key}: unknown key")
    secret = raw.get("session_secret")
    if secret is not None and (not isinstance(secret, str) or len(secret) < 16):
        raise ConfigError("dashboard.session_secret: must be a string of at least 16 characters")
    secure = raw.get("secure_cookie", "auto")
    if secure not in ("auto", True, False):
        raise ConfigError('dashboard.secure_cookie: must be "auto", true or false')
    return DashboardSettings(
        tokens=_token_hashes("dashboard.tokens", raw.get("tokens", [])),
        session_secret=secret,
        session_hours=float(
            _number("dashboard.session_hours", raw.get("session_hours", 12.0), float, 0.1, 720)
        ),
        secure_cookie=str(secure).lower() if isinstance(secure, bool) else secure,
        token_check_seconds=float(
            _number(
                "dashboard.token_check_seconds",
                raw.get("token_check_seconds", 20.0),
                float,
                0.5,
                30,
            )
        ),
    )


def _parse_site(site_id: str, raw: Any) -> SiteSettings:
    prefix = f"sites.{site_id}"
    if not SITE_ID.fullmatch(site_id):
        raise ConfigError(f"{prefix}: site id must match {SITE_ID.pattern}")
    if not isinstance(raw, dict):
        raise ConfigError(f"{prefix}: must be a table")
    for key in raw:
        if key not in _SITE_KEYS:
            raise ConfigError(f"{prefix}.{key}: unknown key")
    name = raw.get("name", site_id)
    if not isinstance(name, str):
        raise ConfigError(f"{prefix}.name: must be a string")
    if "origins" not in raw:
        raise ConfigError(f'{prefix}.origins: missing (list the portal\'s origins, or ["*"])')
    origins = _strings(f"{prefix}.origins", raw["origins"])
    for origin in origins:
        if origin != "*" and not re.fullmatch(r"https?://[^/\s]+", origin):
            raise ConfigError(
                f"{prefix}.origins: {origin!r} is not an origin like https://portal.gov.vn"
            )
    exclude = _strings(f"{prefix}.exclude", raw.get("exclude", []))
    keep_query = _strings(f"{prefix}.keep_query", raw.get("keep_query", []))
    return SiteSettings(
        id=site_id,
        name=name,
        origins=origins,
        keep_query=keep_query,
        exclude=exclude,
        trending_size=int(
            _number(f"{prefix}.trending_size", raw.get("trending_size", 10), int, 1, 100)
        ),
        total_visits_offset=int(
            _number(
                f"{prefix}.total_visits_offset", raw.get("total_visits_offset", 0), int, 0, 1e15
            )
        ),
        max_pages=int(_number(f"{prefix}.max_pages", raw.get("max_pages", 10_000), int, 10, 1e6)),
        dashboard_tokens=_token_hashes(
            f"{prefix}.dashboard_tokens", raw.get("dashboard_tokens", [])
        ),
        title_suffixes=(
            _title_suffixes(f"{prefix}.title_suffixes", raw["title_suffixes"])
            if "title_suffixes" in raw
            else default_title_suffixes(name)
        ),
        api_tokens=_token_hashes(f"{prefix}.api_tokens", raw.get("api_tokens", [])),
        rising_webhook=_webhook_url(f"{prefix}.rising_webhook", raw.get("rising_webhook")),
    )


def _webhook_url(key: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not re.match(r"^https?://[^/\s?#]+(/\S*)?$", value):
        raise ConfigError(f"{key}: must be an http:// or https:// URL, got {value!r}")
    if len(value) > 2048:
        raise ConfigError(f"{key}: longer than 2048 characters")
    return value


def _parse_api(raw: Any) -> tuple[str, ...]:
    if not isinstance(raw, dict):
        raise ConfigError("api: must be a table")
    for key in raw:
        if key != "tokens":
            raise ConfigError(f"api.{key}: unknown key")
    return _token_hashes("api.tokens", raw.get("tokens", []))


def parse(raw: Mapping[str, Any], env: Mapping[str, str] | None = None) -> Settings:
    """Check a decoded TOML document (and env overrides) into `Settings`."""
    env = os.environ if env is None else env
    for key in raw:
        if key not in ("server", "store", "sites", "dashboard", "api"):
            raise ConfigError(
                f"{key}: unknown section (expected server, store, sites, dashboard, api)"
            )
    server = _parse_server(raw.get("server", {}))
    store = raw.get("store", {})
    if not isinstance(store, dict):
        raise ConfigError("store: must be a table")
    for key in store:
        if key not in ("url", "data_dir"):
            raise ConfigError(f"store.{key}: unknown key")
    store_url = store.get("url")
    if store_url is not None and not isinstance(store_url, str):
        raise ConfigError("store.url: must be a string like redis://127.0.0.1:6379/0")
    data_dir = store.get("data_dir", ".portalpulse")
    if not isinstance(data_dir, str):
        raise ConfigError("store.data_dir: must be a path")
    sites_raw = raw.get("sites", {})
    if not isinstance(sites_raw, dict):
        raise ConfigError("sites: must be a table of [sites.ID] tables")
    sites = {site_id: _parse_site(site_id, value) for site_id, value in sites_raw.items()}
    demo = not sites
    if demo:
        sites = {DEMO_SITE.id: DEMO_SITE}

    store_url = env.get("PORTALPULSE_REDIS_URL") or store_url
    if store_url is not None and not re.match(r"^(redis|rediss|unix)://", store_url):
        raise ConfigError(f"store.url: {store_url!r} is not a redis://, rediss:// or unix:// URL")
    if env.get("PORTALPULSE_HOST"):
        server = replace(server, host=env["PORTALPULSE_HOST"])
    if env.get("PORTALPULSE_PORT"):
        port = env["PORTALPULSE_PORT"]
        if not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ConfigError(f"PORTALPULSE_PORT: not a port number: {port!r}")
        server = replace(server, port=int(port))
    return Settings(
        server=server,
        store_url=store_url,
        data_dir=Path(data_dir),
        sites=sites,
        demo=demo,
        dashboard=_parse_dashboard(raw.get("dashboard", {})),
        api_tokens=_parse_api(raw.get("api", {})),
    )


def load(path: str | os.PathLike[str] | None, env: Mapping[str, str] | None = None) -> Settings:
    """Read the TOML file at `path` (or env PORTALPULSE_CONFIG, or none) into `Settings`."""
    env = os.environ if env is None else env
    path = path or env.get("PORTALPULSE_CONFIG") or None
    if path is None:
        return parse({}, env)
    try:
        with open(path, "rb") as handle:
            raw = tomllib.load(handle)
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path}: not found") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: not valid TOML: {exc}") from exc
    return parse(raw, env)
