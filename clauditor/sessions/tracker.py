"""The session tracker: folds domain events into sessions, turns, requests and tool calls.

Claude Code has no notion of a turn on the wire; the tracker infers it:
- a main-thread request whose newest user message carries human text starts a turn;
- requests carrying only tool_results continue it; a byte-identical (or non-streaming,
  or other-model) resend of the same request is a retry, not a new turn;
- the turn ends with the first main-thread response whose stop_reason is not tool_use;
- subagent, title and other side requests belong to the turn in progress.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from clauditor.claude_code import AGENT_TOOLS, TaskNotification, vocabulary
from clauditor.clock import Clock
from clauditor.domain.events import (
    UNOBSERVED_REQUEST,
    DomainEvent,
    ExchangeFinished,
    FirstToken,
    RequestParsed,
    RequestStarted,
    ResponseStarted,
    StreamProgress,
    ToolUseSeen,
)
from clauditor.parsing.fold import MessageResult
from clauditor.parsing.request import ParsedRequest, task_key
from clauditor.parsing.response import UPSTREAM_UNREACHABLE
from clauditor.parsing.text import summarize_text, tool_input_summary
from clauditor.sessions.listener import NO_LINKS, SpanLinks, SpanRecorder, TrackerListener
from clauditor.sessions.models import (
    INCOMPLETE_REQUEST,
    Compaction,
    RequestRecord,
    Session,
    TokenCounts,
    ToolCall,
    Turn,
    TurnTrigger,
    add_cost,
)
from clauditor.sessions.registry import RegistryEntry, project_of
from clauditor.sessions.signals.engine import SignalEngine
from clauditor.sessions.state import state_of
from clauditor.sessions.timing import Segment, TimePart, breakdown

log = logging.getLogger(__name__)

TURN_KINDS = frozenset({"main", "compaction"})


# How long a request may wait for the end of a response that was streaming when it came.
HOLD_MAX_SECONDS = 0.5
_V = TypeVar("_V")
EARLY_RESULTS_KEPT = 256  # per session: tool results that came before their tool_use
CLOSED_TOOLS_KEPT = 256  # per session: ids of closed calls, so a resent result is not "unseen"
AGENTS_KEPT = 256  # per session: subagent id -> Agent call, and closed Agent calls


@dataclass
class _Held:
    since: float
    waiting_for: set[int]  # exchanges that must have ended
    events: list[DomainEvent]
    parsed_first: set[int] = field(default_factory=set)  # exchanges that must be parsed
    session_id: str | None = None
    tools: set[str] = field(default_factory=set)  # tool_use ids that must have been seen

    @property
    def request(self) -> ParsedRequest:
        first = self.events[0]
        assert isinstance(first, RequestParsed)  # a hold always starts with its request
        return first.request


def _remember(kept: dict[str, _V], key: str, value: _V, cap: int) -> None:
    """Insertion-ordered and bounded: past `cap` entries the oldest goes."""
    kept[key] = value
    if len(kept) > cap:
        del kept[next(iter(kept))]


def _running_agents(session: Session) -> list[ToolCall]:
    """Agent calls whose run may still send requests: pending, or running in the background."""
    calls = (*session.pending_tools.values(), *session.background_agents.values())
    return [c for c in calls if c.name in AGENT_TOOLS]


def _add_run(call: ToolCall, record: RequestRecord) -> None:
    if record.ended_at is not None:
        call.run_ended_at = max(call.run_ended_at or record.ended_at, record.ended_at)
    call.subagent_tokens.add(record.tokens)
    call.subagent_cost_usd = add_cost(call.subagent_cost_usd, record.signals.cost_usd)


def _counted_anyway(session: Session, result: MessageResult) -> bool:
    """Claude Code versions whose own accounting counts a stream that failed before any
    content block (clauditor/data/claude_code.json `accounting`): their totals include it."""
    if result.block_types or session.cc_version is None:
        return False
    return session.cc_version in vocabulary().aborted_before_content_counted


def _trigger_of(req: ParsedRequest) -> TurnTrigger:
    """Why a turn starts with this request (a prompt, or Claude Code on its own)."""
    if req.new_prompt:
        return "prompt"
    if req.notifications:
        return "task_notification"
    if req.kind == "compaction":
        return "compaction"
    return "resumed"


def tokens_of(result: MessageResult) -> TokenCounts:
    u = result.usage
    return TokenCounts(
        input=u.input_tokens,
        output=u.output_tokens,
        cache_read=u.cache_read_input_tokens,
        cache_creation=u.cache_creation_input_tokens,
        cache_creation_1h=u.cache_creation_1h_tokens,
    )


class SessionTracker:
    def __init__(
        self,
        clock: Clock,
        *,
        idle_timeout: float = 300.0,
        end_timeout: float = 1800.0,
        requests_kept: int = 500,
        listeners: Iterable[TrackerListener] = (),
        spans: SpanRecorder | None = None,
        loader: Callable[[str], Session | None] | None = None,
        signals: SignalEngine | None = None,
    ) -> None:
        self.clock = clock
        self.idle_timeout = idle_timeout
        self.end_timeout = end_timeout
        self.sessions: dict[str, Session] = {}
        self._requests_kept = requests_kept
        self._recent: dict[str, deque[RequestRecord]] = {}
        self._by_exchange: dict[int, tuple[Session, RequestRecord]] = {}
        self._hints: dict[int, str] = {}
        self._held: dict[int, _Held] = {}
        # session → tool_use id → (ts, is_error) of results seen before their tool_use.
        self._early_results: dict[str, dict[str, tuple[float, bool]]] = {}
        self._closed_tools: dict[str, dict[str, None]] = {}  # session → ordered set of ids
        # session → closed Agent calls by tool_use id: a subagent request that ends after
        # its call closed still rolls up under it.
        self._closed_agents: dict[str, dict[str, ToolCall]] = {}
        self.held_requests = 0
        # Held requests let go by HOLD_MAX_SECONDS, not by what they waited for: where the
        # order of a session's exchanges may be guessed wrong (an anomaly on /metrics).
        self.hold_timeouts = 0
        # Prompts that showed up after the turn their tool_result opened (past the hold):
        # joined to that turn instead of starting one.
        self.late_prompts = 0
        self.listeners: list[TrackerListener] = list(listeners)
        # Hears every event before the listeners; the ids of the spans it opens are stored
        # on the tracker's objects (clauditor.sessions.listener).
        self.spans = spans
        # Finds a stored session that becomes live again (--continue, or a core restart).
        self.loader = loader
        self.unattributed_requests = 0
        self.listener_errors = 0
        self.implausible_usage = 0  # responses whose usage no model allows
        # Requests whose end the core did not see (Envoy reset their side stream while the
        # core lagged): none of the response seen, or part of it. Never errors.
        self.unobserved_requests = 0
        self.partial_requests = 0
        # Debug signals (cost, cache, context, fallback, quota): computed before listeners run.
        self.signals = signals if signals is not None else SignalEngine(clock)
        self.signal_errors = 0

    # -- event entry point ---------------------------------------------------------
    def handle(self, event: DomainEvent) -> None:
        held = self._held.get(event.exchange_id)
        if held is not None:
            held.events.append(event)  # queued behind its own held request
            return
        if isinstance(event, RequestParsed) and self._hold(event):
            return
        self._dispatch(event)
        if self._held and isinstance(event, (ExchangeFinished, RequestParsed, ToolUseSeen)):
            self._release(self.clock.now())

    # -- cross-exchange order --------------------------------------------------------
    # Each exchange has its own ext_proc side stream, and nothing orders two streams: the
    # request that carries a tool_result (or the next prompt) can reach us before the end
    # of the response it follows. Such a request is held until the responses of its
    # session that were streaming when it arrived have ended (or HOLD_MAX_SECONDS pass).
    # A core that lags (a loaded machine) can see even less of the request before: its
    # body not parsed yet, its response not started, or its side stream not even open.
    # So a request also waits for the earlier requests of its session still being parsed
    # (or held): to be parsed first, or, for a request that follows a response
    # (tool_result, prompt, compaction), to end; and one answering tool_use ids we have
    # not seen waits for those ids to show up, and for every earlier exchange of its
    # session in flight. A request that comes before such a held one in the conversation
    # (the one whose response will carry the ids) does not wait for it in turn.
    def _hold(self, event: RequestParsed) -> bool:
        req = event.request
        exchange_id = event.exchange_id
        session_id = req.session_id or self._hints.get(exchange_id)
        after = self._held_after(req, session_id, self._awaiting_tools())
        earlier = {
            x
            for x, hint in self._hints.items()
            if hint == session_id and x < exchange_id and x not in after
        }
        waiting_for: set[int] = set()
        unseen: set[str] = set()
        # What follows a response: a tool_result, a prompt, a compaction, a task
        # notification (which starts a turn of its own only once the last one ended).
        if req.tool_results or req.new_prompt or req.kind == "compaction" or req.notifications:
            unseen = self._unseen_tools(session_id, req)
            waiting_for = earlier | {
                x
                for x, (s, r) in self._by_exchange.items()
                if s.session_id == session_id
                and (r.response_started_at is not None or (unseen and x < exchange_id))
            }
            earlier = set()
        if req.kind == "subagent":
            # A subagent's first request can overtake the response whose Agent tool_use
            # launched it: with no Agent call to tie it to yet, it waits for the session's
            # main-thread exchanges in flight (at most HOLD_MAX_SECONDS, as any hold).
            waiting_for |= self._agent_not_seen_yet(session_id, req)
        if not (waiting_for or earlier or unseen):
            return False
        held = _Held(self.clock.now(), waiting_for, [event], earlier, session_id, unseen)
        self._held[exchange_id] = held
        self.held_requests += 1
        return True

    def _agent_not_seen_yet(self, session_id: str | None, req: ParsedRequest) -> set[int]:
        session = self.sessions.get(session_id or "")
        if session is None:
            return set()
        if req.agent_id and req.agent_id in session.agents:
            return set()
        running = _running_agents(session)
        if any(c.agent_id is None or c.task_key in req.task_keys for c in running):
            return set()
        return {
            x for x, (s, r) in self._by_exchange.items() if s is session and r.kind in TURN_KINDS
        }

    def _unseen_tools(self, session_id: str | None, req: ParsedRequest) -> set[str]:
        """The tool_use ids this request answers that its session has not shown us (a
        stored session resumes first: after a core restart its pending calls are known)."""
        if not req.tool_results or session_id is None:
            return set()
        if session_id not in self.sessions:
            self._resume(session_id, self.clock.now())
        return {
            ref.tool_use_id
            for ref in req.tool_results
            if not self._tool_seen(session_id, ref.tool_use_id)
        }

    def _tool_seen(self, session_id: str, tool_use_id: str) -> bool:
        session = self.sessions.get(session_id)
        if session is not None and (
            tool_use_id in session.pending_tools or tool_use_id in session.background_agents
        ):
            return True
        return tool_use_id in self._closed_tools.get(session_id, {})

    def _awaiting_tools(self) -> set[int]:
        """Held requests whose tool_use ids have not all shown up yet."""
        return {
            x
            for x, h in self._held.items()
            if h.session_id is not None
            and not all(self._tool_seen(h.session_id, t) for t in h.tools)
        }

    def _held_after(
        self, req: ParsedRequest, session_id: str | None, awaiting: set[int]
    ) -> set[int]:
        """Of the `awaiting` held requests, those of this session that come after `req` in
        the conversation: same thread kind, more messages. `req` may be the very request
        whose response carries the ids they wait for, so it must not wait for them."""
        out: set[int] = set()
        for x in awaiting:
            held = self._held[x]
            them = held.request
            if (
                held.session_id == session_id
                and req.kind == them.kind
                and req.conversation_messages < them.conversation_messages
            ):
                out.add(x)
        return out

    def _release(self, now: float) -> None:
        while True:
            unfinished = self._by_exchange.keys() | self._hints.keys()
            awaiting = self._awaiting_tools()
            ready: list[int] = []
            for x, h in self._held.items():
                after = self._held_after(h.request, h.session_id, awaiting)
                waiting = bool(
                    h.waiting_for & (unfinished - after)
                    or h.parsed_first & (self._hints.keys() - after)
                    or x in awaiting
                )
                if not waiting:
                    ready.append(x)
                elif now - h.since >= HOLD_MAX_SECONDS:
                    ready.append(x)
                    self.hold_timeouts += 1
            if not ready:
                return
            for exchange_id in sorted(ready):
                for event in self._held.pop(exchange_id).events:
                    self._dispatch(event)

    def _dispatch(self, event: DomainEvent) -> None:
        if isinstance(event, RequestStarted):
            self._on_started(event)
        elif isinstance(event, RequestParsed):
            self._on_parsed(event)
        elif isinstance(event, ResponseStarted):
            self._on_response(event)
        elif isinstance(event, FirstToken):
            entry = self._by_exchange.get(event.exchange_id)
            if entry and entry[1].first_token_at is None:
                entry[1].first_token_at = event.ts
        elif isinstance(event, StreamProgress):
            entry = self._by_exchange.get(event.exchange_id)
            if entry:
                entry[1].bytes_at = max(entry[1].bytes_at or event.ts, event.ts)
        elif isinstance(event, ToolUseSeen):
            self._on_tool_use(event)
        elif isinstance(event, ExchangeFinished):
            self._on_finished(event)

    def _tell(self, event: Callable[[TrackerListener], None]) -> None:
        """One event to every listener, in order; one that raises is counted and logged,
        and the others still hear it."""
        for listener in self.listeners:
            try:
                event(listener)
            except Exception:
                self.listener_errors += 1
                log.exception("tracker listener %s failed", type(listener).__name__)

    def _record_spans(
        self,
        session: Session,
        event: Callable[[SpanRecorder], SpanLinks],
        *,
        request: RequestRecord | None = None,
        call: ToolCall | None = None,
    ) -> None:
        """The span recorder hears the event first; the tracker keeps the ids it returns on
        the turn, the request or the tool call they stand for."""
        if self.spans is None:
            return
        try:
            links = event(self.spans)
        except Exception:
            self.listener_errors += 1
            log.exception("span recorder %s failed", type(self.spans).__name__)
            return
        for link in links or NO_LINKS:
            if link.kind == "turn":
                turn = self._turn(session, link.key if isinstance(link.key, int) else None)
                if turn is not None:
                    turn.trace_id = link.trace_id
            elif link.kind == "request":
                if request is not None and link.key == request.exchange_id:
                    request.trace_id, request.span_id = link.trace_id, link.span_id
            else:
                found = call if call is not None and call.tool_use_id == link.key else None
                found = found or session.pending_tools.get(str(link.key))
                found = found or session.background_agents.get(str(link.key))
                if found is not None:
                    found.trace_id, found.span_id = link.trace_id, link.span_id

    # -- telling the consumers (clauditor.sessions.listener) ----------------------------
    # One method per event: each calls the span recorder (for the events it traces) and
    # then every listener, directly, so the type checker holds both to their protocol.
    def _emit_session_started(self, session: Session) -> None:
        self._tell(lambda listener: listener.session_started(session))

    def _emit_session_changed(self, session: Session) -> None:
        self._tell(lambda listener: listener.session_changed(session))

    def _emit_state_changed(self, session: Session, previous: str) -> None:
        self._tell(lambda listener: listener.state_changed(session, previous))

    def _emit_status_changed(self, session: Session, previous: str) -> None:
        self._record_spans(session, lambda spans: spans.status_changed(session, previous))
        self._tell(lambda listener: listener.status_changed(session, previous))

    def _emit_turn_started(self, session: Session, turn: Turn) -> None:
        self._record_spans(session, lambda spans: spans.turn_started(session, turn))
        self._tell(lambda listener: listener.turn_started(session, turn))

    def _emit_turn_ended(self, session: Session, turn: Turn) -> None:
        self._record_spans(session, lambda spans: spans.turn_ended(session, turn))
        self._tell(lambda listener: listener.turn_ended(session, turn))

    def _emit_request_started(self, session: Session, record: RequestRecord) -> None:
        self._record_spans(
            session, lambda spans: spans.request_started(session, record), request=record
        )
        self._tell(lambda listener: listener.request_started(session, record))

    def _emit_request_finished(self, session: Session, record: RequestRecord) -> None:
        self._record_spans(
            session, lambda spans: spans.request_finished(session, record), request=record
        )
        self._tell(lambda listener: listener.request_finished(session, record))

    def _emit_request_changed(self, session: Session, record: RequestRecord) -> None:
        self._tell(lambda listener: listener.request_changed(session, record))

    def _emit_tool_use(self, session: Session, call: ToolCall) -> None:
        self._tell(lambda listener: listener.tool_use(session, call))

    def _emit_tool_result(self, session: Session, call: ToolCall) -> None:
        self._record_spans(session, lambda spans: spans.tool_result(session, call), call=call)
        self._tell(lambda listener: listener.tool_result(session, call))

    def _emit_compacted(self, session: Session, compaction: Compaction) -> None:
        self._tell(lambda listener: listener.compacted(session, compaction))

    def _changed(self, session: Session) -> None:
        """After any change to a session: its state first, then the listeners."""
        self._refresh_state(session)
        self._emit_session_changed(session)

    def _refresh_state(self, session: Session) -> None:
        view = state_of(session, session.registry)
        if (view.state, view.waiting_for, view.tool) == (
            session.state,
            session.waiting_for,
            session.state_tool,
        ) and session.state_since is not None:
            session.state_source = view.source
            return
        previous, since = session.state, session.state_since
        session.state, session.state_source = view.state, view.source
        session.waiting_for, session.state_tool = view.waiting_for, view.tool
        now = self.clock.now()
        if view.source == "claude_code" and session.registry and session.registry.status_since:
            # The registry says when its status changed; never later than now.
            now = min(now, max(session.registry.status_since, session.started_at))
        session.state_since = now
        turn = session.current_turn
        if previous == "needs_you" and view.state != "needs_you" and since is not None and turn:
            turn.waits.append((since, max(now, since)))  # a permission prompt answered
        self._emit_state_changed(session, previous)

    # -- Claude Code's session registry ------------------------------------------------
    def apply_registry(self, entries: dict[str, RegistryEntry]) -> None:
        """The registry's live entries (sessions.registry.RegistryReader.poll), by session
        id: each joins its session (or starts one the wire has not seen yet); a session
        whose process is gone ends."""
        now = self.clock.now()
        for sid, entry in entries.items():
            session = self.sessions.get(sid) or self._resume(sid, now)
            if session is None:
                start = min(entry.started_at or now, now)
                session = Session(session_id=sid, started_at=start, last_activity_at=now)
                self.sessions[sid] = session
                self._recent[sid] = deque(maxlen=self._requests_kept)
                self._emit_session_started(session)
            if session.registry == entry:
                continue
            if session.registry is None or session.registry.cwd != entry.cwd:
                session.project = project_of(entry.cwd)
            session.registry = session.last_registry = entry
            session.cc_version = session.cc_version or entry.version
            session.entrypoint = session.entrypoint or entry.entrypoint
            if entry.status in ("busy", "waiting"):
                self._touch(session, now)  # it is working, or waits on its user
            self._changed(session)
        for session in list(self.sessions.values()):
            if session.registry is not None and session.session_id not in entries:
                self._process_gone(session, now)

    def _process_gone(self, session: Session, now: float) -> None:
        """Its Claude Code process exited: the session ends now, not at --end-timeout."""
        session.registry = None
        if session.in_flight:
            return  # its last exchanges still finish; the end timer takes it from there
        self._end_session(session, now)
        self._forget(session)

    def _end_session(self, session: Session, now: float) -> None:
        """Ended: an open turn is abandoned; its last state_changed comes before the
        status_changed (session_end) the listeners close it on."""
        turn = session.current_turn
        if turn is not None:
            self._end_turn(session, turn, now, "abandoned")
        previous = session.status
        session.status = "ended"
        session.ended_at = now
        self._refresh_state(session)
        self._emit_status_changed(session, previous)
        self._changed(session)

    def _signal(self, method: str, session: Session, *args: object) -> None:
        try:
            getattr(self.signals, method)(session, *args)
        except Exception:
            self.signal_errors += 1
            log.exception("signal engine %s failed", method)
        confirmed = session.signals.confirmed
        while confirmed:
            compaction = confirmed.pop(0)
            self._emit_compacted(session, compaction)

    # -- sessions ------------------------------------------------------------------
    def _session(self, session_id: str, ts: float) -> Session:
        session = self.sessions.get(session_id) or self._resume(session_id, ts)
        if session is not None:
            return session
        session = Session(session_id=session_id, started_at=ts, last_activity_at=ts)
        self.sessions[session_id] = session
        self._recent[session_id] = deque(maxlen=self._requests_kept)
        self._emit_session_started(session)
        return session

    def _resume(self, session_id: str, ts: float) -> Session | None:
        """A stored session that becomes live again, or None if the store has none."""
        session = self._load(session_id)
        if session is None:
            return None
        self.sessions[session_id] = session
        self._recent[session_id] = deque(maxlen=self._requests_kept)
        self._touch(session, ts)
        return session

    def adopt(self, session: Session) -> None:
        """Take over a session a previous core left live (crash or restart): the idle and
        end timers then treat it like any other, and its next request continues it."""
        if session.session_id in self.sessions:
            return
        self.sessions[session.session_id] = session
        self._recent[session.session_id] = deque(maxlen=self._requests_kept)

    def _load(self, session_id: str) -> Session | None:
        if self.loader is None:
            return None
        try:
            return self.loader(session_id)
        except Exception:
            log.exception("loading stored session %s failed; starting it afresh", session_id)
            return None

    def _touch(self, session: Session, ts: float) -> None:
        session.last_activity_at = max(session.last_activity_at, ts)
        if session.status != "active":
            previous = session.status
            session.status = "active"
            session.ended_at = None
            self._emit_status_changed(session, previous)

    def _on_started(self, event: RequestStarted) -> None:
        # Only a hint: the session becomes "active" as soon as a request starts.
        if event.session_hint:
            self._hints[event.exchange_id] = event.session_hint
            session = self.sessions.get(event.session_hint)
            if session is not None:
                self._touch(session, event.ts)

    def _on_parsed(self, event: RequestParsed) -> None:
        req = event.request
        hint = self._hints.pop(event.exchange_id, None)
        session_id = req.session_id or hint
        if session_id is None:
            self.unattributed_requests += 1
            return
        session = self._session(session_id, event.ts)
        self._touch(session, event.ts)
        record = RequestRecord(
            exchange_id=event.exchange_id,
            session_id=session_id,
            started_at=event.ts,
            kind=req.kind,
            model_requested=req.model,
            stream=req.stream,
            max_tokens=req.max_tokens,
            fingerprint=req.fingerprint,
            body_done_at=event.body_done_ts,
            upstream=event.upstream_host,
        )
        if not req.ok and req.error != UNOBSERVED_REQUEST:
            record.error_type = f"request_{req.error}"
        if req.entrypoint and session.entrypoint is None:
            session.entrypoint = req.entrypoint
        if req.cc_version:
            session.cc_version = req.cc_version
        parent: ToolCall | None = None
        if req.kind == "subagent":
            record.agent_id = req.agent_id
            record.task_keys = req.task_keys
            parent = self._launching_agent_call(session, req)
            if parent is not None:
                record.parent_tool_use_id = parent.tool_use_id
                parent.subagent_requests += 1
        self._place_in_turn(session, record, req, event.ts, parent)
        self._close_tool_calls(session, req, event.ts)
        self._notified(session, req.notifications, event.ts)
        self._signal("request_parsed", session, record, req)
        session.request_count += 1
        session.in_flight.add(event.exchange_id)
        self._recent[session_id].append(record)
        self._by_exchange[event.exchange_id] = (session, record)
        self._emit_request_started(session, record)
        self._changed(session)

    def _place_in_turn(
        self,
        session: Session,
        record: RequestRecord,
        req: ParsedRequest,
        ts: float,
        parent: ToolCall | None,
    ) -> None:
        current = session.current_turn
        if req.ok and req.kind in TURN_KINDS:
            if req.model:
                session.model = req.model
            if session.last_fingerprint is not None and req.fingerprint == session.last_fingerprint:
                record.retry = True
                session.retries += 1
            elif (asked := self._compaction_reasked(session, req, current)) is not None:
                # Claude Code asks again when the summary lacked its tags: the same
                # compaction, so the same turn.
                current = asked
            elif current is not None and self._prompt_overtaken(current, req):
                self._join_late_prompt(session, current, req)
            elif req.new_prompt or current is None:
                if current is not None and not self._turn_in_flight(session, current):
                    # A new prompt while the previous turn was still going: the user
                    # interrupted it (Esc) or its final response never reached us.
                    self._end_turn(session, current, ts, "interrupted")
                # With a request of it still in flight, the previous turn ends when that
                # request does: Envoy's side streams can deliver the next request before
                # the end of the previous response.
                current = self._start_turn(session, req, ts, _trigger_of(req))
            session.last_fingerprint = req.fingerprint
            if current is not None and req.kind == "compaction":
                current.compaction = True
        elif parent is not None:
            # A subagent run belongs to the turn that launched it, even when it runs in
            # the background past that turn's end.
            current = self._turn(session, parent.turn_index) or current
        if current is not None:
            record.turn_index = current.index
            current.requests += 1

    @staticmethod
    def _compaction_reasked(
        session: Session, req: ParsedRequest, current: Turn | None
    ) -> Turn | None:
        """The compaction turn this compaction request asks again, if it does: the newest
        compaction turn, its compaction not taken yet (no continuation confirmed it), with
        nothing in progress since; or, with the very same conversation, even after a turn
        in between (a lagging core saw a request from before the compaction late, which
        opened a turn of its own and looked like the compaction did not take)."""
        if req.kind != "compaction":
            return None
        last = next((t for t in reversed(session.turns) if t.trigger == "compaction"), None)
        if last is None:
            return None
        signals = session.signals
        if any(ts >= last.started_at for ts in signals.compacted_at):
            return None  # that compaction took: this is a new one
        pending = signals.pending_compaction is not None or signals.compaction_exchange is not None
        if pending and current is None and last is session.turns[-1]:
            return last
        if last.opened_messages and req.conversation_messages == last.opened_messages:
            return last
        return None

    @staticmethod
    def _prompt_overtaken(turn: Turn, req: ParsedRequest) -> bool:
        """A prompt that comes before the turn in progress in the conversation: the core
        lagged past the hold, and the tool_result answering this prompt's response opened
        the turn on its own ("resumed")."""
        return (
            req.new_prompt
            and turn.trigger == "resumed"
            and turn.prompt is None
            and req.kind == "main"
            and 0 < req.conversation_messages < turn.opened_messages
        )

    def _join_late_prompt(self, session: Session, turn: Turn, req: ParsedRequest) -> None:
        turn.trigger = "prompt"
        turn.prompt = req.prompt
        turn.opened_messages = req.conversation_messages
        session.prompt_count += 1
        self.late_prompts += 1
        if session.first_prompt is None and req.prompt:
            session.first_prompt = req.prompt

    def _turn_in_flight(self, session: Session, turn: Turn) -> bool:
        return any(
            self._by_exchange[x][1].turn_index == turn.index
            for x in session.in_flight
            if x in self._by_exchange
        )

    def _start_turn(
        self, session: Session, req: ParsedRequest, ts: float, trigger: TurnTrigger
    ) -> Turn:
        previous = session.turns[-1] if session.turns else None
        session.turn_count += 1
        if trigger == "prompt":
            session.prompt_count += 1
        turn = Turn(
            index=session.turn_count,
            session_id=session.session_id,
            started_at=ts,
            prompt=req.prompt if req.new_prompt else None,
            compaction=req.kind == "compaction",
            trigger=trigger,
            opened_messages=req.conversation_messages,
        )
        if previous is not None and previous.ended_at is not None:
            turn.idle_before_ms = round((ts - previous.ended_at) * 1000.0, 3)
        session.turns.append(turn)
        if len(session.turns) > self._requests_kept:
            del session.turns[0]
        if session.first_prompt is None and req.new_prompt and req.kind == "main" and req.prompt:
            session.first_prompt = req.prompt
        self._emit_turn_started(session, turn)
        return turn

    def _end_turn(self, session: Session, turn: Turn, ts: float, outcome: str) -> None:
        if turn.outcome != "in_progress":
            return
        if turn.end_unseen and outcome in ("interrupted", "abandoned"):
            # Its last response's end was never seen (a lagging core): whether it
            # completed is unknown, so it is neither interrupted nor abandoned.
            outcome = "unobserved"
        turn.outcome = outcome  # type: ignore[assignment]
        turn.ended_at = ts
        turn.time = self._time_of(session, turn, ts)
        if outcome == "abandoned":
            for call in session.pending_tools.values():
                if call.turn_index == turn.index and call.outcome == "pending":
                    call.outcome = "abandoned"
                    self._emit_tool_result(session, call)
        self._emit_turn_ended(session, turn)

    @staticmethod
    def _time_of(session: Session, turn: Turn, end: float) -> dict[TimePart, float]:
        # A foreground run lasts from the Agent call to its last request's end (or, with
        # none seen, to the call's result): what follows is the other tools' time.
        runs = [
            (
                c.requested_at or c.seen_at,
                c.run_ended_at or (c.result_at if c.result_at is not None else end),
            )
            for c in turn.agent_calls
            if not c.background and not c.subagent
        ]
        waits = list(turn.waits)
        if session.state == "needs_you" and session.state_since is not None:
            waits.append((session.state_since, end))  # still waiting as the turn ends
        return breakdown(turn.started_at, end, turn.segments, runs, waits)

    def _turn(self, session: Session, index: int | None) -> Turn | None:
        if index is None:
            return None
        for turn in reversed(session.turns):
            if turn.index == index:
                return turn
        return None

    # -- tools ---------------------------------------------------------------------
    def _agent_call(self, session: Session, tool_use_id: str | None) -> ToolCall | None:
        if tool_use_id is None:
            return None
        return (
            session.pending_tools.get(tool_use_id)
            or session.background_agents.get(tool_use_id)
            or self._closed_agents.get(session.session_id, {}).get(tool_use_id)
        )

    def _launching_agent_call(self, session: Session, req: ParsedRequest) -> ToolCall | None:
        """The Agent call that launched this subagent request: by its agent id
        (x-claude-code-agent-id, which the launch result and the task notification name
        too), else the running Agent call whose task prompt it carries, else the newest
        running Agent call not yet tied to another run (a newer Claude Code may reword)."""
        known = self._agent_call(session, session.agents.get(req.agent_id or ""))
        if known is not None:
            return known
        running = _running_agents(session)
        found = next((c for c in running if c.task_key in req.task_keys), None)
        if found is None:
            free = [c for c in running if c.agent_id is None]
            found = free[-1] if free else None
        if found is not None and req.agent_id:
            self._tie_agent(session, found, req.agent_id)
        return found

    @staticmethod
    def _tie_agent(session: Session, call: ToolCall, agent_id: str) -> None:
        call.agent_id = agent_id
        _remember(session.agents, agent_id, call.tool_use_id, AGENTS_KEPT)

    def _adopt_orphans(self, session: Session, call: ToolCall) -> None:
        """Subagent requests that reached us before the Agent tool_use launching them (a
        core lagging past the hold): tied to it now, by their task prompt."""
        if call.task_key is None:
            return
        for r in self._recent.get(session.session_id, ()):
            if r.kind != "subagent" or r.parent_tool_use_id is not None:
                continue
            if call.task_key not in r.task_keys:
                continue
            r.parent_tool_use_id = call.tool_use_id
            call.subagent_requests += 1
            if r.agent_id:
                self._tie_agent(session, call, r.agent_id)
            if r.ended_at is not None:
                _add_run(call, r)
                self._emit_request_changed(session, r)

    def _recovered(self, session: Session, record: RequestRecord) -> None:
        """A resend succeeded: the failed attempts of the same request were recovered."""
        for earlier in self._recent.get(session.session_id, ()):
            if (
                earlier is not record
                and earlier.fingerprint == record.fingerprint
                and earlier.error_type is not None
                and not earlier.recovered
                and earlier.ended_at is not None
            ):
                earlier.recovered = True
                self._emit_request_changed(session, earlier)

    def _roll_up(self, session: Session, record: RequestRecord) -> None:
        """A subagent request's tokens and cost, under the Agent call that launched it."""
        call = self._agent_call(session, record.parent_tool_use_id)
        if call is not None:
            _add_run(call, record)

    def _notified(
        self, session: Session, notifications: Iterable[TaskNotification], ts: float
    ) -> None:
        """Claude Code's task notifications: the background Agent calls they name end."""
        for n in notifications:
            tool_use_id = n.tool_use_id or session.agents.get(n.task_id or "")
            call = session.background_agents.pop(tool_use_id or "", None)
            if call is None:
                continue
            call.result_at = max(ts, call.requested_at or ts)
            call.outcome = "ok" if n.status in (None, "completed") else "error"
            if call.outcome == "error":
                session.tool_failures += 1
            self._emit_tool_result(session, call)
            self._closed(session, call)

    def _on_tool_use(self, event: ToolUseSeen) -> None:
        entry = self._by_exchange.get(event.exchange_id)
        if entry is None:
            return
        session, record = entry
        tu = event.tool_use
        record.tool_uses.append((tu.id, tu.name))
        pending = session.pending_tools
        if tu.id in pending:
            return  # a retried response repeating the same tool_use id
        call = ToolCall(
            tool_use_id=tu.id,
            name=tu.name,
            session_id=session.session_id,
            turn_index=record.turn_index,
            request_exchange=record.exchange_id,
            summary=tool_input_summary(tu.name, tu.input),
            seen_at=event.ts,
            subagent=record.kind == "subagent",
        )
        if tu.name in AGENT_TOOLS and isinstance(tu.input, dict):
            prompt = tu.input.get("prompt")
            if isinstance(prompt, str):
                call.task_key = task_key(prompt)
            self._adopt_orphans(session, call)
        pending[tu.id] = call
        session.tool_call_count += 1
        session.tools[tu.name] += 1
        turn = self._turn(session, record.turn_index)
        if turn is not None:
            turn.tool_calls += 1
            if tu.name in AGENT_TOOLS:
                turn.agent_calls.append(call)
        self._emit_tool_use(session, call)
        early = self._early_results.get(session.session_id)
        if early and tu.id in early:
            result_ts, is_error = early.pop(tu.id)
            self._close_call(session, call, result_ts, is_error)

    def _close_tool_calls(self, session: Session, req: ParsedRequest, ts: float) -> None:
        pending = session.pending_tools
        for ref in req.tool_results:
            call = pending.get(ref.tool_use_id)
            if call is not None and ref.agent_id and call.agent_id != ref.agent_id:
                self._tie_agent(session, call, ref.agent_id)
            if call is not None and ref.launched and not ref.is_error:
                # A background run: this result only acknowledges the launch; the call
                # lasts until Claude Code's task notification names it.
                call.background = True
                call.launched_at = ts
                if call.requested_at is None:
                    call.requested_at = min(call.seen_at, ts)
                session.background_agents[call.tool_use_id] = pending.pop(call.tool_use_id)
                continue
            if call is None:
                # A core lagging past the hold saw the result before the tool_use block:
                # kept (bounded) until the block shows up, then the call closes at once.
                early = self._early_results.setdefault(session.session_id, {})
                _remember(early, ref.tool_use_id, (ts, ref.is_error), EARLY_RESULTS_KEPT)
                continue
            if call.result_at is None:
                self._close_call(session, call, ts, ref.is_error)

    def _close_call(self, session: Session, call: ToolCall, ts: float, is_error: bool) -> None:
        if call.requested_at is None:
            # The tool_result overtook the end of the response that asked for it (the
            # two travel on different side streams): the tool_use block's end is as close.
            call.requested_at = min(call.seen_at, ts)
        # Arrival times of two side streams can be skewed by a few ms: never negative.
        call.result_at = max(ts, call.requested_at)
        call.outcome = "error" if is_error else "ok"
        if is_error:
            session.tool_failures += 1
        self._emit_tool_result(session, call)
        # Done calls leave the pending map; the listeners have their copy.
        del session.pending_tools[call.tool_use_id]
        self._closed(session, call)

    def _closed(self, session: Session, call: ToolCall) -> None:
        closed = self._closed_tools.setdefault(session.session_id, {})
        _remember(closed, call.tool_use_id, None, CLOSED_TOOLS_KEPT)
        if call.name in AGENT_TOOLS:
            agents = self._closed_agents.setdefault(session.session_id, {})
            _remember(agents, call.tool_use_id, call, AGENTS_KEPT)

    # -- responses -----------------------------------------------------------------
    def _on_response(self, event: ResponseStarted) -> None:
        entry = self._by_exchange.get(event.exchange_id)
        if entry is None:
            return
        session, record = entry
        record.response_started_at = event.ts
        record.status = event.status
        record.request_id = event.request_id
        self._signal("response_started", session, record, event.quota, event.ts)

    def _on_finished(self, event: ExchangeFinished) -> None:
        entry = self._by_exchange.pop(event.exchange_id, None)
        self._hints.pop(event.exchange_id, None)
        if entry is None:
            return
        session, record = entry
        result = event.result
        record.ended_at = event.ts
        record.status = event.status if event.status is not None else record.status
        record.model_responded = result.model
        record.message_id = result.message_id
        record.stop_reason = result.stop_reason
        # A request we could not parse is the root cause of whatever the upstream said,
        # unless nothing reached the upstream (Envoy answered for it before it had the
        # whole body).
        if event.error_type == UPSTREAM_UNREACHABLE:
            record.error_type = event.error_type
        else:
            record.error_type = record.error_type or event.error_type
        record.observed = event.observed
        if event.observed == "none":
            self.unobserved_requests += 1
        elif event.observed == "partial":
            self.partial_requests += 1
        reported = tokens_of(result)
        if self.signals.drift.implausible(
            session, result.model or record.model_requested, reported
        ):
            # Counts no model allows (a forged or garbled stream): never in the totals.
            self.implausible_usage += 1
            reported = TokenCounts()
        if event.error_type is not None and not _counted_anyway(session, result):
            # The stream failed after reporting usage: Claude Code resends and bills only
            # the resend, so this attempt's usage is kept apart, never in the totals.
            record.aborted_tokens = reported
            session.aborted_tokens.add(reported)
        else:
            record.tokens = reported
            session.tokens.add(record.tokens)
        session.in_flight.discard(event.exchange_id)
        self._touch(session, event.ts)
        # The tool ran from the end of the response that asked for it.
        pending = session.pending_tools
        for tool_id, _ in record.tool_uses:
            call = pending.get(tool_id)
            if call is not None and call.requested_at is None:
                call.requested_at = event.ts
        turn = self._turn(session, record.turn_index)
        if turn is not None:
            turn.tokens.add(record.tokens)
            if record.kind in TURN_KINDS:
                turn.segments.append(
                    Segment(
                        record.started_at,
                        max(event.ts, record.started_at),
                        first_token=record.first_token_at,
                        failed=record.error_type is not None,
                        asked_tools=bool(record.tool_uses),
                    )
                )
        self._signal("exchange_finished", session, record, turn, result)
        if record.retry and record.error_type is None:
            self._recovered(session, record)
        if record.parent_tool_use_id is not None:
            self._roll_up(session, record)
        if turn is not None and record.kind in TURN_KINDS:
            turn.end_unseen = record.observed != "full"
        completes = False
        if record.observed != "full":
            pass  # no verdict: neither an error nor the end of its turn (outcome partial...)
        elif record.error_type is not None:
            session.errors += 1
            if turn is not None:
                turn.errors += 1
        elif record.kind in TURN_KINDS:
            if record.kind == "main" and result.text:
                session.last_text = summarize_text(result.text)
            if turn is not None and result.stop_reason != "tool_use":
                turn.stop_reason = result.stop_reason
                if turn.outcome == "completed" and turn.ended_at is not None:
                    turn.ended_at = max(turn.ended_at, event.ts)  # a re-asked compaction
                    turn.time = self._time_of(session, turn, turn.ended_at)
                completes = True
        # The request is told first: whoever hears the turn end has its last request.
        self._emit_request_finished(session, record)
        if turn is not None and completes:
            self._end_turn(session, turn, event.ts, "completed")
        if (
            turn is not None
            and turn.outcome == "in_progress"
            and turn is not session.turns[-1]
            and not self._turn_in_flight(session, turn)
        ):
            # A newer turn started while this one's last request was in flight.
            self._end_turn(session, turn, event.ts, "interrupted")
        self._changed(session)

    # -- time ----------------------------------------------------------------------
    def tick(self) -> None:
        """Move sessions to idle / ended and close abandoned turns; call every second."""
        now = self.clock.now()
        if self._held:
            self._release(now)
        for session in list(self.sessions.values()):
            if session.in_flight:
                continue
            quiet = now - session.last_activity_at
            if session.status == "active" and quiet >= self.idle_timeout:
                session.status = "idle"
                turn = session.current_turn
                if turn is not None:
                    self._end_turn(session, turn, now, "abandoned")
                self._refresh_state(session)
                self._emit_status_changed(session, "active")
                self._changed(session)
            if session.status == "idle" and quiet >= self.end_timeout:
                self._end_session(session, now)
                self._forget(session)

    def _forget(self, session: Session) -> None:
        """Ended sessions leave memory; the store keeps their history."""
        self.sessions.pop(session.session_id, None)
        self._recent.pop(session.session_id, None)
        self._early_results.pop(session.session_id, None)
        self._closed_tools.pop(session.session_id, None)
        self._closed_agents.pop(session.session_id, None)

    # -- queries -------------------------------------------------------------------
    def request_of(self, exchange_id: int) -> RequestRecord | None:
        """The request of an exchange in flight."""
        entry = self._by_exchange.get(exchange_id)
        return entry[1] if entry is not None else None

    def recent_requests(self, session_id: str) -> list[RequestRecord]:
        return list(self._recent.get(session_id, ()))

    def pending_tools(self, session_id: str) -> list[ToolCall]:
        session = self.sessions.get(session_id)
        return list(session.pending_tools.values()) if session else []

    def shutdown(self) -> None:
        """Core stopping: requests still in flight get their verdict, `incomplete` (their
        end will not be seen), and are told finished once, so every consumer records the
        same; then what was live ends, so the store does not keep it active."""
        now = self.clock.now()
        for exchange_id, (session, record) in list(self._by_exchange.items()):
            del self._by_exchange[exchange_id]
            session.in_flight.discard(exchange_id)
            record.error_type = record.error_type or INCOMPLETE_REQUEST
            seen_any = record.response_started_at is not None
            record.observed = "partial" if seen_any else "none"
            if seen_any:
                self.partial_requests += 1
            else:
                self.unobserved_requests += 1
            self._emit_request_finished(session, record)
        for session in list(self.sessions.values()):
            self._end_session(session, now)
