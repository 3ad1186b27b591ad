"""The contract between the tracker and its consumers (telemetry, store, broadcast, alerts).

The tracker owns every Session, Turn, RequestRecord and ToolCall. It tells its consumers
what changed by calling the methods below, directly and in one documented order:

- a request's `request_finished` comes before the `turn_ended` of the turn it ended, so a
  consumer has the turn's last request (its tokens and cost) when the turn ends;
- `tool_use` comes when the response asking for the tool is parsed, its `tool_result`
  when the next request carries the result (or when the turn is abandoned);
- a session's last `state_changed` comes before the `status_changed` that ends it.

Consumers read what they are handed and never write to it: the objects are the tracker's
live state, shared by every consumer and by the API. The one thing a consumer adds to them,
the ids of the spans it opened, it returns from a `SpanRecorder` call and the tracker stores
them itself before the listeners run (so a stored row and a /watch event can link to its
trace). tests/sessions/test_listener_contract.py runs the real consumers on recorded
sessions and fails if any of them changes what it was handed.

A consumer that raises is counted (tracker.listener_errors) and the others still run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from clauditor.sessions.models import Compaction, RequestRecord, Session, ToolCall, Turn


class TrackerListener(Protocol):
    """What the tracker tells its consumers. Subclass it to get a no-op for each event
    the consumer does not need (a structural match works too)."""

    def session_started(self, session: Session) -> None:
        return None

    def session_changed(self, session: Session) -> None:
        return None

    def turn_started(self, session: Session, turn: Turn) -> None:
        return None

    def turn_ended(self, session: Session, turn: Turn) -> None:
        return None

    def request_started(self, session: Session, request: RequestRecord) -> None:
        return None

    def request_finished(self, session: Session, request: RequestRecord) -> None:
        return None

    def tool_use(self, session: Session, call: ToolCall) -> None:
        return None

    def tool_result(self, session: Session, call: ToolCall) -> None:
        return None

    def compacted(self, session: Session, compaction: Compaction) -> None:
        return None

    # A finished request learned more after its end (it was recovered by a resend, or tied
    # to the Agent call that launched it): its row is written again.
    def request_changed(self, session: Session, request: RequestRecord) -> None:
        return None

    def status_changed(self, session: Session, previous: str) -> None:
        return None

    def state_changed(self, session: Session, previous: str) -> None:
        return None


@dataclass(frozen=True, slots=True)
class SpanLink:
    """A span a recorder opened for one of the tracker's objects: the turn (by index), the
    request (by exchange id) or the tool call (by tool_use id) it stands for."""

    kind: Literal["turn", "request", "tool"]
    key: int | str
    trace_id: str
    span_id: str | None = None


SpanLinks = Sequence[SpanLink]


class SpanRecorder(Protocol):
    """The tracing consumer: it hears every event first, before the listeners, and answers
    with the spans it opened, whose ids the tracker stores on its objects."""

    def turn_started(self, session: Session, turn: Turn) -> SpanLinks: ...
    def turn_ended(self, session: Session, turn: Turn) -> SpanLinks: ...
    def request_started(self, session: Session, request: RequestRecord) -> SpanLinks: ...
    def request_finished(self, session: Session, request: RequestRecord) -> SpanLinks: ...
    def tool_result(self, session: Session, call: ToolCall) -> SpanLinks: ...
    def status_changed(self, session: Session, previous: str) -> SpanLinks: ...


NO_LINKS: SpanLinks = ()
