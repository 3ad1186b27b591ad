"""Opening the SQLite file: WAL, migrations, and what to do when it cannot be used.

The history must never stop clauditor from starting. `open_database` (the writer's
open) moves a file it cannot use (not SQLite, truncated, damaged pages, a schema that is
not ours, a folder in the way, a file it may not read) aside, never deleting it, and
starts a fresh one; what no fresh file can fix (a full or read-only disk, a schema from
a newer clauditor, a folder it cannot create) is a StoreError with a short `reason`,
and the writer keeps its rows in memory and tries again.

SQLite in WAL mode maps the `-shm` file into memory: a connection opened while that file
is not writable (read-only media, an immutable file) could take the process down with
SIGBUS. So no connection is opened on files that are not all writable: the writer
pauses, and readers open the main file read-only and `immutable` (no `-shm` at all).
"""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
import stat
import time
import urllib.parse
from pathlib import Path

import sqlite_utils

from clauditor.errors import ClauditorError
from clauditor.store.schema import SchemaTooNew, migrate

log = logging.getLogger(__name__)


class StoreError(ClauditorError):
    """The database file cannot be opened or written; `reason` in a few words (the
    store's `paused` state: "read-only", "disk full", ...)."""

    def __init__(self, message: str, reason: str = "unavailable") -> None:
        super().__init__(message)
        self.reason = reason


def default_db_dir() -> Path:
    """clauditor's own data directory ($XDG_DATA_HOME/clauditor)."""
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "clauditor"


def default_db_path() -> Path:
    env = os.environ.get("CLAUDITOR_DB")
    if env:
        return Path(env).expanduser()
    return default_db_dir() / "clauditor.db"


# The history holds prompts and what sessions did: this user's only. SQLite gives the -wal
# and -shm files the database file's mode, so creating that 0600 covers all three.
DIR_MODE = 0o700
FILE_MODE = 0o600
# The files SQLite keeps beside the database (WAL, its index, a rollback journal).
SIDE_FILES = ("-wal", "-shm", "-journal")
# On a small disk the WAL must not grow far between checkpoints, and is cut back to this
# size after one, so that freed space comes back (SQLite's default: 1000 pages, never cut).
WAL_AUTOCHECKPOINT_PAGES = 256
JOURNAL_SIZE_LIMIT = 1024 * 1024


def side_files(path: Path) -> list[Path]:
    return [Path(f"{path}{suffix}") for suffix in SIDE_FILES]


def _private(path: Path) -> None:
    """Make the directory 0700 when it is clauditor's own (created here, or the default
    one), and the database files 0600; a folder the user chose keeps its mode."""
    parent = path.parent
    if not parent.exists():
        parent.mkdir(parents=True, mode=DIR_MODE)
        os.chmod(parent, DIR_MODE)  # mkdir's mode is cut by the umask
    elif parent.resolve() == default_db_dir().resolve():
        _tighten(parent, DIR_MODE)
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE))
    for file in (path, *side_files(path)):
        if file.exists():
            _tighten(file, FILE_MODE)


def _tighten(path: Path, mode: int) -> None:
    """Drop permission bits beyond mode (never adds any); another user's file is left."""
    st = path.stat()
    if st.st_uid == os.getuid() and stat.S_IMODE(st.st_mode) & ~mode:
        os.chmod(path, stat.S_IMODE(st.st_mode) & mode)


def unwritable(path: Path | str) -> str | None:
    """Why the database cannot be written right now without opening it (None: it can).
    os.access sees a read-only mount (EROFS) and an immutable file (EPERM) even as root."""
    path = Path(path)
    for file in (path, *side_files(path)):
        if file.exists() and not os.access(file, os.R_OK | os.W_OK):
            return "read-only"
    parent = path.parent
    if parent.exists() and not os.access(parent, os.W_OK | os.X_OK):
        return "read-only"
    return None


def _uri(path: Path | str, **params: str) -> str:
    quoted = urllib.parse.quote(str(Path(path).absolute()))
    return f"file:{quoted}?{urllib.parse.urlencode(params)}"


def _finish(conn: sqlite3.Connection) -> sqlite_utils.Database:
    conn.execute("pragma busy_timeout = 10000")
    # A TEXT value that is not UTF-8 (written by another tool, or by hand) reads with U+FFFD
    # instead of failing the whole query, and with it the API.
    conn.text_factory = _text
    return sqlite_utils.Database(conn)


def connect(path: Path | str, *, readonly: bool = False) -> sqlite_utils.Database:
    """A reader's connection. It never creates the file (a database deleted under the core
    must not come back empty under its readers), and on files that cannot be written it
    opens the main file immutable: no -shm mapping, so no SIGBUS (what is still only in
    the WAL is not seen until the files are writable again). Raises sqlite3.Error."""
    if unwritable(path) is not None:
        conn = sqlite3.connect(
            _uri(path, mode="ro", immutable="1"), uri=True, check_same_thread=False
        )
    else:
        mode = "ro" if readonly else "rw"
        conn = sqlite3.connect(
            _uri(path, mode=mode), uri=True, check_same_thread=False, timeout=10.0
        )
    return _finish(conn)


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def empty_database() -> sqlite_utils.Database:
    """An in-memory database with the current schema: what readers query when the file
    cannot be read, so every view answers (empty) instead of failing."""
    db = _finish(sqlite3.connect(":memory:", check_same_thread=False))
    migrate(db)
    return db


# SQLite's word that the file itself is damaged or not a database (a fresh one fixes it).
_DAMAGED = ("SQLITE_CORRUPT", "SQLITE_NOTADB")
_DAMAGED_MESSAGES = ("malformed", "not a database", "file is encrypted")


def is_damaged(exc: sqlite3.Error) -> bool:
    name = getattr(exc, "sqlite_errorname", "") or ""
    return name.startswith(_DAMAGED) or any(m in str(exc).lower() for m in _DAMAGED_MESSAGES)


def fault_reason(exc: BaseException) -> str:
    """A full disk, a read-only one...: the store's `paused` state, in a few words."""
    if isinstance(exc, OSError):
        if exc.errno == errno.ENOSPC:
            return "disk full"
        if exc.errno in (errno.EROFS, errno.EPERM, errno.EACCES):
            return "read-only"
        return "cannot open"
    name = getattr(exc, "sqlite_errorname", "") or ""
    message = str(exc).lower()
    if name.startswith("SQLITE_FULL") or "disk is full" in message:
        return "disk full"
    if name.startswith("SQLITE_READONLY") or "readonly" in message:
        return "read-only"
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in message:
        return "locked"
    if name.startswith("SQLITE_IOERR") or "disk i/o error" in message:
        return "I/O error"
    return "cannot open"


def quarantine(path: Path, now: float | None = None) -> Path:
    """Move the database (and its -wal / -shm / -journal) aside as
    `<name>.corrupt-<UTC time>`; kept, never deleted. Returns the new path."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    for n in range(2, 100):  # two in the same second: a counter, never an overwrite
        if not target.exists() and not target.is_symlink():
            break
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    else:
        raise OSError(errno.EEXIST, f"too many quarantined copies of {path}")
    os.rename(path, target)
    for side in side_files(path):
        if side.exists():
            os.rename(side, Path(f"{target}{side.name[len(path.name) :]}"))
    return target


def _open(path: Path) -> sqlite_utils.Database:
    """Open and check the file; raises OSError / sqlite3.Error / SchemaTooNew."""
    if path.is_dir() and not path.is_symlink():
        raise IsADirectoryError(errno.EISDIR, "a directory is in the way", str(path))
    if path.exists() and not os.access(path, os.R_OK):
        raise PermissionError(errno.EACCES, "permission denied", str(path))
    _private(path)
    why = unwritable(path)
    if why is not None:
        raise StoreError(f"cannot write to database {path}: {why}", why)
    db = _finish(sqlite3.connect(str(path), check_same_thread=False, timeout=10.0))
    try:
        db.execute("pragma journal_mode = wal")
        db.execute("pragma synchronous = normal")
        db.execute(f"pragma wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES}")
        db.execute(f"pragma journal_size_limit = {JOURNAL_SIZE_LIMIT}")
        # Damaged pages open fine and fail a query later: look at every page now.
        found = db.execute("pragma quick_check").fetchone()[0]
        if found != "ok":
            raise sqlite3.DatabaseError(f"database disk image is malformed ({found})")
        migrate(db)
        # Prove we can write now rather than at the first session.
        with db.conn:
            db.execute("create table if not exists _write_probe (x)")
            db.execute("drop table _write_probe")
    except BaseException:
        db.conn.close()
        raise
    return db


def _file_error(exc: BaseException) -> bool:
    """A fault of the disk or of other processes (full, read-only, locked...), not of the
    file's contents: moving the file aside would not help."""
    if isinstance(exc, OSError):
        return exc.errno not in (errno.EISDIR, errno.EACCES, errno.ENOTDIR)
    if isinstance(exc, sqlite3.Error):
        return not is_damaged(exc) and fault_reason(exc) != "cannot open"
    return False


def open_database(path: Path | str) -> sqlite_utils.Database:
    """Create parent folders, switch to WAL, check the file, run migrations. A file that
    cannot be used is moved aside (and the user told in one line) and a fresh one made.
    Raises StoreError (with its `reason`) for what a fresh file would not fix."""
    path = Path(path)
    try:
        return _open(path)
    except StoreError:
        raise
    except SchemaTooNew as exc:
        raise StoreError(
            f"database {path}: {exc}; history is paused (upgrade clauditor, or use --db)",
            "schema newer than this clauditor",
        ) from exc
    except (OSError, sqlite3.Error) as exc:
        if _file_error(exc):
            raise StoreError(f"cannot use database {path}: {exc}", fault_reason(exc)) from exc
        problem = exc
    # Not SQLite, damaged, a schema that is not ours, a directory in the way, unreadable.
    try:
        moved = quarantine(path)
    except OSError as exc:
        raise StoreError(
            f"cannot use database {path} ({problem}) nor move it aside: {exc}", fault_reason(exc)
        ) from exc
    log.error(
        "database %s could not be used (%s): moved it to %s (kept, never deleted) and "
        "started a new one",
        path,
        problem,
        moved,
    )
    try:
        return _open(path)
    except SchemaTooNew as exc:  # pragma: no cover - a fresh file has our schema
        raise StoreError(str(exc), "schema newer than this clauditor") from exc
    except (OSError, sqlite3.Error) as exc:
        raise StoreError(f"cannot create database {path}: {exc}", fault_reason(exc)) from exc
