"""The synthetic Claude Code client against the fake upstream, checked against real fixtures."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from clauditor.parsing.fold import StreamFold, ToolUse
from clauditor.parsing.sse import SSEDecoder
from clauditor.sim.claude import API_KEY, DEVICE_ID, SyntheticSession, run_demo_sessions
from clauditor.sim.exchange import Exchange
from clauditor.sim.replies import Reply
from clauditor.sim.server import FakeUpstream
from clauditor.sim.transport import OrderedHeadersTransport

pytestmark = pytest.mark.timeout(15)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
BILLING = re.compile(
    r"^x-anthropic-billing-header: cc_version=2\.1\.197\.[0-9a-f]{3}; cc_entrypoint=sdk-cli;$"
)
BASH = '[[fake:tool Bash {"command":"ls -la"}]]'


def fixture_posts(name: str) -> list[dict[str, Any]]:
    lines = (FIXTURES / name).read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["method"] == "POST"]


def markers(body: dict[str, Any]) -> list[tuple[int, int]]:
    """(message, block) positions carrying cache_control."""
    return [
        (i, j)
        for i, m in enumerate(body["messages"])
        if isinstance(m["content"], list)
        for j, b in enumerate(m["content"])
        if "cache_control" in b
    ]


def posts(fake: FakeUpstream) -> list[Exchange]:
    return [e for e in fake.exchanges if e.method == "POST"]


async def test_tool_round_trip(fake: FakeUpstream) -> None:
    async with SyntheticSession(fake.url) as s:
        result = await s.turn(f"list the files {BASH}")
    assert result.requests == 2
    assert result.statuses == [200, 200]
    assert result.tool_uses == ["Bash"]
    assert result.final_text == "Done: 1 tool result(s) received."
    assert result.stop_reason == "end_turn"
    first, second = posts(fake)
    streamed_id = result.results[0].tool_uses[0].id
    assert result.tool_use_ids == [streamed_id]
    assert streamed_id.encode() in first.response_bytes
    body = second.json()
    assert body["messages"][2] == {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "I'll run that for you."},
            {"type": "tool_use", "id": streamed_id, "name": "Bash", "input": {"command": "ls -la"}},
        ],
    }
    assert body["messages"][3] == {
        "role": "user",
        "content": [
            {
                "tool_use_id": streamed_id,
                "type": "tool_result",
                "content": "ok",
                "is_error": False,
                "cache_control": {"type": "ephemeral"},
            }
        ],
    }
    u1, u2 = result.usages
    assert u1.cache_read_input_tokens == 0
    assert u2.cache_read_input_tokens == u1.cache_creation_input_tokens
    assert u2.cache_read_input_tokens > 0
    assert first.conn_id == second.conn_id
    assert result.received == [first.response_bytes, second.response_bytes]
    assert result.request_ids == [first.request_id, second.request_id]


async def test_headers_and_body_shape_match_fixture(fake: FakeUpstream) -> None:
    real = fixture_posts("b_tool_bash.jsonl")
    async with SyntheticSession(fake.url, session_id="11111111-2222-4333-8444-555555555555") as s:
        await s.turn(f"Run the shell command: echo hi {BASH}")
    ours = posts(fake)
    assert len(ours) == len(real) == 2
    varying = {"X-Claude-Code-Session-Id", "Host", "Content-Length"}
    for mine, theirs in zip(ours, real, strict=True):
        assert [k for k, _ in mine.headers] == [k for k, _ in theirs["headers"]]
        assert [(k, v) for k, v in mine.headers if k not in varying] == [
            (k, v) for k, v in theirs["headers"] if k not in varying
        ]
        assert mine.header("Host") == f"127.0.0.1:{fake.port}"
        assert mine.header("Content-Length") == str(len(mine.body))
        assert mine.header("x-api-key") == API_KEY
        assert (mine.path, mine.query) == (theirs["path"], theirs["query"])
        body, ref = mine.json(), theirs["body"]
        assert list(body) == list(ref)
        assert [t["name"] for t in body["tools"]] == [t["name"] for t in ref["tools"]]
        assert [sorted(t) for t in body["tools"]] == [sorted(t) for t in ref["tools"]]
        assert {
            k: body[k]
            for k in (
                "model",
                "max_tokens",
                "thinking",
                "context_management",
                "output_config",
                "stream",
            )
        } == {
            k: ref[k]
            for k in (
                "model",
                "max_tokens",
                "thinking",
                "context_management",
                "output_config",
                "stream",
            )
        }
        assert [sorted(b) for b in body["system"]] == [sorted(b) for b in ref["system"]]
        assert BILLING.match(body["system"][0]["text"])
        assert body["system"][1] == ref["system"][1]
        assert [m["role"] for m in body["messages"]] == [m["role"] for m in ref["messages"]]
        assert markers(body) == markers(ref)
        user_id = json.loads(body["metadata"]["user_id"])
        assert list(user_id) == list(json.loads(ref["metadata"]["user_id"]))
        assert user_id == {"device_id": DEVICE_ID, "account_uuid": "", "session_id": s.session_id}
    # The tool_result block keys, in order, as Claude Code writes them.
    assert list(ours[1].json()["messages"][3]["content"][0]) == list(
        real[1]["body"]["messages"][3]["content"][0]
    )
    # JSON.stringify: compact separators.
    assert b'","' in ours[0].body and b'", "' not in ours[0].body


async def test_529_resent_byte_identical(fake: FakeUpstream) -> None:
    async with SyntheticSession(fake.url) as s:
        fake.script(s.session_id, [Reply(status=529), Reply(status=529), Reply(text="finally")])
        result = await s.turn("Say hi (529 test)")
    assert result.statuses == [529, 529, 200]
    assert result.requests == 3
    assert result.final_text == "finally"
    sent = posts(fake)
    assert len({e.body for e in sent}) == 1
    assert len({tuple(e.headers) for e in sent}) == 1
    assert {e.header("X-Stainless-Retry-Count") for e in sent} == {"0"}
    assert len({e.conn_id for e in sent}) == 1


async def test_529_gives_up_after_three_resends(fake: FakeUpstream) -> None:
    async with SyntheticSession(fake.url) as s:
        fake.script(s.session_id, [Reply(status=529)] * 5)
        result = await s.turn("still overloaded")
    assert result.statuses == [529, 529, 529, 529]
    assert result.final_text == ""
    assert result.tool_uses == []
    assert len(s.messages) == 2  # no assistant reply was appended


async def test_sse_error_resent_without_stream(fake: FakeUpstream) -> None:
    async with SyntheticSession(fake.url) as s:
        fake.script(
            s.session_id, [Reply(text="partial", sse_error_after=3), Reply(text="recovered")]
        )
        result = await s.turn("mid-stream error")
    assert result.statuses == [200, 200]
    assert result.results[0].error_type == "overloaded_error"
    assert result.final_text == "recovered"
    streamed, unary = posts(fake)
    assert "stream" not in unary.json()
    assert unary.json() == {k: v for k, v in streamed.json().items() if k != "stream"}
    assert unary.header("X-Stainless-Timeout") == "300"
    assert streamed.header("X-Stainless-Timeout") == "600"
    assert unary.stream is False
    assert unary.response_header("content-type") == "application/json"
    assert s.messages[-1] == {
        "role": "assistant",
        "content": [{"type": "text", "text": "recovered"}],
    }


async def test_truncated_stream_is_resent(fake: FakeUpstream) -> None:
    async with SyntheticSession(fake.url) as s:
        result = await s.turn("cut [[fake:truncate 3]]")
    assert result.statuses == [200, 200]
    assert result.results[0].truncated is True
    assert result.final_text == "Hello from the fake upstream (request 2)."
    first, second = posts(fake)
    assert first.body == second.body
    assert first.complete is False
    assert first.conn_id != second.conn_id  # the broken connection is not reused


async def test_failing_tools_get_is_error(fake: FakeUpstream) -> None:
    async with SyntheticSession(fake.url, failing_tools={"Bash"}) as s:
        result = await s.turn(f'try {BASH} [[fake:tool Read {{"file_path":"/a"}}]]')
    assert result.tool_uses == ["Bash", "Read"]
    assert result.final_text == "Done: 2 tool result(s) received."
    blocks = posts(fake)[1].json()["messages"][3]["content"]
    assert [(b["content"], b["is_error"]) for b in blocks] == [
        ("Error: Bash failed (synthetic)", True),
        ("ok", False),
    ]
    assert markers(posts(fake)[1].json()) == [(3, 1)]


async def test_second_turn_moves_marker_and_reads_cache(fake: FakeUpstream) -> None:
    async with SyntheticSession(fake.url, interactive=True) as s:
        await s.turn("first interactive prompt")
        second = await s.turn("second interactive prompt")
    ref = fixture_posts("k2_interactive_tmux_json_title.jsonl")[2]
    body = posts(fake)[1].json()
    assert [m["role"] for m in body["messages"]] == [m["role"] for m in ref["body"]["messages"]]
    assert markers(body) == markers(ref["body"]) == [(3, 0)]
    assert body["messages"][3]["content"] == [
        {
            "type": "text",
            "text": "second interactive prompt",
            "cache_control": {"type": "ephemeral"},
        }
    ]
    assert [t["name"] for t in body["tools"]] == [t["name"] for t in ref["body"]["tools"]]
    ours = posts(fake)[1]
    assert ours.header("User-Agent") == "claude-cli/2.1.197 (external, cli)"
    assert ours.header("anthropic-beta") == dict(ref["headers"])["anthropic-beta"]
    assert body["system"][0]["text"].endswith("cc_entrypoint=cli;")
    assert second.usages[0].cache_read_input_tokens > 0
    # The billing fingerprint comes from the first prompt and stays put.
    assert body["system"][0] == posts(fake)[0].json()["system"][0]


async def test_subagent_shape_matches_fixture(fake: FakeUpstream) -> None:
    ref = fixture_posts("e_subagent.jsonl")[1]
    async with SyntheticSession(fake.url) as s:
        result = await s.subagent("Reply with the single word hello.")
    assert result.final_text == "Hello from the fake upstream (request 1)."
    (ex,) = posts(fake)
    body = ex.json()
    assert list(body) == list(ref["body"])
    assert "context_management" not in body
    assert body["thinking"] == {"type": "disabled"}
    assert [t["name"] for t in body["tools"]] == [t["name"] for t in ref["body"]["tools"]]
    assert len(body["tools"]) == 21
    assert body["system"][0]["text"].endswith("cc_entrypoint=sdk-cli; cc_is_subagent=true;")
    assert body["system"][2]["text"].startswith("You are an agent for Claude Code")
    assert [m["role"] for m in body["messages"]] == ["user", "system"]
    assert markers(body) == markers(ref["body"]) == [(0, 1)]
    assert ex.header("X-Claude-Code-Session-Id") == s.session_id


async def test_agent_tool_runs_subagent_before_tool_result(fake: FakeUpstream) -> None:
    prompt = 'Use a subagent [[fake:tool Agent {"description":"Say hello","prompt":"Say hello"}]]'
    async with SyntheticSession(fake.url) as s:
        result = await s.turn(prompt)
    assert result.requests == 3
    assert result.tool_uses == ["Agent"]
    main1, sub, main2 = posts(fake)
    assert "cc_is_subagent=true;" not in main1.json()["system"][0]["text"]
    assert sub.json()["system"][0]["text"].endswith("cc_is_subagent=true;")
    assert sub.json()["messages"][0]["content"][1]["text"] == "Say hello"
    tool_result = main2.json()["messages"][3]["content"][0]
    assert tool_result["content"] == [
        {"type": "text", "text": "Hello from the fake upstream (request 2)."}
    ]
    assert len({main1.conn_id, sub.conn_id, main2.conn_id}) == 1


async def test_title_call_shape(fake: FakeUpstream) -> None:
    ref = fixture_posts("k2_interactive_tmux_json_title.jsonl")[0]
    async with SyntheticSession(fake.url, interactive=True) as s:
        await s.turn("first interactive prompt")
        title = await s.title()
    assert title.final_text == '{"title": "Fake session title"}'
    ex = posts(fake)[1]
    body = ex.json()
    assert list(body) == list(ref["body"])
    assert body["tools"] == []
    assert b"cache_control" not in ex.body
    assert body["output_config"] == ref["body"]["output_config"]
    assert body["thinking"] == {"type": "disabled"}
    assert (
        body["messages"][0]["content"][0]["text"]
        == ref["body"]["messages"][0]["content"][0]["text"]
    )
    assert body["system"][1] == ref["body"]["system"][1]
    assert ex.header("anthropic-beta") == dict(ref["headers"])["anthropic-beta"]
    assert title.usages[0].cache_creation_input_tokens == 0
    assert title.usages[0].input_tokens == len(ex.body) // 4


async def test_compact_shape_and_continuation(fake: FakeUpstream) -> None:
    async with SyntheticSession(fake.url) as s:
        await s.turn("Run the shell command: echo hi")
        compacted = await s.compact()
        after = await s.turn("and now?")
    assert compacted.final_text.startswith("<analysis>fake analysis</analysis>")
    assert after.final_text == "Hello from the fake upstream (request 3)."
    turn1, compact, turn2 = (e.json() for e in posts(fake))
    assert list(compact) == list(turn1)
    assert compact["tools"] == turn1["tools"]
    assert compact["system"] == turn1["system"]
    assert [m["role"] for m in compact["messages"]] == ["user", "system", "assistant", "user"]
    assert compact["messages"][3]["content"][0]["text"].startswith(
        "CRITICAL: Respond with TEXT ONLY. Do NOT call any tools."
    )
    assert markers(compact) == [(2, 0)]  # on the previous assistant message
    first = turn2["messages"][0]["content"][0]["text"]
    assert first.startswith("This session is being continued from a previous conversation")
    assert compacted.final_text in first
    assert turn2["system"][0] != turn1["system"][0]  # new fingerprint after compaction
    assert markers(turn2) == [(1, 1)]


async def test_pad_bytes_make_large_bodies(fake: FakeUpstream) -> None:
    async with SyntheticSession(fake.url, pad_bytes=600_000) as s:
        result = await s.turn("big")
    (ex,) = posts(fake)
    assert len(ex.body) > 600_000
    assert int(ex.header("Content-Length") or 0) == len(ex.body)
    assert result.usages[0].cache_creation_input_tokens == (len(ex.body) // 4) * 9 // 10


async def test_connection_close_is_not_reused(fake: FakeUpstream) -> None:
    transport = OrderedHeadersTransport()
    async with httpx.AsyncClient(transport=transport, timeout=5) as http:
        for conn in ("keep-alive", "keep-alive", "close", "keep-alive"):
            resp = await http.send(
                httpx.Request(
                    "GET", fake.url + "/x", headers=[("Connection", conn), ("Host", "example.test")]
                )
            )
            assert resp.status_code == 404
            assert resp.json()["error"]["type"] == "not_found_error"
    assert transport.connections_opened == 2
    assert [e.conn_id for e in fake.exchanges] == [1, 1, 1, 2]
    # Given order kept (h11 would have moved Host first), nothing added for a bodiless GET.
    assert fake.exchanges[0].headers == [("Connection", "keep-alive"), ("Host", "example.test")]


async def test_sse_decoder_sees_same_bytes_as_fake_sent(fake: FakeUpstream) -> None:
    async with SyntheticSession(fake.url) as s:
        fake.script(s.session_id, [Reply(text="exact bytes", chunk_size=5)])
        result = await s.turn("x")
    (ex,) = posts(fake)
    assert result.received == [ex.response_bytes]
    events = SSEDecoder().feed(ex.response_bytes)
    assert [e.event for e in events][-1] == "message_stop"
    assert result.final_text == "exact bytes"


async def test_run_demo_sessions(fake: FakeUpstream) -> None:
    t0 = time.monotonic()
    ids = await run_demo_sessions(fake.url, sessions=3, turns=2, event_delay=0.01)
    elapsed = time.monotonic() - t0
    assert len(set(ids)) == 3
    assert elapsed < 10
    heads = [e for e in fake.exchanges if e.method == "HEAD"]
    assert len(heads) == 3
    real_head = json.loads((FIXTURES / "b_tool_bash.jsonl").read_text().splitlines()[0])
    assert real_head["method"] == "HEAD"
    assert {tuple(k for k, _ in h.headers) for h in heads} == {
        tuple(k for k, _ in real_head["headers"])
    }
    assert {h.header("User-Agent") for h in heads} == {"Bun/1.4.0"}
    assert {h.status for h in heads} == {404}
    for i, sid in enumerate(ids):
        mine = [e for e in posts(fake) if e.session_id == sid]
        assert len(mine) == 3  # one tool turn (2 requests) + one plain turn
        assert {e.status for e in mine} == {200}
        assert len({e.conn_id for e in mine}) == 1
        tools = [t.name for e in mine for t in _fold_tools(e.response_bytes)]
        assert tools == [("Bash", "Read", "Grep")[i]]
        # Nine events at 0.01 s apart at least.
        assert all(e.ended - e.started >= 0.08 for e in mine)
    assert len({e.conn_id for e in posts(fake)}) == 3


def _fold_tools(raw: bytes) -> list[ToolUse]:
    fold = StreamFold()
    for ev in SSEDecoder().feed(raw):
        fold.feed(ev)
    return fold.result.tool_uses
