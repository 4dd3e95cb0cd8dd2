"""Property-based, against a real service on Redis: fuzzed WebSocket frames and HTTP
beat bodies get only the contract's answers (error codes, close codes, 4xx JSON), never
1006/1011 nor a 500, and the counts move only for the input that was accepted."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
from hypothesis import example, given
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from portalpulse.web.openapi import OPERATIONS
from support.fuzz_inputs import KNOWN_ATTACKS, beat_bodies, examples, frames, hellos
from support.fuzz_target import Fuzzed
from support.processes import Service

BEAT_ANSWERS = OPERATIONS["/api/v1/sites/{site}/beats"]["post"]["responses"]
BEAT_CODES = set(
    BEAT_ANSWERS["400"]["content"]["application/json"]["schema"]["allOf"][1]["properties"]["error"][
        "enum"
    ]
)
WS_CODES = BEAT_CODES | {"out_of_order", "rate", "hello_timeout"}
# CONTRACT §3: 1000 after a bye; 1009 too big; 4400 malformed; 4429 over the rate.
CLOSE_CODES = {1000, 1009, 4400, 4429}
ORIGIN = "http://localhost:8000"
MAX_FRAME_BYTES = 4096

# A frame is text, or sometimes binary (which the contract does not allow).
ws_frames = frames | st.binary(max_size=40)


def ws_session(service: Service, sent: list[str | bytes]) -> tuple[list[dict[str, Any]], int]:
    """Send the frames then a bye; the frames the service answered and its close code."""
    received: list[dict[str, Any]] = []
    with connect(f"{service.ws_url}?site=demo", origin=ORIGIN, open_timeout=5) as ws:  # type: ignore[arg-type]
        try:
            for frame in [*sent, json.dumps({"type": "bye"})]:
                ws.send(frame)
                if len(frame) > MAX_FRAME_BYTES:
                    # The server fails the connection (1009) at this frame's header: what a
                    # client sends after it races the server's close of the socket.
                    break
        except ConnectionClosed:
            pass
        try:
            while True:
                received.append(json.loads(ws.recv(timeout=5)))
        except ConnectionClosed:
            pass
        assert ws.protocol.close_rcvd is not None, "closed with no close frame (1006)"
        return received, ws.protocol.close_rcvd.code


def known_attacks(**as_example: Callable[[str], Any]) -> Callable[[Any], Any]:
    """Try each of KNOWN_ATTACKS first, passed as the test's arguments."""

    def apply(test: Any) -> Any:
        for attack in KNOWN_ATTACKS:
            test = example(**{name: make(attack) for name, make in as_example.items()})(test)
        return test

    return apply


@examples(80)
@known_attacks(sent=lambda attack: [attack])
@given(st.lists(ws_frames, min_size=1, max_size=5) | st.tuples(hellos, st.lists(ws_frames)))
def test_fuzzed_websocket_frames_get_contract_answers(fuzzed: Fuzzed, sent: Any) -> None:
    """Each example is one connection: its frames, then a bye."""
    if isinstance(sent, tuple):  # a hello (maybe valid) and what follows it
        hello, rest = sent
        sent = [json.dumps(hello), *rest]
    received, code = ws_session(fuzzed.service, sent)
    assert code in CLOSE_CODES, (code, received)
    kinds = [frame["type"] for frame in received]
    errors = [frame["code"] for frame in received if frame["type"] == "error"]
    assert set(errors) <= WS_CODES, errors
    assert set(kinds) <= {"welcome", "snapshot", "error"}, kinds
    if errors:
        # An error frame is followed by its close (4400, 4429); or by 1009 when a later
        # frame was over the limit: the service reads a few messages ahead of the app
        # (web/uvicorn_ws.py), so that frame can fail the connection first.
        sizes = [len(f.encode() if isinstance(f, str) else f) for f in sent]
        oversized = max(sizes) > MAX_FRAME_BYTES
        assert code in (4400, 4429) or (code == 1009 and oversized), (code, errors)
    if "welcome" in kinds:
        fuzzed.counted.add(json.loads(sent[0])["visitor"])


def test_websocket_counts_are_exactly_the_accepted_hellos(fuzzed: Fuzzed) -> None:
    fuzzed.check_counts()


@examples(150)
@known_attacks(body=str.encode, content_type=lambda _: "application/json")
@given(beat_bodies, st.sampled_from(["application/json", "text/plain;charset=UTF-8"]))
def test_fuzzed_beat_bodies_get_contract_answers(
    fuzzed: Fuzzed, body: bytes, content_type: str
) -> None:
    response = httpx.post(
        fuzzed.service.base + "/api/v1/sites/demo/beats",
        content=body,
        headers={"Content-Type": content_type, "Origin": ORIGIN},
        timeout=10,
    )
    assert response.status_code in (200, 400, 413), (response.status_code, response.text)
    answer = response.json()
    if response.status_code == 200:
        sent = json.loads(body)
        if sent.get("bye") is not True:
            fuzzed.counted.add(sent["visitor"])
        return
    assert answer["error"] in BEAT_CODES | {"too_big"}, answer
    assert answer["message"], answer


def test_beat_counts_are_exactly_the_accepted_beats(fuzzed: Fuzzed) -> None:
    fuzzed.check_counts()
