"""Views count once though a flush is sent again: a flush the instance gave up on
(its timeout) may still run in Redis, beside the retry that carries its views."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from test_store_contract import batch

from portalpulse import config
from portalpulse.domain import CounterSet, SiteBatch
from portalpulse.ledger import MAX_UNCONFIRMED, SiteLedger
from portalpulse.protocol import Page
from portalpulse.store.redis import RedisStore
from support.processes import offset_to_local_noon


@pytest.fixture(params=["redis", "cluster"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[RedisStore]:
    if request.param == "redis":
        made = RedisStore(request.getfixturevalue("redis").url)
    else:
        nodes = request.getfixturevalue("cluster")
        for node in nodes:
            node.cli("flushall")
        made = RedisStore(f"redis://127.0.0.1:{nodes[0].port}/0")
    made.clock_offset = offset_to_local_noon()
    await made.open()
    yield made
    await made.close()


def with_sets(*sets: CounterSet) -> SiteBatch:
    flushed = batch("s1", views={})
    flushed.counter_sets = list(sets)
    for counted in sets:
        for page, n in counted.views.items():
            flushed.views[page] = flushed.views.get(page, 0) + n
        flushed.total_views += counted.total_views
    return flushed


async def test_a_set_of_views_sent_again_counts_once(store: RedisStore) -> None:
    first = CounterSet("t1", {"/a": 2}, 2, {})
    (snap,) = await store.flush([with_sets(first)])
    assert snap.today.views == 2
    (snap,) = await store.flush([with_sets(first)])  # the late run of a cut-off flush
    assert snap.today.views == 2
    later = CounterSet("t2", {"/a": 1, "/b": 1}, 2, {})
    (snap,) = await store.flush([with_sets(first, later)])  # the retry, with new views
    assert snap.today.views == 4
    assert {p.path: p.views for p in snap.trending} == {"/a": 3, "/b": 1}


def test_views_the_store_may_not_have_kept_stay_in_their_sets() -> None:
    settings = config.parse({"sites": {"s1": {"origins": ["*"]}}})
    ledger = SiteLedger(settings.sites["s1"], settings.server)
    ledger.count_views([Page("/a", "A")])
    first = ledger.take_batch(0.0, 0.0)
    ledger.give_back()  # the store failed: did it count them?
    ledger.count_views([Page("/b", "B")])
    retry = ledger.take_batch(1.0, 1.0)
    assert retry.counter_sets[0] == first.counter_sets[0]  # the same token again
    assert retry.views == {"/a": 1, "/b": 1} and retry.total_views == 2
    for _ in range(MAX_UNCONFIRMED + 5):  # a long outage: sets fold, nothing is lost
        ledger.give_back()
        ledger.count_views([Page("/c", "C")])
        retry = ledger.take_batch(2.0, 2.0)
    assert len(retry.counter_sets) <= MAX_UNCONFIRMED + 1
    assert retry.total_views == 2 + MAX_UNCONFIRMED + 5
