"""Totals for today / this week / this month, in SQL over the stored requests and turns.

Periods are UTC: today from 00:00, the week from Monday 00:00, the month from the 1st.
A request belongs to the period it started in; a session counts when one of its requests
did. Cache hit ratio = cache_read / (input + cache_read + cache_creation) tokens.
A request closed as `unobserved` (a crashed core never saw its end) is no error: it is
counted apart (`unobserved_requests`), never in `errors` or `errors_by_type`; so is one
whose side stream Envoy reset while the core lagged (outcome `unobserved` / `partial`).
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from typing import Any

import sqlite_utils

from clauditor.clock import iso, parse_iso
from clauditor.money import usd
from clauditor.sessions.models import TokenCounts
from clauditor.sessions.signals.errors import error_category
from clauditor.sessions.signals.prices import COST_CLASSES
from clauditor.store.rows import class_api

PERIODS = ("today", "week", "month")

_TOTALS = """
select count(distinct session_id) as sessions,
       count(*) as requests,
       coalesce(sum(input_tokens), 0) as input_tokens,
       coalesce(sum(output_tokens), 0) as output_tokens,
       coalesce(sum(cache_read_tokens), 0) as cache_read_tokens,
       coalesce(sum(cache_creation_tokens), 0) as cache_creation_tokens,
       coalesce(sum(cache_creation_1h_tokens), 0) as cache_creation_1h_tokens,
       sum(cost_usd) as cost_usd,
       count(cost_usd) as priced_requests,
       coalesce(sum(cost_usd is null and ended_at is not null), 0) as unpriced_requests,
       coalesce(sum(aborted_cost_usd), 0.0) as aborted_cost_usd,
       sum(cost_input_usd) as cost_input_usd,
       sum(cost_output_usd) as cost_output_usd,
       sum(cost_cache_write_5m_usd) as cost_cache_write_5m_usd,
       sum(cost_cache_write_1h_usd) as cost_cache_write_1h_usd,
       sum(cost_cache_read_usd) as cost_cache_read_usd,
       coalesce(sum(fallback), 0) as fallbacks,
       coalesce(sum(error_type is not null and error_type != 'unobserved'), 0) as errors,
       coalesce(sum(error_type = 'unobserved' or outcome in ('unobserved', 'partial')), 0)
         as unobserved_requests,
       coalesce(sum(retry), 0) as retries,
       coalesce(sum(kind = 'compaction' and error_type is null), 0) as compaction_requests
from requests where started_at >= ?
"""


def period_cost_usd(cost: float | None, priced: int, unpriced: int) -> float | None:
    """A period's cost_usd from the sum of its priced requests and its request counts.

    None when there were requests and none could be priced (unknown stays unknown, never
    0.0); 0.0 when nothing was spent at all; else the sum rounded like every dollar
    amount. Totals and trends both use it so a day reads the same in either.
    """
    if cost is None:
        return None if unpriced and not priced else 0.0
    return usd(cost)


def period_cost_by_class(t: dict[str, Any]) -> dict[str, float] | None:
    """A period's cost_by_class from its summed row (cost_<class>_usd columns and the
    priced_requests/unpriced_requests counts), by the same rule as period_cost_usd:
    None when nothing could be priced, zeros when nothing was spent."""
    if t["priced_requests"]:
        return class_api(t)
    return None if t["unpriced_requests"] else dict.fromkeys(COST_CLASSES, 0.0)


def period_starts(now: float) -> dict[str, float]:
    day = datetime.fromtimestamp(now, timezone.utc).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    return {
        "today": day.timestamp(),
        "week": (day - timedelta(days=day.weekday())).timestamp(),
        "month": day.replace(day=1).timestamp(),
    }


def period_totals(db: sqlite_utils.Database, since: float) -> dict[str, Any]:
    start = iso(since)
    cursor = db.execute(_TOTALS, [start])
    t = dict(zip([c[0] for c in cursor.description], cursor.fetchone(), strict=True))
    turns, turns_all = db.execute(
        "select coalesce(sum(coalesce(trigger, 'prompt') = 'prompt'), 0), count(*)"
        " from turns where started_at >= ?",
        [start],
    ).fetchone()
    errors: dict[str, int] = {}
    for status, error_type, n in db.execute(
        "select status, error_type, count(*) from requests"
        " where started_at >= ? and error_type is not null and error_type != 'unobserved'"
        " group by status, error_type",
        [start],
    ):
        label = error_category(status, error_type) or "unknown"
        errors[label] = errors.get(label, 0) + n
    statuses = {
        status: n
        for status, n in db.execute(
            "select cache_status, count(*) from requests"
            " where started_at >= ? and cache_status is not null group by cache_status",
            [start],
        )
    }
    daily = {
        day: period_cost_usd(cost, priced, unpriced)
        for day, cost, priced, unpriced in db.execute(
            "select substr(started_at, 1, 10), sum(cost_usd), count(cost_usd),"
            " sum(cost_usd is null and ended_at is not null) from requests"
            " where started_at >= ? group by 1 order by 1",
            [start],
        )
    }
    context = t["input_tokens"] + t["cache_read_tokens"] + t["cache_creation_tokens"]
    return {
        "since": start,
        "sessions": t["sessions"],
        "turns": turns,
        "turns_all": turns_all,
        "requests": t["requests"],
        "tokens": {
            "input": t["input_tokens"],
            "output": t["output_tokens"],
            "cache_read": t["cache_read_tokens"],
            "cache_creation": t["cache_creation_tokens"],
            "cache_creation_1h": t["cache_creation_1h_tokens"],
        },
        "cost_usd": period_cost_usd(t["cost_usd"], t["priced_requests"], t["unpriced_requests"]),
        "cost_by_class": period_cost_by_class(t),
        "unpriced_requests": t["unpriced_requests"],
        "aborted_cost_usd": usd(t["aborted_cost_usd"]),
        "cost_by_day_usd": daily,
        "cache_hit_ratio": t["cache_read_tokens"] / context if context else None,
        "cache_statuses": statuses,
        "fallbacks": t["fallbacks"],
        "errors": t["errors"],
        "errors_by_type": errors,
        "unobserved_requests": t["unobserved_requests"],
        "retries": t["retries"],
        "compaction_requests": t["compaction_requests"],
    }


def summary(db: sqlite_utils.Database, now: float) -> dict[str, Any]:
    out: dict[str, Any] = {
        name: period_totals(db, since) for name, since in period_starts(now).items()
    }
    out["quota_top_sessions"] = quota_top_sessions(db, now)
    return out


_WINDOW_LENGTH = re.compile(r"^(\d+)([mhd])")
_UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86400}
TOP_SESSIONS = 5


def quota_top_sessions(db: sqlite_utils.Database, now: float) -> dict[str, list[dict[str, Any]]]:
    """Window → the sessions active within its length that added most to it (quota_share,
    an estimate), largest first."""
    shares: dict[str, list[dict[str, Any]]] = {}
    rows = db.execute(
        "select session_id, project, first_prompt, quota_share_json, last_activity_at"
        " from sessions where quota_share_json is not null and quota_share_json != '{}'"
        " and last_activity_at >= ?",
        [iso(now - 7 * 86400)],
    ).fetchall()
    for session_id, project, first_prompt, share_json, last_activity in rows:
        try:
            share = json.loads(share_json)
        except ValueError:
            continue
        if not isinstance(share, dict):
            continue
        for window, value in share.items():
            m = _WINDOW_LENGTH.match(str(window))
            length = int(m.group(1)) * _UNIT_SECONDS[m.group(2)] if m else 7 * 86400
            if not isinstance(value, (int, float)) or value <= 0:
                continue
            if (parse_iso(last_activity) or 0.0) < now - length:
                continue
            shares.setdefault(str(window), []).append(
                {
                    "session_id": session_id,
                    "project": project,
                    "first_prompt": first_prompt,
                    "share": round(float(value), 6),
                }
            )
    return {
        w: sorted(rows, key=lambda r: (-r["share"], r["session_id"]))[:TOP_SESSIONS]
        for w, rows in sorted(shares.items())
    }


def tokens_since(db: sqlite_utils.Database, since: float) -> TokenCounts:
    row = db.execute(
        "select coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0),"
        " coalesce(sum(cache_read_tokens), 0), coalesce(sum(cache_creation_tokens), 0),"
        " coalesce(sum(cache_creation_1h_tokens), 0) from requests where ended_at >= ?",
        [iso(since)],
    ).fetchone()
    return TokenCounts(*row)
