"""Claude Code's own numbers (its status-line payload) beside the wire's, and the drift mark.

The payloads and requests are what the real Claude Code 2.1.332 piped and sent in one
interactive session (tests/fixtures/claude-code-2.1.332/statusline, captured by
scripts/capture_statusline.py): a plain prompt, then one the fake answered with
claude-sonnet-5-5 although claude-opus-5-5 was asked for. Expected numbers are Claude
Code's own or worked out by hand from the documented prices (docs/anthropic-api.md:
Opus 5.5 $4 / $20 / $5 write / $0.20 read; Sonnet 5.5 $2 / $10 / $2.50 / $0.10 read
from 2026-10-07), never from the code under test.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from clauditor.claude_code import statusline_numbers, ttl_seconds
from clauditor.clock import ManualClock, iso
from clauditor.sessions.client_view import (
    apply_client_view,
    client_drift,
    needs_you_elsewhere,
    statusline_view,
)
from clauditor.sessions.models import Session
from clauditor.sessions.signals.engine import SignalEngine
from clauditor.sessions.tracker import SessionTracker
from tests.sessions.replay import Replayer

CAPTURE = Path(__file__).parent.parent / "fixtures" / "claude-code-2.1.332" / "statusline"
SID = "56fb9a3f-2a6c-4192-84ec-7b4d8b9fe343"


def payloads() -> list[dict[str, Any]]:
    return [json.loads(x) for x in (CAPTURE / "payloads.jsonl").read_text().splitlines()]


def requests() -> list[dict[str, Any]]:
    return [json.loads(x) for x in (CAPTURE / "requests.jsonl").read_text().splitlines()]


# ---------------------------------------------------------------- the payload's numbers


def test_the_numbers_of_the_captured_payload_after_the_second_reply() -> None:
    numbers = statusline_numbers(payloads()[-1])
    assert numbers == {
        "cost_usd": 0.0800142,
        "duration_ms": numbers["duration_ms"],  # wall time of the run: not compared
        "api_duration_ms": numbers["api_duration_ms"],
        "context_tokens": 149 + 1341 + 12811,  # input + cache write + cache read
        "context_window_tokens": 1_000_000,
        "context_used_pct": 1.0,
        # An API key, not a claude.ai subscription: Claude Code sends no rate_limits.
        "rate_limit_5h_pct": None,
        "rate_limit_5h_resets_at": None,
        "rate_limit_7d_pct": None,
        "rate_limit_7d_resets_at": None,
        "cache_warm": True,
        "cache_ttl_seconds": 300,
        "cache_expires_at": 1796195725.0,
        "cache_hit_ratio": payloads()[-1]["prompt_cache"]["hit_ratio"],
        "cache_requests": 2,
        "cache_misses": 0,
        "model": "claude-opus-5-5",
        "version": "2.1.332",
    }
    assert isinstance(numbers["duration_ms"], float)


def test_the_first_payload_comes_before_any_response() -> None:
    numbers = statusline_numbers(payloads()[0])
    assert numbers["cost_usd"] == 0.0
    assert numbers["context_tokens"] is None and numbers["cache_expires_at"] is None
    assert numbers["context_window_tokens"] == 1_000_000


def test_rate_limits_as_documented_and_junk_ignored() -> None:
    # The documented shape (Claude Code docs, statusLine): used_percentage 0-100, resets_at
    # in epoch seconds; only with a claude.ai subscription.
    payload = {
        "rate_limits": {
            "five_hour": {"used_percentage": 42.5, "resets_at": 1796200000},
            "seven_day": {"used_percentage": True, "resets_at": "soon"},
        },
        "cost": {"total_cost_usd": float("nan")},
        "prompt_cache": {"ttl": "1h", "warm": "yes"},
        "model": {"id": "x" * 101},
    }
    numbers = statusline_numbers(payload)
    assert (numbers["rate_limit_5h_pct"], numbers["rate_limit_5h_resets_at"]) == (42.5, 1796200000)
    assert (numbers["rate_limit_7d_pct"], numbers["rate_limit_7d_resets_at"]) == (None, None)
    assert numbers["cost_usd"] is None and numbers["cache_warm"] is None
    assert numbers["cache_ttl_seconds"] == 3600 and numbers["model"] is None
    assert statusline_numbers("not an object") == statusline_numbers({})
    assert set(statusline_numbers([])) == set(numbers)


@pytest.mark.parametrize(
    ("ttl", "seconds"), [("5m", 300), ("1h", 3600), ("90s", 90), ("5 m", None), (300, None)]
)
def test_ttl(ttl: object, seconds: int | None) -> None:
    assert ttl_seconds(ttl) == seconds


# ---------------------------------------------------------------- the drift function


def test_drift_marks_only_what_parts_by_more_than_one_percent() -> None:
    client = {
        "cost_usd": 1.00,
        "context_tokens": 100_000,
        "context_window_tokens": 1_000_000,
        "cache_ttl_seconds": 300,
        "cache_expires_at": 1000.0,
        "rate_limit_5h_pct": 40.0,
        "rate_limit_7d_pct": 10.0,
    }
    wire = {
        "cost_usd": 1.02,  # 2 % more: marked
        "context_tokens": 100_900,  # 0.9 %: not
        "context_window_tokens": 1_000_000,
        "cache_ttl_seconds": 300,
        "cache_expires_at": 1004.5,  # 4.5 s of a 300 s TTL: 1.5 %
        "rate_limit_5h_pct": 41.5,  # 1.5 points
        "rate_limit_7d_pct": 10.9,  # 0.9 points
    }
    assert client_drift(client, wire) == {
        "cost_usd": {"client": 1.0, "wire": 1.02, "diff_pct": 2.0},
        "cache_expires_at": {"client": 1000.0, "wire": 1004.5, "diff_pct": 1.5},
        "rate_limit_5h_pct": {"client": 40.0, "wire": 41.5, "diff_pct": 1.5},
    }


def test_drift_at_exactly_one_percent_is_no_mark_and_a_missing_side_is_not_compared() -> None:
    assert client_drift({"cost_usd": 2.0}, {"cost_usd": 2.02}) == {}
    assert client_drift({"cost_usd": 2.0}, {"cost_usd": None}) == {}
    assert client_drift({"context_tokens": None}, {"context_tokens": 5}) == {}
    # A 1 h cache: 30 s apart is 0.83 % of it.
    one_hour = {"cache_ttl_seconds": 3600, "cache_expires_at": 5000.0}
    assert client_drift(one_hour, {**one_hour, "cache_expires_at": 5030.0}) == {}


def test_drift_from_nothing() -> None:
    # Claude Code says $0, the wire priced something: no percentage of 0, still a mark.
    assert client_drift({"cost_usd": 0.0}, {"cost_usd": 0.25}) == {
        "cost_usd": {"client": 0.0, "wire": 0.25, "diff_pct": None}
    }
    assert client_drift({"cost_usd": 0.0}, {"cost_usd": 0.0}) == {}


# ---------------------------------------------------------------- on a replayed session


def replayed() -> tuple[SessionTracker, ManualClock]:
    clock = ManualClock(1_796_195_000.0)
    tracker = SessionTracker(clock, signals=SignalEngine(clock))
    Replayer(tracker, clock).records(requests())
    return tracker, clock


def test_the_captured_session_drifts_on_cost_when_another_model_answered() -> None:
    tracker, clock = replayed()
    session = tracker.sessions[SID]
    apply_client_view(session, payloads()[-1], clock.now())
    # Claude Code prices the Sonnet answer at Opus rates; the wire at Sonnet's:
    opus_1 = 1424 * 4 + 10 * 20 + 12811 * 5  # µUSD, the first reply
    sonnet_2 = 149 * 2 + 10 * 10 + 1341 * 2.5 + 12811 * 0.1  # the second
    wire = (opus_1 + sonnet_2) / 1e6
    claude = 0.0800142  # what its payload says: Opus rates for both
    assert claude == pytest.approx((opus_1 + 149 * 4 + 10 * 20 + 1341 * 5 + 12811 * 0.2) / 1e6)
    assert session.client_drift == {
        "cost_usd": {
            "client": claude,
            "wire": pytest.approx(wire, abs=1e-9),
            "diff_pct": round(abs(wire - claude) / claude * 100, 3),
        }
    }
    assert session.client_drift["cost_usd"]["diff_pct"] == pytest.approx(6.288, abs=0.001)
    view = session.as_api()["client_view"]
    assert view["cost_usd"] == claude and view["context_tokens"] == 14301
    assert view["cache_expires_at"] == iso(1796195725.0)  # ISO 8601 in the API
    assert view["received_at"] == iso(clock.now())
    assert session.as_api()["client_drift"] == session.client_drift
    # Nothing else is kept from the payload: no path, no transcript.
    assert "/home/dev" not in json.dumps(view)


def test_the_first_payload_marks_nothing_and_a_request_in_flight_keeps_the_mark() -> None:
    tracker, clock = replayed()
    session = tracker.sessions[SID]
    fresh = Session(session_id="s-new", started_at=clock.now(), last_activity_at=clock.now())
    apply_client_view(fresh, payloads()[0], clock.now())
    assert fresh.client_drift == {}
    assert fresh.client_view is not None and fresh.client_view["cost_usd"] == 0.0
    apply_client_view(session, payloads()[-1], clock.now())
    marked = session.client_drift
    session.in_flight.add(99)  # a response the core has not folded yet
    apply_client_view(session, payloads()[1], clock.now())
    assert session.client_drift == marked  # not compared against a wire that lags
    assert session.client_view is not None and session.client_view["cost_usd"] == 0.069951


def test_the_status_line_view_of_the_captured_session() -> None:
    tracker, clock = replayed()
    session = tracker.sessions[SID]
    apply_client_view(session, payloads()[-1], clock.now())
    other = Session(session_id="other", started_at=clock.now(), last_activity_at=clock.now())
    other.state = "needs_you"
    sessions = [session, other]
    assert needs_you_elsewhere(sessions, SID) == 1
    assert needs_you_elsewhere(sessions, "other") == 0
    clock.advance(60)
    view = statusline_view(session, tracker.recent_requests(SID), 1, clock.now())
    last = requests()[-1]
    # The replay takes half of each exchange to the first token (tests/sessions/replay.py).
    ttft = round(last["duration_s"] / 2 * 1000, 3)
    expires = last["ts"] + last["duration_s"] + 300  # the end of the newest request + 5 min
    assert view == {
        "session_id": SID,
        "state": session.state,
        "model": "claude-opus-5-5",
        "served_model": "claude-sonnet-5-5",
        "ttft_ms": pytest.approx(ttft, abs=0.01),
        "cache_ttl_seconds": 300,
        "cache_left_seconds": pytest.approx(expires - clock.now(), abs=1.5),
        "context_fill": pytest.approx(14301 / 1_000_000),
        "cost_usd": pytest.approx((1424 * 4 + 10 * 20 + 12811 * 5 + 5031.6) / 1e6, abs=1e-6),
        "unpriced_requests": 0,
        "needs_you_others": 1,
        "client_drift": ["cost_usd"],
    }
