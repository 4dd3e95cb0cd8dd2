"""Where a visit came from, from its referrer: the kinds an editor reads.

Only the names below ever leave this module, never a host taken from input,
so what the dashboard and the store keep is a small fixed set.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from . import protocol

KINDS = ("direct", "search", "social", "internal", "other")

# host suffix -> (kind, name). Matched on the host and each parent domain.
KNOWN: dict[str, tuple[str, str]] = {
    "google.com": ("search", "google"),
    "google.com.vn": ("search", "google"),
    "googlequicksearchbox": ("search", "google"),
    "coccoc.com": ("search", "coccoc"),
    "bing.com": ("search", "bing"),
    "yahoo.com": ("search", "yahoo"),
    "duckduckgo.com": ("search", "duckduckgo"),
    "facebook.com": ("social", "facebook"),
    "fb.com": ("social", "facebook"),
    "messenger.com": ("social", "facebook"),
    "zalo.me": ("social", "zalo"),
    "zaloapp.com": ("social", "zalo"),
    "zalo.vn": ("social", "zalo"),
    "youtube.com": ("social", "youtube"),
    "youtu.be": ("social", "youtube"),
    "tiktok.com": ("social", "tiktok"),
    "t.co": ("social", "twitter"),
    "x.com": ("social", "twitter"),
    "twitter.com": ("social", "twitter"),
    "instagram.com": ("social", "instagram"),
    "linkedin.com": ("social", "linkedin"),
}


def _host(url: str) -> str:
    if url.startswith("android-app://"):
        return url[len("android-app://") :].split("/")[0].lower()
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


def classify(referrer: str, site_hosts: frozenset[str]) -> str:
    """'kind:name' for a referrer URL: 'search:google', 'social:zalo', 'internal:',
    'direct:' (no referrer) or 'other:'."""
    if not referrer:
        return "direct:"
    host = _host(referrer.strip())
    if not host:
        return "other:"
    if host in site_hosts:
        return "internal:"
    if host.startswith("www."):
        host = host[4:]
    if host in site_hosts:
        return "internal:"
    parts = host.split(".")
    for i in range(len(parts)):
        suffix = ".".join(parts[i:])
        if suffix in KNOWN:
            kind, name = KNOWN[suffix]
            return f"{kind}:{name}"
        # google.de, google.co.uk, ... : any google.* is Google search.
        if parts[i] == "google" and i + 1 < len(parts):
            return "search:google"
    if "googlequicksearchbox" in host:
        return "search:google"
    return "other:"


def hosts_of(origins: tuple[str, ...]) -> frozenset[str]:
    """The hosts of a site's origins ('*' and port wildcards aside)."""
    hosts = set()
    for origin in origins:
        host = _host(origin.replace(":*", ""))
        if host:
            hosts.add(host)
            hosts.add(host[4:] if host.startswith("www.") else "www." + host)
    return frozenset(hosts)


def arrival(
    referrer: str,
    site_hosts: frozenset[str],
    keep_query: tuple[str, ...] = (),
    exclude: tuple[str, ...] = (),
) -> str:
    """Where one page view came from, for the dashboard's drill-down: `classify`'s
    'kind:name', or for a referrer on one of the site's own hosts 'internal:' and
    the previous page's path, normalised like pages ('internal:' alone when that
    is no page the site counts). The path is only a name the store looks up among
    the pages it tracks, never kept otherwise."""
    source = classify(referrer, site_hosts)
    if source != "internal:":
        return source
    try:
        parts = urlsplit(referrer.strip())
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        path = protocol.normalise_path(target, keep_query)
    except (ValueError, protocol.ProtocolError):
        return source
    return source if protocol.is_excluded(path, exclude) else source + path
