"""Rendering is a pure function of (state, now): fixed width, fixed clock, compared as text."""

from __future__ import annotations

from datetime import timezone

from rich.text import Text

from clauditor.clock import iso
from clauditor.watch.render import (
    cache_countdown,
    pane_title,
    plain_line,
    render_dashboard,
    render_session,
)
from clauditor.watch.state import WatchState
from tests.watch.conftest import T0, A, B, C, ev, text

URL = "http://127.0.0.1:9091"
UTC = timezone.utc


def two_sessions() -> WatchState:
    state = WatchState()
    state.apply({"type": "connection", "state": "connected"})
    state.apply(ev("hello", None, 0, live=[A, B], version="0.1.0"))
    state.apply(
        ev(
            "session_start",
            A,
            0,
            name="fix the auth middleware",
            model="claude-opus-4-8",
            prompt="fix the auth middleware in src/app.py",
            status="active",
        )
    )
    state.apply(
        ev(
            "session_start",
            B,
            1,
            name="write release notes",
            model="claude-sonnet-4-5",
            prompt="write release notes",
            status="active",
        )
    )
    state.apply(ev("turn_start", A, 2, turn=3))
    state.apply(ev("request_start", A, 2, in_flight=1))
    state.apply(ev("tool_use", A, 3, tool="Bash", summary="pytest -q tests/", pending_tools=1))
    state.apply(ev("request_end", A, 3, in_flight=0, session_cost_usd=0.4212, kind="main",
                   status=200, stop_reason="tool_use", duration_ms=2400.0,
                   usage={"output_tokens": 40}, cost_usd=0.0912))  # fmt: skip
    state.apply(ev("cache_event", A, 3, status="hit", expires_at=iso(T0 + 303)))
    state.apply(ev("context_status", A, 3, fill=0.42, turns_to_compact=6))
    state.apply(ev("turn_start", B, 4, turn=1))
    state.apply(ev("tool_use", B, 5, tool="Read", summary="CHANGELOG.md", pending_tools=1))
    state.apply(ev("tool_result", B, 6, tool="Read", outcome="ok", pending_tools=0))
    state.apply(ev("request_end", B, 7, in_flight=0, session_cost_usd=0.05, kind="main",
                   status=200, stop_reason="end_turn", duration_ms=812.0,
                   usage={"output_tokens": 120}, cost_usd=0.05))  # fmt: skip
    state.apply(ev("turn_end", B, 7, turn=1, outcome="completed", stop_reason="end_turn",
                   duration_ms=3000, usage={"output_tokens": 120}, cost_usd=0.05))  # fmt: skip
    state.apply(ev("cache_event", B, 7, status="cold", expires_at=iso(T0 + 307)))
    state.apply(ev("context_status", B, 7, fill=0.91, turns_to_compact=1))
    state.apply(
        ev(
            "quota_status",
            None,
            7,
            status="allowed",
            windows={
                "5h": {"utilization": 0.42, "reset_at": iso(T0 + 2 * 3600 + 300)},
                "7d": {"utilization": 0.1, "reset_at": iso(T0 + 3 * 86400)},
            },
            weekly={"tokens": 1_250_000},
        )
    )
    return state


def test_two_sessions() -> None:
    out = text(render_dashboard(two_sessions(), T0 + 10, height=20, url=URL, tz=UTC), 100)
    assert out == "\n".join(
        [
            "clauditor watch · 2 sessions (2 active) · http://127.0.0.1:9091",
            "  session                  model        turn last tool               context"
            "         cache      cost",
            "◐ fix the auth middleware  opus-4-8        3 Bash pytest -q tests/   ████░░░░░░  42%"
            " 4:53      $0.42",
            "● write release notes      sonnet-4-5      1 Read CHANGELOG.md       █████████░  91%"
            " 4:57      $0.05",
            "quota 5h ███░░░░░  42% resets in 2h04m  7d █░░░░░░░  10% resets in 2d23h  week 1.2M"
            " tok",
            "events " + "─" * 93,
            "08:00:00 fix the auth middl started · opus-4-8 · “fix the auth middleware in"
            " src/app.py”",
            "08:00:01 write release note started · sonnet-4-5 · “write release notes”",
            "08:00:02 fix the auth middl turn 3",
            "08:00:03 fix the auth middl Bash pytest -q tests/",
            "08:00:04 write release note turn 1",
            "08:00:05 write release note Read CHANGELOG.md",
            "08:00:07 write release note turn 1 completed · end_turn · 3.0s · out 120 tok · $0.05",
            "08:00:07 write release note cache cold · until 08:05:07Z",
        ]
    )


def test_cache_countdown_turns_yellow_under_a_minute() -> None:
    state = two_sessions()
    now = T0 + 303 - 42  # session A's cache has 42 s left
    out = text(render_dashboard(state, now, height=5, url=URL, tz=UTC, width=100), 100)
    row = next(line for line in out.splitlines() if "fix the auth" in line)
    assert "0:42" in row
    assert cache_countdown(T0 + 303, now).style == "yellow"
    assert cache_countdown(T0 + 303, T0 + 200).style == "green"
    expired = cache_countdown(T0 + 303, T0 + 400)
    assert (expired.plain, expired.style) == ("expired", "red")
    one = text(render_session(state, A, now, height=12, url=URL, tz=UTC, width=80), 80)
    assert "cache    0:42  hit" in one


def test_fallback_is_marked() -> None:
    state = two_sessions()
    state.apply(ev("model_fallback", A, 8, requested="claude-opus-4-8",
                   actual="claude-sonnet-4-5", fallbacks=1))  # fmt: skip
    out = text(render_dashboard(state, T0 + 10, height=20, url=URL, tz=UTC, width=100), 100)
    row = next(line for line in out.splitlines() if line.startswith("◐ fix the auth"))
    assert row.endswith("$0.42 ⤵sonnet-4-5")
    assert "08:00:08 fix the auth middl fallback opus-4-8 → sonnet-4-5" in out
    one = text(render_session(state, A, T0 + 10, height=30, url=URL, tz=UTC, width=80), 80)
    assert "fallback  opus-4-8 → sonnet-4-5 (1 so far)" in one
    assert one.splitlines()[1] == (
        "◐ fix the auth middleware  opus-4-8  turn 3  waiting-on-tool  ⤵sonnet-4-5"
    )


def test_ended_session() -> None:
    state = two_sessions()
    state.apply(ev("session_end", B, 9, turns=1, cost_usd=0.06))
    out = text(render_dashboard(state, T0 + 10, height=20, url=URL, tz=UTC, width=100), 100)
    lines = out.splitlines()
    assert lines[0] == "clauditor watch · 1 session (1 active) · http://127.0.0.1:9091"
    assert lines[2:5] == ["  Working", lines[3], "  Ended"]
    assert lines[5].startswith("■ write release notes      sonnet-4-5      1 Read CHANGELOG.md")
    assert lines[5].endswith("$0.06")
    assert "08:00:09 write release note ended · 1 turns · $0.06" in out
    assert pane_title(state.sessions[B]) == "write release notes · sonnet-4-5 · bbbbbbbb · ended"
    assert pane_title(state.sessions[A]) == "fix the auth middleware · opus-4-8 · aaaaaaaa"


def test_ended_sessions_sort_last_and_idle_is_marked() -> None:
    state = two_sessions()
    state.apply(ev("session_start", C, 8, name="third", model="claude-haiku-4-5"))
    state.apply(ev("session_end", A, 9, turns=3))
    state.apply(ev("session_idle", B, 9))
    out = text(render_dashboard(state, T0 + 10, height=12, url=URL, tz=UTC, width=100), 100)
    rows = [line[:20].rstrip() for line in out.splitlines()[2:8]]
    assert rows == [
        "  Working",
        "● third",
        "  Idle",
        "○ write release note",
        "  Ended",
        "■ fix the auth middl",
    ]


def test_reconnecting_is_shown() -> None:
    state = two_sessions()
    state.apply({"type": "connection", "state": "reconnecting", "attempt": 3,
                 "retry_in": 2.0, "error": "connection refused"})  # fmt: skip
    first = text(
        render_dashboard(state, T0 + 10, height=4, url=URL, tz=UTC, width=120), 120
    ).splitlines()[0]
    assert first == (
        "clauditor watch · 2 sessions (2 active) · core unreachable, reconnecting in 2s "
        "(attempt 3): connection refused"
    )


def test_narrow_pane_drops_the_model_column() -> None:
    out = text(render_dashboard(two_sessions(), T0 + 10, height=6, url=URL, tz=UTC), 60)
    assert all(len(line) <= 60 for line in out.splitlines())
    assert "opus" not in out.splitlines()[2]


def test_height_limits_the_feed() -> None:
    for height in (6, 10, 14):
        out = text(render_dashboard(two_sessions(), T0 + 10, height=height, url=URL, tz=UTC))
        assert len(out.splitlines()) <= height


def test_single_session_view() -> None:
    out = text(render_session(two_sessions(), B, T0 + 10, height=14, url=URL, tz=UTC), 80)
    assert out == "\n".join(
        [
            "clauditor watch · http://127.0.0.1:9091",
            "● write release notes  sonnet-4-5  turn 1  active",
            "“write release notes”",
            "tool     Read CHANGELOG.md",
            "context  █████████░  91%  ~1 turns to compact",
            "cache    4:57  cold",
            "cost     $0.05  120 output tokens",
            "quota 5h ███░░░░░  42% resets in 2h04m  7d █░░░░░░░  10% resets in 2d23h  week …",
            "events " + "─" * 73,
            "08:00:06 Read ok in -",
            "08:00:07 main 200 end_turn in 812ms · out 120 tok · $0.05",
            "08:00:07 turn 1 completed · end_turn · 3.0s · out 120 tok · $0.05",
            "08:00:07 cache cold · until 08:05:07Z",
            "08:00:07 context 91% · ~1 turns to compact",
        ]
    )


def test_session_view_shows_where_each_turns_time_went() -> None:
    state = two_sessions()
    # Turn 2: 8 s, half of it a tool; turn 3: 4 s, a quarter of it a permission prompt.
    state.apply(ev("turn_end", B, 8, turn=2, outcome="completed", duration_ms=8000.0,
                   time={"waiting_for_model_ms": 1000.0, "generating_ms": 3000.0,
                         "tools_ms": 4000.0, "waiting_for_you_ms": 0.0, "retries_ms": 0.0,
                         "subagents_ms": 0.0}))  # fmt: skip
    state.apply(ev("turn_end", B, 9, turn=3, outcome="completed", duration_ms=4000.0,
                   time={"waiting_for_model_ms": 500.0, "generating_ms": 1500.0,
                         "tools_ms": 0.0, "waiting_for_you_ms": 1000.0, "retries_ms": 1000.0,
                         "subagents_ms": 0.0}))  # fmt: skip
    out = text(render_session(state, B, T0 + 10, height=24, url=URL, tz=UTC), 80)
    lines = out.splitlines()
    legend = lines.index("time   ░ model  █ generating  ▒ tools  ▓ you  ↻ retries  ▞ subagents")
    # The longer turn fills 24 cells (3 + 9 + 12); the other is half as long (12 cells).
    assert lines[legend + 1 : legend + 3] == [
        "turn 2  ░░░█████████▒▒▒▒▒▒▒▒▒▒▒▒   8.0s  tools 50% · generating 38%",
        "turn 3  ░░████▓▓▓↻↻↻               4.0s  generating 38% · you 25%",
    ]
    # A turn sent without a breakdown (an older core) shows no bar.
    assert not any(line.startswith("turn 1 ") for line in lines)
    # A short pane keeps its room for the events.
    short = text(render_session(state, B, T0 + 10, height=14, url=URL, tz=UTC), 80)
    assert "░ model" not in short


def test_unknown_session_waits() -> None:
    out = text(render_session(WatchState(), "nope", T0, url=URL, tz=UTC), 80)
    assert out.splitlines()[1] == "waiting for session nope…"


def test_plain_lines() -> None:
    line = plain_line(ev("tool_use", A, 3, tool="Bash", summary="ls -la"))
    assert line == "2027-01-15T08:00:03.000Z aaaaaaaa tool_use       Bash ls -la"
    line = plain_line(ev("lagged", None, 4, missed=12))
    assert line == "2027-01-15T08:00:04.000Z -        lagged         lagged: missed 12 events"
    synthetic = plain_line(ev("session_start", A, 0, name="x", model="claude-opus-4-8",
                              synthetic=True))  # fmt: skip
    assert synthetic.endswith("session_start  x · opus-4-8 (snapshot)")


def test_cache_countdown_without_expiry_shows_status() -> None:
    assert cache_countdown(None, T0, None).plain == "-"
    assert isinstance(cache_countdown(None, T0, "cold"), Text)


def test_unpriced_and_unverified_sessions_say_so() -> None:
    state = two_sessions()
    reasons = ["version 2.1.400", "model claude-opus-6"]
    state.apply(ev("request_end", B, 8, in_flight=0, session_cost_usd=None, kind="main",
                   status=200, stop_reason="end_turn", duration_ms=900.0, cost_usd=None,
                   unpriced_requests=1, verified=False, unverified_reasons=reasons,
                   usage={"output_tokens": 5}))  # fmt: skip
    out = text(render_dashboard(state, T0 + 10, height=20, url=URL, tz=UTC, width=100), 100)
    row = next(line for line in out.splitlines() if line.startswith("● write release"))
    # The session had $0.05 priced before; one request of an unknown model since.
    assert row.endswith("$0.05+? ?unverified"), row
    one = text(render_session(state, B, T0 + 10, height=30, url=URL, tz=UTC, width=80), 80)
    assert "cost        $0.05+?  125 output tokens  1 unpriced (model not in the catalog)" in one
    assert "unverified  version 2.1.400, model claude-opus-6" in one
    assert one.splitlines()[1].endswith("?unverified")


def test_a_session_none_of_whose_requests_was_priced_shows_no_dollar_figure() -> None:
    state = WatchState()
    state.apply(ev("session_start", C, 0, name="try the new model", model="claude-opus-6",
                   status="active", cost_usd=None, unpriced_requests=2))  # fmt: skip
    out = text(render_dashboard(state, T0 + 1, height=10, url=URL, tz=UTC, width=100), 100)
    row = next(line for line in out.splitlines() if "try the new model" in line)
    assert row.endswith(" ?") and "$" not in row, row


def test_a_task_notification_turn_is_named_in_the_feed() -> None:
    line = plain_line(ev("turn_start", A, 1, turn=2, trigger="task_notification"))
    assert line.endswith("turn_start     turn 2 (task notification)")


def test_sessions_group_by_state_with_what_they_wait_for() -> None:
    # A's Bash waits on a permission prompt (Claude Code's registry says so); B finished
    # its turn and waits for the next prompt.
    state = waiting_states()
    out = text(render_dashboard(state, T0 + 184, height=20, url=URL, tz=UTC, width=140), 140)
    assert out.splitlines()[1].startswith("⚠ api: fix the auth middleware waits for you")
    rows = out.splitlines()[3:7]
    assert rows[0] == "  Needs you"
    assert rows[1].startswith("▲ api fix the auth middleware")
    assert "needs you: permission prompt · 3m" in rows[1]
    assert rows[2] == "  Your turn"
    assert rows[3].startswith("◇ docs write release notes")
    assert "your turn · 2m" in rows[3]
    assert (
        pane_title(state.sessions[A]) == "fix the auth middleware · opus-4-8 · aaaaaaaa · needs you"
    )
    assert plain_line(ev("state_changed", A, 4, state="needs_you",
                         waiting_for="permission prompt")).endswith(
        "state_changed  needs you: permission prompt"
    )  # fmt: skip


def test_a_session_with_failed_tools_is_marked() -> None:
    state = two_sessions()
    state.apply(ev("tool_result", B, 8, tool="Bash", outcome="error", pending_tools=0))
    out = text(render_dashboard(state, T0 + 10, height=20, url=URL, tz=UTC, width=100), 100)
    row = next(line for line in out.splitlines() if "write release" in line)
    assert row.endswith("⚒✗1")


def test_open_alerts_show_above_the_rows_until_they_clear() -> None:
    state = two_sessions()
    state.apply(ev("alert", A, 8, kind="needs_you", reason="api: fix the auth waits for you: "
                   "permission prompt", evidence={"waiting_for": "permission prompt"}))  # fmt: skip
    out = text(render_dashboard(state, T0 + 10, height=20, url=URL, tz=UTC, width=100), 100)
    assert out.splitlines()[1] == "⚠ api: fix the auth waits for you: permission prompt"
    state.apply(ev("alert_cleared", A, 9, kind="needs_you"))
    out = text(render_dashboard(state, T0 + 10, height=20, url=URL, tz=UTC, width=100), 100)
    assert "⚠" not in out.splitlines()[1]


def test_notify_rings_on_a_live_alert_and_escapes_tmux_formats() -> None:
    from io import StringIO

    from clauditor.watch.notify import Notifier

    bell, ran = StringIO(), []
    notifier = Notifier(bell, in_tmux=True, run=ran.append)
    alert = ev("alert", A, 1, kind="needs_you", reason="#(rm -rf ~) waits for you\x1b[2J")
    notifier(alert)
    notifier({**alert, "replay": True})  # old news: no bell
    notifier(ev("tool_use", A, 2, tool="Bash"))
    assert bell.getvalue() == "\a"
    ((*argv, message),) = ran
    assert argv == ["tmux", "display-message", "-d", "5000"]
    assert message == "clauditor: needs_you: ##(rm -rf ~) waits for you"


def waiting_states() -> WatchState:
    state = two_sessions()
    state.apply(ev("state_changed", A, 4, state="needs_you", previous="tool",
                   source="claude_code", waiting_for="permission prompt",
                   project="api"))  # fmt: skip
    state.apply(ev("state_changed", B, 7, state="your_turn", previous="working",
                   source="wire", project="docs"))  # fmt: skip
    reason = "api: fix the auth middleware waits for you: permission prompt"
    state.apply(ev("alert", A, 8, kind="needs_you", reason=reason))
    return state


def test_the_dashboard_reads_at_80_by_24() -> None:
    out = text(
        render_dashboard(waiting_states(), T0 + 184, height=24, url=URL, tz=UTC, width=80), 80
    )
    lines = out.splitlines()
    assert len(lines) <= 24 and all(len(line) <= 80 for line in lines)
    assert lines[1] == "⚠ api: fix the auth middleware waits for you: permission prompt"
    # No model column at this width: name, what it waits for and since when stay whole.
    assert "opus" not in lines[4] and lines[4].startswith("▲ api fix the auth middleware")
    assert "needs you · 3m" in lines[4]
    assert "your turn · 2m" in lines[6] and lines[6].startswith("◇ docs write release notes")


def test_the_dashboard_at_200_by_50_shows_everything() -> None:
    out = text(
        render_dashboard(waiting_states(), T0 + 184, height=50, url=URL, tz=UTC, width=200), 200
    )
    row = next(line for line in out.splitlines() if line.startswith("▲"))
    assert "opus-4-8" in row and "needs you: permission prompt · 3m" in row
    assert len(out.splitlines()) <= 50


def test_a_pane_opened_late_starts_with_the_sessions_history() -> None:
    from clauditor.watch.history import history_events

    detail = {
        "session": {"session_id": A},
        "turns": [{"turn": 1, "trigger": "prompt", "started_at": iso(T0), "ended_at": iso(T0 + 9),
                   "outcome": "completed", "stop_reason": "end_turn", "duration_ms": 9000.0,
                   "output_tokens": 40, "cost_usd": 0.12}],
        "requests": [{"kind": "main", "model_requested": "claude-opus-5-5", "status": 200,
                      "ended_at": iso(T0 + 4), "stop_reason": "tool_use", "duration_ms": 4000.0,
                      "output_tokens": 20, "cost_usd": 0.05}],
        "tool_calls": [{"name": "Bash", "summary": "pytest -q", "requested_at": iso(T0 + 4),
                        "result_at": iso(T0 + 6), "outcome": "ok", "duration_ms": 2000.0}],
    }  # fmt: skip
    events = history_events(detail, T0 + 120)
    assert [e["type"] for e in events] == [
        "turn_start",
        "request_end",
        "tool_use",
        "tool_result",
        "turn_end",
    ]
    assert all(e["history"] for e in events)
    state = WatchState(session_filter=A)
    for e in events:
        state.apply(e)
    out = text(render_session(state, A, T0 + 120, height=20, url=URL, tz=UTC, width=80), 80)
    assert "08:00:04 Bash pytest -q" in out and "08:00:09 turn 1 completed" in out
    assert plain_line(events[2]).endswith("(history)")
    # What /watch itself replays (its last 5 s) is left to it: nothing shows twice.
    assert history_events(detail, T0 + 11) == events[:3]  # up to 08:00:05


def test_the_dashboard_says_how_many_exchanges_the_core_did_not_see() -> None:
    state = two_sessions()
    before = text(render_dashboard(state, T0 + 10, height=24, url=URL, tz=UTC, width=80), 80)
    assert "not observed" not in before
    for seq, outcome in ((20, "partial"), (21, "unobserved"), (22, "complete")):
        state.apply(ev("request_end", B, seq, in_flight=0, kind="main", status=200,
                       outcome=outcome, error_type=None))  # fmt: skip
    out = text(render_dashboard(state, T0 + 30, height=24, url=URL, tz=UTC, width=80), 80)
    lines = out.splitlines()
    assert lines[1] == "2 exchanges not observed (core overloaded)"
    assert len(lines) <= 24
    assert state.sessions[B].errors == 0  # not Anthropic's errors
