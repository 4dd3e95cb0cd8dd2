"""Property-based: whatever a client sends, parsing either gives a message that is
safe to count and to store, or refuses it with a contract error code. Nothing else
(no other exception, no lone surrogate or control character let through)."""

from __future__ import annotations

import unicodedata
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from portalpulse import config, protocol, sources
from portalpulse.protocol import Beat, Bye, Hello, Page, ProtocolError
from portalpulse.web.openapi import OPERATIONS
from support.fuzz_inputs import beat_bodies, examples, frames, hostile_text, json_values, paths

SITE = config.parse(
    {
        "sites": {
            "demo": {
                "name": "Cổng thông tin Demo",
                "origins": ["https://demo.example.vn"],
                "keep_query": ["ItemID"],
                "exclude": ["/", "/tim-kiem*"],
            }
        }
    }
).sites["demo"]
HOSTS = sources.hosts_of(SITE.origins)

# The codes the HTTP API documents for a refused beat, and the WebSocket's own.
BEAT_CODES = set(
    OPERATIONS["/api/v1/sites/{site}/beats"]["post"]["responses"]["400"]["content"][
        "application/json"
    ]["schema"]["allOf"][1]["properties"]["error"]["enum"]
)


def storable(text: str) -> bool:
    """Text the store can keep: valid UTF-8 once encoded, no control characters."""
    text.encode("utf-8")
    return not any(unicodedata.category(ch) == "Cc" for ch in text)


def check_page(page: Page) -> None:
    assert page.path.startswith("/") and not page.path.startswith("//"), page
    assert len(page.path.encode("utf-8")) <= protocol.MAX_PATH_BYTES
    assert storable(page.path), page
    assert len(page.title) <= protocol.MAX_TITLE_CHARS
    assert storable(page.title) and page.title == page.title.strip(), page
    assert all(unicodedata.category(ch)[0] != "C" for ch in page.title), page
    assert len(page.referrer) <= protocol.MAX_REFERRER_CHARS
    assert storable(sources.classify(page.referrer, HOSTS)), page


def check_message(message: Any) -> None:
    assert isinstance(message, Hello | Beat | Bye), message
    if isinstance(message, Hello):
        assert protocol.VISITOR_ID.fullmatch(message.visitor), repr(message.visitor)
        assert message.device in (*protocol.DEVICES, "")
        assert message.want is None or (message.want and message.want <= set(protocol.WANTABLE))
    pages = getattr(message, "pages", None) or ()
    assert len(pages) <= protocol.MAX_PAGES
    for page in pages:
        check_page(page)


@examples(400)
@given(frames)
def test_any_websocket_frame_parses_or_is_refused_with_a_contract_code(text: str) -> None:
    try:
        message = protocol.parse_client_frame(text, SITE)
    except ProtocolError as refused:
        assert refused.code in BEAT_CODES, refused.code
        return
    check_message(message)


@examples(300)
@given(beat_bodies)
def test_any_beat_body_parses_or_is_refused_with_a_contract_code(body: bytes) -> None:
    """What `POST .../beats` does with a body it has read."""
    try:
        data = protocol.decode_object(body)
        if data.get("type", "hello") not in ("hello", "beat"):
            raise ProtocolError("bad_message", "'type' must be hello (or left out)")
        hello = protocol.parse_hello(data, SITE)
    except ProtocolError as refused:
        assert refused.code in BEAT_CODES, refused.code
        return
    check_message(hello)


@examples(300)
@given(paths | hostile_text, st.sampled_from([(), ("ItemID",)]))
def test_any_path_normalises_to_a_contract_page_or_is_refused(raw: Any, keep: Any) -> None:
    try:
        path = protocol.normalise_path(raw, keep)
    except ProtocolError as refused:
        assert refused.code == "bad_page"
        return
    check_page(Page(path, ""))
    assert protocol.normalise_path(path, keep) == path  # normal form is stable


@examples(200)
@given(json_values | hostile_text)
def test_any_title_is_cleaned_to_storable_plain_text(raw: Any) -> None:
    check_page(Page("/", protocol.clean_title(raw, SITE.title_suffixes)))
