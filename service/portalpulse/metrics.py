"""Prometheus metrics of one Portal Pulse process.

Labels never take values from client input: `site` comes from the
configuration, `transport`, `reason`, `code` and `op` from fixed sets.
"""

from __future__ import annotations

import os

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

# Fan-out and store latencies are sub-second in health; the long tail matters.
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_FLUSH_SIZE_BUCKETS = (0, 1, 5, 10, 50, 100, 500, 1000, 5000, 10000, 50000)

MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
"""`--workers N`: each worker writes its values to files the /metrics of any worker sums."""

REGISTRY = CollectorRegistry(auto_describe=True)
# process_cpu_seconds_total, process_resident_memory_bytes, process_open_fds,
# process_max_fds, python_gc_*: what an operator reads first.
for _collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
    REGISTRY.register(_collector)

connections = Gauge(
    "portalpulse_connections",
    "Open client connections of this process (HTTP: visitors kept by beats).",
    ["transport"],
    registry=REGISTRY,
    multiprocess_mode="livesum",
)
online_visitors = Gauge(
    "portalpulse_online_visitors",
    "Online visitors of a site, as in its last snapshot read by this process.",
    ["site"],
    registry=REGISTRY,
    multiprocess_mode="livemax",
)
beats = Counter(
    "portalpulse_beats_total",
    "Client messages that reported presence (hello, beat, bye, HTTP beats).",
    ["transport"],
    registry=REGISTRY,
)
ws_beats = beats.labels("ws")
"""The WebSocket child of `beats`, looked up once: one is counted per message."""

messages_rejected = Counter(
    "portalpulse_messages_rejected_total",
    "Client input refused, by reason.",
    ["reason"],
    registry=REGISTRY,
)
push_seconds = Histogram(
    "portalpulse_push_seconds",
    "One snapshot's fan-out to this process's connections of a site.",
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
store_seconds = Histogram(
    "portalpulse_store_seconds",
    "Store calls, by operation.",
    ["op"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
store_errors = Counter(
    "portalpulse_store_errors_total",
    "Store calls that failed, by operation.",
    ["op"],
    registry=REGISTRY,
)
tracked_addresses = Gauge(
    "portalpulse_tracked_addresses",
    "Client addresses this process keeps state for, by map "
    "(http_beats, ws_connections, signin_failures); each map has a hard cap.",
    ["map"],
    registry=REGISTRY,
    multiprocess_mode="livemax",
)
fanout_info = Gauge(
    "portalpulse_fanout_info",
    "1 for the way snapshots reach sockets in this process, chosen at start-up: "
    'impl="direct" (framed once, written to each socket) or "asgi".',
    ["impl"],
    registry=REGISTRY,
    multiprocess_mode="livemax",
)
store_up = Gauge(
    "portalpulse_store_up",
    "1 when the last store call succeeded, 0 when the store is unreachable.",
    registry=REGISTRY,
    multiprocess_mode="livemin",
)
rising_webhooks = Counter(
    "portalpulse_rising_webhooks_total",
    "Rising-article webhook posts of this process: sent, failed (an error or a timeout; "
    "logged at warning), dropped (too many in flight).",
    ["result"],
    registry=REGISTRY,
)
store_reconnects = Counter(
    "portalpulse_store_reconnects_total",
    "Times the store came back after being unreachable.",
    registry=REGISTRY,
)
sites_parked = Gauge(
    "portalpulse_sites_parked",
    "Quiet sites the tick skips now: nothing new here, and the store vouches that "
    "their snapshot holds (up to 5 s, or until another instance changes them).",
    registry=REGISTRY,
    multiprocess_mode="livesum",
)
store_flush_ops = Histogram(
    "portalpulse_store_flush_ops",
    "Presence operations sent to the store in one flush (all sites of one tick).",
    buckets=_FLUSH_SIZE_BUCKETS,
    registry=REGISTRY,
)
connections_opened = Counter(
    "portalpulse_connections_opened_total",
    "Client connections accepted.",
    ["transport"],
    registry=REGISTRY,
)
connections_closed = Counter(
    "portalpulse_connections_closed_total",
    "WebSocket connections closed, by close code (1000, 1001, 1006, 1009, 1013, 4400, ...).",
    ["code"],
    registry=REGISTRY,
)
handshakes_refused = Counter(
    "portalpulse_handshakes_refused_total",
    "WebSocket handshakes refused, by HTTP status.",
    ["status"],
    registry=REGISTRY,
)
snapshots_sent = Counter(
    "portalpulse_snapshots_sent_total",
    "Snapshot frames written to client connections.",
    registry=REGISTRY,
)
snapshots_conflated = Counter(
    "portalpulse_snapshots_conflated_total",
    "Snapshots dropped for a slow connection because a newer one replaced them.",
    registry=REGISTRY,
)
event_loop_lag = Histogram(
    "portalpulse_event_loop_lag_seconds",
    "How late a timer that should fire every 0.5 s actually fired.",
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
tick_seconds = Histogram(
    "portalpulse_tick_seconds",
    "One tick: flush every site's beats to the store, read snapshots back, fan out.",
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)


def exposition() -> bytes:
    """The text for /metrics: this process's, or every worker's with `--workers N`."""
    if MULTIPROCESS:
        from prometheus_client import multiprocess

        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
        return generate_latest(merged)
    return generate_latest(REGISTRY)
