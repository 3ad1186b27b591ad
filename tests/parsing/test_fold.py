"""StreamFold and fold_message_json on hand-built and rendered streams."""

from __future__ import annotations

import json
from typing import Any

from clauditor.parsing.fold import (
    TEXT_CAP,
    FoldSignal,
    MessageResult,
    StreamFold,
    ToolUse,
    Usage,
    fold_message_json,
)
from clauditor.parsing.sse import SSEDecoder, SSEEvent

from .streams import message, render_sse


def ev(data: dict[str, Any] | str, name: str | None = None) -> SSEEvent:
    if isinstance(data, str):
        return SSEEvent(name or "message", data)
    return SSEEvent(name or str(data.get("type")), json.dumps(data))


def fold_events(events: list[SSEEvent]) -> tuple[MessageResult, list[FoldSignal]]:
    f = StreamFold()
    sigs = [s for s in (f.feed(e) for e in events) if s is not None]
    return f.result, sigs


def fold_bytes(data: bytes) -> tuple[MessageResult, list[FoldSignal]]:
    dec = SSEDecoder()
    return fold_events(dec.feed(data) + dec.flush())


START = {
    "type": "message_start",
    "message": {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-opus-4-8",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {
            "input_tokens": 10,
            "cache_creation_input_tokens": 20,
            "cache_read_input_tokens": 30,
            "cache_creation": {"ephemeral_5m_input_tokens": 5, "ephemeral_1h_input_tokens": 15},
            "output_tokens": 1,
            "service_tier": "standard",
        },
    },
}


def test_usage_overwrite_field_by_field_never_sums() -> None:
    events = [
        ev(START),
        ev(
            {"type": "message_delta", "delta": {"stop_reason": None}, "usage": {"output_tokens": 7}}
        ),
        ev(
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {
                    "output_tokens": 9,
                    "input_tokens": None,
                    "cache_read_input_tokens": 31,
                    "output_tokens_details": {"thinking_tokens": 4},
                    "iterations": [{"type": "message", "model": "m", "output_tokens": 9}],
                },
            }
        ),
        ev({"type": "message_stop"}),
    ]
    r, sigs = fold_events(events)
    assert r.usage == Usage(
        input_tokens=10,
        output_tokens=9,
        cache_read_input_tokens=31,
        cache_creation_input_tokens=20,
        cache_creation_5m_tokens=5,
        cache_creation_1h_tokens=15,
        thinking_tokens=4,
        service_tier="standard",
        iterations=[{"type": "message", "model": "m", "output_tokens": 9}],
    )
    assert r.usage.total_input_tokens == 61
    assert r.stop_reason == "end_turn"
    assert r.complete is True
    assert r.truncated is False
    assert [s.kind for s in sigs] == [
        "message_start",
        "message_delta",
        "message_delta",
        "message_stop",
    ]


def test_backend_sending_input_counts_only_in_message_delta() -> None:
    start = json.loads(json.dumps(START))
    start["message"]["usage"] = {"input_tokens": 0, "output_tokens": 0}
    delta = {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn"},
        "usage": {"input_tokens": 500, "cache_read_input_tokens": 100, "output_tokens": 3},
    }
    r, _ = fold_events([ev(start), ev(delta), ev({"type": "message_stop"})])
    assert (r.usage.input_tokens, r.usage.cache_read_input_tokens, r.usage.output_tokens) == (
        500,
        100,
        3,
    )
    assert r.usage.total_input_tokens == 600


def test_wrong_usage_types_are_counted_and_ignored() -> None:
    start = json.loads(json.dumps(START))
    start["message"]["usage"].update(
        input_tokens="10",
        output_tokens=10**30,
        cache_read_input_tokens=-5,
        cache_creation_input_tokens=True,
        service_tier=["x"],
        cache_creation="nope",
    )
    r, sigs = fold_events([ev(start)])
    assert r.usage.input_tokens == 0
    assert r.usage.output_tokens == 0
    assert r.usage.cache_read_input_tokens == 0
    assert r.usage.cache_creation_input_tokens == 0
    assert r.usage.service_tier is None
    assert r.malformed_events == 1
    assert r.model == "claude-opus-4-8"
    assert sigs == [FoldSignal("message_start")]


def test_float_infinity_and_nested_garbage_in_iterations() -> None:
    delta = (
        '{"type":"message_delta","delta":{"stop_reason":"end_turn"},'
        '"usage":{"output_tokens":1e400,"iterations":[{"type":"message","deep":{"a":[1]},'
        '"cc":{"x":1,"y":[2],"z":1e400},"input_tokens":1e400,"output_tokens":'
        + str(2**80)
        + '},"garbage",3]}}'
    )
    r, _ = fold_events([ev(START), ev(delta, "message_delta")])
    assert r.usage.output_tokens == 1
    assert r.usage.iterations == [{"type": "message", "deep": {}, "cc": {"x": 1}}]
    assert r.malformed_events == 1
    assert r.stop_reason == "end_turn"


def test_tool_use_signal_at_block_stop_with_parsed_input() -> None:
    m = message(
        [
            {"type": "text", "text": "I'll run that."},
            {"type": "tool_use", "id": "toolu_A", "name": "Bash", "input": {"command": "echo hi"}},
        ],
        stop_reason="tool_use",
    )
    r, sigs = fold_bytes(render_sse(m, json_piece=3))
    tool = ToolUse(id="toolu_A", name="Bash", input={"command": "echo hi"})
    assert [s.kind for s in sigs] == [
        "message_start",
        "first_content",
        "tool_use",
        "message_delta",
        "message_stop",
    ]
    assert sigs[2].tool_use == tool
    assert r.tool_uses == [tool]
    assert r.text == "I'll run that."
    assert r.block_types == ["text", "tool_use"]
    assert r.stop_reason == "tool_use"


def test_invalid_partial_json_gives_none_input() -> None:
    events = [
        ev(START),
        ev(
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "tool_use", "id": "t1", "name": "Read", "input": {}},
            }
        ),
        ev(
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "input_json_delta", "partial_json": '{"file_path": "/a'},
            }
        ),
        ev({"type": "content_block_stop", "index": 0}),
    ]
    r, sigs = fold_events(events)
    assert sigs[-1] == FoldSignal("tool_use", ToolUse("t1", "Read", None, True))
    assert r.tool_uses == [ToolUse("t1", "Read", None, True)]
    assert r.truncated is True


def test_tool_use_without_deltas_keeps_start_input_and_json_array_is_invalid() -> None:
    start_block = {"type": "tool_use", "id": "t2", "name": "X", "input": {"k": 1}}
    arr_block = {"type": "tool_use", "id": "t3", "name": "Y", "input": {}}
    events = [
        ev(START),
        ev({"type": "content_block_start", "index": 0, "content_block": start_block}),
        ev({"type": "content_block_stop", "index": 0}),
        ev({"type": "content_block_start", "index": 1, "content_block": arr_block}),
        ev(
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "input_json_delta", "partial_json": "[1, 2]"},
            }
        ),
        ev({"type": "content_block_stop", "index": 1}),
    ]
    r, _ = fold_events(events)
    assert r.tool_uses == [ToolUse("t2", "X", {"k": 1}, False), ToolUse("t3", "Y", None, True)]


def test_first_content_on_non_empty_block_start_not_on_fallback() -> None:
    fallback = {"type": "content_block_start", "index": 0, "content_block": {"type": "fallback"}}
    redacted = {
        "type": "content_block_start",
        "index": 1,
        "content_block": {"type": "redacted_thinking", "data": "abc"},
    }
    r, sigs = fold_events(
        [
            ev(START),
            ev(fallback),
            ev({"type": "content_block_stop", "index": 0}),
            ev(redacted),
            ev({"type": "content_block_stop", "index": 1}),
        ]
    )
    assert [s.kind for s in sigs] == ["message_start", "first_content"]
    assert r.fallback_blocks == 1
    assert r.block_types == ["fallback", "redacted_thinking"]


def test_first_content_only_once() -> None:
    m = message([{"type": "text", "text": "abcdefghijklmnop"}])
    _, sigs = fold_bytes(render_sse(m, text_piece=2))
    assert [s.kind for s in sigs].count("first_content") == 1


def test_thinking_text_not_in_text_and_blocks_joined_by_newline() -> None:
    m = message(
        [
            {"type": "thinking", "thinking": "secret plan", "signature": "sig"},
            {"type": "text", "text": "First."},
            {"type": "text", "text": ""},
            {"type": "text", "text": "Second."},
        ]
    )
    r, _ = fold_bytes(render_sse(m))
    assert r.text == "First.\nSecond."
    assert fold_message_json(m).text == "First.\nSecond."


def test_text_is_capped_to_last_chars() -> None:
    long = " ".join(f"{i:05d}" for i in range(3000))  # 17999 chars, 6 per word
    m = message([{"type": "text", "text": long}])
    r, _ = fold_bytes(render_sse(m, text_piece=50))
    # The last TEXT_CAP chars, from the first whole word.
    expected = long[-TEXT_CAP:].split(" ", 1)[1]
    assert TEXT_CAP - 6 < len(r.text) <= TEXT_CAP
    assert r.text == expected
    assert fold_message_json(m).text == expected


def test_text_cap_never_opens_on_half_a_token() -> None:
    # The key's `sk-ant-` head falls before the kept tail: its second half must not
    # start the text, since no redaction could recognise it any more.
    key = "sk-ant-" + "api03-" + "Q7" * 60
    body = key + " and then " + "words " * ((TEXT_CAP - 50) // 6)
    m = message([{"type": "text", "text": "x" * 9000 + " " + body}])
    r, _ = fold_bytes(render_sse(m, text_piece=50))
    assert r.text and r.text.startswith("and then ")
    assert "Q7Q7" not in r.text
    assert fold_message_json(m).text == r.text
    one_word = message([{"type": "text", "text": "Z" * 20000}])
    assert fold_bytes(render_sse(one_word, text_piece=50))[0].text == ""


def test_error_event_mid_stream() -> None:
    m = message([{"type": "text", "text": "partial"}, {"type": "text", "text": "more"}])
    r, sigs = fold_bytes(render_sse(m, error_after_blocks=1))
    assert r.error_type == "overloaded_error"
    assert r.error_message == "Overloaded"
    assert r.complete is False
    assert r.truncated is False
    assert sigs[-1] == FoldSignal("error")
    assert r.text == "partial"


def test_truncated_stream() -> None:
    m = message([{"type": "text", "text": "cut"}])
    r, _ = fold_bytes(render_sse(m, stop=False))
    assert r.complete is False
    assert r.truncated is True
    assert r.stop_reason == "end_turn"


def test_unknown_events_and_block_and_delta_types_are_data() -> None:
    events = [
        ev(START),
        ev({"type": "brand_new_event", "x": 1}),
        ev("not json at all", "vendor_event"),
        ev(
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "web_search_tool_result", "content": []},
            }
        ),
        ev({"type": "content_block_delta", "index": 0, "delta": {"type": "future_delta", "v": 1}}),
        ev({"type": "content_block_stop", "index": 0}),
        ev({"type": "message_stop"}),
    ]
    r, sigs = fold_events(events)
    assert r.unknown_events == 2
    assert r.malformed_events == 0
    assert r.block_types == ["web_search_tool_result"]
    assert r.complete is True
    assert r.events == 7
    assert [s.kind for s in sigs] == ["message_start", "first_content", "message_stop"]


def test_malformed_events_counted() -> None:
    events = [
        ev("{not json", "content_block_delta"),
        ev("[1,2]", "message_start"),
        ev({"type": "message_start", "message": "x"}),
        ev(
            {
                "type": "content_block_delta",
                "index": 5,
                "delta": {"type": "text_delta", "text": "x"},
            }
        ),
        ev({"type": "content_block_start", "index": "0", "content_block": {"type": "text"}}),
        ev({"type": "content_block_stop", "index": 9}),
        ev({"type": "error", "error": "string"}),
    ]
    r, sigs = fold_events(events)
    assert r.malformed_events == 7
    assert r.error_type == "unknown_error"
    assert r.text == ""
    assert sigs == [FoldSignal("error")]


def test_type_field_missing_falls_back_to_event_name() -> None:
    r, sigs = fold_events([SSEEvent("message_stop", "{}")])
    assert r.complete is True
    assert sigs == [FoldSignal("message_stop")]


def test_fold_message_json_error_body() -> None:
    r = fold_message_json(
        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    )
    assert (r.error_type, r.error_message, r.complete, r.streamed) == (
        "overloaded_error",
        "Overloaded",
        False,
        False,
    )


def test_fold_message_json_garbage() -> None:
    assert fold_message_json([1, 2]).malformed_events == 1
    assert fold_message_json({"type": "message", "content": "str"}).complete is False
    r = fold_message_json({"type": "message", "content": [1, {"type": 3}, {"type": "text"}]})
    assert r.complete is True
    assert r.malformed_events == 1
    assert r.block_types == ["text"]
    assert r.text == ""


def test_comparable_excludes_only_transport_counters() -> None:
    m = message([{"type": "text", "text": "hi"}])
    d = fold_message_json(m).comparable()
    assert "events" not in d
    assert "streamed" not in d
    assert d["text"] == "hi"
    assert d["usage"]["cache_creation_1h_tokens"] == 60
    assert d["complete"] is True


def test_default_message_result_is_empty_and_not_truncated() -> None:
    r = MessageResult()
    assert r.usage == Usage()
    assert r.truncated is False
    assert r.tool_uses == []
