"""Pins every telemetry name: a rename here breaks dashboards and saved queries, so it
must be deliberate. Also checks that the emitting code takes its names from names.py only,
and that the Prometheus names on /metrics are the ones pinned."""

from __future__ import annotations

import re
from pathlib import Path

from clauditor.clock import ManualClock
from clauditor.sessions.tracker import SessionTracker
from clauditor.telemetry import Telemetry
from clauditor.telemetry import names as n
from clauditor.telemetry.setup import TelemetrySettings, build_providers, make_resource
from tests.helpers import fixture_posts
from tests.sessions.replay import Replayer

PINNED_STRINGS = {
    "ABORTED_COST_USD": "clauditor.aborted.cost_usd",
    "AGENT_NAME": "claude-code",
    "GEN_AI_AGENT_ID": "gen_ai.agent.id",
    "TOOL_BACKGROUND": "clauditor.tool.background",
    "TURN_TRIGGER": "clauditor.turn.trigger",
    "TURN_TIME_PREFIX": "clauditor.turn.time.",
    "LABEL_TIME_PART": "clauditor.time.part",
    "UNVERIFIED_REASONS": "clauditor.unverified_reasons",
    "VERIFIED": "clauditor.verified",
    "ANTHROPIC_REQUEST_ID": "anthropic.request_id",
    "CACHE_CREATION_1H_TOKENS": "clauditor.cache.creation_1h_tokens",
    "CACHE_MISS_REASON": "clauditor.cache.miss_reason",
    "CACHE_STATUS": "clauditor.cache.status",
    "CACHE_TTL_SECONDS": "clauditor.cache.ttl_seconds",
    "CONTEXT_FILL": "clauditor.context.fill",
    "CONTEXT_WINDOW": "clauditor.context.window",
    "COST_USD": "clauditor.cost_usd",
    "ERROR_TYPE": "error.type",
    "FALLBACK": "clauditor.fallback",
    "FALLBACK_ACTUAL": "clauditor.fallback.actual",
    "FALLBACK_KIND": "clauditor.fallback.kind",
    "FALLBACK_REQUESTED": "clauditor.fallback.requested",
    "GEN_AI_AGENT_NAME": "gen_ai.agent.name",
    "GEN_AI_CONVERSATION_ID": "gen_ai.conversation.id",
    "GEN_AI_INPUT_MESSAGES": "gen_ai.input.messages",
    "GEN_AI_OPERATION_NAME": "gen_ai.operation.name",
    "GEN_AI_OUTPUT_MESSAGES": "gen_ai.output.messages",
    "GEN_AI_PROVIDER_NAME": "gen_ai.provider.name",
    "GEN_AI_REQUEST_MAX_TOKENS": "gen_ai.request.max_tokens",
    "GEN_AI_REQUEST_MODEL": "gen_ai.request.model",
    "GEN_AI_REQUEST_STREAM": "gen_ai.request.stream",
    "GEN_AI_RESPONSE_FINISH_REASONS": "gen_ai.response.finish_reasons",
    "GEN_AI_RESPONSE_ID": "gen_ai.response.id",
    "GEN_AI_RESPONSE_MODEL": "gen_ai.response.model",
    "GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK": "gen_ai.response.time_to_first_chunk",
    "GEN_AI_TOKEN_TYPE": "gen_ai.token.type",
    "GEN_AI_TOOL_CALL_ID": "gen_ai.tool.call.id",
    "GEN_AI_TOOL_NAME": "gen_ai.tool.name",
    "GEN_AI_TOOL_TYPE": "gen_ai.tool.type",
    "GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS": "gen_ai.usage.cache_creation.input_tokens",
    "GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS": "gen_ai.usage.cache_read.input_tokens",
    "GEN_AI_USAGE_INPUT_TOKENS": "gen_ai.usage.input_tokens",
    "GEN_AI_USAGE_OUTPUT_TOKENS": "gen_ai.usage.output_tokens",
    "HTTP_RESPONSE_STATUS_CODE": "http.response.status_code",
    "INCOMPLETE_ERROR_TYPE": "incomplete",
    "LABEL_CACHE_STATUS": "clauditor.cache.status",
    "LABEL_CONSUMER": "clauditor.consumer",
    "LABEL_DRIFT_KIND": "clauditor.drift.kind",
    "LABEL_ERROR_TYPE": "error.type",
    "LABEL_FALLBACK_ACTUAL": "clauditor.fallback.actual",
    "LABEL_FALLBACK_REQUESTED": "clauditor.fallback.requested",
    "LABEL_KIND": "clauditor.request.kind",
    "LABEL_MODEL": "gen_ai.request.model",
    "LABEL_OUTCOME": "clauditor.outcome",
    "LABEL_REASON": "clauditor.reason",
    "LABEL_STATE": "clauditor.state",
    "LABEL_STATUS": "clauditor.status",
    "LABEL_TOKEN_TYPE": "gen_ai.token.type",
    "LABEL_TOOL": "gen_ai.tool.name",
    "LABEL_WINDOW": "clauditor.quota.window",
    "LLM_MODEL_NAME": "llm.model_name",
    "LLM_PROVIDER": "llm.provider",
    "LLM_TOKEN_COUNT_CACHE_READ": "llm.token_count.prompt_details.cache_read",
    "LLM_TOKEN_COUNT_CACHE_WRITE": "llm.token_count.prompt_details.cache_write",
    "LLM_TOKEN_COUNT_COMPLETION": "llm.token_count.completion",
    "LLM_TOKEN_COUNT_PROMPT": "llm.token_count.prompt",
    "LLM_TOKEN_COUNT_TOTAL": "llm.token_count.total",
    "MCP_SERVER": "clauditor.mcp.server",
    "MCP_TOOL": "clauditor.mcp.tool",
    "METER_NAME": "clauditor",
    "OPENINFERENCE_SPAN_KIND": "openinference.span.kind",
    "OP_CHAT": "chat",
    "OP_EXECUTE_TOOL": "execute_tool",
    "OP_INVOKE_AGENT": "invoke_agent",
    "PROMPT_LENGTH": "clauditor.prompt.length",
    "PROVIDER": "anthropic",
    "REQUEST_KIND": "clauditor.request.kind",
    "RETRY": "clauditor.retry",
    "SERVER_ADDRESS": "server.address",
    "SERVER_PORT": "server.port",
    "SESSION_ID": "session.id",
    "STOP_REASON": "clauditor.stop_reason",
    "SUBAGENT": "clauditor.subagent",
    "SUBAGENT_NAME": "claude-code-subagent",
    "TOOL_ERROR_TYPE": "tool_error",
    "TOOL_NAME": "tool.name",
    "TOOL_OUTCOME": "clauditor.tool.outcome",
    "TOOL_TYPE_FUNCTION": "function",
    "TRACER_NAME": "clauditor",
    "TURN_COMPACTION": "clauditor.turn.compaction",
    "TURN_COST_USD": "clauditor.turn.cost_usd",
    "TURN_ERRORS": "clauditor.turn.errors",
    "TURN_NUMBER": "clauditor.turn.number",
    "TURN_OUTCOME": "clauditor.turn.outcome",
    "TURN_REQUESTS": "clauditor.turn.requests",
    "TURN_TOOL_CALLS": "clauditor.turn.tool_calls",
}

# (OpenTelemetry name, instrument, unit, Prometheus family on /metrics)
PINNED_METRICS = [
    ("gen_ai.client.token.usage", "histogram", "{token}", "gen_ai_client_token_usage"),
    (
        "gen_ai.client.operation.duration",
        "histogram",
        "s",
        "gen_ai_client_operation_duration_seconds",
    ),
    (
        "gen_ai.client.operation.time_to_first_chunk",
        "histogram",
        "s",
        "gen_ai_client_operation_time_to_first_chunk_seconds",
    ),
    ("clauditor.requests", "counter", "{request}", "clauditor_requests_total"),
    ("clauditor.tokens", "counter", "{token}", "clauditor_tokens_total"),
    ("clauditor.cost.usd", "counter", "{USD}", "clauditor_cost_usd_total"),
    (
        "clauditor.cost.unpriced_requests",
        "counter",
        "{request}",
        "clauditor_cost_unpriced_requests_total",
    ),
    ("clauditor.drift", "observable_counter", "{occurrence}", "clauditor_drift_total"),
    ("clauditor.cache.events", "counter", "{request}", "clauditor_cache_events_total"),
    (
        "clauditor.cache.rebuild_waste.usd",
        "counter",
        "{USD}",
        "clauditor_cache_rebuild_waste_usd_total",
    ),
    ("clauditor.context.fill", "histogram", "1", "clauditor_context_fill"),
    ("clauditor.compactions", "observable_counter", "{compaction}", "clauditor_compactions_total"),
    ("clauditor.turns_to_compact", "histogram", "{turn}", "clauditor_turns_to_compact"),
    ("clauditor.fallbacks", "counter", "{request}", "clauditor_fallbacks_total"),
    ("clauditor.tool.calls", "counter", "{call}", "clauditor_tool_calls_total"),
    ("clauditor.tool.failures", "counter", "{call}", "clauditor_tool_failures_total"),
    ("clauditor.errors", "counter", "{request}", "clauditor_errors_total"),
    ("clauditor.turn.duration", "histogram", "s", "clauditor_turn_duration_seconds"),
    ("clauditor.turn.time", "histogram", "s", "clauditor_turn_time_seconds"),
    ("clauditor.session.cost.usd", "histogram", "{USD}", "clauditor_session_cost_usd"),
    ("clauditor.sessions.started", "counter", "{session}", "clauditor_sessions_started_total"),
    ("clauditor.sessions", "observable_gauge", "{session}", "clauditor_sessions"),
    ("clauditor.sessions.state", "observable_gauge", "{session}", "clauditor_sessions_state"),
    ("clauditor.quota.utilization", "observable_gauge", "1", "clauditor_quota_utilization"),
    (
        "clauditor.weekly.tokens.used",
        "observable_gauge",
        "{token}",
        "clauditor_weekly_tokens_used",
    ),
    (
        "clauditor.weekly.tokens.budget",
        "observable_gauge",
        "{token}",
        "clauditor_weekly_tokens_budget",
    ),
    ("clauditor.weekly.exhaustion", "observable_gauge", "s", "clauditor_weekly_exhaustion_seconds"),
    ("clauditor.wire.streams", "observable_counter", "{stream}", "clauditor_wire_streams_total"),
    (
        "clauditor.wire.active_streams",
        "observable_updown",
        "{stream}",
        "clauditor_wire_active_streams",
    ),
    ("clauditor.wire.messages", "observable_counter", "{message}", "clauditor_wire_messages_total"),
    ("clauditor.wire.body", "observable_counter", "By", "clauditor_wire_body_bytes_total"),
    ("clauditor.wire.errors", "observable_counter", "{error}", "clauditor_wire_errors_total"),
    (
        "clauditor.interpreter.exchanges",
        "observable_counter",
        "{exchange}",
        "clauditor_interpreter_exchanges_total",
    ),
    (
        "clauditor.interpreter.bad_input",
        "observable_counter",
        "{item}",
        "clauditor_interpreter_bad_input_total",
    ),
    ("clauditor.bus.events", "observable_counter", "{event}", "clauditor_bus_events_total"),
    ("clauditor.store.rows", "observable_counter", "{row}", "clauditor_store_rows_total"),
    (
        "clauditor.store.write_errors",
        "observable_counter",
        "{error}",
        "clauditor_store_write_errors_total",
    ),
    (
        "clauditor.store.rows_dropped",
        "observable_counter",
        "{row}",
        "clauditor_store_rows_dropped_total",
    ),
    (
        "clauditor.store.rows_sanitised",
        "observable_counter",
        "{row}",
        "clauditor_store_rows_sanitised_total",
    ),
    ("clauditor.store.writer_alive", "observable_gauge", "1", "clauditor_store_writer_alive"),
    (
        "clauditor.store.writer_restarts",
        "observable_counter",
        "{restart}",
        "clauditor_store_writer_restarts_total",
    ),
    ("clauditor.store.paused", "observable_gauge", "1", "clauditor_store_paused"),
    (
        "clauditor.store.rows_pending",
        "observable_gauge",
        "{row}",
        "clauditor_store_rows_pending",
    ),
    (
        "clauditor.tracker.anomalies",
        "observable_counter",
        "{event}",
        "clauditor_tracker_anomalies_total",
    ),
    (
        "clauditor.requests.unobserved",
        "observable_counter",
        "{request}",
        "clauditor_requests_unobserved_total",
    ),
    (
        "clauditor.telemetry.spans",
        "observable_counter",
        "{span}",
        "clauditor_telemetry_spans_total",
    ),
]

TELEMETRY = Path(n.__file__).parent
# A dotted lower-case literal such as "gen_ai.usage.input_tokens" is an attribute name.
DOTTED = re.compile(
    r"[\"']((?:gen_ai|clauditor|llm|session|server|http|error|anthropic|"
    r"openinference|tool)\.[a-z0-9_.]+)[\"']"
)


def test_names_are_pinned() -> None:
    strings = {k: v for k, v in vars(n).items() if k.isupper() and isinstance(v, str)}
    assert strings == PINNED_STRINGS
    got = [(m.name, m.kind, m.unit, m.prometheus) for m in n.METRICS]
    assert got == PINNED_METRICS
    assert len({m.name for m in n.METRICS}) == len(n.METRICS)


def test_prometheus_names_start_with_clauditor_or_gen_ai() -> None:
    for m in n.METRICS:
        assert m.prometheus.startswith(("clauditor_", "gen_ai_")), m


def test_genai_bucket_advice() -> None:
    assert n.GEN_AI_CLIENT_TOKEN_USAGE.buckets == tuple(float(4**i) for i in range(14))
    assert n.GEN_AI_CLIENT_TOKEN_USAGE.buckets[-1] == 67108864
    for spec in (n.GEN_AI_CLIENT_OPERATION_DURATION, n.GEN_AI_CLIENT_TIME_TO_FIRST_CHUNK):
        assert spec.buckets is not None
        assert spec.buckets[0] == 0.01 and spec.buckets[-1] == 81.92 and len(spec.buckets) == 14


def test_emitting_code_takes_every_name_from_names_py() -> None:
    for path in TELEMETRY.glob("*.py"):
        if path.name == "names.py":
            continue
        found = DOTTED.findall(path.read_text())
        assert found == [], f"{path.name} spells names itself: {found}"


def test_exposition_families_match_the_pinned_prometheus_names() -> None:
    clock = ManualClock()
    providers = build_providers(TelemetrySettings(), make_resource("test"))
    telemetry = Telemetry(providers, clock, server=("api.anthropic.com", 443))
    tracker = SessionTracker(clock, listeners=telemetry.listeners, spans=telemetry.traces)
    telemetry.observe(tracker, lambda: STATS)
    replay = Replayer(tracker, clock)
    for record in fixture_posts("b_tool_bash") + fixture_posts("f_529_retry"):
        replay.exchange(record)
    tracker.shutdown()
    out = telemetry.prometheus()
    assert out is not None
    body, content_type = out
    assert content_type.startswith("text/plain")
    families = set(re.findall(r"^# TYPE (\S+) ", body.decode(), re.M))
    assert families <= {m.prometheus for m in n.METRICS}
    # Everything these two fixtures can produce shows up under its pinned name.
    assert {
        "gen_ai_client_token_usage",
        "gen_ai_client_operation_duration_seconds",
        "clauditor_requests_total",
        "clauditor_errors_total",
        "clauditor_tool_calls_total",
        "clauditor_turn_duration_seconds",
        "clauditor_turn_time_seconds",
        "clauditor_session_cost_usd",
        "clauditor_wire_streams_total",
        "clauditor_bus_events_total",
    } <= families
    telemetry.shutdown(timeout=1.0)


STATS = {
    "wire": {
        "streams_opened": 4,
        "streams_closed": 3,
        "streams_failed": 1,
        "streams_refused": 2,
        "messages": 9,
        "body_bytes": 100,
        "consumer_errors": 0,
        "active": 0,
        "errors_by_type": {"reset": 1},
    },
    "interpreter": {
        "exchanges": 5,
        "ignored": 1,
        "bad_requests": 1,
        "request_too_large": 0,
        "decompression_bombs": 0,
        "undecodable_bodies": 0,
        "malformed_events": 2,
        "unknown_events": 0,
        "errors_by_type": {},
    },
    "bus": [{"name": "tracker", "delivered": 10, "dropped": 1, "failed": 0}],
    "tracker": {
        "live_sessions": 1,
        "unattributed_requests": 0,
        "held_requests": 5,
        "hold_timeouts": 2,
        "late_prompts": 1,
        "listener_errors": 0,
        "unobserved_requests": 3,
        "partial_requests": 4,
    },
    "store": {
        "rows_written": 7,
        "write_errors": 1,
        "rows_dropped": 2,
        "rows_dropped_by_reason": {"queue_full": 0, "bad_row": 2, "writer_crash": 0, "shutdown": 0},
        "rows_sanitised": 1,
        "writer_alive": True,
        "writer_restarts": 0,
        "paused": "disk full",
        "rows_pending": 3,
    },
}
