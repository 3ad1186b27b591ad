"""The API's objects, one schema each: what `/docs` and `/openapi.json` show, and what
tests hold every live and stored object to (extra or missing keys are errors there).

The routes still return the objects as built (`Session.as_api`, `store.rows`): these
models document and check them, they do not rebuild them, so a field added on one side
and not here fails a test, never a user's request. Field meanings: README, "Signals".
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

Money = float | None  # USD, 6 decimals; null: nothing that could be priced
Ms = float | None  # milliseconds; null: not known (yet)
Iso = str | None  # ISO 8601 UTC with milliseconds


class _Schema(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False)


class ToolCallOut(_Schema):
    tool_use_id: str
    name: str
    summary: str
    turn: int | None
    outcome: str  # pending | ok | error | abandoned | unobserved
    requested_at: Iso
    result_at: Iso
    duration_ms: Ms
    subagent: bool
    agent_id: str | None
    background: bool
    subagent_requests: int
    subagent_input_tokens: int
    subagent_output_tokens: int
    subagent_cache_read_tokens: int
    subagent_cache_creation_tokens: int
    subagent_cost_usd: Money


class SubagentRunOut(_Schema):
    tool_use_id: str
    agent_id: str | None
    background: bool
    requests: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_creation_tokens: int
    cost_usd: Money
    duration_ms: Ms


class TurnOut(_Schema):
    turn: int
    trace_id: str | None
    started_at: Iso
    ended_at: Iso
    duration_ms: Ms
    outcome: str  # in_progress | completed | interrupted | abandoned | error | unobserved
    stop_reason: str | None
    prompt: str | None  # live only: never stored per turn
    requests: int
    tool_calls: int
    errors: int
    compaction: bool
    trigger: str  # prompt | task_notification | compaction | resumed
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_creation_tokens: int
    cost_usd: Money
    cost_by_class: dict[str, float] | None
    unpriced_requests: int
    idle_before_ms: Ms
    time: dict[str, float] | None  # sessions.timing.TIME_PARTS; null while in progress
    subagents: list[SubagentRunOut]


class RequestOut(_Schema):
    uid: str
    request_id: str | None
    exchange_id: int | None  # live only
    kind: str
    turn: int | None
    model_requested: str | None
    model_responded: str | None
    stream: bool
    retry: bool
    started_at: Iso
    ended_at: Iso
    status: int | None
    ttfb_ms: Ms
    ttft_ms: Ms
    duration_ms: Ms
    stop_reason: str | None
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_creation_tokens: int
    aborted_input_tokens: int
    aborted_output_tokens: int
    aborted_cache_read_tokens: int
    aborted_cache_creation_tokens: int
    tool_uses: list[dict[str, str]]
    error_type: str | None
    outcome: str
    trace_id: str | None
    parent_tool_use_id: str | None
    agent_id: str | None
    cost_usd: Money
    cost_by_class: dict[str, float] | None
    aborted_cost_usd: Money
    cache_status: str | None
    cache_ttl_seconds: int | None
    cache_expires_at: Iso
    cache_rebuild_cost_usd: Money
    cache_miss_waste_usd: Money
    context_window_tokens: int | None
    context_fill: float | None
    fallback: bool
    fallback_kind: str | None
    fallback_requested: str | None
    fallback_actual: str | None
    output_tokens_per_second: float | None
    error_category: str | None


class SessionOut(_Schema):
    session_id: str
    status: str  # active | idle | ended
    model: str | None
    started_at: Iso
    last_activity_at: Iso
    ended_at: Iso
    turns: int  # typed prompts
    turns_all: int  # every turn
    requests: int
    tool_calls: int
    tool_failures: int
    tools: dict[str, int]
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_creation_tokens: int
    aborted_input_tokens: int
    aborted_output_tokens: int
    aborted_cache_read_tokens: int
    aborted_cache_creation_tokens: int
    errors: int
    retries: int
    in_flight: int
    verified: bool
    unverified_reasons: list[str]
    background_agents: int
    state: str | None
    state_since: Iso
    state_source: str | None
    waiting_for: str | None
    state_tool: str | None
    cwd: str | None
    project: str | None
    claude_name: str | None
    pid: int | None
    tmux_pane: str | None
    first_prompt: str | None
    last_text: str | None
    entrypoint: str | None
    claude_code_version: str | None
    estimated_cost_usd: Money
    cost_by_class: dict[str, float] | None
    main_cost_usd: Money
    subagent_cost_usd: Money
    unpriced_requests: int
    aborted_cost_usd: Money
    context_fill: float | None
    context_peak: float | None
    context_tokens: int | None
    context_window_tokens: int | None
    compaction_threshold_tokens: int | None
    turns_to_compact: int | None
    cache_status: str | None
    cache_expires_at: Iso
    cache_ttl_seconds: int | None
    cache_rebuild_cost_usd: Money
    cache_statuses: dict[str, int] | None
    cache_miss_waste_usd: Money
    cache_by_model: dict[str, Any] | None
    fallbacks: int
    compactions: int
    compacted_at: list[str | None] | None
    quota: dict[str, Any] | None
    quota_share: dict[str, float]
    errors_by_type: dict[str, int] | None
    ttft_ms_p50: Ms
    client_view: dict[str, Any] | None
    client_drift: dict[str, Any] | None
    live: bool


class SessionListItemOut(SessionOut):
    findings: int  # stored diagnosis findings


class SessionListOut(_Schema):
    sessions: list[SessionListItemOut]


class SessionDetailOut(_Schema):
    session: SessionOut
    turns: list[TurnOut]
    requests: list[RequestOut]
    tool_calls: list[ToolCallOut]


class ErrorOut(_Schema):
    error: str  # not_found | ambiguous
    detail: str
    candidates: list[str] | None = None
