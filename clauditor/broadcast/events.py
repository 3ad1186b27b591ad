"""The `/watch` event schema: one TypedDict per event type, shared by the producer (the
hub builds each event's fields with its class, so the type checker holds it to the keys
and types below) and the consumer (`clauditor watch` reads only keys named here:
tests/watch/test_events.py checks both sides).

Every event also carries the envelope: `type`, `session_id` (null for account-wide
events), `ts` (ISO 8601 UTC), `seq` (increasing per core), and `replay: true` when it is
replayed to a new subscriber (`history: true` for what `watch` rebuilds from the API).
A consumer must ignore keys it does not know: a newer core may add some.
"""

from __future__ import annotations

from typing import Any

# typing_extensions' TypedDict: pydantic reads these for /openapi.json, and it needs this
# one on Python < 3.12.
from typing_extensions import TypedDict

ENVELOPE = ("type", "session_id", "ts", "seq", "replay", "history")


class Usage(TypedDict):
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_creation_tokens: int


class SessionStart(TypedDict):
    """A session, as the core has it now (synthetic: sent to a new subscriber, not new)."""

    synthetic: bool
    name: str
    model: str | None
    prompt: str | None
    status: str
    started_at: str
    last_activity_at: str
    entrypoint: str | None
    turn: int
    turn_in_progress: bool
    requests: int
    tool_calls: int
    tool_failures: int
    errors: int
    in_flight: int
    pending_tools: int
    last_tool: str | None
    last_tool_summary: str | None
    usage: Usage
    cost_usd: float | None
    unpriced_requests: int
    verified: bool
    unverified_reasons: list[str]
    prompts: int
    state: str
    state_since: str | None
    state_source: str
    waiting_for: str | None
    state_tool: str | None
    project: str | None
    cwd: str | None
    claude_name: str | None
    tmux_pane: str | None
    context_fill: float | None
    turns_to_compact: int | None
    cache_status: str | None
    cache_expires_at: str | None
    cache_rebuild_cost_usd: float | None
    fallbacks: int
    fallback_from: str | None  # the newest fallback: what was asked for, what answered
    fallback_to: str | None


class SessionNamed(TypedDict):
    name: str
    prompt: str | None
    model: str | None


class TurnStart(TypedDict):
    turn: int
    trigger: str
    compaction: bool
    model: str | None


class TurnEnd(TypedDict):
    turn: int
    outcome: str
    stop_reason: str | None
    duration_ms: float | None
    usage: Usage
    cost_usd: float | None
    session_cost_usd: float | None
    unpriced_requests: int
    trigger: str
    requests: int
    tool_calls: int
    errors: int
    time: dict[str, float] | None  # sessions.timing.TIME_PARTS, ms


class RequestStart(TypedDict):
    turn: int | None
    kind: str
    model: str | None
    retry: bool
    in_flight: int


class ToolUse(TypedDict):
    tool: str
    summary: str
    tool_use_id: str
    turn: int | None
    subagent: bool
    pending_tools: int


class ToolResult(TypedDict):
    tool: str
    tool_use_id: str
    outcome: str
    duration_ms: float | None
    turn: int | None
    subagent: bool
    background: bool
    pending_tools: int


class RequestEnd(TypedDict):
    request_id: str | None
    turn: int | None
    kind: str
    model: str | None
    status: int | None
    stop_reason: str | None
    duration_ms: float | None
    ttft_ms: float | None
    usage: Usage
    cost_usd: float | None
    aborted_cost_usd: float | None
    session_cost_usd: float | None
    unpriced_requests: int
    verified: bool
    unverified_reasons: list[str]
    in_flight: int
    error_type: str | None
    outcome: str
    retry: bool


class RequestError(TypedDict):
    error_type: str
    category: str | None
    status: int | None
    kind: str
    turn: int | None
    model: str | None
    errors: int


class ModelFallback(TypedDict):
    requested: str | None
    actual: str | None
    fallback_kind: str | None
    turn: int | None
    kind: str
    fallbacks: int


class CacheEvent(TypedDict):
    status: str
    ttl_seconds: int | None
    expires_at: str | None
    rebuild_cost_usd: float | None
    miss_waste_usd: float | None
    cache_read_tokens: int
    cache_creation_tokens: int
    turn: int | None


class ContextStatus(TypedDict):
    fill: float
    context_window: int | None
    context_tokens: int
    turns_to_compact: int | None
    compaction_threshold: int | None
    turn: int | None


class Weekly(TypedDict):
    tokens: int | None
    budget: int | None
    used_fraction: float | None
    resets_at: str | None
    projected_exhaustion_at: str | None
    exhausted: bool | None


class QuotaStatus(TypedDict):
    status: str | None
    reset_at: str | None
    representative_claim: str | None
    windows: dict[str, Any]
    retry_after_seconds: float | None
    weekly: Weekly


class AlertRaised(TypedDict):
    kind: str
    reason: str
    evidence: dict[str, Any]


class AlertCleared(TypedDict):
    kind: str


class StateChanged(TypedDict):
    state: str
    previous: str
    source: str
    waiting_for: str | None
    tool: str | None
    project: str | None
    tmux_pane: str | None


class SessionIdle(TypedDict):
    previous: str
    last_activity_at: str
    idle_seconds: float


class SessionEnd(TypedDict):
    previous: str
    turns: int
    turns_all: int
    requests: int
    tool_calls: int
    errors: int
    usage: Usage
    cost_usd: float | None
    duration_ms: float


class SessionActive(TypedDict):
    previous: str


class Lagged(TypedDict):
    missed: int
    for_session: str | None


class Hello(TypedDict):
    """The first event of every subscription: who answers, and what is live."""

    version: str
    live: list[str]
    for_session: str | None
    replay_seconds: float


# Every event type and the class of its fields, in the order the README lists them.
EVENTS: dict[str, type[Any]] = {
    "hello": Hello,
    "session_start": SessionStart,
    "session_named": SessionNamed,
    "state_changed": StateChanged,
    "alert": AlertRaised,
    "alert_cleared": AlertCleared,
    "session_active": SessionActive,
    "turn_start": TurnStart,
    "request_start": RequestStart,
    "tool_use": ToolUse,
    "tool_result": ToolResult,
    "request_end": RequestEnd,
    "turn_end": TurnEnd,
    "cache_event": CacheEvent,
    "context_status": ContextStatus,
    "model_fallback": ModelFallback,
    "quota_status": QuotaStatus,
    "request_error": RequestError,
    "session_idle": SessionIdle,
    "session_end": SessionEnd,
    "lagged": Lagged,
}


def fields_of(event_type: str) -> frozenset[str]:
    """The keys an event of this type carries besides the envelope."""
    cls = EVENTS.get(event_type)
    return frozenset(cls.__annotations__) if cls is not None else frozenset()
