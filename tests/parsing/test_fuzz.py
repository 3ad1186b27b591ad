"""Hostile input: nothing escapes, counters move. Internals are also called without the
safety nets, so a bug cannot hide behind them."""

from __future__ import annotations

import json
import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clauditor.parsing.fold import StreamFold, fold_message_json
from clauditor.parsing.request import ParsedRequest, _from_body, parse_request
from clauditor.parsing.response import ResponseParser
from clauditor.parsing.sse import SSEDecoder, SSEEvent

from .fixtures import body, headers, posts
from .streams import message, render_sse

FAST = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DEEP = b"[" * 200_000 + b"]" * 200_000
EVENT_TYPES = [
    "message_start",
    "content_block_start",
    "content_block_delta",
    "content_block_stop",
    "message_delta",
    "message_stop",
    "ping",
    "error",
    "unknown_thing",
]

json_any = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=10),
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4)
    ),
    max_leaves=12,
)
KEYS = [
    "type",
    "index",
    "message",
    "content_block",
    "delta",
    "usage",
    "error",
    "id",
    "model",
    "text",
    "partial_json",
    "input",
    "stop_reason",
    "cache_creation",
    "output_tokens_details",
    "iterations",
    "input_tokens",
    "output_tokens",
    "service_tier",
    "name",
]
# Dicts shaped like events: right keys, arbitrary values (one level of nesting reused).
eventish = st.recursive(
    st.dictionaries(st.sampled_from(KEYS), json_any, max_size=6),
    lambda kids: st.dictionaries(st.sampled_from(KEYS), kids | json_any, max_size=6),
    max_leaves=6,
)

MSG = message(
    [
        {"type": "thinking", "thinking": "plan", "signature": "s"},
        {"type": "text", "text": "Hello there, friend."},
        {"type": "tool_use", "id": "toolu_F", "name": "Bash", "input": {"command": "ls"}},
    ],
    stop_reason="tool_use",
)
STREAM = render_sse(MSG, text_piece=4, json_piece=3)
EVENTS = SSEDecoder().feed(STREAM)


@FAST
@given(data=st.binary(max_size=3000).filter(lambda b: b"{" not in b), cuts=st.integers(1, 50))
def test_random_bytes_through_decoder_and_fold(data: bytes, cuts: int) -> None:
    dec, fold = SSEDecoder(max_event_bytes=512), StreamFold()
    for i in range(0, len(data), cuts):
        for e in dec.feed(data[i : i + cuts]):
            fold.feed(e)
    for e in dec.flush():
        fold.feed(e)
    r = fold.result
    assert r.events == dec.events
    # No "{" means no event can be a JSON object: each one is counted exactly once.
    assert r.malformed_events + r.unknown_events == r.events
    assert r.complete is False


@FAST
@given(
    data=st.binary(max_size=2000),
    status=st.sampled_from([None, 200, 204, 400, 429, 500, 529]),
    content_type=st.sampled_from([None, "text/event-stream", "application/json", "text/html"]),
    encoding=st.sampled_from([None, "gzip", "deflate", "br", "identity"]),
)
def test_random_bytes_through_response_parser(
    data: bytes, status: int | None, content_type: str | None, encoding: str | None
) -> None:
    p = ResponseParser(status, content_type, encoding)
    body = b"\x00" + data  # never valid JSON, never SSE-looking
    for i in range(0, len(body), 97):
        p.feed(body[i : i + 97])
    r = p.finish()
    assert p.finish() is r
    ok_status = status is None or 200 <= status < 300
    if not ok_status and not r.complete and r.error_type is not None:
        assert r.error_type.startswith("http_") or content_type == "text/event-stream"
    if encoding == "br":
        assert p.decode_errors == len(body)
        assert r.error_type == ("undecodable_encoding" if ok_status else f"http_{status}")
    elif content_type != "text/event-stream" and encoding in (None, "identity"):
        assert r.error_type == ("invalid_response_body" if ok_status else f"http_{status}")
        assert r.malformed_events == 1


def test_truncated_at_every_offset() -> None:
    stop_at = STREAM.rindex(b"}") + 1  # end of message_stop's JSON: flush completes it
    for cut in range(len(STREAM) + 1):
        p = ResponseParser(200, "text/event-stream", None)
        p.feed(STREAM[:cut])
        r = p.finish()
        assert r.complete is (cut >= stop_at), cut
        assert r.truncated is (cut < stop_at), cut
        assert r.malformed_events <= 1, cut  # only the final, cut event can be broken
        assert r.error_type is None


@FAST
@given(seed=st.integers(0, 2**32))
def test_reordered_events(seed: int) -> None:
    events = list(EVENTS)
    random.Random(seed).shuffle(events)
    fold = StreamFold()
    for e in events:
        fold.feed(e)
    r = fold.result
    assert r.events == len(EVENTS)
    assert r.complete is True  # message_stop is in there somewhere
    assert r.unknown_events == 0
    assert all(t.id == "toolu_F" for t in r.tool_uses)
    assert len(r.tool_uses) <= 1


@FAST
@given(obj=eventish, typ=st.sampled_from(EVENT_TYPES))
def test_wrong_types_in_events_never_raise(obj: dict[str, Any], typ: str) -> None:
    obj = dict(obj)
    obj["type"] = typ
    fold = StreamFold()
    for e in EVENTS[:4]:
        fold.feed(e)
    # The handler itself, without feed()'s safety net, must cope.
    fold._handle(typ, obj)
    fold.feed(SSEEvent(typ, json.dumps(obj)))
    r = fold.result
    assert r.events == 5
    assert r.model == "claude-opus-4-8" or typ == "message_start"


@FAST
@given(obj=eventish)
def test_wrong_types_in_unary_message_never_raise(obj: dict[str, Any]) -> None:
    m = dict(MSG)
    m.update(obj)
    m["type"] = "message"
    r = fold_message_json(m)
    assert r.streamed is False
    assert r.complete is isinstance(m.get("content"), list)


def test_deep_json_everywhere() -> None:
    fold = StreamFold()
    assert fold.feed(SSEEvent("message_start", DEEP.decode())) is None
    assert fold.result.malformed_events == 1
    tool_start = {
        "type": "content_block_start",
        "index": 0,
        "content_block": {"type": "tool_use", "id": "t", "name": "n", "input": {}},
    }
    fold.feed(SSEEvent("content_block_start", json.dumps(tool_start)))
    deep_delta = {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "input_json_delta", "partial_json": DEEP.decode()},
    }
    fold.feed(SSEEvent("content_block_delta", json.dumps(deep_delta)))
    sig = fold.feed(SSEEvent("content_block_stop", '{"type":"content_block_stop","index":0}'))
    assert sig is not None and sig.tool_use is not None
    assert (sig.tool_use.input, sig.tool_use.input_invalid) == (None, True)
    p = ResponseParser(200, "application/json", None)
    p.feed(DEEP)
    assert p.finish().error_type == "invalid_response_body"
    r = parse_request({}, DEEP)
    assert (r.ok, r.error) == (False, "not_json")


def test_invalid_utf8_everywhere() -> None:
    p = ResponseParser(200, "text/event-stream", None)
    p.feed(b'event: message_start\ndata: {"type":"message_start","message":{"model":"\xc3"}}\n\n')
    r = p.finish()
    assert r.malformed_events == 1
    assert r.model == "\ufffd"
    q = ResponseParser(200, "application/json", None)
    q.feed(b'{"type":"message","content":[],"model":"\xff"}')
    assert q.finish().error_type == "invalid_response_body"
    assert parse_request({}, b'{"model":"\xff"}').error == "not_json"


REQ = posts("b_tool_bash")[1]
REQ_KEYS = [
    "model",
    "messages",
    "system",
    "tools",
    "metadata",
    "max_tokens",
    "thinking",
    "context_management",
    "output_config",
    "stream",
    "betas",
]


@FAST
@given(
    changes=st.dictionaries(st.sampled_from(REQ_KEYS), json_any | eventish, max_size=4),
    msg_changes=st.lists(json_any | eventish, max_size=3),
)
def test_request_wrong_types_never_raise(changes: dict[str, Any], msg_changes: list[Any]) -> None:
    b = json.loads(body(REQ))
    b.update(changes)
    if isinstance(b.get("messages"), list):
        b["messages"] = list(b["messages"]) + msg_changes
    # Without the safety net first...
    direct = ParsedRequest(ok=True)
    _from_body(direct, b, [])
    # ...then the public entry point: still a JSON object, so ok with no error.
    raw = json.dumps(b, allow_nan=True).encode()
    r = parse_request(headers(REQ), raw)
    assert (r.ok, r.error) == (True, None)
    assert r.session_id == "04d0a982-8c0f-4567-aba3-6d8e967e76cc"
    assert r.kind in ("main", "subagent", "title", "compaction", "other")
    assert len(r.fingerprint) == 16


@FAST
@given(data=st.binary(max_size=500))
def test_request_random_bytes(data: bytes) -> None:
    r = parse_request({"anthropic-beta": "a,b"}, data)
    assert r.body_bytes == len(data)
    assert r.betas == ("a", "b")
    if not r.ok:
        assert r.error in ("empty", "not_json", "not_object")


@FAST
@given(
    headers_=st.dictionaries(
        st.sampled_from(["x-claude-code-session-id", "anthropic-beta", "user-agent"]),
        st.text(max_size=300),
    )
)
def test_request_hostile_headers(headers_: dict[str, str]) -> None:
    r = parse_request(headers_, b'{"messages": []}')
    assert r.ok is True
    sid = headers_.get("x-claude-code-session-id", "").strip()
    assert r.session_id == (sid if 0 < len(sid) <= 128 else None)
    assert all(0 < len(b) <= 128 for b in r.betas)
