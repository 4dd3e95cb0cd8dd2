"""What Redis announces of each site's `st`, so that quiet sites cost no read.

The flush script publishes a site's new `st` on a channel named like the key
(`pp:{site}:st`) when its tag changes or something falls due sooner
(lua/flush.lua, section 5): "TIME|TAG|DUE". An instance subscribed to the
channel knows without asking that the snapshot it holds is still current;
it reads `st` only when the due time it knows has come (the due may have
moved on unannounced), and for every site whose subscription it cannot
vouch for:

- a site counts as followed ("synced") only after a read or a flush whose
  request left after its subscription was confirmed, and with no message
  for the site while that request was out (the two could not be ordered);
- a lost connection, or redis-py reconnecting by itself (which shows as a
  second confirmation of a channel), starts a new epoch: every site of that
  link is read again until synced anew;
- while any instance that publishes nothing flushes a site (a version from
  before this feed, during a rolling upgrade), the script says so and the
  site is read every tick as before.

One link per Redis node: the whole Redis, or on a Cluster the primary that
owns a site's slot, with sharded channels (SSUBSCRIBE), so that a message
goes to the instances that asked for it and never crosses the cluster bus.
A slot that moves away unsubscribes its channels (Redis says so); they are
followed again from their new node.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisClusterException, RedisError

log = logging.getLogger("portalpulse.store")

WAIT_FOR_MESSAGE = 30.0
"""Seconds a link waits for a message before it looks again (and pings when idle)."""
RETRY_AFTER = 1.0
"""Seconds before a lost link connects again."""


@dataclass(slots=True, frozen=True)
class Heard:
    """A site's `st` as last announced: the store time of the change, the tag, the due time."""

    ts: float
    tag: str
    due: float


def channel_of(site_prefix: str) -> str:
    """The channel of a site's announcements: named like its `st` key, so in its slot."""
    return f"{site_prefix}st"


def parse(message: bytes | str) -> Heard | None:
    """An announcement "TIME|TAG|DUE", or None when it is not one."""
    text = message.decode() if isinstance(message, bytes) else message
    parts = text.split("|")
    if len(parts) != 3:
        return None
    try:
        return Heard(float(parts[0]), parts[1], float(parts[2]) if parts[2] else 0.0)
    except ValueError:
        return None


class Link:
    """One subscription connection to one Redis node and the sites it follows there."""

    def __init__(
        self, feed: Feed, name: str, client: aioredis.Redis, sharded: bool, owned: bool
    ) -> None:
        self.feed = feed
        self.name = name
        self.client = client
        self.sharded = sharded
        self.owned = owned  # a client of its own (a Cluster node's), closed with the link
        self.closing = False
        self.sites: dict[str, str] = {}  # channel -> site, every site this link should follow
        self.asked: set[str] = set()  # channels subscribed to in this epoch
        self.confirmed: dict[str, int] = {}  # site -> the epoch its subscription was confirmed in
        self.epoch = 0
        self.pubsub: Any = None
        self.task: asyncio.Task[None] | None = None
        self.wanted = asyncio.Event()

    def follow(self, site: str, channel: str) -> None:
        self.sites[channel] = site
        self.wanted.set()
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._run())

    def drop(self, channel: str) -> None:
        site = self.sites.pop(channel, None)
        self.asked.discard(channel)
        if site is not None:
            self.confirmed.pop(site, None)
            self.feed.unfollowed(site)

    async def subscribe_new(self) -> None:
        """Ask for the channels added since the last call (the reader task reads the
        confirmations)."""
        new = [c for c in self.sites if c not in self.asked]
        if not new or self.pubsub is None or self.pubsub.connection is None:
            return
        self.asked.update(new)
        try:
            await self._subscribe(new)
        except (RedisError, OSError) as exc:
            # The reader finds the connection broken too, and starts over.
            log.info("feed %s: subscribing failed: %s", self.name, exc)
            self.asked.difference_update(new)

    async def _subscribe(self, channels: list[str]) -> None:
        if self.sharded:
            await self.pubsub.ssubscribe(*channels)
        else:
            await self.pubsub.subscribe(*channels)

    def _new_epoch(self) -> None:
        self.epoch += 1
        self.confirmed.clear()
        for site in self.sites.values():
            self.feed.lost(site)

    async def _run(self) -> None:
        while not self.closing:
            self._new_epoch()
            self.asked.clear()
            self.pubsub = self.client.pubsub()
            try:
                await self.wanted.wait()
                self.wanted.clear()
                first = list(self.sites)
                self.asked.update(first)
                await self._subscribe(first)
                while not self.closing:
                    message = await self.pubsub.get_message(timeout=WAIT_FOR_MESSAGE)
                    if message is not None:
                        self._take(message)
            except (RedisError, OSError) as exc:
                # At once, not after the wait below: what is published meanwhile is lost.
                self._new_epoch()
                if not self.closing:
                    log.info("feed %s lost: %s; its sites are read meanwhile", self.name, exc)
            except Exception:
                self._new_epoch()
                log.exception("feed %s failed; its sites are read meanwhile", self.name)
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await self.pubsub.aclose()
                self.pubsub = None
            if not self.closing:
                self.wanted.set()
                await asyncio.sleep(RETRY_AFTER)

    def _take(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        kind = kind.decode() if isinstance(kind, bytes) else kind
        channel = message.get("channel")
        channel = channel.decode() if isinstance(channel, bytes) else channel
        site = self.sites.get(channel or "")
        if kind in ("message", "smessage"):
            heard = parse(message.get("data") or b"")
            if site is not None and heard is not None:
                self.feed.heard_of(site, heard)
        elif kind in ("subscribe", "ssubscribe"):
            if site is None:
                return
            if site in self.confirmed:
                # redis-py reconnected and subscribed again by itself: what was
                # published meanwhile is lost, so every site is read again.
                self._new_epoch()
            self.confirmed[site] = self.epoch
        elif kind in ("unsubscribe", "sunsubscribe") and channel is not None:
            # Not asked for: the slot moved to another node (or the node became a
            # replica). The site is read until followed from its new home.
            self.drop(channel)

    async def close(self) -> None:
        self.closing = True
        task, self.task = self.task, None
        if task is not None:
            # redis-py may take a cancel inside a read with a timeout for the
            # timeout itself: the connection is cut too, and the loop sees `closing`.
            task.cancel()
            if self.pubsub is not None and self.pubsub.connection is not None:
                with contextlib.suppress(RedisError, OSError):
                    await self.pubsub.connection.disconnect()
            await asyncio.wait({task}, timeout=RETRY_AFTER + WAIT_FOR_MESSAGE)
        if self.owned:
            await self.client.aclose()


def no_retry() -> Retry:
    """A link's connection is never retried behind its back: a loss must show at
    once, so that its sites are read until it is back."""
    return Retry(NoBackoff(), 0)


class Feed:
    """Every followed site's last announcement, and whether it can be trusted."""

    def __init__(self, url: str, options: dict[str, Any]) -> None:
        self.url = url  # a standalone Redis: the link connects here
        self.options = options
        self.heard: dict[str, Heard] = {}  # per configured site flushed here
        self._home: dict[str, Link] = {}
        self._links: dict[str, Link] = {}
        self._synced: dict[str, int] = {}  # site -> the epoch of its link it was synced in
        self._last_message: dict[str, float] = {}  # site -> monotonic time of its last one
        self._pending = False
        self.followed: set[str] = set()  # sites with a link that should follow them
        self._channel: dict[str, str] = {}
        # Sites announced, or no longer vouched for, since the flusher last took them
        # (`Store.take_woken`): what the hub skipped as quiet needs a look.
        self.woken: set[str] = set()

    # -- which sites are followed where ---------------------------------------

    def follow(self, client: aioredis.Redis | RedisCluster, site: str, prefix: str) -> None:
        """Follow `site` from the node that owns it (a no-op once followed)."""
        link = self._home.get(site)
        channel = channel_of(prefix)
        if link is not None and channel in link.sites:
            return
        if isinstance(client, RedisCluster):
            try:
                node = client.get_node_from_key(channel)
            except RedisClusterException:
                return  # no node owns the slot now: read, and try again next flush
            if node is None:
                return
            name = node.name
            link = self._links.get(name)
            if link is None:
                kwargs = {**node.connection_kwargs, "retry": no_retry()}
                pool = aioredis.ConnectionPool(connection_class=node.connection_class, **kwargs)
                link = Link(
                    self, name, aioredis.Redis(connection_pool=pool), sharded=True, owned=True
                )
        else:
            name = "redis"
            link = self._links.get(name)
            if link is None:
                own = aioredis.Redis.from_url(self.url, **self.options, retry=no_retry())
                link = Link(self, name, own, sharded=False, owned=True)
        self._links[name] = link
        self._home[site] = link
        self._channel[site] = channel
        self.followed.add(site)
        link.follow(site, channel)
        self._pending = True

    async def subscribe_new(self) -> None:
        """Send the subscriptions asked for since the last call (cheap when none)."""
        if not self._pending:
            return
        self._pending = False
        for link in list(self._links.values()):
            await link.subscribe_new()
            # A link still connecting subscribes to what it holds by itself, and
            # anything added after that is sent on a later call.
            self._pending = self._pending or any(c not in link.asked for c in link.sites)

    # -- what links tell ---------------------------------------------------------

    def heard_of(self, site: str, heard: Heard) -> None:
        self._last_message[site] = time.monotonic()
        self.woken.add(site)
        known = self.heard.get(site)
        if known is None or heard.ts >= known.ts:
            self.heard[site] = heard

    def lost(self, site: str) -> None:
        self._synced.pop(site, None)
        self.woken.add(site)

    def unfollowed(self, site: str) -> None:
        """Its link dropped it: followed again (maybe elsewhere) when next flushed."""
        self._synced.pop(site, None)
        self.followed.discard(site)
        self.woken.add(site)

    # -- what the flusher asks -------------------------------------------------

    def ticket(self, site: str, sent: float) -> tuple[Link, int, float] | None:
        """Taken as a read or a flush of `site` leaves (at monotonic time `sent`):
        what `synced` needs to vouch that the answer, with the messages after it,
        tells the whole story."""
        link = self._home.get(site)
        if link is None or link.confirmed.get(site) != link.epoch:
            return None
        return (link, link.epoch, sent)

    def synced(self, site: str, ticket: tuple[Link, int, float] | None) -> None:
        """An answer to a request that left with `ticket` came: the site is followed
        from now on, unless a message came while the request was out."""
        if ticket is None:
            return
        link, epoch, sent = ticket
        if (
            self._home.get(site) is link
            and link.epoch == epoch
            and link.confirmed.get(site) == epoch
            and self._last_message.get(site, 0.0) < sent
        ):
            self._synced[site] = epoch

    def follows(self, site: str) -> bool:
        """Whether every change of `site` since it was synced has been announced here."""
        link = self._home.get(site)
        return (
            link is not None
            and self._synced.get(site) == link.epoch
            and link.confirmed.get(site) == link.epoch
        )

    def rehome(self, client: aioredis.Redis | RedisCluster) -> None:
        """On a Cluster, sites whose slot moved to another node (as the client now
        knows the slots) are followed from there from the next flush on."""
        if not isinstance(client, RedisCluster):
            return
        for site, link in list(self._home.items()):
            channel = self._channel[site]
            try:
                node = client.get_node_from_key(channel)
            except RedisClusterException:
                node = None
            if node is not None and node.name != link.name and channel in link.sites:
                link.drop(channel)

    def current(self, site: str, tag: str, due: float, flushed: float, now: float) -> bool:
        """Whether a snapshot of `tag` (from a flush at store time `flushed`, due at
        `due`) is still current at store time `now`, by what was announced since."""
        return now < self.current_until(site, tag, due, flushed)

    def current_until(self, site: str, tag: str, due: float, flushed: float) -> float:
        """The store time until which a snapshot of `tag` (see `current`) stays
        current by what was announced so far (0: it is not)."""
        heard = self.heard.get(site)
        if heard is not None and heard.ts > flushed:
            return heard.due if heard.tag == tag else 0.0
        return due

    async def close(self) -> None:
        links, self._links = list(self._links.values()), {}
        self._home.clear()
        self.followed.clear()
        for link in links:
            await link.close()
