"""The Store: a TrackerListener that persists, plus the read queries the API needs."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from clauditor.sessions.models import RequestRecord, Session, ToolCall, Turn
from clauditor.sessions.tracker import TrackerListener
from clauditor.store import rows
from clauditor.store.database import connect
from clauditor.store.writer import StoreWriter


class Store(TrackerListener):
    def __init__(self, path: Path | str, flush_interval: float = 0.5) -> None:
        self.path = Path(path)
        self.writer = StoreWriter(self.path, interval=flush_interval)

    def start(self) -> None:
        self.writer.start()

    def stop(self) -> None:
        self.writer.stop()

    # -- TrackerListener: every change becomes an upsert -----------------------------
    def session_changed(self, session: Session) -> None:
        self.writer.put("sessions", rows.session_row(session))

    def turn_started(self, session: Session, turn: Turn) -> None:
        self.writer.put("turns", rows.turn_row(turn))

    def turn_ended(self, session: Session, turn: Turn) -> None:
        self.writer.put("turns", rows.turn_row(turn))

    def request_started(self, session: Session, request: RequestRecord) -> None:
        self.writer.put("requests", rows.request_row(request))

    def request_finished(self, session: Session, request: RequestRecord) -> None:
        self.writer.put("requests", rows.request_row(request))
        turn = next((t for t in reversed(session.turns) if t.index == request.turn_index), None)
        if turn is not None:
            self.writer.put("turns", rows.turn_row(turn))
        # The response end is when its tools were asked for (requested_at is set now).
        for tool_use_id, _ in request.tool_uses:
            call = session.pending_tools.get(tool_use_id)
            if call is not None:
                self.writer.put("tool_calls", rows.tool_call_row(call))

    def tool_use(self, session: Session, call: ToolCall) -> None:
        self.writer.put("tool_calls", rows.tool_call_row(call))

    def tool_result(self, session: Session, call: ToolCall) -> None:
        self.writer.put("tool_calls", rows.tool_call_row(call))

    def status_changed(self, session: Session, previous: str) -> None:
        self.writer.put("sessions", rows.session_row(session))

    # -- reads (run in a worker thread; each opens its own connection) ------------------
    def load_session(self, session_id: str) -> Session | None:
        """Synchronous primary-key read, used when a stored session becomes live again."""
        db = connect(self.path)
        try:
            found = list(db.query("select * from sessions where session_id = ?", [session_id]))
            if not found:
                return None
            session = rows.session_from_row(found[0])
            # A turn the previous core left open continues where it was.
            last = list(
                db.query(
                    "select * from turns where session_id = ? order by turn desc limit 1",
                    [session_id],
                )
            )
            if last and last[0]["outcome"] == "in_progress":
                session.turns.append(rows.turn_from_row(last[0]))
            for row in db.query(
                "select * from tool_calls where session_id = ? and outcome = 'pending'",
                [session_id],
            ):
                call = rows.tool_call_from_row(row)
                session.pending_tools[call.tool_use_id] = call
            return session
        finally:
            db.conn.close()

    def unfinished_session_ids(self) -> list[str]:
        """Sessions a previous core was tracking when it stopped without closing them."""
        db = connect(self.path)
        try:
            return [
                r[0] for r in db.execute("select session_id from sessions where status != 'ended'")
            ]
        finally:
            db.conn.close()

    def _list_sessions(self, limit: int, days: float | None, status: str | None) -> list[dict]:
        where, params = [], []
        if days is not None:
            since = datetime.now(timezone.utc) - timedelta(days=days)
            where.append("last_activity_at >= ?")
            params.append(since.isoformat(timespec="milliseconds").replace("+00:00", "Z"))
        if status:
            where.append("status = ?")
            params.append(status)
        sql = "select * from sessions"
        if where:
            sql += " where " + " and ".join(where)
        sql += " order by last_activity_at desc limit ?"
        params.append(limit)
        db = connect(self.path)
        try:
            return [rows.session_api_from_row(r) for r in db.query(sql, params)]
        finally:
            db.conn.close()

    def _session_detail(self, session_id: str) -> dict[str, Any] | None:
        db = connect(self.path)
        try:
            found = list(db.query("select * from sessions where session_id = ?", [session_id]))
            if not found:
                return None
            out: dict[str, Any] = {"session": rows.session_api_from_row(found[0])}
            out["turns"] = [
                rows.turn_api_from_row(r)
                for r in db.query(
                    "select * from turns where session_id = ? order by turn", [session_id]
                )
            ]
            out["requests"] = [
                rows.request_api_from_row(r)
                for r in db.query(
                    "select * from requests where session_id = ? order by started_at",
                    [session_id],
                )
            ]
            out["tool_calls"] = [
                {k: v for k, v in r.items() if k != "session_id"}
                for r in db.query(
                    "select * from tool_calls where session_id = ? order by requested_at",
                    [session_id],
                )
            ]
            return out
        finally:
            db.conn.close()

    async def list_sessions(
        self, limit: int = 50, days: float | None = None, status: str | None = None
    ) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self._list_sessions, limit, days, status)

    async def session_detail(self, session_id: str) -> dict[str, Any] | None:
        return await asyncio.to_thread(self._session_detail, session_id)
