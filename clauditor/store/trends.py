"""`clauditor report`: the last N days in numbers, in SQL over the stored rows.

The window is whole UTC days: today and the N-1 days before it, every day listed even
when nothing happened. A request belongs to the day it started on, a session to every
day one of its requests started on (as in `/api/summary`), a turn to the day it started
on; `turns` counts typed prompts (trigger `prompt`), `turns_all` every turn.

Money follows the rule of the summary: a sum none of whose requests could be priced is
None (unknown stays unknown), a sum over no requests at all is 0.0; a request still in
flight is not unpriced yet. Tokens by class split cache writes into 5 min and 1 h as the
prices do. TTFT percentiles are nearest-rank over streamed requests that did not fail.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta, timezone
from typing import Any

import sqlite_utils

from clauditor.clock import iso
from clauditor.sessions.signals.prices import COST_CLASSES
from clauditor.sessions.timing import TIME_PARTS
from clauditor.store.totals import period_cost_by_class, period_cost_usd

GROUPINGS = ("day", "model", "project")
DEFAULT_DAYS = 7
MAX_DAYS = 366
TOP = 5  # sessions and projects listed
# The turn time breakdown (sessions.timing.TIME_PARTS) is in nullable columns of `turns`
# from schema v5 on; a file from before has none and its breakdown is unknown.
UNKNOWN_MODEL = "unknown"  # a request that named no model (a key must be a string)

# The requests of the window added up per {key}: SQLite does the adding (a week of a busy
# user is tens of thousands of rows), Python only combines a few hundred sums.
_SUMS = """
select {key},
       count(*) as requests,
       sum(cost_usd) as cost_usd,
       count(cost_usd) as priced_requests,
       coalesce(sum(cost_usd is null and ended_at is not null), 0) as unpriced_requests,
       coalesce(sum(input_tokens), 0) as input,
       coalesce(sum(output_tokens), 0) as output,
       coalesce(sum(cache_creation_tokens), 0) as cache_creation,
       coalesce(sum(min(coalesce(cache_creation_1h_tokens, 0),
                        coalesce(cache_creation_tokens, 0))), 0) as cache_write_1h,
       coalesce(sum(cache_read_tokens), 0) as cache_read,
       sum(cost_input_usd) as cost_input_usd,
       sum(cost_output_usd) as cost_output_usd,
       sum(cost_cache_write_5m_usd) as cost_cache_write_5m_usd,
       sum(cost_cache_write_1h_usd) as cost_cache_write_1h_usd,
       sum(cost_cache_read_usd) as cost_cache_read_usd
from requests where started_at >= ? and started_at < ?
group by {group}
"""
_BY_DAY_AND_MODEL = _SUMS.format(
    key="substr(started_at, 1, 10) as day, coalesce(model_responded, model_requested) as model",
    group="day, model",
)
_BY_SESSION = _SUMS.format(key="session_id", group="session_id")
_COUNTS = (
    "requests",
    "priced_requests",
    "unpriced_requests",
    "input",
    "output",
    "cache_creation",
    "cache_write_1h",
    "cache_read",
)
_CLASS_COLUMNS = tuple(f"cost_{c}_usd" for c in COST_CLASSES)


class _Sum:
    """Requests added up: counts, tokens, cost and cost by class (None stays None until
    a priced request comes)."""

    def __init__(self) -> None:
        self.n: dict[str, int] = dict.fromkeys(_COUNTS, 0)
        self.money: dict[str, float | None] = dict.fromkeys(("cost_usd", *_CLASS_COLUMNS))
        self.sessions = 0  # distinct sessions, where the caller counts them

    def add(self, row: dict[str, Any]) -> None:
        for key in _COUNTS:
            self.n[key] += row[key]
        for key, value in self.money.items():
            if row[key] is not None:
                self.money[key] = (value or 0.0) + row[key]

    @property
    def cost_usd(self) -> float | None:
        return period_cost_usd(
            self.money["cost_usd"], self.n["priced_requests"], self.n["unpriced_requests"]
        )

    @property
    def cost_by_class(self) -> dict[str, float] | None:
        return period_cost_by_class({**self.n, **self.money})

    @property
    def tokens_by_class(self) -> dict[str, int]:
        n = self.n
        return {
            "input": n["input"],
            "output": n["output"],
            "cache_write_5m": n["cache_creation"] - n["cache_write_1h"],
            "cache_write_1h": n["cache_write_1h"],
            "cache_read": n["cache_read"],
        }

    @property
    def cache_hit_ratio(self) -> float | None:
        """Cache reads ÷ all input tokens (uncached + read + written), as the summary."""
        n = self.n
        context = n["input"] + n["cache_read"] + n["cache_creation"]
        return round(n["cache_read"] / context, 6) if context else None

    def money_view(self) -> dict[str, Any]:
        return {
            "cost_usd": self.cost_usd,
            "requests": self.n["requests"],
            "unpriced_requests": self.n["unpriced_requests"],
        }


def nearest_rank(values: list[float], percent: int) -> float | None:
    """The nearest-rank percentile: the smallest value with at least `percent` % of the
    values at or below it, i.e. the ceil(percent * n / 100)-th of the sorted values
    (1-based). Always one of the values, never an interpolation; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-percent * len(ordered) // 100))  # ceil, in integers: exact
    return ordered[rank - 1]


def window(days: int, now: float) -> tuple[float, float]:
    """[start of the first day, start of tomorrow) in UTC for the last `days` days."""
    today = datetime.fromtimestamp(now, timezone.utc).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    return (today - timedelta(days=days - 1)).timestamp(), (today + timedelta(days=1)).timestamp()


def _turn_columns(db: sqlite_utils.Database) -> set[str]:
    return {c[1] for c in db.execute("pragma table_info(turns)")}


def _number(value: float | int | None) -> float | int | None:
    return round(value, 3) if isinstance(value, float) else value


def time_breakdown(db: sqlite_utils.Database, since: str, until: str) -> dict[str, Any]:
    """The window's turns' time, part by part: the sum of what is known of each part
    (None: no turn has it, or the file predates the columns) and each one's share of the
    parts' total (keys without `_ms`; None when that total is unknown or zero)."""
    present = [p for p in TIME_PARTS if p in _turn_columns(db)]
    totals: dict[str, Any] = dict.fromkeys(TIME_PARTS)
    if present:
        row = db.execute(
            "select " + ", ".join(f"sum({p})" for p in present)
            + " from turns where started_at >= ? and started_at < ?",
            [since, until],
        ).fetchone()  # fmt: skip
        totals.update(zip(present, (_number(v) for v in row), strict=True))
    known = [v for v in totals.values() if v is not None]
    total = sum(known) if known else None
    share = None
    if total:
        share = {
            p.removesuffix("_ms"): None if totals[p] is None else round(totals[p] / total, 4)
            for p in TIME_PARTS
        }
    return {**totals, "total_ms": _number(total), "share": share}


def _ranked(items: dict[Any, _Sum]) -> list[tuple[Any, _Sum]]:
    """Most expensive first; unknown cost after every known one; then by key."""

    def key(item: tuple[Any, _Sum]) -> tuple[bool, float, str]:
        cost = item[1].cost_usd
        return (cost is None, -(cost or 0.0), str(item[0] or ""))

    return sorted(items.items(), key=key)


def _session_rows(db: sqlite_utils.Database, ids: list[str]) -> dict[str, dict[str, Any]]:
    """Project, model and first prompt of these sessions, by primary key, 500 at a time."""
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        sql = (
            "select session_id, project, model, first_prompt from sessions"
            f" where session_id in ({marks})"
        )
        found.update((r["session_id"], r) for r in db.query(sql, chunk))
    return found


def trend_report(
    db: sqlite_utils.Database, days: int = DEFAULT_DAYS, by: str = "day", *, now: float
) -> dict[str, Any]:
    """The report of the last `days` UTC days (today included) as of `now`, with the
    cost bars grouped `by` day, model or project. Reads the database only."""
    if by not in GROUPINGS:
        raise ValueError(f"by must be one of {', '.join(GROUPINGS)}, not {by!r}")
    if not 1 <= days <= MAX_DAYS:
        raise ValueError(f"days must be between 1 and {MAX_DAYS}, not {days}")
    start, end = window(days, now)
    since, until = iso(start), iso(end)
    dates = [
        (datetime.fromtimestamp(start, timezone.utc) + timedelta(days=i)).date().isoformat()
        for i in range(days)
    ]
    total = _Sum()
    per_day: dict[str, _Sum] = {d: _Sum() for d in dates}
    per_day_model: dict[str, dict[str, _Sum]] = {d: defaultdict(_Sum) for d in dates}
    per_model: dict[str, _Sum] = defaultdict(_Sum)
    for row in db.query(_BY_DAY_AND_MODEL, [since, until]):
        model = row["model"] or UNKNOWN_MODEL
        for bucket in (total, per_day[row["day"]], per_day_model[row["day"]][model]):
            bucket.add(row)
        per_model[model].add(row)
    per_session: dict[str, _Sum] = {}
    for row in db.query(_BY_SESSION, [since, until]):
        per_session[row["session_id"]] = bucket = _Sum()
        bucket.add(row)
    sessions = _session_rows(db, list(per_session))
    per_project: dict[str | None, _Sum] = defaultdict(_Sum)
    for sid, bucket in per_session.items():
        project = per_project[(sessions.get(sid) or {}).get("project")]
        project.add({**bucket.n, **bucket.money})  # a session's sums are a row too
        project.sessions += 1
    total.sessions = len(per_session)
    for day, count in db.execute(
        "select substr(started_at, 1, 10), count(distinct session_id) from requests"
        " where started_at >= ? and started_at < ? group by 1",
        [since, until],
    ):
        per_day[day].sessions = count
    turns = {
        day: (prompts, every)
        for day, prompts, every in db.execute(
            "select substr(started_at, 1, 10), sum(coalesce(trigger, 'prompt') = 'prompt'),"
            " count(*) from turns where started_at >= ? and started_at < ? group by 1",
            [since, until],
        )
    }
    ttfts = [
        r[0]
        for r in db.execute(
            "select ttft_ms from requests where started_at >= ? and started_at < ?"
            " and ttft_ms is not null and stream and error_type is null",
            [since, until],
        )
    ]
    choices: dict[str, dict[Any, _Sum]] = {
        "day": per_day,
        "model": per_model,
        "project": per_project,
    }
    groups = choices[by]
    ranked = groups.items() if by == "day" else _ranked(groups)
    p50, p95 = nearest_rank(ttfts, 50), nearest_rank(ttfts, 95)
    return {
        "generated_at": iso(now),
        "window_days": days,
        "since": since,
        "until": until,
        "by": by,
        "sessions": total.sessions,
        "turns": sum(t[0] for t in turns.values()),
        "turns_all": sum(t[1] for t in turns.values()),
        "requests": total.n["requests"],
        "cost_usd": total.cost_usd,
        "unpriced_requests": total.n["unpriced_requests"],
        "days": [
            {
                "date": d,
                "cost_usd": per_day[d].cost_usd,
                "cost_by_model": {m: s.cost_usd for m, s in sorted(per_day_model[d].items())},
                "tokens_by_class": per_day[d].tokens_by_class,
                "sessions": per_day[d].sessions,
                "turns": turns.get(d, (0, 0))[0],
                "turns_all": turns.get(d, (0, 0))[1],
                "requests": per_day[d].n["requests"],
                "unpriced_requests": per_day[d].n["unpriced_requests"],
            }
            for d in dates
        ],
        "groups": [{"key": k, **s.money_view()} for k, s in ranked],
        "tokens_by_class": total.tokens_by_class,
        "cost_by_class": total.cost_by_class,
        "cache_hit_ratio": total.cache_hit_ratio,
        "ttft_p50_ms": _number(p50),
        "ttft_p95_ms": _number(p95),
        "ttft_requests": len(ttfts),
        "time": time_breakdown(db, since, until),
        "top_sessions": [
            {
                "session_id": sid,
                "project": (sessions.get(sid) or {}).get("project"),
                "model": (sessions.get(sid) or {}).get("model"),
                "first_prompt": (sessions.get(sid) or {}).get("first_prompt"),
                **s.money_view(),
            }
            for sid, s in _ranked(per_session)[:TOP]
        ],
        "top_projects": [
            {"project": p, **s.money_view(), "sessions": s.sessions}
            for p, s in _ranked(per_project)[:TOP]
        ],
    }
