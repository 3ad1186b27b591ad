"""The issue's scenarios, replayed into a tracker with a manual clock; exact values, worked
out by hand from the documented prices (opus 4.8: $5 in, $25 out, $6.25 5m write, $10 1h
write, $0.50 read; sonnet 4.5: $3, $15, $3.75, $6, $0.30 per million tokens)."""

from __future__ import annotations

import pytest

from clauditor.clock import iso
from clauditor.sessions.signals.engine import SignalEngine
from clauditor.sessions.signals.prices import packaged_prices
from tests.helpers import fixture_posts, headers_of
from tests.signals.scenario import BETAS_200K, SESSION, Scenario, record, usage
from tests.signals.test_quota import WARNING

SONNET = "claude-sonnet-4-5-20250929"


def test_cold_start_then_hits() -> None:
    sc = Scenario()
    t0 = sc.clock.now()
    first = sc.send(record("one", usage(input=100, write_5m=20_000, output=50)))
    sc.wait(60)
    second = sc.send(record("two", usage(input=50, read=20_000, write_5m=500, output=40)))
    sc.wait(60)
    third = sc.send(record("three", usage(input=30, read=20_500, write_5m=300, output=20)))

    assert [r.signals.cache_status for r in (first, second, third)] == ["cold", "hit", "hit"]
    assert first.signals.cost_usd == pytest.approx((100 * 5 + 50 * 25 + 20_000 * 6.25) / 1e6)
    assert second.signals.cost_usd == pytest.approx(
        (50 * 5 + 40 * 25 + 20_000 * 0.5 + 500 * 6.25) / 1e6
    )
    assert third.signals.cost_usd == pytest.approx(
        (30 * 5 + 20 * 25 + 20_500 * 0.5 + 300 * 6.25) / 1e6
    )
    assert first.signals.cache_rebuild_cost_usd == pytest.approx(20_000 * 6.25 / 1e6)
    assert third.signals.cache_rebuild_cost_usd == pytest.approx(20_800 * 6.25 / 1e6)
    assert [r.signals.cache_miss_waste_usd for r in (first, second, third)] == [None] * 3
    # Each request lasts 2 s; the third ends at t0 + 126 s; 5 min TTL.
    assert third.signals.cache_ttl_seconds == 300
    assert third.signals.cache_expires_at == t0 + 126 + 300
    s = sc.session()
    api = s.as_api()
    assert api["cache_status"] == "hit"
    assert api["cache_ttl_seconds"] == 300
    assert api["cache_expires_at"] == iso(t0 + 426)
    assert api["cache_by_model"]["claude-opus-4-8"]["cached_tokens"] == 20_800
    assert api["cache_statuses"] == {"cold": 1, "hit": 2}
    expected = (
        (100 * 5 + 50 * 25 + 20_000 * 6.25)
        + (50 * 5 + 40 * 25 + 20_000 * 0.5 + 500 * 6.25)
        + (30 * 5 + 20 * 25 + 20_500 * 0.5 + 300 * 6.25)
    ) / 1e6
    assert api["estimated_cost_usd"] == round(expected, 6)
    assert [t.cost_usd for t in s.turns] == pytest.approx(
        [r.signals.cost_usd for r in (first, second, third)]
    )
    assert sc.engine.daily_cost == {"2027-01-15": pytest.approx(expected)}
    # Latency: response and first token 1 s after the start, the end 1 s later.
    assert first.signals.output_tokens_per_second == 50.0
    assert api["ttft_ms_p50"] == 1000.0
    assert [t.idle_before_ms for t in s.turns] == [None, 60_000.0, 60_000.0]


def test_idle_gap_longer_than_the_ttl_is_miss_ttl() -> None:
    sc = Scenario()
    sc.send(record("one", usage(input=100, write_5m=20_000, output=50)))
    sc.wait(300)  # exactly the TTL after the end: still warm
    warm = sc.send(record("two", usage(input=50, read=20_000, write_5m=500, output=40)))
    sc.wait(301)  # one second past the TTL
    cold = sc.send(record("three", usage(input=60, write_5m=20_600, output=40)))

    assert warm.signals.cache_status == "hit"
    assert cold.signals.cache_status == "miss_ttl"
    # What was cached (20,500) was written again: (write - read) on each token.
    assert cold.signals.cache_miss_waste_usd == pytest.approx(20_500 * (6.25 - 0.5) / 1e6)
    s = sc.session()
    assert s.signals.cache_status == "miss_ttl"
    assert s.signals.cache_miss_waste_usd == pytest.approx(20_500 * 5.75 / 1e6)
    assert s.turns[-1].idle_before_ms == 301_000.0


def test_one_hour_ttl_session() -> None:
    sc = Scenario()
    t0 = sc.clock.now()
    # The request asked ttl "1h" and the response wrote ephemeral_1h tokens.
    first = sc.send(record("one", usage(input=100, write_1h=20_000, output=50), ttl_1h=True))
    sc.wait(1800)  # half an hour: a 5 min cache would be long gone
    second = sc.send(
        record("two", usage(input=50, read=20_000, write_1h=500, output=40), ttl_1h=True)
    )
    assert first.signals.cache_ttl_seconds == 3600
    assert first.signals.cost_usd == pytest.approx((100 * 5 + 50 * 25 + 20_000 * 10) / 1e6)
    assert first.signals.cache_rebuild_cost_usd == pytest.approx(20_000 * 10 / 1e6)
    assert second.signals.cache_status == "hit"
    assert second.signals.cost_usd == pytest.approx(
        (50 * 5 + 40 * 25 + 20_000 * 0.5 + 500 * 10) / 1e6
    )
    api = sc.session().as_api()
    assert api["cache_ttl_seconds"] == 3600
    assert api["cache_expires_at"] == iso(t0 + 2 + 1800 + 2 + 3600)
    # Subscribers: no ttl in the request, but 1h writes in the response.
    sub = sc.send(
        record("x", usage(input=1, write_1h=5_000, output=1), session="sub-1", ttl_1h=False)
    )
    assert sub.signals.cache_ttl_seconds == 3600


def test_model_switch_while_warm_is_miss_thrash() -> None:
    sc = Scenario()
    sc.send(record("one", usage(input=100, write_5m=20_000, output=50)))
    sc.wait(60)
    switched = sc.send(
        record("two", usage(input=50, write_5m=20_500, output=40), model=SONNET, effort=None)
    )
    assert switched.signals.cache_status == "miss_thrash"
    # The sonnet cache re-wrote what opus held (20,000), at sonnet's prices.
    assert switched.signals.cache_miss_waste_usd == pytest.approx(20_000 * (3.75 - 0.3) / 1e6)
    assert switched.signals.cost_usd == pytest.approx((50 * 3 + 40 * 15 + 20_500 * 3.75) / 1e6)
    assert sc.session().as_api()["cache_status"] == "miss_thrash"
    # Back on opus with a lower effort level: a new cache key again.
    sc.wait(60)
    effort = sc.send(record("three", usage(input=5, write_5m=21_000, output=4), effort="low"))
    assert effort.signals.cache_status == "miss_thrash"
    # Fewer tools (an MCP server went away) on the same model and effort.
    sc.wait(60)
    sc.send(record("four", usage(input=5, read=21_000, write_5m=100, output=4), effort="low"))
    sc.wait(60)
    tools = sc.send(record("five", usage(write_5m=21_200), effort="low", tools=10))
    assert tools.signals.cache_status == "miss_thrash"


def test_context_growing_to_within_two_turns_of_the_threshold() -> None:
    sc = Scenario()
    # 200k window (no context-1m beta): threshold 200,000 - 20,000 - 13,000 = 167,000.
    sizes = [100_000, 110_000, 120_000, 130_000, 140_000]
    for i, size in enumerate(sizes):
        sc.send(
            record(
                f"turn {i}",
                usage(input=1_000, read=size - 5_000, write_5m=4_000, output=9),
                betas=BETAS_200K,
            )
        )
        sc.wait(30)
    s = sc.session()
    api = s.as_api()
    assert api["context_window_tokens"] == 200_000
    assert api["context_tokens"] == 140_000
    assert api["context_fill"] == 0.7
    assert api["compaction_threshold_tokens"] == 167_000
    # Growth 10,000 per turn; (167,000 - 140,000) / 10,000 = 2.7: two more turns fit.
    assert api["turns_to_compact"] == 2
    assert api["context_peak"] == 0.7
    # With the 1M beta the window and the default threshold follow.
    other = Scenario()
    other.send(record("big", usage(input=1_000, write_5m=199_000, output=9)))
    o = other.session().as_api()
    assert (o["context_window_tokens"], o["compaction_threshold_tokens"]) == (1_000_000, 967_000)
    assert o["context_fill"] == 0.2
    assert o["turns_to_compact"] is None  # one turn: no growth yet


def test_compaction_learned_from_the_wire() -> None:
    engine = SignalEngine(Scenario().clock)
    sc = Scenario(engine)
    for i, size in enumerate((120_000, 150_000)):
        sc.send(
            record(
                f"t{i}",
                usage(input=500, read=size - 1_000, write_5m=500, output=9),
                betas=BETAS_200K,
            )
        )
        sc.wait(10)
    compaction = sc.send(
        record("t1", usage(input=700, read=149_500, output=2_000), compact=True, betas=BETAS_200K)
    )
    assert compaction.kind == "compaction"
    s = sc.session()
    assert s.signals.compactions == 0  # not until the continuation turn confirms it
    assert compaction.signals.cache_status == "hit"  # it reuses the whole prefix
    sc.wait(5)
    after = sc.send(
        record(
            "next", usage(input=3_000, write_5m=17_000, output=9), continued=True, betas=BETAS_200K
        )
    )
    assert after.signals.cache_status == "cold"  # a new conversation, a new cache
    assert after.signals.cache_miss_waste_usd is None
    api = s.as_api()
    assert api["compactions"] == 1
    assert api["compacted_at"] == [iso(compaction.ended_at)]
    # The compaction request's input (700 + 149,500): the context that set it off.
    assert api["compaction_threshold_tokens"] == 150_200
    assert api["context_tokens"] == 20_000
    assert api["turns_to_compact"] is None  # growth restarts after a compaction
    assert engine.compactions == 1
    assert engine.learned_thresholds() == {"claude-opus-4-8": 150_200}
    sc.wait(10)
    sc.send(
        record(
            "more",
            usage(input=3_000, read=20_000, write_5m=7_000, output=9),
            continued=True,
            betas=BETAS_200K,
        )
    )
    # Growth 10,000 per turn: (150,200 - 30,000) / 10,000 = 12.02: 12 turns.
    assert s.as_api()["turns_to_compact"] == 12
    # Another session on the same model starts from the learned threshold.
    sc.send(
        record("other", usage(input=10, write_5m=5_000, output=1), session="s-2", betas=BETAS_200K)
    )
    assert sc.session("s-2").as_api()["compaction_threshold_tokens"] == 150_200


def test_continuation_seen_before_the_compaction_response_ended() -> None:
    """ext_proc side streams are not ordered: the next request can come first."""
    from clauditor.domain.events import ExchangeFinished, RequestParsed, RequestStarted
    from clauditor.parsing.request import parse_request
    from tests.helpers import body_bytes
    from tests.sessions.replay import result_of

    sc = Scenario()
    t = sc.tracker
    compact = record("t0", usage(input=700, read=99_300, output=2_000), compact=True)
    after = record("next", usage(input=3_000, write_5m=17_000, output=9), continued=True)
    now = sc.clock.now()
    for ex, rec in ((1, compact), (2, after)):
        t.handle(RequestStarted(ex, now, SESSION))
        req = parse_request(headers_of(rec), body_bytes(rec))
        t.handle(RequestParsed(ex, now, now, req, None))
    assert sc.session().signals.compactions == 0
    t.handle(ExchangeFinished(1, now + 1, 200, result_of(compact["response"]), None))
    assert sc.session().signals.compactions == 1
    assert sc.engine.learned_thresholds() == {"claude-opus-4-8": 100_000}
    t.handle(ExchangeFinished(2, now + 2, 200, result_of(after["response"]), None))
    assert sc.session().as_api()["context_tokens"] == 20_000


def test_continuation_seen_before_the_compaction_request_itself() -> None:
    """A core lagging enough to open the compaction's side stream after the next
    request's: the continuation confirms it all the same (within 30 s), once."""
    from clauditor.domain.events import ExchangeFinished, RequestParsed, RequestStarted
    from clauditor.parsing.request import parse_request
    from tests.helpers import body_bytes
    from tests.sessions.replay import result_of

    sc = Scenario()
    t = sc.tracker
    compact = record("t0", usage(input=700, read=99_300, output=2_000), compact=True)
    after = record("next", usage(input=3_000, write_5m=17_000, output=9), continued=True)
    now = sc.clock.now()
    for ex, rec in ((2, after), (1, compact)):  # the continuation first
        t.handle(RequestStarted(ex, now, SESSION))
        req = parse_request(headers_of(rec), body_bytes(rec))
        t.handle(RequestParsed(ex, now, now, req, None))
        sc.wait(0.2)
    t.handle(ExchangeFinished(1, now + 1, 200, result_of(compact["response"]), None))
    t.handle(ExchangeFinished(2, now + 2, 200, result_of(after["response"]), None))
    assert sc.session().signals.compactions == 1
    assert sc.session().signals.continued_unmatched is None

    # A continuation long before (a stale one): a compaction 31 s later is not confirmed.
    sc2 = Scenario()
    t2 = sc2.tracker
    t2.handle(RequestStarted(2, sc2.clock.now(), SESSION))
    req = parse_request(headers_of(after), body_bytes(after))
    t2.handle(RequestParsed(2, sc2.clock.now(), sc2.clock.now(), req, None))
    t2.handle(ExchangeFinished(2, sc2.clock.now(), 200, result_of(after["response"]), None))
    sc2.wait(31.0)
    sc2.send(compact)
    assert sc2.session().signals.compactions == 0


def test_compaction_without_a_continuation_is_not_counted() -> None:
    sc = Scenario()
    sc.send(record("t0", usage(input=500, write_5m=100_000, output=9)))
    sc.send(record("t0", usage(input=700, read=100_000, output=2_000), compact=True))
    sc.send(record("a new prompt", usage(input=500, read=100_000, write_5m=900, output=9)))
    assert sc.session().signals.compactions == 0
    assert sc.engine.learned_thresholds() == {}


def test_response_model_fallback() -> None:
    sc = Scenario()
    r = sc.send(record("one", usage(input=100, output=50), response_model=SONNET))
    assert (r.signals.fallback, r.signals.fallback_kind) == (True, "response_model")
    assert (r.signals.fallback_requested, r.signals.fallback_actual) == (
        "claude-opus-4-8",
        SONNET,
    )
    assert r.signals.cost_usd == pytest.approx((100 * 3 + 50 * 15) / 1e6)  # billed as sonnet
    dated = sc.send(record("two", usage(input=1), response_model="claude-opus-4-8-20260301"))
    assert dated.signals.fallback is False  # same family, dated id
    block = sc.send(
        record(
            "three", usage(input=1), content=[{"type": "fallback"}, {"type": "text", "text": "x"}]
        )
    )
    assert block.signals.fallback_kind == "fallback_block"
    assert sc.session().as_api()["fallbacks"] == 2
    assert sc.engine.fallbacks == 2


def test_iterations_fallback_bills_each_attempt_at_its_model() -> None:
    sc = Scenario()
    its = [
        {
            "type": "fallback_message",
            "model": "claude-opus-4-8",
            "input_tokens": 1_000,
            "output_tokens": 0,
        },
        {
            "type": "message",
            "model": SONNET,
            "input_tokens": 1_000,
            "output_tokens": 200,
            "cache_creation_input_tokens": 2_000,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 2_000},
        },
    ]
    u = usage(input=2_000, output=200, write_1h=2_000, iterations=its)
    r = sc.send(record("one", u, response_model=SONNET))
    assert r.signals.fallback_kind == "response_model"  # the response model already says so
    assert r.signals.cost_usd == pytest.approx((1_000 * 5 + 1_000 * 3 + 200 * 15 + 2_000 * 6) / 1e6)
    same = sc.send(record("two", usage(input=1_000, iterations=its[:1])))
    assert (same.signals.fallback_kind, same.signals.fallback_actual) == (
        "iteration",
        "claude-opus-4-8",
    )


def test_client_side_fallback_after_529s() -> None:
    sc = Scenario()
    posts = fixture_posts("f_529_retry")
    sid = headers_of(posts[0])["x-claude-code-session-id"]
    for rec in posts[:3]:
        sc.send(rec, duration=0.1)
        sc.wait(0.5)
    # Claude Code's --fallback-model: the same turn resent on sonnet.
    last = posts[3]
    rec = {**last, "body": {**last["body"], "model": SONNET}}
    rec["response"] = {**last["response"], "model": SONNET}
    switched = sc.send(rec)
    assert switched.retry is True
    assert (switched.signals.fallback, switched.signals.fallback_kind) == (True, "client")
    assert (switched.signals.fallback_requested, switched.signals.fallback_actual) == (
        "claude-opus-4-8",
        SONNET,
    )
    api = sc.session(sid).as_api()
    assert api["fallbacks"] == 1
    assert api["errors_by_type"] == {"http_529": 3}
    assert sc.engine.errors_by_type == {"http_529": 3}
    # usage of the fixture's answer: 1559 in, 17548 5m writes, 11 out, at sonnet prices.
    assert switched.signals.cost_usd == pytest.approx((1_559 * 3 + 17_548 * 3.75 + 11 * 15) / 1e6)


def test_quota_headers_at_allowed_warning() -> None:
    sc = Scenario()
    sc.send(record("one", usage(input=10, output=1)), quota=WARNING)
    api = sc.session().as_api()["quota"]
    assert api["status"] == "allowed_warning"
    assert api["windows"]["5h"]["utilization"] == 0.93
    assert api["windows"]["7d"]["utilization"] == 0.41
    assert api["representative_claim"] == "five_hour"
    assert api["observed_at"] == iso(sc.clock.now() - 1.0)  # the response headers' time
    assert sc.engine.quota is not None
    assert sc.engine.quota.utilization() == {"5h": 0.93, "7d": 0.41}
    # A 429 that only says retry-after keeps the utilization seen before.
    sc.send(
        record("two", usage(), status=429),
        quota={"retry-after": "30", "anthropic-ratelimit-unified-status": "rejected"},
    )
    view = sc.engine.quota_view()
    assert view is not None
    assert (view["status"], view["retry_after_seconds"]) == ("rejected", 30.0)
    assert view["windows"]["5h"]["utilization"] == 0.93
    assert sc.session().as_api()["errors_by_type"] == {"http_429": 1}


def _unified(five_h: float, seven_d: float, five_h_reset: int = 1_800_018_000) -> dict[str, str]:
    return {
        "anthropic-ratelimit-unified-status": "allowed",
        "anthropic-ratelimit-unified-5h-utilization": str(five_h),
        "anthropic-ratelimit-unified-5h-reset": str(five_h_reset),
        "anthropic-ratelimit-unified-7d-utilization": str(seven_d),
        "anthropic-ratelimit-unified-7d-reset": "1800500000",
    }


def test_each_rise_of_a_quota_window_goes_to_the_session_that_reported_it() -> None:
    sc = Scenario()
    a, b = SESSION, "5e55a0e1-0000-4000-8000-00000000beef"
    sc.send(record("a1", usage(input=10, output=1), session=a), quota=_unified(0.10, 0.30))
    sc.send(record("b1", usage(input=10, output=1), session=b), quota=_unified(0.14, 0.31))
    sc.send(record("a2", usage(input=10, output=1), session=a), quota=_unified(0.20, 0.33))
    sc.send(record("b2", usage(input=10, output=1), session=b), quota=_unified(0.20, 0.33))
    # The 5h window resets (a new period): its first value is no one's rise.
    sc.send(
        record("a3", usage(input=10, output=1), session=a),
        quota=_unified(0.02, 0.34, five_h_reset=1_800_036_000),
    )
    sc.send(
        record("b3", usage(input=10, output=1), session=b),
        quota=_unified(0.05, 0.34, five_h_reset=1_800_036_000),
    )
    # The first report is the baseline. 5h: b +0.04, a +0.06, then the new period's
    # first value (a's), then b +0.03. 7d: b +0.01, a +0.02, a +0.01.
    share_a = sc.session(a).as_api()["quota_share"]
    share_b = sc.session(b).as_api()["quota_share"]
    assert share_a == {"5h": pytest.approx(0.06), "7d": pytest.approx(0.03)}
    assert share_b == {"5h": pytest.approx(0.07), "7d": pytest.approx(0.01)}


@pytest.mark.parametrize("model", sorted(packaged_prices().models))
def test_cost_is_tokens_times_table_prices_for_every_model(model: str) -> None:
    sc = Scenario()
    # A prompt every model takes (167k < 200k); Haiku 5.5 prices it at its upper band.
    u = usage(input=23_456, output=7_890, read=104_567, write_5m=25_678, write_1h=13_456)
    r = sc.send(record("one", u, model=model))
    p = packaged_prices().models[model].rates_for(23_456 + 104_567 + 25_678 + 13_456)
    expected = (
        23_456 * p.input
        + 7_890 * p.output
        + 104_567 * p.cache_read
        + 25_678 * p.cache_write_5m
        + 13_456 * p.cache_write_1h
    ) / 1e6
    assert r.signals.cost_usd is not None
    assert round(r.signals.cost_usd, 2) == round(expected, 2)
    assert sc.session().as_api()["estimated_cost_usd"] == round(expected, 6)
    assert sc.session().turns[0].cost_usd == pytest.approx(expected)


def test_unpriced_model_is_reported_not_guessed() -> None:
    sc = Scenario()
    r = sc.send(
        record("one", usage(input=100, output=5), model="claude-opus-4-9", betas=BETAS_200K)
    )
    assert r.signals.cost_usd is None
    api = sc.session().as_api()
    # Unknown stays unknown at every level: null, never 0.0, and no guessed window.
    assert (api["estimated_cost_usd"], api["unpriced_requests"]) == (None, 1)
    turn = sc.session().turns[-1].as_api()
    assert (turn["cost_usd"], turn["unpriced_requests"]) == (None, 1)
    assert sc.engine.daily_cost_view() == {"2027-01-15": None}
    assert (r.signals.context_window, r.signals.context_fill) == (None, None)
    assert (api["context_window_tokens"], api["context_fill"]) == (None, None)
    # A priced request next to it: the total is what was priced, with the count beside.
    sc.send(record("two", usage(input=1_000_000), model="claude-opus-4-8", betas=BETAS_200K))
    api = sc.session().as_api()
    assert (api["estimated_cost_usd"], api["unpriced_requests"]) == (5.0, 1)
    assert sc.engine.daily_cost_view() == {"2027-01-15": 5.0}


def test_weekly_budget_through_the_engine() -> None:
    sc = Scenario()
    engine = SignalEngine(sc.clock, weekly_token_budget=1_000_000)
    sc = Scenario(engine, sc.clock)
    sc.send(record("one", usage(input=50_000, read=40_000, write_5m=9_000, output=1_000)))
    v = engine.weekly_view()
    assert (v["tokens"], v["remaining"], v["budget"]) == (100_000, 900_000, 1_000_000)
    # 100,000 tokens in the trailing hour: 900,000 left at 100,000 per hour = 9 h.
    assert v["seconds_to_exhaustion"] == pytest.approx(9 * 3600)
    assert v["tokens_by_type"] == {
        "input": 50_000,
        "output": 1_000,
        "cache_read": 40_000,
        "cache_creation": 9_000,
    }


def test_subagent_cache_is_its_own_line_and_does_not_touch_context() -> None:
    sc = Scenario()
    posts = fixture_posts("e_subagent")
    sid = headers_of(posts[0])["x-claude-code-session-id"]
    main, sub, final = (sc.send(p) for p in posts)
    assert [r.kind for r in (main, sub, final)] == ["main", "subagent", "main"]
    # Its own line: the first subagent request read 10,223 and wrote nothing.
    assert sub.signals.cache_status == "hit"
    assert sub.signals.context_fill is None
    assert final.signals.cache_status == "hit"
    s = sc.session(sid).signals
    assert s.context_tokens == final.tokens.total_input
    assert s.cache_lines[("main", "claude-opus-4-8")].cached_tokens == 17_551 + 1_697
    assert s.cache_lines[("subagent", "claude-opus-4-8")].cached_tokens == 10_223
    assert SESSION not in sc.tracker.sessions


def test_errors_by_type_sse_error_and_truncated() -> None:
    from tests.sessions.replay import cut

    sc = Scenario()
    sc.replay.exchange(cut(record("one", usage()), "sse_error"))
    sc.replay.exchange(cut(record("one", usage()), "truncated"))
    sc.send(record("one", usage(input=10, output=1)))
    api = sc.session().as_api()
    assert api["errors_by_type"] == {"sse_error": 1, "truncated": 1}
    assert api["retries"] == 2
    reqs = sc.tracker.recent_requests(SESSION)
    assert [r.signals.error_category for r in reqs] == ["sse_error", "truncated", None]
    assert [r.signals.cost_usd for r in reqs[:2]] == [0.0, 0.0]
