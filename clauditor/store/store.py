"""The Store: a TrackerListener that persists, plus the read queries the API needs."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from clauditor.claude_code import AGENT_TOOLS
from clauditor.clock import Clock, SystemClock, iso
from clauditor.sessions.models import (
    Compaction,
    RequestRecord,
    Session,
    TokenCounts,
    ToolCall,
    Turn,
)
from clauditor.sessions.tracker import TrackerListener
from clauditor.store import history, rows, totals
from clauditor.store.database import connect
from clauditor.store.recall import recall
from clauditor.store.writer import StoreWriter

PRUNE_EVERY_SECONDS = 3600.0


class Store(TrackerListener):
    def __init__(
        self,
        path: Path | str,
        flush_interval: float = 0.5,
        *,
        clock: Clock | None = None,
        no_prompts: bool = False,
        retention_days: float = 90.0,
    ) -> None:
        self.path = Path(path)
        self.writer = StoreWriter(self.path, interval=flush_interval)
        self.clock = clock or SystemClock()
        self.no_prompts = no_prompts
        self.retention_days = retention_days
        self._last_prune: float | None = None

    def start(self) -> None:
        self.writer.start()
        self.maybe_prune()

    def maybe_prune(self) -> None:
        """Retention: drop sessions idle for longer than retention_days (hourly)."""
        now = self.clock.now()
        if self._last_prune is not None and now - self._last_prune < PRUNE_EVERY_SECONDS:
            return
        self._last_prune = now
        days = self.retention_days
        self.writer.task(lambda db: history.prune(db, days, now))

    def stop(self) -> None:
        self.writer.stop()

    # -- TrackerListener: every change becomes an upsert -----------------------------
    def _session_row(self, session: Session) -> dict[str, Any]:
        row = rows.session_row(session)
        if self.no_prompts:
            row["first_prompt"] = row["summary"] = None
        elif not row["summary"] and session.tools:
            # No assistant text to summarise: the tools used say what the session did.
            row["summary"] = "tools: " + ", ".join(
                f"{name} x{n}" for name, n in session.tools.most_common(8)
            )
        return row

    def session_changed(self, session: Session) -> None:
        self.writer.put("sessions", self._session_row(session))

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

    def compacted(self, session: Session, compaction: Compaction) -> None:
        self.writer.put(
            "compactions",
            {
                "session_id": session.session_id,
                "turn": compaction.turn_index,
                "happened_at": iso(compaction.at),
                "model": compaction.model,
                "context_tokens_before": compaction.context_tokens,
                "summary_tokens": compaction.summary_tokens,
                "trigger": compaction.trigger,
            },
        )

    def tool_use(self, session: Session, call: ToolCall) -> None:
        self.writer.put("tool_calls", rows.tool_call_row(call))

    def tool_result(self, session: Session, call: ToolCall) -> None:
        self.writer.put("tool_calls", rows.tool_call_row(call))

    def status_changed(self, session: Session, previous: str) -> None:
        self.writer.put("sessions", self._session_row(session))
        if session.status in ("idle", "ended") and previous == "active":
            self.diagnose_later(session.session_id)

    def diagnose_later(self, session_id: str) -> None:
        now = self.clock.now()
        self.writer.task(lambda db: history.run_diagnosis(db, session_id, now))

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
        db = connect(self.path)
        try:
            found = history.list_sessions(db, limit, days, status, now=self.clock.now())
            counts = history.findings_count_by_session(db, [r["session_id"] for r in found])
            return [{**r, "findings": counts.get(r["session_id"], 0)} for r in found]
        finally:
            db.conn.close()

    def _session_detail(self, session_id: str) -> dict[str, Any] | None:
        db = connect(self.path)
        try:
            found = list(db.query("select * from sessions where session_id = ?", [session_id]))
            if not found:
                return None
            out: dict[str, Any] = {"session": rows.session_api_from_row(found[0])}
            tool_rows = list(
                db.query(
                    "select * from tool_calls where session_id = ? order by requested_at",
                    [session_id],
                )
            )
            agents: dict[int, list[dict[str, Any]]] = {}
            for r in tool_rows:
                if r["name"] in AGENT_TOOLS and r["turn"] is not None:
                    agents.setdefault(r["turn"], []).append(r)
            out["turns"] = [
                rows.turn_api_from_row(r, agents.get(r["turn"]))
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
            out["session"].update(rows.stored_signals(out["requests"]))
            out["tool_calls"] = [
                {k: v for k, v in r.items() if k != "session_id"} for r in tool_rows
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

    # -- history: recall and diagnosis ----------------------------------------------------
    def _recall(self, text: str, limit: int, days: float | None) -> list[dict[str, Any]]:
        self.writer.flush(timeout=2.0)  # live sessions are searchable right away
        db = connect(self.path)
        try:
            hits = recall(db, text, limit=limit, days=days, now=self.clock.now())
            counts = history.findings_count_by_session(db, [h.session_id for h in hits])
            return [
                {
                    **rows.session_api_from_row(h.row),
                    "score": h.score,
                    "findings": counts.get(h.session_id, 0),
                }
                for h in hits
            ]
        finally:
            db.conn.close()

    async def recall(
        self, text: str, limit: int = 10, days: float | None = None
    ) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self._recall, text, limit, days)

    def _diagnosis(self, session_id: str) -> dict[str, Any] | None:
        self.writer.flush(timeout=5.0)  # live rows first, so the rules see the latest turn
        db = connect(self.path)
        try:
            findings = history.run_diagnosis(db, session_id, self.clock.now())
            if findings is None:
                return None
            return {
                "session_id": session_id,
                "findings": history.stored_findings(db, session_id),
            }
        finally:
            db.conn.close()

    def _findings_counts(self, ids: list[str]) -> dict[str, int]:
        db = connect(self.path)
        try:
            return history.findings_count_by_session(db, ids)
        finally:
            db.conn.close()

    async def findings_counts(self, ids: list[str]) -> dict[str, int]:
        return await asyncio.to_thread(self._findings_counts, ids) if ids else {}

    async def diagnosis(self, session_id: str) -> dict[str, Any] | None:
        """Run the rules now (on demand) and return the findings; None: unknown session."""
        return await asyncio.to_thread(self._diagnosis, session_id)

    def _ids_with_prefix(self, prefix: str) -> list[str]:
        db = connect(self.path)
        try:
            return history.session_ids_with_prefix(db, prefix)
        finally:
            db.conn.close()

    async def ids_with_prefix(self, prefix: str) -> list[str]:
        return await asyncio.to_thread(self._ids_with_prefix, prefix)

    def _models_seen(self) -> list[dict[str, Any]]:
        self.writer.flush(timeout=2.0)
        db = connect(self.path)
        try:
            return history.models_seen(db)
        finally:
            db.conn.close()

    async def models_seen(self) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self._models_seen)

    # -- signals: period totals and the weekly token count ---------------------------------
    def _summary(self, now: float) -> dict[str, Any]:
        self.writer.flush(timeout=2.0)  # live requests count right away
        db = connect(self.path)
        try:
            return totals.summary(db, now)
        finally:
            db.conn.close()

    async def summary(self, now: float) -> dict[str, Any]:
        """Totals for today / this week / this month (UTC), from the stored requests."""
        return await asyncio.to_thread(self._summary, now)

    def tokens_since(self, since: float) -> TokenCounts:
        """Synchronous: tokens of the requests that ended since `since` (weekly count seed)."""
        db = connect(self.path)
        try:
            return totals.tokens_since(db, since)
        finally:
            db.conn.close()
