"""`clauditor models`: the model catalog, and every model seen on the wire that it lacks.

A model the catalog does not know is unpriced (its cost is unknown, never 0) and has no
context window; this report is where a user finds out which ones, to add them with
`--prices FILE`.
"""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from clauditor.clock import iso
from clauditor.safetext import terminal_safe
from clauditor.sessions.signals.prices import PriceTable


def models_report(prices: PriceTable, seen: list[dict[str, Any]], now: float) -> dict[str, Any]:
    """The catalog at `now`, and the seen models (rows: model, requests, last_seen) it
    does not know."""
    return {
        "generated_at": iso(now),
        "source": prices.source,
        "catalog": prices.describe(now),
        "unknown_seen": [dict(row) for row in seen if not prices.known(row["model"])],
    }


def _rate(value: float) -> str:
    return f"{value:g}"


def _window(tokens: int | None) -> str:
    if tokens is None:
        return "-"
    return f"{tokens // 1_000_000}M" if tokens % 1_000_000 == 0 else f"{tokens // 1000}k"


def _notes(m: dict[str, Any]) -> list[str]:
    notes = []
    before = m["rates_before"]
    if m["since"] and before:
        moved = [
            f"{k.replace('_', ' ')} {_rate(m[k])} (was {_rate(v)})"
            for k, v in before.items()
            if v != m[k]
        ]
        notes.append(f"since {m['since']}: " + ", ".join(moved))
    beta = m["context_window_1m_beta"]
    if beta and beta != m["context_window"]:
        notes.append(f"{_window(beta)} window with the context-1m beta")
    lc = m["long_context"]
    if lc:
        notes.append(
            f"a prompt above {lc['above_input_tokens'] // 1000}k tokens bills every token at "
            f"{_rate(lc['input'])} / {_rate(lc['output'])} / {_rate(lc['cache_write_5m'])} / "
            f"{_rate(lc['cache_write_1h'])} / {_rate(lc['cache_read'])}"
        )
    return notes


def models_view(report: dict[str, Any]) -> Group:
    report = terminal_safe(report)  # model ids seen on the wire: no escapes to the terminal
    table = Table(
        title=f"Model catalog ({report['source']}): USD per million tokens",
        header_style="bold",
    )
    for name in ("model", "input", "output", "5m write", "1h write", "read", "window"):
        table.add_column(name, justify="left" if name == "model" else "right", no_wrap=True)
    notes: list[Text] = []
    for m in report["catalog"]:
        table.add_row(
            m["model"],
            _rate(m["input"]),
            _rate(m["output"]),
            _rate(m["cache_write_5m"]),
            _rate(m["cache_write_1h"]),
            _rate(m["cache_read"]),
            _window(m["context_window"]),
        )
        notes += [Text(f"{m['model']}: {note}") for note in _notes(m)]
    parts: list[Any] = [table, *notes]
    unknown = report["unknown_seen"]
    if not unknown:
        parts.append(Text("Every model seen is in the catalog."))
        return Group(*parts)
    seen = Table(
        title="Seen, not in the catalog: unpriced, no window (add them with --prices FILE)",
        header_style="bold yellow",
    )
    seen.add_column("model")
    seen.add_column("requests", justify="right")
    seen.add_column("last seen")
    for row in unknown:
        seen.add_row(
            Text(row["model"]),
            str(row["requests"]),
            (row["last_seen"] or "")[:16].replace("T", " "),
        )
    parts.append(seen)
    return Group(*parts)
