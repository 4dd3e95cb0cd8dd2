"""Hypothesis strategies for what clients send (CONTRACT §3, §3a, §4), and the
profile the fuzz tests run under.

Messages mix well-formed fields with hostile ones (wrong types, lone surrogates,
control characters, deep nesting, huge numbers, near-miss ids) so that examples
reach deep into parsing rather than stopping at the first check.
"""

from __future__ import annotations

import json
import os
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

# CI runs derandomized (the same examples every run, so a red CI reproduces);
# HYPOTHESIS_PROFILE=explore searches more, at random, on a developer's machine.
settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile("explore", parent=settings.get_profile("ci"), derandomize=False)
PROFILE = settings.get_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
SCALE = 10 if os.environ.get("HYPOTHESIS_PROFILE") == "explore" else 1


def examples(n: int) -> settings:
    """The fuzz profile with `n` examples (times ten when exploring)."""
    return settings(PROFILE, max_examples=n * SCALE)


surrogates = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
controls = st.characters(min_codepoint=0, max_codepoint=0x1F) | st.sampled_from("\x7f\u2028\ufeff")
hostile_text = st.text(st.characters() | surrogates | controls, max_size=40)
any_text = st.text(max_size=30) | hostile_text

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | any_text
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=12,
)

visitor_ids = (
    st.from_regex(r"[A-Za-z0-9_-]{16,64}", fullmatch=True)
    | st.from_regex(r"[A-Za-z0-9_-]{16,64}\n", fullmatch=True)
    | st.from_regex(r"[A-Za-z0-9_-]{1,15}", fullmatch=True)
    | st.text(max_size=70)
    | json_values
)
paths = (
    st.from_regex(
        r"/[a-z0-9/._~%-]{0,60}(\?[A-Za-z]{1,8}=[0-9a-z]{0,6}(&[a-z]=1)?)?", fullmatch=True
    )
    | st.builds(lambda rest: "/" + rest, hostile_text)
    | st.builds(lambda n: "/" + "é" * n, st.integers(150, 700))
    | st.sampled_from(["", "//evil.example/x", "http://x/", "/a#frag", "/\ud800", "/a\n"])
    | json_values
)
pages = st.fixed_dictionaries(
    {"path": paths},
    optional={"title": any_text | json_values, "referrer": any_text | json_values},
)
page_lists = st.lists(pages, max_size=24) | json_values
wants = st.lists(st.sampled_from(["online", "today", "total", "trending", "views", ""]), max_size=5)
flags = st.booleans() | json_values


def _message(kind: Any, required: dict[str, Any], optional: dict[str, Any]) -> Any:
    return st.fixed_dictionaries({"type": kind, **required}, optional=optional)


hellos = _message(
    st.just("hello"),
    {"visitor": visitor_ids},
    {
        "pages": page_lists,
        "engaged": flags,
        "resume": flags,
        "device": st.sampled_from(["mobile", "tablet", "desktop", "tv"]) | json_values,
        "want": wants | json_values,
        "bye": flags,
        "extra": json_values,
    },
)
beats = _message(st.just("beat"), {}, {"engaged": flags, "pages": page_lists})
byes = _message(st.just("bye"), {}, {"extra": json_values})
odd_types = _message(json_values, {}, {"visitor": visitor_ids, "pages": page_lists})
client_messages = hellos | beats | byes | odd_types


def deep(n: int, opener: str) -> str:
    closer = {"[": "]", '{"a":': "}"}[opener]
    return opener * n + "1" + closer * n


# Depths around the interpreter's recursion limit matter most; deeper ones are also too big.
depths = st.sampled_from([900, 1000, 1200, 2000]) | st.integers(1, 100_000)
deep_json = st.builds(deep, depths, st.sampled_from(["[", '{"a":']))


def encode(value: Any) -> str:
    """JSON text as a browser might send it; lone surrogates travel as escapes."""
    return json.dumps(value, allow_nan=True)


frames = (
    client_messages.map(encode)
    | json_values.map(encode)
    | deep_json
    | st.text(max_size=60)
    | st.sampled_from(["", "{", '{"type":"hello"', "null", "[]", '"hello"', "NaN", "1e999999"])
)

beat_bodies = (
    # An HTTP beat is a hello without (or with) its type, and maybe bye.
    client_messages.map(encode).map(str.encode)
    | json_values.map(encode).map(str.encode)
    | deep_json.map(str.encode)
    | st.binary(max_size=80)
    | st.just(b"\xff\xfe{}")
)


# The attacks seen in production-readiness review (issue 9), always tried first.
KNOWN_ATTACKS: tuple[str, ...] = (
    deep(1000, "["),
    deep(1000, '{"a":'),
    encode({"type": "hello", "visitor": "abcdefghijklmnopq\n", "pages": [{"path": "/a"}]}),
    encode({"type": "hello", "visitor": "abcdefghijklmnopq", "pages": [{"path": "/\ud800"}]}),
    encode({"type": "hello", "visitor": "abcdefghijklmnopq", "pages": [{"path": "/a\ud800b"}]}),
    encode(
        {
            "type": "hello",
            "visitor": "abcdefghijklmnopq",
            "pages": [{"path": "/a", "title": "\udfff", "referrer": "https://\ud800.vn/"}],
        }
    ),
)
