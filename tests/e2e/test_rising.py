"""Rising articles end to end: two instances on one Redis, readers of an article
jumping to 7 from 1; the dashboard marks it within a push, and a real HTTP
receiver on loopback hears the webhook once; a dead webhook is logged and counted."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from portalpulse.dashboard.tokens import token_hash
from support.client import Reader, page
from support.processes import FAST_TIMING, free_port
from support.waiting import until

TOKEN = "rising-editor-token-for-tests-000000000000"
NAME = "Cổng thông tin điện tử thị xã Mỹ Hào"
WINDOW = 10  # seconds: the rising window, short for the test (warm-up a third of it)


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A tiny webhook receiver on 127.0.0.1: the bodies it was posted."""
    posted: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            assert self.headers.get("content-type") == "application/json"
            posted.append(json.loads(self.rfile.read(length)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks/newsroom", posted
    finally:
        server.shutdown()
        server.server_close()


def config(webhook: str, dead: str) -> str:
    return (
        FAST_TIMING.replace("[server]", f"[server]\nrising_window = {WINDOW}")
        + f"""
[dashboard]
session_secret = "rising-test-secret-0123456789abcd"

[sites.myhao]
name = "{NAME}"
origins = ["*"]
dashboard_tokens = ["{token_hash(TOKEN)}"]
rising_webhook = "{webhook}"

[sites.quiet]
origins = ["*"]
rising_webhook = "{dead}"
"""
    )


def failed_posts(exposition: str) -> float:
    """portalpulse_rising_webhooks_total{result="failed"} of one instance (0 when none)."""
    name = 'portalpulse_rising_webhooks_total{result="failed"} '
    return sum(
        float(line[len(name) :]) for line in exposition.splitlines() if line.startswith(name)
    )


async def dashboard_frames(base: str, port: int, frames: list[dict[str, Any]]) -> None:
    async with httpx.AsyncClient(base_url=base) as http:
        signed = await http.post("/dashboard/login", data={"site": "myhao", "token": TOKEN})
        assert signed.status_code == 303
        cookie = "; ".join(f"{k}={v}" for k, v in http.cookies.items())
    async with connect(
        f"ws://127.0.0.1:{port}/dashboard/ws?site=myhao",
        additional_headers={"Cookie": cookie},
        origin=base,  # type: ignore[arg-type]
    ) as ws:
        async for raw in ws:
            frames.append({"at": time.monotonic(), **json.loads(raw)})


async def test_a_rising_article_is_marked_and_posted_once(
    redis, make_service, receiver: tuple[str, list[dict[str, Any]]]
) -> None:
    webhook, posted = receiver
    dead = f"http://127.0.0.1:{free_port()}/nobody-listens"
    body = config(webhook, dead)
    first = make_service(body, redis_url=redis.url)
    second = make_service(body, redis_url=redis.url)
    frames: list[dict[str, Any]] = []
    watching = asyncio.create_task(dashboard_frames(first.base, first.port, frames))
    title = f"Hội nghị trực tuyến - {NAME}"
    readers = [
        await Reader.open(first.ws_url, site="myhao", pages=[page("/a.html", title)]),
        await Reader.open(second.ws_url, site="myhao", pages=[page("/b.html")]),
        await Reader.open(first.ws_url, site="quiet", pages=[page("/q.html")]),
        await Reader.open(second.ws_url, site="quiet", pages=[page("/r.html")]),
    ]
    # Time passes on purpose: the tracker marks nothing before its warm-up (a third of
    # the window) is over on both instances, and nothing is marked meanwhile.
    await asyncio.sleep(WINDOW / 3 + 1.5)
    assert not any(p.get("rising") for f in frames for p in f.get("pages", []))
    jumped = time.monotonic()
    for i in range(6):
        service = (first, second)[i % 2]
        readers.append(
            await Reader.open(service.ws_url, site="myhao", pages=[page("/a.html", title)])
        )
        readers.append(await Reader.open(service.ws_url, site="quiet", pages=[page("/q.html")]))

    def rising_frame() -> dict[str, Any] | None:
        return next(
            (f for f in frames if any(p["path"] == "/a.html" and p["rising"] for p in f["pages"])),
            None,
        )

    marked = await until(rising_frame, 5, "the dashboard marks /a.html rising", every=0.1)
    entry = next(p for p in marked["pages"] if p["path"] == "/a.html")
    assert entry["readers"] >= 5 and entry["title"] == "Hội nghị trực tuyến"
    assert not any(p["rising"] for p in marked["pages"] if p["path"] != "/a.html")
    # Within one push of the readers being counted (push_interval 0.5 s, + 1 s to count).
    assert marked["at"] - jumped < 0.5 + 1 + 1.5

    await asyncio.sleep(3)  # time passes on purpose: a second post would come meanwhile
    assert [p["path"] for p in posted] == ["/a.html"], posted  # once, from one instance
    (post,) = posted
    assert post["site"] == "myhao" and post["title"] == "Hội nghị trực tuyến"
    assert post["readers"] >= 5 and 0 < post["average"] <= post["readers"] / 3
    assert abs(post["time"] - marked["ts"]) < 5

    failed = sum(failed_posts(s.get("/metrics").text) for s in (first, second))
    assert failed >= 1, "the dead webhook's failure is counted"
    logs = first.logs() + second.logs()
    assert "rising webhook of quiet failed" in logs and '"level": "warning"' in logs
    watching.cancel()
    for reader in readers:
        await reader.close()
