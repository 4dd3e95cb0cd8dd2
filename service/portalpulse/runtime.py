"""One process's service, wired: settings, store, hub, and the live connections.

Below the web and dashboard endpoints, which reach it as `app.state.pulse` and
use only its methods: they never change its state themselves.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Coroutine
from typing import Any, Protocol

from . import config, metrics
from .clock import next_instant
from .fanout import Delivery, Subscriber, choose_delivery
from .hub import Hub
from .protocol import CloseCode
from .store import Store, make_store

log = logging.getLogger("portalpulse")

NOT_SERVED = "the app is not served by `portalpulse serve` (its uvicorn WebSocket protocol)"

LAG_PROBE_EVERY = 1.0
LAG_PROBE_AFTER = 0.1
"""The lag probe runs once a second, a tenth of a second after the tick (both on
the process's instants, `clock.py`) while snapshots change: a fan-out still
writing then keeps it waiting, so its blocks are seen. While nothing changed
for LAG_PROBE_QUIET seconds it runs at the tick's own instant instead, in the
same wake-up as the tick, uvicorn's housekeeping and the keepalive timer: an
idle process wakes once a second, not twice (each wake-up ≈ 0.2 ms of CPU on
a VM)."""
LAG_PROBE_QUIET = 2.0
DRAIN_WAIT = 1.0


class AddressLimiter(Protocol):
    """A bound on requests per client address (limiter.AddressRate)."""

    def allow(self, address: str) -> bool:
        """True when `address` may go on now (and count this request)."""


class ConnectionLimiter(Protocol):
    """A bound on open connections per client address (limiter.AddressCounts)."""

    def open(self, address: str) -> bool:
        """Count a new connection from `address`; False (not counted) when refused."""

    def close(self, address: str) -> None:
        """A connection that `open` counted has ended."""


class Pulse:
    """One process's service: its settings, store, hub and live connections."""

    def __init__(
        self,
        settings: config.Settings,
        http_beats: AddressLimiter,
        connections: ConnectionLimiter,
        store: Store | None = None,
        direct_unavailable: str | None = NOT_SERVED,
    ) -> None:
        """`direct_unavailable`: why the server cannot offer the direct-write path
        (None: it can; `portalpulse serve` says, see cli.py)."""
        self.settings = settings
        self.store = store or make_store(settings)
        self.hub = Hub(settings.server, dict(settings.sites), self.store)
        self.http_beats = http_beats
        self.closing = False
        # How frames reach sockets: chosen once, here, logged and exported.
        self.delivery: Delivery = choose_delivery(settings.server.fanout, direct_unavailable)
        metrics.fanout_info.labels(self.delivery.impl).set(1)
        self._connections: set[Subscriber] = set()
        self._per_address = connections
        self._lag_task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()

    # -- live connections ---------------------------------------------------------

    def admit(self, address: str, connection: Subscriber) -> bool:
        """Count a new live connection from `address`; False (and nothing counted)
        when the address already has `max_connections_per_ip`."""
        if not self._per_address.open(address):
            return False
        self._connections.add(connection)
        return True

    def release(self, address: str, connection: Subscriber) -> None:
        """A connection that `admit` counted has ended."""
        self._connections.discard(connection)
        self._per_address.close(address)

    def background(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run `coro` on its own, keeping a reference until it ends."""
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- lifecycle --------------------------------------------------------------

    async def start(self) -> None:
        dashboard = self.settings.dashboard
        uses_dashboard = dashboard.tokens or any(
            site.dashboard_tokens for site in self.settings.sites.values()
        )
        if uses_dashboard and dashboard.session_secret is None:
            log.warning(
                "[dashboard] session_secret is not set: editors' sessions will not survive "
                "a restart nor work across instances"
            )
        await self.store.open()
        await self.hub.check_store()
        self.hub.start()
        self._lag_task = asyncio.create_task(self._probe_lag())
        # Long-lived start-up objects need no more collection passes, and fewer,
        # larger young-generation passes keep GC pauses short with many connections.
        gc.collect()
        gc.freeze()
        gc.set_threshold(50_000, 50, 100)

    async def drain(self) -> None:
        """Shutdown: close every WebSocket with 1001 and tell the store who left."""
        if self.closing:
            return
        self.closing = True
        log.info("draining %d connections", len(self._connections))
        for conn in list(self._connections):
            conn.shut(CloseCode.SHUTDOWN, "server shutting down")
        self.hub.fanout.shut_all(CloseCode.SHUTDOWN, "server shutting down")
        await self.hub.drain()
        # Give close frames a moment to go out before the server drops sockets.
        deadline = asyncio.get_running_loop().time() + DRAIN_WAIT
        while self._connections and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        await self.drain()
        if self._lag_task is not None:
            self._lag_task.cancel()
        await self.hub.stop()
        await self.store.close()

    async def _probe_lag(self) -> None:
        # A fixed schedule: a probe re-armed after each firing would drift into
        # step with the tick and never see the loop blocked by a fan-out.
        loop = asyncio.get_running_loop()
        expected = next_instant(loop.time(), LAG_PROBE_EVERY, LAG_PROBE_AFTER)
        while True:
            await asyncio.sleep(max(0.0, expected - loop.time()))
            lag = loop.time() - expected
            metrics.event_loop_lag.observe(max(0.0, lag))
            # The next probe; those that a stall swallowed are skipped.
            quiet = loop.time() - self.hub.changed_at >= LAG_PROBE_QUIET
            after = 0.0 if quiet else LAG_PROBE_AFTER
            expected = next_instant(max(expected, loop.time()), LAG_PROBE_EVERY, after)
