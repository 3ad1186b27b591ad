"""Live state of sessions, turns, requests and tool calls, as the tracker keeps it."""

from __future__ import annotations

import statistics
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal
from uuid import uuid4

from clauditor.clock import iso

# add_cost is re-exported: the tracker and the signals engine import it from here.
from clauditor.money import add_cost as add_cost
from clauditor.money import usd, usd_by_key
from clauditor.sessions.registry import RegistryEntry
from clauditor.sessions.timing import Segment, TimePart

if TYPE_CHECKING:
    from clauditor.sessions.signals.quota import QuotaView

SessionStatus = Literal["active", "idle", "ended"]
# unobserved: its last request's end was not seen (the core lagged past Envoy's hold), so
# whether it completed is unknown; closed so when the next evidence (a new prompt, the
# idle timeout) comes, never called interrupted.
TurnOutcome = Literal["in_progress", "completed", "interrupted", "abandoned", "error", "unobserved"]
ToolOutcome = Literal["pending", "ok", "error", "abandoned"]
# prompt: the user typed it; task_notification: a background task finished; compaction:
# a /compact or automatic compaction outside a turn; resumed: picked up mid-way (its start
# was not seen, e.g. after a core restart).
TurnTrigger = Literal["prompt", "task_notification", "compaction", "resumed"]


def _ms(start: float | None, end: float | None) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start) * 1000.0, 3)


@dataclass(slots=True)
class TokenCounts:
    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_creation: int = 0
    cache_creation_1h: int = 0

    def add(self, other: TokenCounts) -> None:
        self.input += other.input
        self.output += other.output
        self.cache_read += other.cache_read
        self.cache_creation += other.cache_creation
        self.cache_creation_1h += other.cache_creation_1h

    @property
    def empty(self) -> bool:
        return not (self.input or self.output or self.cache_read or self.cache_creation)

    def plus(self, other: TokenCounts) -> TokenCounts:
        out = TokenCounts()
        out.add(self)
        out.add(other)
        return out

    @property
    def total_input(self) -> int:
        """Anthropic's input_tokens excludes cached tokens; the context is all three."""
        return self.input + self.cache_read + self.cache_creation

    def as_api(self, prefix: str = "") -> dict[str, int]:
        return {
            f"{prefix}input_tokens": self.input,
            f"{prefix}output_tokens": self.output,
            f"{prefix}cache_read_tokens": self.cache_read,
            f"{prefix}cache_creation_tokens": self.cache_creation,
        }


CostByClass = dict[str, float]  # COST_CLASSES -> USD (sessions.signals.prices)


def add_classes(total: CostByClass | None, part: CostByClass | None) -> CostByClass | None:
    """cost_by_class summed class by class: None until something was priced."""
    if part is None:
        return total
    if total is None:
        return dict(part)
    for k, v in part.items():
        total[k] = total.get(k, 0.0) + v
    return total


def classes_api(value: CostByClass | None) -> dict[str, float] | None:
    return usd_by_key(value)


@dataclass(slots=True)
class ToolCall:
    tool_use_id: str
    name: str
    session_id: str
    turn_index: int | None
    request_exchange: int
    summary: str
    seen_at: float  # the tool_use block completed in the stream
    requested_at: float | None = None  # the response asking for it ended
    result_at: float | None = None  # the request carrying its tool_result arrived
    outcome: ToolOutcome = "pending"
    subagent: bool = False  # asked for by a subagent, not the main thread
    task_key: str | None = None  # Agent calls: digest of the task prompt (see parse_request)
    trace_id: str | None = None  # set by the telemetry listener
    span_id: str | None = None
    # Agent calls: the subagent's id (x-claude-code-agent-id), and whether it runs in the
    # background: then the call lasts from the launch to Claude Code's task notification.
    agent_id: str | None = None
    background: bool = False
    launched_at: float | None = None  # background: the launch acknowledgement arrived
    # What the subagent run it launched cost (its requests, not this call's own).
    subagent_requests: int = 0
    subagent_tokens: TokenCounts = field(default_factory=TokenCounts)
    subagent_cost_usd: float | None = None
    # The end of the newest request of its run: the run itself may end well before the
    # result reaches the model (Claude Code waits for every tool of the response first).
    run_ended_at: float | None = None

    @property
    def duration_ms(self) -> float | None:
        return _ms(self.requested_at, self.result_at)

    def as_api(self) -> dict[str, Any]:
        return {
            "tool_use_id": self.tool_use_id,
            "name": self.name,
            "summary": self.summary,
            "turn": self.turn_index,
            "outcome": self.outcome,
            "requested_at": iso(self.requested_at),
            "result_at": iso(self.result_at),
            "duration_ms": self.duration_ms,
            "subagent": self.subagent,
            "agent_id": self.agent_id,
            "background": self.background,
            "subagent_requests": self.subagent_requests,
            **self.subagent_tokens.as_api("subagent_"),
            "subagent_cost_usd": usd(self.subagent_cost_usd),
        }


# The error_type of a request still in flight when the core stopped: its end was never seen.
INCOMPLETE_REQUEST = "incomplete"

_OUTCOMES = {
    "truncated": "truncated",
    "aborted": "client_cancelled",
    "upstream_unreachable": "upstream_unreachable",
    "unobserved": "unobserved",
}


def subagent_api(c: ToolCall) -> dict[str, Any]:
    """One Agent call's run, as a turn lists it."""
    return {
        "tool_use_id": c.tool_use_id,
        "agent_id": c.agent_id,
        "background": c.background,
        "requests": c.subagent_requests,
        **c.subagent_tokens.as_api(),
        "cost_usd": usd(c.subagent_cost_usd),
        "duration_ms": c.duration_ms,
        "outcome": c.outcome,
    }


@dataclass(slots=True)
class RequestSignals:
    """Per-request debug signals, computed when the response ends (sessions.signals)."""

    cache_status: str | None = None  # cold | hit | partial | miss_ttl | miss_thrash | miss
    cache_ttl_seconds: int | None = None
    cache_expires_at: float | None = None
    cache_rebuild_cost_usd: float | None = None  # if the cache expires now
    cache_miss_waste_usd: float | None = None  # what this miss cost over a hit
    context_window: int | None = None
    context_fill: float | None = None  # main thread only, 0..1
    fallback: bool = False
    fallback_requested: str | None = None
    fallback_actual: str | None = None
    cost_usd: float | None = None  # None: the model is not in the price table
    cost_by_class: CostByClass | None = None  # the same, by token class
    aborted_cost_usd: float | None = None  # what the aborted attempt reported, priced
    output_tokens_per_second: float | None = None
    # response_model | fallback_block | iteration | client (Claude Code switched after 529s)
    fallback_kind: str | None = None
    error_category: str | None = None  # http_529, http_429, sse_error, truncated...

    def as_api(self) -> dict[str, Any]:
        return {
            "cost_usd": usd(self.cost_usd),
            "cost_by_class": classes_api(self.cost_by_class),
            "aborted_cost_usd": usd(self.aborted_cost_usd),
            "cache_status": self.cache_status,
            "cache_ttl_seconds": self.cache_ttl_seconds,
            "cache_expires_at": iso(self.cache_expires_at),
            "cache_rebuild_cost_usd": usd(self.cache_rebuild_cost_usd),
            "cache_miss_waste_usd": usd(self.cache_miss_waste_usd),
            "context_window_tokens": self.context_window,
            "context_fill": self.context_fill,
            "fallback": self.fallback,
            "fallback_kind": self.fallback_kind,
            "fallback_requested": self.fallback_requested,
            "fallback_actual": self.fallback_actual,
            "output_tokens_per_second": self.output_tokens_per_second,
            "error_category": self.error_category,
        }


@dataclass(slots=True)
class CacheLine:
    """One prompt cache of a session: its thread (main / subagent) on one model."""

    thread: str
    model: str
    effort: str | None
    tools_digest: str
    ended_at: float  # end of the newest request that used it
    ttl_seconds: int
    cached_tokens: int  # read + written by that request: the prefix now cached
    rebuild_cost_usd: float | None = None

    @property
    def expires_at(self) -> float:
        return self.ended_at + self.ttl_seconds

    def warm_at(self, ts: float) -> bool:
        return ts - self.ended_at <= self.ttl_seconds

    def same_key(self, model: str, effort: str | None, tools_digest: str) -> bool:
        return (self.model, self.effort, self.tools_digest) == (model, effort, tools_digest)


@dataclass(slots=True)
class PendingCompaction:
    model: str
    at: float  # the compaction response ended
    context_tokens: int  # the compaction request's input: the context it compacted
    summary_tokens: int = 0  # the summary's output tokens
    turn_index: int | None = None


@dataclass(frozen=True, slots=True)
class Compaction:
    """A compaction confirmed by the conversation continuing from its summary."""

    model: str
    at: float
    context_tokens: int
    summary_tokens: int
    turn_index: int | None
    trigger: Literal["manual", "auto"]  # a typed /compact, or Claude Code's own


TTFT_KEPT = 200


@dataclass(slots=True)
class SessionSignals:
    """Per-session debug signals, kept by clauditor.sessions.signals.engine.SignalEngine."""

    cost_usd: float | None = None  # priced requests only; None while none was priced
    cost_by_class: CostByClass | None = None
    # The same split by thread: the main conversation (and its side calls) vs subagents.
    main_cost_usd: float | None = None
    subagent_cost_usd: float | None = None
    unpriced_requests: int = 0
    aborted_cost_usd: float | None = None  # usage of aborted attempts, kept apart
    cache_status: str | None = None  # of the newest main-thread request with cache activity
    # (thread, model) -> its cache; thread is "main" (with compaction) or "subagent".
    cache_lines: dict[tuple[str, str], CacheLine] = field(default_factory=dict)
    last_line: dict[str, CacheLine] = field(default_factory=dict)  # thread -> newest line
    cache_statuses: Counter[str] = field(default_factory=Counter)
    cache_miss_waste_usd: float = 0.0
    context_window: int | None = None
    context_tokens: int | None = None  # input + cache_read + cache_creation, newest main
    context_fill: float | None = None
    context_peak: float | None = None
    context_model: str | None = None  # normalised model of the newest main response
    compaction_threshold: int | None = None
    threshold_learned: bool = False
    turns_to_compact: int | None = None
    turn_end_contexts: list[int] = field(default_factory=list)  # since the last compaction
    compactions: int = 0
    compacted_at: list[float] = field(default_factory=list)
    pending_compaction: PendingCompaction | None = None
    compaction_exchange: int | None = None  # a compaction request in flight
    # Its continuation turn arrived before its end: None, or whether it was manual.
    continued_early: bool | None = None
    # A continuation seen before any compaction request: (when, manual), for a while.
    continued_unmatched: tuple[float, bool] | None = None
    # Compactions confirmed since the tracker last looked (it tells its listeners).
    confirmed: list[Compaction] = field(default_factory=list)
    fallbacks: int = 0
    fallback_from: str | None = None  # the newest fallback: what was asked for...
    fallback_to: str | None = None  # ...and what answered
    last_main_model: str | None = None  # client-side fallback detection
    last_main_turn: int | None = None
    quota: QuotaView | None = None  # merged from this session's responses
    # Window → the utilization this session's responses added (an estimate: see the engine).
    quota_share: dict[str, float] = field(default_factory=dict)
    errors_by_type: Counter[str] = field(default_factory=Counter)
    ttft_ms: deque[float] = field(default_factory=lambda: deque(maxlen=TTFT_KEPT))

    @property
    def ttft_ms_p50(self) -> float | None:
        return round(statistics.median(self.ttft_ms), 3) if self.ttft_ms else None

    def main_line(self, model: str | None) -> CacheLine | None:
        if model is None:
            return self.last_line.get("main")
        return self.cache_lines.get(("main", model)) or self.last_line.get("main")

    def as_api(self, model: str | None) -> dict[str, Any]:
        line = self.main_line(model)
        return {
            "estimated_cost_usd": usd(self.cost_usd),
            "cost_by_class": classes_api(self.cost_by_class),
            "main_cost_usd": usd(self.main_cost_usd),
            "subagent_cost_usd": usd(self.subagent_cost_usd),
            "unpriced_requests": self.unpriced_requests,
            "aborted_cost_usd": usd(self.aborted_cost_usd),
            "context_fill": self.context_fill,
            "context_peak": self.context_peak,
            "context_tokens": self.context_tokens,
            "context_window_tokens": self.context_window,
            "compaction_threshold_tokens": self.compaction_threshold,
            "turns_to_compact": self.turns_to_compact,
            "cache_status": self.cache_status,
            "cache_expires_at": iso(line.expires_at) if line else None,
            "cache_ttl_seconds": line.ttl_seconds if line else None,
            "cache_rebuild_cost_usd": usd(line.rebuild_cost_usd) if line else None,
            "cache_statuses": dict(self.cache_statuses),
            "cache_miss_waste_usd": usd(self.cache_miss_waste_usd),
            "cache_by_model": {
                m: {
                    "expires_at": iso(c.expires_at),
                    "ttl_seconds": c.ttl_seconds,
                    "cached_tokens": c.cached_tokens,
                    "rebuild_cost_usd": usd(c.rebuild_cost_usd),
                }
                for (thread, m), c in self.cache_lines.items()
                if thread == "main"
            },
            "fallbacks": self.fallbacks,
            "compactions": self.compactions,
            "compacted_at": [iso(t) for t in self.compacted_at],
            "quota": self.quota.as_api() if self.quota is not None else None,
            "quota_share": {w: round(v, 6) for w, v in sorted(self.quota_share.items())},
            "errors_by_type": dict(self.errors_by_type),
            "ttft_ms_p50": self.ttft_ms_p50,
        }


@dataclass(slots=True)
class RequestRecord:
    exchange_id: int
    session_id: str
    started_at: float
    kind: str = "other"
    turn_index: int | None = None
    request_id: str | None = None  # Anthropic's request-id response header
    model_requested: str | None = None
    model_responded: str | None = None
    stream: bool = False
    max_tokens: int | None = None
    retry: bool = False
    fingerprint: str = ""
    body_done_at: float | None = None
    response_started_at: float | None = None
    first_token_at: float | None = None
    bytes_at: float | None = None  # response bytes last seen (StreamProgress), while it streams
    ended_at: float | None = None
    status: int | None = None
    stop_reason: str | None = None
    tokens: TokenCounts = field(default_factory=TokenCounts)  # billed
    # Usage reported by a stream that then failed (SSE error, cut off): Claude Code does
    # not bill it, so it is kept apart from `tokens` and from the cost.
    aborted_tokens: TokenCounts = field(default_factory=TokenCounts)
    tool_uses: list[tuple[str, str]] = field(default_factory=list)  # (id, name)
    error_type: str | None = None
    upstream: str | None = None
    agent_id: str | None = None  # subagent requests: x-claude-code-agent-id
    recovered: bool = False  # it failed, then Claude Code's resend of it succeeded
    task_keys: tuple[str, ...] = ()  # subagent requests: digests of their task prompt
    message_id: str | None = None
    # Subagent requests: the Agent tool call that launched this run.
    parent_tool_use_id: str | None = None
    signals: RequestSignals = field(default_factory=RequestSignals)
    trace_id: str | None = None  # set by the telemetry listener
    span_id: str | None = None
    # Exchange ids restart with the core; this one is unique across restarts.
    uid: str = field(default_factory=lambda: uuid4().hex)
    # "full", or "partial" / "none": Envoy reset its side stream before the core read to
    # the end (domain.events.ExchangeFinished.observed); then no error_type, no verdict.
    observed: str = "full"

    @property
    def outcome(self) -> str:
        """How its stream ended: complete, recovered (failed, then its resend succeeded),
        error, truncated (no message_stop), client_cancelled (the client went away before
        an answer), upstream_unreachable (Envoy could not connect), unobserved (a core
        that stopped, or lagged past Envoy's hold, never saw its end, nor any of its
        response), partial (the same, with part of the response seen; both also for a
        request still in flight when the core stopped, error_type `incomplete`)."""
        if self.ended_at is None and self.error_type != INCOMPLETE_REQUEST:
            return "in_flight"
        if self.observed != "full":
            return "unobserved" if self.observed == "none" else "partial"
        e = self.error_type
        if e is None:
            return "complete"
        if self.recovered:
            return "recovered"
        return _OUTCOMES.get(e, "error")

    @property
    def reported_tokens(self) -> TokenCounts:
        """What the response's usage said, billed or not (the cache was read or written)."""
        return self.tokens if self.aborted_tokens.empty else self.aborted_tokens

    @property
    def ttfb_ms(self) -> float | None:
        return _ms(self.started_at, self.response_started_at)

    @property
    def ttft_ms(self) -> float | None:
        return _ms(self.started_at, self.first_token_at)

    @property
    def duration_ms(self) -> float | None:
        return _ms(self.started_at, self.ended_at)

    @property
    def in_flight(self) -> bool:
        return self.ended_at is None

    def as_api(self) -> dict[str, Any]:
        return {
            "uid": self.uid,
            "request_id": self.request_id,
            "exchange_id": self.exchange_id,
            "kind": self.kind,
            "turn": self.turn_index,
            "model_requested": self.model_requested,
            "model_responded": self.model_responded,
            "stream": self.stream,
            "retry": self.retry,
            "started_at": iso(self.started_at),
            "ended_at": iso(self.ended_at),
            "status": self.status,
            "ttfb_ms": self.ttfb_ms,
            "ttft_ms": self.ttft_ms,
            "duration_ms": self.duration_ms,
            "stop_reason": self.stop_reason,
            **self.tokens.as_api(),
            **self.aborted_tokens.as_api("aborted_"),
            "tool_uses": [{"id": i, "name": n} for i, n in self.tool_uses],
            "error_type": self.error_type,
            "outcome": self.outcome,
            "trace_id": self.trace_id,
            "parent_tool_use_id": self.parent_tool_use_id,
            "agent_id": self.agent_id,
            **self.signals.as_api(),
        }


@dataclass(slots=True)
class Turn:
    index: int  # 1-based within the session
    session_id: str
    started_at: float
    prompt: str | None
    ended_at: float | None = None
    outcome: TurnOutcome = "in_progress"
    stop_reason: str | None = None
    requests: int = 0
    tool_calls: int = 0
    errors: int = 0
    compaction: bool = False
    # What started it: a typed prompt, Claude Code's task notification, a compaction...
    trigger: TurnTrigger = "prompt"
    tokens: TokenCounts = field(default_factory=TokenCounts)
    trace_id: str | None = None  # set by the telemetry listener
    cost_usd: float | None = None  # priced requests of the turn (sessions.signals)
    cost_by_class: CostByClass | None = None
    unpriced_requests: int = 0
    idle_before_ms: float | None = None  # since the previous turn ended
    # The Agent calls the turn made: each subagent run's requests, tokens, cost, duration.
    agent_calls: list[ToolCall] = field(default_factory=list)
    # The conversation length of the request that opened it: a prompt request with fewer
    # messages that shows up later is this turn's own, overtaken by its tool_result.
    opened_messages: int = 0
    # Its main-thread requests and the permission waits inside it: where the time went
    # (sessions.timing), set as `time` when the turn ends.
    segments: list[Segment] = field(default_factory=list)
    waits: list[tuple[float, float]] = field(default_factory=list)
    time: dict[TimePart, float] | None = None
    # Its newest finished request was unobserved / partial: its end is unknown.
    end_unseen: bool = False

    @property
    def duration_ms(self) -> float | None:
        return _ms(self.started_at, self.ended_at)

    def as_api(self) -> dict[str, Any]:
        return {
            "turn": self.index,
            "trace_id": self.trace_id,
            "started_at": iso(self.started_at),
            "ended_at": iso(self.ended_at),
            "duration_ms": self.duration_ms,
            "outcome": self.outcome,
            "stop_reason": self.stop_reason,
            "prompt": self.prompt,
            "requests": self.requests,
            "tool_calls": self.tool_calls,
            "errors": self.errors,
            "compaction": self.compaction,
            "trigger": self.trigger,
            **self.tokens.as_api(),
            "cost_usd": usd(self.cost_usd),
            "cost_by_class": classes_api(self.cost_by_class),
            "unpriced_requests": self.unpriced_requests,
            "idle_before_ms": self.idle_before_ms,
            "time": None if self.time is None else dict(self.time),
            "subagents": [subagent_api(c) for c in self.agent_calls],
        }


@dataclass(slots=True)
class Session:
    session_id: str
    started_at: float
    last_activity_at: float
    status: SessionStatus = "active"
    model: str | None = None
    first_prompt: str | None = None
    last_text: str | None = None
    entrypoint: str | None = None
    cc_version: str | None = None
    turns: list[Turn] = field(default_factory=list)
    turn_count: int = 0  # every turn, whatever its trigger; survives trimming of `turns`
    prompt_count: int = 0  # turns started by a typed prompt: the session's "turns"
    request_count: int = 0
    tool_call_count: int = 0
    tool_failures: int = 0
    tools: Counter[str] = field(default_factory=Counter)
    tokens: TokenCounts = field(default_factory=TokenCounts)
    aborted_tokens: TokenCounts = field(default_factory=TokenCounts)
    errors: int = 0
    retries: int = 0
    ended_at: float | None = None
    # Drift: what on this session's wire clauditor was not verified against (a newer
    # Claude Code, an unknown model, beta, body key, header, event or block type).
    unverified_reasons: list[str] = field(default_factory=list)
    # Subagent id (x-claude-code-agent-id) -> the Agent tool_use id that launched it.
    agents: dict[str, str] = field(default_factory=dict)
    # Background Agent calls still running (launched, not yet notified), by tool_use id.
    background_agents: dict[str, ToolCall] = field(default_factory=dict)
    # Claude Code's own registry entry (sessions.registry) while its process runs here.
    registry: RegistryEntry | None = None
    last_registry: RegistryEntry | None = None  # kept after the process is gone
    project: str | None = None  # the registry cwd's git root name, else its basename
    # One state for every view (sessions.state): set by the tracker on each change.
    state: str = "your_turn"
    state_since: float | None = None
    state_source: str = "wire"
    waiting_for: str | None = None
    state_tool: str | None = None
    # Retry detection: the fingerprint of the newest main-thread request.
    last_fingerprint: str | None = None
    in_flight: set[int] = field(default_factory=set)
    # tool_use id -> call, from the tool_use block until its tool_result arrives.
    pending_tools: dict[str, ToolCall] = field(default_factory=dict)
    signals: SessionSignals = field(default_factory=SessionSignals)
    # Claude Code's own accounting from its status line, and the numbers on which it and
    # the wire disagree (sessions.client_view): None until `clauditor statusline` runs.
    client_view: dict[str, Any] | None = None
    client_drift: dict[str, Any] | None = None

    @property
    def current_turn(self) -> Turn | None:
        if self.turns and self.turns[-1].outcome == "in_progress":
            return self.turns[-1]
        return None

    def as_api(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "status": self.status,
            "model": self.model,
            "started_at": iso(self.started_at),
            "last_activity_at": iso(self.last_activity_at),
            "ended_at": iso(self.ended_at),
            "turns": self.prompt_count,
            "turns_all": self.turn_count,
            "requests": self.request_count,
            "tool_calls": self.tool_call_count,
            "tool_failures": self.tool_failures,
            "tools": dict(self.tools),
            **self.tokens.as_api(),
            **self.aborted_tokens.as_api("aborted_"),
            "errors": self.errors,
            "retries": self.retries,
            "in_flight": len(self.in_flight),
            "verified": not self.unverified_reasons,
            "unverified_reasons": list(self.unverified_reasons),
            "background_agents": len(self.background_agents),
            "state": self.state,
            "state_since": iso(self.state_since),
            "state_source": self.state_source,
            "waiting_for": self.waiting_for,
            "state_tool": self.state_tool,
            "cwd": self.last_registry.cwd if self.last_registry else None,
            "project": self.project,
            "claude_name": self.last_registry.name if self.last_registry else None,
            "pid": self.registry.pid if self.registry else None,  # while it runs
            "tmux_pane": self.registry.tmux_pane if self.registry else None,
            "first_prompt": self.first_prompt,
            "last_text": self.last_text,
            "entrypoint": self.entrypoint,
            "claude_code_version": self.cc_version,
            **self.signals.as_api(self.model),
            "client_view": self.client_view,
            "client_drift": self.client_drift,
            "live": True,
        }
