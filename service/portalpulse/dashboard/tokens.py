"""Editor tokens: made once by `portalpulse token`, kept in the config only as SHA-256.

A token is a random secret an editor types into the sign-in form. The service
never stores it: it compares the SHA-256 of what was typed with the digests
the config lists, in constant time, so neither the config nor a timing probe
gives a token away.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import secrets
import sys
from collections.abc import Iterable
from typing import Any

from ..config import Settings

TOKEN_BYTES = 32
MAX_TOKEN_CHARS = 256
"""Anything longer is no token of ours; refused before hashing."""


def new_token() -> str:
    """A fresh random token (43 URL-safe characters)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    """The hex SHA-256 the config holds for `token`."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def matches_any(token: str, digests: Iterable[str]) -> bool:
    """True when `token`'s SHA-256 is one of `digests`.

    Every digest is compared, each in constant time, so the answer takes as
    long whichever (if any) matched.
    """
    if not token or len(token) > MAX_TOKEN_CHARS:
        return False
    digest = token_hash(token).encode("ascii")
    found = False
    for candidate in digests:
        found |= hmac.compare_digest(digest, candidate.encode("ascii"))
    return found


def sites_for_token(token: str, settings: Settings, site_id: str) -> frozenset[str] | None:
    """The sites `token` opens: `{"*"}` for a province-wide token, `{site_id}`
    for one of that site's tokens, None when it opens nothing."""
    if matches_any(token, settings.dashboard.tokens):
        return frozenset({"*"})
    site = settings.sites.get(site_id)
    if site is not None and matches_any(token, site.dashboard_tokens):
        return frozenset({site_id})
    return None


# -- `portalpulse token` -----------------------------------------------------------


def add_token_command(subparsers: Any) -> None:
    """Register `portalpulse token` on the CLI's subparsers."""
    command: argparse.ArgumentParser = subparsers.add_parser(
        "token",
        help="make a new dashboard token for editors and print the config line",
        description=(
            "Make a new random dashboard token. The token is printed once: give it to the "
            "editor. Put only the printed SHA-256 line in the config."
        ),
    )
    which = command.add_mutually_exclusive_group(required=True)
    which.add_argument("--site", help="the site the token opens (its id, as in [sites.ID])")
    which.add_argument(
        "--all-sites",
        action="store_true",
        help="a province-wide token that may see every site",
    )
    command.add_argument(
        "--config", help="TOML file to check the site against (default: env PORTALPULSE_CONFIG)"
    )


def run_token_command(args: argparse.Namespace, settings: Settings) -> int:
    """Print a new token and the TOML line that admits it; 2 for an unknown site."""
    site_id: str | None = getattr(args, "site", None)
    if site_id is not None and site_id not in settings.sites:
        known = ", ".join(sorted(settings.sites)) or "none"
        print(
            f"portalpulse: no site {site_id!r} in the configuration (sites: {known})",
            file=sys.stderr,
        )
        return 2
    token = new_token()
    digest = token_hash(token)
    if site_id is not None:
        section = f"[sites.{site_id}]"
        line = f'dashboard_tokens = ["{digest}"]'
        whom = f"site {site_id}"
    else:
        section = "[dashboard]"
        line = f'tokens = ["{digest}"]'
        whom = "every site (province-wide)"
    print(f"Token for {whom} (shown once; give it to the editor, keep it secret):")
    print()
    print(f"    {token}")
    print()
    print(f"Add its SHA-256 to the config under {section} (append to the list if there is one):")
    print()
    print(section)
    print(line)
    print()
    print("Then restart the service (every instance). The config never holds the token itself.")
    return 0
