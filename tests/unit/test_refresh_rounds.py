"""A site's live visitors are refreshed together: one batch, so one store flush
per round, however many visitors and whenever each arrived; and none waits
longer than `refresh_every` after its hold."""

from __future__ import annotations

from test_ledger import SERVER, SITE, A, B, hello, ops

from portalpulse.domain import OpKind
from portalpulse.ledger import Ledger
from portalpulse.protocol import Page


def test_live_visitors_of_a_site_are_refreshed_in_one_round() -> None:
    ledger = Ledger(SERVER, [SITE])
    every = ledger.refresh_every
    ledger.join("myhao", hello(A, "/a"), now=0.0)
    ledger.join("myhao", hello(B, "/b"), now=9.0)
    ops(ledger)
    ledger.due_refreshes(every - 0.1)
    assert ops(ledger) == []
    ledger.due_refreshes(every)  # B is refreshed 6 s after its hold, with A
    refreshed = ops(ledger)
    assert {(op.kind, op.visitor, op.pages) for op in refreshed} == {
        (OpKind.REFRESH, A, ("/a",)),
        (OpKind.REFRESH, B, ("/b",)),
    }
    ledger.due_refreshes(2 * every - 0.1)
    assert ops(ledger) == []
    ledger.part("myhao", A, (Page("/a", ""),), engaged=False, now=2 * every - 0.1)
    ops(ledger)
    ledger.due_refreshes(2 * every)
    assert [(op.kind, op.visitor) for op in ops(ledger)] == [(OpKind.REFRESH, B)]
    ledger.part("myhao", B, (Page("/b", ""),), engaged=False, now=2 * every + 1)
    ops(ledger)
    ledger.due_refreshes(4 * every)
    assert ops(ledger) == [], "nobody left to refresh"
    ledger.join("myhao", hello(A, "/a"), now=100.0)  # a new round starts with the next hold
    ops(ledger)
    ledger.due_refreshes(100.0 + every)
    assert [(op.kind, op.visitor) for op in ops(ledger)] == [(OpKind.REFRESH, A)]
