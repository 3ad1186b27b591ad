"""Signals end to end: real Envoy, the real core, the fake Anthropic; exact API values."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import pytest

from clauditor.clock import parse_iso
from clauditor.sim.claude import SyntheticSession
from clauditor.sim.replies import Reply
from clauditor.sim.server import FakeUpstream
from tests.integration.stack import Stack, start_stack
from tests.signals.scenario import usage
from tests.signals.test_quota import WARNING

pytestmark = pytest.mark.integration

SONNET = "claude-sonnet-4-5-20250929"


def _session_when(stack: Stack, session_id: str, **expected: object) -> dict:
    return stack.session_when(session_id, **expected)


def _drive(stack: Stack, session_id: str, *prompts: str) -> None:
    async def go() -> None:
        async with SyntheticSession(stack.proxy_url, session_id=session_id) as s:
            for prompt in prompts:
                await s.turn(prompt)

    asyncio.run(go())


def test_cold_then_hit_cost_quota_and_summary(stack: Stack, fake: FakeUpstream) -> None:
    sid = str(uuid.uuid4())
    first = usage(input=100, write_5m=20_000, output=50)
    second = usage(input=50, read=20_000, write_5m=500, output=40)
    fake.script(
        sid,
        [Reply(text="one", usage=first, headers=WARNING), Reply(text="two", usage=second)],
    )
    _drive(stack, sid, "first prompt", "second prompt")

    s = _session_when(stack, sid, requests=2, in_flight=0, turns=2)
    cost_1 = (100 * 5 + 50 * 25 + 20_000 * 6.25) / 1e6
    cost_2 = (50 * 5 + 40 * 25 + 20_000 * 0.5 + 500 * 6.25) / 1e6
    assert s["estimated_cost_usd"] == round(cost_1 + cost_2, 6)
    assert s["cache_status"] == "hit"
    assert s["cache_ttl_seconds"] == 300
    assert s["context_window_tokens"] == 1_000_000  # opus 4.8 with the context-1m beta
    assert s["context_fill"] == 20_550 / 1_000_000
    assert s["compaction_threshold_tokens"] == 967_000
    # Two turn ends, 20,100 then 20,550 tokens: 450 a turn.
    assert s["turns_to_compact"] == (967_000 - 20_550) // 450
    assert (s["fallbacks"], s["compactions"]) == (0, 0)
    assert s["quota"]["status"] == "allowed_warning"
    assert s["quota"]["windows"]["5h"]["utilization"] == 0.93
    assert s["ttft_ms_p50"] is not None and s["ttft_ms_p50"] >= 0

    detail = stack.session(sid)
    reqs = detail["requests"]
    assert [r["cache_status"] for r in reqs] == ["cold", "hit"]
    assert [r["cost_usd"] for r in reqs] == [round(cost_1, 6), round(cost_2, 6)]
    expires = parse_iso(s["cache_expires_at"])
    ended = parse_iso(reqs[1]["ended_at"])
    assert expires is not None and ended is not None
    assert expires - ended == pytest.approx(300, abs=0.002)
    assert [t["cost_usd"] for t in detail["turns"]] == [round(cost_1, 6), round(cost_2, 6)]

    summary = stack.get("/api/summary").json()
    today = summary["today"]
    assert (today["sessions"], today["turns"], today["requests"]) == (1, 2, 2)
    assert today["tokens"] == {
        "input": 150,
        "output": 90,
        "cache_read": 20_000,
        "cache_creation": 20_500,
        "cache_creation_1h": 0,
    }
    assert today["cost_usd"] == round(cost_1 + cost_2, 6)
    assert today["cache_hit_ratio"] == 20_000 / (150 + 20_000 + 20_500)
    assert (today["fallbacks"], today["errors"]) == (0, 0)
    assert summary["week"]["requests"] == summary["month"]["requests"] == 2
    assert summary["quota"]["status"] == "allowed_warning"
    assert summary["weekly"]["tokens"] == 150 + 90 + 20_000 + 20_500
    assert summary["weekly"]["budget"] is None


def test_fallback_one_hour_ttl_prices_file_and_budget(fake: FakeUpstream, tmp_path: Path) -> None:
    prices = tmp_path / "prices.json"
    cheap = {
        "input": 1, "output": 2, "cache_write_5m": 1.25, "cache_write_1h": 2, "cache_read": 0.1,
        "context_window": 200_000, "context_window_1m_beta": 1_000_000,
    }  # fmt: skip
    prices.write_text(json.dumps({"models": {"claude-sonnet-4-5": cheap}}))
    stack = start_stack(
        fake.url, tmp_path, "--prices", str(prices), "--weekly-token-budget", "1000000"
    )
    try:
        sid = str(uuid.uuid4())
        fake.script(
            sid,
            [
                # The server answered with another model, writing the cache at the 1 h TTL.
                Reply(text="one", model=SONNET, usage=usage(input=10, write_1h=30_000, output=5)),
                Reply(text="two", usage=usage(input=20, read=5_000, output=5)),
            ],
        )
        _drive(stack, sid, "first prompt", "second prompt")
        s = _session_when(stack, sid, requests=2, in_flight=0, turns=2)
        first, second = stack.session(sid)["requests"]
        assert first["fallback"] is True
        assert first["fallback_kind"] == "response_model"
        assert (first["fallback_requested"], first["fallback_actual"]) == (
            "claude-opus-4-8",
            SONNET,
        )
        assert first["cache_ttl_seconds"] == 3600
        # Billed as sonnet 4.5 at the user's prices: 10 x 1 + 5 x 2 + 30,000 x 2 (1 h writes).
        assert first["cost_usd"] == round((10 * 1 + 5 * 2 + 30_000 * 2) / 1e6, 6)
        assert second["fallback"] is False
        assert second["cost_usd"] == round((20 * 5 + 5_000 * 0.5 + 5 * 25) / 1e6, 6)
        assert s["fallbacks"] == 1
        summary = stack.get("/api/summary").json()
        assert summary["today"]["fallbacks"] == 1
        weekly = summary["weekly"]
        used = 10 + 5 + 30_000 + 20 + 5_000 + 5
        assert (weekly["budget"], weekly["tokens"], weekly["remaining"]) == (
            1_000_000,
            used,
            1_000_000 - used,
        )
        assert weekly["used_fraction"] == used / 1_000_000
    finally:
        assert stack.stop() == 0, "\n".join(stack.log[-30:])


def _usage_of(exchange) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """Fold what the fake sent, independently of the core: the context of a request."""
    from clauditor.parsing.response import ResponseParser

    parser = ResponseParser(exchange.status, exchange.response_header("content-type"), None)
    parser.feed(exchange.decoded_response)
    u = parser.finish().usage
    return {"read": u.cache_read_input_tokens, "context": u.total_input_tokens}


def test_model_switch_thrash_and_a_compaction_learned_from_the_wire(
    stack: Stack, fake: FakeUpstream
) -> None:
    sid = str(uuid.uuid4())

    async def go() -> None:
        async with SyntheticSession(stack.proxy_url, session_id=sid) as s:
            await s.turn("first")
            await s.turn("second")
            s.model = SONNET  # /model in the middle of a session
            await s.turn("third")
            # A person reads the answer before typing: the core has seen it end before the
            # next request comes (two side streams are not ordered otherwise).
            await asyncio.to_thread(_session_when, stack, sid, requests=3, in_flight=0)
            await s.compact()
            await asyncio.to_thread(_session_when, stack, sid, requests=4, in_flight=0)
            await s.turn("after the compaction")

    asyncio.run(go())
    s = _session_when(stack, sid, requests=5, in_flight=0, compactions=1)
    reqs = stack.session(sid)["requests"]
    assert [r["kind"] for r in reqs] == ["main", "main", "main", "compaction", "main"]
    sent = [_usage_of(e) for e in fake.exchanges if e.method == "POST"]
    assert sent[2]["read"] == 0  # the fake's sonnet cache was empty
    # The fake keeps reading its per-(session, model) cache after the compaction, so the
    # first request of the new conversation reads: a hit on a fresh line.
    assert sent[4]["read"] > 0
    assert [r["cache_status"] for r in reqs] == ["cold", "hit", "miss_thrash", "hit", "hit"]
    # The threshold learned for sonnet 4.5: the compaction request's input.
    assert s["compaction_threshold_tokens"] == sent[3]["context"]
    assert s["context_tokens"] == sent[4]["context"]
    assert len(s["compacted_at"]) == 1
    summary = stack.get("/api/summary").json()
    assert summary["compaction_thresholds"] == {"claude-sonnet-4-5": sent[3]["context"]}
    assert summary["today"]["cache_statuses"] == {"cold": 1, "hit": 3, "miss_thrash": 1}
    assert summary["today"]["compaction_requests"] == 1
