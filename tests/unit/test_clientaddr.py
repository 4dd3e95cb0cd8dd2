"""The client address (CONTRACT §6): the peer, unless it is a trusted proxy; then the
rightmost X-Forwarded-For entry that is not a trusted proxy."""

from __future__ import annotations

import ipaddress

import pytest

from portalpulse.config import ConfigError, parse
from portalpulse.web.clientaddr import limit_key, parse_address, resolve

PROXIES = (ipaddress.ip_network("10.0.0.5/32"), ipaddress.ip_network("10.1.0.0/16"))


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        # Untrusted peers: the header is never read.
        ("203.0.113.7", ["198.51.100.1"], "203.0.113.7"),
        ("127.0.0.1", ["198.51.100.1"], "127.0.0.1"),
        # A trusted proxy: the rightmost entry it did not add itself.
        ("10.0.0.5", ["198.51.100.1"], "198.51.100.1"),
        ("10.0.0.5", ["6.6.6.6, 198.51.100.1"], "198.51.100.1"),
        ("10.0.0.5", ["6.6.6.6", "198.51.100.1, 10.1.2.3"], "198.51.100.1"),
        ("10.1.9.9", ["2001:db8::1"], "2001:db8::1"),
        ("10.0.0.5", ["[2001:db8::1]:443"], "2001:db8::1"),
        ("10.0.0.5", ["198.51.100.1:51000"], "198.51.100.1"),
        ("10.0.0.5", ["::ffff:198.51.100.1"], "198.51.100.1"),
        # Nothing usable: the nearest trusted hop, never a made-up key.
        ("10.0.0.5", [], "10.0.0.5"),
        ("10.0.0.5", ["x" * 7000], "10.0.0.5"),
        ("10.0.0.5", ["198.51.100.1, not-an-address"], "10.0.0.5"),
        ("10.0.0.5", ["10.1.0.1, 10.1.0.2"], "10.1.0.1"),
        ("::ffff:10.0.0.5", ["198.51.100.1"], "198.51.100.1"),
        (None, ["198.51.100.1"], "unknown"),
    ],
)
def test_resolve(peer: str | None, forwarded: list[str], expected: str) -> None:
    assert resolve(peer, forwarded, PROXIES) == expected


def test_without_trusted_proxies_the_header_is_ignored() -> None:
    assert resolve("127.0.0.1", ["198.51.100.1"], ()) == "127.0.0.1"
    assert resolve("2001:DB8::0001", [], ()) == "2001:db8::1"  # normalised


def test_a_long_chain_of_trusted_hops_is_read_no_further_than_32() -> None:
    chain = ", ".join(["198.51.100.1"] + ["10.1.0.1"] * 40)
    assert resolve("10.0.0.5", [chain], PROXIES) == "10.1.0.1"


def test_parse_address_refuses_anything_but_an_address() -> None:
    for text in ("", "unknown", "1.2.3", "example.vn", "[::1", "1.2.3.4:80:90"):
        assert parse_address(text) is None, text


def test_trusted_proxies_config_is_checked_and_names_the_key() -> None:
    settings = parse({"server": {"trusted_proxies": ["10.0.0.5", "10.1.0.0/16", "::1"]}}, env={})
    assert [str(n) for n in settings.server.trusted_proxies] == [
        "10.0.0.5/32",
        "10.1.0.0/16",
        "::1/128",
    ]
    assert parse({}, env={}).server.trusted_proxies == ()
    for bad in (["10.1.0.5/16"], ["proxy.local"], "10.0.0.5", [5]):
        with pytest.raises(ConfigError) as refused:
            parse({"server": {"trusted_proxies": bad}}, env={})
        assert str(refused.value).startswith("server.trusted_proxies:"), refused.value


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
        ("::1", "::/64"),
        ("unknown", "unknown"),
    ],
)
def test_limits_count_an_ipv6_client_by_its_64(address: str, key: str) -> None:
    assert limit_key(address) == key
