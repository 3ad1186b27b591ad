"""WatchHub: tracker callbacks → watch events → per-subscriber bounded queues.

The hub runs inside the tracker's callbacks, so it must never wait: publishing appends to
each subscriber's bounded deque and sets an asyncio.Event. A subscriber that does not keep
up loses the newest events (counted) and later receives one `lagged` event in their place;
nobody else notices. A short replay ring lets a new subscriber see the last few seconds.

Privacy: events carry names, content-free tool input summaries, counts, timings and the
cleaned first prompt; never tool outputs, file contents, keys or headers.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from clauditor.broadcast.events import (
    EVENTS,
    AlertCleared,
    AlertRaised,
    CacheEvent,
    ContextStatus,
    Hello,
    Lagged,
    ModelFallback,
    QuotaStatus,
    RequestEnd,
    RequestError,
    RequestStart,
    SessionActive,
    SessionEnd,
    SessionIdle,
    SessionNamed,
    SessionStart,
    StateChanged,
    ToolResult,
    ToolUse,
    TurnEnd,
    TurnStart,
    Usage,
    Weekly,
)
from clauditor.broadcast.names import display_name
from clauditor.clock import Clock, iso
from clauditor.errors import ClauditorError
from clauditor.money import usd
from clauditor.safetext import utf8_json
from clauditor.sessions.alerts import Alert
from clauditor.sessions.listener import TrackerListener
from clauditor.sessions.models import RequestRecord, Session, TokenCounts, ToolCall, Turn
from clauditor.sessions.tracker import TURN_KINDS

log = logging.getLogger(__name__)

EVENT_TYPES = tuple(EVENTS)  # broadcast/events.py: one schema per type
PROMPT_LIMIT = 200
# A quota_status goes out when the quota changes, and at most this often for the weekly
# token count alone (it moves with every response).
WEEKLY_EVERY = 10.0


class HubFull(ClauditorError):
    """Too many subscribers: the core protects itself rather than fan out without bound."""


@dataclass(slots=True)
class WatchEvent:
    seq: int
    type: str
    session_id: str | None
    mono: float  # monotonic publish time, for the replay window
    payload: dict[str, Any]
    _wire: bytes | None = None

    def wire(self) -> bytes:
        """The SSE frame, encoded once however many subscribers receive it."""
        if self._wire is None:
            # utf8_json: a lone surrogate from a prompt becomes U+FFFD, not an error.
            body = utf8_json(self.payload, separators=(",", ":"))
            self._wire = b"data: " + body + b"\n\n"
        return self._wire

    def replayed(self) -> WatchEvent:
        return WatchEvent(
            self.seq, self.type, self.session_id, self.mono, {**self.payload, "replay": True}
        )


class Subscription:
    """One subscriber's bounded queue. Only the hub writes; only the subscriber reads."""

    def __init__(
        self,
        session_id: str | None,
        maxsize: int,
        lagged: Callable[[int, str | None], WatchEvent],
    ) -> None:
        self.session_id = session_id
        self.maxsize = maxsize
        self._lagged = lagged
        self._queue: deque[WatchEvent] = deque()
        self._ready = asyncio.Event()
        self.missed = 0  # dropped since the last take()
        self.missed_total = 0
        self.delivered = 0

    def wants(self, event: WatchEvent) -> bool:
        # Global events (hello, quota, lagged) go to everyone.
        return (
            self.session_id is None
            or event.session_id is None
            or event.session_id == self.session_id
        )

    def offer(self, event: WatchEvent) -> None:
        if len(self._queue) >= self.maxsize:
            self.missed += 1
            self.missed_total += 1
            return
        self._queue.append(event)
        self._ready.set()

    def preload(self, events: Iterable[WatchEvent]) -> None:
        """The snapshot: not counted against maxsize, it is what the subscriber asked for."""
        self._queue.extend(events)
        if self._queue:
            self._ready.set()

    @property
    def pending(self) -> int:
        return len(self._queue)

    def take(self) -> list[WatchEvent]:
        items = list(self._queue)
        self._queue.clear()
        self._ready.clear()
        if self.missed:
            # The queue only shrinks here, so the gap sits exactly after these items.
            items.append(self._lagged(self.missed, self.session_id))
            self.missed = 0
        self.delivered += len(items)
        return items

    async def next_batch(self, timeout: float) -> list[WatchEvent]:
        """Everything queued; waits up to timeout for the first event ([] on timeout)."""
        if not self._queue and not self.missed:
            try:
                await asyncio.wait_for(self._ready.wait(), timeout)
            except asyncio.TimeoutError:
                return []
        return self.take()


@dataclass(slots=True)
class _Aux:
    """What the hub remembers per live session beyond the tracker's own state."""

    announced: bool = False
    name: str | None = None  # the display name last announced
    last_tool: str | None = None
    last_summary: str | None = None


class QuotaSource(Protocol):
    """The signal engine's global views (clauditor.sessions.signals.engine)."""

    def quota_view(self) -> dict[str, Any] | None: ...
    def weekly_view(self) -> dict[str, Any]: ...


def _usage(tokens: TokenCounts) -> Usage:
    return Usage(
        input_tokens=tokens.input,
        output_tokens=tokens.output,
        cache_read_tokens=tokens.cache_read,
        cache_creation_tokens=tokens.cache_creation,
    )


def _cap(text: str | None, limit: int = PROMPT_LIMIT) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


class WatchHub(TrackerListener):
    def __init__(
        self,
        clock: Clock,
        *,
        sessions: Callable[[], Mapping[str, Session]] | None = None,
        quota: QuotaSource | None = None,
        replay_seconds: float = 5.0,
        replay_max: int = 2000,
        queue_size: int = 1000,
        heartbeat: float = 15.0,
        max_subscribers: int = 256,
        version: str = "",
        prompts: bool = True,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.clock = clock
        self._sessions = sessions or (lambda: {})
        self._quota = quota
        self.replay_seconds = replay_seconds
        self.queue_size = queue_size
        self.heartbeat = heartbeat
        self.max_subscribers = max_subscribers
        self.version = version
        self.prompts = prompts  # False: --no-prompts, the first prompt stays private
        self._mono = monotonic
        self._ring: deque[WatchEvent] = deque(maxlen=replay_max)
        self._subs: set[Subscription] = set()
        self._aux: dict[str, _Aux] = {}
        self._seq = 0
        self._quota_key: tuple[Any, ...] | None = None
        self._quota_sent_at = 0.0
        self._quota_tokens: Any = None
        self.published = 0
        self.subscribed_total = 0

    # -- publishing ----------------------------------------------------------------
    def _event(
        self, type_: str, session_id: str | None, ts: float | None, fields: Mapping[str, Any]
    ) -> WatchEvent:
        payload = {
            "type": type_,
            "session_id": session_id,
            "ts": iso(ts if ts is not None else self.clock.now()),
            "seq": self._seq,
            **fields,
        }
        return WatchEvent(self._seq, type_, session_id, self._mono(), payload)

    def publish(
        self, type_: str, session_id: str | None, ts: float | None, fields: Mapping[str, Any]
    ) -> WatchEvent:
        """One event: `fields` is the events.py class of its type (the checker holds the
        keys and types to it; tests/watch/test_events.py checks the pairing)."""
        self._seq += 1
        event = self._event(type_, session_id, ts, fields)
        self.published += 1
        ring = self._ring
        ring.append(event)
        cutoff = event.mono - self.replay_seconds
        while ring and ring[0].mono < cutoff:
            ring.popleft()
        for sub in self._subs:
            if sub.wants(event):
                sub.offer(event)
        return event

    def _lagged(self, missed: int, session_id: str | None) -> WatchEvent:
        return self._event("lagged", None, None, Lagged(missed=missed, for_session=session_id))

    # -- subscribers ---------------------------------------------------------------
    def subscribe(self, session_id: str | None = None) -> Subscription:
        """Register a subscriber and preload its snapshot, in one synchronous step so no
        event falls between the snapshot and the live stream."""
        if len(self._subs) >= self.max_subscribers:
            raise HubFull(f"{len(self._subs)} watch subscribers already")
        sub = Subscription(session_id, self.queue_size, self._lagged)
        sessions = self._sessions()
        if session_id is None:
            targets = list(sessions.values())
        else:
            live = sessions.get(session_id)
            targets = [live] if live is not None else []
        snapshot = [
            self._event(
                "hello",
                None,
                None,
                Hello(
                    version=self.version,
                    live=sorted(sessions),
                    for_session=session_id,
                    replay_seconds=self.replay_seconds,
                ),
            )
        ]
        # Late joiners get the header and prompt from the live state.
        snapshot += [
            self._event("session_start", s.session_id, None, self._session_fields(s, True))
            for s in targets
        ]
        quota = self._quota_fields()
        if quota is not None:
            snapshot.append(self._event("quota_status", None, None, quota))
        announced = {s.session_id for s in targets}
        cutoff = self._mono() - self.replay_seconds
        snapshot += [
            e.replayed()
            for e in self._ring
            if e.mono >= cutoff
            and sub.wants(e)
            and e.type not in ("quota_status", "lagged")
            and not (e.type == "session_start" and e.session_id in announced)
        ]
        sub.preload(snapshot)
        self._subs.add(sub)
        self.subscribed_total += 1
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subs.discard(sub)

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    def stats(self) -> dict[str, Any]:
        try:  # every live task of the core's loop: disconnects must not leave any behind
            tasks: int | None = len(asyncio.all_tasks())
        except RuntimeError:
            tasks = None
        return {
            "asyncio_tasks": tasks,
            "subscribers": len(self._subs),
            "subscribed_total": self.subscribed_total,
            "published": self.published,
            "dropped_now": sum(s.missed_total for s in self._subs),
            "queued_max": max((s.pending for s in self._subs), default=0),
            "replay_ring": len(self._ring),
        }

    # -- session bookkeeping -------------------------------------------------------
    def _aux_of(self, session: Session) -> _Aux:
        aux = self._aux.get(session.session_id)
        if aux is None:
            aux = self._aux[session.session_id] = _Aux()
        return aux

    def _ensure(self, session: Session) -> _Aux:
        """Announce a session on its first callback with content (model and prompt are
        set after session_started fires)."""
        aux = self._aux_of(session)
        if not aux.announced:
            aux.announced = True
            fields = self._session_fields(session, False)
            aux.name = fields["name"]
            self.publish("session_start", session.session_id, session.started_at, fields)
        else:
            prompt = session.first_prompt if self.prompts else None
            name = display_name(prompt, session.session_id)
            if name != aux.name:
                # Announced before its prompt was known: the rows and panes that show the
                # short id take the name now.
                aux.name = name
                self.publish(
                    "session_named",
                    session.session_id,
                    session.last_activity_at,
                    SessionNamed(name=name, prompt=_cap(prompt), model=session.model),
                )
        return aux

    def _session_fields(self, session: Session, synthetic: bool) -> SessionStart:
        aux = self._aux.get(session.session_id) or _Aux()
        sig = session.signals
        line = sig.main_line(session.model)
        pending = [c for c in session.pending_tools.values() if c.outcome == "pending"]
        last_tool, last_summary = aux.last_tool, aux.last_summary
        if last_tool is None and pending:
            last_tool, last_summary = pending[-1].name, pending[-1].summary
        prompt = session.first_prompt if self.prompts else None
        return SessionStart(
            synthetic=synthetic,
            name=display_name(prompt, session.session_id),
            model=session.model,
            prompt=_cap(prompt),
            status=session.status,
            started_at=iso(session.started_at),
            last_activity_at=iso(session.last_activity_at),
            entrypoint=session.entrypoint,
            turn=session.turn_count,
            turn_in_progress=session.current_turn is not None,
            requests=session.request_count,
            tool_calls=session.tool_call_count,
            tool_failures=session.tool_failures,
            errors=session.errors,
            in_flight=len(session.in_flight),
            pending_tools=len(pending),
            last_tool=last_tool,
            last_tool_summary=last_summary,
            usage=_usage(session.tokens),
            cost_usd=usd(sig.cost_usd),
            unpriced_requests=sig.unpriced_requests,
            verified=not session.unverified_reasons,
            unverified_reasons=list(session.unverified_reasons),
            prompts=session.prompt_count,
            state=session.state,
            state_since=iso(session.state_since),
            state_source=session.state_source,
            waiting_for=session.waiting_for,
            state_tool=session.state_tool,
            project=session.project,
            cwd=session.registry.cwd if session.registry else None,
            claude_name=session.registry.name if session.registry else None,
            tmux_pane=session.registry.tmux_pane if session.registry else None,
            context_fill=sig.context_fill,
            turns_to_compact=sig.turns_to_compact,
            cache_status=sig.cache_status,
            cache_expires_at=iso(line.expires_at) if line else None,
            cache_rebuild_cost_usd=usd(line.rebuild_cost_usd) if line else None,
            fallbacks=sig.fallbacks,
            fallback_from=sig.fallback_from,
            fallback_to=sig.fallback_to,
        )

    # -- TrackerListener -----------------------------------------------------------
    def session_started(self, session: Session) -> None:
        self._aux_of(session)  # announced on the next callback, once model/prompt are set

    def session_changed(self, session: Session) -> None:
        if session.status == "ended" and session.session_id not in self._aux:
            return  # right after session_end: do not announce it again
        self._ensure(session)

    def turn_started(self, session: Session, turn: Turn) -> None:
        self._ensure(session)
        self.publish(
            "turn_start",
            session.session_id,
            turn.started_at,
            TurnStart(
                turn=turn.index,
                trigger=turn.trigger,
                compaction=turn.compaction,
                model=session.model,
            ),
        )

    def turn_ended(self, session: Session, turn: Turn) -> None:
        # Its last request_end (and that request's cost) went out before this.
        self._ensure(session)
        self.publish(
            "turn_end",
            session.session_id,
            turn.ended_at,
            TurnEnd(
                turn=turn.index,
                outcome=turn.outcome,
                stop_reason=turn.stop_reason,
                duration_ms=turn.duration_ms,
                usage=_usage(turn.tokens),
                cost_usd=usd(turn.cost_usd),
                session_cost_usd=usd(session.signals.cost_usd),
                unpriced_requests=turn.unpriced_requests,
                trigger=turn.trigger,
                requests=turn.requests,
                tool_calls=turn.tool_calls,
                errors=turn.errors,
                time=None if turn.time is None else {str(k): v for k, v in turn.time.items()},
            ),
        )

    def request_started(self, session: Session, request: RequestRecord) -> None:
        self._ensure(session)
        self.publish(
            "request_start",
            session.session_id,
            request.started_at,
            RequestStart(
                turn=request.turn_index,
                kind=request.kind,
                model=request.model_requested,
                retry=request.retry,
                in_flight=len(session.in_flight),
            ),
        )

    def tool_use(self, session: Session, call: ToolCall) -> None:
        aux = self._ensure(session)
        if not call.subagent:
            aux.last_tool, aux.last_summary = call.name, call.summary
        self.publish(
            "tool_use",
            session.session_id,
            call.seen_at,
            ToolUse(
                tool=call.name,
                summary=call.summary,
                tool_use_id=call.tool_use_id,
                turn=call.turn_index,
                subagent=call.subagent,
                pending_tools=self._pending(session, None),
            ),
        )

    def tool_result(self, session: Session, call: ToolCall) -> None:
        self._ensure(session)
        self.publish(
            "tool_result",
            session.session_id,
            call.result_at,
            ToolResult(
                tool=call.name,
                tool_use_id=call.tool_use_id,
                outcome=call.outcome,
                duration_ms=call.duration_ms,
                turn=call.turn_index,
                subagent=call.subagent,
                background=call.background,
                pending_tools=self._pending(session, call),
            ),
        )

    @staticmethod
    def _pending(session: Session, done: ToolCall | None) -> int:
        return sum(
            1 for c in session.pending_tools.values() if c.outcome == "pending" and c is not done
        )

    def request_finished(self, session: Session, request: RequestRecord) -> None:
        # Signals (cost, cache, context, fallback) were computed before listeners ran.
        self._ensure(session)
        sid, ts = session.session_id, request.ended_at
        sig, totals = request.signals, session.signals
        model = request.model_responded or request.model_requested
        # request_id: Anthropic's, to quote to their support
        self.publish(
            "request_end",
            sid,
            ts,
            RequestEnd(
                request_id=request.request_id,
                turn=request.turn_index,
                kind=request.kind,
                model=model,
                status=request.status,
                stop_reason=request.stop_reason,
                duration_ms=request.duration_ms,
                ttft_ms=request.ttft_ms,
                usage=_usage(request.tokens),
                cost_usd=usd(sig.cost_usd),
                aborted_cost_usd=usd(sig.aborted_cost_usd),
                session_cost_usd=usd(totals.cost_usd),
                unpriced_requests=totals.unpriced_requests,
                verified=not session.unverified_reasons,
                unverified_reasons=list(session.unverified_reasons),
                in_flight=len(session.in_flight),
                error_type=request.error_type,
                outcome=request.outcome,
                retry=request.retry,
            ),
        )
        if request.error_type is not None:
            self.publish(
                "request_error",
                sid,
                ts,
                RequestError(
                    error_type=request.error_type,
                    category=sig.error_category,
                    status=request.status,
                    kind=request.kind,
                    turn=request.turn_index,
                    model=model,
                    errors=session.errors,
                ),
            )
        if sig.fallback:
            self.publish(
                "model_fallback",
                sid,
                ts,
                ModelFallback(
                    requested=sig.fallback_requested or request.model_requested,
                    actual=sig.fallback_actual or request.model_responded,
                    fallback_kind=sig.fallback_kind,
                    turn=request.turn_index,
                    kind=request.kind,
                    fallbacks=totals.fallbacks,
                ),
            )
        main = request.kind in TURN_KINDS
        if main and sig.cache_status is not None:
            self.publish(
                "cache_event",
                sid,
                ts,
                CacheEvent(
                    status=sig.cache_status,
                    ttl_seconds=sig.cache_ttl_seconds,
                    expires_at=iso(sig.cache_expires_at),
                    rebuild_cost_usd=usd(sig.cache_rebuild_cost_usd),
                    miss_waste_usd=usd(sig.cache_miss_waste_usd),
                    cache_read_tokens=request.tokens.cache_read,
                    cache_creation_tokens=request.tokens.cache_creation,
                    turn=request.turn_index,
                ),
            )
        if request.kind == "main" and sig.context_fill is not None:
            self.publish(
                "context_status",
                sid,
                ts,
                ContextStatus(
                    fill=round(sig.context_fill, 4),
                    context_window=sig.context_window,
                    context_tokens=request.tokens.total_input,
                    turns_to_compact=totals.turns_to_compact,
                    compaction_threshold=totals.compaction_threshold,
                    turn=request.turn_index,
                ),
            )
        self._check_quota(ts)

    def _quota_fields(self) -> QuotaStatus | None:
        if self._quota is None:
            return None
        try:
            quota, weekly = self._quota.quota_view(), self._quota.weekly_view()
        except Exception:
            log.exception("reading the quota state failed")
            return None
        if quota is None and not weekly.get("tokens"):
            return None
        quota = quota or {}
        return QuotaStatus(
            status=quota.get("status"),
            reset_at=quota.get("reset_at"),
            representative_claim=quota.get("representative_claim"),
            windows=quota.get("windows") or {},
            retry_after_seconds=quota.get("retry_after_seconds"),
            weekly=Weekly(
                tokens=weekly.get("tokens"),
                budget=weekly.get("budget"),
                used_fraction=weekly.get("used_fraction"),
                resets_at=weekly.get("resets_at"),
                projected_exhaustion_at=weekly.get("projected_exhaustion_at"),
                exhausted=weekly.get("exhausted"),
            ),
        )

    def _check_quota(self, ts: float | None) -> None:
        fields = self._quota_fields()
        if fields is None:
            return
        weekly = fields["weekly"]
        fraction = weekly.get("used_fraction")
        key = (
            fields["status"],
            json.dumps(fields["windows"], sort_keys=True),
            round(fraction, 2) if isinstance(fraction, float) else None,
            weekly.get("exhausted"),
        )
        now = self._mono()
        if key == self._quota_key and now - self._quota_sent_at < WEEKLY_EVERY:
            return
        if key == self._quota_key and weekly.get("tokens") == self._quota_tokens:
            return
        self._quota_key, self._quota_sent_at = key, now
        self._quota_tokens = weekly.get("tokens")
        self.publish("quota_status", None, ts, fields)

    def alert(self, alert: Alert) -> None:
        """An AlertEngine sink: one `alert` event per episode."""
        self.publish(
            "alert",
            alert.session_id,
            alert.at,
            AlertRaised(kind=alert.kind, reason=alert.reason, evidence=alert.evidence),
        )

    def alert_cleared(self, alert: Alert) -> None:
        """The alert's episode is over (the session stopped waiting, the quota fell...)."""
        self.publish(
            "alert_cleared", alert.session_id, self.clock.now(), AlertCleared(kind=alert.kind)
        )

    def state_changed(self, session: Session, previous: str) -> None:
        if session.status == "ended" and session.session_id not in self._aux:
            return  # right after session_end: do not announce it again
        self._ensure(session)
        self.publish(
            "state_changed",
            session.session_id,
            session.state_since,
            StateChanged(
                state=session.state,
                previous=previous,
                source=session.state_source,
                waiting_for=session.waiting_for,
                tool=session.state_tool,
                project=session.project,
                tmux_pane=session.registry.tmux_pane if session.registry else None,
            ),
        )

    def status_changed(self, session: Session, previous: str) -> None:
        self._ensure(session)
        sid, now = session.session_id, self.clock.now()
        if session.status == "idle":
            self.publish(
                "session_idle",
                sid,
                now,
                SessionIdle(
                    previous=previous,
                    last_activity_at=iso(session.last_activity_at),
                    idle_seconds=round(now - session.last_activity_at, 3),
                ),
            )
        elif session.status == "ended":
            self.publish(
                "session_end",
                sid,
                session.ended_at or now,
                SessionEnd(
                    previous=previous,
                    turns=session.prompt_count,
                    turns_all=session.turn_count,
                    requests=session.request_count,
                    tool_calls=session.tool_call_count,
                    errors=session.errors,
                    usage=_usage(session.tokens),
                    cost_usd=usd(session.signals.cost_usd),
                    duration_ms=round(((session.ended_at or now) - session.started_at) * 1000, 3),
                ),
            )
            self._aux.pop(sid, None)  # the tracker forgets it too
        else:
            self.publish("session_active", sid, now, SessionActive(previous=previous))
