"""Sign-in pieces without a server: token digests, signed session cookies, the failure limiter."""

from __future__ import annotations

import hashlib
import time

from starlette.requests import HTTPConnection

from portalpulse import config
from portalpulse.dashboard.access import same_origin
from portalpulse.dashboard.ratelimit import FailureLimiter
from portalpulse.dashboard.sessions import Session, SessionSigner
from portalpulse.dashboard.tokens import matches_any, new_token, sites_for_token, token_hash

SITE_TOKEN = "site-token-for-myhao-0123456789"
PROVINCE_TOKEN = "province-wide-token-0123456789"


def settings() -> config.Settings:
    return config.parse(
        {
            "dashboard": {"tokens": [token_hash(PROVINCE_TOKEN)]},
            "sites": {
                "myhao": {"origins": ["*"], "dashboard_tokens": [token_hash(SITE_TOKEN)]},
                "vanlam": {"origins": ["*"]},
            },
        },
        env={},
    )


# -- tokens ---------------------------------------------------------------------------


def test_token_hash_is_the_hex_sha256_the_config_accepts() -> None:
    assert token_hash("abc") == hashlib.sha256(b"abc").hexdigest()
    assert config.TOKEN_HASH.match(token_hash(new_token()))


def test_new_tokens_are_long_and_never_repeat() -> None:
    tokens = {new_token() for _ in range(50)}
    assert len(tokens) == 50
    assert all(len(t) >= 43 for t in tokens)


def test_a_token_matches_only_its_own_digest() -> None:
    digests = [token_hash("one"), token_hash("two")]
    assert matches_any("two", digests)
    assert not matches_any("three", digests)
    assert not matches_any(token_hash("one"), digests), "the digest itself is no token"
    assert not matches_any("", [token_hash("")])
    assert not matches_any("x" * 300, [token_hash("x" * 300)])


def test_a_site_token_opens_its_site_only_and_a_province_token_every_site() -> None:
    s = settings()
    assert sites_for_token(SITE_TOKEN, s, "myhao") == frozenset({"myhao"})
    assert sites_for_token(SITE_TOKEN, s, "vanlam") is None
    assert sites_for_token(SITE_TOKEN, s, "nowhere") is None
    assert sites_for_token(PROVINCE_TOKEN, s, "vanlam") == frozenset({"*"})
    assert sites_for_token(PROVINCE_TOKEN, s, "") == frozenset({"*"})
    assert sites_for_token("wrong", s, "myhao") is None


# -- session cookies ------------------------------------------------------------------


def test_a_signed_session_reads_back_until_it_expires() -> None:
    signer = SessionSigner("a-secret-of-enough-length")
    now = time.time()
    cookie = signer.sign(Session(frozenset({"myhao"}), now + 60))
    session = signer.verify(cookie, now)
    assert session is not None
    assert session.may_see("myhao") and not session.may_see("vanlam")
    assert signer.verify(cookie, now + 59) is not None
    assert signer.verify(cookie, now + 61) is None


def test_every_site_sessions_see_every_site() -> None:
    signer = SessionSigner("a-secret-of-enough-length")
    session = signer.verify(signer.sign(Session(frozenset({"*"}), time.time() + 60)), time.time())
    assert session is not None and session.every_site and session.may_see("anything")


def test_a_tampered_or_foreign_cookie_is_refused() -> None:
    signer = SessionSigner("a-secret-of-enough-length")
    now = time.time()
    cookie = signer.sign(Session(frozenset({"myhao"}), now + 60))
    payload, signature = cookie.split(".")
    # A payload claiming every site, under the old signature.
    forged = SessionSigner("another-secret-entirely").sign(Session(frozenset({"*"}), now + 60))
    assert signer.verify(forged.split(".")[0] + "." + signature, now) is None
    assert signer.verify(forged, now) is None, "signed with another secret"
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    assert signer.verify(f"{payload}.{flipped}", now) is None
    for junk in ("", ".", "abc", f"{payload}.{signature}.x", "é.é", None):
        assert signer.verify(junk, now) is None


def test_signing_in_to_a_second_site_keeps_the_first() -> None:
    first = Session(frozenset({"myhao"}), 100.0)
    joined = first.joined(Session(frozenset({"vanlam"}), 200.0))
    assert joined.sites == {"myhao", "vanlam"} and joined.expires == 200.0
    assert first.joined(Session(frozenset({"*"}), 50.0)).every_site


# -- failures per address -------------------------------------------------------------


def test_five_failures_in_a_minute_block_that_address_only() -> None:
    limiter = FailureLimiter(max_failures=5, window=60)
    for i in range(5):
        assert limiter.retry_after("10.0.0.1", 1000 + i) == 0
        limiter.failed("10.0.0.1", 1000 + i)
    assert limiter.retry_after("10.0.0.1", 1005) == 55
    assert limiter.retry_after("10.0.0.2", 1005) == 0
    # The first failure ages out of the window: one more try is allowed.
    assert limiter.retry_after("10.0.0.1", 1060.5) == 0


def test_a_good_sign_in_clears_the_record() -> None:
    limiter = FailureLimiter(max_failures=2, window=60)
    limiter.failed("a", 0)
    limiter.succeeded("a")
    limiter.failed("a", 1)
    assert limiter.retry_after("a", 2) == 0


def test_the_limiter_forgets_old_addresses_and_stays_bounded() -> None:
    limiter = FailureLimiter(max_failures=5, window=60, max_addresses=100)
    for i in range(1000):
        limiter.failed(f"addr-{i}", float(i))
    assert len(limiter) <= 100
    limiter.failed("late", 10_000)
    assert limiter.retry_after("addr-999", 10_000) == 0


# -- the browser's Origin -------------------------------------------------------------


def connection(headers: dict[str, str]) -> HTTPConnection:
    raw = [(k.encode(), v.encode()) for k, v in headers.items()]
    return HTTPConnection({"type": "http", "headers": raw})


def test_only_pages_of_the_service_itself_may_sign_in_or_open_the_socket() -> None:
    assert same_origin(connection({"host": "pulse.tinh.gov.vn"}))  # no Origin: not a browser page
    own = {"host": "pulse.tinh.gov.vn", "origin": "https://pulse.tinh.gov.vn"}
    assert same_origin(connection(own))
    # A proxy may drop the port from Host.
    assert same_origin(connection({"host": "pulse.vn", "origin": "http://pulse.vn:8080"}))
    assert same_origin(connection({"host": "[::1]:8000", "origin": "http://[::1]:8000"}))
    assert not same_origin(connection({"host": "pulse.vn", "origin": "https://evil.example"}))
    lookalike = {"host": "pulse.vn", "origin": "https://pulse.vn.evil.example"}
    assert not same_origin(connection(lookalike))
    assert not same_origin(connection({"host": "pulse.vn", "origin": "null"}))
