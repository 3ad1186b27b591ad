"""Real Envoy + real core + fake Anthropic + a streaming HTTP client, end to end."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from clauditor.parsing.fold import fold_message_json
from clauditor.parsing.response import ResponseParser
from clauditor.sim.claude import SyntheticSession
from clauditor.sim.server import FakeUpstream
from tests.helpers import fixture_posts, wait_until
from tests.integration.stack import Stack

pytestmark = pytest.mark.integration

BASH = '[[fake:tool Bash {"command": "ls -la /tmp"}]]'


def _usage_of(exchange) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """Fold what the fake actually sent, independently of the core."""
    ctype = exchange.response_header("content-type")
    if ctype and ctype.startswith("text/event-stream"):
        parser = ResponseParser(exchange.status, ctype, None)
        parser.feed(exchange.decoded_response)
        result = parser.finish()
    else:
        result = fold_message_json(json.loads(exchange.decoded_response))
    u = result.usage
    return {
        "input_tokens": u.input_tokens,
        "output_tokens": u.output_tokens,
        "cache_read_tokens": u.cache_read_input_tokens,
        "cache_creation_tokens": u.cache_creation_input_tokens,
    }


def _session_when(stack: Stack, session_id: str, **expected: object) -> dict:
    return stack.session_when(session_id, **expected)


def test_tool_round_trip_is_tracked_with_exact_numbers(stack: Stack, fake: FakeUpstream) -> None:
    async def drive() -> tuple[str, object]:
        async with SyntheticSession(stack.proxy_url) as s:
            result = await s.turn(f"list the temp dir {BASH}")
            return s.session_id, result

    session_id, result = asyncio.run(drive())
    assert result.requests == 2
    assert result.tool_uses == ["Bash"]

    exchanges = [e for e in fake.exchanges if e.method == "POST"]
    assert len(exchanges) == 2
    # Envoy hands Claude Code exactly the bytes Anthropic sent.
    assert result.received == [e.response_bytes for e in exchanges]

    session = _session_when(stack, session_id, requests=2, turns=1, in_flight=0)
    usages = [_usage_of(e) for e in exchanges]
    for key in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_creation_tokens"):
        assert session[key] == sum(u[key] for u in usages), key
    assert session["model"] == "claude-opus-4-8"
    assert session["tool_calls"] == 1
    assert session["tools"] == {"Bash": 1}
    assert session["tool_failures"] == 0
    assert session["first_prompt"].startswith("list the temp dir")
    assert session["status"] == "active"

    detail = stack.session(session_id)
    assert [r["kind"] for r in detail["requests"]] == ["main", "main"]
    assert [r["stop_reason"] for r in detail["requests"]] == ["tool_use", "end_turn"]
    assert [r["request_id"] for r in detail["requests"]] == [e.request_id for e in exchanges]
    first, second = detail["requests"]
    assert first["tool_uses"][0]["name"] == "Bash"
    assert first["ttft_ms"] is not None and first["ttft_ms"] >= 0
    assert second["duration_ms"] >= second["ttft_ms"]
    assert detail["turns"][0]["outcome"] == "completed"
    assert detail["turns"][0]["tool_calls"] == 1
    assert stack.get("/api/sessions/no-such-session").status_code == 404


def test_eight_concurrent_sessions_stay_separate(stack: Stack, fake: FakeUpstream) -> None:
    tools = ["Bash", "Read", "Grep", "Glob", "Bash", "Read", "Grep", "Glob"]

    async def one(i: int) -> str:
        directive = f'[[fake:tool {tools[i]} {{"pattern": "p{i}", "file_path": "/f{i}"}}]]'
        async with SyntheticSession(stack.proxy_url) as s:
            await s.turn(f"session {i} {directive}")
            await s.turn(f"session {i} second turn")
            return s.session_id

    async def drive() -> list[str]:
        return await asyncio.gather(*(one(i) for i in range(8)))

    ids = asyncio.run(drive())
    assert len(set(ids)) == 8
    for i, session_id in enumerate(ids):
        s = _session_when(stack, session_id, requests=3, in_flight=0)
        assert s["turns"] == 2
        assert s["tools"] == {tools[i]: 1}
        assert s["first_prompt"].startswith(f"session {i} ")


def test_non_messages_traffic_is_ignored_quietly(stack: Stack) -> None:
    r = httpx.head(stack.proxy_url + "/", timeout=5, trust_env=False)
    assert r.status_code == 404
    stats = wait_until(
        lambda: stack.get("/api/stats").json()["interpreter"]["ignored"] == 1 or None
    )
    assert stats
    assert stack.sessions() == []


def test_history_survives_a_restart(fake: FakeUpstream, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.integration.stack import start_stack

    first = start_stack(fake.url, tmp_path)
    try:

        async def drive() -> str:
            async with SyntheticSession(first.proxy_url) as s:
                await s.turn(f"before restart {BASH}")
                return s.session_id

        session_id = asyncio.run(drive())
        before = _session_when(first, session_id, requests=2, in_flight=0)
    finally:
        assert first.stop() == 0

    second = start_stack(fake.url, tmp_path)  # same database file
    try:
        (after,) = [s for s in second.sessions() if s["session_id"] == session_id]
        assert after["live"] is False
        assert after["status"] == "ended"
        for key in ("turns", "requests", "tool_calls", "tools", "output_tokens", "first_prompt"):
            assert after[key] == before[key], key
        detail = second.session(session_id)
        assert len(detail["requests"]) == 2
        assert detail["tool_calls"][0]["name"] == "Bash"
    finally:
        assert second.stop() == 0


def test_an_unreachable_upstream_is_diagnosed_as_such_not_as_overload(tmp_path: Path) -> None:
    from clauditor.netaddr import free_port
    from tests.integration.stack import start_stack

    closed = free_port()  # nothing listens there: Envoy answers its own 503
    stack = start_stack(f"http://127.0.0.1:{closed}", tmp_path)
    try:
        record = fixture_posts("a_plain_text")[0]
        sid = "0dead000-0000-4000-8000-000000000503"
        for _ in range(3):  # Claude Code retries what it cannot reach
            response = stack.post_record(record, session_id=sid)
            assert response.status_code == 503
            assert response.text.startswith("upstream connect error")
        session = stack.session_when(sid, requests=3, in_flight=0)
        assert session["errors_by_type"] == {"upstream_unreachable": 3}
        detail = stack.session(sid)
        assert {r["outcome"] for r in detail["requests"]} == {"upstream_unreachable"}
        codes = [f["code"] for f in stack.get(f"/api/diagnosis/{sid}").json()["findings"]]
        assert "upstream_unreachable" in codes and "retry_storm" not in codes
    finally:
        assert stack.stop() == 0
