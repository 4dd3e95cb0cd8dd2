"""config.py: settings are read and checked once, with errors that name the key."""

from __future__ import annotations

import pytest

from portalpulse.config import ConfigError, parse


def test_defaults_and_a_site() -> None:
    settings = parse(
        {"sites": {"myhao": {"name": "Mỹ Hào", "origins": ["https://myhao.vn"]}}}, env={}
    )
    server = settings.server
    assert (server.beat_interval, server.presence_ttl, server.push_interval) == (15, 45, 1)
    assert server.fanout == "direct"
    assert server.max_http_visitors == 100_000
    assert server.ws_deflate is True
    site = settings.sites["myhao"]
    assert site.allows_origin("https://myhao.vn") and not site.allows_origin("https://x.vn")
    assert not site.allows_origin(None)


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"server": {"presence_ttl": -1}}, "server.presence_ttl"),
        ({"server": {"fanout": "fast"}}, "server.fanout"),
        ({"server": {"max_http_visitors": 0}}, "server.max_http_visitors"),
        ({"server": {"ws_deflate": "yes"}}, "server.ws_deflate"),
        ({"sites": {"Bad Id": {"origins": ["*"]}}}, "Bad Id"),
    ],
)
def test_a_bad_value_names_its_key(raw: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as bad:
        parse(raw, env={})
    assert key in str(bad.value)


def test_the_asgi_fanout_can_be_chosen() -> None:
    assert parse({"server": {"fanout": "asgi"}}, env={}).server.fanout == "asgi"
