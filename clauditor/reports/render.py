"""Rich renderables for history reports: pure functions of the rows they are given."""

from __future__ import annotations

from typing import Any

from rich.console import Group
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


def sessions_table(sessions: list[dict[str, Any]], title: str | None = None) -> Table:
    sessions = terminal_safe(sessions)  # stored text came from the wire: no escapes out
    table = Table(title=title, header_style="bold", expand=False)
    for name, justify in (
        ("session", "left"),
        ("model", "left"),
        ("started", "left"),
        ("turns", "right"),
        ("tools", "right"),
        ("cost", "right"),
        ("cache hit", "right"),
        ("ctx peak", "right"),
        ("findings", "right"),
        ("first prompt", "left"),
    ):
        table.add_column(name, justify=justify, no_wrap=name != "first prompt")  # type: ignore[arg-type]
    for s in sessions:
        findings = s.get("findings")
        table.add_row(
            s["session_id"][:8],
            s.get("model") or "-",
            _short_time(s.get("started_at")),
            str(s.get("turns") or 0),
            str(s.get("tool_calls") or 0),
            _cost(s.get("estimated_cost_usd")),
            _pct(cache_hit_ratio(s)),
            _pct(s.get("context_peak", s.get("context_fill"))),
            "-" if findings is None else str(findings),
            Text((s.get("first_prompt") or "")[:80]),
        )
    return table


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
