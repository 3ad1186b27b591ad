"""One writer thread: batches row upserts off the event loop, coalesced by primary key.

Rows are flushed at least every `interval` seconds, so a crash loses at most that
much. If the disk is full or the file read-only, the batch is kept (bounded) and
retried, the error logged when it starts and then once per minute, the recovery logged
too, and live views keep working.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlite_utils

from clauditor.store.database import open_database

log = logging.getLogger(__name__)

PRIMARY_KEYS: dict[str, tuple[str, ...]] = {
    "sessions": ("session_id",),
    "turns": ("session_id", "turn"),
    "requests": ("uid",),
    "tool_calls": ("session_id", "tool_use_id"),
    "compactions": ("session_id", "happened_at"),
    "diagnoses": ("session_id", "code"),
}
# Tools whose input summary is a file path: recall searches the paths a session touched.
PATH_TOOLS = ("Read", "Edit", "Write", "MultiEdit", "NotebookEdit")

Row = dict[str, Any]
Task = Callable[[sqlite_utils.Database], object]
_STOP = object()


class StoreWriter:
    def __init__(self, path: Path | str, interval: float = 0.5, max_pending: int = 100_000) -> None:
        self.path = Path(path)
        self.interval = interval
        self.max_pending = max_pending
        self._queue: queue.SimpleQueue[tuple[str, Row] | object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._flushed = threading.Condition()
        self._enqueued = 0
        self._written_upto = 0
        self.rows_written = 0
        self.write_errors = 0
        self.dropped_rows = 0
        self.task_errors = 0
        self.last_error: str | None = None

    def start(self) -> None:
        db = open_database(self.path)  # raises StoreError up front, on the caller's thread
        db.conn.close()
        self._thread = threading.Thread(target=self._run, name="clauditor-store", daemon=True)
        self._thread.start()

    def put(self, table: str, row: Row) -> None:
        """Thread-safe and non-blocking; called from the event loop."""
        self._enqueued += 1
        self._queue.put((table, row))

    def task(self, fn: Task) -> None:
        """Run fn(db) on the writer thread after the rows queued before it are written."""
        self._enqueued += 1
        self._queue.put(fn)

    def flush(self, timeout: float = 5.0) -> bool:
        """Block until everything put so far is written (tests, shutdown)."""
        target = self._enqueued
        deadline = time.monotonic() + timeout
        with self._flushed:
            while self._written_upto < target:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._flushed.wait(remaining)
        return True

    def stop(self, timeout: float = 5.0) -> None:
        if self._thread is None:
            return
        self._queue.put(_STOP)
        self._thread.join(timeout)
        self._thread = None

    def _run(self) -> None:
        db = open_database(self.path)
        pending: dict[tuple[str, tuple[Any, ...]], Row] = {}
        tasks: list[Task] = []
        taken = 0
        last_report = 0.0
        failed_in_a_row = 0  # the first failure of a run is always logged, then once a minute
        stopping = False
        while not stopping:
            deadline = time.monotonic() + self.interval
            while True:
                try:
                    item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                    break
                taken += 1
                if callable(item):
                    tasks.append(item)
                    break  # write what came before it, then run it
                table, row = item  # type: ignore[misc]
                key = (table, tuple(row[k] for k in PRIMARY_KEYS[table]))
                if key in pending:
                    pending[key].update(row)
                else:
                    pending[key] = row
                if len(pending) > self.max_pending:
                    pending.pop(next(iter(pending)))
                    self.dropped_rows += 1
            if pending:
                try:
                    self._write(db, pending)
                except sqlite3.Error as exc:
                    self.write_errors += 1
                    failed_in_a_row += 1
                    self.last_error = str(exc)
                    now = time.monotonic()
                    if failed_in_a_row == 1 or now - last_report > 60:
                        last_report = now
                        log.error(
                            "cannot write to %s: %s [%s]; %d rows kept in memory, retrying "
                            "every %.1f s; live views are not affected (check the free space "
                            "and that the file is writable)",
                            self.path,
                            exc,
                            getattr(exc, "sqlite_errorname", type(exc).__name__),
                            len(pending),
                            self.interval,
                        )
                    if stopping:
                        log.error("stopping: %d rows not written to %s", len(pending), self.path)
                        break
                    continue
                self.rows_written += len(pending)
                pending = {}
                self.last_error = None
                if failed_in_a_row:
                    log.warning(
                        "writes to %s resumed after %d failed attempts", self.path, failed_in_a_row
                    )
                    failed_in_a_row = 0
            for fn in tasks:
                try:
                    fn(db)
                except Exception:
                    self.task_errors += 1
                    log.exception("store task failed")
            tasks = []
            with self._flushed:
                self._written_upto = taken
                self._flushed.notify_all()
        db.conn.close()

    @staticmethod
    def _write(db: Any, pending: dict[tuple[str, tuple[Any, ...]], Row]) -> None:
        by_table: dict[str, list[Row]] = {}
        for (table, _), row in pending.items():
            by_table.setdefault(table, []).append(row)
        touched = {row["session_id"] for (t, _), row in pending.items() if t != "requests"}
        with db.conn:
            for table, rows in by_table.items():
                db[table].upsert_all(rows, pk=PRIMARY_KEYS[table], alter=False)
            refresh_search(db, touched)


def refresh_search(db: sqlite_utils.Database, session_ids: set[str]) -> None:
    """Rebuild the recall rows of these sessions from what is stored (FTS triggers follow)."""
    marks = ",".join("?" * len(PATH_TOOLS))
    for session_id in session_ids:
        found = db.execute(
            "select first_prompt, summary from sessions where session_id = ?", [session_id]
        ).fetchone()
        if found is None:
            continue
        tools = db.execute(
            "select group_concat(name, ' ') from (select distinct name from tool_calls"
            " where session_id = ?)",
            [session_id],
        ).fetchone()[0]
        paths = db.execute(
            "select group_concat(input_summary, ' ') from (select distinct input_summary"
            f" from tool_calls where session_id = ? and name in ({marks}))",
            [session_id, *PATH_TOOLS],
        ).fetchone()[0]
        db["session_search"].upsert(
            {
                "session_id": session_id,
                "first_prompt": found[0],
                "summary": found[1],
                "tools": tools,
                "paths": paths,
            },
            pk="session_id",
        )
