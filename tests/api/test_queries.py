"""SessionQueries without a Core: a real tracker and a real Store on a SQLite file.

One session shape: a live session, the same session stored (its core gone), and the same
session after a restart (a new tracker that resumed it from the file) serialise to the
same keys and list the same turns, requests and tool calls."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clauditor.api.queries import SessionQueries
from clauditor.api.schemas import SessionDetailOut, SessionListOut
from clauditor.clock import ManualClock
from clauditor.sessions.ids import AmbiguousSession, UnknownSession
from clauditor.sessions.tracker import SessionTracker
from clauditor.store.store import Store
from tests.helpers import fixture_posts, headers_of
from tests.sessions.replay import Replayer

T0 = 1_796_000_000.0


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "q.db", flush_interval=0.05)
    s.start()
    yield s
    s.stop()


def _played(store: Store) -> tuple[SessionTracker, str]:
    """A Bash round trip (2 requests, 1 tool call) through a tracker writing to the store,
    as the core wires them."""
    clock = ManualClock(T0)
    tracker = SessionTracker(clock, listeners=[store], loader=store.load_session)
    replay = Replayer(tracker, clock)
    first, second = fixture_posts("b_tool_bash")
    replay.exchange(first, duration=1.0)
    clock.advance(0.5)
    replay.exchange(second, duration=1.0)
    clock.advance(5.0)
    return tracker, headers_of(first)["x-claude-code-session-id"]


def _shape(detail: dict[str, Any]) -> dict[str, Any]:
    return {
        "session": sorted(detail["session"]),
        **{k: [sorted(x) for x in detail[k]] for k in ("turns", "requests", "tool_calls")},
    }


def _ids(detail: dict[str, Any]) -> dict[str, list[Any]]:
    return {
        "turns": [t["turn"] for t in detail["turns"]],
        "requests": [r["uid"] for r in detail["requests"]],
        "tool_calls": [c["tool_use_id"] for c in detail["tool_calls"]],
    }


def test_live_stored_and_restarted_details_have_one_shape(store: Store) -> None:
    tracker, sid = _played(store)
    clock = tracker.clock
    live = asyncio.run(SessionQueries(tracker, store, clock).detail(sid))
    assert live is not None
    # The live tracker keeps no closed tool call, yet it is listed.
    assert not tracker.pending_tools(sid)
    assert len(live["tool_calls"]) == 1 and len(live["requests"]) == 2
    assert [t["outcome"] for t in live["turns"]] == ["completed"]

    store.writer.flush(5)
    gone = SessionTracker(ManualClock(T0 + 60), loader=store.load_session)
    stored = asyncio.run(SessionQueries(gone, store, gone.clock).detail(sid))
    assert stored is not None and stored["session"]["live"] is False

    # A restarted core: the session resumes from the file with none of its turns in memory.
    restarted = SessionTracker(ManualClock(T0 + 60), loader=store.load_session)
    restarted._resume(sid, T0 + 60)  # what its next request, or its registry entry, does
    assert sid in restarted.sessions and not restarted.sessions[sid].turns
    resumed = asyncio.run(SessionQueries(restarted, store, restarted.clock).detail(sid))
    assert resumed is not None

    assert _shape(live) == _shape(stored) == _shape(resumed)
    # ...which is the documented one (api/schemas: no key missing, none extra).
    for detail in (live, stored, resumed):
        SessionDetailOut.model_validate(detail)
    assert _ids(live) == _ids(stored) == _ids(resumed)
    # Values agree too where both sides know them.
    for key in ("turns", "requests", "tool_calls"):
        for a, b in zip(live[key], stored[key], strict=True):
            for field in ("outcome", "duration_ms", "time", "cost_usd", "status", "name"):
                if field in a:
                    assert a[field] == b[field], (key, field)


def test_the_list_merges_live_and_stored_and_counts_findings(store: Store) -> None:
    tracker, sid = _played(store)
    store.writer.flush(5)
    queries = SessionQueries(tracker, store, tracker.clock)
    (row,) = asyncio.run(queries.sessions())
    assert row["session_id"] == sid and row["live"] is True and row["findings"] == 0
    gone = SessionTracker(ManualClock(T0 + 60))
    (stored,) = asyncio.run(SessionQueries(gone, store, gone.clock).sessions())
    assert sorted(stored) == sorted(row)
    SessionListOut.model_validate({"sessions": [row, stored]})
    # A cutoff before its last activity keeps it; one after drops it.
    later = SessionQueries(gone, store, ManualClock(T0 + 3 * 86_400))
    assert asyncio.run(later.sessions(days=1)) == []
    assert len(asyncio.run(later.sessions(days=7))) == 1


def test_ids_resolve_by_unique_prefix(store: Store) -> None:
    tracker, sid = _played(store)
    store.writer.flush(5)
    queries = SessionQueries(tracker, store, tracker.clock)
    assert asyncio.run(queries.resolve(sid[:6])) == sid
    with pytest.raises(UnknownSession):
        asyncio.run(queries.resolve("ffffffff"))
    other = sid[:6] + "0" * (len(sid) - 6)
    store.writer.put("sessions", {"session_id": other, "status": "ended"})
    store.writer.flush(5)
    with pytest.raises(AmbiguousSession):
        asyncio.run(queries.resolve(sid[:6]))
