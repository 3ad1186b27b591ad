"""ResponseParser: SSE vs unary, encodings, error bodies, caps, idempotent finish."""

from __future__ import annotations

import gzip
import json

from clauditor.parsing.response import ResponseParser

from .streams import message, render_sse

MSG = message(
    [
        {"type": "text", "text": "Done."},
        {"type": "tool_use", "id": "toolu_9", "name": "Read", "input": {"file_path": "/a"}},
    ],
    stop_reason="tool_use",
)
OVERLOADED = b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'


def test_sse_signals_and_result() -> None:
    p = ResponseParser(200, "text/event-stream; charset=utf-8", None)
    data = render_sse(MSG)
    sigs = []
    for i in range(0, len(data), 10):
        sigs += p.feed(data[i : i + 10])
    r = p.finish()
    assert [s.kind for s in sigs] == [
        "message_start",
        "first_content",
        "tool_use",
        "message_delta",
        "message_stop",
    ]
    assert r.streamed is True
    assert r.complete is True
    assert r.tool_uses[0].input == {"file_path": "/a"}
    assert p.finish() is r  # idempotent
    assert p.feed(b"event: ping\ndata: {}\n\n") == []


def test_sse_gzip_encoded() -> None:
    p = ResponseParser(200, "text/event-stream", "gzip")
    z = gzip.compress(render_sse(MSG))
    sigs = []
    for i in range(0, len(z), 13):
        sigs += p.feed(z[i : i + 13])
    r = p.finish()
    assert len(sigs) == 5
    assert r.complete is True
    assert r.text == "Done."
    assert p.decode_errors == 0


def test_sse_final_event_without_blank_line_flushed_at_finish() -> None:
    p = ResponseParser(200, "text/event-stream", None)
    data = render_sse(MSG)
    assert data.endswith(b"\n\n")
    p.feed(data[:-2])
    r = p.finish()
    assert r.complete is True


def test_truncated_sse() -> None:
    p = ResponseParser(200, "text/event-stream", None)
    p.feed(render_sse(MSG)[:300])
    r = p.finish()
    assert r.truncated is True
    assert r.error_type is None


def test_unary_json_message() -> None:
    p = ResponseParser(200, "application/json", None)
    raw = json.dumps(MSG).encode()
    assert p.feed(raw[:50]) == []
    assert p.feed(raw[50:]) == []
    r = p.finish()
    assert r.complete is True
    assert r.streamed is False
    assert r.tool_uses[0].id == "toolu_9"
    assert r.usage.cache_read_input_tokens == 2000


def test_unary_gzip_json() -> None:
    p = ResponseParser(200, "application/json", "gzip")
    p.feed(gzip.compress(json.dumps(MSG).encode()))
    r = p.finish()
    assert r.message_id == "msg_01TestTestTestTestTest"
    assert r.complete is True


def test_529_error_json() -> None:
    p = ResponseParser(529, "application/json", None)
    p.feed(OVERLOADED)
    r = p.finish()
    assert r.error_type == "overloaded_error"
    assert r.error_message == "Overloaded"
    assert r.complete is False


def test_non_json_body_2xx_vs_error_status() -> None:
    p = ResponseParser(200, "application/json", None)
    p.feed(b"<html>oops</html>")
    assert p.finish().error_type == "invalid_response_body"
    p = ResponseParser(502, "text/html", None)
    p.feed(b"<html>bad gateway</html>")
    r = p.finish()
    assert r.error_type == "http_502"
    assert r.malformed_events == 1
    p = ResponseParser(404, None, None)
    assert p.finish().error_type == "http_404"


def test_json_that_is_not_a_message() -> None:
    p = ResponseParser(200, "application/json", None)
    p.feed(b'{"hello": 1}')
    assert p.finish().error_type == "invalid_response_body"
    p = ResponseParser(500, "application/json", None)
    p.feed(b"[1, 2]")
    assert p.finish().error_type == "http_500"


def test_empty_2xx_body() -> None:
    p = ResponseParser(200, "application/json", None)
    assert p.finish().error_type == "invalid_response_body"


def test_unary_cap_counts_and_stops_buffering() -> None:
    p = ResponseParser(200, "application/json", None, max_unary_bytes=100)
    raw = json.dumps(MSG).encode()
    p.feed(raw[:60])
    p.feed(raw[60:])
    r = p.finish()
    assert p.dropped_bytes == len(raw) - 100
    assert r.error_type == "invalid_response_body"
    assert r.complete is False


def test_unsupported_encoding_counts_bytes() -> None:
    p = ResponseParser(200, "text/event-stream", "br")
    assert p.feed(b"\x8b\x01\x80abc") == []
    assert p.feed(b"12345") == []
    r = p.finish()
    assert p.decode_errors == 11
    assert r.error_type == "undecodable_encoding"
    assert r.truncated is False


def test_corrupt_gzip_counts_bytes_and_keeps_http_error() -> None:
    p = ResponseParser(529, "application/json", "gzip")
    p.feed(b"not gzip")
    r = p.finish()
    assert p.decode_errors == 8
    assert r.error_type == "http_529"


def test_sse_body_without_sse_content_type_is_still_folded() -> None:
    p = ResponseParser(200, None, None)
    p.feed(render_sse(MSG))
    r = p.finish()
    assert r.complete is True
    assert r.streamed is True
    assert r.text == "Done."


def test_sse_error_event_with_200() -> None:
    p = ResponseParser(200, "text/event-stream", None)
    sigs = p.feed(render_sse(MSG, error_after_blocks=1))
    r = p.finish()
    assert sigs[-1].kind == "error"
    assert r.error_type == "overloaded_error"
    assert r.complete is False


def test_sse_invalid_utf8_counted_as_malformed() -> None:
    p = ResponseParser(200, "text/event-stream", None)
    p.feed(b'event: ping\ndata: {"type":"ping","x":"\xff"}\n\n')
    r = p.finish()
    assert r.malformed_events == 1
    assert r.events == 1
