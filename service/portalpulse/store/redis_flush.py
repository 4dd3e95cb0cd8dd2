"""The Redis store's flush: a tick's batches in, each site's snapshot out.

Each site's flush is one EVALSHA of lua/flush.lua on keys that share the
hash tag `{site}`; all sites of a tick go in one pipeline, so a tick costs one
round trip per Redis node whatever the number of beats.

A quiet site costs almost nothing: a site with nothing new from this instance,
nothing due to expire and a snapshot already held is answered from what is
held while Redis has announced no change (`redis_feed.py`); a site the feed
cannot vouch for, or whose due time came, is checked with one key read (all
such sites in one MGET), and flushed only when another instance changed what
its snapshot shows (see `Known`).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import NoScriptError, ResponseError

from .base import SiteBatch, SiteSnapshot, StoreUnavailable
from .redis_feed import Feed
from .redis_replies import snapshot_from_reply, text
from .redis_script import FLUSH_SCRIPT, new_instance_id, script_call, site_prefix

__all__ = ["Flusher", "new_instance_id", "site_prefix"]

Client = Redis | RedisCluster

TOUCHES_PER_TTL = 4
"""How often per `presence_ttl` an instance renews its liveness in each site it
flushes (in a flush, or else with a touch: ZADD of its `inst` entry)."""


@dataclass(slots=True)
class Known:
    """The last snapshot this instance read of a site, and what makes it stale.

    The flush script names the content of every snapshot with a tag kept in the
    site's `st` key, beside the store time when the site next has something due
    (a visitor's deadline, views leaving the trending window, the next minute's
    history entry). Whichever instance reads first that it is due runs the
    script; the others then read the new tag and due time.

    The visitors this instance holds through connections stay online while it
    is live in the site's `inst` set: a flush renews that, and so does a touch
    when the site was not flushed for a quarter of `presence_ttl`."""

    tag: str
    due: float  # store time
    shape: tuple[object, ...]  # what the batch asked for: `_shape`
    flushed: float  # store time of the flush that answered `snapshot`
    snapshot: SiteSnapshot  # answered as it is, the very object, while nothing changed
    state: bytes | str | None = None  # `st` as last read, when it named `tag`
    # An instance that announces nothing flushes the site (flush.lua says so): read
    # `st` every tick, whatever the feed heard.
    unannounced: bool = False

    def holds(self, batch: SiteBatch) -> bool:
        """Whether `batch` may be answered from this snapshot if the tag is unchanged
        and nothing is due."""
        return (
            not _news(batch)
            and not batch.detail
            and not batch.periods
            and _shape(batch) == self.shape
        )


def _news(batch: SiteBatch) -> bool:
    """Whether `batch` changes anything in the store."""
    return bool(
        batch.ops
        or batch.views
        or batch.total_views
        or batch.titles
        or batch.arrivals
        or batch.counter_sets
    )


AUDIT_EVERY = 5.0
"""Seconds: even sites the feed follows are read this often (all in one MGET), so
that a link lost without a word, or an instance of a version that announces
nothing, delays what another instance changed by this much at most."""


class Flusher:
    """Runs the flush script for one instance (`instance_id`) and keeps, per
    configured site (never keyed by client input), the last snapshot it read."""

    def __init__(self, instance_id: str, clock_offset: float) -> None:
        self.instance_id = instance_id
        self.clock_offset = clock_offset
        self.known: dict[str, Known] = {}
        self._state_keys: dict[str, bytes] = {}  # site -> its `st` key, encoded once
        self._sha = ""
        # The store's clock minus this machine's (clock_offset aside), from the
        # `ts` of flushes: tells when a site is due without asking the store.
        self._skew = 0.0
        # What Redis announces, when the store follows it: None reads `st` of every
        # quiet site every tick. `publish` is the command the script announces with.
        self.feed: Feed | None = None
        self.publish: str | None = None
        self._next_audit = 0.0  # monotonic time of the next read of followed sites
        # What may make a held snapshot stale whatever the feed says: news of the
        # site still out (its operations are not in it yet), or a store that failed
        # the last flush (a stalled Redis announces nothing either).
        self._news_out: Counter[str] = Counter()
        self._failing = False
        # site -> monotonic time its script last said whether an instance that
        # announces nothing shares it (asked every AUDIT_EVERY: one more command)
        self._peers_asked: dict[str, float] = {}
        # site -> store time until which this instance is live in its `inst` set, as
        # last written (by a flush or a touch); sites found lapsed since (`lp`): what
        # this instance holds there may be gone, and the hub holds it again.
        self._live_until: dict[str, float] = {}
        self._touch_at: dict[str, float] = {}  # site -> store time its next touch is due
        self.lapsed: set[str] = set()

    async def load_script(self, client: Client) -> None:
        self._sha = await client.script_load(FLUSH_SCRIPT)

    def store_now(self) -> float:
        """The store's clock now (with `clock_offset`), as last seen by a flush."""
        return time.time() + self._skew + self.clock_offset

    async def flush(
        self, client: Client, cluster: bool, batches: Sequence[SiteBatch]
    ) -> list[SiteSnapshot]:
        """Apply every batch and answer each site's snapshot, in order: quiet sites
        from what is held when their tag is unchanged, the others by the script."""
        if not batches:
            return []
        out = self._news_out
        news = [batch.site for batch in batches if _news(batch)]  # few on a quiet tick
        for site in news:
            out[site] += 1
        try:
            answers = await self._flush(client, cluster, batches)
        except BaseException:
            self._failing = True
            raise
        finally:
            for site in news:
                out[site] -= 1
                if not out[site]:
                    del out[site]
        self._failing = False
        return answers

    async def _flush(
        self, client: Client, cluster: bool, batches: Sequence[SiteBatch]
    ) -> list[SiteSnapshot]:
        now = self.store_now()
        feed = self.feed
        if feed is not None:
            followed = feed.followed
            for batch in batches:
                if batch.site not in followed:
                    feed.follow(client, batch.site, site_prefix(batch.site))
            await feed.subscribe_new()
        answers: list[SiteSnapshot | None] = [None] * len(batches)
        quiet = [
            i
            for i, batch in enumerate(batches)
            if (known := self.known.get(batch.site)) is not None and known.holds(batch)
        ]
        if feed is not None and quiet:
            quiet = self._answer_followed(client, feed, batches, quiet, answers, now)
        # One round trip: the quiet sites' `st` keys, then the other sites' scripts.
        quiet_set = set(quiet)
        busy = [i for i in range(len(batches)) if i not in quiet_set and answers[i] is None]
        busy_set = set(busy)
        sent = time.monotonic()
        tickets = (
            {i: feed.ticket(batches[i].site, sent) for i in (*quiet, *busy)}
            if feed is not None
            else {}
        )
        pipe = client.pipeline(transaction=False)
        keys = self._state_keys_of([batches[i].site for i in quiet])
        if quiet and cluster:
            for key in keys:
                pipe.get(key)
        elif quiet:
            pipe.mget(keys)  # one command for every quiet site: cheaper for Redis
        calls, held = self._calls([batches[i] for i in busy])
        self._queue_scripts(pipe, calls)
        unflushed = [batch for i, batch in enumerate(batches) if i not in busy_set]
        touched = self._queue_touches(pipe, unflushed, now)
        results: list[Any] = await pipe.execute(raise_on_error=False)
        reads = (len(quiet) if cluster else 1) if quiet else 0
        states = results[:reads]
        for state in states:
            if isinstance(state, Exception):
                raise StoreUnavailable(f"reading quiet sites: {state}")
        scripted = reads + len(busy)
        self._read_touches(touched, results[scripted:], now)
        if quiet:
            self._answer_quiet(batches, quiet, states if cluster else states[0], answers, now)
        await self._read_scripts(
            client, [batches[i] for i in busy], busy, calls, held, results[reads:scripted], answers
        )
        if feed is not None:
            for i, ticket in tickets.items():
                feed.synced(batches[i].site, ticket)
        # Quiet sites that another instance changed, or that fell due: their scripts.
        stale = [i for i in quiet if answers[i] is None]
        if stale:
            stale_batches = [batches[i] for i in stale]
            calls, held = self._calls(stale_batches)
            pipe = client.pipeline(transaction=False)
            self._queue_scripts(pipe, calls)
            results = await pipe.execute(raise_on_error=False)
            await self._read_scripts(client, stale_batches, stale, calls, held, results, answers)
        return [answer for answer in answers if answer is not None]

    def quiet_until(self, site: str) -> float:
        """The monotonic time until which a quiet flush of `site` (nothing new from
        here) would answer the very snapshot it answered last, unless the feed
        announces the site first (`Feed.woken`): not past its due time, its next
        touch or the next audit. 0: no such promise."""
        feed, known = self.feed, self.known.get(site)
        if (
            feed is None
            or known is None
            or known.unannounced
            or self._failing
            or site in self._news_out
            or site in self.lapsed
            or not feed.follows(site)
        ):
            return 0.0
        touch_at = self._touch_at.get(site, 0.0)
        until = min(feed.current_until(site, known.tag, known.due, known.flushed), touch_at)
        left = until - self.store_now()
        return min(time.monotonic() + left, self._next_audit) if left > 0 else 0.0

    def take_woken(self) -> Collection[str]:
        """Sites announced, or no longer followed, since the last call."""
        feed = self.feed
        if feed is None or not feed.woken:
            return ()
        woken, feed.woken = feed.woken, set()
        return woken

    def wake_all(self) -> None:
        """Every promise of `quiet_until` so far is off (the clock moved)."""
        if self.feed is not None:
            self.feed.woken.update(self.known)

    def _answer_followed(
        self,
        client: Client,
        feed: Feed,
        batches: Sequence[SiteBatch],
        quiet: list[int],
        answers: list[SiteSnapshot | None],
        now: float,
    ) -> list[int]:
        """Answer, with no read, the quiet sites the feed follows and that nothing
        announced has changed; the quiet sites left to read (all of them, every
        AUDIT_EVERY seconds)."""
        mono = time.monotonic()
        if mono >= self._next_audit:
            self._next_audit = mono + AUDIT_EVERY
            feed.rehome(client)
            return quiet
        if self._failing:
            return quiet
        out = self._news_out
        known_of = self.known
        left = []
        for i in quiet:
            site = batches[i].site
            known = known_of[site]
            if (
                not known.unannounced
                and site not in out
                and feed.follows(site)
                and feed.current(site, known.tag, known.due, known.flushed, now)
            ):
                answers[i] = known.snapshot
            else:
                left.append(i)
        return left

    def _queue_touches(
        self, pipe: Any, batches: list[SiteBatch], now: float
    ) -> list[tuple[str, float, float]]:
        """Renew this instance's liveness in the sites not flushed for a quarter of
        their TTL (sites it holds nobody in too: one command, and no harm); the
        sites touched, each with its new deadline."""
        touch_at = self._touch_at
        touched = []
        me = self.instance_id
        for batch in batches:
            if now < touch_at.get(batch.site, 0.0):
                continue
            ttl = batch.presence_ttl
            # Only an entry still there (XX; CH: 1 when it was): a lapse that let
            # this instance's visitors go removed it in the same script run, and
            # so did a store that lost its keys. Then the instance flushes, and
            # holds its visitors again (`lapsed`).
            pipe.zadd(site_prefix(batch.site) + "inst", {me: now + ttl}, xx=True, ch=True)
            touched.append((batch.site, now + ttl, now + ttl / TOUCHES_PER_TTL))
        return touched

    def _read_touches(
        self, touched: list[tuple[str, float, float]], results: list[Any], now: float
    ) -> None:
        """Note the touches' deadlines, and the sites where this instance had lapsed."""
        for (site, until, touch_at), result in zip(touched, results, strict=True):
            if isinstance(result, Exception):
                raise StoreUnavailable(f"touch of {site}: {result}")
            if not result:
                # Lapsed: the hub holds the site's visitors again, in a flush (none
                # held here: nothing to do, and no touch again before the next turn).
                self.lapsed.add(site)
            self._live_until[site], self._touch_at[site] = until, touch_at

    def _args(self, batch: SiteBatch, known: str) -> tuple[list[str], list[str]]:
        ask_peers = False
        if self.publish is not None:
            mono = time.monotonic()
            if mono - self._peers_asked.get(batch.site, -AUDIT_EVERY) >= AUDIT_EVERY:
                self._peers_asked[batch.site] = mono
                ask_peers = True
        return script_call(
            batch, known, self.instance_id, self.clock_offset, self.publish, ask_peers
        )

    def _state_keys_of(self, sites: list[str]) -> list[bytes]:
        """The sites' `st` keys, each encoded once."""
        state_keys = self._state_keys
        return [
            state_keys.get(site) or state_keys.setdefault(site, f"{site_prefix(site)}st".encode())
            for site in sites
        ]

    def _answer_quiet(
        self,
        batches: Sequence[SiteBatch],
        quiet: list[int],
        states: list[Any],
        answers: list[SiteSnapshot | None],
        now: float,
    ) -> None:
        """Answer the quiet sites whose tag is unchanged from the snapshot held."""
        for i, state in zip(quiet, states, strict=True):
            if state is None:
                continue
            known = self.known[batches[i].site]
            if state != known.state:
                tag, _, due = text(state).partition("|")
                # Due as read now: whichever instance read it first has run it.
                known.due = float(due) if due else 0.0
                known.state = state if tag == known.tag else None
            if known.state is not None and now < known.due:
                # Unchanged: the very object, which tells the hub to skip the site.
                answers[i] = known.snapshot

    def _calls(
        self, batches: list[SiteBatch]
    ) -> tuple[list[tuple[list[str], list[str]]], list[Known | None]]:
        """Each batch's script call, and the snapshot held that it may answer `same` to."""
        calls, held = [], []
        for batch in batches:
            known = self.known.get(batch.site)
            if known is None or known.shape != _shape(batch) or batch.detail or batch.periods:
                known = None
            held.append(known)
            calls.append(self._args(batch, known.tag if known is not None else ""))
        return calls, held

    def _queue_scripts(self, pipe: Any, calls: list[tuple[list[str], list[str]]]) -> None:
        for keys, args in calls:
            # ClusterPipeline refuses .evalsha(); the raw command routes by its keys.
            pipe.execute_command("EVALSHA", self._sha, len(keys), *keys, *args)

    async def _read_scripts(
        self,
        client: Client,
        batches: list[SiteBatch],
        places: list[int],
        calls: list[tuple[list[str], list[str]]],
        held: list[Known | None],
        results: list[Any],
        answers: list[SiteSnapshot | None],
    ) -> None:
        for index, result in enumerate(results):
            if isinstance(result, NoScriptError) or (
                isinstance(result, ResponseError) and "NOSCRIPT" in str(result)
            ):
                # A restarted or failed-over Redis forgot the script: load it again.
                self._sha = await client.script_load(FLUSH_SCRIPT)
                keys, args = calls[index]
                results[index] = await client.evalsha(self._sha, len(keys), *keys, *args)
        for batch, place, known, result in zip(batches, places, held, results, strict=True):
            if isinstance(result, Exception):
                raise StoreUnavailable(f"flush of {batch.site}: {result}")
            answers[place] = self._answer(batch, known, json.loads(result))

    def _answer(self, batch: SiteBatch, known: Known | None, data: dict[str, Any]) -> SiteSnapshot:
        """The snapshot a script answered, or the one held when it answered `same`
        (only to the flush that named the held snapshot's tag)."""
        ts = float(data["ts"])
        self._skew = ts - self.clock_offset - time.time()
        if data.get("same") and known is not None:
            snapshot = known.snapshot  # unchanged: the very object (see `_check_quiet`)
        else:
            snapshot = snapshot_from_reply(batch.site, data)
        latest = self.known.get(batch.site)
        old = data.get("old")  # absent when not asked: as the last answer said
        unannounced = bool(old) if old is not None else bool(latest and latest.unannounced)
        site = batch.site
        if (data.get("lp") and site in self._live_until) or (
            unannounced and latest is not None and not latest.unannounced
        ):
            # Lapsed here, or an older instance now shares the site: hold the
            # visitors again (and, with the older one, refresh them as it expects).
            self.lapsed.add(site)
        self._live_until[site] = ts + batch.presence_ttl
        self._touch_at[site] = ts + batch.presence_ttl / TOUCHES_PER_TTL
        if latest is None or latest.flushed <= ts:
            # Kept for quiet flushes, which ask for no detail and no month or year: a
            # dashboard's extras would be stale by then.
            kept = snapshot
            if snapshot.detail or snapshot.month or snapshot.year:
                kept = replace(snapshot, detail=None, month=None, year=None)
            self.known[batch.site] = Known(
                str(data["v"]),
                float(data["due"]),
                _shape(batch),
                ts,
                kept,
                unannounced=unannounced,
            )
        return snapshot


def _shape(batch: SiteBatch) -> tuple[object, ...]:
    """What a snapshot depends on besides the store: the day, and what was asked."""
    return (batch.day, batch.trending_size, batch.want_yesterday and batch.yesterday)
