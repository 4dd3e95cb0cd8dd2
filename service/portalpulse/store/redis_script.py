"""What one site's flush sends lua/flush.lua: the site's keys, and the batch as
one JSON argument.

Also the names every part of the Redis store shares: a site's key prefix,
the token Redis keeps of a visitor id, an instance id.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from importlib import resources
from typing import Any

from .base import DETAIL_MINUTES, DETAIL_PAGES, SiteBatch
from .page_minutes import BUCKET_TTL

FLUSH_SCRIPT = resources.files("portalpulse.store").joinpath("lua/flush.lua").read_text("utf-8")
KEY_NAMES = (
    "inst", "rank", "pages", "titles", "total", "onl", "engn", "erank",
    "srcn", "devn", "pid", "pname", "dqi", "vbi", "codes", "st",
)  # fmt: skip


HOLDS_MARK = "+h"
"""Ends the id of an instance of this version: it announces what it changes
(redis_feed.py) and lets the script keep its held visitors through its own
liveness (flush.lua's hold_on). Older ids end otherwise, or with '+' alone."""


def new_instance_id() -> str:
    return uuid.uuid4().hex[:8] + HOLDS_MARK


def site_prefix(site: str) -> str:
    """Every key of a site starts with this: the hash tag keeps a site on one slot."""
    return f"pp:{{{site}}}:"


def visitor_token(visitor: str) -> str:
    """What Redis keeps of a visitor id: 10 characters (60 bits) of its BLAKE2b hash.

    Shorter than most ids, so records stay small. The chance that any two of a
    million visitors share a token is below one in a million."""
    digest = hashlib.blake2b(visitor.encode(), digest_size=8).digest()
    return base64.urlsafe_b64encode(digest).decode()[:10]


def script_call(
    batch: SiteBatch,
    known: str,
    instance_id: str,
    clock_offset: float,
    publish: str | None,
    ask_peers: bool,
) -> tuple[list[str], list[str]]:
    """The keys and arguments of `batch`'s EVALSHA. `known`: the tag of the
    snapshot held (the script answers `same` when it is still current);
    `publish`: the command that announces a change (None: announce nothing);
    `ask_peers`: whether the script should say if an instance that announces
    nothing shares the site."""
    prefix = site_prefix(batch.site)
    keys = [prefix + name for name in KEY_NAMES]
    payload: dict[str, Any] = {
        "kv": known,
        "i": instance_id,
        "off": clock_offset,
        "ttl": batch.presence_ttl,
        "grace": batch.leave_grace,
        "win": batch.trending_window,
        "n": batch.trending_size,
        "cap": batch.max_pages,
        "day": batch.day,
        "ds": batch.day_start,
        "y": batch.yesterday if batch.want_yesterday or batch.detail else False,
        "hour": batch.hour,
        "detail": batch.detail,
        "pm": batch.periods,
        "dn": DETAIL_PAGES,
        "dm": DETAIL_MINUTES,
        "ops": [
            [
                int(op.kind),
                visitor_token(op.visitor),
                round(op.age, 3),
                list(op.pages),
                -1 if op.engaged is None else int(op.engaged),
                op.attrs.packed() if op.attrs is not None else "",
            ]
            for op in batch.ops
        ],
        "titles": [[page, title] for page, title in batch.titles.items()],
        "pmt": BUCKET_TTL,
    }
    if publish is not None:
        payload["pub"] = publish
        if ask_peers:
            payload["lg"] = 1
    if batch.counter_sets:
        # The views go in their sets: the script counts each set once (flush.lua).
        payload["views"], payload["vt"], payload["ar"] = [], 0, []
        payload["cs"] = [
            [
                counted.token,
                [[page, n] for page, n in counted.views.items()],
                counted.total_views,
                [[*key, n] for key, n in counted.arrivals.items()],
            ]
            for counted in batch.counter_sets
        ]
    else:
        payload["views"] = [[page, n] for page, n in batch.views.items()]
        payload["vt"] = batch.total_views
        payload["ar"] = [[*key, n] for key, n in batch.arrivals.items()]
    return keys, [prefix, json.dumps(payload, ensure_ascii=False, separators=(",", ":"))]
