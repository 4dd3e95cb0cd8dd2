"""What a reader's tab costs in wire bytes per minute, in Chromium, with and
without permessage-deflate (`server.ws_deflate`).

For each setting (alternating, `--pairs` times): one `portalpulse serve`
(embedded store, production timing but `leave_grace = 0.5`, as in
page_bytes.py), 30 seated readers filling the trending list with
real-length Vietnamese titles, and two Chromium tabs (separate profiles) on
our copy of a portal page: the article (footer: online, today, total) and
the demo page with its trending list in view. Each tab reaches the service
through a TCP proxy of its own that counts what the service sends on the
WebSocket after the upgrade: frame headers, payloads as sent (compressed or
not), pings. Readers come and go one a second (page_bytes.py's churn), as
returning or as new visitors. Playwright's count of the frames' decoded
payloads is printed beside it.

    python tests/bench/browser_bytes.py --seconds 60 --pairs 2
"""

from __future__ import annotations

import argparse
import asyncio
import re
import secrets
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, sync_playwright

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "tests" / "bench"))

from page_bytes import CONFIG, SITE, churn, drain, open_reader, page  # noqa: E402

from support.chromium import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from support.processes import Service, free_port, write_config  # noqa: E402

DEMO = resources.files("portalpulse.web").joinpath("static/demo.html").read_text("utf-8")
KINDS = {"article": False, "trending": True}  # page kind: does it show the list


@dataclass
class Counter:
    """Bytes the service sent on upgraded connections through one proxy."""

    wire: int = 0
    counting: bool = False


class CountingProxy:
    """127.0.0.1:port → the service; counts service-to-client bytes after a 101."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.port = free_port()
        self.counter = Counter()

    async def serve(self) -> None:
        server = await asyncio.start_server(self._client, "127.0.0.1", self.port)
        async with server:
            await server.serve_forever()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)

        async def upstream() -> None:
            while data := await reader.read(65536):
                up_writer.write(data)
                await up_writer.drain()
            up_writer.close()

        async def downstream() -> None:
            upgraded = False
            while data := await up_reader.read(65536):
                if not upgraded and data.startswith(b"HTTP/1.1 101"):
                    upgraded = True
                    data_after = data[data.index(b"\r\n\r\n") + 4 :]
                    self._count(len(data_after))
                elif upgraded:
                    self._count(len(data))
                writer.write(data)
                await writer.drain()
            writer.close()

        await asyncio.gather(upstream(), downstream(), return_exceptions=True)

    def _count(self, n: int) -> None:
        if self.counter.counting:
            self.counter.wire += n


def article_html(proxy_port: int, trending: bool) -> str:
    html = DEMO.replace(
        'src="/widget.js" data-site="demo"',
        f'src="http://127.0.0.1:{proxy_port}/widget.js" data-site="{SITE}"',
    )
    return html if trending else re.sub(r"<aside>.*?</aside>", "", html, flags=re.S)


def portal_server(pages: dict[str, str]) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = pages.get(self.path, "not found").encode()
            self.send_response(200 if self.path in pages else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def payload_counter(tab: Page, counter: Counter) -> list[int]:
    """The decoded payload bytes Chromium hands the page, while counting."""
    sizes: list[int] = []

    def frame(payload: str | bytes) -> None:
        if counter.counting:
            sizes.append(len(payload.encode() if isinstance(payload, str) else payload))

    tab.on("websocket", lambda ws: ws.on("framereceived", frame))
    return sizes


def run_once(deflate: bool, scenario: str, seconds: float, work: Path) -> dict[str, Any]:
    config = CONFIG.replace("[server]", f"[server]\nws_deflate = {str(deflate).lower()}", 1)
    name = f"{scenario}-{deflate}-{secrets.token_hex(3)}"
    service = Service(
        port=free_port(), config=write_config(work / f"{name}.toml", config), data_dir=work / name
    )
    service.start()
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    proxies = {kind: CountingProxy(service.port) for kind in KINDS}
    for proxy in proxies.values():
        asyncio.run_coroutine_threadsafe(proxy.serve(), loop)
    url = f"{service.ws_url}?site={SITE}"

    drains: list[asyncio.Task[None]] = []

    async def seat() -> list[Any]:
        seated = []
        for i in range(30):
            seated.append(await open_reader(url, secrets.token_urlsafe(16), [page(i % 12)]))
            drains.append(asyncio.ensure_future(drain(seated[-1])))
        return seated

    seated = asyncio.run_coroutine_threadsafe(seat(), loop).result(30)
    pages = {f"/{kind}.html": article_html(proxies[kind].port, on) for kind, on in KINDS.items()}
    portal = portal_server(pages)
    result: dict[str, Any] = {}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            tabs, payloads = {}, {}
            for kind in KINDS:
                tab = browser.new_context().new_page()
                payloads[kind] = payload_counter(tab, proxies[kind].counter)
                tab.goto(f"http://127.0.0.1:{portal.server_address[1]}/{kind}.html")
                tabs[kind] = tab
            tabs["article"].wait_for_selector('footer [data-portalpulse="online"]:not(:empty)')
            tabs["trending"].wait_for_timeout(3000)  # first snapshots are not a minute's cost
            for proxy in proxies.values():
                proxy.counter.counting = True
            done = asyncio.run_coroutine_threadsafe(churn(url, scenario, seconds), loop)
            started = time.monotonic()
            while not done.done():
                tabs["article"].wait_for_timeout(250)  # Playwright delivers frame events
            measured = time.monotonic() - started
            for proxy in proxies.values():
                proxy.counter.counting = False
            for kind in KINDS:
                per_min = 60 / measured
                result[kind] = {
                    "wire_kb_min": proxies[kind].counter.wire * per_min / 1000,
                    "payload_kb_min": sum(payloads[kind]) * per_min / 1000,
                    "frames_min": len(payloads[kind]) * per_min,
                }
            browser.close()
    finally:
        portal.shutdown()

        async def unseat() -> None:
            for ws in seated:
                await ws.close()

        asyncio.run_coroutine_threadsafe(unseat(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        service.stop()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--pairs", type=int, default=1)
    parser.add_argument("--scenario", choices=["returning", "new", "both"], default="both")
    args = parser.parse_args()
    scenarios = ["returning", "new"] if args.scenario == "both" else [args.scenario]
    print(
        f"{'scenario':10} {'deflate':8} {'page':9} {'frames/min':>10} "
        f"{'payload KB/min':>14} {'wire KB/min':>11}"
    )
    with tempfile.TemporaryDirectory() as work:
        for scenario in scenarios:
            for _ in range(args.pairs):
                for deflate in (False, True):
                    result = run_once(deflate, scenario, args.seconds, Path(work))
                    for kind, r in result.items():
                        print(
                            f"{scenario:10} {'on' if deflate else 'off':8} {kind:9} "
                            f"{r['frames_min']:10.1f} {r['payload_kb_min']:14.1f} "
                            f"{r['wire_kb_min']:11.1f}",
                            flush=True,
                        )


if __name__ == "__main__":
    main()
