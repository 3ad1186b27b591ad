"""Every captured Claude Code session (tests/fixtures/claude-code-<version>/) replayed
in-process through the request parser, the response parser (for streams cut by an SSE
error) and the tracker, against that capture's own truth (tests/compat/captures.py)."""

from __future__ import annotations

from typing import Any

import pytest

from clauditor.clock import ManualClock
from clauditor.sessions.tracker import SessionTracker
from tests.compat.captures import capture_ids, load
from tests.compat.check import compare
from tests.compat.truth import wire_of
from tests.sessions.replay import Replayer


def detail_of(tracker: SessionTracker, session_id: str) -> dict[str, Any]:
    """The shape of GET /api/sessions/{id} for a live session (clauditor.core.live_detail)."""
    session = tracker.sessions.get(session_id)
    if session is None:
        return {}
    return {
        "session": session.as_api(),
        "turns": [t.as_api() for t in session.turns],
        "requests": [r.as_api() for r in tracker.recent_requests(session_id)],
    }


@pytest.mark.parametrize("capture_id", capture_ids())
def test_capture_replayed_in_process_matches_its_truth(capture_id: str) -> None:
    capture = load(capture_id)
    first_ts = next(r["ts"] for r in capture.records if r.get("method") == "POST")
    clock = ManualClock(start=float(first_ts))
    tracker = SessionTracker(clock, idle_timeout=300, end_timeout=1800)
    Replayer(tracker, clock).records(capture.records)
    tracker.tick()

    wire = wire_of(capture.records, capture.truth.session_id)
    detail = detail_of(tracker, capture.truth.session_id)
    result = compare(detail, capture.truth, wire, capture.expect)
    assert not result, result.text(f"{capture_id} replayed in-process:")
