"""OpenTelemetry traces from the tracker's callbacks: one trace per user turn.

    invoke_agent claude-code            (INTERNAL, the turn: new prompt → final response)
    ├── chat {model}                    (CLIENT, one per Messages API request)
    ├── execute_tool {name}             (INTERNAL, response end → request carrying tool_result)
    └── execute_tool Agent
        └── invoke_agent claude-code-subagent
            ├── chat {model}
            └── execute_tool {name}

Every span gets explicit start/end times from the exchange timestamps, so spans say when
things happened on the wire, not when the tracker got to them. Chat spans are created whole
at request finish; the invoke_agent and execute_tool spans are open between two callbacks
and every path that can strand them (turn ended, session idle or ended, core shutdown)
closes them. It is the tracker's SpanRecorder (clauditor.sessions.listener): it hears each
event before the listeners and returns the ids of the spans it opened, which the tracker
stores on its turn, request and tool call; it never writes to the tracker's objects.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Literal

from opentelemetry.context import Context
from opentelemetry.trace import (
    Span,
    SpanKind,
    Status,
    StatusCode,
    TracerProvider,
    format_span_id,
    format_trace_id,
    set_span_in_context,
)
from opentelemetry.util.types import AttributeValue

from clauditor.clock import Clock
from clauditor.money import usd
from clauditor.sessions.listener import SpanLink, SpanLinks
from clauditor.sessions.models import RequestRecord, Session, TokenCounts, ToolCall, Turn
from clauditor.sessions.signals.fallback import same_family
from clauditor.telemetry import names as n

log = logging.getLogger(__name__)

# Common normalisation of Anthropic stop reasons; the raw value goes to clauditor.stop_reason.
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
TURNS_KEPT = 8  # ended turns whose root still parents late requests (title calls...)
CLOSED_KEPT = 256  # ended tool spans remembered per session, so none is recorded twice
CACHE_MISS_PREFIX = "miss_"


def ns(ts: float) -> int:
    """Epoch seconds (the clock's float) to OpenTelemetry's epoch nanoseconds."""
    return round(ts * 1e9)


def finish_reason(stop_reason: str | None, error_type: str | None) -> str | None:
    if stop_reason:
        return FINISH_REASONS.get(stop_reason, stop_reason)
    # A stream that ends before its final event reports "error" (GenAI conventions).
    return "error" if error_type else None


def split_mcp(tool: str) -> tuple[str, str] | None:
    """`mcp__server__tool` → (server, tool)."""
    parts = tool.split("__", 2)
    if len(parts) == 3 and parts[0] == "mcp" and parts[1] and parts[2]:
        return parts[1], parts[2]
    return None


def fallback_of(record: RequestRecord) -> tuple[str, str] | None:
    """(requested, actual) when another model answered: the signals' verdict (which also
    sees fallback blocks and client-side switches), else a family comparison."""
    s = record.signals
    if s.fallback and s.fallback_requested and s.fallback_actual:
        return s.fallback_requested, s.fallback_actual
    req, resp = record.model_requested, record.model_responded
    if req and resp and not same_family(req, resp):
        return req, resp
    return None


def cache_status(record: RequestRecord) -> tuple[str, str | None] | None:
    """(status, miss reason): the signals' miss_ttl / miss_thrash are `miss` plus a reason."""
    status = record.signals.cache_status
    if not status:
        return None
    if status.startswith(CACHE_MISS_PREFIX):
        return "miss", status[len(CACHE_MISS_PREFIX) :]
    return status, None


def usage_attributes(tokens: TokenCounts) -> dict[str, AttributeValue]:
    total_input = tokens.total_input  # Anthropic's input excludes cached tokens
    return {
        n.GEN_AI_USAGE_INPUT_TOKENS: total_input,
        n.GEN_AI_USAGE_OUTPUT_TOKENS: tokens.output,
        n.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: tokens.cache_read,
        n.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: tokens.cache_creation,
        n.LLM_TOKEN_COUNT_PROMPT: total_input,
        n.LLM_TOKEN_COUNT_COMPLETION: tokens.output,
        n.LLM_TOKEN_COUNT_TOTAL: total_input + tokens.output,
        n.LLM_TOKEN_COUNT_CACHE_READ: tokens.cache_read,
        n.LLM_TOKEN_COUNT_CACHE_WRITE: tokens.cache_creation,
    }


@dataclass
class _Run:
    """One open-or-recent invoke_agent span: a turn's root, or a subagent run."""

    span: Span
    ctx: Context
    trace_id: str
    turn_index: int | None
    started_at: float
    subagent: bool = False
    tokens: TokenCounts = field(default_factory=TokenCounts)
    requests: int = 0
    errors: int = 0
    cost: float | None = None
    last_end: float | None = None
    ended: bool = False
    close_at: float | None = None  # subagent: its Agent call ended; end after its requests


@dataclass
class _ToolSpan:
    span: Span
    call: ToolCall
    turn_index: int | None
    started_at: float


@dataclass
class _SessionSpans:
    turns: OrderedDict[int, _Run] = field(default_factory=OrderedDict)
    subagents: dict[str, _Run] = field(default_factory=dict)  # by the Agent tool_use id
    tools: dict[str, _ToolSpan] = field(default_factory=dict)  # open, by tool_use id
    # Requests between start and finish, by exchange id, with the run they belong to.
    inflight: dict[int, tuple[RequestRecord, _Run | None]] = field(default_factory=dict)
    closed: dict[str, None] = field(default_factory=dict)  # recent tool ids: no duplicates
    interrupted: int | None = None  # newest interrupted turn whose tools may still close


class TraceListener:
    def __init__(
        self,
        tracer_provider: TracerProvider,
        clock: Clock,
        *,
        server: tuple[str, int] | None = None,
        capture_content: bool = False,
    ) -> None:
        self.tracer = tracer_provider.get_tracer(n.TRACER_NAME)
        self.clock = clock
        self.server = server
        self.capture_content = capture_content
        self._sessions: dict[str, _SessionSpans] = {}
        self._links: list[SpanLink] = []  # opened while handling the current event

    def _opened(self, kind: Literal["request", "tool"], key: int | str, span: Span) -> None:
        trace_id, span_id = self._ids(span)
        self._links.append(SpanLink(kind, key, trace_id, span_id))

    def _answer(self) -> SpanLinks:
        """The spans opened for this event, for the tracker to store."""
        links, self._links = self._links, []
        return links

    # -- helpers ---------------------------------------------------------------------
    def _state(self, session_id: str) -> _SessionSpans:
        state = self._sessions.get(session_id)
        if state is None:
            state = self._sessions[session_id] = _SessionSpans()
        return state

    def _ids(self, span: Span) -> tuple[str, str]:
        ctx = span.get_span_context()
        return format_trace_id(ctx.trace_id), format_span_id(ctx.span_id)

    @staticmethod
    def _session_attrs(session_id: str) -> dict[str, AttributeValue]:
        return {n.GEN_AI_CONVERSATION_ID: session_id, n.SESSION_ID: session_id}

    def open_spans(self) -> int:
        """invoke_agent and execute_tool spans still open (tests assert nothing leaks)."""
        count = 0
        for state in self._sessions.values():
            runs = {id(r): r for r in state.turns.values()}
            runs.update((id(r), r) for r in state.subagents.values())
            runs.update((id(r), r) for _, r in state.inflight.values() if r is not None)
            count += sum(1 for r in runs.values() if not r.ended)
            count += len(state.tools)
        return count

    # -- invoke_agent ----------------------------------------------------------------
    @staticmethod
    def _subagent_attributes(call_id: str, agent_id: str | None) -> dict[str, AttributeValue]:
        out: dict[str, AttributeValue] = {n.SUBAGENT: True, n.GEN_AI_TOOL_CALL_ID: call_id}
        if agent_id:
            out[n.GEN_AI_AGENT_ID] = agent_id
        return out

    def _start_run(
        self,
        session: Session,
        name: str,
        start: float,
        parent: Context,
        turn_index: int | None,
        extra: dict[str, AttributeValue],
    ) -> _Run:
        attrs: dict[str, AttributeValue] = {
            n.GEN_AI_OPERATION_NAME: n.OP_INVOKE_AGENT,
            n.GEN_AI_AGENT_NAME: name,
            n.GEN_AI_PROVIDER_NAME: n.PROVIDER,
            **self._session_attrs(session.session_id),
            n.OPENINFERENCE_SPAN_KIND: "AGENT",
            **extra,
        }
        if turn_index is not None:
            attrs[n.TURN_NUMBER] = turn_index
        span = self.tracer.start_span(
            f"{n.OP_INVOKE_AGENT} {name}",
            context=parent,
            kind=SpanKind.INTERNAL,
            attributes=attrs,
            start_time=ns(start),
        )
        trace_id, _ = self._ids(span)
        return _Run(span, set_span_in_context(span), trace_id, turn_index, start)

    def _root(self, session: Session, state: _SessionSpans, turn: Turn) -> _Run:
        run = state.turns.get(turn.index)
        if run is not None:
            return run
        extra: dict[str, AttributeValue] = {
            n.PROMPT_LENGTH: len(turn.prompt or ""),
            n.TURN_COMPACTION: turn.compaction,
            n.TURN_TRIGGER: turn.trigger,
        }
        if self.capture_content and turn.prompt:
            extra[n.GEN_AI_INPUT_MESSAGES] = json.dumps(
                [{"role": "user", "parts": [{"type": "text", "content": turn.prompt}]}]
            )
        # A fresh Context: each turn is its own trace, whatever the ambient context.
        run = self._start_run(session, n.AGENT_NAME, turn.started_at, Context(), turn.index, extra)
        state.turns[turn.index] = run
        self._links.append(SpanLink("turn", turn.index, run.trace_id))
        while len(state.turns) > TURNS_KEPT:
            _, old = state.turns.popitem(last=False)
            self._finish_root(old, self.clock.now())  # never leak, however unlikely
        return run

    def _find_turn(self, session: Session, index: int | None) -> Turn | None:
        if index is None:
            return None
        return next((t for t in reversed(session.turns) if t.index == index), None)

    def _turn_run(self, session: Session, state: _SessionSpans, index: int | None) -> _Run | None:
        if index is None:
            return None
        run = state.turns.get(index)
        if run is None:
            # A turn we did not see start (the core restarted mid-turn): open it late.
            turn = self._find_turn(session, index)
            if turn is not None and turn.outcome == "in_progress":
                run = self._root(session, state, turn)
        return run

    def _subagent_run(
        self, session: Session, state: _SessionSpans, record: RequestRecord
    ) -> _Run | None:
        agent_id = record.parent_tool_use_id
        if agent_id is None:
            return None
        run = state.subagents.get(agent_id)
        if run is not None:
            return run
        tool = state.tools.get(agent_id)
        call = session.pending_tools.get(agent_id) or session.background_agents.get(agent_id)
        if tool is None and call is not None and call.outcome == "pending":
            # Side streams race: the subagent's first request can reach the core before the
            # end of the response that launched it. Open the Agent call's span now.
            entry = state.inflight.get(call.request_exchange)
            asking = entry[1] if entry else self._turn_run(session, state, call.turn_index)
            start = min(call.requested_at or call.seen_at, record.started_at)
            self._start_tool(session, state, call, asking, start)
            tool = state.tools.get(agent_id)
        start = record.started_at
        if tool is not None:
            parent = set_span_in_context(tool.span)
            start = max(start, tool.started_at)  # nested in its Agent call despite stamp skew
        else:
            root = self._turn_run(session, state, record.turn_index)
            if root is None:
                return None
            parent = root.ctx
        run = self._start_run(
            session,
            n.SUBAGENT_NAME,
            start,
            parent,
            record.turn_index,
            self._subagent_attributes(agent_id, record.agent_id),
        )
        run.subagent = True
        state.subagents[agent_id] = run
        return run

    def _run_of(self, session: Session, state: _SessionSpans, record: RequestRecord) -> _Run | None:
        if record.kind == "subagent":
            run = self._subagent_run(session, state, record)
            if run is not None:
                return run
        return self._turn_run(session, state, record.turn_index)

    def _end_run(self, run: _Run, end: float) -> None:
        if run.ended:
            return
        run.ended = True
        run.span.set_attributes(usage_attributes(run.tokens))
        run.span.set_attribute(n.TURN_REQUESTS, run.requests)
        run.span.set_attribute(n.TURN_ERRORS, run.errors)
        if run.cost is not None:
            run.span.set_attribute(n.TURN_COST_USD, usd(run.cost))
        run.span.end(end_time=ns(max(end, run.started_at)))

    def _end_root(self, run: _Run, turn: Turn | None, end: float, outcome: str) -> None:
        if run.ended:
            return
        span = run.span
        span.set_attribute(n.TURN_OUTCOME, outcome)
        if turn is not None:
            run.tokens = turn.tokens  # the tracker's totals include every request
            run.requests = turn.requests
            run.errors = turn.errors
            run.cost = turn.cost_usd or None  # the signal engine's, priced requests only
            span.set_attribute(n.TURN_TOOL_CALLS, turn.tool_calls)
            span.set_attribute(n.TURN_COMPACTION, turn.compaction)
            for part, ms in (turn.time or {}).items():
                span.set_attribute(f"{n.TURN_TIME_PREFIX}{part}", ms)
            if turn.stop_reason:
                span.set_attribute(n.STOP_REASON, turn.stop_reason)
        if outcome == "error":
            span.set_status(Status(StatusCode.ERROR))
            span.set_attribute(n.ERROR_TYPE, "turn_error")
        self._end_run(run, end)

    # -- TrackerListener -----------------------------------------------------------------
    def turn_started(self, session: Session, turn: Turn) -> SpanLinks:
        self._root(session, self._state(session.session_id), turn)
        return self._answer()

    def turn_ended(self, session: Session, turn: Turn) -> SpanLinks:
        state = self._state(session.session_id)
        run = state.turns.get(turn.index)
        if run is None:
            run = self._root(session, state, turn)
        end = turn.ended_at if turn.ended_at is not None else self.clock.now()
        run.span.set_attribute(n.VERIFIED, not session.unverified_reasons)
        if session.unverified_reasons:
            run.span.set_attribute(n.UNVERIFIED_REASONS, list(session.unverified_reasons))
        if turn.outcome == "interrupted":
            # The new prompt's request may carry the interrupted tools' results: they are
            # handled right after this, and request_started closes what they did not.
            state.interrupted = max(state.interrupted or 0, turn.index)
        else:
            # Background Agent calls outlive their turn: they end with their notification.
            self._close_open(state, end, "abandoned", turn_index=turn.index, background=False)
        if self.capture_content and session.last_text and turn.outcome == "completed":
            run.span.set_attribute(
                n.GEN_AI_OUTPUT_MESSAGES,
                json.dumps(
                    [
                        {
                            "role": "assistant",
                            "parts": [{"type": "text", "content": session.last_text}],
                            "finish_reason": finish_reason(turn.stop_reason, None) or "stop",
                        }
                    ]
                ),
            )
        # The turn's last request was told finished before this: its span and cost are in.
        self._end_root(run, turn, end, turn.outcome)
        return self._answer()

    def request_started(self, session: Session, request: RequestRecord) -> SpanLinks:
        state = self._state(session.session_id)
        if state.interrupted is not None:
            for index in {t.turn_index for t in state.tools.values()} | {
                r.turn_index for r in state.subagents.values()
            }:
                if index is not None and index <= state.interrupted:
                    self._close_open(state, request.started_at, "abandoned", turn_index=index)
            state.interrupted = None
        run = self._run_of(session, state, request)
        state.inflight[request.exchange_id] = (request, run)
        if run is not None:
            self._links.append(SpanLink("request", request.exchange_id, run.trace_id))
        return self._answer()

    def request_finished(self, session: Session, request: RequestRecord) -> SpanLinks:
        state = self._state(session.session_id)
        entry = state.inflight.pop(request.exchange_id, None)
        # The run the request joined when it started, even if that run has closed since.
        run = entry[1] if entry is not None and entry[1] is not None else None
        run = run or self._run_of(session, state, request)
        end = request.ended_at if request.ended_at is not None else self.clock.now()
        self._chat_span(session.session_id, request, run, end)
        cost = request.signals.cost_usd
        if run is not None and run.subagent:
            # A subagent run sums its own requests; the turn's root takes the tracker's.
            run.tokens.add(request.tokens)
            run.requests += 1
            run.errors += request.error_type is not None
            if cost is not None:
                run.cost = (run.cost or 0.0) + cost
            run.last_end = max(run.last_end or end, end)
            if run.close_at is not None and not any(r is run for _, r in state.inflight.values()):
                self._end_run(run, min(run.last_end, run.close_at))
        # The tools this response asked for start running now.
        for tool_use_id, _ in request.tool_uses:
            call = session.pending_tools.get(tool_use_id)
            if call is not None and call.outcome == "pending" and tool_use_id not in state.tools:
                self._start_tool(session, state, call, run, call.requested_at or end)
        return self._answer()

    def tool_result(self, session: Session, call: ToolCall) -> SpanLinks:
        state = self._state(session.session_id)
        if call.tool_use_id in state.closed:
            return self._answer()  # its span ended already (abandoned, then a late result)
        open_tool = state.tools.pop(call.tool_use_id, None)
        turn = self._find_turn(session, call.turn_index)
        end = call.result_at
        if end is None:
            end = turn.ended_at if turn is not None and turn.ended_at else self.clock.now()
        if open_tool is None:
            # Never started: asked for before a core restart, or its result overtook the end
            # of the response asking for it (side-stream skew). Record it whole.
            run = self._turn_run(session, state, call.turn_index)
            if run is None:
                return self._answer()
            start = call.requested_at or call.seen_at
            self._start_tool(session, state, call, run, min(start, end))
            open_tool = state.tools.pop(call.tool_use_id)
        self._end_tool(state, open_tool, end, call.outcome)
        return self._answer()

    def status_changed(self, session: Session, previous: str) -> SpanLinks:
        if session.status == "active":
            return self._answer()
        state = self._sessions.get(session.session_id)
        if state is None:
            return self._answer()
        now = self.clock.now()
        # The tracker ended the open turn already; close what hangs off no turn.
        self._close_open(state, now, "abandoned")
        if session.status == "ended":
            self._close_session(session.session_id, state, now)
        return self._answer()

    # -- chat ------------------------------------------------------------------------
    def _chat_span(
        self,
        session_id: str,
        r: RequestRecord,
        run: _Run | None,
        end: float,
        unfinished: str | None = None,
    ) -> None:
        """The request's chat span, whole; `unfinished` is the error type of one never told
        finished (the record keeps its own)."""
        error_type = r.error_type or unfinished
        model = r.model_requested or r.model_responded or "unknown"
        attrs: dict[str, AttributeValue] = {
            n.GEN_AI_OPERATION_NAME: n.OP_CHAT,
            n.GEN_AI_PROVIDER_NAME: n.PROVIDER,
            n.GEN_AI_REQUEST_MODEL: model,
            n.GEN_AI_REQUEST_STREAM: r.stream,
            **self._session_attrs(session_id),
            n.REQUEST_KIND: r.kind,
            n.RETRY: r.retry,
            n.OPENINFERENCE_SPAN_KIND: "LLM",
            n.LLM_MODEL_NAME: r.model_responded or model,
            n.LLM_PROVIDER: n.PROVIDER,
            **usage_attributes(r.tokens),
            n.CACHE_CREATION_1H_TOKENS: r.tokens.cache_creation_1h,
        }
        if self.server is not None:
            attrs[n.SERVER_ADDRESS], attrs[n.SERVER_PORT] = self.server
        if r.turn_index is not None:
            attrs[n.TURN_NUMBER] = r.turn_index
        optional: dict[str, AttributeValue | None] = {
            n.GEN_AI_REQUEST_MAX_TOKENS: r.max_tokens,
            n.GEN_AI_RESPONSE_ID: r.message_id,
            n.GEN_AI_RESPONSE_MODEL: r.model_responded,
            n.STOP_REASON: r.stop_reason,
            n.HTTP_RESPONSE_STATUS_CODE: r.status,
            n.ANTHROPIC_REQUEST_ID: r.request_id,
            n.CACHE_TTL_SECONDS: r.signals.cache_ttl_seconds,
            n.CONTEXT_FILL: r.signals.context_fill,
            n.CONTEXT_WINDOW: r.signals.context_window,
            n.COST_USD: r.signals.cost_usd,
            n.ABORTED_COST_USD: r.signals.aborted_cost_usd,
        }
        attrs.update({k: v for k, v in optional.items() if v is not None})
        reason = finish_reason(r.stop_reason, error_type)
        if reason is not None:
            attrs[n.GEN_AI_RESPONSE_FINISH_REASONS] = [reason]
        if r.first_token_at is not None:
            attrs[n.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] = max(0.0, r.first_token_at - r.started_at)
        cache = cache_status(r)
        if cache is not None:
            attrs[n.CACHE_STATUS] = cache[0]
            if cache[1]:
                attrs[n.CACHE_MISS_REASON] = cache[1]
        swap = fallback_of(r)
        attrs[n.FALLBACK] = swap is not None
        if swap is not None:
            attrs[n.FALLBACK_REQUESTED], attrs[n.FALLBACK_ACTUAL] = swap
            if r.signals.fallback_kind:
                attrs[n.FALLBACK_KIND] = r.signals.fallback_kind
        if error_type is not None:
            attrs[n.ERROR_TYPE] = error_type
        span = self.tracer.start_span(
            f"{n.OP_CHAT} {model}",
            context=run.ctx if run is not None else Context(),
            kind=SpanKind.CLIENT,
            attributes=attrs,
            start_time=ns(r.started_at),
        )
        if error_type is not None:
            span.set_status(Status(StatusCode.ERROR, error_type))
        span.end(end_time=ns(max(end, r.started_at)))
        self._opened("request", r.exchange_id, span)

    # -- execute_tool ----------------------------------------------------------------
    def _start_tool(
        self,
        session: Session,
        state: _SessionSpans,
        call: ToolCall,
        run: _Run | None,
        start: float,
    ) -> None:
        attrs: dict[str, AttributeValue] = {
            n.GEN_AI_OPERATION_NAME: n.OP_EXECUTE_TOOL,
            n.GEN_AI_TOOL_NAME: call.name,
            n.GEN_AI_TOOL_CALL_ID: call.tool_use_id,
            n.GEN_AI_TOOL_TYPE: n.TOOL_TYPE_FUNCTION,
            **self._session_attrs(session.session_id),
            n.OPENINFERENCE_SPAN_KIND: "TOOL",
            n.TOOL_NAME: call.name,
            n.SUBAGENT: call.subagent,
        }
        if call.turn_index is not None:
            attrs[n.TURN_NUMBER] = call.turn_index
        mcp = split_mcp(call.name)
        if mcp is not None:
            attrs[n.MCP_SERVER], attrs[n.MCP_TOOL] = mcp
        span = self.tracer.start_span(
            f"{n.OP_EXECUTE_TOOL} {call.name}",
            context=run.ctx if run is not None else Context(),
            kind=SpanKind.INTERNAL,
            attributes=attrs,
            start_time=ns(start),
        )
        self._opened("tool", call.tool_use_id, span)
        state.tools[call.tool_use_id] = _ToolSpan(span, call, call.turn_index, start)

    def _end_tool(self, state: _SessionSpans, tool: _ToolSpan, end: float, outcome: str) -> None:
        state.closed[tool.call.tool_use_id] = None
        if len(state.closed) > CLOSED_KEPT:
            del state.closed[next(iter(state.closed))]
        span = tool.span
        span.set_attribute(n.TOOL_OUTCOME, outcome)
        if tool.call.background:
            span.set_attribute(n.TOOL_BACKGROUND, True)
        if outcome == "error":
            span.set_status(Status(StatusCode.ERROR, n.TOOL_ERROR_TYPE))
            span.set_attribute(n.ERROR_TYPE, n.TOOL_ERROR_TYPE)
        sub = state.subagents.pop(tool.call.tool_use_id, None)
        if sub is not None:
            if any(r is sub for _, r in state.inflight.values()):
                sub.close_at = end  # its last request is still finishing (side-stream skew)
            else:
                self._end_run(sub, min(sub.last_end or end, end))
        # Side streams stamp events as they reach the core: a response's end can trail the
        # next request by a little; never end a span before its start.
        span.end(end_time=ns(max(end, tool.started_at)))

    # -- closing what would otherwise leak -----------------------------------------------
    def _close_open(
        self,
        state: _SessionSpans,
        end: float,
        outcome: str,
        turn_index: int | None = None,
        background: bool = True,
    ) -> None:
        """End the open tool spans and subagent runs (of one turn); background=False
        leaves the background Agent calls and their runs open."""
        kept: set[str] = set()
        for tool_use_id, tool in list(state.tools.items()):
            if not background and tool.call.background:
                kept.add(tool_use_id)
            elif turn_index is None or tool.turn_index == turn_index:
                del state.tools[tool_use_id]
                self._end_tool(state, tool, end, outcome)
        for agent_id, sub in list(state.subagents.items()):
            if agent_id not in kept and (turn_index is None or sub.turn_index == turn_index):
                del state.subagents[agent_id]
                self._end_run(sub, sub.last_end or end)

    def _close_session(self, session_id: str, state: _SessionSpans, now: float) -> None:
        for record, run in list(state.inflight.values()):
            # Never told finished (the tracker gives in-flight requests their verdict at
            # shutdown): still worth a span, marked incomplete.
            self._chat_span(session_id, record, run, now, n.INCOMPLETE_ERROR_TYPE)
            if run is not None and run.subagent:
                self._end_run(run, min(run.close_at or now, now))
        state.inflight.clear()
        self._close_open(state, now, "abandoned")
        for run in state.turns.values():
            self._finish_root(run, now)
        self._sessions.pop(session_id, None)

    def _finish_root(self, run: _Run, now: float) -> None:
        if not run.ended:
            self._end_root(run, None, now, "abandoned")

    def close_all(self) -> None:
        """Core shutdown: end every span still open so none is lost or leaked."""
        now = self.clock.now()
        for session_id, state in list(self._sessions.items()):
            self._close_session(session_id, state, now)
