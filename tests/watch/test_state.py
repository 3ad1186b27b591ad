"""WatchState folds /watch events; replays and reconnects must not corrupt it."""

from __future__ import annotations

from clauditor.clock import iso, parse_iso
from clauditor.watch.state import WatchState
from tests.watch.conftest import T0, A, B, ev


def started(state: WatchState, sid: str = A, **fields: object) -> None:
    state.apply(ev("session_start", sid, 0, name="n", model="claude-opus-4-8", **fields))


def test_activity_follows_tools_and_requests() -> None:
    state = WatchState()
    started(state)
    view = state.sessions[A]
    assert view.activity == "active"
    state.apply(ev("request_start", A, 1, in_flight=1))
    state.apply(ev("tool_use", A, 2, tool="Bash", summary="make", pending_tools=1))
    assert view.activity == "active"  # the response is still streaming
    state.apply(ev("request_end", A, 3, in_flight=0, session_cost_usd=0.1))
    assert view.activity == "waiting-on-tool"
    assert (view.last_tool, view.last_tool_summary, view.cost_usd) == ("Bash", "make", 0.1)
    state.apply(ev("tool_result", A, 4, tool="Bash", outcome="ok", pending_tools=0))
    assert view.activity == "active"
    state.apply(ev("session_idle", A, 5))
    assert view.activity == "idle"
    state.apply(ev("session_active", A, 6, previous="idle"))
    assert view.activity == "active"
    state.apply(ev("session_end", A, 7, cost_usd=0.2))
    assert (view.activity, view.cost_usd, view.ended_at) == ("ended", 0.2, T0 + 7)


def test_subagent_tools_do_not_replace_the_last_tool() -> None:
    state = WatchState()
    started(state)
    state.apply(ev("tool_use", A, 1, tool="Agent", summary="explore", pending_tools=1))
    state.apply(ev("tool_use", A, 2, tool="Grep", summary="x", subagent=True, pending_tools=2))
    assert state.sessions[A].last_tool == "Agent"


def test_replayed_events_do_not_roll_back_the_snapshot() -> None:
    state = WatchState(session_filter=A)
    state.apply(ev("hello", None, 10, live=[A]))
    started(state, turn=4, pending_tools=0, synthetic=True, last_tool="Edit")
    state.apply(ev("turn_start", A, 8, turn=3, replay=True))
    state.apply(ev("tool_use", A, 8, tool="Bash", pending_tools=1, replay=True))
    view = state.sessions[A]
    assert (view.turn, view.pending_tools, view.last_tool) == (4, 0, "Edit")
    assert [e["type"] for e in state.feed] == ["turn_start", "tool_use"]  # still listed
    state.apply(ev("turn_start", A, 11, turn=5))
    assert view.turn == 5


def test_reconnect_ends_what_the_core_no_longer_has_and_dedupes_the_feed() -> None:
    state = WatchState()
    state.apply(ev("hello", None, 0, live=[]))
    started(state, A)
    started(state, B)
    tool = ev("tool_use", B, 1, tool="Read", pending_tools=1)
    state.apply(tool)
    state.apply(ev("hello", None, 5, live=[B]))  # the core restarted; A is gone
    assert state.sessions[A].status == "ended" and state.sessions[A].ended_at == T0 + 5
    assert state.sessions[B].status == "active"
    state.apply({**tool, "replay": True})
    assert [e["type"] for e in state.feed].count("tool_use") == 1


def test_session_filter_ignores_other_sessions_but_keeps_quota() -> None:
    state = WatchState(session_filter=A)
    started(state, B)
    state.apply(ev("quota_status", None, 1, windows={"5h": {"utilization": 0.3}}))
    state.apply(ev("lagged", None, 2, missed=7))
    assert B not in state.sessions
    assert state.quota is not None and state.quota["windows"]["5h"]["utilization"] == 0.3
    assert state.lagged_total == 7


def test_signals_fold() -> None:
    state = WatchState()
    started(state)
    state.apply(ev("cache_event", A, 1, status="miss_ttl", expires_at=iso(T0 + 301),
                   rebuild_cost_usd=0.12))  # fmt: skip
    state.apply(ev("context_status", A, 1, fill=0.5, turns_to_compact=9))
    state.apply(ev("model_fallback", A, 2, requested="claude-opus-4-8",
                   actual="claude-sonnet-4-5", fallbacks=1))  # fmt: skip
    state.apply(ev("request_error", A, 3, error_type="overloaded_error", errors=2))
    v = state.sessions[A]
    assert (v.cache_status, v.cache_expires_at, v.cache_rebuild_cost_usd) == (
        "miss_ttl",
        T0 + 301,
        0.12,
    )
    assert (v.context_fill, v.turns_to_compact) == (0.5, 9)
    assert (v.fallbacks, v.fallback_from, v.fallback_to) == (
        1,
        "claude-opus-4-8",
        "claude-sonnet-4-5",
    )
    assert (v.errors, v.last_error) == (2, "overloaded_error")


def test_junk_is_ignored() -> None:
    state = WatchState()
    for junk in ({}, {"type": 3}, {"type": "tool_use"}, {"type": "tool_use", "session_id": 5}):
        state.apply(junk)  # type: ignore[arg-type]
    assert state.sessions == {}
    assert parse_iso("nope") is None and parse_iso(None) is None
    assert parse_iso("2027-01-15T08:00:00.000Z") == T0
