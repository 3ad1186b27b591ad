"""Alerts: what a person running several sessions wants to be told, once per episode.

- `needs_you`: a session waits on its user (Claude Code's registry: a permission prompt);
  clears when it stops waiting.
- `model_mismatch`: a response came from another model than the one asked for; clears when
  a request of the session is served as asked.
- `cache_expiring`: a session in `your_turn` has its prompt cache expire within a minute;
  clears when it works again or the cache expired.
- `context_near_compact`: at most 2 turns to the automatic compaction; clears when the
  context shrinks (a compaction).
- `quota_warning`: the unified quota says `allowed_warning` / `rejected`, or a window is at
  90 % or more; clears when it is below again.
- `budget_exhausting`: the weekly token budget runs out before its reset at the last hour's
  pace; clears when the pace no longer exhausts it.
- `error_streak`: 3 errored requests in a row in a session; clears when one succeeds.
- `stalled`: a request in flight has had no answer, or its response stream no bytes, for
  60 s; clears when bytes come or it ends.

Each alert carries a `reason` (a sentence) and its `evidence` (the numbers behind it). An
episode fires once: the same kind for the same session fires again only after it cleared.
Pure but for the clock it is handed; the tracker's listener hooks and `tick()` feed it.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from clauditor.clock import Clock, iso
from clauditor.money import usd
from clauditor.sessions.listener import TrackerListener
from clauditor.sessions.models import RequestRecord, Session
from clauditor.sessions.signals.engine import SignalEngine
from clauditor.sessions.tracker import SessionTracker

log = logging.getLogger(__name__)

ALERT_KINDS = (
    "needs_you",
    "model_mismatch",
    "cache_expiring",
    "context_near_compact",
    "quota_warning",
    "budget_exhausting",
    "error_streak",
    "stalled",
)
CACHE_WARN_SECONDS = 60.0
COMPACT_WARN_TURNS = 2
QUOTA_WARN_UTILIZATION = 0.9
ERROR_STREAK = 3
STALL_SECONDS = 60.0
ALERTS_KEPT = 200


@dataclass(frozen=True, slots=True)
class Alert:
    kind: str
    session_id: str | None  # None: the account's (quota, budget)
    at: float
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def as_api(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "session_id": self.session_id,
            "at": iso(self.at),
            "reason": self.reason,
            "evidence": dict(self.evidence),
        }


AlertSink = Callable[[Alert], None]


class AlertEngine(TrackerListener):
    def __init__(self, clock: Clock, tracker: SessionTracker) -> None:
        self.clock = clock
        self.tracker = tracker
        self.signals: SignalEngine = tracker.signals
        self.sinks: list[AlertSink] = []
        self.clear_sinks: list[AlertSink] = []  # told when an open episode ends
        self.recent: deque[Alert] = deque(maxlen=ALERTS_KEPT)
        self.active: dict[tuple[str, str | None], Alert] = {}  # open episodes
        self.fired = 0
        self._errors_in_a_row: dict[str, int] = {}

    # -- episodes ----------------------------------------------------------------------
    def _fire(self, kind: str, sid: str | None, reason: str, **evidence: Any) -> None:
        key = (kind, sid)
        if key in self.active:
            return
        alert = Alert(kind, sid, self.clock.now(), reason, evidence)
        self.active[key] = alert
        self.recent.append(alert)
        self.fired += 1
        for sink in self.sinks:
            try:
                sink(alert)
            except Exception:
                log.exception("alert sink failed")

    def _clear(self, kind: str, sid: str | None) -> None:
        alert = self.active.pop((kind, sid), None)
        if alert is None:
            return
        for sink in self.clear_sinks:
            try:
                sink(alert)
            except Exception:
                log.exception("alert sink failed")

    def _hold(self, on: bool, kind: str, sid: str | None, reason: str, **ev: Any) -> None:
        if on:
            self._fire(kind, sid, reason, **ev)
        else:
            self._clear(kind, sid)

    def view(self) -> dict[str, Any]:
        return {
            "active": [a.as_api() for a in self.active.values()],
            "recent": [a.as_api() for a in reversed(self.recent)],
            "fired": self.fired,
        }

    # -- TrackerListener ---------------------------------------------------------------
    def state_changed(self, session: Session, previous: str) -> None:
        sid = session.session_id
        waiting = session.state == "needs_you"
        self._hold(
            waiting,
            "needs_you",
            sid,
            f"{_label(session)} waits for you: {session.waiting_for or 'input'}",
            waiting_for=session.waiting_for,
            since=iso(session.state_since),
            tmux_pane=session.registry.tmux_pane if session.registry else None,
        )
        if session.state != "your_turn":
            self._clear("cache_expiring", sid)
        if session.state == "ended":
            for kind in ALERT_KINDS:
                self._clear(kind, sid)
            self._errors_in_a_row.pop(sid, None)

    def request_finished(self, session: Session, request: RequestRecord) -> None:
        sid, sig = session.session_id, request.signals
        if request.kind in ("main", "compaction"):
            self._hold(
                sig.fallback,
                "model_mismatch",
                sid,
                f"{_label(session)} asked for {sig.fallback_requested or request.model_requested}"
                f" and was served {sig.fallback_actual or request.model_responded}",
                requested=sig.fallback_requested or request.model_requested,
                actual=sig.fallback_actual or request.model_responded,
                fallback_kind=sig.fallback_kind,
            )
            ttc = session.signals.turns_to_compact
            self._hold(
                ttc is not None and ttc <= COMPACT_WARN_TURNS,
                "context_near_compact",
                sid,
                f"{_label(session)} is about {ttc} turn(s) from an automatic compaction",
                turns_to_compact=ttc,
                context_fill=session.signals.context_fill,
                threshold_tokens=session.signals.compaction_threshold,
            )
        if request.observed == "full":  # else its end was not seen: no failure, no success
            self._error_streak(session, request)
        self._quota()

    def _error_streak(self, session: Session, request: RequestRecord) -> None:
        sid = session.session_id
        streak = self._errors_in_a_row.get(sid, 0) + 1 if request.error_type else 0
        self._errors_in_a_row[sid] = streak
        self._hold(
            streak >= ERROR_STREAK,
            "error_streak",
            sid,
            f"{_label(session)}: {streak} failed requests in a row ({request.error_type})",
            errors_in_a_row=streak,
            last_error=request.error_type,
            status=request.status,
        )

    # -- time-based --------------------------------------------------------------------
    def tick(self) -> None:
        now = self.clock.now()
        for session in list(self.tracker.sessions.values()):
            sid = session.session_id
            line = session.signals.main_line(session.model)
            left = line.expires_at - now if line is not None else None
            self._hold(
                session.state == "your_turn"
                and left is not None
                and 0 < left <= CACHE_WARN_SECONDS,
                "cache_expiring",
                sid,
                f"{_label(session)}'s prompt cache expires in {int(left or 0)} s",
                expires_at=iso(line.expires_at) if line else None,
                rebuild_cost_usd=None if line is None else usd(line.rebuild_cost_usd),
            )
            # Quiet since its last sign of life: sent, answered (headers), or bytes.
            quiet = [
                (now - max(r.started_at, r.response_started_at or 0.0, r.bytes_at or 0.0), r)
                for x in session.in_flight
                if (r := self.tracker.request_of(x)) is not None
            ]
            longest, request = max(quiet, key=lambda q: q[0], default=(0.0, None))
            answered = request is not None and request.response_started_at is not None
            self._hold(
                longest >= STALL_SECONDS,
                "stalled",
                sid,
                f"{_label(session)}: "
                + (
                    f"its response stream has sent nothing for {int(longest)} s"
                    if answered
                    else f"a request has had no answer for {int(longest)} s"
                ),
                waited_seconds=round(longest, 1),
                streaming=answered,
            )
        weekly = self.signals.weekly
        at = weekly.projected_exhaustion_at(now) if weekly.budget else None
        self._hold(
            at is not None,
            "budget_exhausting",
            None,
            f"the weekly token budget runs out at {iso(at)} at the last hour's pace",
            projected_exhaustion_at=iso(at),
            budget=weekly.budget,
            used=weekly.used(now),
        )
        self._quota()

    def _quota(self) -> None:
        view = self.signals.quota
        if view is None:
            return
        high = {w: u for w, u in view.utilization().items() if u >= QUOTA_WARN_UTILIZATION}
        warn = view.status in ("allowed_warning", "rejected") or bool(high)
        worst = max(high.items(), key=lambda kv: kv[1], default=None)
        why = f"the {worst[0]} window is at {worst[1]:.0%}" if worst else f"status {view.status}"
        self._hold(
            warn,
            "quota_warning",
            None,
            f"subscription quota: {why}",
            status=view.status,
            utilization=view.utilization(),
            representative_claim=view.representative_claim,
        )


def _label(session: Session) -> str:
    name = session.first_prompt or session.session_id[:8]
    name = name if len(name) <= 40 else name[:39] + "…"
    project = session.project
    return f"{project}: {name}" if project else name
