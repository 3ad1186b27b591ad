"""Live objects → table rows (and back, for sessions resumed after a restart)."""

from __future__ import annotations

import json
import statistics
from collections import Counter
from typing import Any

from clauditor.clock import iso, parse_iso
from clauditor.money import usd, usd_by_key
from clauditor.sessions.models import (
    TTFT_KEPT,
    CostByClass,
    RequestRecord,
    Session,
    TokenCounts,
    ToolCall,
    Turn,
)
from clauditor.sessions.registry import RegistryEntry
from clauditor.sessions.signals.errors import error_category
from clauditor.sessions.signals.prices import COST_CLASSES
from clauditor.sessions.timing import TIME_PARTS, TimePart


def class_columns(by_class: CostByClass | None) -> dict[str, float | None]:
    """cost_by_class as the cost_<class>_usd columns (all None when nothing was priced)."""
    return {
        f"cost_{c}_usd": None if by_class is None else by_class.get(c, 0.0) for c in COST_CLASSES
    }


def class_api(row: dict[str, Any]) -> dict[str, float] | None:
    """The cost_<class>_usd columns back as the API's cost_by_class."""
    values = {c: row.get(f"cost_{c}_usd") for c in COST_CLASSES}
    if all(v is None for v in values.values()):
        return None
    return usd_by_key({c: v or 0.0 for c, v in values.items()})


def time_columns(time: dict[TimePart, float] | None) -> dict[str, float | None]:
    """A turn's time breakdown as its six columns (all None while it is in progress)."""
    return {p: None if time is None else time[p] for p in TIME_PARTS}


def time_api(row: dict[str, Any]) -> dict[TimePart, float] | None:
    """The stored columns back as the turn's `time` (None for turns stored before v5)."""
    values = {p: row.get(p) for p in TIME_PARTS}
    if all(v is None for v in values.values()):
        return None
    return {p: v or 0.0 for p, v in values.items()}


def _registry_columns(s: Session) -> dict[str, Any]:
    """Where the session ran, from Claude Code's registry (its last entry: kept once the
    process is gone). Every row carries every column: upserts batch rows together."""
    r = s.last_registry
    return {
        "cwd": r.cwd if r else None,
        "project": s.project,
        "claude_name": r.name if r else None,
        "pid": r.pid if r else None,
        "tmux_pane": r.tmux_pane if r else None,
    }


def session_row(s: Session) -> dict[str, Any]:
    return {
        "session_id": s.session_id,
        "status": s.status,
        "model": s.model,
        "started_at": iso(s.started_at),
        "last_activity_at": iso(s.last_activity_at),
        "ended_at": iso(s.ended_at),
        "turns": s.prompt_count,
        "turns_all": s.turn_count,
        "requests": s.request_count,
        "tool_calls": s.tool_call_count,
        "tool_failures": s.tool_failures,
        "tools_json": json.dumps(dict(s.tools), sort_keys=True),
        "input_tokens": s.tokens.input,
        "output_tokens": s.tokens.output,
        "cache_read_tokens": s.tokens.cache_read,
        "cache_creation_tokens": s.tokens.cache_creation,
        "cache_creation_1h_tokens": s.tokens.cache_creation_1h,
        **s.aborted_tokens.as_api("aborted_"),
        "errors": s.errors,
        "retries": s.retries,
        "first_prompt": s.first_prompt,
        "summary": s.last_text,
        "entrypoint": s.entrypoint,
        "claude_code_version": s.cc_version,
        "estimated_cost_usd": s.signals.cost_usd,
        **class_columns(s.signals.cost_by_class),
        "main_cost_usd": s.signals.main_cost_usd,
        "subagent_cost_usd": s.signals.subagent_cost_usd,
        "unpriced_requests": s.signals.unpriced_requests,
        "aborted_cost_usd": s.signals.aborted_cost_usd,
        "quota_share_json": json.dumps(
            {w: round(v, 6) for w, v in sorted(s.signals.quota_share.items())}
        ),
        "verified": int(not s.unverified_reasons),
        "state": s.state,
        "state_since": iso(s.state_since),
        **_registry_columns(s),
        "unverified_reasons_json": json.dumps(s.unverified_reasons),
        "context_fill": s.signals.context_fill,
        "context_peak": s.signals.context_peak,
        "turns_to_compact": s.signals.turns_to_compact,
        "compactions": s.signals.compactions,
        "fallbacks": s.signals.fallbacks,
    }


def turn_row(t: Turn) -> dict[str, Any]:
    return {
        "session_id": t.session_id,
        "turn": t.index,
        "started_at": iso(t.started_at),
        "ended_at": iso(t.ended_at),
        "duration_ms": t.duration_ms,
        "outcome": t.outcome,
        "stop_reason": t.stop_reason,
        # The prompt itself is not stored per turn: only the session's first prompt is.
        "prompt_chars": len(t.prompt) if t.prompt else 0,
        "requests": t.requests,
        "tool_calls": t.tool_calls,
        "errors": t.errors,
        "compaction": int(t.compaction),
        "trigger": t.trigger,
        "unpriced_requests": t.unpriced_requests,
        "input_tokens": t.tokens.input,
        "output_tokens": t.tokens.output,
        "cache_read_tokens": t.tokens.cache_read,
        "cache_creation_tokens": t.tokens.cache_creation,
        "trace_id": t.trace_id,
        "cost_usd": t.cost_usd,
        **class_columns(t.cost_by_class),
        **time_columns(t.time),
    }


def request_row(r: RequestRecord) -> dict[str, Any]:
    return {
        "uid": r.uid,
        "session_id": r.session_id,
        "turn": r.turn_index,
        "request_id": r.request_id,
        "kind": r.kind,
        "model_requested": r.model_requested,
        "model_responded": r.model_responded,
        "stream": int(r.stream),
        "retry": int(r.retry),
        "status": r.status,
        "started_at": iso(r.started_at),
        "ended_at": iso(r.ended_at),
        "ttfb_ms": r.ttfb_ms,
        "ttft_ms": r.ttft_ms,
        "duration_ms": r.duration_ms,
        "stop_reason": r.stop_reason,
        "input_tokens": r.tokens.input,
        "output_tokens": r.tokens.output,
        "cache_read_tokens": r.tokens.cache_read,
        "cache_creation_tokens": r.tokens.cache_creation,
        "cache_creation_1h_tokens": r.tokens.cache_creation_1h,
        **r.aborted_tokens.as_api("aborted_"),
        "aborted_cost_usd": r.signals.aborted_cost_usd,
        "agent_id": r.agent_id,
        "tool_uses_json": json.dumps([{"id": i, "name": n} for i, n in r.tool_uses]),
        "error_type": r.error_type,
        "outcome": r.outcome,
        "message_id": r.message_id,
        "parent_tool_use_id": r.parent_tool_use_id,
        "trace_id": r.trace_id,
        "span_id": r.span_id,
        "cost_usd": r.signals.cost_usd,
        **class_columns(r.signals.cost_by_class),
        "cache_status": r.signals.cache_status,
        "cache_ttl_seconds": r.signals.cache_ttl_seconds,
        "context_fill": r.signals.context_fill,
        "fallback": int(r.signals.fallback),
        "model_fallback_actual": r.signals.fallback_actual,
        "output_tokens_per_second": r.signals.output_tokens_per_second,
        "cache_miss_waste_usd": r.signals.cache_miss_waste_usd,
        "cache_rebuild_cost_usd": r.signals.cache_rebuild_cost_usd,
    }


def tool_call_row(c: ToolCall) -> dict[str, Any]:
    return {
        "session_id": c.session_id,
        "tool_use_id": c.tool_use_id,
        "turn": c.turn_index,
        "name": c.name,
        "input_summary": c.summary,
        "outcome": c.outcome,
        "requested_at": iso(c.requested_at),
        "result_at": iso(c.result_at),
        "duration_ms": c.duration_ms,
        "subagent": int(c.subagent),
        "agent_id": c.agent_id,
        "background": int(c.background),
        "subagent_requests": c.subagent_requests,
        **c.subagent_tokens.as_api("subagent_"),
        "subagent_cost_usd": c.subagent_cost_usd,
    }


def _int_or_none(value: Any) -> int | None:
    """A count stored in a REAL column (turns_to_compact) back as the live int."""
    return None if value is None else int(value)


def json_column(text: str | None, default: Any) -> Any:
    """A JSON column, or `default` when it is empty or not JSON of default's type: one
    damaged row must not fail the query that reads it."""
    if not text:
        return default
    try:
        value = json.loads(text)
    except ValueError:
        return default
    return value if isinstance(value, type(default)) else default


def session_from_row(row: dict[str, Any]) -> Session:
    """Rebuild the counters of a stored session so a resumed session keeps counting."""
    started = parse_iso(row["started_at"]) or 0.0
    session = Session(
        session_id=row["session_id"],
        started_at=started,
        last_activity_at=parse_iso(row["last_activity_at"]) or started,
        status=row["status"] or "ended",
        model=row["model"],
        first_prompt=row["first_prompt"],
        last_text=row["summary"],
        entrypoint=row["entrypoint"],
        cc_version=row["claude_code_version"],
        turn_count=row.get("turns_all") or row["turns"] or 0,
        prompt_count=row["turns"] or 0,
        request_count=row["requests"] or 0,
        tool_call_count=row["tool_calls"] or 0,
        tool_failures=row["tool_failures"] or 0,
        tools=Counter(json_column(row["tools_json"], {})),
        tokens=TokenCounts(
            input=row["input_tokens"] or 0,
            output=row["output_tokens"] or 0,
            cache_read=row["cache_read_tokens"] or 0,
            cache_creation=row["cache_creation_tokens"] or 0,
            cache_creation_1h=row["cache_creation_1h_tokens"] or 0,
        ),
        aborted_tokens=_tokens(row, "aborted_"),
        errors=row["errors"] or 0,
        retries=row["retries"] or 0,
        ended_at=parse_iso(row["ended_at"]),
        unverified_reasons=json_column(row.get("unverified_reasons_json"), []),
    )
    # The signal totals keep counting too (row.get: columns of later schema versions).
    sig = session.signals
    if row.get("cwd") or row.get("claude_name"):
        # Where it ran before: kept, so its rows do not lose it (the process is not live).
        session.last_registry = RegistryEntry(
            pid=row.get("pid") or 0,
            session_id=session.session_id,
            cwd=row.get("cwd"),
            name=row.get("claude_name"),
            tmux_pane=row.get("tmux_pane"),
        )
        session.project = row.get("project")
    sig.cost_usd = row.get("estimated_cost_usd")
    sig.cost_by_class = class_api(row)
    sig.main_cost_usd = row.get("main_cost_usd")
    sig.subagent_cost_usd = row.get("subagent_cost_usd")
    sig.unpriced_requests = row.get("unpriced_requests") or 0
    sig.aborted_cost_usd = row.get("aborted_cost_usd")
    sig.context_fill = row.get("context_fill")
    sig.context_peak = row.get("context_peak")
    sig.compactions = row.get("compactions") or 0
    sig.fallbacks = row.get("fallbacks") or 0
    shares = json_column(row.get("quota_share_json"), {})
    sig.quota_share = {str(w): float(v) for w, v in shares.items() if isinstance(v, (int, float))}
    return session


def turn_from_row(row: dict[str, Any]) -> Turn:
    turn = Turn(
        index=row["turn"],
        session_id=row["session_id"],
        started_at=parse_iso(row["started_at"]) or 0.0,
        prompt=None,  # never stored per turn
        ended_at=parse_iso(row["ended_at"]),
        outcome=row["outcome"],
        stop_reason=row["stop_reason"],
        requests=row["requests"] or 0,
        tool_calls=row["tool_calls"] or 0,
        errors=row["errors"] or 0,
        compaction=bool(row["compaction"]),
        trigger=row.get("trigger") or "prompt",
        cost_usd=row.get("cost_usd"),
        cost_by_class=class_api(row),
        unpriced_requests=row.get("unpriced_requests") or 0,
        time=time_api(row),
    )
    turn.tokens = TokenCounts(
        input=row["input_tokens"] or 0,
        output=row["output_tokens"] or 0,
        cache_read=row["cache_read_tokens"] or 0,
        cache_creation=row["cache_creation_tokens"] or 0,
    )
    return turn


def tool_call_from_row(row: dict[str, Any]) -> ToolCall:
    return ToolCall(
        tool_use_id=row["tool_use_id"],
        name=row["name"],
        session_id=row["session_id"],
        turn_index=row["turn"],
        request_exchange=0,  # the exchange belonged to the previous core
        summary=row["input_summary"] or "",
        seen_at=parse_iso(row["requested_at"]) or 0.0,
        requested_at=parse_iso(row["requested_at"]),
        result_at=parse_iso(row["result_at"]),
        outcome=row["outcome"],
        subagent=bool(row["subagent"]),
        agent_id=row.get("agent_id"),
        background=bool(row.get("background")),
        subagent_requests=row.get("subagent_requests") or 0,
        subagent_tokens=_tokens(row, "subagent_"),
        subagent_cost_usd=row.get("subagent_cost_usd"),
    )


def _tokens(row: dict[str, Any], prefix: str) -> TokenCounts:
    return TokenCounts(
        input=row.get(f"{prefix}input_tokens") or 0,
        output=row.get(f"{prefix}output_tokens") or 0,
        cache_read=row.get(f"{prefix}cache_read_tokens") or 0,
        cache_creation=row.get(f"{prefix}cache_creation_tokens") or 0,
    )


def session_api_from_row(row: dict[str, Any]) -> dict[str, Any]:
    """The API's session object for a stored (not live) session."""
    return {
        "session_id": row["session_id"],
        "status": row["status"],
        "model": row["model"],
        "started_at": row["started_at"],
        "last_activity_at": row["last_activity_at"],
        "ended_at": row["ended_at"],
        # Counts are never null: a row another tool (or an old clauditor) wrote without
        # them counts nothing.
        "turns": row["turns"] or 0,
        "turns_all": row.get("turns_all")
        if row.get("turns_all") is not None
        else row["turns"] or 0,
        "requests": row["requests"] or 0,
        "tool_calls": row["tool_calls"] or 0,
        "tool_failures": row["tool_failures"] or 0,
        "tools": json_column(row["tools_json"], {}),
        **_tokens(row, "").as_api(),
        **_tokens(row, "aborted_").as_api("aborted_"),
        "errors": row["errors"] or 0,
        "retries": row["retries"] or 0,
        "in_flight": 0,
        "verified": row.get("verified") != 0,
        "state": row.get("state") or ("ended" if row["status"] == "ended" else None),
        "state_since": row.get("state_since"),
        "state_source": "wire",
        "waiting_for": None,
        "state_tool": None,
        "cwd": row.get("cwd"),
        "project": row.get("project"),
        "claude_name": row.get("claude_name"),
        "pid": row.get("pid"),
        "tmux_pane": row.get("tmux_pane"),
        "unverified_reasons": json_column(row.get("unverified_reasons_json"), []),
        "background_agents": 0,
        "first_prompt": row["first_prompt"],
        "last_text": row["summary"],
        "entrypoint": row["entrypoint"],
        "claude_code_version": row["claude_code_version"],
        # Signals: the stored ones; the live-only views are None here (a session's detail
        # recovers the cache and TTFT ones from its requests: stored_signals).
        "estimated_cost_usd": usd(row.get("estimated_cost_usd")),
        "cost_by_class": class_api(row),
        "main_cost_usd": usd(row.get("main_cost_usd")),
        "subagent_cost_usd": usd(row.get("subagent_cost_usd")),
        "unpriced_requests": row.get("unpriced_requests") or 0,
        "aborted_cost_usd": usd(row.get("aborted_cost_usd")),
        "context_fill": row.get("context_fill"),
        "context_peak": row.get("context_peak"),
        "context_window_tokens": None,
        "turns_to_compact": _int_or_none(row.get("turns_to_compact")),
        "cache_status": None,
        "cache_expires_at": None,
        "cache_ttl_seconds": None,
        # Kept only by a live core (a detail recovers the first three from its requests).
        "cache_statuses": None,
        "cache_miss_waste_usd": None,
        "errors_by_type": None,
        "cache_rebuild_cost_usd": None,
        "cache_by_model": None,
        "context_tokens": None,
        "compaction_threshold_tokens": None,
        "compacted_at": None,
        "fallbacks": row.get("fallbacks") or 0,
        "compactions": row.get("compactions") or 0,
        "quota": None,
        "quota_share": json_column(row.get("quota_share_json"), {}),
        "ttft_ms_p50": None,
        # What Claude Code's status line reported: kept by the live core only.
        "client_view": None,
        "client_drift": None,
        "live": False,
    }


def stored_signals(requests: list[dict[str, Any]]) -> dict[str, Any]:
    """The session signals a live core keeps in memory, recovered from its stored requests
    (API form, oldest first): time to first token, and the main prompt cache's state."""
    ttfts = [
        r["ttft_ms"]
        for r in requests
        if r["ttft_ms"] is not None and r["stream"] and r["error_type"] is None
    ][-TTFT_KEPT:]
    cached = [r for r in requests if r["kind"] == "main" and r["cache_status"] is not None]
    last = cached[-1] if cached else None
    expires = None
    ended = parse_iso(last["ended_at"]) if last is not None else None
    if last is not None and ended is not None and last["cache_ttl_seconds"]:
        expires = iso(ended + last["cache_ttl_seconds"])
    waste = [r["cache_miss_waste_usd"] for r in requests if r["cache_miss_waste_usd"]]
    return {
        "ttft_ms_p50": round(statistics.median(ttfts), 3) if ttfts else None,
        "cache_status": last["cache_status"] if last else None,
        "cache_ttl_seconds": last["cache_ttl_seconds"] if last else None,
        "cache_expires_at": expires,
        "cache_statuses": dict(Counter(r["cache_status"] for r in cached)),
        "cache_miss_waste_usd": usd(sum(waste, 0.0)),
        "errors_by_type": dict(
            Counter(r["error_category"] for r in requests if r["error_category"] is not None)
        ),
    }


def request_api_from_row(row: dict[str, Any]) -> dict[str, Any]:
    """A stored request in the live request's shape (RequestRecord.as_api): what only a
    live core knows (its exchange id, the context window it assumed) is null."""
    ended = parse_iso(row["ended_at"])
    ttl = row.get("cache_ttl_seconds")
    fallback = bool(row.get("fallback"))
    return {
        "uid": row["uid"],
        "request_id": row["request_id"],
        "exchange_id": None,
        "kind": row["kind"],
        "turn": row["turn"],
        "model_requested": row["model_requested"],
        "model_responded": row["model_responded"],
        "stream": bool(row["stream"]),
        "retry": bool(row["retry"]),
        "started_at": row["started_at"],
        "ended_at": row["ended_at"],
        "status": row["status"],
        "ttfb_ms": row["ttfb_ms"],
        "ttft_ms": row["ttft_ms"],
        "duration_ms": row["duration_ms"],
        "stop_reason": row["stop_reason"],
        "input_tokens": row["input_tokens"],
        "output_tokens": row["output_tokens"],
        "cache_read_tokens": row["cache_read_tokens"],
        "cache_creation_tokens": row["cache_creation_tokens"],
        **_tokens(row, "aborted_").as_api("aborted_"),
        "tool_uses": json_column(row["tool_uses_json"], []),
        "error_type": row["error_type"],
        "outcome": row.get("outcome"),
        "trace_id": row["trace_id"],
        "parent_tool_use_id": row["parent_tool_use_id"],
        "agent_id": row.get("agent_id"),
        "cost_usd": usd(row.get("cost_usd")),
        "cost_by_class": class_api(row),
        "aborted_cost_usd": usd(row.get("aborted_cost_usd")),
        "cache_status": row.get("cache_status"),
        "cache_ttl_seconds": ttl,
        "cache_expires_at": iso(ended + ttl) if ended is not None and ttl else None,
        "cache_rebuild_cost_usd": usd(row.get("cache_rebuild_cost_usd")),
        "cache_miss_waste_usd": usd(row.get("cache_miss_waste_usd")),
        "context_window_tokens": None,
        "context_fill": row.get("context_fill"),
        "fallback": fallback,
        "fallback_kind": None,
        "fallback_requested": row["model_requested"] if fallback else None,
        "fallback_actual": row.get("model_fallback_actual"),
        "output_tokens_per_second": row.get("output_tokens_per_second"),
        "error_category": error_category(row["status"], row["error_type"]),
    }


def turn_api_from_row(
    row: dict[str, Any], agent_calls: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """A stored turn in the live turn's shape (Turn.as_api); agent_calls: its Agent
    tool_calls rows (its subagent runs). Its prompt is never stored per turn: null."""
    turn = turn_from_row(row)
    turn.trace_id = row.get("trace_id")
    turn.agent_calls = [tool_call_from_row(c) for c in agent_calls or []]
    out = turn.as_api()
    out["duration_ms"] = row["duration_ms"]  # as measured, not re-derived from rounded times
    return out
