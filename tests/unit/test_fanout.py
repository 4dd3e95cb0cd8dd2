"""The fan-out in-process: which connections get which frame, and its one seam
(`Delivery`) chosen once at start-up."""

from __future__ import annotations

import json
import logging

import pytest

from portalpulse import metrics
from portalpulse.config import SiteSettings
from portalpulse.domain import DayCounts, SiteSnapshot, TrendingPage
from portalpulse.fanout import (
    ABORT_EXTENSION,
    DIRECT_WRITE_EXTENSION,
    AsgiDelivery,
    DirectDelivery,
    DirectWriter,
    Fanout,
    abort_of,
    choose_delivery,
)
from portalpulse.web.uvicorn_ws import unsupported

SITE = SiteSettings(id="myhao", name="Mỹ Hào", origins=("*",), total_visits_offset=100)


class Screen:
    """A reader without `want` (a v1 client) that keeps what it was offered."""

    want = 0

    def __init__(self) -> None:
        self.frames: list[str] = []
        self.shut_with: int | None = None

    def offer(self, frame: str) -> bool:
        self.frames.append(frame)
        return True

    def shut(self, code: int, reason: str = "") -> None:
        self.shut_with = code


def snapshot(online: int, ts: float = 1.0) -> SiteSnapshot:
    trending = (TrendingPage("/a", "A", online, 3),)
    return SiteSnapshot("myhao", online, trending, DayCounts(visits=5), 7, ts)


async def test_a_changed_snapshot_is_offered_once_to_every_reader_as_one_string() -> None:
    fanout = Fanout({"myhao": SITE}, push_interval=1.0)
    screens = [Screen() for _ in range(3)]
    for screen in screens:
        fanout.subscribe("myhao", screen)
    sent_before = metrics.REGISTRY.get_sample_value("portalpulse_snapshots_sent_total")
    await fanout.push("myhao", snapshot(2), now=10.0)
    sent = metrics.REGISTRY.get_sample_value("portalpulse_snapshots_sent_total")
    assert sent == (sent_before or 0) + 3, "every frame that went out is counted"
    frames = [screen.frames for screen in screens]
    assert frames[0] == frames[1] == frames[2] and len(frames[0]) == 1
    assert frames[0][0] is frames[1][0], "encoded once for every reader"
    body = json.loads(frames[0][0])
    assert (body["type"], body["online"], body["total_visits"]) == ("snapshot", 2, 107)


async def test_no_push_when_nothing_but_the_time_changed_nor_sooner_than_push_interval() -> None:
    fanout = Fanout({"myhao": SITE}, push_interval=1.0)
    screen = Screen()
    fanout.subscribe("myhao", screen)
    await fanout.push("myhao", snapshot(2, ts=1.0), now=10.0)
    await fanout.push("myhao", snapshot(2, ts=2.0), now=11.0)
    assert len(screen.frames) == 1, "only the time changed"
    await fanout.push("myhao", snapshot(3), now=10.5)
    assert len(screen.frames) == 1, "too soon after the last push"
    await fanout.push("myhao", snapshot(3), now=11.0)
    assert [json.loads(f)["online"] for f in screen.frames] == [2, 3]
    fanout.unsubscribe("myhao", screen)
    await fanout.push("myhao", snapshot(4), now=12.0)
    assert len(screen.frames) == 2


async def test_a_newcomer_gets_the_frame_of_the_latest_snapshot() -> None:
    fanout = Fanout({"myhao": SITE}, push_interval=1.0)
    assert fanout.current_frame("myhao", None) is None
    await fanout.push("myhao", snapshot(2), now=10.0)
    assert json.loads(fanout.current_frame("myhao", snapshot(2)) or "")["online"] == 2
    # A snapshot read since the last push (by an HTTP answer) is newer: its own frame.
    assert json.loads(fanout.current_frame("myhao", snapshot(5)) or "")["online"] == 5


def test_shutting_down_closes_every_dashboard_with_1001() -> None:
    fanout = Fanout({"myhao": SITE}, push_interval=1.0)
    editor, reader = Screen(), Screen()
    fanout.watch("myhao", editor)
    fanout.subscribe("myhao", reader)
    assert fanout.watched("myhao") and fanout.listened("myhao")
    fanout.shut_all(1001, "server shutting down")
    assert editor.shut_with == 1001
    fanout.unwatch("myhao", editor)
    assert not fanout.watched("myhao")


def test_the_configured_delivery_is_chosen_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "portalpulse.fanout")
    assert choose_delivery("direct", None).impl == "direct"
    assert choose_delivery("asgi", None).impl == "asgi"
    assert [r.levelno for r in caplog.records] == [logging.INFO, logging.INFO]
    assert "direct-write path" in caplog.records[0].getMessage()


def test_without_the_direct_path_the_asgi_one_is_used_with_a_loud_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    delivery = choose_delivery("direct", "uvicorn 0.34.0 is outside the tested range")
    assert delivery.impl == "asgi"
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert "CANNOT BE USED" in record.getMessage()
    assert "uvicorn 0.34.0" in record.getMessage()


def test_direct_writes_go_through_the_servers_extension_as_whole_frames() -> None:
    written: list[bytes] = []

    def write(frame: bytes) -> bool:
        written.append(frame)
        return len(written) < 2  # the second finds the socket full

    scope = {"extensions": {DIRECT_WRITE_EXTENSION: {"write": write}}}
    writer = DirectDelivery().direct_writer(scope)
    assert writer is not None
    assert writer.write("hi") is True
    assert writer.write("again") is False, "a full socket: the ASGI path takes it"
    assert written == [DirectWriter.wire("hi"), DirectWriter.wire("again")]
    assert written[0] == b"\x81\x02hi"


def test_without_the_extension_or_on_the_asgi_path_there_is_no_direct_writer() -> None:
    assert DirectDelivery().direct_writer({"extensions": {}}) is None
    assert DirectDelivery().direct_writer({}) is None
    scope = {"extensions": {DIRECT_WRITE_EXTENSION: {"write": lambda frame: True}}}
    assert AsgiDelivery().direct_writer(scope) is None


def test_abort_comes_from_the_servers_extension_only() -> None:
    aborted: list[bool] = []
    scope = {"extensions": {ABORT_EXTENSION: {"abort": lambda: aborted.append(True)}}}
    abort = abort_of(scope)
    assert abort is not None
    abort()
    assert aborted == [True]
    assert abort_of({"extensions": None}) is None


def test_the_direct_path_is_offered_only_on_the_tested_uvicorn_range() -> None:
    assert unsupported() is None, "the installed uvicorn is the one pyproject pins"
    assert unsupported("0.55.0") is None and unsupported("0.55.2") is None
    assert "outside the tested range" in (unsupported("0.35.0") or "")
    assert "outside the tested range" in (unsupported("1.0.0") or "")
    assert "unknown version" in (unsupported("dev") or "")
