"""Contract §3a without sockets: `want` parsing, and what each connection is sent."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from portalpulse import protocol
from portalpulse.config import SiteSettings
from portalpulse.deltas import NEVER, ONLINE, TODAY, TOTAL, TRENDING, SiteFields, want_mask
from portalpulse.store.base import DayCounts, SiteSnapshot, TrendingPage

SITE = SiteSettings(id="myhao", name="Mỹ Hào", origins=("*",), total_visits_offset=1000)
HELLO = {"type": "hello", "visitor": "k3J9xQ2mZp7Lw0aB", "pages": [{"path": "/a.html"}]}
NUMBERS = want_mask(["online", "today", "total"])
FIRST = SiteSnapshot(
    site="myhao",
    online=1011,
    trending=(TrendingPage("/a.html", "Hội nghị trực tuyến", 37, 412),),
    today=DayCounts(8520, 20114, 6302, 1240, 1764220000.0),
    total_visits=12_345_678,
    ts=1764230400.1234,
)


def decode(frame: str | None) -> dict[str, object]:
    assert frame is not None
    data = json.loads(frame)
    assert isinstance(data, dict)
    return data


@pytest.mark.parametrize(
    "want",
    [["online"], ["trending", "online"], ["online", "today", "total", "trending"], ["total"] * 2],
)
def test_hello_want_names_any_subset(want: list[str]) -> None:
    hello = protocol.parse_client_frame(json.dumps({**HELLO, "want": want}), SITE)
    assert isinstance(hello, protocol.Hello)
    assert hello.want == frozenset(want)


def test_hello_without_want_is_a_v1_client() -> None:
    hello = protocol.parse_client_frame(json.dumps(HELLO), SITE)
    assert isinstance(hello, protocol.Hello) and hello.want is None


@pytest.mark.parametrize("want", [[], ["online", "views"], "online", None, [1], {"online": 1}])
def test_empty_or_unknown_want_is_malformed(want: object) -> None:
    with pytest.raises(protocol.ProtocolError) as refused:
        protocol.parse_client_frame(json.dumps({**HELLO, "want": want}), SITE)
    assert refused.value.code == "bad_message"


def test_first_frame_carries_every_wanted_field_and_nothing_else() -> None:
    fields = SiteFields("myhao")
    assert fields.frame_for(NUMBERS, NEVER) is None  # nothing recorded yet
    assert fields.record(FIRST, SITE) == ONLINE | TODAY | TOTAL | TRENDING
    first = decode(fields.frame_for(NUMBERS, NEVER))
    assert first == {
        "type": "snapshot",
        "site": "myhao",
        "online": 1011,
        "today": protocol.day_payload(FIRST.today),
        "total_visits": 12_346_678,
        "ts": 1764230400.123,
    }
    whole = decode(fields.frame_for(want_mask(protocol.WANTABLE), NEVER))
    assert whole == {"type": "snapshot", **protocol.snapshot_payload(FIRST, SITE)}


def test_later_frames_carry_only_wanted_fields_that_changed() -> None:
    fields = SiteFields("myhao")
    fields.record(FIRST, SITE)
    synced = fields.seq
    assert fields.record(replace(FIRST, ts=FIRST.ts + 1), SITE) == 0  # only the time moved
    assert fields.frame_for(NUMBERS, synced) is None

    busier = replace(FIRST, online=1012, ts=FIRST.ts + 2)
    assert fields.record(busier, SITE) == ONLINE
    frame = fields.frame_for(NUMBERS, synced)
    assert decode(frame) == {
        "type": "snapshot",
        "site": "myhao",
        "online": 1012,
        "ts": 1764230402.123,
    }
    assert frame is not None and len(frame.encode()) < 100
    assert fields.frame_for(want_mask(["trending"]), synced) is None

    # Trending moved while this connection missed a frame: it gets both changes at once.
    hot = (TrendingPage("/b.html", "Tin khác", 40, 500), *FIRST.trending)
    fields.record(replace(busier, trending=hot), SITE)
    caught_up = decode(fields.frame_for(ONLINE | TRENDING, synced))
    assert caught_up["online"] == 1012 and len(caught_up["trending"]) == 2  # type: ignore[arg-type]
    assert "today" not in caught_up
    assert fields.frame_for(ONLINE, fields.seq) is None


def test_each_distinct_frame_is_encoded_once() -> None:
    fields = SiteFields("myhao")
    fields.record(FIRST, SITE)
    synced = fields.seq
    fields.record(replace(FIRST, online=7), SITE)
    lookup = fields.grouped()
    frames = [lookup(NUMBERS, synced) for _ in range(3)] + [lookup(ONLINE, synced)]
    assert all(frame is frames[0] for frame in frames)  # online-only: one string for all
    assert lookup(NUMBERS, NEVER) is not frames[0]


async def test_a_blocked_reader_with_want_gets_every_change_it_missed_at_once() -> None:
    """Conflation keeps the site's fields, not a frame: no change is lost."""
    import asyncio

    from portalpulse.fanout import AsgiDelivery
    from portalpulse.web.sender import OneSlotSender

    class SlowSocket:
        """An ASGI WebSocket whose first send waits until the test lets it finish."""

        def __init__(self) -> None:
            self.scope: dict[str, object] = {}
            self.sent: list[str] = []
            self.gate = asyncio.get_running_loop().create_future()

        async def send(self, message: dict[str, str]) -> None:
            if not self.sent:
                self.sent.append(message["text"])
                await self.gate
            else:
                self.sent.append(message["text"])

    ws = SlowSocket()
    reader = OneSlotSender(ws, slow_after=60, delivery=AsgiDelivery())  # type: ignore[arg-type]
    reader.want = ONLINE | TRENDING
    fields = SiteFields("myhao")
    fields.record(FIRST, SITE)
    reader.offer_fields(fields, fields.frame_for)  # the first frame: its send blocks
    hot = (TrendingPage("/b.html", "Tin khác", 40, 500),)
    fields.record(replace(FIRST, trending=hot), SITE)
    reader.offer_fields(fields, fields.grouped())
    fields.record(replace(FIRST, trending=hot, online=2000), SITE)
    reader.offer_fields(fields, fields.grouped())
    assert len(ws.sent) == 1
    ws.gate.set_result(None)
    await asyncio.sleep(0.01)
    assert [fields_of(text) for text in ws.sent] == [{"online", "trending"}] * 2
    last = decode(ws.sent[1])
    assert last["online"] == 2000 and last["trending"][0]["path"] == "/b.html"  # type: ignore[index]


def fields_of(text: str) -> set[str]:
    return set(decode(text)) - {"type", "site", "ts"}
