"""OpenTelemetry metrics from the tracker's callbacks, plus the core's own health counters.

Labels stay low-cardinality: model, request kind, token type, tool name, error type,
cache status, outcome. Never a session id, a prompt or a path. Tool and model names come
from the wire, so each label keeps at most MAX_LABEL_VALUES distinct values (then "other"):
a hostile or buggy client cannot blow up the series count.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from opentelemetry.metrics import CallbackOptions, Meter, MeterProvider, Observation
from opentelemetry.util.types import Attributes

from clauditor.safetext import scrub_text
from clauditor.sessions.listener import TrackerListener
from clauditor.sessions.models import RequestRecord, Session, ToolCall, Turn
from clauditor.sessions.state import STATES
from clauditor.sessions.tracker import SessionTracker
from clauditor.telemetry import names as n
from clauditor.telemetry.traces import cache_status, fallback_of

log = logging.getLogger(__name__)

MAX_LABEL_VALUES = 100
OTHER = "other"
UNKNOWN = "unknown"


class LabelGuard:
    """Caps the distinct values one label may take."""

    def __init__(self, limit: int = MAX_LABEL_VALUES) -> None:
        self.limit = limit
        self.seen: set[str] = set()

    def __call__(self, value: str | None) -> str:
        if not value:
            return UNKNOWN
        value = scrub_text(value)  # a lone surrogate (a model name from the body) fails /metrics
        if value in self.seen:
            return value
        if len(self.seen) >= self.limit:
            return OTHER
        self.seen.add(value)
        return value


def create_instrument(meter: Meter, spec: n.MetricSpec) -> Any:
    if spec.kind == "counter":
        return meter.create_counter(spec.name, unit=spec.unit, description=spec.description)
    if spec.kind == "histogram":
        return meter.create_histogram(
            spec.name,
            unit=spec.unit,
            description=spec.description,
            explicit_bucket_boundaries_advisory=list(spec.buckets or ()),
        )
    raise ValueError(f"{spec.name} is observable: use observe()")


def observe(meter: Meter, spec: n.MetricSpec, read: Callable[[], Iterable[Observation]]) -> None:
    """An observable instrument whose callback never raises into the SDK (it would log an
    error per collection); a failed read yields nothing that time."""

    def callback(options: CallbackOptions) -> Iterable[Observation]:
        try:
            return list(read())
        except Exception:
            log.debug("metric callback %s failed", spec.name, exc_info=True)
            return []

    kw: dict[str, Any] = {"callbacks": [callback], "unit": spec.unit}
    kw["description"] = spec.description
    if spec.kind == "observable_counter":
        meter.create_observable_counter(spec.name, **kw)
    elif spec.kind == "observable_gauge":
        meter.create_observable_gauge(spec.name, **kw)
    elif spec.kind == "observable_updown":
        meter.create_observable_up_down_counter(spec.name, **kw)
    else:
        raise ValueError(f"{spec.name} is not observable")


class MetricsListener(TrackerListener):
    """Counters and histograms, recorded as the tracker reports what happened."""

    def __init__(self, meter_provider: MeterProvider, *, server_address: str | None = None):
        self.meter = meter_provider.get_meter(n.METER_NAME)
        self.server_address = server_address
        self.model = LabelGuard()
        self.tool = LabelGuard()
        self.error = LabelGuard()
        m = self.meter
        self.token_usage = create_instrument(m, n.GEN_AI_CLIENT_TOKEN_USAGE)
        self.duration = create_instrument(m, n.GEN_AI_CLIENT_OPERATION_DURATION)
        self.ttfc = create_instrument(m, n.GEN_AI_CLIENT_TIME_TO_FIRST_CHUNK)
        self.requests = create_instrument(m, n.REQUESTS)
        self.tokens = create_instrument(m, n.TOKENS)
        self.cost = create_instrument(m, n.COST)
        self.unpriced = create_instrument(m, n.UNPRICED_REQUESTS)
        self.cache_events = create_instrument(m, n.CACHE_EVENTS)
        self.cache_waste = create_instrument(m, n.CACHE_REBUILD_WASTE)
        self.context_fill = create_instrument(m, n.CONTEXT_FILL_METRIC)
        self.turns_to_compact = create_instrument(m, n.TURNS_TO_COMPACT)
        self.fallbacks = create_instrument(m, n.FALLBACKS)
        self.tool_calls = create_instrument(m, n.TOOL_CALLS)
        self.tool_failures = create_instrument(m, n.TOOL_FAILURES)
        self.errors = create_instrument(m, n.ERRORS)
        self.turn_duration = create_instrument(m, n.TURN_DURATION)
        self.turn_time = create_instrument(m, n.TURN_TIME)
        self.session_cost = create_instrument(m, n.SESSION_COST)
        self.sessions_started = create_instrument(m, n.SESSIONS_STARTED)

    # -- requests ----------------------------------------------------------------------
    def request_finished(self, session: Session, request: RequestRecord) -> None:
        r = request
        model = self.model(r.model_requested or r.model_responded)
        kind = r.kind
        genai: dict[str, Any] = {
            n.GEN_AI_OPERATION_NAME: n.OP_CHAT,
            n.GEN_AI_PROVIDER_NAME: n.PROVIDER,
            n.GEN_AI_REQUEST_MODEL: model,
        }
        if r.model_responded:
            genai[n.GEN_AI_RESPONSE_MODEL] = self.model(r.model_responded)
        if self.server_address:
            genai[n.SERVER_ADDRESS] = self.server_address
        error = self.error(r.error_type) if r.error_type else None
        timed = {**genai, n.ERROR_TYPE: error} if error else genai
        if r.ended_at is not None:
            self.duration.record(max(0.0, r.ended_at - r.started_at), timed)
        if r.stream and r.first_token_at is not None:
            self.ttfc.record(max(0.0, r.first_token_at - r.started_at), genai)
        t = r.tokens
        by_kind = {n.LABEL_MODEL: model, n.LABEL_KIND: kind}
        self.requests.add(1, {**by_kind, n.LABEL_OUTCOME: "error" if error else "ok"})
        if error is None or t.total_input or t.output:
            gen_ai_counts = (
                ("input", t.total_input),  # the GenAI rule: cached tokens included
                ("output", t.output),
                ("cache_read", t.cache_read),
                ("cache_creation", t.cache_creation),
            )
            for token_type, count in gen_ai_counts:
                self.token_usage.record(count, {**genai, n.GEN_AI_TOKEN_TYPE: token_type})
            billed = (
                ("input", t.input),  # as Anthropic bills it: cached tokens excluded
                ("output", t.output),
                ("cache_read", t.cache_read),
                ("cache_creation", t.cache_creation),
            )
            for token_type, count in billed:
                if count:
                    self.tokens.add(count, {**by_kind, n.LABEL_TOKEN_TYPE: token_type})
        s = r.signals
        if s.cost_usd is None:
            self.unpriced.add(1, by_kind)
        elif s.cost_usd:
            self.cost.add(s.cost_usd, by_kind)
        cache = cache_status(r)
        if cache is not None:
            attrs: dict[str, Any] = {n.LABEL_MODEL: model, n.LABEL_CACHE_STATUS: cache[0]}
            if cache[1]:
                attrs[n.LABEL_REASON] = cache[1]
            self.cache_events.add(1, attrs)
        if s.cache_miss_waste_usd:
            self.cache_waste.add(s.cache_miss_waste_usd, {n.LABEL_MODEL: model})
        swap = fallback_of(r)
        if swap is not None:
            self.fallbacks.add(
                1,
                {
                    n.LABEL_FALLBACK_REQUESTED: self.model(swap[0]),
                    n.LABEL_FALLBACK_ACTUAL: self.model(swap[1]),
                },
            )
        if error is not None:
            self.errors.add(1, {n.LABEL_ERROR_TYPE: error, n.LABEL_KIND: kind})
        if kind == "main" and error is None and r.stop_reason != "tool_use":
            # The response that ended a main turn: how full the context is now.
            if s.context_fill is not None:
                self.context_fill.record(s.context_fill, {n.LABEL_MODEL: model})
            ttc = session.signals.turns_to_compact
            if ttc is not None:
                self.turns_to_compact.record(ttc, {n.LABEL_MODEL: model})

    # -- tools -------------------------------------------------------------------------
    def tool_use(self, session: Session, call: ToolCall) -> None:
        self.tool_calls.add(1, {n.LABEL_TOOL: self.tool(call.name)})

    def tool_result(self, session: Session, call: ToolCall) -> None:
        if call.outcome == "error":
            self.tool_failures.add(1, {n.LABEL_TOOL: self.tool(call.name)})

    # -- turns and sessions ------------------------------------------------------------
    def turn_ended(self, session: Session, turn: Turn) -> None:
        if turn.ended_at is not None:
            self.turn_duration.record(
                max(0.0, turn.ended_at - turn.started_at), {n.LABEL_OUTCOME: turn.outcome}
            )
        for part, ms in (turn.time or {}).items():
            self.turn_time.record(ms / 1000.0, {n.LABEL_TIME_PART: part.removesuffix("_ms")})

    def session_started(self, session: Session) -> None:
        self.sessions_started.add(1)

    def status_changed(self, session: Session, previous: str) -> None:
        cost = session.signals.cost_usd
        if session.status == "ended" and previous != "ended" and cost is not None:
            self.session_cost.record(cost)


def _obs(value: float | int | None, attrs: Attributes = None) -> list[Observation]:
    return [] if value is None else [Observation(value, attrs)]


class Observables:
    """Gauges and the core's health counters, read at collection time."""

    def __init__(
        self,
        meter_provider: MeterProvider,
        tracker: SessionTracker,
        stats: Callable[[], dict[str, Any]],
        span_stats: Callable[[], dict[str, int]] | None = None,
    ) -> None:
        self.tracker = tracker
        self.stats = stats
        self.span_stats = span_stats
        m = meter_provider.get_meter(n.METER_NAME)
        self.window = LabelGuard(limit=16)
        engine = tracker.signals
        observe(m, n.ACTIVE_SESSIONS, self._sessions)
        observe(m, n.SESSIONS_BY_STATE, self._states)
        # Compactions are confirmed by the signal engine (the continuation turn after one).
        observe(m, n.COMPACTIONS, lambda: _obs(engine.compactions))
        observe(m, n.QUOTA_UTILIZATION, self._quota)
        observe(m, n.WEEKLY_TOKENS_USED, lambda: _obs(engine.weekly.used(self._now())))
        observe(m, n.WEEKLY_TOKENS_BUDGET, lambda: _obs(engine.weekly.budget))
        observe(m, n.WEEKLY_EXHAUSTION, self._exhaustion)
        observe(m, n.WIRE_STREAMS, self._wire_streams)
        observe(m, n.WIRE_ACTIVE_STREAMS, lambda: _obs(self.stats()["wire"]["active"]))
        observe(m, n.WIRE_MESSAGES, lambda: _obs(self.stats()["wire"]["messages"]))
        observe(m, n.WIRE_BODY_BYTES, lambda: _obs(self.stats()["wire"]["body_bytes"]))
        observe(m, n.WIRE_ERRORS, self._wire_errors)
        observe(m, n.INTERPRETER_EXCHANGES, self._exchanges)
        observe(m, n.INTERPRETER_BAD_INPUT, self._bad_input)
        observe(m, n.BUS_EVENTS, self._bus)
        observe(m, n.STORE_ROWS, lambda: _obs(self.stats()["store"]["rows_written"]))
        observe(m, n.STORE_WRITE_ERRORS, lambda: _obs(self.stats()["store"]["write_errors"]))
        observe(m, n.STORE_ROWS_DROPPED, self._store_dropped)
        observe(m, n.STORE_ROWS_SANITISED, lambda: _obs(self.stats()["store"]["rows_sanitised"]))
        observe(m, n.STORE_WRITER_ALIVE, lambda: _obs(int(self.stats()["store"]["writer_alive"])))
        observe(m, n.STORE_WRITER_RESTARTS, lambda: _obs(self.stats()["store"]["writer_restarts"]))
        observe(m, n.STORE_PAUSED, self._store_paused)
        observe(m, n.STORE_ROWS_PENDING, lambda: _obs(self.stats()["store"]["rows_pending"]))
        observe(m, n.TRACKER_ANOMALIES, self._tracker)
        observe(m, n.REQUESTS_UNOBSERVED, self._unobserved)
        observe(m, n.DRIFT, self._drift)
        observe(m, n.TELEMETRY_SPANS, self._spans)

    def _sessions(self) -> list[Observation]:
        statuses = [s.status for s in list(self.tracker.sessions.values())]
        return [
            Observation(statuses.count(status), {n.LABEL_STATUS: status})
            for status in ("active", "idle")
        ]

    def _states(self) -> list[Observation]:
        states = [s.state for s in list(self.tracker.sessions.values())]
        return [
            Observation(states.count(state), {n.LABEL_STATE: state})
            for state in STATES
            if state != "ended"  # ended sessions leave memory
        ]

    def _now(self) -> float:
        return self.tracker.clock.now()

    def _quota(self) -> list[Observation]:
        view = self.tracker.signals.quota
        if view is None:
            return []
        return [
            Observation(value, {n.LABEL_WINDOW: self.window(window)})
            for window, value in sorted(view.utilization().items())
        ]

    def _exhaustion(self) -> list[Observation]:
        weekly = self.tracker.signals.weekly
        if weekly.budget is None:
            return []
        now = self._now()
        if weekly.used(now) >= weekly.budget:
            return [Observation(0.0)]  # already exhausted
        at = weekly.projected_exhaustion_at(now)
        # No sample when this week's pace does not exhaust the budget before the reset.
        return [] if at is None else [Observation(max(0.0, at - now))]

    def _wire_streams(self) -> list[Observation]:
        w = self.stats()["wire"]
        return [
            Observation(w[f"streams_{state}"], {n.LABEL_STATE: state})
            for state in ("opened", "closed", "failed", "refused")
        ]

    def _wire_errors(self) -> list[Observation]:
        w = self.stats()["wire"]
        out = [Observation(v, {n.LABEL_ERROR_TYPE: k}) for k, v in w["errors_by_type"].items()]
        out.append(Observation(w["consumer_errors"], {n.LABEL_ERROR_TYPE: "consumer"}))
        return out

    def _exchanges(self) -> list[Observation]:
        i = self.stats()["interpreter"]
        return [
            Observation(i["exchanges"] - i["ignored"], {n.LABEL_STATE: "messages"}),
            Observation(i["ignored"], {n.LABEL_STATE: "ignored"}),
        ]

    def _bad_input(self) -> list[Observation]:
        i = self.stats()["interpreter"]
        reasons = {
            "bad_request": i["bad_requests"],
            "request_too_large": i["request_too_large"],
            "decompression_bomb": i["decompression_bombs"],
            "undecodable_body": i["undecodable_bodies"],
            "malformed_event": i["malformed_events"],
            "unknown_event": i["unknown_events"],
        }
        return [Observation(v, {n.LABEL_REASON: k}) for k, v in reasons.items()]

    def _bus(self) -> list[Observation]:
        out = []
        for consumer in self.stats()["bus"]:
            for outcome in ("delivered", "dropped", "failed"):
                attrs = {n.LABEL_CONSUMER: consumer["name"], n.LABEL_OUTCOME: outcome}
                out.append(Observation(consumer[outcome], attrs))
        return out

    def _store_dropped(self) -> list[Observation]:
        reasons = self.stats()["store"]["rows_dropped_by_reason"]
        return [Observation(v, {n.LABEL_REASON: k}) for k, v in reasons.items()]

    def _store_paused(self) -> list[Observation]:
        paused = self.stats()["store"]["paused"]
        # 0 without a reason while writing: a series that is always there to alert on.
        return [Observation(1, {n.LABEL_REASON: paused})] if paused else [Observation(0)]

    def _tracker(self) -> list[Observation]:
        t = self.stats()["tracker"]
        return [
            Observation(t["unattributed_requests"], {n.LABEL_REASON: "unattributed_request"}),
            Observation(t["listener_errors"], {n.LABEL_REASON: "listener_error"}),
            Observation(self.tracker.signal_errors, {n.LABEL_REASON: "signal_error"}),
            Observation(t["hold_timeouts"], {n.LABEL_REASON: "hold_timeout"}),
            Observation(t["late_prompts"], {n.LABEL_REASON: "late_prompt"}),
        ]

    def _unobserved(self) -> list[Observation]:
        t = self.stats()["tracker"]
        return [
            Observation(t["unobserved_requests"], {n.LABEL_OUTCOME: "unobserved"}),
            Observation(t["partial_requests"], {n.LABEL_OUTCOME: "partial"}),
        ]

    def _drift(self) -> list[Observation]:
        counts = self.tracker.signals.drift.view()
        return [Observation(v, {n.LABEL_DRIFT_KIND: k}) for k, v in counts.items()]

    def _spans(self) -> list[Observation]:
        if self.span_stats is None:
            return []
        s = self.span_stats()
        return [Observation(s[state], {n.LABEL_STATE: state}) for state in ("exported", "dropped")]
