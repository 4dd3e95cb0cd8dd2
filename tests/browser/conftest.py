"""Fixtures for the widget's browser tests: the real service, a portal, Chromium.

One service process (and one Chromium) serves the module; every test uses a site of its own,
so counts never leak from one test into another. Portal pages come from a small
HTTP server on another port of 127.0.0.1 (a secure context, so Web Locks and
BroadcastChannel behave as on an https portal), cross-origin to the service,
as in production.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from browser_support import Portal, service_config
from playwright.sync_api import Browser, BrowserContext, Playwright, sync_playwright

from support.chromium import CHROMIUM, CHROMIUM_ARGS
from support.processes import Service, free_port, write_config


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """One `portalpulse serve` for the browser suite; its log must hold no traceback."""
    work = tmp_path_factory.mktemp("service")
    service = Service(
        port=free_port(),
        config=write_config(work / "portalpulse.toml", service_config()),
        data_dir=work / "data",
    )
    service.start()
    try:
        yield service
    finally:
        service.stop()
    logs = service.logs()
    for fault in ("Traceback", "Exception in ASGI"):
        assert fault not in logs, f"service log has {fault!r}:\n{logs[-3000:]}"


@pytest.fixture(scope="module")
def portal(service: Service) -> Iterator[Portal]:
    site = Portal(url="", service_url=service.base)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            html = site.pages.get(self.path.split("?")[0])
            body = (html or "not found").encode("utf-8")
            self.send_response(200 if html else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    site.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield site
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    # Module scope: sync Playwright keeps an event loop running while it lives,
    # and the asyncio tests of other modules need the thread's loop free again.
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    try:
        yield chromium
    finally:
        chromium.close()


@pytest.fixture
def new_context(browser: Browser) -> Iterator[Callable[..., BrowserContext]]:
    """A fresh browser profile (one visitor) per call, closed after the test."""
    contexts: list[BrowserContext] = []

    def make(**options: object) -> BrowserContext:
        context = browser.new_context(**options)
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        context.close()
