"""Titles lose the portal's own name at the end, once, where they are cleaned."""

from __future__ import annotations

import pytest

from portalpulse.config import ConfigError, parse
from portalpulse.protocol import clean_title, parse_hello

MYHAO = "Cổng thông tin điện tử thị xã Mỹ Hào"


def site(**extra: object):  # type: ignore[no-untyped-def]
    raw = {"sites": {"myhao": {"name": MYHAO, "origins": ["*"], **extra}}}
    return parse(raw, env={}).sites["myhao"]


def test_the_default_suffixes_come_from_the_site_name() -> None:
    suffixes = site().title_suffixes
    for separator in (" - ", " | ", " \u2013 "):  # en dash last
        title = f"Hội nghị trực tuyến triển khai Kế hoạch{separator}{MYHAO}"
        assert clean_title(title, suffixes) == "Hội nghị trực tuyến triển khai Kế hoạch"


def test_only_the_end_is_cut_and_a_bare_portal_name_is_kept() -> None:
    suffixes = site().title_suffixes
    assert clean_title(MYHAO, suffixes) == MYHAO
    assert clean_title(f"- {MYHAO}", suffixes) == f"- {MYHAO}"
    middle = f"Lịch tiếp dân - {MYHAO} - tháng 12"
    assert clean_title(middle, suffixes) == middle
    # Collapsed white space and control characters do not hide the suffix.
    assert clean_title(f"  Tin\tmới  -   {MYHAO}\x00 ", suffixes) == "Tin mới"


def test_configured_suffixes_replace_the_default() -> None:
    suffixes = site(title_suffixes=[" :: UBND thị xã"]).title_suffixes
    assert clean_title("Thông báo :: UBND thị xã", suffixes) == "Thông báo"
    assert clean_title(f"Thông báo - {MYHAO}", suffixes) == f"Thông báo - {MYHAO}"
    assert site(title_suffixes=[]).title_suffixes == ()


def test_the_hello_carries_the_clean_title() -> None:
    hello = parse_hello(
        {"visitor": "a" * 16, "pages": [{"path": "/a", "title": f"Tin A | {MYHAO}"}]}, site()
    )
    assert hello.pages[0].title == "Tin A"


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("x", "list of strings"),
        ([" "], "non-blank"),
        (["x" * 201], "at most 200"),
        ([f" - {i}" for i in range(21)], "at most 20"),
    ],
)
def test_bad_suffixes_stop_start_up_naming_the_key(value: object, words: str) -> None:
    with pytest.raises(ConfigError, match=f"sites.myhao.title_suffixes.*{words}"):
        site(title_suffixes=value)
