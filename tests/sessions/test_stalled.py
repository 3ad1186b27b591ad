"""`stalled`: a request with no answer for 60 s, or a response stream that stops sending
for 60 s, through the real interpreter, tracker and alert engine, an injected clock."""

from __future__ import annotations

from clauditor.clock import ManualClock
from clauditor.domain.events import DomainEvent, StreamProgress
from clauditor.domain.interpreter import PROGRESS_SECONDS, Interpreter
from clauditor.sessions.alerts import Alert, AlertEngine
from clauditor.sessions.tracker import SessionTracker
from clauditor.sim.replies import Reply
from clauditor.sim.wire import render_reply
from tests.helpers import body_bytes, fixture_posts

RECORD = fixture_posts("a_plain_text")[0]


class Rig:
    def __init__(self) -> None:
        self.clock = ManualClock()
        self.tracker = SessionTracker(self.clock)
        self.alerts = AlertEngine(self.clock, self.tracker)
        self.fired: list[Alert] = []
        self.alerts.sinks.append(self.fired.append)
        self.tracker.listeners.append(self.alerts)
        self.events: list[DomainEvent] = []
        self.interpreter = Interpreter(self._emit)

    def _emit(self, event: DomainEvent) -> None:
        self.events.append(event)
        self.tracker.handle(event)

    def wait(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.tracker.tick()
        self.alerts.tick()

    def active(self) -> list[str]:
        return [a["kind"] for a in self.alerts.view()["active"]]


def _request(rig: Rig):  # type: ignore[no-untyped-def]
    obs = rig.interpreter.open_exchange(1, rig.clock.now())
    headers = [(":method", "POST"), (":path", "/v1/messages?beta=true")]
    obs.on_request_headers(headers + [(k.lower(), v) for k, v in RECORD["headers"]],
                           rig.clock.now(), False)  # fmt: skip
    obs.on_request_body(body_bytes(RECORD), rig.clock.now(), True)
    return obs


def test_a_stream_that_stops_sending_is_stalled_until_bytes_come_again() -> None:
    rig = Rig()
    obs = _request(rig)
    status, ctype, sse = render_reply(Reply(text="Hello there."), "claude-opus-4-8", stream=True)
    rig.wait(1.0)
    obs.on_response_headers([(":status", str(status)), ("content-type", ctype)],
                            rig.clock.now(), False)  # fmt: skip
    # Bytes every second for 20 s: one progress event per PROGRESS_SECONDS, not per chunk.
    for i in range(20):
        rig.wait(1.0)
        obs.on_response_body(sse[i : i + 1], rig.clock.now(), False)
    progress = [e for e in rig.events if isinstance(e, StreamProgress)]
    assert len(progress) == 20 // PROGRESS_SECONDS == 4
    last = progress[-1].ts  # 21 s into the exchange
    rig.wait(60.0 - (rig.clock.now() - last) - 1.0)
    assert rig.active() == []  # 59 s of silence
    rig.wait(2.0)
    assert rig.active() == ["stalled"]
    (alert,) = rig.fired
    assert alert.evidence == {"waited_seconds": 61.0, "streaming": True}
    assert alert.reason.endswith("its response stream has sent nothing for 61 s")
    obs.on_response_body(sse[20:], rig.clock.now(), True)  # the rest, and the end
    rig.wait(1.0)
    assert rig.active() == []


def test_a_request_with_no_answer_is_stalled() -> None:
    rig = Rig()
    _request(rig)
    rig.wait(59.0)
    assert rig.active() == []
    rig.wait(2.0)
    (alert,) = rig.fired
    assert alert.kind == "stalled" and alert.evidence["streaming"] is False
    assert alert.reason.endswith("a request has had no answer for 61 s")
