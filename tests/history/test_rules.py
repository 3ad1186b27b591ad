"""Each diagnosis rule fires on its scenario, and a healthy session gets no findings."""

from __future__ import annotations

from typing import Any

import pytest

from clauditor.diagnosis.rules import SessionRows, diagnose


def _request(turn: int, **kw: Any) -> dict[str, Any]:
    row = {
        "turn": turn,
        "cache_status": "hit",
        "ttft_ms": 800.0,
        "retry": 0,
        "status": 200,
        "error_type": None,
        "fallback": 0,
        "model_requested": "claude-opus-4-8",
        "model_fallback_actual": None,
        "cache_miss_waste_usd": None,
    }
    row.update(kw)
    return row


def _tool(n: int, outcome: str = "ok", name: str = "Bash") -> dict[str, Any]:
    return {
        "turn": 1,
        "name": name,
        "outcome": outcome,
        "requested_at": f"2026-11-25T10:00:{n:02d}Z",
    }


def healthy(**session: Any) -> SessionRows:
    base = {"turns": 3, "context_peak": 0.2, "turns_to_compact": 40.0, "estimated_cost_usd": 0.4}
    base.update(session)
    return SessionRows(
        session=base,
        turns=[{"turn": t, "cost_usd": 0.1} for t in (1, 2, 3)],
        requests=[_request(1, cache_status="cold"), _request(2), _request(3)],
        tool_calls=[_tool(1), _tool(2, "error"), _tool(3)],
    )


def codes(rows: SessionRows) -> list[str]:
    return [f.code for f in diagnose(rows)]


def test_healthy_session_has_no_findings() -> None:
    assert diagnose(healthy()) == []


def with_requests(*requests: dict[str, Any], **session: Any) -> SessionRows:
    h = healthy(**session)
    return SessionRows(h.session, h.turns, list(requests), h.tool_calls, h.compactions)


def test_cache_miss_ttl() -> None:
    rows = with_requests(
        _request(1, cache_status="cold"),
        _request(2, cache_status="miss_ttl", cache_miss_waste_usd=0.35),
        _request(3, cache_status="miss_ttl", cache_miss_waste_usd=0.40),
    )
    (f,) = diagnose(rows)
    assert f.code == "cache_miss_ttl"
    assert f.evidence == {"turns": [2, 3], "misses": 2, "waste_usd": 0.75}
    assert "$0.75" in f.message
    assert 1 <= len(f.advice) <= 3


def test_cache_thrash() -> None:
    rows = with_requests(_request(1), _request(2, cache_status="miss_thrash"))
    assert codes(rows) == ["cache_thrash"]


@pytest.mark.parametrize(("peak", "severity"), [(0.7, "warning"), (0.9, "critical")])
def test_context_bloat(peak: float, severity: str) -> None:
    (f,) = diagnose(healthy(context_peak=peak))
    assert (f.code, f.severity) == ("context_bloat", severity)


def test_near_compaction() -> None:
    (f,) = diagnose(healthy(turns_to_compact=1.5))
    assert f.code == "near_compaction"
    assert f.evidence["turns_to_compact"] == 1.5


def test_compaction_happened() -> None:
    h = healthy()
    rows = SessionRows(
        h.session, h.turns, h.requests, h.tool_calls,
        [{"turn": 2, "context_tokens_before": 160_000}],
    )  # fmt: skip
    (f,) = diagnose(rows)
    assert f.code == "compaction_happened"
    assert f.evidence == {"turns": [2], "context_tokens_before": [160_000]}


def test_model_fallback() -> None:
    rows = with_requests(
        _request(1),
        _request(2, fallback=1, model_fallback_actual="claude-sonnet-4-5-20250929"),
    )
    (f,) = diagnose(rows)
    assert f.code == "model_fallback"
    assert f.evidence["pairs"] == ["claude-opus-4-8 -> claude-sonnet-4-5-20250929"]


def test_tool_failure_streak() -> None:
    h = healthy()
    calls = [_tool(1), _tool(2, "error"), _tool(3, "error", "Read"), _tool(4, "error"), _tool(5)]
    (f,) = diagnose(SessionRows(h.session, h.turns, h.requests, calls))
    assert f.code == "tool_failure_streak"
    assert f.evidence["streak"] == 3
    assert f.evidence["tools"] == ["Bash", "Read"]


def test_retry_storm() -> None:
    rows = with_requests(
        _request(1, status=529, error_type="overloaded_error"),
        _request(1, status=529, error_type="overloaded_error", retry=1),
        _request(1, status=529, error_type="overloaded_error", retry=1),
        _request(1, retry=1),
    )
    (f,) = diagnose(rows)
    assert f.code == "retry_storm"
    assert f.evidence == {"turns": [1], "retries": 3, "overloaded": 3, "errors": 3}


def test_slow_turns() -> None:
    rows = with_requests(
        _request(1, ttft_ms=900.0), _request(2, ttft_ms=1000.0),
        _request(3, ttft_ms=1100.0), _request(4, ttft_ms=6000.0),
    )  # fmt: skip
    (f,) = diagnose(rows)
    assert f.code == "slow_turns"
    assert f.evidence == {"turns": [4], "median_ttft_ms": 1050.0, "worst_ttft_ms": 6000.0}


def test_runaway_cost() -> None:
    (f,) = diagnose(healthy(estimated_cost_usd=12.5))
    assert f.code == "runaway_cost"
    assert "$12.50" in f.message


def _timed_turn(turn: int, **ms: float) -> dict[str, Any]:
    parts = ("waiting_for_model", "generating", "tools", "waiting_for_you", "retries", "subagents")
    return {"turn": turn, "cost_usd": 0.1, **{f"{p}_ms": ms.get(p, 0.0) for p in parts}}


def test_time_went_to_tools_names_the_slowest_call() -> None:
    h = healthy()
    turns = [
        _timed_turn(1, waiting_for_model=20_000, generating=30_000, tools=250_000),
        _timed_turn(2, waiting_for_model=40_000, generating=45_000, tools=15_000),
    ]
    calls = [
        {**_tool(1), "input_summary": "npm test", "duration_ms": 240_000.0, "turn": 1},
        {**_tool(2), "input_summary": "ls", "duration_ms": 10_000.0, "turn": 1},
        # A subagent's own slow command is inside its run, not the turn's tools.
        {**_tool(3), "input_summary": "sleep", "duration_ms": 900_000.0, "subagent": 1},
    ]
    (f,) = diagnose(SessionRows(h.session, turns, h.requests, calls))
    # 265 s of tools in 400 s of turn time.
    assert f.code == "time_went_to"
    assert f.message == "66% of this session's turn time was tools; Bash `npm test` alone 4 min."
    assert f.evidence["share"] == 0.662
    assert f.evidence["turns"] == [1]
    assert f.evidence["longest_tool"] == {
        "name": "Bash",
        "summary": "npm test",
        "duration_ms": 240_000.0,
        "turn": 1,
    }


def test_time_went_to_you() -> None:
    h = healthy()
    turns = [_timed_turn(1, generating=10_000, tools=5_000, waiting_for_you=45_000)]
    (f,) = diagnose(SessionRows(h.session, turns, h.requests, h.tool_calls))
    assert f.message == (
        "75% of this session's turn time was waiting for you (permission prompts)."
    )
    assert "longest_tool" not in f.evidence


@pytest.mark.parametrize(
    "turn",
    [
        # Under a minute of turn time: nothing worth saying.
        _timed_turn(1, tools=50_000, generating=5_000),
        # The model generating most of the time is the work itself.
        _timed_turn(1, generating=100_000, tools=20_000),
        # No part above half.
        _timed_turn(1, generating=40_000, tools=35_000, waiting_for_model=30_000),
    ],
)
def test_time_went_to_stays_quiet(turn: dict[str, Any]) -> None:
    h = healthy()
    assert codes(SessionRows(h.session, [turn], h.requests, h.tool_calls)) == []
