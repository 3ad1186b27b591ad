"""Opening the SQLite file: WAL, migrations, and a clear error when it cannot be used."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import sqlite_utils

from clauditor.store.schema import migrate


class StoreError(RuntimeError):
    """The database file cannot be opened or written."""


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
    for file in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        if file.exists():
            _tighten(file, FILE_MODE)


def _tighten(path: Path, mode: int) -> None:
    """Drop permission bits beyond mode (never adds any); another user's file is left."""
    st = path.stat()
    if st.st_uid == os.getuid() and stat.S_IMODE(st.st_mode) & ~mode:
        os.chmod(path, stat.S_IMODE(st.st_mode) & mode)


def connect(path: Path | str, *, readonly: bool = False) -> sqlite_utils.Database:
    if readonly:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    else:
        conn = sqlite3.connect(str(path), check_same_thread=False, timeout=10.0)
    conn.execute("pragma busy_timeout = 10000")
    # A TEXT value that is not UTF-8 (written by another tool, or by hand) reads with U+FFFD
    # instead of failing the whole query, and with it the API.
    conn.text_factory = _text
    return sqlite_utils.Database(conn)


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def open_database(path: Path | str) -> sqlite_utils.Database:
    """Create parent folders, switch to WAL, run migrations. Raises StoreError."""
    path = Path(path)
    try:
        _private(path)
        db = connect(path)
        db.execute("pragma journal_mode = wal")
        db.execute("pragma synchronous = normal")
        migrate(db)
        # Prove we can write now rather than at the first session.
        with db.conn:
            db.execute("create table if not exists _write_probe (x)")
            db.execute("drop table _write_probe")
    except (OSError, sqlite3.Error, RuntimeError) as exc:  # RuntimeError: schema too new
        raise StoreError(f"cannot use database {path}: {exc}") from exc
    return db
