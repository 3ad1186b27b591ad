"""Rows a crashed core left half written (a request in flight, a turn in progress, a
tool call pending) are closed at the next start as `unobserved`: never an error against
Anthropic, never input to a diagnosis. The last open turn of a session that is not ended
is left to the core that adopts it (its next request may continue that turn)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clauditor.clock import iso
from clauditor.store import history, totals
from clauditor.store.database import open_database
from clauditor.store.store import Store

NOW = 1_800_000_000.0


def _request(uid: str, session: str, turn: int, **over: Any) -> dict[str, Any]:
    row = {
        "uid": uid, "session_id": session, "turn": turn, "kind": "main", "stream": 1,
        "retry": 0, "started_at": iso(NOW - 60), "ended_at": iso(NOW - 59), "status": 200,
        "stop_reason": "end_turn", "input_tokens": 10, "output_tokens": 5,
        "cache_read_tokens": 0, "cache_creation_tokens": 0, "error_type": None,
    }  # fmt: skip
    return {**row, **over}


def _seed(db_path: Path) -> None:
    db = open_database(db_path)
    with db.conn:
        db["sessions"].insert_all(
            [
                {"session_id": "ended", "status": "ended", "turns": 2},
                {"session_id": "live", "status": "active", "turns": 2},
            ]
        )
        db["turns"].insert_all(
            [
                {"session_id": "ended", "turn": 1, "outcome": "in_progress"},
                {"session_id": "ended", "turn": 2, "outcome": "in_progress"},
                {"session_id": "live", "turn": 1, "outcome": "in_progress"},
                {"session_id": "live", "turn": 2, "outcome": "in_progress"},
            ]
        )
        db["tool_calls"].insert_all(
            [
                {"session_id": "ended", "tool_use_id": "t1", "turn": 2, "outcome": "pending"},
                {"session_id": "live", "tool_use_id": "t2", "turn": 1, "outcome": "pending"},
                {"session_id": "live", "tool_use_id": "t3", "turn": 2, "outcome": "pending"},
                {"session_id": "live", "tool_use_id": "t4", "turn": 2, "outcome": "ok"},
            ]
        )
        db["requests"].insert_all(
            [
                _request("r1", "ended", 1),
                _request("r2", "ended", 2, ended_at=None, status=None, stop_reason=None),
                _request("r3", "live", 2, ended_at=None, status=None, stop_reason=None),
                _request("r4", "live", 2, status=529, error_type="overloaded_error"),
            ]
        )
    db.conn.close()


def test_closed_at_start_as_unobserved(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    _seed(path)
    store = Store(path)
    store.start()
    try:
        assert store.unobserved_at_start == {"requests": 2, "turns": 3, "tool_calls": 2}
        # The adopted session's open turn and its pending call are still there to resume.
        live = store.load_session("live")
        assert live is not None
        assert [t.index for t in live.turns] == [2]
        assert set(live.pending_tools) == {"t3"}
    finally:
        store.stop()
    db = open_database(path)
    turns = {(r["session_id"], r["turn"]): r["outcome"] for r in db["turns"].rows}
    assert turns == {
        ("ended", 1): "unobserved",
        ("ended", 2): "unobserved",
        ("live", 1): "unobserved",
        ("live", 2): "in_progress",
    }
    tools = {r["tool_use_id"]: r["outcome"] for r in db["tool_calls"].rows}
    assert tools == {"t1": "unobserved", "t2": "unobserved", "t3": "pending", "t4": "ok"}
    reqs = {r["uid"]: r["error_type"] for r in db["requests"].rows}
    assert reqs == {"r1": None, "r2": "unobserved", "r3": "unobserved", "r4": "overloaded_error"}
    # A second start finds nothing more to close.
    again = Store(path)
    again.start()
    again.stop()
    assert again.unobserved_at_start == {"requests": 0, "turns": 0, "tool_calls": 0}


def test_unobserved_is_no_error_and_no_evidence(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    _seed(path)
    db = open_database(path)
    from clauditor.store.store import close_unobserved

    close_unobserved(db)
    today = totals.summary(db, NOW)["today"]
    assert today["errors"] == 1
    assert today["errors_by_type"] == {"http_529": 1}
    assert today["unobserved_requests"] == 2
    assert today["unpriced_requests"] == 2  # r1, r4 ended unpriced; unobserved never count
    rows = history.session_rows(db, "live")
    assert rows is not None
    assert [r["uid"] for r in rows.requests] == ["r4"]
    assert all(t["outcome"] != "unobserved" for t in rows.turns)
    assert all(c["outcome"] != "unobserved" for c in rows.tool_calls)
