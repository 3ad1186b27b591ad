"""Where each turn's time went, through the real tracker on captured exchanges with an
injected clock: a 3 s tool, a 529 then success, a foreground and a background subagent,
and a permission prompt. Expected parts are worked out by hand from the clock steps
(the replayer's first token comes halfway through each exchange)."""

from __future__ import annotations

import pytest

from clauditor.clock import ManualClock
from clauditor.sessions.registry import RegistryEntry
from clauditor.sessions.timing import TIME_PARTS
from clauditor.sessions.tracker import SessionTracker
from tests.helpers import fixture_posts, headers_of
from tests.sessions.replay import Replayer
from tests.sessions.test_claude_code_2_1_332 import background_run

T0 = 1_796_000_000.0


def _parts(**seconds: float) -> dict[str, float]:
    return {p: round(seconds.get(p.removesuffix("_ms"), 0.0) * 1000.0, 3) for p in TIME_PARTS}


def _rig() -> tuple[SessionTracker, ManualClock, Replayer]:
    clock = ManualClock(T0)
    tracker = SessionTracker(clock, idle_timeout=300, end_timeout=1800)
    return tracker, clock, Replayer(tracker, clock)


def _turns(tracker: SessionTracker, sid: str) -> list[dict]:
    return [t.as_api() for t in tracker.sessions[sid].turns]


def _assert_adds_up(api_turn: dict) -> None:
    assert sum(api_turn["time"].values()) == pytest.approx(api_turn["duration_ms"], abs=1e-6)


def test_a_three_second_tool() -> None:
    tracker, clock, replay = _rig()
    first, second = fixture_posts("b_tool_bash")
    replay.exchange(first, duration=2.0)
    clock.advance(3.0)  # Claude Code runs the tool
    replay.exchange(second, duration=1.0)
    (turn,) = _turns(tracker, headers_of(first)["x-claude-code-session-id"])
    assert turn["duration_ms"] == 6000.0
    assert turn["time"] == _parts(waiting_for_model=1.5, generating=1.5, tools=3.0)
    _assert_adds_up(turn)


def test_three_529s_then_success_are_retry_time() -> None:
    tracker, clock, replay = _rig()
    for record in fixture_posts("f_529_retry"):
        replay.exchange(record, duration=0.1)
        clock.advance(0.5)
    (turn,) = _turns(tracker, "d0f863f1-9186-497c-819f-fd6a608c0df7")
    # Attempts at 0, 0.6 and 1.2 s fail (0.1 s each, then 0.5 s of backoff); the fourth
    # at 1.8 s answers: 0.05 s to its first token, 0.05 s of tokens.
    assert turn["time"] == _parts(retries=1.8, waiting_for_model=0.05, generating=0.05)
    _assert_adds_up(turn)


def test_a_foreground_subagent() -> None:
    tracker, clock, replay = _rig()
    main1, sub, main2 = fixture_posts("e_subagent")
    replay.exchange(main1, duration=1.0)  # asks for Agent at 1.0 s
    clock.advance(0.5)
    replay.exchange(sub, duration=2.0)  # the subagent's own request, 1.5-3.5 s
    clock.advance(0.5)
    replay.exchange(main2, duration=1.0)  # the Agent result, 4.0-5.0 s
    # The run: the Agent call (1.0 s) to its last request's end (3.5 s); then 0.5 s until
    # Claude Code sends the result, like any tool's.
    (turn,) = _turns(tracker, "1f9c118f-ac3d-4d0c-ac7e-d98bab3a5211")
    assert turn["time"] == _parts(waiting_for_model=1.0, generating=1.0, subagents=2.5, tools=0.5)
    _assert_adds_up(turn)


def test_a_background_subagent_is_not_the_turns_time() -> None:
    run, _ = background_run()
    first = run.session.turns[0].as_api()
    # The Agent launch (0-1 s), its acknowledgement 0.5 s later (1.5-2.5 s) ends the turn;
    # the run itself goes on in the background.
    assert first["time"] == _parts(waiting_for_model=1.0, generating=1.0, tools=0.5)
    _assert_adds_up(first)


def test_a_permission_prompt_is_your_time() -> None:
    tracker, clock, replay = _rig()
    first, second = fixture_posts("b_tool_bash")
    sid = headers_of(first)["x-claude-code-session-id"]

    def registry(status: str, waiting_for: str | None = None) -> None:
        entry = RegistryEntry(
            pid=4242,
            session_id=sid,
            status=status,
            waiting_for=waiting_for,
            status_since=clock.now(),
            started_at=T0,
        )
        tracker.apply_registry({sid: entry})

    replay.exchange(first, duration=2.0)  # asks for Bash at 2.0 s
    clock.advance(0.5)
    registry("waiting", "permission prompt")  # 2.5 s
    clock.advance(2.0)
    registry("busy")  # allowed at 4.5 s; the tool runs 0.5 s
    clock.advance(0.5)
    replay.exchange(second, duration=1.0)  # 5.0-6.0 s
    (turn,) = _turns(tracker, sid)
    assert turn["time"] == _parts(
        waiting_for_model=1.5, generating=1.5, waiting_for_you=2.0, tools=1.0
    )
    _assert_adds_up(turn)


def test_a_turn_in_progress_has_no_breakdown_yet() -> None:
    tracker, _clock, replay = _rig()
    first, _ = fixture_posts("b_tool_bash")
    replay.exchange(first, duration=2.0)
    (turn,) = _turns(tracker, headers_of(first)["x-claude-code-session-id"])
    assert turn["outcome"] == "in_progress" and turn["time"] is None
