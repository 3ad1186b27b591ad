"""Where `clauditor sessions/recall/diagnose` read from: the running core, or the file.

The API is preferred (it knows live sessions); when the core is not running, the
database file is read directly, so history stays reachable.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import httpx
import sqlite_utils

from clauditor.errors import ClauditorError
from clauditor.reports.models import models_report
from clauditor.sessions.ids import SessionIdError, resolve_session_id
from clauditor.sessions.signals.prices import PriceTable
from clauditor.store import history
from clauditor.store.database import connect
from clauditor.store.recall import recall
from clauditor.store.rows import session_api_from_row
from clauditor.store.trends import trend_report

T = TypeVar("T")


class SourceError(ClauditorError):
    """Neither the core nor the database can answer; the message says what was tried."""


class NotFound(SourceError):
    pass


class HistorySource(Protocol):
    @property
    def description(self) -> str: ...

    def sessions(self, limit: int, days: float | None) -> list[dict[str, Any]]: ...
    def recall(self, query: str, limit: int, days: float | None) -> list[dict[str, Any]]: ...
    def diagnose(self, session_id: str) -> dict[str, Any]: ...
    def models(self, prices: PriceTable) -> dict[str, Any]: ...
    def report(self, days: int, by: str) -> dict[str, Any]: ...


@dataclass
class ApiSource:
    url: str
    timeout: float = 10.0

    @property
    def description(self) -> str:
        return f"core at {self.url}"

    def _get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        try:
            r = httpx.get(
                f"{self.url.rstrip('/')}{path}",
                params={k: v for k, v in (params or {}).items() if v is not None},
                timeout=self.timeout,
                trust_env=False,
            )
        except httpx.HTTPError as exc:
            raise SourceError(f"cannot reach the core at {self.url} ({exc})") from None
        if r.status_code in (404, 409):  # no such session / an ambiguous short id
            raise NotFound(r.json().get("detail", "not found"))
        if r.status_code != 200:
            raise SourceError(f"the core answered {r.status_code}: {r.text[:200]}")
        return r.json()

    def reachable(self) -> bool:
        try:
            return self._get("/health") is not None
        except SourceError:
            return False
        except ValueError:  # /health is plain text, not JSON: it answered
            return True

    def sessions(self, limit: int, days: float | None) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self._get("/api/sessions", {"limit": limit, "days": days})[
            "sessions"
        ]
        return found

    def recall(self, query: str, limit: int, days: float | None) -> list[dict[str, Any]]:
        params = {"q": query, "limit": limit, "days": days}
        found: list[dict[str, Any]] = self._get("/api/recall", params)["sessions"]
        return found

    def diagnose(self, session_id: str) -> dict[str, Any]:
        found: dict[str, Any] = self._get(f"/api/diagnosis/{session_id}")
        return found

    def models(self, prices: PriceTable) -> dict[str, Any]:
        # The core's own catalog (with its --prices), and what it has seen.
        found: dict[str, Any] = self._get("/api/models")
        return found

    def report(self, days: int, by: str) -> dict[str, Any]:
        found: dict[str, Any] = self._get("/api/report", {"days": days, "by": by})
        return found


@dataclass
class DbSource:
    path: Path

    @property
    def description(self) -> str:
        return f"database {self.path}"

    def _run(self, query: Callable[[sqlite_utils.Database], T]) -> T:
        """Open the file (never create it), run query, turn SQLite errors into one line."""
        if not self.path.is_file():
            raise SourceError(f"no database at {self.path}")
        try:
            db = connect(self.path)
            try:
                if "sessions" not in db.table_names():
                    raise SourceError(f"{self.path} is not a clauditor database")
                return query(db)
            finally:
                db.conn.close()
        except sqlite3.Error as exc:
            raise SourceError(f"cannot read {self.path}: {exc}") from None

    def sessions(self, limit: int, days: float | None) -> list[dict[str, Any]]:
        def query(db: sqlite_utils.Database) -> list[dict[str, Any]]:
            rows = history.list_sessions(db, limit, days, None, now=time.time())
            counts = history.findings_count_by_session(db, [r["session_id"] for r in rows])
            return [{**r, "findings": counts.get(r["session_id"], 0)} for r in rows]

        return self._run(query)

    def recall(self, query: str, limit: int, days: float | None) -> list[dict[str, Any]]:
        def search(db: sqlite_utils.Database) -> list[dict[str, Any]]:
            hits = recall(db, query, limit=limit, days=days, now=time.time())
            return [{**session_api_from_row(h.row), "score": h.score} for h in hits]

        return self._run(search)

    def diagnose(self, session_id: str) -> dict[str, Any]:
        def run(db: sqlite_utils.Database) -> dict[str, Any]:
            try:
                full = resolve_session_id(
                    session_id, history.session_ids_with_prefix(db, session_id)
                )
            except SessionIdError as exc:
                raise NotFound(str(exc)) from None
            if history.run_diagnosis(db, full, time.time()) is None:
                raise NotFound(f"no session {full!r}")
            return {"session_id": full, "findings": history.stored_findings(db, full)}

        return self._run(run)

    def models(self, prices: PriceTable) -> dict[str, Any]:
        return self._run(lambda db: models_report(prices, history.models_seen(db), time.time()))

    def report(self, days: int, by: str) -> dict[str, Any]:
        return self._run(lambda db: trend_report(db, days, by, now=time.time()))


def pick_source(url: str, db: Path | None, default_db: Path) -> HistorySource:
    """--db wins; else the core if it answers; else the default database file."""
    if db is not None:
        return DbSource(db)
    api = ApiSource(url)
    if api.reachable():
        return api
    if default_db.exists():
        return DbSource(default_db)
    raise SourceError(
        f"the core is not reachable at {url} and there is no database at {default_db}"
    )
