"""The store writer never dies and never lies: faults injected into one row or the thread."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils

from clauditor.store.store import Store
from clauditor.store.writer import StoreWriter, is_file_error
from tests.helpers import wait_until


def _sessions(path: Path) -> dict[str, Any]:
    db = sqlite_utils.Database(path)
    try:
        return {r["session_id"]: r for r in db["sessions"].rows}
    finally:
        db.conn.close()


@pytest.fixture
def writer(tmp_path: Path) -> Any:
    w = StoreWriter(tmp_path / "w.db", interval=0.02)
    w.start()
    yield w
    w.stop()


def test_a_lone_surrogate_is_scrubbed_and_the_rest_of_the_batch_written(
    writer: StoreWriter,
) -> None:
    writer.put("sessions", {"session_id": "a", "first_prompt": "fine"})
    writer.put("sessions", {"session_id": "b", "first_prompt": "bad \ud800 text"})
    writer.put("sessions", {"session_id": "c", "first_prompt": "also fine"})
    assert writer.flush(timeout=5)
    rows = _sessions(writer.path)
    assert {k: v["first_prompt"] for k, v in rows.items()} == {
        "a": "fine",
        "b": "bad \ufffd text",
        "c": "also fine",
    }
    stats = writer.stats()
    assert stats["rows_sanitised"] == 1
    assert stats["rows_dropped"] == 0
    assert stats["rows_written"] == 3
    assert stats["write_errors"] == 0
    assert stats["writer_alive"] is True
    # Later rows keep landing.
    writer.put("sessions", {"session_id": "d"})
    assert writer.flush(timeout=5)
    assert "d" in _sessions(writer.path)


def test_a_row_that_fails_even_scrubbed_is_dropped_and_counted(
    writer: StoreWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = StoreWriter._write

    def write(db: Any, pending: dict) -> None:  # type: ignore[type-arg]
        if any(row.get("first_prompt") == "poison" for row in pending.values()):
            raise ValueError("injected")
        real(db, pending)

    monkeypatch.setattr(StoreWriter, "_write", staticmethod(write))
    for sid in ("a", "b", "c"):
        writer.put("sessions", {"session_id": sid, "first_prompt": "poison" if sid == "b" else sid})
    # A row without its primary key, and one for a table that does not exist.
    writer.put("sessions", {"first_prompt": "no key"})
    writer.put("nope", {"session_id": "x"})
    assert writer.flush(timeout=5)
    assert set(_sessions(writer.path)) == {"a", "c"}
    stats = writer.stats()
    assert stats["rows_dropped"] == 3
    assert stats["rows_dropped_by_reason"]["bad_row"] == 3
    assert stats["rows_written"] == 2
    assert stats["writer_alive"] is True


def test_a_thread_that_raises_is_restarted_and_counted(
    writer: StoreWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = StoreWriter._write_pending
    once = threading.Event()

    def crash(self: StoreWriter, db: Any) -> None:
        if not once.is_set():
            once.set()
            raise RuntimeError("injected outside the per-row guard")
        real(self, db)

    monkeypatch.setattr(StoreWriter, "_write_pending", crash)
    writer.put("sessions", {"session_id": "lost"})
    assert writer.flush(timeout=5)  # flush() is released, not left hanging
    wait_until(lambda: writer.restarts == 1, timeout=5)
    writer.put("sessions", {"session_id": "after"})
    assert writer.flush(timeout=5)
    assert set(_sessions(writer.path)) == {"after"}
    stats = writer.stats()
    assert stats["writer_restarts"] == 1
    assert stats["rows_dropped_by_reason"]["writer_crash"] == 1
    assert stats["writer_alive"] is True


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_dead_thread_is_seen_and_started_again(
    writer: StoreWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SystemExit is not an Exception: the thread's own guard lets it end the thread.
    monkeypatch.setattr(
        StoreWriter, "_take", lambda self, item: (_ for _ in ()).throw(SystemExit(3))
    )
    writer.put("sessions", {"session_id": "x"})
    wait_until(lambda: not writer.alive, timeout=5)
    assert writer.stats()["writer_alive"] is False
    monkeypatch.undo()
    assert writer.ensure_running() is True
    assert writer.ensure_running() is False  # alive again: nothing to do
    writer.put("sessions", {"session_id": "y"})
    assert writer.flush(timeout=5)
    assert "y" in _sessions(writer.path)
    assert writer.stats()["writer_restarts"] == 1


def test_the_pending_bound_counts_what_it_drops(tmp_path: Path) -> None:
    w = StoreWriter(tmp_path / "b.db", interval=0.02, max_pending=10)
    gate = threading.Event()
    real = StoreWriter._write

    def slow(db: Any, pending: dict) -> None:  # type: ignore[type-arg]
        gate.wait(5)
        real(db, pending)

    w._write = staticmethod(slow)  # type: ignore[method-assign]
    w.start()
    try:
        # Queued before the thread takes any: it takes all 25, keeps 10, drops 15.
        for n in range(25):
            w._queue.put(("sessions", {"session_id": f"s{n}"}))
            w._enqueued += 1
        gate.set()
        assert w.flush(timeout=5)
    finally:
        w.stop()
    assert w.stats()["rows_dropped_by_reason"]["queue_full"] + w.rows_written == 25
    assert w.stats()["rows_dropped"] == 25 - len(_sessions(tmp_path / "b.db"))


def test_file_errors_are_told_from_row_errors() -> None:
    assert is_file_error(sqlite3.OperationalError("database or disk is full"))
    assert is_file_error(sqlite3.OperationalError("attempt to write a readonly database"))
    assert is_file_error(sqlite3.DatabaseError("database disk image is malformed"))
    assert not is_file_error(sqlite3.OperationalError("table sessions has no column named x"))
    assert not is_file_error(sqlite3.IntegrityError("NOT NULL constraint failed"))
    assert not is_file_error(UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates"))


def test_stored_rows_with_odd_text_are_read(tmp_path: Path) -> None:
    """Bytes that are not UTF-8 in a TEXT column, or broken JSON in a JSON column (another
    tool, an older version, a hand edit): read with U+FFFD, never an exception."""
    store = Store(tmp_path / "odd.db", flush_interval=0.02)
    store.start()
    try:
        store.writer.put("sessions", {"session_id": "odd", "last_activity_at": "2030-01-01"})
        store.writer.put("requests", {"uid": "r1", "session_id": "odd", "started_at": "x"})
        assert store.writer.flush(timeout=5)
        conn = sqlite3.connect(tmp_path / "odd.db")
        with conn:
            conn.execute(
                "update sessions set first_prompt = cast(x'6869ff21' as text),"
                " tools_json = '{broken' where session_id = 'odd'"
            )
            conn.execute("update requests set tool_uses_json = '[' where uid = 'r1'")
        conn.close()
        (listed,) = asyncio.run(store.list_sessions())
        assert listed["first_prompt"] == "hi\ufffd!"
        assert listed["tools"] == {}
        detail = asyncio.run(store.session_detail("odd"))
        assert detail is not None
        assert detail["session"]["first_prompt"] == "hi\ufffd!"
        assert detail["requests"][0]["tool_uses"] == []
        resumed = store.load_session("odd")
        assert resumed is not None and resumed.first_prompt == "hi\ufffd!"
    finally:
        store.stop()
