"""Alerts fire once per episode, with a reason and the evidence; the --on-alert command."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from clauditor.broadcast.command import AlertCommand
from clauditor.clock import ManualClock
from clauditor.sessions.alerts import Alert, AlertEngine
from clauditor.sessions.signals.engine import SignalEngine
from clauditor.sessions.tracker import SessionTracker
from tests.helpers import fixture_posts
from tests.sessions.replay import Replayer, answered_with
from tests.sessions.test_registry import entry_for

SID = "04d0a982-8c0f-4567-aba3-6d8e967e76cc"  # the b_tool_bash fixture's session


def engine() -> tuple[ManualClock, SessionTracker, AlertEngine, list[Alert]]:
    clock = ManualClock()
    tracker = SessionTracker(clock, signals=SignalEngine(clock))
    alerts = AlertEngine(clock, tracker)
    fired: list[Alert] = []
    alerts.sinks.append(fired.append)
    tracker.listeners.append(alerts)
    return clock, tracker, alerts, fired


def test_needs_you_fires_once_per_wait_with_its_evidence() -> None:
    clock, tracker, alerts, fired = engine()
    Replayer(tracker, clock).exchange(fixture_posts("b_tool_bash")[0])
    waiting = entry_for(SID, "waiting")
    tracker.apply_registry({SID: waiting})
    tracker.apply_registry({SID: waiting})  # the same wait, polled again
    assert [(a.kind, a.session_id) for a in fired] == [("needs_you", SID)]
    (alert,) = fired
    assert alert.reason.endswith("waits for you: permission prompt")
    assert alert.evidence["waiting_for"] == "permission prompt"
    assert alert.evidence["tmux_pane"] == waiting.tmux_pane
    assert alerts.view()["active"][0]["kind"] == "needs_you"
    tracker.apply_registry({SID: entry_for(SID, "idle_after")})  # answered: episode over
    assert alerts.view()["active"] == []
    tracker.apply_registry({SID: waiting})  # a second prompt: a second alert
    assert [a.kind for a in fired] == ["needs_you", "needs_you"]


def test_error_streak_and_model_mismatch() -> None:
    clock, tracker, alerts, fired = engine()
    record = fixture_posts("a_plain_text")[0]
    replay = Replayer(tracker, clock)
    for _ in range(4):  # four 529s in a row: one alert at the third
        replay.exchange(record, status=529)
    assert [a.kind for a in fired] == ["error_streak"]
    # A 529's body names Anthropic's overloaded_error (docs: errors), the label it gets.
    assert fired[0].evidence == {"errors_in_a_row": 3, "last_error": "overloaded_error",
                                 "status": 529}  # fmt: skip
    replay.exchange(answered_with(record, model="claude-sonnet-4-5"))  # another model served
    assert [a.kind for a in fired] == ["error_streak", "model_mismatch"]
    assert (fired[1].evidence["requested"], fired[1].evidence["actual"]) == (
        "claude-opus-4-8",
        "claude-sonnet-4-5",
    )
    assert {a["kind"] for a in alerts.view()["active"]} == {"model_mismatch"}


def test_cache_expiring_while_it_is_your_turn() -> None:
    clock, tracker, alerts, fired = engine()
    Replayer(tracker, clock).exchange(fixture_posts("a_plain_text")[0])
    session = tracker.sessions[next(iter(tracker.sessions))]
    assert session.state == "your_turn"
    line = session.signals.main_line(session.model)
    assert line is not None  # the reply wrote a 5 minute cache
    clock.advance(line.expires_at - clock.now() - 90)
    alerts.tick()
    assert fired == []  # 90 s left
    clock.advance(40)
    alerts.tick()
    (alert,) = fired
    assert alert.kind == "cache_expiring" and alert.reason.endswith("expires in 50 s")
    assert alert.evidence["rebuild_cost_usd"] == round(line.rebuild_cost_usd or 0, 6)
    alerts.tick()
    assert len(fired) == 1


def test_the_on_alert_command_gets_the_alert_and_is_bounded(tmp_path: Path) -> None:
    out = tmp_path / "alert.json"
    alert = Alert("needs_you", SID, 1_800_000_000.0, "x waits for you", {"waiting_for": "p"})

    async def run(command: AlertCommand) -> None:
        command(alert)
        await command.close()

    done = AlertCommand(f"cat > {out}")
    asyncio.run(run(done))
    assert json.loads(out.read_text())["kind"] == "needs_you"
    assert (done.stats.ran, done.stats.failed, done.stats.timed_out) == (1, 0, 0)
    slow = AlertCommand(f"{sys.executable} -c 'import time; time.sleep(30)'", timeout=0.2)
    asyncio.run(run(slow))
    assert (slow.stats.ran, slow.stats.timed_out) == (1, 1)
    failing = AlertCommand("exit 3")
    asyncio.run(run(failing))
    assert failing.stats.failed == 1

    async def flood() -> AlertCommand:
        many = AlertCommand("sleep 0.2", concurrency=2)
        for _ in range(5):
            many(alert)
        await many.close()
        return many

    many = asyncio.run(flood())
    assert (many.stats.ran, many.stats.dropped) == (2, 3)
