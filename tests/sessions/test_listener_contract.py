"""The listener contract (clauditor/sessions/listener.py), held by the real consumers.

Every consumer the core wires (span recorder, metrics, store, /watch hub, alerts) runs on
recorded sessions of both Claude Code versions behind a guard that deep-copies what each
call hands it and compares afterwards: a consumer that writes to the tracker's objects
fails here, naming itself and the event. The same run checks the order: a request is
told finished before the turn it ended, so nobody has to hold a turn_end back."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from clauditor.broadcast.hub import WatchHub
from clauditor.clock import ManualClock
from clauditor.sessions.alerts import AlertEngine
from clauditor.sessions.listener import TrackerListener
from clauditor.sessions.models import RequestRecord, Session, Turn
from clauditor.sessions.tracker import SessionTracker
from clauditor.store.store import Store
from clauditor.telemetry import Providers, Telemetry
from tests.helpers import RECORDED_SESSIONS, fixture_posts
from tests.sessions.replay import Replayer

SESSIONS = RECORDED_SESSIONS


class Mutated(AssertionError):
    pass


class Guard:
    """Stands in for one consumer: passes each call on, and fails if the call changed any
    object it was handed (compared with a deep copy taken just before)."""

    def __init__(self, name: str, inner: object, log: list[tuple[str, str, object]]) -> None:
        self._name, self._inner, self._log = name, inner, log

    def __getattr__(self, event: str) -> Callable[..., Any]:
        method = getattr(self._inner, event)

        def guarded(*args: Any) -> Any:
            before = copy.deepcopy(args)
            result = method(*args)
            if args != before:
                changed = [
                    f"{type(a).__name__}.{k}"
                    for a, b in zip(args, before, strict=True)
                    if hasattr(a, "__dataclass_fields__")
                    for k in a.__dataclass_fields__
                    if getattr(a, k) != getattr(b, k)
                ]
                raise Mutated(f"{self._name}.{event} changed {changed}")
            subject = args[1] if len(args) > 1 else None
            key: object = None
            if isinstance(subject, Turn):
                key = subject.index
            elif isinstance(subject, RequestRecord):
                key = subject.exchange_id
            self._log.append((self._name, event, key))
            return result

        return guarded


@pytest.fixture
def consumers(tmp_path: Path) -> Iterator[tuple[SessionTracker, Replayer, list[Any]]]:
    clock = ManualClock(1_780_000_000.0)
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    telemetry = Telemetry(Providers(tracer_provider, meter_provider), clock)
    store = Store(tmp_path / "h.db", flush_interval=0.05)
    store.start()
    tracker = SessionTracker(clock, loader=store.load_session)
    hub = WatchHub(clock, sessions=lambda: tracker.sessions, quota=tracker.signals)
    alerts = AlertEngine(clock, tracker)
    log: list[tuple[str, str, object]] = []
    listeners: list[tuple[str, object]] = [
        ("metrics", telemetry.metrics),
        ("store", store),
        ("hub", hub),
        ("alerts", alerts),
    ]
    tracker.listeners = [Guard(name, c, log) for name, c in listeners]  # type: ignore[misc]
    tracker.spans = Guard("traces", telemetry.traces, log)  # type: ignore[assignment]
    yield tracker, Replayer(tracker, clock), log
    store.stop()
    telemetry.shutdown(timeout=1.0)


@pytest.mark.parametrize("name", SESSIONS)
def test_consumers_never_change_what_they_are_handed(
    consumers: tuple[SessionTracker, Replayer, list[Any]], name: str
) -> None:
    tracker, replay, log = consumers
    for record in fixture_posts(name):
        replay.exchange(record)
        replay.clock.advance(0.2)
    replay.clock.advance(400)
    tracker.tick()  # idle: open turns abandoned
    tracker.shutdown()  # ended
    assert tracker.listener_errors == 0  # a Mutated raised inside would be counted here
    events = {event for _, event, _ in log}
    assert {"turn_started", "turn_ended", "request_finished", "status_changed"} <= events


@pytest.mark.parametrize("name", SESSIONS)
def test_a_turn_ends_after_its_last_request(
    consumers: tuple[SessionTracker, Replayer, list[Any]], name: str
) -> None:
    """Every listener hears a completed turn's end after the request_finished of each
    request of that turn that had ended by then."""
    tracker, replay, log = consumers
    for record in fixture_posts(name):
        replay.exchange(record)
        replay.clock.advance(0.2)
    assert tracker.listener_errors == 0
    finished_at: dict[object, int] = {}
    turn_of = {r.exchange_id: r.turn_index for s in tracker.sessions.values()
               for r in tracker.recent_requests(s.session_id)}  # fmt: skip
    completed = 0
    for position, (who, event, key) in enumerate(log):
        if who != "hub":
            continue
        if event == "request_finished":
            finished_at[key] = position
        elif event == "turn_ended":
            completed += 1
            mine = [e for e, t in turn_of.items() if t == key]
            assert all(finished_at.get(e, -1) < position for e in mine if e in finished_at)
            assert any(e in finished_at for e in mine), (name, key)
    assert completed >= 1


def test_a_consumer_that_writes_is_caught(tmp_path: Path) -> None:
    """The guard itself: a listener that sets a field on the session it is handed fails."""

    class Scribbler(TrackerListener):
        def session_changed(self, session: Session) -> None:
            session.last_text = "scribbled"

    clock = ManualClock(1_780_000_000.0)
    tracker = SessionTracker(clock)
    log: list[tuple[str, str, object]] = []
    tracker.listeners = [Guard("scribbler", Scribbler(), log)]  # type: ignore[list-item]
    Replayer(tracker, clock).exchange(fixture_posts("b_tool_bash")[0])
    assert tracker.listener_errors >= 1


def test_span_ids_are_stored_by_the_tracker(
    consumers: tuple[SessionTracker, Replayer, list[Any]],
) -> None:
    """The ids of the spans the recorder opened reach the turn, the requests and the tool
    calls through the tracker (the recorder itself writes nothing: the guard holds it)."""
    tracker, replay, _ = consumers
    for record in fixture_posts("b_tool_bash"):
        replay.exchange(record)
        replay.clock.advance(0.5)
    (session,) = tracker.sessions.values()
    requests = tracker.recent_requests(session.session_id)
    (turn,) = session.turns
    assert turn.trace_id and len(turn.trace_id) == 32
    assert {r.trace_id for r in requests} == {turn.trace_id}
    assert all(r.span_id and len(r.span_id) == 16 for r in requests)
    assert len({r.span_id for r in requests}) == len(requests)
