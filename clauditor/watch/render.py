"""Rendering: pure functions from (WatchState, now) to Rich renderables and text lines.

Nothing here reads the clock, the terminal or the network; the caller passes `now`, the
size and the time zone, so tests render into a StringIO console and compare text.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone, tzinfo
from typing import Any, TypeVar

from rich.console import Group, RenderableType
from rich.rule import Rule
from rich.table import Table
from rich.text import Text

from clauditor.broadcast.names import short_id
from clauditor.clock import parse_iso
from clauditor.safetext import terminal_text
from clauditor.watch.state import SessionView, TurnTime, WatchState

DOTS: dict[str, tuple[str, str]] = {
    "needs-you": ("▲", "bold red"),
    "active": ("●", "green"),
    "waiting-on-tool": ("◐", "cyan"),
    "your-turn": ("◇", "bright_blue"),
    "idle": ("○", "yellow"),
    "ended": ("■", "grey50"),
}
GROUP_TITLES = {
    "needs_you": "Needs you",
    "working": "Working",
    "your_turn": "Your turn",
    "idle": "Idle",
    "ended": "Ended",
}
# The all-sessions feed leaves out the per-request chatter.
DASHBOARD_FEED = frozenset(
    {
        "session_start",
        "session_named",
        "alert",
        "session_active",
        "turn_start",
        "tool_use",
        "tool_result",
        "turn_end",
        "cache_event",
        "model_fallback",
        "request_error",
        "session_idle",
        "session_end",
        "lagged",
    }
)
SESSION_FEED = DASHBOARD_FEED | {"context_status", "request_end", "state_changed"}
CACHE_WARN_SECONDS = 60.0
NONE = "-"


# -- small formatters ---------------------------------------------------------------
def short_model(model: str | None) -> str:
    if not model:
        return NONE
    return model.removeprefix("claude-")


def money(value: float | None) -> str:
    if value is None:
        return NONE
    return f"${value:.2f}" if value >= 0.01 or value == 0 else f"${value:.4f}"


def duration(ms: Any) -> str:
    if not isinstance(ms, (int, float)):
        return NONE
    seconds = max(0.0, ms / 1000.0)
    if seconds < 1:
        return f"{ms:.0f}ms" if ms >= 0 else "0ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s"


def clock_time(ts: float | None, tz: tzinfo | None) -> str:
    if ts is None:
        return "--:--:--"
    return datetime.fromtimestamp(ts, tz or timezone.utc).strftime("%H:%M:%S")


def fill_bar(fill: float | None, width: int = 10) -> Text:
    if fill is None:
        return Text(NONE, style="grey50")
    fill = min(max(fill, 0.0), 1.0)
    full = round(fill * width)
    style = "green" if fill < 0.6 else "yellow" if fill < 0.85 else "red"
    bar = Text("█" * full, style=style)
    bar.append("░" * (width - full), style="grey37")
    bar.append(f" {fill * 100:3.0f}%", style=style)
    return bar


def cache_countdown(expires_at: float | None, now: float, status: str | None = None) -> Text:
    """m:ss left on the prompt cache; yellow under a minute, red once expired."""
    if expires_at is None:
        return Text(status or NONE, style="grey50")
    left = expires_at - now
    if left <= 0:
        return Text("expired", style="red")
    minutes, seconds = divmod(int(left), 60)
    style = "yellow" if left < CACHE_WARN_SECONDS else "green"
    return Text(f"{minutes}:{seconds:02d}", style=style)


def marks(view: SessionView) -> Text:
    out = Text()
    if view.fallbacks:
        target = short_model(view.fallback_to) if view.fallback_to else "?"
        out.append(f"⤵{target}", style="bold yellow")
    if view.errors:
        if out:
            out.append(" ")
        out.append(f"✗{view.errors}", style="bold red")
    if view.tool_failures:
        if out:
            out.append(" ")
        out.append(f"⚒✗{view.tool_failures}", style="red")
    if view.unverified_reasons:
        if out:
            out.append(" ")
        out.append("?unverified", style="bold magenta")
    return out


def cost_text(view: SessionView) -> str:
    """Cost so far; `?` when some requests could not be priced (never a silent $0)."""
    if view.cost_usd is None:
        return "?" if view.unpriced_requests else NONE
    return money(view.cost_usd) + ("+?" if view.unpriced_requests else "")


ALERTS_SHOWN = 3


def alert_lines(state: WatchState) -> list[Text]:
    """The open alerts, newest first (at most ALERTS_SHOWN, then how many more)."""
    alerts = sorted(state.alerts.values(), key=lambda e: e.get("seq") or 0, reverse=True)
    out = []
    for e in alerts[:ALERTS_SHOWN]:
        style = "bold red" if e.get("kind") == "needs_you" else "bold yellow"
        line = Text(f"⚠ {e.get('reason') or e.get('kind')}", style=style)
        line.no_wrap, line.overflow = True, "ellipsis"
        out.append(line)
    if len(alerts) > ALERTS_SHOWN:
        out.append(Text(f"  +{len(alerts) - ALERTS_SHOWN} more alerts", style="yellow"))
    return out


def ago(seconds: float) -> str:
    """A staleness clock: 45s, 3m, 2h10m, 3d."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        h, m = divmod(s // 60, 60)
        return f"{h}h{m:02d}m" if m else f"{h}h"
    return f"{s // 86400}d"


def state_text(view: SessionView, now: float, compact: bool = False) -> Text | None:
    """What a waiting session waits for, and for how long ("needs you: permission prompt
    · 3m", "your turn · 12m"; compact: "needs you · 3m"); None while it works (the last
    tool says more then)."""
    since = f" · {ago(now - view.state_since)}" if view.state_since is not None else ""
    if view.state == "needs_you":
        what = "" if compact else f": {view.waiting_for or 'input'}"
        return Text(f"needs you{what}{since}", style="bold red")
    if view.state == "your_turn" and view.status == "active":
        return Text(f"your turn{since}", style="bright_blue")
    return None


def tool_text(view: SessionView, now: float | None = None, compact: bool = False) -> Text:
    waiting = state_text(view, now, compact) if now is not None else None
    if waiting is not None:
        return waiting
    if not view.last_tool:
        return Text(NONE, style="grey50")
    text = Text(view.last_tool, style="bold")
    if view.last_tool_summary:
        text.append(f" {view.last_tool_summary}")
    return text


def dot(view: SessionView) -> Text:
    symbol, style = DOTS.get(view.activity, ("?", ""))
    return Text(symbol, style=style)


def _pct(value: Any) -> str:
    return f"{value * 100:.0f}%" if isinstance(value, (int, float)) else "?"


# -- events as text -------------------------------------------------------------------
def describe(event: dict[str, Any], named: bool = True) -> str:
    """One event in a few words: the feed line and the `--plain` line share it."""
    e = event
    kind = e.get("type")
    if kind == "session_start":
        prompt = (e.get("prompt") or "").replace("\n", " ")
        model = short_model(e.get("model"))
        head = f"{e.get('name') or ''} · {model}" if named else f"started · {model}"
        return f"{head} · “{prompt[:80]}”" if prompt else head
    if kind == "alert":
        return f"{e.get('kind')}: {e.get('reason')}"
    if kind == "alert_cleared":
        return f"{e.get('kind')} over"
    if kind == "state_changed":
        state = str(e.get("state") or "?")
        if state == "needs_you":
            return f"needs you: {e.get('waiting_for') or 'input'}"
        if state == "tool" and e.get("tool"):
            return f"tool {e.get('tool')} running"
        return state.replace("_", " ")
    if kind == "session_named":
        prompt = (e.get("prompt") or "").replace("\n", " ")
        return f"named “{prompt[:80]}”" if prompt else f"named {e.get('name') or ''}"
    if kind == "session_active":
        return f"active again (was {e.get('previous')})"
    if kind == "turn_start":
        trigger = e.get("trigger")
        why = f" ({trigger.replace('_', ' ')})" if trigger not in (None, "prompt") else ""
        if not why and e.get("compaction"):
            why = " (compaction)"
        return f"turn {e.get('turn')}{why}"
    if kind == "request_start":
        retry = " retry" if e.get("retry") else ""
        return f"{e.get('kind')} request{retry} → {short_model(e.get('model'))}"
    if kind == "tool_use":
        sub = " [subagent]" if e.get("subagent") else ""
        summary = e.get("summary") or ""
        return f"{e.get('tool')} {summary}".rstrip() + sub
    if kind == "tool_result":
        return f"{e.get('tool')} {e.get('outcome')} in {duration(e.get('duration_ms'))}"
    if kind == "request_end":
        usage = e.get("usage") or {}
        return (
            f"{e.get('kind')} {e.get('status')} {e.get('stop_reason') or '-'} "
            f"in {duration(e.get('duration_ms'))} · out {usage.get('output_tokens', 0)} tok"
            f" · {money(e.get('cost_usd'))}"
        )
    if kind == "turn_end":
        usage = e.get("usage") or {}
        return (
            f"turn {e.get('turn')} {e.get('outcome')} · {e.get('stop_reason') or '-'} · "
            f"{duration(e.get('duration_ms'))} · out {usage.get('output_tokens', 0)} tok · "
            f"{money(e.get('cost_usd'))}"
        )
    if kind == "cache_event":
        expires = parse_iso(e.get("expires_at"))
        until = f" · until {clock_time(expires, timezone.utc)}Z" if expires else ""
        rebuild = e.get("rebuild_cost_usd")
        cost = f" · rebuild {money(rebuild)}" if rebuild is not None else ""
        return f"cache {e.get('status')}{until}{cost}"
    if kind == "context_status":
        ttc = e.get("turns_to_compact")
        runway = ""
        if isinstance(ttc, int):
            runway = f" · ~{ttc} turns to compact" if ttc < 100 else " · 100+ turns to compact"
        return f"context {_pct(e.get('fill'))}{runway}"
    if kind == "model_fallback":
        return f"fallback {short_model(e.get('requested'))} → {short_model(e.get('actual'))}"
    if kind == "request_error":
        return f"error {e.get('error_type')} (HTTP {e.get('status')})"
    if kind == "session_idle":
        return "idle"
    if kind == "session_end":
        return f"ended · {e.get('turns')} turns · {money(e.get('cost_usd'))}"
    if kind == "quota_status":
        parts = [f"{name} {_pct(w.get('utilization'))}" for name, w in _windows(e)]
        weekly = e.get("weekly")
        if isinstance(weekly, dict) and isinstance(weekly.get("tokens"), int):
            parts.append(f"week {_tokens(weekly['tokens'])} tok")
        return (
            "quota "
            + (" · ".join(parts) or "unknown")
            + (f" · {e['status']}" if isinstance(e.get("status"), str) else "")
        )
    if kind == "lagged":
        return f"lagged: missed {e.get('missed')} events"
    if kind == "hello":
        return f"connected to core {e.get('version') or '?'} · {len(e.get('live') or [])} live"
    return str(kind)


_FEED_STYLE = {
    "session_start": "bold green",
    "session_end": "grey50",
    "session_idle": "yellow",
    "turn_end": "bold",
    "model_fallback": "bold yellow",
    "request_error": "bold red",
    "lagged": "red",
}


def feed_line(
    event: dict[str, Any], state: WatchState, tz: tzinfo | None, with_name: bool = True
) -> Text:
    ts = parse_iso(event.get("ts"))
    line = Text(clock_time(ts, tz) + " ", style="grey50", no_wrap=True, overflow="ellipsis")
    sid = event.get("session_id")
    if with_name:
        view = state.sessions.get(sid) if isinstance(sid, str) else None
        name = view.name if view else short_id(sid) if sid else "core"
        line.append(f"{name[:18]:<18} ", style="cyan")
    kind = event.get("type")
    style = _FEED_STYLE.get(str(kind), "")
    if kind == "tool_result" and event.get("outcome") not in ("ok", None):
        style = "red"
    if kind == "cache_event" and str(event.get("status", "")).startswith("miss"):
        style = "yellow"
    line.append(describe(event, named=not with_name), style=style)
    return line


def _feed_events(
    state: WatchState, types: frozenset[str], limit: int, session_id: str | None = None
) -> list[dict[str, Any]]:
    if limit <= 0:
        return []
    out: list[dict[str, Any]] = []
    for event in reversed(state.feed):
        kind = event.get("type")
        if kind not in types:
            continue
        if session_id is not None and event.get("session_id") not in (None, session_id):
            continue
        if types is DASHBOARD_FEED:
            # Routine successes stay out of the all-sessions feed.
            if kind == "tool_result" and event.get("outcome") == "ok":
                continue
            if kind == "cache_event" and event.get("status") == "hit":
                continue
        out.append(event)
        if len(out) >= limit:
            break
    out.reverse()
    return out


# -- quota and connection ---------------------------------------------------------------
def _windows(quota: dict[str, Any]) -> Iterable[tuple[str, dict[str, Any]]]:
    windows = quota.get("windows")
    if isinstance(windows, dict):
        for name, window in windows.items():
            if isinstance(window, dict):
                yield str(name), window


def quota_line(quota: dict[str, Any] | None, now: float, tz: tzinfo | None) -> Text:
    """5h / 7d utilization bars with their resets, then the local weekly token count."""
    line = Text("quota ", style="bold", no_wrap=True, overflow="ellipsis")
    quota = quota or {}
    windows = list(_windows(quota))
    for i, (name, window) in enumerate(windows):
        if i:
            line.append("  ")
        util = window.get("utilization")
        line.append(f"{name} ")
        line.append_text(fill_bar(util if isinstance(util, (int, float)) else None, 8))
        resets = parse_iso(window.get("reset_at") or window.get("resets_at"))
        if resets is not None:
            line.append(f" resets {_until(resets, now)}", style="grey50")
    weekly = quota.get("weekly")
    if isinstance(weekly, dict) and isinstance(weekly.get("tokens"), int):
        if windows:
            line.append("  ")
        line.append(f"week {_tokens(weekly['tokens'])} tok")
        budget, fraction = weekly.get("budget"), weekly.get("used_fraction")
        if isinstance(budget, int) and isinstance(fraction, (int, float)):
            style = "red" if fraction >= 0.9 else "yellow" if fraction >= 0.7 else ""
            line.append(f" / {_tokens(budget)} ({fraction * 100:.0f}%)", style=style)
        exhausts = parse_iso(weekly.get("projected_exhaustion_at"))
        if exhausts is not None:
            line.append(f" runs out {_until(exhausts, now)}", style="bold red")
    elif not windows:
        line.append("unknown (no rate-limit headers seen yet)", style="grey50")
    status = quota.get("status")
    if isinstance(status, str) and status != "allowed":
        line.append(f"  {status}", style="bold red" if status == "rejected" else "yellow")
    return line


def _tokens(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1_000_000:.1f}M"
    if n >= 10_000:
        return f"{n / 1000:.0f}k"
    return str(n)


def _until(ts: float, now: float) -> str:
    left = ts - now
    if left <= 0:
        return "now"
    hours, rem = divmod(int(left), 3600)
    if hours >= 24:
        return f"in {hours // 24}d{hours % 24}h"
    return f"in {hours}h{rem // 60:02d}m" if hours else f"in {rem // 60}m"


def status_line(
    state: WatchState, now: float, url: str, title: str = "clauditor watch", counts: bool = True
) -> Text:
    line = Text(title, style="bold", no_wrap=True, overflow="ellipsis")
    live = [s for s in state.sessions.values() if s.status != "ended"]
    active = [s for s in live if s.status == "active"]
    if counts:
        plural = "" if len(live) == 1 else "s"
        line.append(f" · {len(live)} session{plural} ({len(active)} active)")
    c = state.connection
    if c.state == "connected":
        line.append(f" · {url}", style="grey50")
    elif c.state == "reconnecting":
        retry = f" in {c.retry_in:.0f}s" if c.retry_in is not None else ""
        line.append(
            f" · core unreachable, reconnecting{retry} (attempt {c.attempt})",
            style="bold red",
        )
        if c.error:
            line.append(f": {c.error[:60]}", style="red")
    else:
        line.append(f" · connecting to {url}…", style="yellow")
    if state.lagged_total:
        line.append(f" · missed {state.lagged_total} events", style="red")
    return line


def overload_line(state: WatchState) -> Text | None:
    """How many exchanges the core did not see the end of (it lagged past Envoy's hold):
    not Anthropic's errors, and said so; None while there are none."""
    n = state.unobserved_total
    if not n:
        return None
    word = "exchange" if n == 1 else "exchanges"
    return Text(f"{n} {word} not observed (core overloaded)", style="yellow", no_wrap=True)


# -- views ------------------------------------------------------------------------------
def sessions_table(
    state: WatchState, now: float, sessions: Sequence[SessionView], width: int = 120
) -> Table:
    narrow = width < 100  # a tmux pane: shorter bars, no model column under 70
    table = Table(
        box=None,
        pad_edge=False,
        padding=(0, 1),
        collapse_padding=True,
        header_style="bold grey70",
        expand=True,
    )
    bar = 5 if narrow else 10
    table.add_column("", width=1, no_wrap=True)
    # Narrow: the name takes more of the room (what a row is about matters most).
    table.add_column(
        "session", ratio=6 if narrow else 4, min_width=8, no_wrap=True, overflow="ellipsis"
    )
    # Columns drop by priority as the terminal narrows: the model first, under 100.
    with_model = not narrow
    if with_model:
        table.add_column("model", ratio=2, max_width=18, no_wrap=True, overflow="ellipsis")
    table.add_column("turn", justify="right", width=4, no_wrap=True)
    table.add_column("last tool", ratio=4, min_width=6, no_wrap=True, overflow="ellipsis")
    table.add_column("context", width=bar + 5, no_wrap=True)
    table.add_column("cache", width=7, no_wrap=True)
    table.add_column("cost", justify="right", width=7, no_wrap=True)
    marked = [marks(v) for v in sessions]
    widest = max((m.cell_len for m in marked), default=0)
    if widest:  # no empty column eating the names' room
        table.add_column("", width=min(widest, 8 if narrow else 12), no_wrap=True)
    # Group titles, like Claude Code's agent view, once sessions wait in different ways.
    titled = len({v.group for v in sessions}) > 1
    group = None
    for view, mark in zip(sessions, marked, strict=True):
        if titled and view.group != group:
            group = view.group
            table.add_row("", Text(GROUP_TITLES.get(group, group), style="bold underline"))
        name = Text(view.name, style="grey50" if view.status == "ended" else "bold")
        if view.project:
            name = Text.assemble((f"{view.project} ", "grey62"), name)
        cells: list[RenderableType] = [dot(view), name]
        if with_model:
            cells.append(short_model(view.model))
        cells += [
            str(view.turn),
            tool_text(view, now, compact=narrow),
            fill_bar(view.context_fill, bar),
            cache_countdown(view.cache_expires_at, now, view.cache_status),
            cost_text(view),
        ]
        if widest:
            mark.overflow, mark.no_wrap = "ellipsis", True
            cells.append(mark)
        table.add_row(*cells)
    return table


def render_dashboard(
    state: WatchState,
    now: float,
    *,
    height: int = 40,
    width: int = 120,
    url: str = "",
    tz: tzinfo | None = None,
    overflow: Sequence[str] = (),
    title: str = "clauditor watch",
) -> RenderableType:
    """All sessions: a row each, the quota line, then as many recent events as fit."""
    sessions = state.ordered()
    parts: list[RenderableType] = [status_line(state, now, url, title)]
    parts += alert_lines(state)
    overloaded = overload_line(state)
    if overloaded is not None:
        parts.append(overloaded)
    if sessions:
        parts.append(sessions_table(state, now, sessions, width))
    else:
        parts.append(Text("no sessions yet: point ANTHROPIC_BASE_URL at Envoy", style="grey50"))
    if overflow:
        parts.append(Text(f"+{len(overflow)} without a pane: " + ", ".join(overflow)))
    parts.append(quota_line(state.quota, now, tz))
    used = 1 + (len(sessions) + 1 if sessions else 1) + (1 if overflow else 0) + 1
    used += 1 if overloaded is not None else 0
    room = height - used - 1
    events = _feed_events(state, DASHBOARD_FEED, room)
    if room > 0:
        parts.append(Rule("events", style="grey37", align="left"))
        parts += [feed_line(e, state, tz) for e in events]
    return Group(*parts)


K = TypeVar("K")

# Where a turn's time went, one glyph and colour per part (sessions.timing.TIME_PARTS):
# distinct glyphs, so the bar still reads without colour.
TIME_GLYPHS: dict[str, tuple[str, str, str]] = {
    "waiting_for_model_ms": ("░", "grey62", "model"),
    "generating_ms": ("█", "green", "generating"),
    "tools_ms": ("▒", "cyan", "tools"),
    "waiting_for_you_ms": ("▓", "bold red", "you"),
    "retries_ms": ("↻", "yellow", "retries"),
    "subagents_ms": ("▞", "blue", "subagents"),
}
TIME_BAR = 24


def _apportion(parts: Mapping[K, float], cells: int) -> dict[K, int]:
    """`cells` characters shared out in proportion to the parts (largest remainder)."""
    total = sum(parts.values())
    if total <= 0 or cells <= 0:
        return dict.fromkeys(parts, 0)
    exact = {k: v * cells / total for k, v in parts.items()}
    out = {k: int(v) for k, v in exact.items()}
    rest = sorted(parts, key=lambda k: exact[k] - out[k], reverse=True)
    for k in rest[: cells - sum(out.values())]:
        out[k] += 1
    return out


def time_legend() -> Text:
    legend = Text("time   ", style="grey50")
    for glyph, style, label in TIME_GLYPHS.values():
        legend.append(glyph, style=style)
        legend.append(f" {label}  ", style="grey70")
    return legend


def time_bar(t: TurnTime, longest_ms: float, width: int = TIME_BAR) -> Text:
    """One turn: a bar as long as the turn (the longest shown fills `width`), split by
    part, then its duration and its two largest parts as shares."""
    total = sum(t.parts.values())
    line = Text(f"turn {t.turn:<3}", style="grey50")
    cells = 0
    if total > 0 and longest_ms > 0:
        cells = min(width, max(1, round(width * total / longest_ms)))
    for part, n in _apportion(t.parts, cells).items():
        glyph, style, _ = TIME_GLYPHS[part]
        line.append(glyph * n, style=style)
    line.append(" " * (width - cells + 1))
    line.append(f"{duration(t.duration_ms if t.duration_ms is not None else total):>6}")
    top = sorted((v, k) for k, v in t.parts.items() if v > 0)[::-1][:2]
    if total > 0 and top:
        shares = " · ".join(f"{TIME_GLYPHS[k][2]} {v / total:.0%}" for v, k in top)
        line.append(f"  {shares}", style="grey70")
    return line


def time_lines(view: SessionView, limit: int) -> list[Text]:
    """The newest `limit` ended turns' bars, under a legend (nothing when none)."""
    turns = [view.turn_times[k] for k in sorted(view.turn_times)[-limit:]] if limit > 0 else []
    if not turns:
        return []
    longest = max(sum(t.parts.values()) for t in turns)
    return [time_legend(), *(time_bar(t, longest) for t in turns)]


def render_session(
    state: WatchState,
    session_id: str,
    now: float,
    *,
    height: int = 40,
    width: int = 120,  # lines are cut by the console; kept for symmetry with the dashboard
    url: str = "",
    tz: tzinfo | None = None,
) -> RenderableType:
    """One session: its header, its signals, the quota line, then its events."""
    view = state.sessions.get(session_id)
    parts: list[RenderableType] = [status_line(state, now, url, counts=False)]
    if view is None:
        parts.append(Text(f"waiting for session {session_id}…", style="grey50"))
        return Group(*parts)
    head = Text()
    head.append_text(dot(view))
    head.append(f" {view.name}", style="bold")
    head.append(f"  {short_model(view.model)}  turn {view.turn}  ")
    head.append(view.activity, style=DOTS.get(view.activity, ("", ""))[1])
    if view.fallbacks or view.errors or view.unverified_reasons:
        head.append("  ")
        head.append_text(marks(view))
    parts.append(head)
    if view.prompt:
        prompt = Text(f"“{view.prompt}”", style="italic grey70", no_wrap=True)
        prompt.overflow = "ellipsis"
        parts.append(prompt)
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="grey50", no_wrap=True)
    grid.add_column(no_wrap=True, overflow="ellipsis")
    tool = tool_text(view)
    if view.pending_tools:
        tool.append(f" ({view.pending_tools} running)", style="cyan")
    grid.add_row("tool", tool)
    ctx = fill_bar(view.context_fill)
    if view.turns_to_compact is not None:
        ttc = view.turns_to_compact
        runway = f"~{ttc}" if ttc < 100 else "100+"  # a far-off estimate is no news
        ctx.append(f"  {runway} turns to compact", style="grey70" if ttc > 3 else "bold red")
    grid.add_row("context", ctx)
    cache = cache_countdown(view.cache_expires_at, now, view.cache_status)
    if view.cache_status:
        cache.append(f"  {view.cache_status}", style="grey70")
    if view.cache_rebuild_cost_usd is not None:
        cache.append(f"  rebuild {money(view.cache_rebuild_cost_usd)}", style="grey70")
    grid.add_row("cache", cache)
    cost = Text(cost_text(view))
    cost.append(f"  {view.output_tokens} output tokens", style="grey70")
    if view.unpriced_requests:
        cost.append(f"  {view.unpriced_requests} unpriced (model not in the catalog)", "yellow")
    grid.add_row("cost", cost)
    if view.unverified_reasons:
        grid.add_row(
            "unverified",
            Text(", ".join(view.unverified_reasons), style="magenta", overflow="ellipsis"),
        )
    if view.fallbacks:
        grid.add_row(
            "fallback",
            Text(
                f"{short_model(view.fallback_from)} → {short_model(view.fallback_to)}"
                f" ({view.fallbacks} so far)",
                style="yellow",
            ),
        )
    if view.errors:
        grid.add_row("errors", Text(f"{view.errors} ({view.last_error or '?'})", style="red"))
    parts.append(grid)
    # Up to 5 turns' bars, and fewer on a short pane: the events keep most of the room.
    parts += time_lines(view, min(5, (height - 18) // 2))
    parts.append(quota_line(state.quota, now, tz))
    used = len(parts) - 1 + grid.row_count  # the grid is one part of row_count lines
    room = height - used - 1
    if room > 0:
        parts.append(Rule("events", style="grey37", align="left"))
        events = _feed_events(state, SESSION_FEED, room, session_id)
        parts += [feed_line(e, state, tz, with_name=False) for e in events]
    return Group(*parts)


def pane_title(view: SessionView) -> str:
    """A tmux pane's title: name, model and short id (two sessions may share a name, never
    a title), and so when the session needs you or ended."""
    title = f"{view.name} · {short_model(view.model)} · {short_id(view.session_id)}"
    if view.status == "ended":
        title = f"{title} · ended"
    elif view.state == "needs_you":
        title = f"{title} · needs you"
    return terminal_text(title, one_line=True)


def plain_line(event: dict[str, Any]) -> str:
    """`--plain`: one greppable line per event: ts, short session id, type, details."""
    sid = event.get("session_id")
    tag = short_id(sid) if isinstance(sid, str) else "-"
    replay = " (replay)" if event.get("replay") else ""
    if event.get("history"):
        replay += " (history)"  # from the session's detail: before this view opened
    if event.get("synthetic"):
        replay += " (snapshot)"  # built from live state for a late joiner
    line = f"{event.get('ts') or '-'} {tag:<8} {event.get('type')!s:<14} {describe(event)}{replay}"
    return terminal_text(line, one_line=True)  # the event came from the wire
