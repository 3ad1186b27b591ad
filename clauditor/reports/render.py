"""Rich renderables for history reports: pure functions of the rows they are given."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich import box
from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.table import Table
from rich.text import Text

from clauditor.safetext import terminal_safe

SEVERITY_STYLE = {"critical": "bold red", "warning": "yellow", "info": "cyan"}


def _short_time(value: str | None) -> str:
    return (value or "")[:16].replace("T", " ")


def _cost(value: float | None) -> str:
    return "-" if value is None else f"${value:.2f}"


def cache_hit_ratio(s: dict[str, Any]) -> float | None:
    total = (s.get("cache_read_tokens") or 0) + (s.get("cache_creation_tokens") or 0)
    total += s.get("input_tokens") or 0
    return None if total == 0 else (s.get("cache_read_tokens") or 0) / total


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


@dataclass(frozen=True)
class _Column:
    name: str
    justify: str
    width: int  # the narrowest it stays readable at (its header fits)
    keep: int  # lower stays longer when the terminal is narrow


# The prompt takes what is left; the others drop, least needed first, rather than shrink
# into "…" soup.
_COLUMNS = (
    _Column("session", "left", 8, 0),
    _Column("started", "left", 11, 1),
    _Column("turns", "right", 5, 2),
    _Column("cost", "right", 7, 2),
    _Column("model", "left", 10, 4),
    _Column("project", "left", 10, 5),
    _Column("tools", "right", 5, 6),
    _Column("cache hit", "right", 9, 7),
    _Column("ctx peak", "right", 8, 8),
    _Column("findings", "right", 8, 9),
)
PROMPT_MIN = 16


def _short_model(model: str | None) -> str:
    return (model or "-").removeprefix("claude-")


class SessionsTable:
    """The sessions list for the width it is given: columns drop by priority (the first
    prompt keeps at least PROMPT_MIN characters), never squeezed. Pure: rendered from the
    rows and the console's width."""

    def __init__(self, sessions: list[dict[str, Any]], title: str | None = None) -> None:
        self.sessions = terminal_safe(sessions)  # stored text came from the wire
        self.title = title

    def cell(self, name: str, s: dict[str, Any], wide: bool) -> str:
        if name == "session":
            return str(s["session_id"])[:8]
        if name == "started":
            started = _short_time(s.get("started_at"))
            return started if wide else started[5:]
        if name == "turns":
            return str(s.get("turns") or 0)
        if name == "cost":
            return _cost(s.get("estimated_cost_usd"))
        if name == "model":
            return _short_model(s.get("model"))
        if name == "project":
            return str(s.get("project") or "-")
        if name == "tools":
            return str(s.get("tool_calls") or 0)
        if name == "cache hit":
            return _pct(cache_hit_ratio(s))
        if name == "ctx peak":
            return _pct(s.get("context_peak", s.get("context_fill")))
        findings = s.get("findings")
        return "-" if findings is None else str(findings)

    def table(self, width: int) -> Table:
        """The columns that fit `width` at their content's width, the prompt taking the
        rest (widths set here, not left to Rich, which squeezes every column to "…")."""
        wide = width >= 120
        cells = {c.name: [self.cell(c.name, s, wide) for s in self.sessions] for c in _COLUMNS}
        sizes = {
            c.name: max([c.width, len(c.name), *(len(v) for v in cells[c.name])]) for c in _COLUMNS
        }
        columns = list(_COLUMNS)

        def used(cols: list[_Column]) -> int:  # each: its cells, padding 2, a separator 1
            return sum(sizes[c.name] + 3 for c in cols)

        while columns and used(columns) + PROMPT_MIN > width:
            columns.remove(max(columns, key=lambda c: c.keep))
        table = Table(
            title=self.title,
            header_style="bold",
            box=box.SIMPLE_HEAD,
            show_edge=False,
            pad_edge=False,
            expand=False,
        )
        for c in columns:
            table.add_column(c.name, justify=c.justify, no_wrap=True, width=sizes[c.name])  # type: ignore[arg-type]
        prompts = [str(s.get("first_prompt") or "") for s in self.sessions]
        room = max(PROMPT_MIN, width - used(columns))
        fit = min(room, max([len("first prompt"), *(len(p) for p in prompts)]))
        table.add_column("first prompt", no_wrap=True, overflow="ellipsis", width=fit)
        for i, prompt in enumerate(prompts):
            table.add_row(*(cells[c.name][i] for c in columns), Text(prompt))
        return table

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self.table(options.max_width)


def sessions_table(sessions: list[dict[str, Any]], title: str | None = None) -> SessionsTable:
    return SessionsTable(sessions, title)


def recall_view(query: str, hits: list[dict[str, Any]]) -> Group | Text:
    query, hits = terminal_safe((query, hits))
    if not hits:
        return Text(f"No session matches {query!r}.")
    parts: list[Any] = []
    for s in hits:
        head = Text()
        head.append(_short_time(s.get("started_at")), style="bold")
        head.append(f"  {s['session_id']}  {s.get('model') or '-'}  ")
        head.append(_cost(s.get("estimated_cost_usd")))
        head.append(f"  {s.get('turns') or 0} turns")
        parts.append(head)
        if s.get("first_prompt"):
            parts.append(Text(f"  > {s['first_prompt']}"))
        if s.get("last_text"):
            parts.append(Text(f"  = {s['last_text']}", style="dim"))
        parts.append(Text(""))
    return Group(*parts)


def diagnosis_view(result: dict[str, Any]) -> Group | Text:
    result = terminal_safe(result)
    findings = result.get("findings") or []
    if not findings:
        return Text(f"{result['session_id']}: no findings, the session looks healthy.")
    parts: list[Any] = [Text(f"{result['session_id']}: {len(findings)} finding(s)", style="bold")]
    for f in findings:
        line = Text()
        line.append(f"[{f['severity']}] ", style=SEVERITY_STYLE.get(f["severity"], ""))
        line.append(f"{f['code']}: ", style="bold")
        line.append(f["message"])
        parts.append(line)
        evidence = ", ".join(f"{k}={v}" for k, v in sorted(f.get("evidence", {}).items()))
        if evidence:
            parts.append(Text(f"    evidence: {evidence}", style="dim"))
        for advice in f.get("advice", [])[:3]:
            parts.append(Text(f"    - {advice}"))
    return Group(*parts)
