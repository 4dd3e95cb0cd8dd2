"""A session keeps only the sites its still-configured tokens open."""

from __future__ import annotations

from portalpulse import config
from portalpulse.dashboard.grants import Grants, token_id
from portalpulse.dashboard.sessions import Session

A, B, P = "a" * 64, "b" * 64, "c" * 64


def grants(*, site_a: list[str], site_b: list[str], province: list[str]) -> Grants:
    raw = {
        "dashboard": {"tokens": province},
        "sites": {
            "sa": {"origins": ["*"], "dashboard_tokens": site_a},
            "sb": {"origins": ["*"], "dashboard_tokens": site_b},
        },
    }
    return Grants.from_settings(config.parse(raw, env={}))


def session(sites: set[str], *digests: str) -> Session:
    return Session(frozenset(sites), 1e12, frozenset(token_id(d) for d in digests))


def test_a_session_ends_with_its_token() -> None:
    now = grants(site_a=[A], site_b=[B], province=[P])
    assert now.check(session({"sa"}, A)) == session({"sa"}, A)
    assert now.check(session({"*"}, P)) == session({"*"}, P)
    assert now.check(session({"sa"})) is None, "no token id: not a session of ours"
    later = grants(site_a=[], site_b=[B], province=[])
    assert later.check(session({"sa"}, A)) is None
    assert later.check(session({"*"}, P)) is None
    # Signed in to two sites: the withdrawn token's site goes, the other stays.
    assert later.check(session({"sa", "sb"}, A, B)) == session({"sb"}, B)
    # A token moved to another site opens only what it opens now.
    moved = grants(site_a=[], site_b=[A], province=[])
    assert moved.check(session({"sa"}, A)) is None


def test_tokens_withdrawn_by_a_newer_configuration_count_here_too() -> None:
    here = grants(site_a=[A], site_b=[B], province=[])
    here.withdrawn = frozenset({token_id(A)})
    assert here.check(session({"sa"}, A)) is None
    assert here.check(session({"sb"}, B)) == session({"sb"}, B)
