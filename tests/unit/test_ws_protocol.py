"""The WebSocket protocol's per-connection state (web/uvicorn_ws.py), on a real
socket in this process: what a held connection keeps after its handshake, and
the light stand-ins for uvicorn's asyncio.Queue and Event."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.websockets import WebSocket
from uvicorn.config import Config
from uvicorn.server import ServerState
from websockets.asyncio.client import connect

from portalpulse.web.uvicorn_ws import Inbox, PulseWebSocketProtocol, Writable
from portalpulse.web.websocket import forget_headers


async def echo(scope: Any, receive: Any, send: Any) -> None:
    """Accepts, then sends back each text message until the client leaves."""
    assert (await receive())["type"] == "websocket.connect"
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        await send({"type": "websocket.send", "text": message["text"]})


@pytest.fixture
async def served() -> AsyncIterator[tuple[int, list[PulseWebSocketProtocol]]]:
    """The echo app on the service's protocol: its port, and every protocol made."""
    config = Config(app=echo, ws=PulseWebSocketProtocol, proxy_headers=False, log_level="warning")
    config.load()
    state = ServerState()
    made: list[PulseWebSocketProtocol] = []

    def factory() -> PulseWebSocketProtocol:
        protocol = PulseWebSocketProtocol(config, state, {})
        made.append(protocol)
        return protocol

    server = await asyncio.get_running_loop().create_server(factory, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], made
    finally:
        server.close()
        for protocol in made:
            protocol.transport.abort()
        await server.wait_closed()


async def test_a_held_connection_keeps_no_handshake_headers(
    served: tuple[int, list[PulseWebSocketProtocol]],
) -> None:
    port, made = served
    big = {"X-Padding": "x" * 2000, "Cookie": "session=" + "y" * 500}
    async with connect(f"ws://127.0.0.1:{port}/ws", additional_headers=big) as client:
        await client.send("hello")
        assert await client.recv() == "hello"
        (protocol,) = made
        assert list(protocol.request.headers.raw_items()) == []
        assert list(protocol.response.headers.raw_items()) == []
        assert vars(protocol) == {}  # uvicorn's attributes all in the subclass's slots
        # The connection works on as before.
        await client.send("again")
        assert await client.recv() == "again"


async def test_messages_reach_the_app_in_order_through_pauses(
    served: tuple[int, list[PulseWebSocketProtocol]],
) -> None:
    port, _ = served
    async with connect(f"ws://127.0.0.1:{port}/ws") as client:
        sent = [f"m{n}" for n in range(50)]  # more than QUEUED_BEFORE_PAUSE at once
        for text in sent:
            await client.send(text)
        assert [await client.recv() for _ in sent] == sent


async def test_the_inbox_hands_messages_over_in_order_and_wakes_its_reader() -> None:
    inbox = Inbox()
    assert inbox.empty() and inbox.qsize() == 0
    arrival = inbox.arrival()
    assert inbox.arrival() is arrival  # one reader, one wait
    inbox.put_nowait({"type": "websocket.connect"})
    inbox.put_nowait({"type": "websocket.receive", "text": "a"})
    await asyncio.wait_for(arrival, 1)
    assert inbox.qsize() == 2
    assert inbox.pop() == {"type": "websocket.connect"}
    assert inbox.pop() == {"type": "websocket.receive", "text": "a"}
    assert inbox.empty()
    waiting = inbox.arrival()
    waiting.cancel()  # a reader cancelled (the hello timeout): the next one waits anew
    later = inbox.arrival()
    assert later is not waiting and not later.done()


async def test_writable_releases_its_waiters_when_set() -> None:
    writable = Writable()
    assert writable.is_set()
    await asyncio.wait_for(writable.wait(), 1)  # set: no wait
    writable.clear()
    first = asyncio.ensure_future(writable.wait())
    cancelled = asyncio.ensure_future(writable.wait())
    await asyncio.sleep(0)
    cancelled.cancel()
    await asyncio.sleep(0)
    assert not first.done()
    writable.set()
    await asyncio.wait_for(first, 1)
    assert cancelled.cancelled()


def test_forget_headers_empties_the_scope_and_the_connection_headers() -> None:
    scope = {
        "type": "websocket",
        "path": "/ws",
        "query_string": b"site=demo",
        "headers": [(b"origin", b"https://example.com"), (b"cookie", b"a=1")],
    }

    async def nothing() -> Any:
        return None

    ws = WebSocket(scope, nothing, nothing)  # type: ignore[arg-type]
    assert ws.headers.get("origin") == "https://example.com"  # read, and cached
    forget_headers(ws)
    assert ws.scope["headers"] == [] and list(ws.headers.items()) == []
