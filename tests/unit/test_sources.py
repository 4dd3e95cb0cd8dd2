"""sources.py: a referrer becomes one of a small fixed set of names."""

from __future__ import annotations

from portalpulse.sources import KINDS, classify, hosts_of

SITE = hosts_of(("https://myhao.gov.vn", "http://localhost:*"))


def test_known_referrers_are_named() -> None:
    assert classify("https://www.google.com/search?q=x", SITE) == "search:google"
    assert classify("https://www.google.de/", SITE) == "search:google"
    assert classify("https://coccoc.com/search", SITE) == "search:coccoc"
    assert classify("https://m.facebook.com/story", SITE) == "social:facebook"
    assert classify("https://zalo.me/g/abc", SITE) == "social:zalo"
    assert classify("android-app://com.google.android.googlequicksearchbox/", SITE) == (
        "search:google"
    )


def test_no_referrer_the_site_itself_and_the_rest() -> None:
    assert classify("", SITE) == "direct:"
    assert classify("https://myhao.gov.vn/tin-tuc/a.html", SITE) == "internal:"
    assert classify("https://www.myhao.gov.vn/", SITE) == "internal:"
    assert classify("https://evil.example/<script>", SITE) == "other:"
    assert classify("not a url", SITE) == "other:"


def test_only_fixed_names_leave_the_module() -> None:
    hosts = ["https://a.example", "https://x.y.z", "http://[::1]/", "https://google.com.evil"]
    for referrer in hosts:
        kind, _, name = classify(referrer, SITE).partition(":")
        assert kind in KINDS
        assert name in ("", "google")


def test_a_sites_hosts_come_with_and_without_www() -> None:
    assert {"myhao.gov.vn", "www.myhao.gov.vn", "localhost", "www.localhost"} == set(SITE)
