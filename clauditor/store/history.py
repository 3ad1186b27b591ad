"""History queries beyond one session: diagnosis runs, retention, session tables."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import sqlite_utils

from clauditor.clock import iso
from clauditor.diagnosis.rules import Finding, SessionRows, diagnose
from clauditor.store.rows import json_column, session_api_from_row

_SESSION_TABLES = ("turns", "requests", "tool_calls", "compactions", "diagnoses")


def list_sessions(
    db: sqlite_utils.Database, limit: int, days: float | None, status: str | None, now: float
) -> list[dict[str, Any]]:
    """Stored sessions, newest activity first, as API objects."""
    where: list[str] = []
    params: list[str | int | None] = []
    if days is not None:
        since = datetime.fromtimestamp(now, timezone.utc) - timedelta(days=days)
        where.append("last_activity_at >= ?")
        params.append(iso(since.timestamp()))
    if status:
        where.append("status = ?")
        params.append(status)
    sql = "select * from sessions"
    if where:
        sql += " where " + " and ".join(where)
    sql += " order by last_activity_at desc limit ?"
    params.append(limit)
    return [session_api_from_row(r) for r in db.query(sql, params)]


def session_ids_with_prefix(db: sqlite_utils.Database, prefix: str, limit: int = 20) -> list[str]:
    """Stored session ids that start with prefix (a plain comparison: no LIKE wildcards)."""
    prefix = prefix.strip()
    if not prefix:
        return []
    rows = db.execute(
        "select session_id from sessions where substr(session_id, 1, ?) = ? limit ?",
        [len(prefix), prefix, limit],
    )
    return [r[0] for r in rows]


def models_seen(db: sqlite_utils.Database) -> list[dict[str, Any]]:
    """Every model id requests asked for or were answered by: requests, last seen."""
    sql = """
        select model, count(*) as requests, max(started_at) as last_seen from (
            select model_requested as model, started_at from requests
            union all
            select model_responded, started_at from requests
            where model_responded is not null
              and model_responded != coalesce(model_requested, '')
        ) where model is not null group by model order by last_seen desc"""
    return list(db.query(sql))


def session_rows(db: sqlite_utils.Database, session_id: str) -> SessionRows | None:
    found = list(db.query("select * from sessions where session_id = ?", [session_id]))
    if not found:
        return None

    def rows(table: str, order: str, keep: str = "1") -> list[dict[str, Any]]:
        sql = f"select * from {table} where session_id = ? and ({keep}) order by {order}"
        return list(db.query(sql, [session_id]))

    # What a crashed or lagging core never saw the end of is no evidence of anything: not
    # an input.
    return SessionRows(
        session=found[0],
        turns=rows("turns", "turn", "coalesce(outcome, '') != 'unobserved'"),
        requests=rows(
            "requests",
            "started_at",
            "coalesce(error_type, '') != 'unobserved'"
            " and coalesce(outcome, '') not in ('unobserved', 'partial')",
        ),
        tool_calls=rows("tool_calls", "requested_at", "coalesce(outcome, '') != 'unobserved'"),
        compactions=rows("compactions", "happened_at"),
    )


def run_diagnosis(db: sqlite_utils.Database, session_id: str, now: float) -> list[Finding] | None:
    """Diagnose from the stored rows and replace the session's stored findings."""
    rows = session_rows(db, session_id)
    if rows is None:
        return None
    findings = diagnose(rows)
    with db.conn:
        db.execute("delete from diagnoses where session_id = ?", [session_id])
        if findings:
            db.table("diagnoses").insert_all(
                [
                    {
                        "session_id": session_id,
                        "code": f.code,
                        "severity": f.severity,
                        "message": f.message,
                        "evidence_json": json.dumps(f.evidence, sort_keys=True),
                        "advice_json": json.dumps(f.advice),
                        "created_at": iso(now),
                    }
                    for f in findings
                ],
                pk=("session_id", "code"),
            )
    return findings


def stored_findings(db: sqlite_utils.Database, session_id: str) -> list[dict[str, Any]]:
    return [
        {
            "code": r["code"],
            "severity": r["severity"],
            "message": r["message"],
            "evidence": json_column(r["evidence_json"], {}),
            "advice": json_column(r["advice_json"], []),
        }
        for r in db.query(
            "select * from diagnoses where session_id = ? order by severity desc, code",
            [session_id],
        )
    ]


def prune(db: sqlite_utils.Database, retention_days: float, now: float) -> int:
    """Delete sessions (and everything under them) idle for longer than retention_days."""
    cutoff = datetime.fromtimestamp(now, timezone.utc) - timedelta(days=retention_days)
    stamp = iso(cutoff.timestamp())
    old = [
        r[0]
        for r in db.execute(
            "select session_id from sessions where last_activity_at < ? and status = 'ended'",
            [stamp],
        )
    ]
    with db.conn:
        for start in range(0, len(old), 500):
            chunk = old[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for table in (*_SESSION_TABLES, "session_search", "sessions"):
                db.execute(f"delete from {table} where session_id in ({marks})", chunk)
    return len(old)


def findings_count_by_session(db: sqlite_utils.Database, ids: list[str]) -> dict[str, int]:
    if not ids:
        return {}
    marks = ",".join("?" * len(ids))
    return {
        r[0]: r[1]
        for r in db.execute(
            f"select session_id, count(*) from diagnoses where session_id in ({marks})"
            " group by session_id",
            ids,
        )
    }
