"""Where one page view came from, as the drill-down keeps it (sources.arrival)."""

from __future__ import annotations

from portalpulse import sources

HOSTS = sources.hosts_of(("https://myhao.example.vn",))


def test_outside_referrers_keep_their_kind_and_name() -> None:
    assert sources.arrival("https://www.google.com.vn/search?q=x", HOSTS) == "search:google"
    assert sources.arrival("https://zalo.me/", HOSTS) == "social:zalo"
    assert sources.arrival("", HOSTS) == "direct:"
    assert sources.arrival("https://baomoi.com/a.html", HOSTS) == "other:"


def test_the_portal_s_own_pages_are_named_like_pages() -> None:
    arrival = sources.arrival
    assert arrival("https://myhao.example.vn/", HOSTS) == "internal:/"
    assert arrival("https://www.myhao.example.vn/tin/a.html#top", HOSTS) == "internal:/tin/a.html"
    # The query as pages keep it: only the site's keep_query parameters, sorted.
    kept = arrival("https://myhao.example.vn/p?x=1&ItemID=5", HOSTS, ("ItemID",))
    assert kept == "internal:/p?ItemID=5"
    assert arrival("https://myhao.example.vn/p?x=1", HOSTS) == "internal:/p"
    # Excluded pages and paths that are no page are internal, with no previous page.
    assert arrival("https://myhao.example.vn/admin/x", HOSTS, (), ("/admin/*",)) == "internal:"
    assert arrival("https://myhao.example.vn/" + "x" * 600, HOSTS) == "internal:"
