"""Stores: where presence meets and counters are kept. Chosen in one place."""

from __future__ import annotations

from ..config import Settings
from .base import SiteBatch, SiteSnapshot, Store, StoreUnavailable
from .memory import MemoryStore
from .redis import RedisStore

__all__ = ["SiteBatch", "SiteSnapshot", "Store", "StoreUnavailable", "make_store"]


def make_store(settings: Settings) -> Store:
    """The Redis store when a URL is configured, else the embedded store."""
    if settings.store_url:
        return RedisStore(settings.store_url, settings.server.clock_offset)
    return MemoryStore(settings.data_dir, settings.server.clock_offset)
