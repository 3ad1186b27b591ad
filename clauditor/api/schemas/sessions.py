"""The session objects: a session, its turns, requests and tool calls, live or stored in
one shape (built by `Session.as_api` and `store.rows`; every field present, null when
not known). Field meanings: README, "Signals"."""

from __future__ import annotations

from clauditor.api.schemas.base import (
    AbortedTokens,
    CostByClass,
    Iso,
    Money,
    Ms,
    QuotaOut,
    Schema,
    Tokens,
)
from clauditor.api.schemas.client import ClientNumbersOut, DriftOut


class ToolCallOut(Schema):
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


class SubagentRunOut(Tokens):
    """One subagent's run (an Agent/Task tool call): its own requests and tokens."""

    tool_use_id: str
    agent_id: str | None
    background: bool
    requests: int
    cost_usd: Money
    duration_ms: Ms
    outcome: str  # the Agent call's: pending | ok | error | abandoned | unobserved


class TimePartsOut(Schema):
    """Where a turn's time went (sessions.timing.TIME_PARTS); the parts do not overlap."""

    waiting_for_model_ms: Ms
    generating_ms: Ms
    tools_ms: Ms
    waiting_for_you_ms: Ms
    retries_ms: Ms
    subagents_ms: Ms


class TurnOut(Tokens):
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
    cost_usd: Money
    cost_by_class: CostByClass | None
    unpriced_requests: int
    idle_before_ms: Ms
    time: TimePartsOut | None  # null while in progress
    subagents: list[SubagentRunOut]


class ToolUseOut(Schema):
    id: str
    name: str


class RequestOut(Tokens, AbortedTokens):
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
    tool_uses: list[ToolUseOut]
    error_type: str | None
    outcome: str
    trace_id: str | None
    parent_tool_use_id: str | None
    agent_id: str | None
    cost_usd: Money
    cost_by_class: CostByClass | None
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


class CacheLineOut(Schema):
    """The main thread's prompt cache on one model."""

    expires_at: Iso
    ttl_seconds: int | None
    cached_tokens: int | None
    rebuild_cost_usd: Money


class SessionOut(Tokens, AbortedTokens):
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
    cost_by_class: CostByClass | None
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
    cache_by_model: dict[str, CacheLineOut] | None
    fallbacks: int
    compactions: int
    compacted_at: list[str | None] | None
    quota: QuotaOut | None
    quota_share: dict[str, float]
    errors_by_type: dict[str, int] | None
    ttft_ms_p50: Ms
    client_view: ClientNumbersOut | None  # what Claude Code's status line last said
    client_drift: dict[str, DriftOut] | None
    live: bool


class SessionListItemOut(SessionOut):
    findings: int  # stored diagnosis findings


class SessionListOut(Schema):
    sessions: list[SessionListItemOut]


class SessionDetailOut(Schema):
    session: SessionOut
    turns: list[TurnOut]
    requests: list[RequestOut]
    tool_calls: list[ToolCallOut]
