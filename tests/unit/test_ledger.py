"""The site ledger in-process: events in, the store operations and counts it sends out."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from portalpulse.config import ServerSettings, SiteSettings
from portalpulse.domain import OpKind, PresenceOp, VisitAttrs
from portalpulse.ledger import MAX_PENDING_OPS, REHOLD_EVERY, Ledger
from portalpulse.protocol import Hello, Page

SERVER = ServerSettings(beat_interval=15, presence_ttl=45, push_interval=1, leave_grace=5)
SITE = SiteSettings(
    id="myhao",
    name="Mỹ Hào",
    origins=("https://myhao.gov.vn",),
    exclude=("/tim-kiem*",),
)
WALL = 1_764_230_400.0  # 2025-11-27 15:00 in Ho Chi Minh: the batch's day keys
A = "visitor-aaaaaaaaaaaa"
B = "visitor-bbbbbbbbbbbb"


def hello(visitor: str = A, *paths: str, **kw: Any) -> Hello:
    pages = tuple(Page(p, f"Tiêu đề {p}", kw.pop("referrer", "")) for p in paths or ("/a",))
    return Hello(visitor=visitor, pages=pages, engaged=kw.pop("engaged", True), **kw)


def ops(ledger: Ledger, now: float = 10.0) -> list[PresenceOp]:
    return ledger.sites["myhao"].take_batch(now, WALL).ops


def test_a_hello_holds_the_visitor_counts_its_views_and_keeps_its_titles() -> None:
    ledger = Ledger(SERVER, [SITE])
    ledger.join("myhao", hello(A, "/a", "/b", referrer="https://www.google.com/"), now=7.0)
    batch = ledger.sites["myhao"].take_batch(10.0, WALL)
    assert batch.ops == [
        PresenceOp(OpKind.HOLD, A, ("/a", "/b"), 3.0, True, VisitAttrs("search:google", ""))
    ]
    assert batch.views == {"/a": 1, "/b": 1}
    assert batch.total_views == 2
    assert batch.titles == {"/a": "Tiêu đề /a", "/b": "Tiêu đề /b"}
    assert (batch.site, batch.presence_ttl, batch.leave_grace) == ("myhao", 45, 5)
    assert batch.day == "20251127" and batch.yesterday == "20251126"


def test_a_resume_counts_no_views_but_holds_the_visitor() -> None:
    ledger = Ledger(SERVER, [SITE])
    ledger.join("myhao", hello(A, "/a", resume=True), now=1.0)
    batch = ledger.sites["myhao"].take_batch(1.0, WALL)
    assert [op.kind for op in batch.ops] == [OpKind.HOLD]
    assert batch.views == {} and batch.total_views == 0


def test_three_tabs_of_one_visitor_hold_once_and_leave_once() -> None:
    ledger = Ledger(SERVER, [SITE])
    for path in ("/a", "/b", "/a"):
        ledger.join("myhao", hello(A, path), now=1.0)
    assert [op.kind for op in ops(ledger)] == [OpKind.HOLD, OpKind.REFRESH, OpKind.REFRESH]
    assert ledger.sites["myhao"].visitors[A].connections == 3
    # The tab on /b closes: /b loses its reader; /a is still open in another tab.
    assert ledger.part("myhao", A, (Page("/b", ""),), engaged=False, now=2.0) is False
    assert ledger.part("myhao", A, (Page("/a", ""),), engaged=False, now=2.0) is False
    closing = ops(ledger)
    assert [(op.kind, op.pages) for op in closing] == [(OpKind.CLOSE_PAGES, ("/b",))]
    # The last tab: a departure, to flush soon.
    assert ledger.part("myhao", A, (Page("/a", ""),), engaged=False, now=3.0) is True
    assert [(op.kind, op.pages) for op in ops(ledger)] == [(OpKind.LEAVE, ("/a",))]
    assert A not in ledger.sites["myhao"].visitors


def test_excluded_pages_count_as_views_but_never_reach_the_ranking() -> None:
    ledger = Ledger(SERVER, [SITE])
    ledger.join("myhao", hello(A, "/a", "/tim-kiem?q=x"), now=1.0)
    batch = ledger.sites["myhao"].take_batch(1.0, WALL)
    assert batch.ops[0].pages == ("/a",)
    assert batch.views == {"/a": 1}
    assert batch.total_views == 2


def test_a_changed_page_set_counts_new_pages_as_views_and_closes_the_old() -> None:
    ledger = Ledger(SERVER, [SITE])
    first = hello(A, "/a")
    ledger.join("myhao", first, now=1.0)
    ops(ledger)
    ledger.change_pages("myhao", A, first.pages, (Page("/b", "B"),), now=2.0)
    batch = ledger.sites["myhao"].take_batch(2.0, WALL)
    assert [(op.kind, op.pages) for op in batch.ops] == [
        (OpKind.REFRESH, ("/b",)),
        (OpKind.CLOSE_PAGES, ("/a",)),
    ]
    assert batch.views == {"/b": 1}


def test_engagement_is_the_visitors_only_when_no_other_tab_is_engaged() -> None:
    ledger = Ledger(SERVER, [SITE])
    ledger.join("myhao", hello(A, "/a", engaged=True), now=1.0)
    ledger.join("myhao", hello(A, "/b", engaged=True), now=1.0)
    ops(ledger)
    ledger.engage("myhao", A, was=True, engaged=False, now=2.0)
    assert ops(ledger) == [], "the other tab is still engaged"
    ledger.engage("myhao", A, was=True, engaged=False, now=3.0)
    (op,) = ops(ledger)
    assert (op.kind, op.engaged) == (OpKind.REFRESH, False)


def test_http_beats_keep_a_visitor_until_presence_ttl_and_bye_ends_it() -> None:
    ledger = Ledger(SERVER, [SITE])
    site = ledger.sites["myhao"]
    ledger.http_beat("myhao", hello(B, "/a", device="mobile"), now=100.0)
    (beat,) = ops(ledger, 100.0)
    assert (beat.kind, beat.attrs) == (OpKind.BEAT, VisitAttrs("direct:", "mobile"))
    ledger.expire_http("myhao", 144.0)
    assert B in site.http_visitors and site.busy
    ledger.expire_http("myhao", 145.0)
    assert B not in site.http_visitors and ledger.http_visitor_count() == 0
    ledger.http_beat("myhao", hello(B, "/a", bye=True), now=150.0)
    assert [op.kind for op in ops(ledger, 150.0)] == [OpKind.BYE]
    assert not site.http_visitors


def test_http_beat_visitors_are_bounded_on_every_site_together() -> None:
    other = SiteSettings(id="vanlam", name="Văn Lâm", origins=("https://vanlam.gov.vn",))
    ledger = Ledger(replace(SERVER, max_http_visitors=2), [SITE, other])
    assert ledger.http_beat("myhao", hello(A, "/a"), now=0.0)
    assert ledger.http_beat("vanlam", hello(B, "/b"), now=0.0)
    ops(ledger)
    # Full: a new visitor counts nothing, on either site; those kept go on.
    assert not ledger.http_beat("myhao", hello("visitor-cccccccccccc", "/c"), now=1.0)
    assert not ledger.http_beat("vanlam", hello("visitor-cccccccccccc", "/c"), now=1.0)
    batch = ledger.sites["myhao"].take_batch(1.0, WALL)
    assert batch.ops == [] and batch.views == {} and batch.titles == {}
    assert ledger.http_beat("myhao", hello(A, "/a"), now=1.0)
    # A bye always passes, and frees a place.
    assert ledger.http_beat("vanlam", hello(B, "/b", bye=True), now=2.0)
    assert ledger.http_visitor_count() == 1
    assert ledger.http_beat("vanlam", hello("visitor-cccccccccccc", "/c"), now=3.0)


def test_live_visitors_are_refreshed_with_no_help_from_the_page() -> None:
    ledger = Ledger(SERVER, [SITE])
    ledger.join("myhao", hello(A, "/a"), now=0.0)
    ops(ledger)
    every = ledger.refresh_every
    assert every == 22  # (presence_ttl - push_interval) / 2, under REFRESH_AT_LEAST_EVERY
    ledger.due_refreshes(every - 0.1)
    assert ops(ledger) == []
    ledger.due_refreshes(every)
    assert [(op.kind, op.pages) for op in ops(ledger)] == [(OpKind.REFRESH, ("/a",))]
    ledger.part("myhao", A, (Page("/a", ""),), engaged=False, now=every + 1)
    ops(ledger)
    ledger.due_refreshes(3 * every)
    assert ops(ledger) == [], "a visitor who left is not refreshed"


def test_a_batch_the_store_did_not_take_is_given_back_in_order() -> None:
    ledger = Ledger(SERVER, [SITE])
    site = ledger.sites["myhao"]
    ledger.join("myhao", hello(A, "/a"), now=1.0)
    site.take_batch(1.0, WALL)
    ledger.join("myhao", hello(B, "/b"), now=2.0)
    site.give_back()
    batch = site.take_batch(5.0, WALL)
    assert [(op.visitor, op.age) for op in batch.ops] == [(A, 4.0), (B, 3.0)]
    assert batch.views == {"/a": 1, "/b": 1} and batch.total_views == 2


def test_pending_operations_are_bounded_while_the_store_is_down() -> None:
    ledger = Ledger(SERVER, [SITE])
    site = ledger.sites["myhao"]
    for i in range(MAX_PENDING_OPS + 5):
        site.add_op(OpKind.REFRESH, f"v{i:018d}", (), 0.0)
    assert len(site.ops) == MAX_PENDING_OPS
    assert site.ops[0][1].visitor == f"v{5:018d}", "the oldest are dropped"


def test_shutting_down_every_visitor_here_leaves() -> None:
    ledger = Ledger(SERVER, [SITE])
    ledger.join("myhao", hello(A, "/a"), now=1.0)
    ledger.join("myhao", hello(B, "/b"), now=1.0)
    ops(ledger)
    ledger.leave_all(now=2.0)
    assert {(op.kind, op.visitor) for op in ops(ledger)} == {
        (OpKind.LEAVE, A),
        (OpKind.LEAVE, B),
    }
    assert not ledger.sites["myhao"].visitors


def test_a_store_that_holds_by_instance_gets_rare_hold_rounds_and_rehold_on_demand() -> None:
    holds = {"myhao": True}
    ledger = Ledger(SERVER, [SITE], holds=lambda site: holds[site])
    ledger.join("myhao", hello(A, "/a"), now=0.0)
    ops(ledger)
    ledger.due_refreshes(ledger.refresh_every)
    assert ops(ledger) == [], "no refresh: the store keeps the visitor through the instance"
    ledger.due_refreshes(REHOLD_EVERY)
    assert [(op.kind, op.visitor, op.pages) for op in ops(ledger)] == [(OpKind.HOLD, A, ("/a",))]
    # The store lost it (a restart, a lapse): held again on the next tick.
    ledger.rehold("myhao", REHOLD_EVERY + 5)
    ledger.due_refreshes(REHOLD_EVERY + 5)
    assert [op.kind for op in ops(ledger)] == [OpKind.HOLD]
    # An older instance shares the site: rounds as often as a refresh needs.
    holds["myhao"] = False
    ledger.due_refreshes(REHOLD_EVERY + 5 + REHOLD_EVERY)
    ops(ledger)
    ledger.due_refreshes(2 * REHOLD_EVERY + 5 + ledger.refresh_every)
    assert [op.kind for op in ops(ledger)] == [OpKind.HOLD]


def test_dropped_operations_are_told_once() -> None:
    ledger = Ledger(SERVER, [SITE])
    site = ledger.sites["myhao"]
    assert not ledger.take_dropped()
    for i in range(MAX_PENDING_OPS + 1):
        site.add_op(OpKind.REFRESH, f"v{i:018d}", (), 0.0)
    assert ledger.take_dropped()
    assert not ledger.take_dropped()
