"""Every pattern checks the whole string: `$` alone also matches before a final newline."""

from __future__ import annotations

import pytest

from portalpulse import config, protocol
from portalpulse.config import ConfigError


def test_a_visitor_id_with_a_trailing_newline_is_refused() -> None:
    site = config.DEMO_SITE
    with pytest.raises(protocol.ProtocolError) as refused:
        protocol.parse_hello({"visitor": "abcdefghijklmnopq\n", "pages": []}, site)
    assert refused.value.code == "bad_visitor"
    assert protocol.parse_hello({"visitor": "abcdefghijklmnopq"}, site).visitor


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"sites": {"demo\n": {"origins": ["*"]}}}, "sites.demo\n"),
        ({"sites": {"demo": {"origins": ["https://a.vn\n"]}}}, "sites.demo.origins"),
        ({"dashboard": {"tokens": ["a" * 64 + "\n"]}}, "dashboard.tokens"),
        (
            {"sites": {"demo": {"origins": ["*"], "dashboard_tokens": ["b" * 64 + "\n"]}}},
            "sites.demo.dashboard_tokens",
        ),
    ],
)
def test_config_values_with_a_trailing_newline_are_refused(raw: dict, key: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ConfigError) as refused:
        config.parse(raw, env={})
    assert str(refused.value).startswith(key)
