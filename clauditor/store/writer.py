"""One writer thread: batches row upserts off the event loop, coalesced by primary key.

Rows are flushed at least every `interval` seconds, so a crash loses at most that
much. If the disk is full or the file read-only, the batch is kept (bounded) and
retried, the error logged once per minute, and live views keep working.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from clauditor.store.database import open_database

log = logging.getLogger(__name__)

PRIMARY_KEYS: dict[str, tuple[str, ...]] = {
    "sessions": ("session_id",),
    "turns": ("session_id", "turn"),
    "requests": ("uid",),
    "tool_calls": ("session_id", "tool_use_id"),
}

Row = dict[str, Any]
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
        taken = 0
        last_report = 0.0
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
                table, row = item  # type: ignore[misc]
                taken += 1
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
                    self.rows_written += len(pending)
                    pending = {}
                    self.last_error = None
                except sqlite3.Error as exc:
                    self.write_errors += 1
                    self.last_error = str(exc)
                    now = time.monotonic()
                    if now - last_report > 60:
                        last_report = now
                        log.error("cannot write to %s: %s (will retry)", self.path, exc)
                    if stopping:
                        break
                    continue
            with self._flushed:
                self._written_upto = taken
                self._flushed.notify_all()
        db.conn.close()

    @staticmethod
    def _write(db: Any, pending: dict[tuple[str, tuple[Any, ...]], Row]) -> None:
        by_table: dict[str, list[Row]] = {}
        for (table, _), row in pending.items():
            by_table.setdefault(table, []).append(row)
        with db.conn:
            for table, rows in by_table.items():
                db[table].upsert_all(rows, pk=PRIMARY_KEYS[table], alter=False)
