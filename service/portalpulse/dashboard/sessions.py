"""Signed session cookies: which sites an editor may see, and until when.

The cookie value is `<payload>.<signature>`, both base64url without padding:
the payload is compact JSON `{"s": ["myhao"] | "*", "e": <expiry, Unix s>}`
and the signature is HMAC-SHA256 of the encoded payload under the session
secret. Nothing is kept on the server, so any instance sharing the secret
accepts the cookie; a changed byte, another secret or a past expiry is
refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass

COOKIE_NAME = "pp_dashboard"
ALL_SITES = "*"
MAX_COOKIE_CHARS = 4000


@dataclass(frozen=True, slots=True)
class Session:
    """An editor's signed-in session."""

    sites: frozenset[str]  # site ids, or {"*"} for every site
    expires: float  # Unix time
    # Ids of the tokens that signed it in (grants.token_id): it ends with them.
    tokens: frozenset[str] = frozenset()

    @property
    def every_site(self) -> bool:
        return ALL_SITES in self.sites

    def may_see(self, site_id: str) -> bool:
        return self.every_site or site_id in self.sites

    def joined(self, other: Session) -> Session:
        """Both sessions' sites (an editor signing in to a second site keeps the first),
        with the later expiry."""
        sites = (
            frozenset({ALL_SITES})
            if ALL_SITES in self.sites | other.sites
            else (self.sites | other.sites)
        )
        return Session(sites, max(self.expires, other.expires), self.tokens | other.tokens)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionSigner:
    """Signs and checks session cookies with one secret."""

    def __init__(self, secret: str) -> None:
        self._key = hashlib.sha256(b"portalpulse-dashboard-session\x00" + secret.encode()).digest()

    @staticmethod
    def random_secret() -> str:
        return secrets.token_urlsafe(32)

    def _signature(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode("ascii"), hashlib.sha256).digest())

    def sign(self, session: Session) -> str:
        sites: str | list[str] = ALL_SITES if session.every_site else sorted(session.sites)
        fields = {"s": sites, "e": round(session.expires, 3), "t": sorted(session.tokens)}
        body = json.dumps(fields, separators=(",", ":"))
        payload = _b64(body.encode("utf-8"))
        return f"{payload}.{self._signature(payload)}"

    def verify(self, value: str | None, now: float) -> Session | None:
        """The session in a cookie value, or None when it is missing, forged or expired."""
        if not value or len(value) > MAX_COOKIE_CHARS or value.count(".") != 1:
            return None
        payload, signature = value.split(".")
        try:
            payload.encode("ascii")
            signature.encode("ascii")
        except UnicodeEncodeError:
            return None
        if not hmac.compare_digest(self._signature(payload), signature):
            return None
        try:
            data = json.loads(_unb64(payload))
        except (ValueError, binascii.Error):
            return None
        if not isinstance(data, dict):
            return None
        expires, sites, tokens = data.get("e"), data.get("s"), data.get("t", [])
        if isinstance(expires, bool) or not isinstance(expires, int | float) or expires <= now:
            return None
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            return None
        if sites == ALL_SITES:
            return Session(frozenset({ALL_SITES}), float(expires), frozenset(tokens))
        if not isinstance(sites, list) or not all(isinstance(s, str) for s in sites):
            return None
        return Session(frozenset(sites), float(expires), frozenset(tokens))
