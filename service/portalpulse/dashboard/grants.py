"""Which sites each configured dashboard token opens now, so that a session ends
once the token that signed it in is withdrawn.

A session carries the ids of its tokens (the first 16 hex digits of the token's
SHA-256, which the config lists), and every request and every open dashboard
socket checks them against the configuration: a session keeps only the sites
its still-configured tokens open. Tokens change by editing the config and
restarting; an instance restarted without a token refuses its sessions at
once. So that instances not yet restarted learn it too, each instance writes
its list of token ids to the store when it starts (`pp:note:dashboard-tokens`,
Redis only), and every instance reads the list of the most recently started
one every `dashboard.token_check_seconds` (20, at most 30): a token this instance
has but the newest configuration lacks counts as withdrawn here too. Open
dashboards re-check on the same beat, so a withdrawn token's sessions end
within two of them, under a minute, on every instance.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from ..config import Settings
from ..store.base import Store, StoreUnavailable
from .sessions import ALL_SITES, Session

log = logging.getLogger("portalpulse.dashboard")

TOKEN_ID_CHARS = 16
NOTE = "dashboard-tokens"


def token_id(digest: str) -> str:
    """The id a session keeps for a token, from the token's SHA-256 (hex)."""
    return digest[:TOKEN_ID_CHARS]


def _by_token(settings: Settings) -> dict[str, frozenset[str]]:
    sites: dict[str, set[str]] = {}
    for digest in settings.dashboard.tokens:
        sites.setdefault(token_id(digest), set()).add(ALL_SITES)
    for site in settings.sites.values():
        for digest in site.dashboard_tokens:
            sites.setdefault(token_id(digest), set()).add(site.id)
    return {token: frozenset(names) for token, names in sites.items()}


@dataclass(slots=True)
class Grants:
    """This process's token ids, and those the newest configuration withdrew."""

    by_token: Mapping[str, frozenset[str]]
    every: float = 20.0
    started: float = field(default_factory=time.time)
    withdrawn: frozenset[str] = frozenset()
    checked: float = float("-inf")
    published: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> Grants:
        return cls(_by_token(settings), settings.dashboard.token_check_seconds)

    def check(self, session: Session) -> Session | None:
        """The session as its tokens still allow (fewer sites, perhaps); None when
        none of them opens anything any more, or it carries no token id."""
        tokens = frozenset(t for t in session.tokens if t not in self.withdrawn)
        opened: set[str] = set()
        for token in tokens:
            opened |= self.by_token.get(token, frozenset())
        sites = session.sites if ALL_SITES in opened else session.sites & opened
        if not sites:
            return None
        return replace(session, sites=sites, tokens=tokens & self.by_token.keys())

    def due(self, now: float) -> bool:
        return now - self.checked >= self.every

    async def publish(self, store: Store) -> None:
        """At start: this configuration's token ids become the newest, unless an
        instance started later already wrote its own."""
        mine = {"at": self.started, "ids": sorted(self.by_token)}
        with contextlib.suppress(StoreUnavailable):
            newest = _decode(await store.note(NOTE))
            if newest is None or newest[0] <= self.started:
                await store.set_note(NOTE, json.dumps(mine, separators=(",", ":")))
            self.published = True

    async def refresh(self, store: Store, now: float) -> None:
        """Read the newest configuration's token ids."""
        self.checked = now
        if not self.published:  # the store was down at start-up
            await self.publish(store)
        with contextlib.suppress(StoreUnavailable):
            newest = _decode(await store.note(NOTE))
            if newest is None:
                return
            at, ids = newest
            withdrawn = frozenset(self.by_token) - ids if at > self.started else frozenset()
            if withdrawn != self.withdrawn:
                log.info("%d dashboard token(s) withdrawn by a newer configuration", len(withdrawn))
            self.withdrawn = withdrawn


def _decode(raw: str | None) -> tuple[float, frozenset[str]] | None:
    if raw is None:
        return None
    try:
        data = json.loads(raw)
        return float(data["at"]), frozenset(str(i) for i in data["ids"])
    except (ValueError, KeyError, TypeError):
        return None
