"""WatchState: what `clauditor watch` knows, folded from /watch events. Pure: no I/O, no
clock (event times come from the events, "now" is the renderer's argument)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from clauditor.broadcast.names import display_name
from clauditor.clock import parse_iso
from clauditor.safetext import terminal_safe
from clauditor.sessions.timing import TIME_PARTS, TimePart

FEED_MAX = 300
# Feed lines for one session view keep their own, longer history.
SESSION_FEED_MAX = 500
GROUPS = ("needs_you", "working", "your_turn", "idle", "ended")
# The core's session states (sessions.state.STATES) and the dot each shows.
STATE_ACTIVITY = {
    "needs_you": "needs-you",
    "working": "active",
    "tool": "waiting-on-tool",
    "your_turn": "your-turn",
    "idle": "idle",
    "ended": "ended",
}


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _int(value: Any, default: int = 0) -> int:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else default


TURN_TIMES_KEPT = 20


@dataclass(frozen=True, slots=True)
class TurnTime:
    """One ended turn's time breakdown as /watch sent it (sessions.timing)."""

    turn: int
    duration_ms: float | None
    parts: dict[TimePart, float]


@dataclass
class SessionView:
    session_id: str
    order: int  # first-seen order: rows do not jump around
    name: str = ""
    model: str | None = None
    prompt: str | None = None
    status: str = "active"  # active | idle | ended (the core's)
    started_at: float | None = None
    last_event_at: float | None = None
    ended_at: float | None = None
    turn: int = 0
    turn_in_progress: bool = False
    in_flight: int = 0
    pending_tools: int = 0
    last_tool: str | None = None
    last_tool_summary: str | None = None
    tool_calls: int = 0
    context_fill: float | None = None
    turns_to_compact: int | None = None
    cache_status: str | None = None
    cache_expires_at: float | None = None
    cache_rebuild_cost_usd: float | None = None
    cost_usd: float | None = None
    unpriced_requests: int = 0  # cost_usd leaves these out: their model is not in the catalog
    unverified_reasons: list[str] = field(default_factory=list)  # drift: see README
    fallbacks: int = 0
    fallback_from: str | None = None
    fallback_to: str | None = None
    errors: int = 0
    last_error: str | None = None
    output_tokens: int = 0
    tool_failures: int = 0
    # The core's one state (sessions.state) and where the session runs (Claude Code's
    # registry): None from a core that does not send them.
    state: str | None = None
    state_since: float | None = None
    waiting_for: str | None = None
    state_tool: str | None = None
    project: str | None = None
    tmux_pane: str | None = None
    # The newest ended turns' time breakdowns (turn_end `time`), by turn number.
    turn_times: dict[int, TurnTime] = field(default_factory=dict)

    @property
    def activity(self) -> str:
        """The dashboard's dot: needs-you, active, waiting-on-tool, your-turn, idle, ended."""
        if self.status in ("ended", "idle"):
            return self.status
        if self.state is not None:
            return STATE_ACTIVITY.get(self.state, "active")
        if self.pending_tools > 0 and self.in_flight == 0:
            return "waiting-on-tool"
        return "active"

    @property
    def group(self) -> str:
        """The dashboard group (most urgent first): needs_you, working, your_turn, idle,
        ended."""
        activity = self.activity
        if activity in ("active", "waiting-on-tool"):
            return "working"
        return {"needs-you": "needs_you", "your-turn": "your_turn"}.get(activity, activity)


@dataclass
class Connection:
    state: str = "connecting"  # connecting | connected | reconnecting
    attempt: int = 0
    retry_in: float | None = None
    error: str | None = None
    since: float | None = None  # when this state began (local time, from the client)
    core_version: str | None = None


@dataclass
class WatchState:
    session_filter: str | None = None
    sessions: dict[str, SessionView] = field(default_factory=dict)
    quota: dict[str, Any] | None = None
    feed: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=FEED_MAX))
    connection: Connection = field(default_factory=Connection)
    lagged_total: int = 0
    # Exchanges whose end the core never saw (Envoy reset their side stream while it
    # lagged): request_end with outcome unobserved / partial.
    unobserved_total: int = 0
    events_seen: int = 0
    # Open alerts by (kind, session id): shown until the core says the episode ended.
    alerts: dict[tuple[str, str | None], dict[str, Any]] = field(default_factory=dict)
    # Sessions this connection's snapshot already brought up to date: their replayed
    # events are older than the snapshot and only go to the feed.
    _fresh: set[str] = field(default_factory=set)
    _seen_order: deque[tuple[Any, ...]] = field(default_factory=deque)
    _seen: set[tuple[Any, ...]] = field(default_factory=set)

    def __post_init__(self) -> None:
        if self.session_filter is not None:
            self.feed = deque(maxlen=SESSION_FEED_MAX)

    # -- queries -------------------------------------------------------------------
    def ordered(self) -> list[SessionView]:
        """By group, most urgent first (needs you, working, your turn, idle, ended), then
        in first-seen order: rows do not jump around within a group."""
        return sorted(self.sessions.values(), key=lambda s: (GROUPS.index(s.group), s.order))

    def session(self, session_id: str) -> SessionView | None:
        return self.sessions.get(session_id)

    # -- fold ----------------------------------------------------------------------
    def apply(self, event: dict[str, Any]) -> None:
        # Everything the dashboard, a session view or a pane title shows comes from here:
        # text from the wire loses its escape sequences before it can reach a terminal.
        event = terminal_safe(event)
        kind = event.get("type")
        if not isinstance(kind, str):
            return
        self.events_seen += 1
        if kind == "connection":
            self._connection(event)
            return
        if kind == "hello":
            self._hello(event)
            return
        sid = event.get("session_id")
        replay = bool(event.get("replay"))
        if self.session_filter is not None and sid not in (None, self.session_filter):
            return
        if kind == "quota_status":
            self.quota = {k: v for k, v in event.items() if k not in ("type", "session_id")}
            return
        if kind == "lagged":
            self.lagged_total += _int(event.get("missed"))
            self._feed(event)
            return
        if kind in ("alert", "alert_cleared"):
            key = (str(event.get("kind")), sid if isinstance(sid, str) else None)
            if kind == "alert":
                self.alerts[key] = event
                self._feed(event)
            else:
                self.alerts.pop(key, None)
            return
        if not isinstance(sid, str):
            return
        if kind == "session_start":
            self._session_start(sid, event)
            if not event.get("synthetic"):
                self._feed(event)
            return
        view = self.sessions.get(sid)
        if view is None:
            # Joined mid-session without a snapshot (it was not live when we subscribed).
            view = self._new(sid)
        if kind == "turn_end":
            # Idempotent by turn number: replayed and history turns fill it too.
            self._turn_time(view, event)
        if not (replay and sid in self._fresh):
            self._fold(view, kind, event)
        self._feed(event)

    @staticmethod
    def _turn_time(view: SessionView, e: dict[str, Any]) -> None:
        time, turn = e.get("time"), e.get("turn")
        if not isinstance(time, dict) or not isinstance(turn, int):
            return
        parts = {p: _num(time.get(p)) or 0.0 for p in TIME_PARTS}
        view.turn_times[turn] = TurnTime(turn, _num(e.get("duration_ms")), parts)
        while len(view.turn_times) > TURN_TIMES_KEPT:
            del view.turn_times[min(view.turn_times)]

    def _new(self, sid: str) -> SessionView:
        view = SessionView(sid, order=len(self.sessions), name=display_name(None, sid))
        self.sessions[sid] = view
        return view

    def _connection(self, event: dict[str, Any]) -> None:
        c = self.connection
        state = str(event.get("state") or "connecting")
        if state != c.state:
            c.since = _num(event.get("at"))
        c.state = state
        c.attempt = _int(event.get("attempt"))
        c.retry_in = _num(event.get("retry_in"))
        c.error = event.get("error") if isinstance(event.get("error"), str) else None

    def _hello(self, event: dict[str, Any]) -> None:
        self._fresh = set()
        version = event.get("version")
        self.connection.core_version = version if isinstance(version, str) else None
        live = event.get("live")
        if not isinstance(live, list):
            return
        ts = parse_iso(event.get("ts"))
        # After a reconnect: what the core no longer has live has ended while we were away.
        for view in self.sessions.values():
            if view.session_id not in live and view.status != "ended":
                view.status = "ended"
                view.ended_at = ts
                view.in_flight = view.pending_tools = 0
                view.turn_in_progress = False

    def _session_start(self, sid: str, e: dict[str, Any]) -> None:
        view = self.sessions.get(sid) or self._new(sid)
        ts = parse_iso(e.get("ts"))
        view.name = e.get("name") or display_name(e.get("prompt"), sid)
        view.model = e.get("model") or view.model
        view.prompt = e.get("prompt") or view.prompt
        view.status = e.get("status") or "active"
        view.ended_at = None if view.status != "ended" else view.ended_at
        view.started_at = parse_iso(e.get("started_at")) or ts
        view.last_event_at = ts
        view.turn = _int(e.get("turn"), view.turn)
        view.turn_in_progress = bool(e.get("turn_in_progress"))
        view.in_flight = _int(e.get("in_flight"))
        view.pending_tools = _int(e.get("pending_tools"))
        view.last_tool = e.get("last_tool") or view.last_tool
        view.last_tool_summary = e.get("last_tool_summary") or view.last_tool_summary
        view.tool_calls = _int(e.get("tool_calls"), view.tool_calls)
        view.tool_failures = _int(e.get("tool_failures"), view.tool_failures)
        view.errors = _int(e.get("errors"), view.errors)
        self._state(view, e, "state_tool")
        view.project = e.get("project") or view.project
        view.tmux_pane = e.get("tmux_pane") or view.tmux_pane
        view.fallbacks = _int(e.get("fallbacks"), view.fallbacks)
        view.fallback_from = e.get("fallback_from") or view.fallback_from
        view.fallback_to = e.get("fallback_to") or view.fallback_to
        self._trust(view, e)
        for attr, key in (
            ("context_fill", "context_fill"),
            ("cost_usd", "cost_usd"),
            ("cache_rebuild_cost_usd", "cache_rebuild_cost_usd"),
        ):
            value = _num(e.get(key))
            if value is not None:
                setattr(view, attr, value)
        if isinstance(e.get("turns_to_compact"), int):
            view.turns_to_compact = e["turns_to_compact"]
        view.cache_status = e.get("cache_status") or view.cache_status
        view.cache_expires_at = parse_iso(e.get("cache_expires_at")) or view.cache_expires_at
        usage = e.get("usage")
        if isinstance(usage, dict):
            view.output_tokens = _int(usage.get("output_tokens"), view.output_tokens)
        if e.get("synthetic"):
            self._fresh.add(sid)

    def _fold(self, view: SessionView, kind: str, e: dict[str, Any]) -> None:
        ts = parse_iso(e.get("ts"))
        if ts is not None:
            view.last_event_at = max(view.last_event_at or ts, ts)
        if kind == "state_changed":
            self._state(view, e, "tool")
            view.project = e.get("project") or view.project
            view.tmux_pane = e.get("tmux_pane") or view.tmux_pane
            if view.state == "ended":
                view.status, view.ended_at = "ended", ts
            elif view.state == "idle":
                view.status = "idle"
            elif view.status != "active":
                view.status, view.ended_at = "active", None
        elif kind == "session_named":
            view.name = e.get("name") or view.name
            view.prompt = e.get("prompt") or view.prompt
            view.model = e.get("model") or view.model
        elif kind == "session_active":
            view.status, view.ended_at = "active", None
        elif kind == "turn_start":
            view.status = "active"
            view.turn = max(view.turn, _int(e.get("turn"), view.turn))
            view.turn_in_progress = True
            view.model = e.get("model") or view.model
        elif kind == "request_start":
            view.status = "active"
            view.in_flight = _int(e.get("in_flight"), view.in_flight + 1)
        elif kind == "tool_use":
            if not e.get("subagent"):
                view.last_tool = e.get("tool") or view.last_tool
                view.last_tool_summary = e.get("summary")
            view.tool_calls += 1
            view.pending_tools = _int(e.get("pending_tools"), view.pending_tools + 1)
        elif kind == "tool_result":
            view.pending_tools = _int(e.get("pending_tools"), max(0, view.pending_tools - 1))
            if e.get("outcome") == "error":
                view.tool_failures += 1
        elif kind == "request_end":
            view.in_flight = _int(e.get("in_flight"), max(0, view.in_flight - 1))
            if e.get("outcome") in ("unobserved", "partial"):
                self.unobserved_total += 1
            self._cost(view, e.get("session_cost_usd"))
            self._trust(view, e)
            usage = e.get("usage")
            if isinstance(usage, dict):
                view.output_tokens += _int(usage.get("output_tokens"))
        elif kind == "turn_end":
            view.turn_in_progress = False
            self._cost(view, e.get("session_cost_usd"))
        elif kind == "cache_event":
            view.cache_status = e.get("status") or view.cache_status
            view.cache_expires_at = parse_iso(e.get("expires_at"))
            view.cache_rebuild_cost_usd = _num(e.get("rebuild_cost_usd"))
        elif kind == "context_status":
            view.context_fill = _num(e.get("fill"))
            ttc = e.get("turns_to_compact")
            view.turns_to_compact = ttc if isinstance(ttc, int) else None
        elif kind == "model_fallback":
            view.fallbacks = _int(e.get("fallbacks"), view.fallbacks + 1)
            view.fallback_from = e.get("requested")
            view.fallback_to = e.get("actual")
        elif kind == "request_error":
            view.errors = _int(e.get("errors"), view.errors + 1)
            view.last_error = e.get("error_type")
        elif kind == "session_idle":
            view.status = "idle"
            view.in_flight = 0
            view.turn_in_progress = False
        elif kind == "session_end":
            for key in [k for k in self.alerts if k[1] == view.session_id]:
                del self.alerts[key]
            view.status = "ended"
            view.ended_at = ts
            view.in_flight = view.pending_tools = 0
            view.turn_in_progress = False
            self._cost(view, e.get("cost_usd"))

    @staticmethod
    def _state(view: SessionView, e: dict[str, Any], tool_key: str) -> None:
        """The state fields of a session_start (tool in `state_tool`) or a state_changed
        (tool in `tool`)."""
        state = e.get("state")
        if not isinstance(state, str) or state not in STATE_ACTIVITY:
            return
        view.state = state
        view.state_since = parse_iso(e.get("state_since")) or parse_iso(e.get("ts"))
        waiting, tool = e.get("waiting_for"), e.get(tool_key)
        view.waiting_for = waiting if isinstance(waiting, str) else None
        view.state_tool = tool if isinstance(tool, str) else None

    @staticmethod
    def _trust(view: SessionView, e: dict[str, Any]) -> None:
        """What the numbers rest on: unpriced requests, drift from verified Claude Code."""
        view.unpriced_requests = _int(e.get("unpriced_requests"), view.unpriced_requests)
        reasons = e.get("unverified_reasons")
        if isinstance(reasons, list):
            view.unverified_reasons = [str(r) for r in reasons[:20]]

    @staticmethod
    def _cost(view: SessionView, value: Any) -> None:
        cost = _num(value)
        if cost is not None:
            view.cost_usd = cost

    def _feed(self, event: dict[str, Any]) -> None:
        # A reconnect replays the last seconds: do not list an event twice.
        key = (event.get("session_id"), event.get("type"), event.get("ts"), event.get("seq"))
        if key in self._seen:
            return
        self._seen.add(key)
        self._seen_order.append(key)
        if len(self._seen_order) > 2000:
            self._seen.discard(self._seen_order.popleft())
        self.feed.append(event)
