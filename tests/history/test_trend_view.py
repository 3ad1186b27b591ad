"""`clauditor report` as text: rendered into a string console at 80 columns from the
seeded database; bar lengths and percentages worked out by hand."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from clauditor.reports.trends import (
    BAR_WIDTH,
    TIME_BAR_WIDTH,
    TIME_PARTS_DRAWN,
    Clauses,
    bar_cells,
    duration,
    percent,
    report_view,
    split_cells,
)
from clauditor.store.database import connect, open_database
from clauditor.store.trends import trend_report
from tests.history.trend_seed import NOW, seed


def _report(path: Path, by: str = "day", days: int = 3) -> dict:
    db = connect(path)
    try:
        return trend_report(db, days, by, now=NOW)
    finally:
        db.conn.close()


def render(report: dict, width: int = 80) -> list[str]:
    console = Console(width=width, record=True, force_terminal=False)
    console.print(report_view(report))
    return [line.rstrip() for line in console.export_text().splitlines()]


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return seed(tmp_path_factory.mktemp("trend") / "h.db")


@pytest.mark.parametrize("by", ["day", "model", "project"])
def test_every_line_fits_80_columns(seeded: Path, by: str) -> None:
    lines = render(_report(seeded, by))
    assert max(len(line) for line in lines) <= 80
    assert lines[0] == "clauditor report: the last 3 days (2026-11-28 to 2026-11-30 UTC)"
    assert lines[1] == "$1.11 · 4 sessions · 5 turns · 6 requests (1 unpriced)"


def test_cost_bars_are_proportional(seeded: Path) -> None:
    assert BAR_WIDTH == 24
    by_model = render(_report(seeded, "model"))
    # the largest ($0.81) gets 24 cells; Sonnet's $0.304 gets 0.304 / 0.81 x 24 = 9.007 → 9
    assert "claude-opus-5-5   " + "█" * 24 + " $0.81" in by_model
    assert "claude-sonnet-5-5 " + "█" * 9 + " " * 15 + " $0.30" in by_model
    # unpriced: no bar, no amount, and it says so
    assert "claude-opus-6" + " " * 34 + "- 1 unpriced" in by_model
    by_day = render(_report(seeded, "day"))
    # 0.548 / 0.566 x 24 = 23.24 → 23
    assert "2026-11-28 " + "█" * 23 + "  $0.55" in by_day
    assert "2026-11-29 " + "█" * 24 + " $0.57" in by_day
    by_project = render(_report(seeded, "project"))
    # 0.404 / 0.71 x 24 = 13.66 → 14
    assert "web " + "█" * 14 + " " * 10 + " $0.40 1 unpriced" in by_project


def test_tokens_and_cost_by_class_show_cache_reads_are_tokens_not_money(seeded: Path) -> None:
    lines = render(_report(seeded))
    # 1,050,000 of 1,186,000 tokens = 88.5 % → 89 %; $0.16 of $1.114 = 14.4 % → 14 %
    assert "cache read       1,050,000        89 %   $0.16      14 %" in lines
    # 28,500 / 1,186,000 = 2.4 % → 2 %; $0.45 / $1.114 = 40.4 % → 40 %
    assert "output              28,500         2 %   $0.45      40 %" in lines
    # 1,050,000 / 1,157,500 = 90.7 %; TTFT by nearest rank of 300, 500, 700, 900, 1200
    assert "cache hit ratio 91 %   TTFT p50 700 ms, p95 1,200 ms (5 requests)" in lines


def test_the_time_breakdown_is_one_sentence_and_a_bar(seeded: Path) -> None:
    lines = render(_report(seeded))
    at = lines.index("where the time went")
    assert lines[at + 1 : at + 3] == [
        "1 min 40 s in 6 turns: 41 % waiting for the model, 35 % tools, 18 % you,",
        "                       4 % generating, 1 % retries, 1 % subagents",
    ]
    # 60 cells: 24.6, 21, 10.8, 2.4, 0.6, 0.6 → 24, 21, 10, 2, 0, 0 (57) and the 3 left
    # to the largest remainders: you (.8), then the model and retries (.6, earlier first)
    # drawn with the watch view's glyphs: ░ model, ▒ tools, ▓ you, █ generating, ↻ retries
    assert lines[at + 3] == "░" * 25 + "▒" * 21 + "▓" * 11 + "█" * 2 + "↻"
    assert lines[at + 4] == (
        "░ waiting for the model, ▒ tools, ▓ you, █ generating, ↻ retries, ▞ subagents"
    )


def test_the_time_glyphs_are_the_watch_views() -> None:
    from clauditor.watch.render import TIME_GLYPHS

    drawn = {f"{part}_ms": (glyph, style) for part, (_, glyph, style) in TIME_PARTS_DRAWN.items()}
    assert drawn == {part: (glyph, style) for part, (glyph, style, _) in TIME_GLYPHS.items()}


def test_without_the_time_columns_the_breakdown_says_so(tmp_path: Path) -> None:
    lines = render(_report(seed(tmp_path / "old.db", time_columns=False)))
    at = lines.index("where the time went")
    assert lines[at + 1] == "not recorded for these turns"


def test_top_sessions_and_projects(seeded: Path) -> None:
    lines = render(_report(seeded))
    at = lines.index("top sessions")
    assert lines[at + 1 : at + 7] == [
        "session    project    cost   first prompt",
        "───────────────────────────────────────────────────────",
        "aaaa1111   api       $0.41   fix the auth middleware",
        "cccc3333   web       $0.40   make the login page faster",
        "bbbb2222   api       $0.30   write the release notes",
        "dddd4444   web           -   try the new model",
    ]
    at = lines.index("top projects")
    assert lines[at + 3 : at + 5] == [
        "api              2          3   $0.71",
        "web              2          3   $0.40",
    ]


def test_sessions_and_turns_per_day(seeded: Path) -> None:
    lines = render(_report(seeded))
    at = lines.index("sessions and turns per day")
    assert lines[at + 1 : at + 6] == [
        "day          sessions   turns   requests    cost",
        "────────────────────────────────────────────────",
        "2026-11-28          2       2          2   $0.55",
        "2026-11-29          2       2          3   $0.57",
        "2026-11-30          1       1          1       -",
    ]


def test_long_prompts_and_names_are_cut_never_the_numbers(seeded: Path) -> None:
    report = _report(seeded, "project")
    long_name = "a-project-with-a-very-long-name-indeed-and-more"
    report["groups"][0]["key"] = long_name
    report["top_sessions"][0]["first_prompt"] = "word " * 40 + "\x1b[31mred"
    report["top_sessions"][0]["project"] = long_name
    lines = render(report)
    assert max(len(line) for line in lines) <= 80
    assert long_name[:25] + "… " + "█" * 24 + " $0.71" in lines
    row = next(line for line in lines if line.startswith("aaaa1111"))
    assert row.startswith("aaaa1111   a-project-with-…   $0.41   word word")
    assert row.endswith("…") and "\x1b" not in row


def test_an_empty_window_is_one_clear_line(tmp_path: Path) -> None:
    open_database(tmp_path / "empty.db").conn.close()
    assert render(_report(tmp_path / "empty.db", days=7)) == ["No sessions in the last 7 days."]
    # 2026-11-26 alone: the day before the oldest seeded request
    db = connect(seed(tmp_path / "h.db"))
    try:
        report = trend_report(db, 1, "day", now=NOW - 86_400 * 4)
    finally:
        db.conn.close()
    assert render(report) == ["No sessions in the last day."]


def test_clauses_wrap_between_clauses_only() -> None:
    sentence = Clauses("time:", ["41 % waiting for the model", "35 % tools", "18 % you"])
    assert sentence.lines(80) == ["time: 41 % waiting for the model, 35 % tools, 18 % you"]
    assert sentence.lines(40) == ["time: 41 % waiting for the model,", "      35 % tools, 18 % you"]
    assert sentence.lines(10) == [
        "time: 41 % waiting for the model,",
        "      35 % tools,",
        "      18 % you",
    ]  # a clause longer than the line stays whole


def test_small_helpers_by_hand() -> None:
    assert [percent(x) for x in (0.41, 0.405, 0.004, 0.0, None, 1.0)] == [
        "41 %",
        "41 %",  # half up
        "<1 %",
        "0 %",
        "-",
        "100 %",
    ]
    assert [bar_cells(v, 8.0, 24) for v in (8.0, 4.0, 1.0, 0.1, 0.0, None)] == [24, 12, 3, 0, 0, 0]
    assert split_cells({"a": 0.5, "b": 0.25, "c": 0.25}, 10) == {"a": 5, "b": 3, "c": 2}
    assert sum(split_cells({"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}, TIME_BAR_WIDTH).values()) == 60
    assert [duration(ms) for ms in (400, 45_000, 100_000, 3_600_000, 11_100_000, None)] == [
        "0 s",
        "45 s",
        "1 min 40 s",
        "1 h 00 min",
        "3 h 05 min",
        "-",
    ]
