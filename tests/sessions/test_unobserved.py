"""Exchanges whose side stream Envoy reset before the core read their end (a core lagging
past deferred_close_timeout): unobserved / partial, never an error, never an interrupted
turn. Hand-built wire sequences through the real interpreter into the real tracker."""

from __future__ import annotations

from typing import Any

import pytest

from clauditor.clock import ManualClock
from clauditor.domain.events import DomainEvent, ExchangeFinished, RequestParsed
from clauditor.domain.interpreter import Interpreter
from clauditor.sessions.alerts import AlertEngine
from clauditor.sessions.tracker import SessionTracker
from clauditor.sim.replies import Reply
from clauditor.sim.wire import render_reply
from tests.helpers import body_bytes, fixture_posts

# k2: an interactive session; records 1 and 2 are two main-thread prompts of it.
RECORDS = fixture_posts("k2_interactive_tmux_json_title")
SESSION = "71e45ecd-61d2-40a6-90f1-7a9b5e6fc9cd"
HELLO = Reply(text="Hello there, five words.")
RESET = "cancelled"  # what ExtProcServicer passes on_close when Envoy reset the stream


class Rig:
    def __init__(self) -> None:
        self.clock = ManualClock()
        self.tracker = SessionTracker(self.clock)
        self.events: list[DomainEvent] = []
        self.interpreter = Interpreter(self._emit)
        self.next_id = 1

    def _emit(self, event: DomainEvent) -> None:
        self.events.append(event)
        self.tracker.handle(event)

    def exchange(
        self,
        record: dict[str, Any],
        *,
        body_cut: int | None = None,
        response: Reply | None = HELLO,
        response_cut: int | None = None,
        close: str | None = None,
    ) -> int:
        """One exchange as Envoy sends it: the request (cut after body_cut bytes, without
        its end), the response (its SSE bytes cut after response_cut, without the end),
        then the side stream's end (`close`: None for a clean end, else the error)."""
        ex = self.next_id
        self.next_id += 1
        obs = self.interpreter.open_exchange(ex, self.clock.now())
        headers = [(":method", "POST"), (":path", "/v1/messages?beta=true")]
        headers += [(k.lower(), v) for k, v in record["headers"]]
        obs.on_request_headers(headers, self.clock.now(), False)
        body = body_bytes(record)
        if body_cut is not None:
            obs.on_request_body(body[:body_cut], self.clock.now(), False)
            obs.on_close(self.clock.now(), close)
            return ex
        obs.on_request_body(body, self.clock.now(), True)
        self.clock.advance(0.5)
        if response is not None:
            status, ctype, sse = render_reply(response, "claude-sonnet-4-5", stream=True)
            resp_headers = [
                (":status", str(status)),
                ("content-type", ctype),
                ("request-id", f"req_{ex}"),
            ]
            obs.on_response_headers(resp_headers, self.clock.now(), False)
            cut = sse if response_cut is None else sse[:response_cut]
            obs.on_response_body(cut, self.clock.now(), response_cut is None)
        self.clock.advance(0.5)
        obs.on_close(self.clock.now(), close)
        return ex

    def finished(self, ex: int) -> ExchangeFinished:
        (found,) = [e for e in self.events if isinstance(e, ExchangeFinished)]
        assert found.exchange_id == ex
        return found

    def request(self, ex: int) -> dict[str, Any]:
        (found,) = [
            r.as_api() for r in self.tracker.recent_requests(SESSION) if r.exchange_id == ex
        ]
        return found


@pytest.fixture
def rig() -> Rig:
    return Rig()


def test_reset_mid_response_is_partial_not_truncated(rig: Rig) -> None:
    ex = rig.exchange(RECORDS[1], response_cut=120, close=RESET)
    finished = rig.finished(ex)
    assert (finished.error_type, finished.observed) == (None, "partial")
    req = rig.request(ex)
    assert (req["outcome"], req["error_type"], req["request_id"]) == ("partial", None, "req_1")
    session = rig.tracker.sessions[SESSION]
    assert session.errors == 0 and not session.signals.errors_by_type
    assert (rig.tracker.partial_requests, rig.tracker.unobserved_requests) == (1, 0)
    assert rig.interpreter.stats.partial == 1 and rig.interpreter.stats.errors_by_type == {}
    # No verdict on the turn: it stays open, neither completed nor interrupted.
    assert [t.outcome for t in session.turns] == ["in_progress"]


def test_the_same_cut_read_to_its_end_is_still_truncated(rig: Rig) -> None:
    """A side stream the core read to its clean end: the upstream really cut the stream
    (Claude Code saw the same), so it stays a truncated error."""
    ex = rig.exchange(RECORDS[1], response_cut=120, close=None)
    assert rig.finished(ex).error_type == "truncated"
    assert rig.request(ex)["outcome"] == "truncated"
    assert rig.tracker.sessions[SESSION].errors == 1


def test_reset_before_the_response_is_unobserved_not_client_cancelled(rig: Rig) -> None:
    ex = rig.exchange(RECORDS[1], response=None, close=RESET)
    assert (rig.finished(ex).error_type, rig.finished(ex).observed) == (None, "none")
    req = rig.request(ex)
    assert (req["outcome"], req["error_type"]) == ("unobserved", None)
    assert rig.tracker.unobserved_requests == 1
    # Without a reset (the client went away before an answer) it is client_cancelled.
    other = Rig()
    ex2 = other.exchange(RECORDS[1], response=None, close=None)
    assert other.request(ex2)["outcome"] == "client_cancelled"


def test_reset_mid_request_body_is_no_broken_request(rig: Rig) -> None:
    """A cut of a valid body is not JSON: parsing it would call a complete request
    broken (request_not_json). It is unobserved, still in its session."""
    ex = rig.exchange(RECORDS[1], body_cut=300, close=RESET)
    (parsed,) = [e for e in rig.events if isinstance(e, RequestParsed)]
    assert parsed.request.error == "unobserved"
    req = rig.request(ex)
    assert (req["outcome"], req["error_type"]) == ("unobserved", None)
    assert rig.interpreter.stats.bad_requests == 0
    assert rig.tracker.sessions[SESSION].errors == 0


def test_an_error_status_seen_before_the_reset_stays_an_error(rig: Rig) -> None:
    """A 529's headers are Anthropic's answer, whatever of its body the core missed."""
    ex = rig.exchange(RECORDS[1], response=Reply(status=529), response_cut=10, close=RESET)
    assert rig.finished(ex).observed == "full"
    assert rig.request(ex)["error_type"] == "http_529"  # its error body was cut off
    assert rig.tracker.sessions[SESSION].errors == 1


def test_next_prompt_closes_an_unseen_turn_as_unobserved_not_interrupted(rig: Rig) -> None:
    rig.exchange(RECORDS[1], response_cut=120, close=RESET)
    rig.clock.advance(2.0)
    rig.exchange(RECORDS[2])
    session = rig.tracker.sessions[SESSION]
    assert [t.outcome for t in session.turns] == ["unobserved", "completed"]
    assert session.errors == 0


def test_idle_timeout_closes_an_unseen_turn_as_unobserved_not_abandoned(rig: Rig) -> None:
    rig.exchange(RECORDS[1], response_cut=120, close=RESET)
    rig.clock.advance(rig.tracker.idle_timeout + 1)
    rig.tracker.tick()
    assert [t.outcome for t in rig.tracker.sessions[SESSION].turns] == ["unobserved"]


def test_a_fully_seen_request_after_it_completes_the_turn(rig: Rig) -> None:
    """The turn's end is unknown only while its newest finished request was unseen: a
    resend of the same prompt that the core sees in full completes it."""
    rig.exchange(RECORDS[1], response_cut=120, close=RESET)
    rig.exchange(RECORDS[1])
    session = rig.tracker.sessions[SESSION]
    assert [t.outcome for t in session.turns] == ["completed"]


def test_unobserved_requests_neither_fail_nor_succeed_for_the_error_streak(rig: Rig) -> None:
    alerts = AlertEngine(rig.clock, rig.tracker)
    rig.tracker.listeners.append(alerts)
    for _ in range(4):
        rig.exchange(RECORDS[1], response_cut=120, close=RESET)
    assert "error_streak" not in {kind for kind, _ in alerts.active}
    # Real failures around them: the unseen ones do not break the streak either.
    rig.exchange(RECORDS[1], response_cut=120, close=None)
    rig.exchange(RECORDS[1], response_cut=120, close=None)
    rig.exchange(RECORDS[1], response_cut=120, close=RESET)
    rig.exchange(RECORDS[1], response_cut=120, close=None)
    assert ("error_streak", SESSION) in alerts.active
