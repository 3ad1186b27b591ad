"""The /watch schema (clauditor/broadcast/events.py) as a contract between the hub and
`clauditor watch`: the real tracker → hub → WatchState → render, on captured exchanges.

- every event the hub sends carries exactly the keys of its type's class;
- every key the watch view reads is one the schema defines;
- a watcher joining after a model fallback shows whom it fell back to (it used to show
  `⤵?`: the view read `fallback_to` from session_start, which the hub never sent)."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

from clauditor.broadcast import events
from clauditor.broadcast.events import ENVELOPE, EVENTS, fields_of
from clauditor.broadcast.hub import EVENT_TYPES, Subscription, WatchHub
from clauditor.sessions.alerts import AlertEngine
from clauditor.sessions.registry import RegistryEntry
from clauditor.watch.client import parse_sse
from clauditor.watch.render import render_dashboard
from clauditor.watch.state import WatchState
from tests.helpers import fixture_posts
from tests.signals.scenario import SESSION, Scenario, record, usage
from tests.watch.conftest import text

WATCH = Path(__file__).resolve().parents[2] / "clauditor" / "watch"


def _wire(sub: Subscription) -> list[dict[str, Any]]:
    return [event for e in sub.take() for event in parse_sse(e.wire().decode().split("\n"))]


def _scenario() -> tuple[Scenario, WatchHub]:
    sc = Scenario()
    hub = WatchHub(sc.clock, sessions=lambda: sc.tracker.sessions, quota=sc.engine)
    alerts = AlertEngine(sc.clock, sc.tracker)
    alerts.sinks.append(hub.alert)
    alerts.clear_sinks.append(hub.alert_cleared)
    sc.tracker.listeners += [hub, alerts]
    return sc, hub


def _drive(sc: Scenario) -> None:
    """A tool round trip, a 529 resent, a fallback to Sonnet, a permission prompt, quota
    headers, then the session idles and ends."""
    quota = {
        "anthropic-ratelimit-unified-status": "allowed",
        "anthropic-ratelimit-unified-5h-utilization": "0.4",
    }
    first, second = fixture_posts("b_tool_bash")  # a session of its own
    sc.replay.exchange(first, duration=1.0)
    sc.wait(0.25)
    sc.replay.exchange(second, duration=1.0)
    sc.send(record("one", usage(input=10, output=1, write_5m=2_000)))
    sc.wait(0.5)
    sc.send(record("one", usage(input=12, output=2), status=529))
    sc.wait(1.0)
    sc.send(record("one", usage(input=12, output=2)), quota=quota)
    sc.wait(2.0)
    sc.send(
        record("two", usage(input=20, output=3), response_model="claude-sonnet-4-5"),
        quota=quota,
    )
    entry = RegistryEntry(pid=7, session_id=SESSION, cwd="/srv/app", status="waiting",
                          waiting_for="permission prompt", status_since=sc.clock.now())  # fmt: skip
    sc.tracker.apply_registry({SESSION: entry})
    sc.wait(1.0)
    sc.tracker.apply_registry({SESSION: RegistryEntry(pid=7, session_id=SESSION, status="idle")})
    sc.wait(400)
    sc.tracker.tick()  # idle
    sc.tracker.apply_registry({})  # the process is gone: the session ends


def test_every_event_carries_exactly_its_schema() -> None:
    sc, hub = _scenario()
    sub = hub.subscribe()
    _drive(sc)
    events = _wire(sub)
    seen = {e["type"] for e in events}
    # What a session's life produces (lagged, alert_cleared... come from elsewhere too).
    assert seen >= {
        "hello", "session_start", "state_changed", "alert", "alert_cleared", "turn_start",
        "request_start", "tool_use", "tool_result", "request_end", "turn_end", "cache_event",
        "context_status", "model_fallback", "quota_status", "request_error", "session_idle",
        "session_end",
    }  # fmt: skip
    for e in events:
        extra = set(e) - set(ENVELOPE)
        assert extra == fields_of(e["type"]), (e["type"], extra ^ fields_of(e["type"]))
    assert set(EVENT_TYPES) == set(EVENTS)


def _keys_read(path: Path) -> set[str]:
    """The literal keys the module reads off events: e.get("k") / e["k"] on any name."""
    keys: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "get"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            keys.add(node.args[0].value)
        elif (
            isinstance(node, ast.Subscript)
            and isinstance(node.slice, ast.Constant)
            and isinstance(node.slice.value, str)
        ):
            keys.add(node.slice.value)
    return keys


# Keys the watch client makes up itself (its `connection` pseudo-event), and those of the
# quota windows (the API's quota object, passed through as it is).
CLIENT_SIDE = {"state", "at", "attempt", "retry_in", "error"}
WINDOWS = {"utilization", "reset_at"}


def test_the_watch_view_reads_only_keys_the_schema_defines() -> None:
    classes = [
        c for c in vars(events).values() if isinstance(c, type) and hasattr(c, "__annotations__")
    ]
    defined = set(ENVELOPE) | {k for c in classes for k in c.__annotations__}
    for module in ("state.py", "render.py"):
        unknown = _keys_read(WATCH / module) - defined - CLIENT_SIDE - WINDOWS
        assert unknown == set(), f"watch/{module} reads keys no event has: {sorted(unknown)}"


def test_a_watcher_joining_after_a_fallback_shows_what_answered() -> None:
    sc, hub = _scenario()
    sc.send(record("one", usage(input=10, output=1)))
    sc.send(record("two", usage(input=20, output=3), response_model="claude-sonnet-4-5"))
    sc.wait(60)  # long past the replay window: only the snapshot tells
    state = WatchState()
    state.apply({"type": "connection", "state": "connected"})
    for e in _wire(hub.subscribe()):
        state.apply(e)
    view = state.sessions[SESSION]
    assert (view.fallbacks, view.fallback_from, view.fallback_to) == (
        1,
        "claude-opus-4-8",
        "claude-sonnet-4-5",
    )
    out = text(render_dashboard(state, sc.clock.now(), height=10, url="u"), 120)
    row = next(line for line in out.splitlines() if "⤵" in line)
    assert row.endswith("⤵sonnet-4-5"), row
