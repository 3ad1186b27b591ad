"""One writer thread: batches row upserts off the event loop, coalesced by primary key.

Rows are flushed at least every `interval` seconds, so a crash loses at most that
much. If the disk is full or the file read-only, or the file cannot be opened at all,
the store is `paused` (with the reason: "disk full", "read-only"...): the batch is kept
(bounded) and retried, the error logged when it starts and then once per minute, the
recovery logged too, and live views keep working. A database deleted or replaced while
the core runs is noticed within IDENTITY_CHECK seconds and created again.

Nothing lost, nothing false: a batch that fails for any other reason is written again
row by row, so one bad row costs only itself. That row is retried once with its text
scrubbed (lone surrogates → U+FFFD, `clauditor.safetext`), and if it still fails it is
dropped. Every row that does not reach the file is counted by reason (`dropped`), and
so is every row written scrubbed (`sanitised`). Should the thread die anyway, it is
started again (`restarts`) and the rows it held are counted as dropped.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlite_utils

from clauditor.claude_code import PATH_TOOLS
from clauditor.safetext import scrub
from clauditor.store.database import (
    StoreError,
    fault_reason,
    is_damaged,
    open_database,
    unwritable,
)

log = logging.getLogger(__name__)

PRIMARY_KEYS: dict[str, tuple[str, ...]] = {
    "sessions": ("session_id",),
    "turns": ("session_id", "turn"),
    "requests": ("uid",),
    "tool_calls": ("session_id", "tool_use_id"),
    "compactions": ("session_id", "happened_at"),
    "diagnoses": ("session_id", "code"),
}
# Why a row never reached the file (the keys of `dropped`, and the metric's reasons).
DROP_REASONS = ("queue_full", "bad_row", "writer_crash", "shutdown")

# How often the writer checks that the path still names the file it writes to (deleted
# under it: rows would go to the unlinked inode, and readers would find nothing).
IDENTITY_CHECK = 2.0
# Retrying an open that failed (cannot create, read-only, a newer schema): 0.5 s doubling.
OPEN_RETRY_FIRST = 0.5
OPEN_RETRY_MAX = 5.0
# Tasks (diagnoses, pruning) kept while the file cannot be opened; the oldest go first.
MAX_HELD_TASKS = 1000

Row = dict[str, Any]
Key = tuple[str, tuple[Any, ...]]
Task = Callable[[sqlite_utils.Database], object]
_STOP = object()

# Errors of the file rather than of a row: the batch is kept and retried as it is.
_FILE_ERRORS = (
    "SQLITE_FULL",
    "SQLITE_IOERR",
    "SQLITE_READONLY",
    "SQLITE_BUSY",
    "SQLITE_LOCKED",
    "SQLITE_CANTOPEN",
    "SQLITE_NOMEM",
    "SQLITE_PROTOCOL",
    "SQLITE_CORRUPT",
    "SQLITE_NOTADB",
)
# The same, by message (Python < 3.11 has no sqlite_errorname).
_FILE_MESSAGES = (
    "disk is full",
    "disk i/o error",
    "readonly",
    "read-only",
    "is locked",
    "unable to open",
    "out of memory",
    "malformed",
    "not a database",
)


def is_file_error(exc: BaseException) -> bool:
    """True when exc says the database file cannot be written now (disk full, read-only,
    locked...): retrying the same rows later can succeed. False for a row's own fault."""
    if not isinstance(exc, sqlite3.OperationalError) and type(exc) is not sqlite3.DatabaseError:
        return False
    name = getattr(exc, "sqlite_errorname", "") or ""
    if name.startswith(_FILE_ERRORS):
        return True
    message = str(exc).lower()
    return any(m in message for m in _FILE_MESSAGES)


class StoreWriter:
    def __init__(self, path: Path | str, interval: float = 0.5, max_pending: int = 100_000) -> None:
        self.path = Path(path)
        self.interval = interval
        self.max_pending = max_pending
        self._queue: queue.SimpleQueue[tuple[str, Row] | object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._stop_event = threading.Event()  # cuts a restart's backoff short at stop()
        self._flushed = threading.Condition()
        self._enqueued = 0
        self._written_upto = 0
        # The writer thread's own state, on self so that a restarted thread goes on.
        self._pending: dict[Key, Row] = {}
        self._tasks: list[Task] = []
        self._taken = 0
        self.rows_written = 0
        self.write_errors = 0  # failed batches, kept and retried (disk full, read-only...)
        self.dropped: Counter[str] = Counter({reason: 0 for reason in DROP_REASONS})
        self.rows_sanitised = 0
        self.restarts = 0
        self.task_errors = 0
        self.tasks_dropped = 0
        self.last_error: str | None = None
        # Why nothing is written right now ("disk full", "read-only", ...), since when.
        self.paused: str | None = None
        self.paused_since: float | None = None
        self.db_recreated = 0  # times the file was gone or replaced and made again
        # Run once on the writer thread at the first successful open, before any row.
        self.on_first_open: Task | None = None
        self._first_open_done = False
        self._opened = threading.Event()  # the first open was tried (good or not)
        self._ident: tuple[int, int] | None = None
        self._last_drop_log = 0.0
        self._last_pause_log = 0.0

    @property
    def rows_dropped(self) -> int:
        return sum(self.dropped.values())

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the thread; never raises: a file that cannot be used pauses the store."""
        self._stopping = False
        self._stop_event.clear()
        self._spawn()

    def wait_opened(self, timeout: float = 10.0) -> bool:
        """Wait (bounded) until the thread has tried to open the file once: its repairs
        (a broken file moved aside, rows of a crashed core closed) come before any read."""
        return self._opened.wait(timeout)

    def _spawn(self) -> None:
        self._thread = threading.Thread(target=self._main, name="clauditor-store", daemon=True)
        self._thread.start()

    def ensure_running(self) -> bool:
        """Start the thread again if it died (the core calls this every second); True if
        it had to. A thread that raised is restarted by itself; this catches the rest."""
        if self._thread is None or self._stopping or self._thread.is_alive():
            return False
        self.restarts += 1
        self._lose_held("writer_crash")
        log.error("the store writer thread had stopped; started it again")
        self._spawn()
        return True

    def put(self, table: str, row: Row) -> None:
        """Thread-safe and non-blocking; called from the event loop."""
        self._enqueued += 1
        self._queue.put((table, row))

    def task(self, fn: Task) -> None:
        """Run fn(db) on the writer thread after the rows queued before it are written."""
        self._enqueued += 1
        self._queue.put(fn)

    def flush(self, timeout: float = 5.0, *, unless_paused: bool = False) -> bool:
        """Block until everything put so far is written (tests, shutdown). unless_paused:
        False at once while paused (readers must not wait for a disk to free up)."""
        if unless_paused and self.paused is not None:
            return False
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
        self._stopping = True
        self._stop_event.set()
        self._queue.put(_STOP)
        self._thread.join(timeout)
        self._thread = None

    def stats(self) -> dict[str, Any]:
        return {
            "rows_written": self.rows_written,
            "write_errors": self.write_errors,
            "rows_dropped": self.rows_dropped,
            "rows_dropped_by_reason": dict(self.dropped),
            "rows_sanitised": self.rows_sanitised,
            "writer_alive": self.alive,
            "writer_restarts": self.restarts,
            "task_errors": self.task_errors,
            "tasks_dropped": self.tasks_dropped,
            "last_error": self.last_error,
            "state": "paused" if self.paused else "ok",
            "paused": self.paused,
            "paused_seconds": (
                round(time.monotonic() - self.paused_since, 1) if self.paused_since else None
            ),
            "rows_pending": len(self._pending),
            "db_recreated": self.db_recreated,
        }

    # -- the thread ---------------------------------------------------------------------
    def _main(self) -> None:
        """Run the loop; if it raises, count it, drop what it held and run it again."""
        backoff = self.interval
        while True:
            try:
                self._run()
                return
            except Exception:
                self.restarts += 1
                self._lose_held("writer_crash")
                log.exception("the store writer failed; starting it again in %.1f s", backoff)
            # A file that keeps failing to open must not make this a busy loop.
            if self._stop_event.wait(backoff):
                self._drain_at_stop()
                return
            backoff = min(backoff * 2, 10.0)

    def _drain_at_stop(self) -> None:
        """Stopping while the loop is down: what is still queued will not be written."""
        lost = 0
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not _STOP:
                self._taken += 1
                lost += not callable(item)
        self._drop("shutdown", lost)
        self._lose_held("shutdown")

    def _lose_held(self, reason: str) -> None:
        """Count the rows the thread held as dropped, and release flush() waiters."""
        self._drop(reason, len(self._pending))
        self._pending = {}
        self._tasks = []
        with self._flushed:
            self._written_upto = self._taken
            self._flushed.notify_all()

    def _drop(self, reason: str, n: int = 1) -> None:
        if n <= 0:
            return
        self.dropped[reason] += n
        now = time.monotonic()
        if now - self._last_drop_log > 60:
            self._last_drop_log = now
            log.error(
                "store: %d row(s) not written (%s); %d dropped in all, see /api/stats",
                n,
                reason,
                self.rows_dropped,
            )

    def _take(self, item: tuple[str, Row]) -> None:
        table, row = item
        try:
            key = (table, tuple(row[k] for k in PRIMARY_KEYS[table]))
            hash(key)
        except Exception:  # no such table, a key column missing or unhashable
            self._drop("bad_row")
            return
        pending = self._pending
        if key in pending:
            pending[key].update(row)
        else:
            pending[key] = row
        if len(pending) > self.max_pending:
            pending.pop(next(iter(pending)))
            self._drop("queue_full")

    def _run(self) -> None:
        while True:
            db = self._open_or_wait()
            if db is None:
                return  # stopping
            try:
                again = self._loop(db)
            finally:
                db.conn.close()
            if not again:
                return
            # Opened again (deleted, replaced or damaged under us): not in a tight loop
            # should the file keep failing; what is queued meanwhile waits in the queue.
            self._stop_event.wait(self.interval)

    def _pause(self, reason: str, error: str, code: str = "") -> None:
        """Nothing can be written now: say why (once, then once a minute)."""
        now = time.monotonic()
        if self.paused is None:
            self.paused_since = now
        first = self.paused is None or self.paused != reason
        self.paused = reason
        self.last_error = error
        if first or now - self._last_pause_log > 60:
            self._last_pause_log = now
            log.error(
                "cannot write to %s: %s [%s]; %d rows kept in memory, retrying; live views "
                "are not affected (check the free space and that the file is writable)",
                self.path,
                error,
                code or reason,
                len(self._pending),
            )

    def _resumed(self, attempts: int) -> None:
        if self.paused is None:
            return
        log.warning(
            "writes to %s resumed after %d failed attempts (%s for %.0f s)",
            self.path,
            attempts,
            self.paused,
            time.monotonic() - (self.paused_since or time.monotonic()),
        )
        self.paused = self.paused_since = None
        self.last_error = None

    def _open_or_wait(self) -> sqlite_utils.Database | None:
        """Open the file; while it cannot be, keep taking rows (bounded, coalesced) and try
        again with a growing pause. None: stopping."""
        retry = OPEN_RETRY_FIRST
        attempts = 0
        while True:
            try:
                db = open_database(self.path)
            except StoreError as exc:
                attempts += 1
                self._pause(exc.reason, str(exc))
                self._opened.set()
                if not self._gather(retry):
                    self._lose_held("shutdown")
                    return None
                retry = min(retry * 2, OPEN_RETRY_MAX)
                continue
            st = os.stat(self.path)
            self._ident = (st.st_dev, st.st_ino)
            if not self._first_open_done and self.on_first_open is not None:
                self._first_open_done = True
                try:
                    self.on_first_open(db)
                except Exception:
                    self.task_errors += 1
                    log.exception("store: start-up repair failed")
            self._first_open_done = True
            self._opened.set()
            self._resumed(attempts)
            return db

    def _gather(self, seconds: float) -> bool:
        """Take what is queued for `seconds` (rows into the pending batch, tasks held);
        False when asked to stop."""
        deadline = time.monotonic() + seconds
        while True:
            try:
                item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return True
            if item is _STOP:
                return False
            self._taken += 1
            if callable(item):
                self._tasks.append(item)
                if len(self._tasks) > MAX_HELD_TASKS:
                    self._tasks.pop(0)
                    self.tasks_dropped += 1
                continue
            self._take(item)  # type: ignore[arg-type]

    def _replaced(self) -> bool:
        """The path no longer names the file we write to (deleted, moved, replaced)."""
        try:
            st = os.stat(self.path)
        except OSError:
            return True
        return (st.st_dev, st.st_ino) != self._ident

    def _loop(self, db: sqlite_utils.Database) -> bool:
        """Write batches until stopped (False) or until the file must be opened again:
        deleted or replaced under us, or found damaged (True)."""
        failed_in_a_row = 0
        stopping = False
        next_check = time.monotonic() + IDENTITY_CHECK
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
                self._taken += 1
                if callable(item):
                    self._tasks.append(item)
                    break  # write what came before it, then run it
                self._take(item)  # type: ignore[arg-type]
            if time.monotonic() >= next_check or stopping:
                next_check = time.monotonic() + IDENTITY_CHECK
                if self._replaced():
                    self.db_recreated += 1
                    log.warning(
                        "database %s was deleted or replaced while clauditor runs: creating "
                        "it again (%d rows kept in memory go there; rows written in the last "
                        "%.0f s went to the old file)",
                        self.path,
                        len(self._pending),
                        IDENTITY_CHECK,
                    )
                    if not stopping:
                        return True
                    self._queue.put(_STOP)  # write the rest to the new file, then stop
                    return True
            why = unwritable(self.path) if (self._pending or self._tasks) else None
            if why is not None:
                # Not even an attempt: a connection touching an unwritable -shm can SIGBUS.
                self.write_errors += 1
                failed_in_a_row += 1
                self._pause(why, "the file or its folder is not writable", why)
                if stopping:
                    self._lose_held("shutdown")
                continue
            if self._pending:
                try:
                    self._write_pending(db)
                except sqlite3.Error as exc:  # the file's fault: keep the rows, retry
                    self.write_errors += 1
                    failed_in_a_row += 1
                    code = getattr(exc, "sqlite_errorname", type(exc).__name__)
                    self._pause(fault_reason(exc), str(exc), code)
                    if is_damaged(exc):
                        return True  # opened again: a damaged file is moved aside
                    if fault_reason(exc) == "disk full":
                        self._shrink_wal(db)
                    if stopping:
                        log.error(
                            "stopping: %d rows not written to %s", len(self._pending), self.path
                        )
                        self._lose_held("shutdown")
                        break
                    continue
                self._resumed(failed_in_a_row)
                failed_in_a_row = 0
            for fn in self._tasks:
                try:
                    fn(db)
                except Exception:
                    self.task_errors += 1
                    log.exception("store task failed")
            self._tasks = []
            with self._flushed:
                self._written_upto = self._taken
                self._flushed.notify_all()
        return False

    @staticmethod
    def _shrink_wal(db: sqlite_utils.Database) -> None:
        """Disk full: give back what the WAL holds (copied into the database, the WAL cut
        to nothing) so that space frees up for the rows kept in memory."""
        with contextlib.suppress(sqlite3.Error):  # it needs space too: tried again next time
            db.execute("pragma wal_checkpoint(TRUNCATE)")

    def _write_pending(self, db: sqlite_utils.Database) -> None:
        """Write the pending batch; raises only the file's errors (pending kept then)."""
        pending = self._pending
        try:
            self._write(db, pending)
        except Exception as exc:
            if is_file_error(exc):
                raise
            self._write_one_by_one(db)
            return
        self.rows_written += len(pending)
        self._pending = {}

    def _write_one_by_one(self, db: sqlite_utils.Database) -> None:
        """Some row of the batch is bad: write each alone, scrub a failing one and try it
        once more, drop it if that fails too. A file error stops this and keeps the rest."""
        pending = self._pending
        for key in list(pending):
            row = pending[key]
            error = self._try_write(db, key, row)
            if error is not None:
                clean = scrub(row)
                if clean != row:
                    error = self._try_write(db, key, clean)
                    if error is None:
                        self.rows_sanitised += 1
                if error is not None:
                    log.warning(
                        "store: dropped a %s row that cannot be written: %s: %s",
                        key[0],
                        type(error).__name__,
                        error,
                    )
                    self._drop("bad_row")
            if error is None:
                self.rows_written += 1
            del pending[key]

    def _try_write(self, db: sqlite_utils.Database, key: Key, row: Row) -> Exception | None:
        """Write one row: None when written, the error when the row is at fault; the
        file's errors are raised (the caller keeps what is left)."""
        try:
            self._write(db, {key: row})
        except Exception as exc:
            if is_file_error(exc):
                raise
            return exc
        return None

    @staticmethod
    def _write(db: Any, pending: dict[Key, Row]) -> None:
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
        db.table("session_search").upsert(
            {
                "session_id": session_id,
                "first_prompt": found[0],
                "summary": found[1],
                "tools": tools,
                "paths": paths,
            },
            pk="session_id",
        )
