"""Every span name, attribute name and metric name clauditor emits, in one place.

The GenAI names follow the OpenTelemetry GenAI semantic conventions (v1.41, still
"Development"); clauditor's own live under `clauditor.*`. tests/telemetry/test_names.py
pins this module: renaming anything here is a breaking change for dashboards.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from clauditor.sessions import models as _models

# -- span names and fixed values --------------------------------------------------------
AGENT_NAME = "claude-code"
SUBAGENT_NAME = "claude-code-subagent"
PROVIDER = "anthropic"
OP_CHAT = "chat"
OP_INVOKE_AGENT = "invoke_agent"
OP_EXECUTE_TOOL = "execute_tool"
TOOL_TYPE_FUNCTION = "function"
TOOL_ERROR_TYPE = "tool_error"
INCOMPLETE_ERROR_TYPE = (
    _models.INCOMPLETE_REQUEST
)  # in flight when the core stopped: the tracker says so
TRACER_NAME = "clauditor"
METER_NAME = "clauditor"

# -- GenAI semantic-convention attributes -----------------------------------------------
GEN_AI_OPERATION_NAME = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME = "gen_ai.provider.name"
GEN_AI_AGENT_NAME = "gen_ai.agent.name"
GEN_AI_AGENT_ID = "gen_ai.agent.id"  # a subagent run: Claude Code's x-claude-code-agent-id
GEN_AI_CONVERSATION_ID = "gen_ai.conversation.id"
GEN_AI_REQUEST_MODEL = "gen_ai.request.model"
GEN_AI_REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
GEN_AI_REQUEST_STREAM = "gen_ai.request.stream"
GEN_AI_RESPONSE_ID = "gen_ai.response.id"
GEN_AI_RESPONSE_MODEL = "gen_ai.response.model"
GEN_AI_RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK = "gen_ai.response.time_to_first_chunk"
GEN_AI_USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS = "gen_ai.usage.cache_read.input_tokens"
GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS = "gen_ai.usage.cache_creation.input_tokens"
GEN_AI_TOOL_NAME = "gen_ai.tool.name"
GEN_AI_TOOL_CALL_ID = "gen_ai.tool.call.id"
GEN_AI_TOOL_TYPE = "gen_ai.tool.type"
GEN_AI_TOKEN_TYPE = "gen_ai.token.type"
# Opt-in content (OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true).
GEN_AI_INPUT_MESSAGES = "gen_ai.input.messages"
GEN_AI_OUTPUT_MESSAGES = "gen_ai.output.messages"

# -- general semantic-convention attributes ---------------------------------------------
SESSION_ID = "session.id"
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
HTTP_RESPONSE_STATUS_CODE = "http.response.status_code"
ERROR_TYPE = "error.type"

# -- OpenInference mirror, so Arize Phoenix shows kinds and token counts -----------------
OPENINFERENCE_SPAN_KIND = "openinference.span.kind"
LLM_MODEL_NAME = "llm.model_name"
LLM_PROVIDER = "llm.provider"
LLM_TOKEN_COUNT_PROMPT = "llm.token_count.prompt"
LLM_TOKEN_COUNT_COMPLETION = "llm.token_count.completion"
LLM_TOKEN_COUNT_TOTAL = "llm.token_count.total"
LLM_TOKEN_COUNT_CACHE_READ = "llm.token_count.prompt_details.cache_read"
LLM_TOKEN_COUNT_CACHE_WRITE = "llm.token_count.prompt_details.cache_write"
TOOL_NAME = "tool.name"

# -- clauditor's own span attributes ------------------------------------------------------
TURN_NUMBER = "clauditor.turn.number"
TURN_OUTCOME = "clauditor.turn.outcome"
TURN_REQUESTS = "clauditor.turn.requests"
TURN_TOOL_CALLS = "clauditor.turn.tool_calls"
TURN_ERRORS = "clauditor.turn.errors"
TURN_COMPACTION = "clauditor.turn.compaction"
TURN_COST_USD = "clauditor.turn.cost_usd"
TURN_TRIGGER = "clauditor.turn.trigger"  # prompt | task_notification | compaction | resumed
# + a part of sessions.timing.TIME_PARTS: clauditor.turn.time.tools_ms, ... (milliseconds)
TURN_TIME_PREFIX = "clauditor.turn.time."
VERIFIED = "clauditor.verified"  # False: the session carries drift (unverified_reasons)
UNVERIFIED_REASONS = "clauditor.unverified_reasons"
ABORTED_COST_USD = "clauditor.aborted.cost_usd"  # a failed attempt's usage, not billed
PROMPT_LENGTH = "clauditor.prompt.length"  # characters of the cleaned prompt, never the text
STOP_REASON = "clauditor.stop_reason"
REQUEST_KIND = "clauditor.request.kind"
RETRY = "clauditor.retry"
CACHE_STATUS = "clauditor.cache.status"
CACHE_MISS_REASON = "clauditor.cache.miss_reason"
CACHE_TTL_SECONDS = "clauditor.cache.ttl_seconds"
CACHE_CREATION_1H_TOKENS = "clauditor.cache.creation_1h_tokens"
FALLBACK = "clauditor.fallback"
FALLBACK_REQUESTED = "clauditor.fallback.requested"
FALLBACK_ACTUAL = "clauditor.fallback.actual"
FALLBACK_KIND = "clauditor.fallback.kind"  # response_model | iteration | fallback_block | client
CONTEXT_FILL = "clauditor.context.fill"
CONTEXT_WINDOW = "clauditor.context.window"
COST_USD = "clauditor.cost_usd"
ANTHROPIC_REQUEST_ID = "anthropic.request_id"
MCP_SERVER = "clauditor.mcp.server"
MCP_TOOL = "clauditor.mcp.tool"
TOOL_OUTCOME = "clauditor.tool.outcome"
TOOL_BACKGROUND = "clauditor.tool.background"  # a background Agent call
SUBAGENT = "clauditor.subagent"

# -- metric label names (low cardinality only: never a session id, prompt or path) --------
LABEL_MODEL = GEN_AI_REQUEST_MODEL
LABEL_KIND = REQUEST_KIND
LABEL_TOKEN_TYPE = GEN_AI_TOKEN_TYPE
LABEL_TOOL = GEN_AI_TOOL_NAME
LABEL_ERROR_TYPE = ERROR_TYPE
LABEL_CACHE_STATUS = CACHE_STATUS
LABEL_FALLBACK_REQUESTED = FALLBACK_REQUESTED
LABEL_FALLBACK_ACTUAL = FALLBACK_ACTUAL
LABEL_OUTCOME = "clauditor.outcome"
LABEL_STATUS = "clauditor.status"
LABEL_WINDOW = "clauditor.quota.window"
LABEL_REASON = "clauditor.reason"
LABEL_STATE = "clauditor.state"
LABEL_CONSUMER = "clauditor.consumer"
LABEL_DRIFT_KIND = "clauditor.drift.kind"
LABEL_TIME_PART = "clauditor.time.part"  # waiting_for_model, generating, tools, ... (6)

# -- metrics -----------------------------------------------------------------------------
InstrumentKind = Literal[
    "counter", "histogram", "observable_counter", "observable_gauge", "observable_updown"
]

# GenAI bucket advice (semantic conventions): tokens x4 from 1, seconds x2 from 0.01.
TOKEN_BUCKETS = tuple(float(4**i) for i in range(14))  # 1 .. 67108864
DURATION_BUCKETS = tuple(round(0.01 * 2**i, 2) for i in range(14))  # 0.01 .. 81.92
TURN_DURATION_BUCKETS = (1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 60.0, 120.0, 300.0, 600.0, 1200.0)
FILL_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0)
COST_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0)
TURN_TIME_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 60.0, 120.0, 300.0, 600.0, 1200.0)
TURNS_BUCKETS = (1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0)


@dataclass(frozen=True)
class MetricSpec:
    name: str  # the OpenTelemetry name
    kind: InstrumentKind
    unit: str
    description: str
    prometheus: str  # the family name on /metrics (pinned by the names test)
    buckets: tuple[float, ...] | None = None


def _m(
    name: str,
    kind: InstrumentKind,
    unit: str,
    description: str,
    prometheus: str,
    buckets: tuple[float, ...] | None = None,
) -> MetricSpec:
    return MetricSpec(name, kind, unit, description, prometheus, buckets)


# GenAI client metrics.
GEN_AI_CLIENT_TOKEN_USAGE = _m(
    "gen_ai.client.token.usage",
    "histogram",
    "{token}",
    "Tokens per request by gen_ai.token.type (input = input + cache_read + cache_creation).",
    "gen_ai_client_token_usage",
    TOKEN_BUCKETS,
)
GEN_AI_CLIENT_OPERATION_DURATION = _m(
    "gen_ai.client.operation.duration",
    "histogram",
    "s",
    "Duration of each Messages API request, request start to response end.",
    "gen_ai_client_operation_duration_seconds",
    DURATION_BUCKETS,
)
GEN_AI_CLIENT_TIME_TO_FIRST_CHUNK = _m(
    "gen_ai.client.operation.time_to_first_chunk",
    "histogram",
    "s",
    "Time from request start to the first streamed token (streaming requests only).",
    "gen_ai_client_operation_time_to_first_chunk_seconds",
    DURATION_BUCKETS,
)

# clauditor: traffic, cost, cache, context.
REQUESTS = _m(
    "clauditor.requests",
    "counter",
    "{request}",
    "Messages API requests by kind, model and outcome.",
    "clauditor_requests_total",
)
TOKENS = _m(
    "clauditor.tokens",
    "counter",
    "{token}",
    "Tokens by type as Anthropic bills them (input excludes cache_read and cache_creation).",
    "clauditor_tokens_total",
)
COST = _m(
    "clauditor.cost.usd",
    "counter",
    "{USD}",
    "Estimated cost of the requests of priced models, in US dollars.",
    "clauditor_cost_usd_total",
)
UNPRICED_REQUESTS = _m(
    "clauditor.cost.unpriced_requests",
    "counter",
    "{request}",
    "Requests of models the catalog does not know: their cost is unknown, never counted as 0.",
    "clauditor_cost_unpriced_requests_total",
)
DRIFT = _m(
    "clauditor.drift",
    "observable_counter",
    "{occurrence}",
    "What Claude Code sent that clauditor was not verified against (a newer version, an "
    "unknown model, beta, body key, header, SSE event or block type), by kind.",
    "clauditor_drift_total",
)
CACHE_EVENTS = _m(
    "clauditor.cache.events",
    "counter",
    "{request}",
    "Prompt-cache outcome of each request (hit, partial, miss, cold).",
    "clauditor_cache_events_total",
)
CACHE_REBUILD_WASTE = _m(
    "clauditor.cache.rebuild_waste.usd",
    "counter",
    "{USD}",
    "What cache misses cost over a hit, in US dollars.",
    "clauditor_cache_rebuild_waste_usd_total",
)
CONTEXT_FILL_METRIC = _m(
    "clauditor.context.fill",
    "histogram",
    "1",
    "Context window fill (0..1) at the end of each main-thread turn.",
    "clauditor_context_fill",
    FILL_BUCKETS,
)
COMPACTIONS = _m(
    "clauditor.compactions",
    "observable_counter",
    "{compaction}",
    "Conversation compactions (/compact or automatic), confirmed by the next turn.",
    "clauditor_compactions_total",
)
TURNS_TO_COMPACT = _m(
    "clauditor.turns_to_compact",
    "histogram",
    "{turn}",
    "Estimated main turns left before auto-compaction, at the end of each main turn.",
    "clauditor_turns_to_compact",
    TURNS_BUCKETS,
)
FALLBACKS = _m(
    "clauditor.fallbacks",
    "counter",
    "{request}",
    "Responses from another model than the one requested.",
    "clauditor_fallbacks_total",
)
TOOL_CALLS = _m(
    "clauditor.tool.calls",
    "counter",
    "{call}",
    "Tool calls by tool name.",
    "clauditor_tool_calls_total",
)
TOOL_FAILURES = _m(
    "clauditor.tool.failures",
    "counter",
    "{call}",
    "Tool results with is_error by tool name.",
    "clauditor_tool_failures_total",
)
ERRORS = _m(
    "clauditor.errors",
    "counter",
    "{request}",
    "Failed requests by error.type (HTTP error, SSE error, truncated stream...).",
    "clauditor_errors_total",
)
TURN_DURATION = _m(
    "clauditor.turn.duration",
    "histogram",
    "s",
    "Duration of user turns by outcome.",
    "clauditor_turn_duration_seconds",
    TURN_DURATION_BUCKETS,
)
TURN_TIME = _m(
    "clauditor.turn.time",
    "histogram",
    "s",
    "Where turns' time went, by clauditor.time.part (the parts of one turn add up to its "
    "duration).",
    "clauditor_turn_time_seconds",
    TURN_TIME_BUCKETS,
)
SESSION_COST = _m(
    "clauditor.session.cost.usd",
    "histogram",
    "{USD}",
    "Estimated cost of each session, recorded when it ends.",
    "clauditor_session_cost_usd",
    COST_BUCKETS,
)
SESSIONS_STARTED = _m(
    "clauditor.sessions.started",
    "counter",
    "{session}",
    "Sessions seen for the first time (a session resumed from history is not counted again).",
    "clauditor_sessions_started_total",
)
ACTIVE_SESSIONS = _m(
    "clauditor.sessions",
    "observable_gauge",
    "{session}",
    "Live sessions by status (active, idle).",
    "clauditor_sessions",
)
SESSIONS_BY_STATE = _m(
    "clauditor.sessions.state",
    "observable_gauge",
    "{session}",
    "Live sessions by state (needs_you, working, tool, your_turn, idle): which ones wait on "
    "you, from Claude Code's own session registry and the wire.",
    "clauditor_sessions_state",
)
QUOTA_UTILIZATION = _m(
    "clauditor.quota.utilization",
    "observable_gauge",
    "1",
    "Subscription quota used (0..1, may exceed 1) by window, from the newest response.",
    "clauditor_quota_utilization",
)
WEEKLY_TOKENS_USED = _m(
    "clauditor.weekly.tokens.used",
    "observable_gauge",
    "{token}",
    "Tokens used in the current weekly quota window.",
    "clauditor_weekly_tokens_used",
)
WEEKLY_TOKENS_BUDGET = _m(
    "clauditor.weekly.tokens.budget",
    "observable_gauge",
    "{token}",
    "Estimated weekly token budget.",
    "clauditor_weekly_tokens_budget",
)
WEEKLY_EXHAUSTION = _m(
    "clauditor.weekly.exhaustion",
    "observable_gauge",
    "s",
    "Projected seconds until the weekly budget runs out at the current pace.",
    "clauditor_weekly_exhaustion_seconds",
)

# clauditor's own health: hostile input is skipped and counted here.
WIRE_STREAMS = _m(
    "clauditor.wire.streams",
    "observable_counter",
    "{stream}",
    "ext_proc side streams by state (opened, closed, failed; refused: no or a wrong token).",
    "clauditor_wire_streams_total",
)
WIRE_ACTIVE_STREAMS = _m(
    "clauditor.wire.active_streams",
    "observable_updown",
    "{stream}",
    "ext_proc side streams open now.",
    "clauditor_wire_active_streams",
)
WIRE_MESSAGES = _m(
    "clauditor.wire.messages",
    "observable_counter",
    "{message}",
    "ext_proc messages received from Envoy.",
    "clauditor_wire_messages_total",
)
WIRE_BODY_BYTES = _m(
    "clauditor.wire.body",
    "observable_counter",
    "By",
    "Body bytes mirrored by Envoy.",
    "clauditor_wire_body_bytes_total",
)
WIRE_ERRORS = _m(
    "clauditor.wire.errors",
    "observable_counter",
    "{error}",
    "ext_proc stream errors by type, plus consumer errors.",
    "clauditor_wire_errors_total",
)
INTERPRETER_EXCHANGES = _m(
    "clauditor.interpreter.exchanges",
    "observable_counter",
    "{exchange}",
    "Exchanges seen by the interpreter, by state (messages, ignored).",
    "clauditor_interpreter_exchanges_total",
)
INTERPRETER_BAD_INPUT = _m(
    "clauditor.interpreter.bad_input",
    "observable_counter",
    "{item}",
    "Hostile or broken input skipped, by reason.",
    "clauditor_interpreter_bad_input_total",
)
BUS_EVENTS = _m(
    "clauditor.bus.events",
    "observable_counter",
    "{event}",
    "Domain events per consumer by outcome (delivered, dropped, failed).",
    "clauditor_bus_events_total",
)
STORE_ROWS = _m(
    "clauditor.store.rows",
    "observable_counter",
    "{row}",
    "Rows written to SQLite.",
    "clauditor_store_rows_total",
)
STORE_WRITE_ERRORS = _m(
    "clauditor.store.write_errors",
    "observable_counter",
    "{error}",
    "Failed SQLite write batches.",
    "clauditor_store_write_errors_total",
)
STORE_ROWS_DROPPED = _m(
    "clauditor.store.rows_dropped",
    "observable_counter",
    "{row}",
    "Rows that never reached SQLite, by reason (queue_full, bad_row, writer_crash, shutdown).",
    "clauditor_store_rows_dropped_total",
)
STORE_ROWS_SANITISED = _m(
    "clauditor.store.rows_sanitised",
    "observable_counter",
    "{row}",
    "Rows written only once their lone UTF-16 surrogates were replaced by U+FFFD.",
    "clauditor_store_rows_sanitised_total",
)
STORE_WRITER_ALIVE = _m(
    "clauditor.store.writer_alive",
    "observable_gauge",
    "1",
    "1 while the store's writer thread runs, else 0.",
    "clauditor_store_writer_alive",
)
STORE_WRITER_RESTARTS = _m(
    "clauditor.store.writer_restarts",
    "observable_counter",
    "{restart}",
    "Times the store's writer thread died and was started again.",
    "clauditor_store_writer_restarts_total",
)
STORE_PAUSED = _m(
    "clauditor.store.paused",
    "observable_gauge",
    "1",
    "1 while nothing can be written to the database (rows kept in memory, bounded), by "
    "reason (disk full, read-only, ...); 0 (no reason) while writing.",
    "clauditor_store_paused",
)
STORE_ROWS_PENDING = _m(
    "clauditor.store.rows_pending",
    "observable_gauge",
    "{row}",
    "Rows waiting in the writer's memory for the next write (bounded; the rest dropped).",
    "clauditor_store_rows_pending",
)
TRACKER_ANOMALIES = _m(
    "clauditor.tracker.anomalies",
    "observable_counter",
    "{event}",
    "Requests without a session, failed tracker listeners and signals, and requests let go "
    "after waiting the longest for an earlier exchange (hold_timeout), and prompts that "
    "reached the core after the turn their tool_result opened (late_prompt), by reason.",
    "clauditor_tracker_anomalies_total",
)
REQUESTS_UNOBSERVED = _m(
    "clauditor.requests.unobserved",
    "observable_counter",
    "{request}",
    "Requests whose end the core never saw: Envoy reset their side stream while the core "
    "lagged (outcome unobserved: none of the response seen; partial: part of it). Never "
    "errors; a rising count means the core is overloaded.",
    "clauditor_requests_unobserved_total",
)
TELEMETRY_SPANS = _m(
    "clauditor.telemetry.spans",
    "observable_counter",
    "{span}",
    "Finished spans by export state (exported, dropped).",
    "clauditor_telemetry_spans_total",
)

METRICS: tuple[MetricSpec, ...] = (
    GEN_AI_CLIENT_TOKEN_USAGE,
    GEN_AI_CLIENT_OPERATION_DURATION,
    GEN_AI_CLIENT_TIME_TO_FIRST_CHUNK,
    REQUESTS,
    TOKENS,
    COST,
    UNPRICED_REQUESTS,
    DRIFT,
    CACHE_EVENTS,
    CACHE_REBUILD_WASTE,
    CONTEXT_FILL_METRIC,
    COMPACTIONS,
    TURNS_TO_COMPACT,
    FALLBACKS,
    TOOL_CALLS,
    TOOL_FAILURES,
    ERRORS,
    TURN_DURATION,
    TURN_TIME,
    SESSION_COST,
    SESSIONS_STARTED,
    ACTIVE_SESSIONS,
    SESSIONS_BY_STATE,
    QUOTA_UTILIZATION,
    WEEKLY_TOKENS_USED,
    WEEKLY_TOKENS_BUDGET,
    WEEKLY_EXHAUSTION,
    WIRE_STREAMS,
    WIRE_ACTIVE_STREAMS,
    WIRE_MESSAGES,
    WIRE_BODY_BYTES,
    WIRE_ERRORS,
    INTERPRETER_EXCHANGES,
    INTERPRETER_BAD_INPUT,
    BUS_EVENTS,
    STORE_ROWS,
    STORE_WRITE_ERRORS,
    STORE_ROWS_DROPPED,
    STORE_ROWS_SANITISED,
    STORE_WRITER_ALIVE,
    STORE_WRITER_RESTARTS,
    STORE_PAUSED,
    STORE_ROWS_PENDING,
    TRACKER_ANOMALIES,
    REQUESTS_UNOBSERVED,
    TELEMETRY_SPANS,
)
