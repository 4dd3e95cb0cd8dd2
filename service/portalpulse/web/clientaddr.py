"""Who a request comes from (CONTRACT §6): the one address per-address limits, the
sign-in limit and logs count a client under.

The socket's peer, unless that peer is one of `server.trusted_proxies`: then the
rightmost `X-Forwarded-For` entry that is not a trusted proxy. Entries left of it
were written by the client and are never read, so a client cannot choose the
address it is counted under. With no trusted proxies the header is ignored.
Addresses come out normalised by `ipaddress` (an IPv4-mapped IPv6 address as
IPv4), so no string a client sends can become a key of a per-address map.

Per-address limits count an IPv6 client by its /64 (`limit_key`): one home or
phone is handed a whole /64 and can pick any address in it, so a limit per
single IPv6 address would be one it can walk around. Logs keep the full address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from starlette.requests import HTTPConnection

from ..config import Network

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

UNKNOWN = "unknown"
"""The address of a peer that has none (a Unix socket)."""
MAX_HOPS = 32
"""Entries of X-Forwarded-For read from the right, at most: more proxies than this
in a row is no deployment, and the header's length is the client's to choose."""


def parse_address(text: str) -> Address | None:
    """An address as a peer or a proxy writes it ('203.0.113.7', '2001:db8::1',
    '[2001:db8::1]:443', '203.0.113.7:51000'); None for anything else."""
    text = text.strip()
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]  # IPv4 with a port
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: Address, proxies: Sequence[Network]) -> bool:
    return any(address.version == net.version and address in net for net in proxies)


def resolve(peer: str | None, forwarded: Iterable[str], proxies: Sequence[Network]) -> str:
    """The client's address from the socket's `peer` and the `X-Forwarded-For`
    header values (in the order received), trusting only `proxies`."""
    address = parse_address(peer) if peer else None
    if address is None:
        return UNKNOWN
    if not proxies or not _trusted(address, proxies):
        return str(address)
    entries = ",".join(forwarded).rsplit(",", MAX_HOPS)
    for entry in reversed(entries):
        if not entry.strip():
            continue
        hop = parse_address(entry)
        if hop is None:
            # A trusted proxy passed on something that is no address: the client
            # is counted under that proxy, never under a made-up key.
            break
        address = hop
        if not _trusted(hop, proxies):
            break
    return str(address)


IPV6_LIMIT_PREFIX = 64
"""The IPv6 network a per-address limit counts as one client."""


def limit_key(address: str) -> str:
    """The key per-address limits count `address` (from `resolve`) under: an IPv4
    address as it is, an IPv6 address as its /64 ('2001:db8:1:2::/64')."""
    if ":" not in address:
        return address
    network = ipaddress.IPv6Network((address, IPV6_LIMIT_PREFIX), strict=False)
    return str(network)


def client_address(conn: HTTPConnection) -> str:
    """The client's address of a request or WebSocket handshake of this app."""
    proxies = conn.app.state.pulse.settings.server.trusted_proxies
    peer = conn.client.host if conn.client else None
    if not proxies:
        return resolve(peer, (), ())
    return resolve(peer, conn.headers.getlist("x-forwarded-for"), proxies)


def from_trusted_proxy(conn: HTTPConnection) -> bool:
    """Whether the socket's peer is one of `server.trusted_proxies`: only then may
    forwarded headers (X-Forwarded-For, X-Forwarded-Proto) be read."""
    proxies = conn.app.state.pulse.settings.server.trusted_proxies
    peer = parse_address(conn.client.host) if conn.client else None
    return bool(proxies) and peer is not None and _trusted(peer, proxies)
