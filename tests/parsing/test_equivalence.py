"""Streamed == unary: any chunking of the SSE bytes folds to fold_message_json(message)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clauditor.parsing.fold import FoldSignal, MessageResult, fold_message_json
from clauditor.parsing.response import ResponseParser

from .fixtures import all_posts
from .streams import message, message_from_fixture, render_sse, split_at

SSE = "text/event-stream"


def run(chunks: list[bytes]) -> tuple[MessageResult, list[FoldSignal]]:
    p = ResponseParser(200, SSE, None)
    sigs: list[FoldSignal] = []
    for c in chunks:
        sigs += p.feed(c)
    return p.finish(), sigs


text_st = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=0, max_size=40)
json_val = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**6), 10**6) | text_st,
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(text_st, kids, max_size=3),
    max_leaves=8,
)
block_st = st.one_of(
    st.builds(lambda t: {"type": "text", "text": t}, text_st),
    st.builds(
        lambda t, s: {"type": "thinking", "thinking": t, "signature": s or "sig"},
        text_st,
        text_st,
    ),
    st.builds(
        lambda i, n, inp: {"type": "tool_use", "id": f"toolu_{i}", "name": n, "input": inp},
        st.integers(0, 10**6),
        st.sampled_from(["Bash", "Read", "mcp__srv__do", "Agent"]),
        st.dictionaries(text_st, json_val, max_size=4),
    ),
    st.just({"type": "redacted_thinking", "data": "EmsYz"}),
    st.just({"type": "fallback", "model": "claude-sonnet-4-5"}),
    st.just({"type": "future_block", "payload": {"x": [1, 2]}}),
)
usage_st = st.fixed_dictionaries(
    {
        "input_tokens": st.integers(0, 10**7),
        "cache_creation_input_tokens": st.integers(0, 10**7),
        "cache_read_input_tokens": st.integers(0, 10**7),
        "cache_creation": st.fixed_dictionaries(
            {
                "ephemeral_5m_input_tokens": st.integers(0, 10**6),
                "ephemeral_1h_input_tokens": st.integers(0, 10**6),
            }
        ),
        "output_tokens": st.integers(0, 10**6),
        "service_tier": st.sampled_from(["standard", "priority", "batch"]),
    },
    optional={
        "output_tokens_details": st.fixed_dictionaries({"thinking_tokens": st.integers(0, 999)}),
        "iterations": st.lists(
            st.fixed_dictionaries(
                {
                    "type": st.sampled_from(["message", "fallback_message"]),
                    "model": st.sampled_from(["claude-opus-4-8", "claude-sonnet-4-5"]),
                    "output_tokens": st.integers(0, 999),
                }
            ),
            max_size=2,
        ),
    },
)
message_st = st.builds(
    lambda content, usage, stop: message(content, usage=usage, stop_reason=stop),
    st.lists(block_st, max_size=5),
    usage_st,
    st.sampled_from(["end_turn", "tool_use", "max_tokens", "refusal", None]),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    msg=message_st,
    offsets=st.lists(st.integers(0, 20_000), max_size=30),
    text_piece=st.integers(1, 9),
    json_piece=st.integers(1, 9),
    crlf=st.booleans(),
    trailing_space=st.booleans(),
)
def test_any_split_folds_like_unsplit_and_like_unary(
    msg: dict[str, Any],
    offsets: list[int],
    text_piece: int,
    json_piece: int,
    crlf: bool,
    trailing_space: bool,
) -> None:
    data = render_sse(
        msg, text_piece=text_piece, json_piece=json_piece, crlf=crlf, trailing_space=trailing_space
    )
    whole, whole_sigs = run([data])
    split, split_sigs = run(split_at(data, offsets))
    unary = fold_message_json(msg)
    assert split.comparable() == whole.comparable()
    assert split_sigs == whole_sigs
    assert whole.comparable() == unary.comparable()
    assert whole.malformed_events == 0
    assert whole.unknown_events == 0
    assert whole.streamed is True
    assert unary.streamed is False
    assert whole.events == data.count(b"\r\n\r\n" if crlf else b"\n\n")
    n_tools = sum(1 for b in msg["content"] if b["type"] == "tool_use")
    assert [s.kind for s in whole_sigs].count("tool_use") == n_tools


@settings(max_examples=60, deadline=None)
@given(offsets=st.lists(st.integers(0, 5000), min_size=1, max_size=60))
def test_bytewise_and_random_splits_of_multibyte_text(offsets: list[int]) -> None:
    msg = message(
        [
            {"type": "text", "text": "ünïcödé 👋🏽 中文 " * 20},
            {"type": "tool_use", "id": "toolu_x", "name": "Write", "input": {"p": "é👋" * 10}},
        ]
    )
    data = render_sse(msg, text_piece=3, json_piece=2)
    r, _ = run(split_at(data, offsets))
    assert r.comparable() == fold_message_json(msg).comparable()
    bytewise, _ = run([data[i : i + 1] for i in range(len(data))])
    assert bytewise.comparable() == r.comparable()


@pytest.mark.parametrize(
    ("name", "index", "entry"),
    [
        p
        for p in all_posts()
        if p[2]["response"].get("stream") and p[2]["response"]["status"] == 200
    ],
)
def test_fixture_responses_stream_equals_unary(
    name: str, index: int, entry: dict[str, Any]
) -> None:
    resp = entry["response"]
    msg = message_from_fixture(resp)
    r, sigs = run([render_sse(msg)])
    assert r.comparable() == fold_message_json(msg).comparable()
    assert r.model == resp["model"]
    assert r.stop_reason == resp["stop_reason"]
    assert r.usage.input_tokens == resp["usage"]["input_tokens"]
    assert r.usage.output_tokens == resp["usage"]["output_tokens"]
    assert (
        r.usage.cache_creation_5m_tokens
        == resp["usage"]["cache_creation"]["ephemeral_5m_input_tokens"]
    )
    tool_ids = [b["id"] for b in resp["content"] if b["type"] == "tool_use"]
    assert [t.id for t in r.tool_uses] == tool_ids
    assert [s.tool_use.id for s in sigs if s.tool_use is not None] == tool_ids
