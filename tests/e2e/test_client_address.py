"""The address a client is counted under (CONTRACT §6, issue 9): forged
X-Forwarded-For changes nothing unless the peer is a trusted proxy, and every
per-address map stays bounded whatever addresses arrive."""

from __future__ import annotations

import json
import re
import socket
import time

from websockets.asyncio.client import connect

from support.client import page, visitor_id
from support.processes import FAST_TIMING, Service, metric

BEATS = "/api/v1/sites/demo/beats"


def config(extra: str) -> str:
    return (
        FAST_TIMING.replace("[server]", "[server]\n" + extra) + '\n[sites.demo]\norigins = ["*"]\n'
    )


async def close_code_with_forwarded_for(service: Service, forwarded: str) -> int | None:
    """Open a widget socket claiming `forwarded`: None while it stays open, else its
    close code (the per-address cap closes with 1013 right after the handshake)."""
    ws = await connect(
        f"{service.ws_url}?site=demo",
        origin="http://localhost:1",  # type: ignore[arg-type]
        additional_headers={"X-Forwarded-For": forwarded},
        open_timeout=5,
    )
    hello = {"type": "hello", "visitor": visitor_id(), "pages": [page("/a")]}
    try:
        await ws.send(json.dumps(hello))
        await ws.recv(decode=True)  # welcome, or the close
    except Exception:
        return ws.close_code
    OPEN.append(ws)
    return None


OPEN: list = []  # type: ignore[type-arg]


def beat_codes(service: Service, forwarded: list[str]) -> list[int]:
    beat = {"visitor": visitor_id(), "pages": [page("/a")], "resume": True}
    return [
        service.post(BEATS, json=beat, headers={"X-Forwarded-For": f}).status_code
        for f in forwarded
    ]


async def test_forged_forwarded_for_changes_nothing_by_default(make_service) -> None:
    # With no trusted proxies, a client on loopback is not trusted either.
    service = make_service(config("max_connections_per_ip = 2\nmax_http_beats_per_ip = 2"))
    codes = [await close_code_with_forwarded_for(service, f"203.0.113.{i}") for i in range(3)]
    assert codes == [None, None, 1013], codes
    started = time.monotonic()
    beats = beat_codes(service, [f"198.51.100.{i}" for i in range(12)])
    elapsed = time.monotonic() - started
    assert 429 in beats and beats.count(200) <= 4 + 2 * elapsed + 1, beats
    for ws in OPEN:
        await ws.close()
    OPEN.clear()


async def test_a_trusted_proxys_forwarded_for_is_honoured(make_service) -> None:
    service = make_service(
        config(
            'trusted_proxies = ["127.0.0.1"]\nmax_connections_per_ip = 1\nmax_http_beats_per_ip = 1'
        )
    )
    first = await close_code_with_forwarded_for(service, "6.6.6.6, 203.0.113.1")
    other = await close_code_with_forwarded_for(service, "6.6.6.6, 203.0.113.2")
    again = await close_code_with_forwarded_for(service, "7.7.7.7, 203.0.113.1")
    assert (first, other, again) == (None, None, 1013)
    assert beat_codes(service, ["198.51.100.1"] * 6).count(429) >= 2
    assert beat_codes(service, ["198.51.100.2"]) == [200]
    for ws in OPEN:
        await ws.close()
    OPEN.clear()


async def test_an_ipv6_client_is_limited_by_its_64(make_service) -> None:
    # A home or phone picks any address in its /64: a new address is no new client.
    service = make_service(config('trusted_proxies = ["127.0.0.1"]\nmax_connections_per_ip = 1'))
    first = await close_code_with_forwarded_for(service, "2001:db8:1:2::1")
    same_64 = await close_code_with_forwarded_for(service, "2001:db8:1:2:abcd::99")
    other_64 = await close_code_with_forwarded_for(service, "2001:db8:1:3::1")
    assert (first, same_64, other_64) == (None, 1013, None)
    for ws in OPEN:
        await ws.close()
    OPEN.clear()


def pipelined_beats(service: Service, addresses: list[str]) -> list[int]:
    """One refused beat (a form, not JSON: 415) per address, pipelined on one connection."""
    statuses: list[int] = []
    with socket.create_connection(("127.0.0.1", service.port), timeout=10) as sock:
        for start in range(0, len(addresses), 200):
            chunk = addresses[start : start + 200]
            sock.sendall(
                b"".join(
                    (
                        f"POST {BEATS} HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: {a}\r\n"
                        "Content-Type: application/x-www-form-urlencoded\r\n"
                        "Content-Length: 0\r\n\r\n"
                    ).encode()
                    for a in chunk
                )
            )
            data = b""
            while data.count(b"HTTP/1.1 ") < len(chunk) or not data.endswith(b"}"):
                data += sock.recv(1 << 20)
            statuses += [int(code) for code in re.findall(rb"HTTP/1.1 (\d{3}) ", data)]
    return statuses


def test_per_address_maps_stay_bounded(make_service) -> None:
    # Behind a trusted proxy every forwarded address is a new key: 20,000 of them.
    service = make_service(config('trusted_proxies = ["127.0.0.1"]'))
    addresses = [f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}" for i in range(20_000)]
    statuses = pipelined_beats(service, addresses)
    assert statuses == [415] * 20_000
    text = service.get("/metrics").text
    tracked = metric(text, "portalpulse_tracked_addresses", 'map="http_beats"')
    assert tracked == 10_000, tracked  # the cap (docs/OPERATIONS.md), not 20,000
    stats = service.stats()
    assert stats["online"] == 0 and stats["today"]["views"] == 0
