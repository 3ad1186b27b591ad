"""The SQLite schema, as ordered migrations. Each migration runs once, in a transaction.

Privacy: no column holds an API key, a header, a file's contents, a tool's output or
a full transcript -- only a cleaned, capped first prompt and a compact summary.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlite_utils

from clauditor.errors import ClauditorError

Migration = Callable[[sqlite_utils.Database], None]


class SchemaTooNew(ClauditorError):
    """The file was written by a newer clauditor: kept as it is, never migrated down."""


def _v1_base(db: sqlite_utils.Database) -> None:
    db.table("sessions").create(
        {
            "session_id": str,
            "status": str,
            "model": str,
            "started_at": str,
            "last_activity_at": str,
            "ended_at": str,
            "turns": int,
            "requests": int,
            "tool_calls": int,
            "tool_failures": int,
            "tools_json": str,
            "input_tokens": int,
            "output_tokens": int,
            "cache_read_tokens": int,
            "cache_creation_tokens": int,
            "cache_creation_1h_tokens": int,
            "errors": int,
            "retries": int,
            "first_prompt": str,
            "summary": str,
            "entrypoint": str,
            "claude_code_version": str,
        },
        pk="session_id",
    )
    db.table("turns").create(
        {
            "session_id": str,
            "turn": int,
            "started_at": str,
            "ended_at": str,
            "duration_ms": float,
            "outcome": str,
            "stop_reason": str,
            "prompt_chars": int,
            "requests": int,
            "tool_calls": int,
            "errors": int,
            "compaction": int,
            "input_tokens": int,
            "output_tokens": int,
            "cache_read_tokens": int,
            "cache_creation_tokens": int,
        },
        pk=("session_id", "turn"),
    )
    db.table("requests").create(
        {
            "uid": str,
            "session_id": str,
            "turn": int,
            "request_id": str,
            "kind": str,
            "model_requested": str,
            "model_responded": str,
            "stream": int,
            "retry": int,
            "status": int,
            "started_at": str,
            "ended_at": str,
            "ttfb_ms": float,
            "ttft_ms": float,
            "duration_ms": float,
            "stop_reason": str,
            "input_tokens": int,
            "output_tokens": int,
            "cache_read_tokens": int,
            "cache_creation_tokens": int,
            "cache_creation_1h_tokens": int,
            "tool_uses_json": str,
            "error_type": str,
        },
        pk="uid",
    )
    db.table("tool_calls").create(
        {
            "session_id": str,
            "tool_use_id": str,
            "turn": int,
            "name": str,
            "input_summary": str,
            "outcome": str,
            "requested_at": str,
            "result_at": str,
            "duration_ms": float,
            "subagent": int,
        },
        pk=("session_id", "tool_use_id"),
    )
    db.table("requests").create_index(["session_id", "started_at"])
    db.table("sessions").create_index(["last_activity_at"])
    db.table("tool_calls").create_index(["name"])


def _v2_traces_and_signals(db: sqlite_utils.Database) -> None:
    """Trace ids (jump from a row to its trace) and the per-request debug signals."""
    requests = db.table("requests")
    for column, kind in (
        ("message_id", str),
        ("parent_tool_use_id", str),
        ("trace_id", str),
        ("span_id", str),
        ("cost_usd", float),
        ("cache_status", str),
        ("cache_ttl_seconds", int),
        ("context_fill", float),
        ("fallback", int),
        ("model_fallback_actual", str),
        ("output_tokens_per_second", float),
    ):
        requests.add_column(column, kind)
    db.table("turns").add_column("trace_id", str)
    db.table("turns").add_column("cost_usd", float)
    for column, kind in (
        ("estimated_cost_usd", float),
        ("context_fill", float),
        ("compactions", int),
        ("fallbacks", int),
    ):
        db.table("sessions").add_column(column, kind)
    db.table("requests").create_index(["trace_id"])


def _v3_history(db: sqlite_utils.Database) -> None:
    """Compactions, diagnoses, full-text recall and the views users query directly."""
    db.table("compactions").create(
        {
            "session_id": str,
            "turn": int,
            "happened_at": str,
            "model": str,
            "context_tokens_before": int,  # the compaction request's whole input
            "summary_tokens": int,  # what the summary costs from then on
        },
        pk=("session_id", "happened_at"),
    )
    db.table("diagnoses").create(
        {
            "session_id": str,
            "code": str,
            "severity": str,
            "message": str,
            "evidence_json": str,
            "advice_json": str,
            "created_at": str,
        },
        pk=("session_id", "code"),
    )
    # What recall searches: one row per session, refreshed by the writer after each batch.
    db.table("session_search").create(
        {"session_id": str, "first_prompt": str, "summary": str, "tools": str, "paths": str},
        pk="session_id",
    )
    db.table("session_search").enable_fts(
        ["first_prompt", "summary", "tools", "paths"], create_triggers=True, tokenize="porter"
    )
    db.table("requests").add_column("cache_miss_waste_usd", float)
    db.table("requests").add_column("cache_rebuild_cost_usd", float)
    db.table("sessions").add_column("turns_to_compact", float)
    db.table("sessions").add_column("context_peak", float)
    db.table("tool_calls").create_index(["session_id", "requested_at"])
    for name, sql in VIEWS.items():
        db.create_view(name, sql, replace=True)


_TOKEN_COLUMNS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_creation_tokens")
# The cost_by_class keys of sessions.signals.prices.COST_CLASSES as columns, spelled out:
# a migration is history and must not move when that constant does.
CLASS_COLUMNS = (
    "cost_input_usd",
    "cost_output_usd",
    "cost_cache_write_5m_usd",
    "cost_cache_write_1h_usd",
    "cost_cache_read_usd",
)


def _v4_claude_code_2_1_332(db: sqlite_utils.Database) -> None:
    """What Claude Code 2.1.332 taught: turn triggers (prompts are `turns`, every turn is
    `turns_all`), aborted attempts kept apart, background subagents rolled up under their
    Agent call, drift (verified / unverified_reasons), manual vs automatic compactions."""
    sessions, turns = db.table("sessions"), db.table("turns")
    requests, tools = db.table("requests"), db.table("tool_calls")
    sessions.add_column("turns_all", int)
    sessions.add_column("unpriced_requests", int)
    sessions.add_column("aborted_cost_usd", float)
    sessions.add_column("verified", int)
    sessions.add_column("unverified_reasons_json", str)
    for column in _TOKEN_COLUMNS:
        sessions.add_column(f"aborted_{column}", int)
        requests.add_column(f"aborted_{column}", int)
        tools.add_column(f"subagent_{column}", int)
    db.execute("update sessions set turns_all = turns")
    turns.add_column("trigger", str)
    turns.add_column("unpriced_requests", int)
    requests.add_column("aborted_cost_usd", float)
    requests.add_column("outcome", str)  # complete, recovered, error, truncated...
    requests.add_column("agent_id", str)
    tools.add_column("agent_id", str)
    tools.add_column("background", int)
    tools.add_column("subagent_requests", int)
    tools.add_column("subagent_cost_usd", float)
    db.table("compactions").add_column("trigger", str)
    # Cost by token class: cache reads are most tokens but seldom most of the money.
    for table in (sessions, turns, requests):
        for column in CLASS_COLUMNS:
            table.add_column(column, float)
    sessions.add_column("main_cost_usd", float)
    sessions.add_column("subagent_cost_usd", float)
    # From Claude Code's session registry, and the state every view shows.
    for column in ("cwd", "project", "claude_name", "tmux_pane", "state", "state_since"):
        sessions.add_column(column, str)
    sessions.add_column("pid", int)


# sessions.timing.TIME_PARTS as columns, spelled out (a migration must not move).
TIME_COLUMNS = (
    "waiting_for_model_ms",
    "generating_ms",
    "tools_ms",
    "waiting_for_you_ms",
    "retries_ms",
    "subagents_ms",
)


def _v5_time_and_quota_share(db: sqlite_utils.Database) -> None:
    """Where each turn's time went (sessions.timing): six parts that add up to its
    duration_ms, null for turns stored before (and while in progress); each session's
    share of the quota windows."""
    turns = db.table("turns")
    for column in TIME_COLUMNS:
        turns.add_column(column, float)
    # Window → the utilization the session's responses added (an estimate).
    db.table("sessions").add_column("quota_share_json", str)


# One `sqlite-utils query clauditor.db "select * from <view>"` away from common questions.
VIEWS: dict[str, str] = {
    "daily_cost_by_model": """
        select substr(started_at, 1, 10) as day,
               coalesce(model_responded, model_requested) as model,
               count(*) as requests,
               sum(input_tokens) as input_tokens,
               sum(output_tokens) as output_tokens,
               sum(cache_read_tokens) as cache_read_tokens,
               sum(cache_creation_tokens) as cache_creation_tokens,
               round(sum(cost_usd), 4) as cost_usd,
               sum(cost_usd is null) as unpriced_requests
        from requests group by day, model order by day desc, cost_usd desc""",
    "cache_hit_ratio_by_day": """
        select substr(started_at, 1, 10) as day,
               sum(cache_read_tokens) as cache_read_tokens,
               sum(cache_creation_tokens) as cache_creation_tokens,
               sum(input_tokens) as uncached_input_tokens,
               round(1.0 * sum(cache_read_tokens)
                     / nullif(sum(cache_read_tokens + cache_creation_tokens + input_tokens), 0),
                     4) as cache_hit_ratio,
               sum(cache_status like 'miss%') as cache_misses,
               round(sum(coalesce(cache_miss_waste_usd, 0)), 4) as cache_miss_waste_usd
        from requests where error_type is null group by day order by day desc""",
    "slowest_turns": """
        select t.session_id, t.turn, t.started_at, t.duration_ms, t.requests, t.tool_calls,
               t.outcome, round(t.cost_usd, 4) as cost_usd, s.model, s.first_prompt
        from turns t join sessions s using (session_id)
        where t.duration_ms is not null order by t.duration_ms desc""",
    "tool_usage": """
        select name, count(*) as calls, sum(outcome = 'error') as failures,
               round(avg(duration_ms), 1) as avg_duration_ms,
               max(duration_ms) as max_duration_ms
        from tool_calls group by name order by calls desc""",
    "daily_sessions": """
        select substr(started_at, 1, 10) as day, count(*) as sessions, sum(turns) as turns,
               sum(requests) as requests, sum(tool_calls) as tool_calls, sum(errors) as errors,
               round(sum(estimated_cost_usd), 4) as cost_usd
        from sessions group by day order by day desc""",
}


MIGRATIONS: list[Migration] = [
    _v1_base,
    _v2_traces_and_signals,
    _v3_history,
    _v4_claude_code_2_1_332,
    _v5_time_and_quota_share,
]
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(db: sqlite_utils.Database) -> int:
    """Bring db to SCHEMA_VERSION; returns the version it started from."""
    db.execute("create table if not exists schema_version (version integer not null)")
    row = db.execute("select max(version) from schema_version").fetchone()
    current = row[0] or 0
    if current > SCHEMA_VERSION:
        raise SchemaTooNew(
            f"database schema v{current} is newer than this clauditor (v{SCHEMA_VERSION})"
        )
    for version in range(current + 1, SCHEMA_VERSION + 1):
        with db.conn:
            MIGRATIONS[version - 1](db)
            db.execute("insert into schema_version (version) values (?)", [version])
    return current
