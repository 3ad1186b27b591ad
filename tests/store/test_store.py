from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
import sqlite_utils

from clauditor.clock import ManualClock
from clauditor.sessions.tracker import SessionTracker
from clauditor.store.database import StoreError, default_db_path, open_database
from clauditor.store.schema import SCHEMA_VERSION
from clauditor.store.store import Store
from clauditor.store.writer import StoreWriter
from tests.helpers import fixture_posts
from tests.sessions.replay import Replayer

SID = "04d0a982-8c0f-4567-aba3-6d8e967e76cc"


def test_migrates_an_empty_file(tmp_path: Path) -> None:
    db = open_database(tmp_path / "a" / "b.db")
    assert set(db.table_names()) >= {"sessions", "turns", "requests", "tool_calls"}
    assert db.execute("select max(version) from schema_version").fetchone()[0] == SCHEMA_VERSION
    assert db.execute("pragma journal_mode").fetchone()[0] == "wal"
    # Re-opening is a no-op, not a second migration.
    again = open_database(tmp_path / "a" / "b.db")
    assert again.execute("select count(*) from schema_version").fetchone()[0] == SCHEMA_VERSION


def test_refuses_a_newer_schema(tmp_path: Path) -> None:
    db = open_database(tmp_path / "c.db")
    db.execute("insert into schema_version values (?)", [SCHEMA_VERSION + 1])
    db.conn.commit()
    with pytest.raises(StoreError, match="newer than this clauditor"):
        open_database(tmp_path / "c.db")


def test_default_path_follows_xdg_and_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CLAUDITOR_DB", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert default_db_path() == tmp_path / "clauditor" / "clauditor.db"
    monkeypatch.setenv("CLAUDITOR_DB", str(tmp_path / "x.db"))
    assert default_db_path() == tmp_path / "x.db"


def test_writer_coalesces_by_primary_key(tmp_path: Path) -> None:
    writer = StoreWriter(tmp_path / "w.db", interval=0.05)
    writer.start()
    try:
        for n in range(100):
            writer.put("sessions", {"session_id": "s1", "requests": n})
        writer.put("sessions", {"session_id": "s2", "requests": 7})
        assert writer.flush(timeout=5)
    finally:
        writer.stop()
    db = sqlite_utils.Database(tmp_path / "w.db")
    rows = {r["session_id"]: r["requests"] for r in db["sessions"].rows}
    assert rows == {"s1": 99, "s2": 7}
    assert writer.rows_written <= 101


def test_disk_full_keeps_rows_and_retries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    writer = StoreWriter(tmp_path / "full.db", interval=0.05)
    real_write = StoreWriter._write
    failing = {"on": True}

    def write(db: object, pending: dict) -> None:  # type: ignore[type-arg]
        if failing["on"]:
            raise sqlite3.OperationalError("database or disk is full")
        real_write(db, pending)

    monkeypatch.setattr(StoreWriter, "_write", staticmethod(write))
    writer.start()
    try:
        writer.put("sessions", {"session_id": "s1", "requests": 1})
        assert not writer.flush(timeout=0.3)
        assert writer.write_errors >= 1
        assert writer.last_error == "database or disk is full"
        failing["on"] = False  # space freed: the kept batch lands
        assert writer.flush(timeout=5)
    finally:
        writer.stop()
    rows = list(sqlite_utils.Database(tmp_path / "full.db")["sessions"].rows)
    assert [(r["session_id"], r["requests"]) for r in rows] == [("s1", 1)]


def test_unwritable_location_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot use database"):
        open_database("/proc/clauditor/x.db")


def test_tracker_state_round_trips_through_the_store(tmp_path: Path) -> None:
    clock = ManualClock()
    store = Store(tmp_path / "h.db", flush_interval=0.05)
    store.start()
    tracker = SessionTracker(clock, listeners=[store], loader=store.load_session)
    replay = Replayer(tracker, clock)
    first, second = fixture_posts("b_tool_bash")
    replay.exchange(first)
    clock.advance(0.5)
    replay.exchange(second)
    live = tracker.sessions[SID]
    live_signals = live.signals.as_api(live.model)
    tracker.shutdown()
    assert store.writer.flush(timeout=5)

    (listed,) = asyncio.run(store.list_sessions())
    assert listed["session_id"] == SID
    assert (listed["turns"], listed["requests"], listed["tool_calls"]) == (1, 2, 1)
    assert listed["tools"] == {"Bash": 1}
    assert listed["status"] == "ended"
    assert listed["output_tokens"] == 37
    assert listed["live"] is False

    detail = asyncio.run(store.session_detail(SID))
    assert detail is not None
    assert [r["stop_reason"] for r in detail["requests"]] == ["tool_use", "end_turn"]
    assert detail["turns"][0]["outcome"] == "completed"
    (call,) = detail["tool_calls"]
    assert (call["name"], call["outcome"], call["summary"]) == ("Bash", "ok", "echo hi")
    assert call["duration_ms"] == 500.0
    # The signals a live core keeps in memory come back from the stored requests.
    recovered = ("ttft_ms_p50", "cache_status", "cache_ttl_seconds", "cache_expires_at")
    assert all(live_signals[k] is not None for k in recovered), live_signals
    assert {k: detail["session"][k] for k in recovered} == {k: live_signals[k] for k in recovered}

    # A new process (new tracker) resumes the stored counters.
    tracker2 = SessionTracker(clock, listeners=[store], loader=store.load_session)
    Replayer(tracker2, clock).exchange(fixture_posts("b_tool_bash")[0])
    resumed = tracker2.sessions[SID]
    assert (resumed.turn_count, resumed.request_count, resumed.status) == (2, 3, "active")
    store.stop()
    # Nothing from the request bodies beyond the first prompt is on disk.
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("h.db*"))
    assert b"sk-ant-test-fake" not in raw
    assert b"Run the shell command: echo hi" in raw
    with pytest.raises(sqlite3.OperationalError):
        sqlite3.connect(tmp_path / "h.db").execute("select * from transcripts")


def test_migrates_from_the_previous_version(tmp_path: Path) -> None:
    from clauditor.store.schema import MIGRATIONS

    old = sqlite_utils.Database(tmp_path / "old.db")
    old.execute("create table schema_version (version integer not null)")
    MIGRATIONS[0](old)
    old.execute("insert into schema_version values (1)")
    old["sessions"].insert({"session_id": "s-old", "turns": 4})
    old.conn.commit()
    old.conn.close()

    db = open_database(tmp_path / "old.db")
    assert db.execute("select max(version) from schema_version").fetchone()[0] == SCHEMA_VERSION
    assert {"trace_id", "cost_usd", "cache_status"} <= set(db["requests"].columns_dict)
    assert "estimated_cost_usd" in db["sessions"].columns_dict
    assert [(r["session_id"], r["turns"]) for r in db["sessions"].rows] == [("s-old", 4)]


def test_the_history_is_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import stat

    def mode(p: Path) -> int:
        return stat.S_IMODE(os.stat(p).st_mode)

    old = os.umask(0o022)  # a usual umask: files 0644, directories 0755 otherwise
    try:
        path = tmp_path / "new" / "h.db"
        store = Store(path, flush_interval=0.02)
        store.start()
        store.writer.put("sessions", {"session_id": "s"})
        assert store.writer.flush(timeout=5)
        files = [path, Path(f"{path}-wal"), Path(f"{path}-shm")]
        assert all(f.exists() for f in files)
        assert mode(path.parent) == 0o700
        assert [mode(f) for f in files] == [0o600] * 3
        store.stop()

        # An existing history left readable by an older version is tightened; the folder
        # the user chose for it keeps its mode.
        mine = tmp_path / "mine"
        mine.mkdir(mode=0o755)
        loose = mine / "h.db"
        sqlite3.connect(loose).close()
        os.chmod(loose, 0o644)
        open_database(loose).conn.close()
        assert mode(loose) == 0o600 and mode(mine) == 0o755
        # clauditor's own default folder is made 0700 even when it exists already.
        monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
        own = tmp_path / "xdg" / "clauditor"
        own.mkdir(parents=True, mode=0o755)
        os.chmod(own, 0o755)
        open_database(own / "clauditor.db").conn.close()
        assert mode(own) == 0o700
    finally:
        os.umask(old)
