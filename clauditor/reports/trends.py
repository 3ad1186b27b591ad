"""`clauditor report`: the trends of the last days as Rich renderables, without Grafana.

A pure function of the report dict (`clauditor.store.trends.trend_report`). Built to read
at 80 columns: numbers never wrap or get cut (only prompts, project names and model ids
are shortened, with an ellipsis), and it prints as plain text when piped.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from rich import box
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.table import Table
from rich.text import Text

from clauditor.safetext import terminal_safe, terminal_text

BAR_WIDTH = 24  # cells of the longest cost bar
TIME_BAR_WIDTH = 60  # cells of the time breakdown bar
LABEL_WIDTH = 26  # a dated model id fits (claude-sonnet-5-5-20260901)
PROMPT_CHARS = 60
BAR = "█"
# The time parts as the sentence names them, and the glyph and colour that draw each one:
# the watch view's (watch.render.TIME_GLYPHS, a layer above this one; a test keeps the two
# equal), distinct shapes so the bar still reads in plain text.
TIME_PARTS_DRAWN: dict[str, tuple[str, str, str]] = {
    "waiting_for_model": ("waiting for the model", "░", "grey62"),
    "generating": ("generating", "█", "green"),
    "tools": ("tools", "▒", "cyan"),
    "waiting_for_you": ("you", "▓", "bold red"),
    "retries": ("retries", "↻", "yellow"),
    "subagents": ("subagents", "▞", "blue"),
}
CLASS_LABELS = {
    "input": "input",
    "output": "output",
    "cache_write_5m": "cache write 5m",
    "cache_write_1h": "cache write 1h",
    "cache_read": "cache read",
}


def _cost(value: float | None) -> str:
    return "-" if value is None else f"${value:,.2f}"


def _int(value: int | float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def percent(share: float | None) -> str:
    """A share as whole percent, half up ("41 %"); "<1 %" for a small non-zero one."""
    if share is None:
        return "-"
    if 0 < share < 0.005:
        return "<1 %"
    return f"{int(share * 100 + 0.5)} %"


def bar_cells(value: float | None, largest: float | None, width: int = BAR_WIDTH) -> int:
    """Cells of a bar for value when the largest value gets `width`: rounded half up."""
    if not value or not largest or value <= 0:
        return 0
    return int(value / largest * width + 0.5)


def split_cells(shares: dict[str, float], width: int) -> dict[str, int]:
    """`width` cells shared out in proportion (largest remainder, so they add up to
    width exactly; ties go to the earlier part)."""
    exact = {k: v * width for k, v in shares.items()}
    cells = {k: int(v) for k, v in exact.items()}
    # Remainders compared at 9 places: 0.41 * 60 is 24.599999999999998, and its .6 ties
    # with 0.01 * 60's.
    order = sorted(exact, key=lambda k: (-round(exact[k] - cells[k], 9), list(shares).index(k)))
    for k in order[: width - sum(cells.values())]:
        cells[k] += 1
    return cells


def duration(ms: int | float | None) -> str:
    """ "45 s", "1 min 40 s", "3 h 05 min": whole seconds, minutes past an hour."""
    if ms is None:
        return "-"
    seconds = int(ms / 1000 + 0.5)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    minutes = int(seconds / 60 + 0.5)
    return f"{minutes // 60} h {minutes % 60:02d} min"


class Clauses:
    """Clauses joined by ", " and wrapped only between clauses, never inside one: a
    sentence whose numbers ("41 %") never end up on another line than their words."""

    def __init__(self, head: str, clauses: list[str], style: str = "") -> None:
        self.head, self.clauses, self.style = head, clauses, style

    def lines(self, width: int) -> list[str]:
        out: list[str] = []
        indent = " " * (len(self.head) + 1) if self.head else ""
        line, holds_clause = self.head, False
        for i, clause in enumerate(self.clauses):
            piece = clause + ("," if i < len(self.clauses) - 1 else "")
            candidate = f"{line} {piece}" if line.strip() else line + piece
            if holds_clause and len(candidate) > width:
                out.append(line)
                candidate = indent + piece
            line, holds_clause = candidate, True
        out.append(line)
        return out

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        for line in self.lines(options.max_width):
            yield Text(line, style=self.style, no_wrap=True, overflow="fold")


def time_clauses(share: dict[str, float | None]) -> list[str]:
    """ "41 % waiting for the model", ... for each part with some time, the largest first."""
    known = [(k, v) for k, v in share.items() if v]
    known.sort(key=lambda kv: (-kv[1], list(TIME_PARTS_DRAWN).index(kv[0])))
    return [f"{percent(v)} {TIME_PARTS_DRAWN[k][0]}" for k, v in known]


def _table() -> Table:
    return Table(box=box.SIMPLE_HEAD, header_style="bold", pad_edge=False, show_edge=False)


def _heading(text: str) -> Text:
    return Text(text, style="bold")


def _cost_bars(report: dict[str, Any]) -> Table:
    groups = report["groups"]
    largest = max((g["cost_usd"] or 0.0 for g in groups), default=0.0)
    table = Table.grid(padding=(0, 1))
    table.add_column(no_wrap=True, max_width=LABEL_WIDTH, overflow="ellipsis")
    table.add_column(no_wrap=True, width=BAR_WIDTH)
    table.add_column(no_wrap=True, justify="right")
    table.add_column(no_wrap=True, style="yellow")
    for g in groups:
        key = g["key"]
        label = "(no project)" if key is None and report["by"] == "project" else str(key)
        cells = bar_cells(g["cost_usd"], largest)
        unpriced = g["unpriced_requests"]
        table.add_row(
            Text(label),
            Text(BAR * cells, style="cyan"),
            _cost(g["cost_usd"]),
            f"{unpriced} unpriced" if unpriced else "",
        )
    return table


def _per_day(report: dict[str, Any]) -> Table:
    table = _table()
    for name in ("day", "sessions", "turns", "requests", "cost"):
        table.add_column(name, justify="left" if name == "day" else "right", no_wrap=True)
    for d in report["days"]:
        table.add_row(
            d["date"],
            _int(d["sessions"]),
            _int(d["turns"]),
            _int(d["requests"]),
            _cost(d["cost_usd"]),
        )
    return table


def _by_class(report: dict[str, Any]) -> Table:
    tokens: dict[str, int] = report["tokens_by_class"]
    costs: dict[str, float] | None = report["cost_by_class"]
    all_tokens = sum(tokens.values())
    all_cost = sum(costs.values()) if costs else 0.0
    table = _table()
    for name in ("class", "tokens", "of tokens", "cost", "of cost"):
        table.add_column(name, justify="left" if name == "class" else "right", no_wrap=True)
    for key, label in CLASS_LABELS.items():
        cost = None if costs is None else costs.get(key)
        table.add_row(
            label,
            _int(tokens[key]),
            percent(tokens[key] / all_tokens if all_tokens else None),
            _cost(cost),
            percent(cost / all_cost if cost is not None and all_cost else None),
        )
    return table


def _latency_line(report: dict[str, Any]) -> Text:
    ratio = report["cache_hit_ratio"]
    line = Text()
    line.append("cache hit ratio ", style="bold")
    line.append(percent(ratio))
    line.append("   TTFT ", style="bold")
    line.append(f"p50 {_int(report['ttft_p50_ms'])} ms, p95 {_int(report['ttft_p95_ms'])} ms")
    line.append(f" ({report['ttft_requests']} requests)", style="dim")
    return line


def _time(report: dict[str, Any]) -> list[RenderableType]:
    t = report["time"]
    share = t["share"]
    if not share:
        return [Text("not recorded for these turns", style="dim")]
    head = f"{duration(t['total_ms'])} in {report['turns_all']} turns:"
    clauses = time_clauses(share)
    parts: list[RenderableType] = [Clauses(head, clauses)]
    shown = {k: v for k, v in share.items() if v}
    order = sorted(shown, key=lambda k: (-shown[k], list(TIME_PARTS_DRAWN).index(k)))
    cells = split_cells({k: shown[k] for k in order}, TIME_BAR_WIDTH)
    bar = Text()
    for k in order:
        _, cell, style = TIME_PARTS_DRAWN[k]
        bar.append(cell * cells[k], style=style)
    parts.append(bar)
    legend = [f"{TIME_PARTS_DRAWN[k][1]} {TIME_PARTS_DRAWN[k][0]}" for k in order]
    parts.append(Clauses("", legend, style="dim"))
    return parts


def _prompt(text: str | None) -> Text:
    flat = terminal_text(text or "", one_line=True)
    cut = flat if len(flat) <= PROMPT_CHARS else flat[: PROMPT_CHARS - 1] + "…"
    return Text(cut, no_wrap=True, overflow="ellipsis")


def _top_sessions(rows: Iterable[dict[str, Any]]) -> Table:
    table = _table()
    table.add_column("session", no_wrap=True)
    table.add_column("project", no_wrap=True, max_width=16, overflow="ellipsis")
    table.add_column("cost", justify="right", no_wrap=True)
    # The one column that gives way on a narrow terminal (Rich shrinks wrappable columns
    # first); its text is cut with an ellipsis instead of wrapping.
    table.add_column("first prompt")
    for s in rows:
        table.add_row(
            s["session_id"][:8],
            Text(s["project"] or "-"),
            _cost(s["cost_usd"]),
            _prompt(s["first_prompt"]),
        )
    return table


def _top_projects(rows: Iterable[dict[str, Any]]) -> Table:
    table = _table()
    table.add_column("project", no_wrap=True, max_width=40, overflow="ellipsis")
    for name in ("sessions", "requests", "cost"):
        table.add_column(name, justify="right", no_wrap=True)
    for p in rows:
        table.add_row(
            Text(p["project"] or "(no project)"),
            _int(p["sessions"]),
            _int(p["requests"]),
            _cost(p["cost_usd"]),
        )
    return table


def _days_phrase(n: int) -> str:
    return "the last day" if n == 1 else f"the last {n} days"


def _sections(report: dict[str, Any]) -> Iterator[RenderableType]:
    days = report["days"]
    span = f"{days[0]['date']} to {days[-1]['date']} UTC"
    yield _heading(f"clauditor report: {_days_phrase(report['window_days'])} ({span})")
    total = Text(f"{_cost(report['cost_usd'])} · {report['sessions']} sessions · ")
    total.append(f"{report['turns']} turns · {report['requests']} requests")
    if report["unpriced_requests"]:
        total.append(f" ({report['unpriced_requests']} unpriced)", style="yellow")
    yield total
    sections: list[tuple[str, list[RenderableType]]] = [
        (f"cost by {report['by']}", [_cost_bars(report)]),
        ("sessions and turns per day", [_per_day(report)]),
        ("tokens and cost by class", [_by_class(report), _latency_line(report)]),
        ("where the time went", _time(report)),
        ("top sessions", [_top_sessions(report["top_sessions"])]),
        ("top projects", [_top_projects(report["top_projects"])]),
    ]
    for title, parts in sections:
        yield Text("")
        yield _heading(title)
        yield from parts


def report_view(report: dict[str, Any]) -> RenderableType:
    """The whole report, or one line when the window holds no session."""
    report = terminal_safe(report)  # prompts, project names, model ids came from the wire
    if not report["sessions"]:
        return Text(f"No sessions in {_days_phrase(report['window_days'])}.")
    return Group(*_sections(report))
