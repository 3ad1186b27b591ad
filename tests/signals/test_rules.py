"""The pure rules: cache status, context projection, fallback, errors, weekly budget."""

from __future__ import annotations

import pytest

from clauditor.sessions.models import CacheLine, TokenCounts
from clauditor.sessions.signals.cache import (
    CacheKey,
    classify,
    rewritten_tokens,
    thread_of,
    ttl_in_force,
)
from clauditor.sessions.signals.context import (
    CompactionThresholds,
    default_threshold,
    growth_per_turn,
    turns_to_compact,
)
from clauditor.sessions.signals.errors import error_category
from clauditor.sessions.signals.fallback import client_fallback, response_fallback
from clauditor.sessions.signals.weekly import WeeklyTokens, week_start

T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z, a Friday
OPUS = CacheKey("claude-opus-4-8", "high", "tools-a")


def line(
    model: str = "claude-opus-4-8",
    *,
    ended: float = T0,
    ttl: int = 300,
    cached: int = 20_000,
    effort: str | None = "high",
    tools: str = "tools-a",
) -> CacheLine:
    return CacheLine("main", model, effort, tools, ended, ttl, cached)


# -- cache ---------------------------------------------------------------------------------
def test_nothing_cached_has_no_status() -> None:
    assert classify(0, 0, OPUS, T0, None, None) is None
    assert classify(0, 0, OPUS, T0 + 1, line(), line()) is None


def test_cold_then_hit_even_when_the_delta_is_large() -> None:
    assert classify(0, 20_000, OPUS, T0, None, None) == "cold"
    prev = line(cached=20_000)
    assert classify(20_000, 500, OPUS, T0 + 10, prev, prev) == "hit"
    # A 50k tool result on a 20k prefix is still growth, not a re-write.
    assert classify(20_000, 50_000, OPUS, T0 + 10, prev, prev) == "hit"
    assert classify(18_000, 2_500, OPUS, T0 + 10, prev, prev) == "hit"  # 90% of 20k


def test_partial_and_plain_miss_while_warm() -> None:
    prev = line(cached=20_000)
    assert classify(17_999, 2_500, OPUS, T0 + 10, prev, prev) == "partial"
    assert classify(0, 20_500, OPUS, T0 + 10, prev, prev) == "miss"


def test_ttl_boundary() -> None:
    prev = line(cached=20_000, ttl=300)
    assert classify(0, 20_500, OPUS, T0 + 300, prev, prev) == "miss"  # still warm
    assert classify(0, 20_500, OPUS, T0 + 300.001, prev, prev) == "miss_ttl"
    # A shared prefix kept warm elsewhere: a small read after the TTL is still miss_ttl.
    assert classify(3_000, 17_500, OPUS, T0 + 400, prev, prev) == "miss_ttl"
    assert classify(0, 20_500, OPUS, T0 + 3000, line(ttl=3600), line(ttl=3600)) == "miss"


def test_thrash_on_model_effort_or_tools_change_while_warm() -> None:
    opus = line()
    sonnet = CacheKey("claude-sonnet-4-5", "high", "tools-a")
    assert classify(0, 20_000, sonnet, T0 + 60, None, opus) == "miss_thrash"
    assert classify(0, 20_000, sonnet, T0 + 301, None, opus) == "cold"  # opus had expired
    low = CacheKey("claude-opus-4-8", "low", "tools-a")
    assert classify(0, 20_000, low, T0 + 60, opus, opus) == "miss_thrash"
    mcp = CacheKey("claude-opus-4-8", "high", "tools-b")
    assert classify(0, 20_000, mcp, T0 + 60, opus, opus) == "miss_thrash"


def test_first_request_of_a_line_that_reads() -> None:
    assert classify(5_000, 300, OPUS, T0, None, None) == "hit"
    assert classify(5_000, 9_000, OPUS, T0, None, None) == "partial"


def test_ttl_in_force_and_threads() -> None:
    assert ttl_in_force(300, 0) == 300
    assert ttl_in_force(3600, 0) == 3600
    assert ttl_in_force(300, 1) == 3600  # the response wrote ephemeral_1h tokens
    assert [thread_of(k) for k in ("main", "compaction", "subagent", "title")] == [
        "main",
        "main",
        "subagent",
        "title",
    ]


def test_rewritten_tokens() -> None:
    prev = line(cached=20_000)
    assert rewritten_tokens("miss_ttl", 0, 20_500, prev) == 20_000
    assert rewritten_tokens("miss_ttl", 0, 12_000, prev) == 12_000
    assert rewritten_tokens("partial", 15_000, 7_000, prev) == 5_000
    assert rewritten_tokens("hit", 20_000, 500, prev) == 0
    assert rewritten_tokens("cold", 0, 500, None) == 0


# -- context -------------------------------------------------------------------------------
def test_default_thresholds() -> None:
    assert default_threshold(200_000) == 167_000
    assert default_threshold(1_000_000) == 967_000
    assert default_threshold(200_000, max_tokens=8_000) == 179_000


def test_growth_and_turns_to_compact() -> None:
    assert growth_per_turn([100_000]) is None
    assert growth_per_turn([100_000, 130_000]) == 30_000
    # Up to the last 5 turns (6 samples): the first sample here is dropped.
    assert growth_per_turn([0, 100_000, 110_000, 120_000, 130_000, 140_000, 150_000]) == 10_000
    assert turns_to_compact(140_000, 167_000, 10_000.0) == 2
    assert turns_to_compact(170_000, 167_000, 10_000.0) == 0
    assert turns_to_compact(140_000, 167_000, None) is None
    assert turns_to_compact(140_000, 167_000, -5.0) is None


def test_learned_threshold_is_the_highest_recent_observation() -> None:
    th = CompactionThresholds()
    assert th.threshold("claude-opus-4-8", 200_000, 64_000) == 167_000
    th.learn("claude-opus-4-8", 150_000)
    th.learn("claude-opus-4-8", 90_000)  # a manual /compact early on
    assert th.threshold("claude-opus-4-8", 200_000, 64_000) == 150_000
    assert th.threshold("claude-sonnet-5", 1_000_000, 64_000) == 967_000
    for n in range(5):
        th.learn("claude-opus-4-8", 140_000 + n)
    assert th.learned("claude-opus-4-8") == 140_004  # only the last 5 are kept


# -- fallback and errors -------------------------------------------------------------------
def test_response_fallbacks() -> None:
    assert response_fallback("claude-opus-4-5", "claude-opus-4-5-20251101", [], 0) is None
    fb = response_fallback("claude-opus-4-8", "claude-sonnet-4-5-20250929", [], 0)
    assert fb is not None and (fb.kind, fb.requested, fb.actual) == (
        "response_model",
        "claude-opus-4-8",
        "claude-sonnet-4-5-20250929",
    )
    its = [{"type": "fallback_message", "model": "claude-sonnet-4-5"}, {"type": "message"}]
    fb = response_fallback("claude-opus-4-8", "claude-opus-4-8", its, 0)
    assert fb is not None and (fb.kind, fb.actual) == ("iteration", "claude-sonnet-4-5")
    fb = response_fallback("claude-opus-4-8", "claude-opus-4-8", [], 1)
    assert fb is not None and fb.kind == "fallback_block"


def test_client_fallback_needs_a_retry_in_the_same_turn_with_another_model() -> None:
    sonnet = "claude-sonnet-4-5-20250929"
    fb = client_fallback(True, 3, sonnet, 3, "claude-opus-4-8")
    assert fb is not None and (fb.kind, fb.requested, fb.actual) == (
        "client",
        "claude-opus-4-8",
        sonnet,
    )
    assert client_fallback(False, 3, sonnet, 3, "claude-opus-4-8") is None  # a new prompt
    assert client_fallback(True, 4, sonnet, 3, "claude-opus-4-8") is None
    assert client_fallback(True, 3, "claude-opus-4-8", 3, "claude-opus-4-8") is None


@pytest.mark.parametrize(
    ("status", "error_type", "label"),
    [
        (200, None, None),
        (529, "overloaded_error", "http_529"),
        (429, "rate_limit_error", "http_429"),
        (200, "overloaded_error", "sse_error"),
        (200, "truncated", "truncated"),
        (None, "aborted", "aborted"),
        (None, "request_not_json", "request_not_json"),
    ],
)
def test_error_categories(status: int | None, error_type: str | None, label: str | None) -> None:
    assert error_category(status, error_type) == label


# -- weekly budget -------------------------------------------------------------------------
def test_week_starts_monday_utc() -> None:
    assert week_start(T0) == 1_799_625_600.0  # 2027-01-11T00:00:00Z
    assert week_start(1_799_625_600.0) == 1_799_625_600.0


def test_weekly_count_burn_rate_and_projected_exhaustion() -> None:
    w = WeeklyTokens(budget=1_000_000)
    w.seed(TokenCounts(input=100_000), T0)  # counted by the store before a restart
    # 60,000 tokens in the last hour: 60,000 tokens/h = 1,000,000 - 160,000 left at 16.67/s.
    w.add(T0 + 60, TokenCounts(input=10_000, output=5_000, cache_read=10_000))
    w.add(T0 + 3000, TokenCounts(cache_creation=35_000))
    now = T0 + 3600
    assert w.used(now) == 160_000
    assert w.burn_rate(now) == 60_000 / 3600
    assert w.projected_exhaustion_at(now) == pytest.approx(now + 840_000 / (60_000 / 3600))
    v = w.view(now)
    assert (v["tokens"], v["remaining"], v["used_fraction"], v["exhausted"]) == (
        160_000,
        840_000,
        0.16,
        False,
    )
    assert v["resets_at"] == "2027-01-18T00:00:00.000Z"
    assert v["burn_rate_tokens_per_hour"] == pytest.approx(60_000)
    assert v["seconds_to_exhaustion"] == pytest.approx(50_400)  # 14 h, before Monday
    # The first request ages out of the trailing hour.
    assert w.burn_rate(T0 + 3661) == 35_000 / 3600


def test_weekly_pace_that_does_not_exhaust_before_reset_and_a_new_week() -> None:
    w = WeeklyTokens(budget=100_000_000)
    w.add(T0, TokenCounts(output=1_000))
    assert w.projected_exhaustion_at(T0 + 1) is None
    monday = 1_799_625_600.0 + 7 * 86400
    assert w.used(monday) == 0  # the week rolled over
    w.add(monday + 5, TokenCounts(input=7))
    assert w.used(monday + 5) == 7
    w.add(T0, TokenCounts(input=1_000))  # a late event from last week is not counted
    assert w.used(monday + 5) == 7
    over = WeeklyTokens(budget=10)
    over.add(T0, TokenCounts(input=11))
    assert over.view(T0)["exhausted"] is True
    assert over.projected_exhaustion_at(T0) is None
    assert WeeklyTokens().view(T0)["budget"] is None
