"""The Store: a TrackerListener that persists, plus the read queries the API needs."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import sqlite_utils

from clauditor.claude_code import AGENT_TOOLS
from clauditor.clock import Clock, SystemClock, iso
from clauditor.sessions.listener import TrackerListener
from clauditor.sessions.models import (
    Compaction,
    RequestRecord,
    Session,
    TokenCounts,
    ToolCall,
    Turn,
)
from clauditor.store import history, rows, totals, trends
from clauditor.store.database import connect, empty_database
from clauditor.store.recall import recall
from clauditor.store.writer import StoreWriter

PRUNE_EVERY_SECONDS = 3600.0
# What a crashed core left open and no core can finish: the exchange it watched is gone.
UNOBSERVED = "unobserved"

log = logging.getLogger(__name__)
T = TypeVar("T")


def close_unobserved(db: sqlite_utils.Database) -> dict[str, int]:
    """At start, before any row of this core: close what the previous core left half
    written as `unobserved` (clauditor did not see how it ended: never an error of
    Anthropic's, never input to a diagnosis). Requests in flight can never end: the side
    stream that carried them died with that core. A turn in progress and its pending
    tool calls are left alone when they are the last turn of a session that is not
    ended: that session is adopted, and its next request may continue the turn."""
    with db.conn:
        requests = db.execute(
            "update requests set error_type = ?, outcome = ?"
            " where ended_at is null and error_type is null",
            [UNOBSERVED, UNOBSERVED],
        ).rowcount
        turns = db.execute(
            """update turns set outcome = ? where outcome = 'in_progress' and not (
                 session_id in (select session_id from sessions where status != 'ended')
                 and turn = (select max(t.turn) from turns t
                             where t.session_id = turns.session_id))""",
            [UNOBSERVED],
        ).rowcount
        tools = db.execute(
            """update tool_calls set outcome = ? where outcome = 'pending' and not exists (
                 select 1 from turns t where t.session_id = tool_calls.session_id
                 and t.turn is tool_calls.turn and t.outcome = 'in_progress')""",
            [UNOBSERVED],
        ).rowcount
    counts = {"requests": requests, "turns": turns, "tool_calls": tools}
    if any(counts.values()):
        log.warning(
            "closed what a previous core left open as unobserved: %d request(s), %d turn(s), "
            "%d tool call(s)",
            requests,
            turns,
            tools,
        )
    return counts


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
        self.unobserved_at_start: dict[str, int] = {}
        self._last_read_error = 0.0

    def _repair(self, db: sqlite_utils.Database) -> None:
        self.unobserved_at_start = close_unobserved(db)

    def start(self) -> None:
        """Never raises: a file that cannot be used leaves the store paused (live views
        work, stored history reads empty), and the writer keeps trying."""
        self.writer.on_first_open = self._repair
        self.writer.start()
        # Its first open moves a broken file aside and closes the last core's open rows:
        # the reads that follow (adopting live sessions, the week's tokens) come after.
        self.writer.wait_opened(timeout=10.0)
        self.maybe_prune()

    def _read(self, query: Callable[[sqlite_utils.Database], T]) -> T:
        """Run a read on its own connection; when the file cannot be read (paused, being
        recreated, damaged), on an empty database instead: the API answers, never 500."""
        try:
            db = connect(self.path)
        except (sqlite3.Error, OSError) as exc:
            return self._read_empty(query, exc)
        try:
            return query(db)
        except sqlite3.Error as exc:
            return self._read_empty(query, exc)
        finally:
            db.conn.close()

    def _read_empty(self, query: Callable[[sqlite_utils.Database], T], exc: BaseException) -> T:
        now = time.monotonic()
        if now - self._last_read_error > 60:
            self._last_read_error = now
            log.warning(
                "cannot read %s (%s): stored history reads as empty for now", self.path, exc
            )
        db = empty_database()
        try:
            return query(db)
        finally:
            db.conn.close()

    def maybe_prune(self) -> None:
        """Retention: drop sessions idle for longer than retention_days (hourly)."""
        now = self.clock.now()
        if self._last_prune is not None and now - self._last_prune < PRUNE_EVERY_SECONDS:
            return
        self._last_prune = now
        days = self.retention_days
        self.writer.task(lambda db: history.prune(db, days, now))

    def stop(self) -> None:
        # Last: whatever this core leaves open (a request cut by the stop, a tool call
        # whose result never came) is closed now rather than at the next start.
        self.writer.task(lambda db: close_unobserved(db))
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

    def request_changed(self, session: Session, request: RequestRecord) -> None:
        self.writer.put("requests", rows.request_row(request))

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

        def query(db: sqlite_utils.Database) -> Session | None:
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

        return self._read(query)

    def unfinished_session_ids(self) -> list[str]:
        """Sessions a previous core was tracking when it stopped without closing them."""
        return self._read(
            lambda db: [
                r[0] for r in db.execute("select session_id from sessions where status != 'ended'")
            ]
        )

    def _list_sessions(
        self, limit: int, days: float | None, status: str | None
    ) -> list[dict[str, Any]]:
        def query(db: sqlite_utils.Database) -> list[dict[str, Any]]:
            found = history.list_sessions(db, limit, days, status, now=self.clock.now())
            counts = history.findings_count_by_session(db, [r["session_id"] for r in found])
            return [{**r, "findings": counts.get(r["session_id"], 0)} for r in found]

        return self._read(query)

    def _session_detail(self, session_id: str) -> dict[str, Any] | None:
        def query(db: sqlite_utils.Database) -> dict[str, Any] | None:
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
            out["tool_calls"] = [rows.tool_call_from_row(r).as_api() for r in tool_rows]
            return out

        return self._read(query)

    async def list_sessions(
        self, limit: int = 50, days: float | None = None, status: str | None = None
    ) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self._list_sessions, limit, days, status)

    async def session_detail(
        self, session_id: str, *, fresh: bool = False
    ) -> dict[str, Any] | None:
        """A stored session's detail; fresh: the writer's pending rows first (a live one)."""
        if fresh:
            await asyncio.to_thread(self.writer.flush, 2.0, unless_paused=True)
        return await asyncio.to_thread(self._session_detail, session_id)

    # -- history: recall and diagnosis ----------------------------------------------------
    def _recall(self, text: str, limit: int, days: float | None) -> list[dict[str, Any]]:
        self.writer.flush(
            timeout=2.0, unless_paused=True
        )  # live sessions are searchable right away

        def query(db: sqlite_utils.Database) -> list[dict[str, Any]]:
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

        return self._read(query)

    async def recall(
        self, text: str, limit: int = 10, days: float | None = None
    ) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self._recall, text, limit, days)

    def _diagnosis(self, session_id: str) -> dict[str, Any] | None:
        self.writer.flush(
            timeout=5.0, unless_paused=True
        )  # live rows first, so the rules see the latest turn

        def query(db: sqlite_utils.Database) -> dict[str, Any] | None:
            findings = history.run_diagnosis(db, session_id, self.clock.now())
            if findings is None:
                return None
            return {
                "session_id": session_id,
                "findings": history.stored_findings(db, session_id),
            }

        return self._read(query)

    def _findings_counts(self, ids: list[str]) -> dict[str, int]:
        return self._read(lambda db: history.findings_count_by_session(db, ids))

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
        self.writer.flush(timeout=2.0, unless_paused=True)
        return self._read(history.models_seen)

    async def models_seen(self) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self._models_seen)

    # -- signals: period totals and the weekly token count ---------------------------------
    def _summary(self, now: float) -> dict[str, Any]:
        self.writer.flush(timeout=2.0, unless_paused=True)  # live requests count right away
        return self._read(lambda db: totals.summary(db, now))

    async def summary(self, now: float) -> dict[str, Any]:
        """Totals for today / this week / this month (UTC), from the stored requests."""
        return await asyncio.to_thread(self._summary, now)

    def _report(self, days: int, by: str, now: float) -> dict[str, Any]:
        self.writer.flush(timeout=2.0, unless_paused=True)
        return self._read(lambda db: trends.trend_report(db, days, by, now=now))

    async def report(self, days: int, by: str, now: float) -> dict[str, Any]:
        """`clauditor report`: the last `days` UTC days, cost grouped `by` day/model/project."""
        return await asyncio.to_thread(self._report, days, by, now)

    def tokens_since(self, since: float) -> TokenCounts:
        """Synchronous: tokens of the requests that ended since `since` (weekly count seed)."""
        return self._read(lambda db: totals.tokens_since(db, since))
