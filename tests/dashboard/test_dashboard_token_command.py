"""`portalpulse token`: a new token printed once, and a config line that admits it."""

from __future__ import annotations

import argparse
import re
import tomllib

import pytest

from portalpulse import config
from portalpulse.dashboard import add_token_command, run_token_command
from portalpulse.dashboard.tokens import sites_for_token

BASE = {"sites": {"myhao": {"origins": ["https://myhao.example.vn"]}}}


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="portalpulse")
    add_token_command(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def printed(capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    out = capsys.readouterr().out
    match = re.search(r"^    (\S{43,})$", out, re.MULTILINE)
    assert match, out
    return match.group(1), out


def test_a_site_token_goes_under_its_site(capsys: pytest.CaptureFixture[str]) -> None:
    settings = config.parse(BASE, env={})
    assert run_token_command(parse(["token", "--site", "myhao"]), settings) == 0
    token, out = printed(capsys)
    line = next(x for x in out.splitlines() if x.startswith("dashboard_tokens = "))
    assert "[sites.myhao]" in out and token not in line
    digests = tomllib.loads(line)["dashboard_tokens"]
    raw = {"sites": {"myhao": {**BASE["sites"]["myhao"], "dashboard_tokens": digests}}}
    assert sites_for_token(token, config.parse(raw, env={}), "myhao") == {"myhao"}


def test_a_province_wide_token_goes_under_dashboard(capsys: pytest.CaptureFixture[str]) -> None:
    settings = config.parse(BASE, env={})
    assert run_token_command(parse(["token", "--all-sites"]), settings) == 0
    token, out = printed(capsys)
    line = next(x for x in out.splitlines() if x.startswith("tokens = "))
    assert "[dashboard]" in out
    raw = {**BASE, "dashboard": tomllib.loads(line)}
    assert sites_for_token(token, config.parse(raw, env={}), "myhao") == {"*"}


def test_two_runs_make_two_tokens(capsys: pytest.CaptureFixture[str]) -> None:
    settings = config.parse(BASE, env={})
    run_token_command(parse(["token", "--site", "myhao"]), settings)
    first, _ = printed(capsys)
    run_token_command(parse(["token", "--site", "myhao"]), settings)
    second, _ = printed(capsys)
    assert first != second


def test_an_unknown_site_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    settings = config.parse(BASE, env={})
    assert run_token_command(parse(["token", "--site", "nowhere"]), settings) == 2
    err = capsys.readouterr().err
    assert "nowhere" in err and "myhao" in err


def test_site_or_all_sites_is_required() -> None:
    with pytest.raises(SystemExit):
        parse(["token"])
    with pytest.raises(SystemExit):
        parse(["token", "--site", "myhao", "--all-sites"])
