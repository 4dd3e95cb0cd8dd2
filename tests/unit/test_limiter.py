"""limiter.py: the one token bucket, and the bounds per client address built on it."""

from __future__ import annotations

from portalpulse.limiter import AddressCounts, AddressRate, TokenBucket


def test_a_bucket_allows_its_burst_then_its_rate() -> None:
    bucket = TokenBucket(burst=3, now=0.0)
    assert [bucket.take(0.0, rate=2, burst=3) for _ in range(4)] == [True, True, True, False]
    assert not bucket.take(0.4, rate=2, burst=3), "0.8 of a token back: not yet"
    assert bucket.take(0.5, rate=2, burst=3)
    assert bucket.take(100.0, rate=2, burst=3)
    assert bucket.tokens == 2.0, "refilled only up to the burst"


def test_a_refused_request_takes_nothing() -> None:
    bucket = TokenBucket(burst=1, now=0.0)
    assert bucket.take(0.0, rate=1, burst=1)
    assert not bucket.take(0.5, rate=1, burst=1)
    assert bucket.take(1.0, rate=1, burst=1), "the refused try did not cost a token"


def test_addresses_have_buckets_of_their_own_and_the_map_is_bounded() -> None:
    limit = AddressRate(rate=1, max_addresses=2)
    assert limit.allow("10.0.0.1", now=0.0) and limit.allow("10.0.0.1", now=0.0)
    assert not limit.allow("10.0.0.1", now=0.0)
    assert limit.allow("10.0.0.2", now=0.0)
    limit.allow("10.0.0.3", now=0.0)
    assert len(limit) == 2, "the address heard from longest ago is forgotten"


def test_connections_per_address_are_counted_and_released() -> None:
    counts = AddressCounts(limit=2)
    assert counts.open("a") and counts.open("a")
    assert not counts.open("a")
    counts.close("a")
    assert counts.open("a")
    counts.close("a")
    counts.close("a")
    assert counts["a"] == 0 and len(counts) == 0
