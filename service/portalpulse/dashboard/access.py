"""Who may see the dashboard: this process's signer and sign-in limiter (shared
through the store when it is Redis), and the session of a request or a
WebSocket handshake."""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.requests import HTTPConnection
from starlette.responses import Response

from ..config import DashboardSettings, Settings
from ..runtime import Pulse
from ..store.base import Store, StoreUnavailable
from ..web.clientaddr import from_trusted_proxy
from .grants import Grants, token_id
from .ratelimit import FailureLimiter, wait_for
from .sessions import COOKIE_NAME, Session, SessionSigner

log = logging.getLogger("portalpulse.dashboard")


@dataclass(slots=True)
class DashboardAccess:
    """One process's dashboard access state (kept on `app.state.dashboard_access`)."""

    settings: Settings
    signer: SessionSigner
    limiter: FailureLimiter
    grants: Grants

    @classmethod
    def from_settings(cls, settings: Settings) -> DashboardAccess:
        secret = settings.dashboard.session_secret
        # Made at start-up even without tokens (to write the token list): warn only
        # when editors can sign in at all.
        signs_in = settings.dashboard.tokens or any(
            site.dashboard_tokens for site in settings.sites.values()
        )
        if secret is None and signs_in:
            log.warning(
                "dashboard.session_secret is not set: using a random one for this process, "
                "so editors' sessions do not survive a restart and do not work across "
                "instances or workers; set [dashboard] session_secret"
            )
        if secret is None:
            secret = SessionSigner.random_secret()
        return cls(
            settings, SessionSigner(secret), FailureLimiter(), Grants.from_settings(settings)
        )

    # Failed sign-ins count per address in this process and, on Redis, across
    # every instance: N replicas do not give a guesser N times the tries.

    @staticmethod
    def _events(address: str) -> str:
        return "signin-failures:" + address

    async def reserve_sign_in(self, store: Store, address: str) -> int:
        """Count a try from `address` before its token is checked: 0 when it may try,
        else the seconds it must wait. A try is reserved before any await, so 30
        concurrent guesses from one address get the limit's worth of checks, not 30;
        a good token clears the count (`sign_in_succeeded`)."""
        wait = self.limiter.reserve(address, time.monotonic())
        if wait:
            return wait
        now = time.time()
        limit, window = self.limiter.max_failures, self.limiter.window
        with contextlib.suppress(StoreUnavailable):
            shared = await store.take_event(self._events(address), now, window, limit)
            if shared:
                wait = wait_for(shared, limit, window, now)
        return wait

    async def sign_in_succeeded(self, store: Store, address: str) -> None:
        self.limiter.succeeded(address)
        with contextlib.suppress(StoreUnavailable):
            await store.clear_events(self._events(address))

    def new_session(self, sites: frozenset[str], now: float, digest: str) -> Session:
        """A session for `sites`, signed in with the token whose SHA-256 is `digest`."""
        expires = now + self.settings.dashboard.session_hours * 3600
        return Session(sites, expires, frozenset({token_id(digest)}))


def pulse_of(conn: HTTPConnection) -> Pulse:
    pulse: Pulse = conn.app.state.pulse
    return pulse


def access_state(app: Starlette) -> DashboardAccess:
    """This app's access state, made on first use from the app's settings."""
    state = app.state
    access: DashboardAccess | None = getattr(state, "dashboard_access", None)
    if access is None:
        access = DashboardAccess.from_settings(state.pulse.settings)
        state.dashboard_access = access
    return access


def access_of(conn: HTTPConnection) -> DashboardAccess:
    return access_state(conn.app)


def session_of(conn: HTTPConnection) -> Session | None:
    """The valid session the request's cookie carries, if any, with only the sites
    its still-configured tokens open."""
    access = access_of(conn)
    now = time.time()
    session = access.signer.verify(conn.cookies.get(COOKIE_NAME), now)
    if session is None:
        return None
    if access.grants.due(now):
        # The newest configuration's token list, read in the background: this answer
        # uses the last one read, at most token_check_seconds old.
        access.grants.checked = now
        pulse_of(conn).background(access.grants.refresh(pulse_of(conn).store, now))
    return access.grants.check(session)


def is_https(conn: HTTPConnection) -> bool:
    if conn.url.scheme in ("https", "wss"):
        return True
    if not from_trusted_proxy(conn):
        return False  # the scheme a client claims for itself is not read
    forwarded = conn.headers.get("x-forwarded-proto", "")
    return forwarded.split(",")[0].strip().lower() == "https"


def wants_secure_cookie(conn: HTTPConnection, dashboard: DashboardSettings) -> bool:
    if dashboard.secure_cookie == "true":
        return True
    if dashboard.secure_cookie == "false":
        return False
    return is_https(conn)


def set_session_cookie(
    response: Response, conn: HTTPConnection, access: DashboardAccess, session: Session
) -> None:
    response.set_cookie(
        COOKIE_NAME,
        access.signer.sign(session),
        max_age=max(1, int(session.expires - time.time())),
        path="/",
        httponly=True,
        samesite="strict",
        secure=wants_secure_cookie(conn, access.settings.dashboard),
    )


def clear_session_cookie(response: Response, conn: HTTPConnection, access: DashboardAccess) -> None:
    response.delete_cookie(
        COOKIE_NAME,
        path="/",
        httponly=True,
        samesite="strict",
        secure=wants_secure_cookie(conn, access.settings.dashboard),
    )


def same_origin(conn: HTTPConnection) -> bool:
    """True when the browser's Origin (if it sent one) is this service itself.

    Refuses a page on another site that would drive an editor's browser to sign
    in or open the dashboard socket with the editor's cookie.
    """
    origin = conn.headers.get("origin")
    if origin is None:
        return True
    host = conn.headers.get("x-forwarded-host") or conn.headers.get("host", "")
    # Host names only: a proxy may pass `Host` without the port the browser used.
    try:
        origin_name = urlsplit(origin).hostname
        host_name = urlsplit("//" + host.split(",")[0].strip()).hostname
    except ValueError:
        return False
    return origin_name is not None and origin_name == host_name
