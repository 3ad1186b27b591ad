"""Opening the SQLite file: WAL, migrations, and a clear error when it cannot be used."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import sqlite_utils

from clauditor.store.schema import migrate


class StoreError(RuntimeError):
    """The database file cannot be opened or written."""


def default_db_path() -> Path:
    env = os.environ.get("CLAUDITOR_DB")
    if env:
        return Path(env).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "clauditor" / "clauditor.db"


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
        path.parent.mkdir(parents=True, exist_ok=True)
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
