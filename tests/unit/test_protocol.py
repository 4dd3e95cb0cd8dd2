"""protocol.py: what client messages mean and the frames the server sends, in-process."""

from __future__ import annotations

import json

import pytest

from portalpulse.config import SiteSettings
from portalpulse.domain import DayCounts, SiteSnapshot, TrendingPage
from portalpulse.protocol import (
    Beat,
    Bye,
    CloseCode,
    Hello,
    ProtocolError,
    normalise_path,
    parse_client_frame,
    snapshot_frame,
    stats_payload,
    welcome_frame,
)

SITE = SiteSettings(id="myhao", name="Mỹ Hào", origins=("*",), keep_query=("ItemID",))
VISITOR = "k3J9xQ2mZp7Lw0aB"


def frame(**fields: object) -> str:
    return json.dumps(fields)


def test_a_hello_is_parsed_with_clean_titles_and_normalised_pages() -> None:
    hello = parse_client_frame(
        frame(
            type="hello",
            visitor=VISITOR,
            pages=[{"path": "/tin?ItemID=12&utm=x#top", "title": "  Hội\u0000 nghị\n "}],
            engaged=True,
            resume=True,
        ),
        SITE,
    )
    assert isinstance(hello, Hello)
    assert (hello.visitor, hello.engaged, hello.resume) == (VISITOR, True, True)
    assert [(p.path, p.title) for p in hello.pages] == [("/tin?ItemID=12", "Hội nghị")]


def test_beats_and_bye() -> None:
    assert parse_client_frame(frame(type="beat", engaged=False), SITE) == Beat(False, None)
    beat = parse_client_frame(frame(type="beat", engaged=True, pages=[{"path": "/b"}]), SITE)
    assert isinstance(beat, Beat) and [p.path for p in beat.pages or ()] == ["/b"]
    assert parse_client_frame(frame(type="bye"), SITE) == Bye()


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("not json", "bad_json"),
        ("[1]", "bad_message"),
        (frame(type="hello", visitor="short", pages=[]), "bad_visitor"),
        (frame(type="hello", visitor=VISITOR, pages=[{"path": "//evil"}]), "bad_page"),
        (frame(type="hello", visitor=VISITOR, pages=[{"path": "/a"}] * 21), "too_many_pages"),
        (frame(type="beat", engaged="yes"), "bad_message"),
        (frame(type="other"), "bad_message"),
    ],
)
def test_bad_messages_are_refused_with_the_contracts_codes(text: str, code: str) -> None:
    with pytest.raises(ProtocolError) as refused:
        parse_client_frame(text, SITE)
    assert refused.value.code == code


def test_paths_are_bounded() -> None:
    assert normalise_path("/" + "a" * 511) == "/" + "a" * 511
    with pytest.raises(ProtocolError):
        normalise_path("/" + "a" * 512)


def test_the_servers_frames() -> None:
    assert json.loads(welcome_frame("myhao", 15.0)) == {
        "type": "welcome",
        "site": "myhao",
        "beat_interval": 15,
    }
    snap = SiteSnapshot(
        "myhao", 3, (TrendingPage("/a", "A", 2, 5),), DayCounts(visits=9), 100, 1.23456
    )
    body = json.loads(
        snapshot_frame(snap, SiteSettings("myhao", "M", ("*",), total_visits_offset=7))
    )
    assert body["type"] == "snapshot" and body["online"] == 3 and body["total_visits"] == 107
    assert body["trending"] == [{"path": "/a", "title": "A", "readers": 2, "views": 5}]
    assert body["ts"] == 1.235
    assert stats_payload(snap, SITE)["yesterday"]["visits"] == 0


def test_close_codes_are_the_contracts() -> None:
    assert [int(c) for c in CloseCode] == [1000, 1001, 1006, 1009, 1013, 4400, 4401, 4408, 4429]
