"""dashboard/sessions.py: signed cookies any instance with the secret accepts."""

from __future__ import annotations

from portalpulse.dashboard.sessions import Session, SessionSigner


def test_a_signed_session_comes_back_until_it_expires() -> None:
    signer = SessionSigner("secret")
    session = Session(frozenset({"myhao"}), expires=1000.0)
    cookie = signer.sign(session)
    assert signer.verify(cookie, now=999.0) == session
    assert signer.verify(cookie, now=1000.0) is None
    assert SessionSigner("secret").verify(cookie, now=1.0) == session, "another instance"


def test_a_changed_byte_or_another_secret_is_refused() -> None:
    signer = SessionSigner("secret")
    cookie = signer.sign(Session(frozenset({"myhao"}), expires=1000.0))
    payload, signature = cookie.split(".")
    forged = payload[:-1] + ("A" if payload[-1] != "A" else "B") + "." + signature
    assert signer.verify(forged, now=1.0) is None
    assert SessionSigner("other").verify(cookie, now=1.0) is None
    assert signer.verify("", now=1.0) is None and signer.verify("a.b.c", now=1.0) is None


def test_sessions_join_their_sites_and_keep_the_later_expiry() -> None:
    one = Session(frozenset({"a"}), 10.0)
    two = Session(frozenset({"b"}), 20.0)
    assert one.joined(two) == Session(frozenset({"a", "b"}), 20.0)
    every = Session(frozenset({"*"}), 5.0)
    assert one.joined(every).every_site and one.joined(every).may_see("zzz")
    assert one.may_see("a") and not one.may_see("b")
