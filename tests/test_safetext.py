"""Lone UTF-16 surrogates become U+FFFD wherever clauditor encodes text."""

from __future__ import annotations

import json

from clauditor.api.responses import SafeJSONResponse
from clauditor.broadcast.hub import WatchEvent
from clauditor.safetext import has_surrogates, scrub, scrub_text, utf8_json
from clauditor.telemetry.metrics import LabelGuard
from clauditor.watch.client import parse_sse


def test_scrub_text_replaces_lone_surrogates_and_keeps_the_rest() -> None:
    assert scrub_text("plain") == "plain"
    assert scrub_text("a\ud800b\udfffc") == "a\ufffdb\ufffdc"
    # A pair held as two code points is the character it encodes; real astral text stays.
    assert scrub_text("\ud83d\ude00 \U0001f600") == "\U0001f600 \U0001f600"
    assert not has_surrogates(scrub_text("\udc80" * 3))


def test_scrub_walks_containers_and_leaves_other_values() -> None:
    value = {"k\ud800": ["x\udfff", ("y\ud800", 3)], "n": None, "f": 1.5}
    assert scrub(value) == {"k\ufffd": ["x\ufffd", ("y\ufffd", 3)], "n": None, "f": 1.5}


def test_utf8_json_encodes_what_plain_utf8_cannot() -> None:
    assert utf8_json({"a": "é"}) == '{"a": "é"}'.encode()
    assert json.loads(utf8_json({"p": "bad \ud800"})) == {"p": "bad \ufffd"}


def test_api_responses_and_watch_frames_survive_a_surrogate() -> None:
    body = SafeJSONResponse({"first_prompt": "hi \ud800"}).body
    assert json.loads(body) == {"first_prompt": "hi \ufffd"}
    event = WatchEvent(1, "session_start", "s", 0.0, {"prompt": "hi \udfff"})
    assert list(parse_sse(event.wire().decode().split("\n"))) == [{"prompt": "hi \ufffd"}]


def test_metric_labels_are_scrubbed() -> None:
    assert LabelGuard()("claude-\ud800") == "claude-\ufffd"
