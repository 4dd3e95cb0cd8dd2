"""`portalpulse serve`: run the service (CONTRACT §7)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn

from . import __version__, config
from .clock import next_instant
from .dashboard import add_token_command, run_token_command
from .logs import setup_logging
from .web.slowclients import timed_h11

log = logging.getLogger("portalpulse")


HOUSEKEEPING_EVERY = 1.0
"""Seconds between uvicorn's housekeeping runs (uvicorn's own: 0.1)."""


class PulseServer(uvicorn.Server):
    """uvicorn, but on shutdown our WebSockets close with 1001 (uvicorn's own
    shutdown would send 1012) and the store hears who left, before sockets drop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """SIGINT and SIGTERM start a graceful stop, as in uvicorn; unlike uvicorn,
        which re-raises the signal after it, a drained stop is a clean exit
        (status 0) for process supervisors."""
        if threading.current_thread() is not threading.main_thread():
            yield  # signals can only be handled in the main thread
            return
        handled = (signal.SIGINT, signal.SIGTERM)
        original = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)

    _wake: asyncio.Event | None = None
    _loop: asyncio.AbstractEventLoop | None = None

    async def main_loop(self) -> None:
        """uvicorn's housekeeping (the Date header, whether to stop) once a second
        instead of ten times: each wake-up of an idle process costs CPU. A signal
        to stop wakes it at once (`handle_exit`)."""
        self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
        counter = 0  # uvicorn's on_tick updates the Date header when it is a multiple of 10
        while not await self.on_tick(counter):
            wait = next_instant(self._loop.time(), HOUSEKEEPING_EVERY) - self._loop.time()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)
            counter = (counter + 10) % 864000

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        if self._loop is not None and self._wake is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        app = self.config.loaded_app
        pulse = _find_pulse(app)
        if pulse is not None:
            await pulse.drain()
        await super().shutdown(sockets)


def _find_pulse(app: Any) -> Any:
    # uvicorn wraps the app in middleware of its own; walk down to Starlette.
    for _ in range(10):
        state = getattr(app, "state", None)
        if state is not None and hasattr(state, "pulse"):
            return state.pulse
        app = getattr(app, "app", None)
        if app is None:
            return None
    return None


def ws_protocol() -> tuple[type[asyncio.Protocol] | str, str | None]:
    """uvicorn's WebSocket protocol for the service, and why it cannot offer the
    fan-out's direct-write path (None: it can)."""
    try:
        from .web import uvicorn_ws
    except ImportError as exc:
        return "websockets-sansio", f"uvicorn's websockets-sansio protocol cannot load: {exc}"
    reason = uvicorn_ws.unsupported()
    if reason is not None:
        return "websockets-sansio", reason
    return uvicorn_ws.PulseWebSocketProtocol, None


def uvicorn_config(
    settings: config.Settings,
    app: Any,
    ws: type[asyncio.Protocol] | str = "websockets-sansio",
    **extra: Any,
) -> uvicorn.Config:
    server = settings.server
    return uvicorn.Config(
        app,
        host=server.host,
        port=server.port,
        http=timed_h11(server.header_timeout, server.body_timeout),
        ws=ws,
        ws_max_size=server.max_frame_bytes,
        ws_ping_interval=server.beat_interval,
        ws_ping_timeout=server.beat_interval,
        # Only our protocol compresses without context takeover, each frame once
        # for every connection (web/uvicorn_ws.py); uvicorn's own keeps a
        # compressor per connection.
        ws_per_message_deflate=server.ws_deflate and not isinstance(ws, str),
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=5,
        # The service reads X-Forwarded-For itself, from trusted proxies only
        # (web/clientaddr.py); uvicorn's own rewriting would trust loopback.
        proxy_headers=False,
        server_header=False,
        lifespan="on",
        **extra,
    )


def run_server(settings: config.Settings, sock: socket.socket | None = None) -> None:
    """One instance in this process (on `sock` when a supervisor bound it)."""
    from .app import create_app

    setup_logging(settings.server.log_level)
    ws, direct_unavailable = ws_protocol()
    app = create_app(settings, direct_unavailable=direct_unavailable)
    server = PulseServer(uvicorn_config(settings, app, ws))
    if sock is None:
        store = "redis" if settings.store_url else f"embedded, counters in {settings.data_dir}"
        log.info(
            "starting on http://%s:%d (sites: %s; store: %s)%s",
            settings.server.host,
            settings.server.port,
            ", ".join(sorted(settings.sites)),
            store,
            " — demo portal page at /" if settings.demo else "",
        )
    server.run(sockets=[sock] if sock is not None else None)


def serve(settings: config.Settings, workers: int) -> int:
    if workers <= 1:
        run_server(settings)
        return 0
    # Several processes share one listening socket; each is a full instance on Redis.
    setup_logging(settings.server.log_level)
    family = socket.AF_INET6 if ":" in settings.server.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((settings.server.host, settings.server.port))
    sock.listen(2048)
    sock.set_inheritable(True)
    # Each worker writes its metrics to files here; /metrics on any worker sums them.
    metrics_dir = tempfile.mkdtemp(prefix="portalpulse-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=run_server, args=(settings, sock), daemon=False) for _ in range(workers)
    ]
    for proc in procs:
        proc.start()
    log.info(
        "serving on %s:%d with %d workers", settings.server.host, settings.server.port, workers
    )

    def forward(signum: int, frame: Any) -> None:
        for proc in procs:
            if proc.pid is not None and proc.is_alive():
                os.kill(proc.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for proc in procs:
        proc.join()
    shutil.rmtree(metrics_dir, ignore_errors=True)
    return max((proc.exitcode or 0) for proc in procs)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="portalpulse", description="Real-time readership service."
    )
    parser.add_argument("--version", action="version", version=f"portalpulse {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("serve", help="run the service")
    run.add_argument(
        "--config", help="TOML file (default: env PORTALPULSE_CONFIG, else built-in demo)"
    )
    run.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    run.add_argument("--port", type=int, help="port (default 8000)")
    run.add_argument("--redis", help="Redis URL (redis://, rediss://); a Cluster node is detected")
    run.add_argument("--workers", type=int, default=1, help="processes (needs Redis when above 1)")
    run.add_argument("--data-dir", help="where the embedded store keeps its counters")
    add_token_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = config.load(args.config)
    except config.ConfigError as exc:
        print(f"portalpulse: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.command == "token":
        return run_token_command(args, settings)
    server = settings.server
    if args.host:
        server = replace(server, host=args.host)
    if args.port is not None:
        if not 0 < args.port < 65536:
            print("portalpulse: --port must be between 1 and 65535", file=sys.stderr)
            return 2
        server = replace(server, port=args.port)
    changes: dict[str, Any] = {"server": server}
    if args.redis:
        if not args.redis.startswith(("redis://", "rediss://", "unix://")):
            print(
                "portalpulse: --redis must be a redis://, rediss:// or unix:// URL", file=sys.stderr
            )
            return 2
        changes["store_url"] = args.redis
    if args.data_dir:
        changes["data_dir"] = Path(args.data_dir)
    settings = settings.with_overrides(**changes)
    if args.workers < 1:
        print("portalpulse: --workers must be at least 1", file=sys.stderr)
        return 2
    if args.workers > 1 and not settings.store_url:
        print(
            "portalpulse: --workers above 1 needs Redis (--redis URL or [store] url): "
            "the embedded store lives in one process",
            file=sys.stderr,
        )
        return 2
    return serve(settings, args.workers)


if __name__ == "__main__":
    sys.exit(main())
