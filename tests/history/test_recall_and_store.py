"""Recall ranking, FTS-safe queries, retention, views, --no-prompts and the CLI on a file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils
from click.testing import CliRunner

from clauditor.cli import main
from clauditor.clock import ManualClock, iso
from clauditor.store import history
from clauditor.store.database import open_database
from clauditor.store.recall import fts_query, recall
from clauditor.store.schema import VIEWS
from clauditor.store.writer import StoreWriter

NOW = 1_800_000_000.0
DAY = 86400.0


def _session(sid: str, prompt: str, summary: str, age_days: float, **kw: Any) -> dict[str, Any]:
    ts = iso(NOW - age_days * DAY)
    row = {
        "session_id": sid,
        "status": "ended",
        "model": "claude-opus-4-8",
        "started_at": ts,
        "last_activity_at": ts,
        "turns": 2,
        "requests": 4,
        "tool_calls": 1,
        "first_prompt": prompt,
        "summary": summary,
        "input_tokens": 100,
        "cache_read_tokens": 900,
        "cache_creation_tokens": 0,
        "output_tokens": 50,
        "estimated_cost_usd": 0.25,
    }
    row.update(kw)
    return row


@pytest.fixture
def seeded(tmp_path: Path) -> Path:
    path = tmp_path / "history.db"
    writer = StoreWriter(path, interval=0.02)
    writer.start()
    sessions = [
        _session("s-auth-old", "fix the auth middleware token check", "Fixed the check.", 40),
        _session("s-auth-new", "auth middleware rejects valid tokens", "Patched it.", 1),
        _session("s-docs", "write the README install section", "Wrote docs.", 2),
        _session("s-path", "tidy up", "Refactored.", 3),
        _session(
            "s-ancient", "auth middleware again", "Old.", 200, last_activity_at=iso(NOW - 200 * DAY)
        ),
    ]
    for row in sessions:
        writer.put("sessions", row)
    writer.put(
        "tool_calls",
        {"session_id": "s-path", "tool_use_id": "t1", "name": "Read",
         "input_summary": "/srv/app/middleware/ratelimit.py", "outcome": "ok",
         "requested_at": iso(NOW - 3 * DAY)},
    )  # fmt: skip
    assert writer.flush(timeout=5)
    writer.stop()
    return path


def test_recall_ranks_relevance_then_recency(seeded: Path) -> None:
    db = sqlite_utils.Database(seeded)
    ids = [h.session_id for h in recall(db, "auth middleware", limit=5, now=NOW)]
    assert ids == ["s-auth-new", "s-auth-old", "s-ancient"]
    ids = [h.session_id for h in recall(db, "auth middleware", limit=5, days=30, now=NOW)]
    assert ids == ["s-auth-new"]


def test_recall_searches_paths_and_tools(seeded: Path) -> None:
    db = sqlite_utils.Database(seeded)
    assert [h.session_id for h in recall(db, "ratelimit.py", now=NOW)] == ["s-path"]
    # "read" also prefix-matches "README" in another prompt; the tool row is found too.
    assert "s-path" in [h.session_id for h in recall(db, "Read", now=NOW)]


def test_recall_falls_back_to_any_word(seeded: Path) -> None:
    db = sqlite_utils.Database(seeded)
    ids = [h.session_id for h in recall(db, "README kubernetes", now=NOW)]
    assert ids == ["s-docs"]


@pytest.mark.parametrize(
    "query", ['"', "auth*", "auth AND (", "NEAR(auth", "a:b", "-auth", "'; drop table x", "^", "🙂"]
)
def test_fts_syntax_never_errors(seeded: Path, query: str) -> None:
    db = sqlite_utils.Database(seeded)
    hits = recall(db, query, now=NOW)
    assert isinstance(hits, list)
    if "auth" in query:
        assert hits and hits[0].session_id in {"s-auth-new", "s-auth-old"}


def test_fts_query_quotes_terms() -> None:
    assert fts_query('auth "middleware') == '"auth"* "middleware"*'
    assert fts_query("x y", any_term=True) == '"x"* OR "y"*'
    assert fts_query("!!!") is None


def test_retention_prunes_old_ended_sessions(seeded: Path) -> None:
    db = open_database(seeded)
    assert history.prune(db, 90, NOW) == 1
    remaining = {r["session_id"] for r in db["sessions"].rows}
    assert "s-ancient" not in remaining and len(remaining) == 4
    assert (
        db.execute("select count(*) from session_search where session_id='s-ancient'").fetchone()[0]
        == 0
    )


def test_every_view_answers_through_sqlite_utils(seeded: Path) -> None:
    open_database(seeded)  # migrated file as a user would have it
    for view in VIEWS:
        done = subprocess.run(
            [sys.executable, "-m", "sqlite_utils", "query", str(seeded), f"select * from {view}"],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert done.returncode == 0, (view, done.stderr)
        assert isinstance(json.loads(done.stdout), list)
    days = json.loads(
        subprocess.run(
            [sys.executable, "-m", "sqlite_utils", "query", str(seeded),
             "select * from daily_sessions order by day desc limit 1"],
            capture_output=True, text=True, timeout=30, check=True,
        ).stdout
    )  # fmt: skip
    assert days[0]["sessions"] == 1 and days[0]["cost_usd"] == 0.25


def test_cli_reads_the_database_file(seeded: Path) -> None:
    runner = CliRunner()
    done = runner.invoke(main, ["sessions", "--db", str(seeded), "--days", "36500", "--json"])
    assert done.exit_code == 0, done.output
    ids = [s["session_id"] for s in json.loads(done.output)["sessions"]]
    assert ids[0] == "s-auth-new" and len(ids) == 5

    done = runner.invoke(main, ["recall", "auth middleware", "--db", str(seeded), "--limit", "1"])
    assert done.exit_code == 0, done.output
    assert "s-auth-new" in done.output and "auth middleware rejects valid tokens" in done.output

    done = runner.invoke(main, ["diagnose", "s-docs", "--db", str(seeded)])
    assert done.exit_code == 0, done.output
    assert "no findings" in done.output

    done = runner.invoke(main, ["diagnose", "nope", "--db", str(seeded)])
    assert done.exit_code == 1
    assert "no session 'nope'" in done.output


def test_cli_table_has_the_promised_columns(seeded: Path) -> None:
    done = CliRunner().invoke(
        main, ["sessions", "--db", str(seeded), "--days", "36500"], env={"COLUMNS": "200"}
    )
    assert done.exit_code == 0, done.output
    header = next(
        line for line in done.output.splitlines() if "session" in line and "model" in line
    )
    for column in (
        "session",
        "model",
        "started",
        "turns",
        "tools",
        "cost",
        "cache hit",
        "ctx peak",
        "findings",
    ):
        assert column in header
    assert "90%" in done.output  # cache hit = 900 / (900 + 100)


def test_no_prompts_stores_neither_prompt_nor_summary(tmp_path: Path) -> None:
    from clauditor.sessions.tracker import SessionTracker
    from clauditor.store.store import Store
    from tests.helpers import fixture_posts
    from tests.sessions.replay import Replayer

    clock = ManualClock()
    store = Store(tmp_path / "np.db", flush_interval=0.02, clock=clock, no_prompts=True)
    store.start()
    tracker = SessionTracker(clock, listeners=[store])
    replay = Replayer(tracker, clock)
    for record in fixture_posts("b_tool_bash"):
        replay.exchange(record)
    tracker.shutdown()
    assert store.writer.flush(timeout=5)
    store.stop()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("np.db*"))
    assert b"Run the shell command" not in raw
    assert b"The tool returned" not in raw
    row = next(iter(sqlite_utils.Database(tmp_path / "np.db")["sessions"].rows))
    assert row["first_prompt"] is None and row["summary"] is None and row["requests"] == 2


def test_piped_reports_are_not_squeezed_to_80_columns(seeded: Path) -> None:
    # CliRunner's output is no TTY, as `clauditor sessions | grep auth` or `> file` is.
    done = CliRunner().invoke(main, ["sessions", "--db", str(seeded), "--days", "36500"])
    assert done.exit_code == 0, done.output
    rows = [line for line in done.output.splitlines() if "s-auth-new" in line or "auth" in line]
    assert any("auth middleware rejects valid tokens" in line for line in rows), rows
    assert max(len(line) for line in done.output.splitlines()) > 80


def _render_sessions(rows: list[dict], width: int) -> list[str]:
    from rich.console import Console

    from clauditor.reports.render import sessions_table

    console = Console(width=width, record=True, force_terminal=False, color_system=None)
    console.print(sessions_table(rows, title="last 7 days"))
    return [line.rstrip() for line in console.export_text().splitlines()]


ROW = {
    "session_id": "da3a0740-1111-4000-8000-000000000001",
    "model": "claude-opus-5-5",
    "started_at": "2026-12-01T10:00:00.000Z",
    "turns": 12,
    "tool_calls": 48,
    "estimated_cost_usd": 3.4567,
    "cache_read_tokens": 900,
    "input_tokens": 50,
    "cache_creation_tokens": 50,
    "context_peak": 0.42,
    "findings": 2,
    "project": "shop-api",
    "first_prompt": "fix the auth middleware in src/app.py and add tests for the token expiry",
}


def test_the_sessions_list_drops_columns_to_fit_instead_of_squeezing_them() -> None:
    at_80 = _render_sessions([ROW], 80)
    assert at_80[1:] == [
        "session    started       turns      cost   model        first prompt",
        "─" * 80,
        "da3a0740   12-01 10:00      12     $3.46   opus-5-5     fix the auth middleware…",
    ]
    at_200 = _render_sessions([ROW], 200)
    assert at_200[1].split() == [
        "session", "started", "turns", "cost", "model", "project", "tools", "cache", "hit",
        "ctx", "peak", "findings", "first", "prompt",
    ]  # fmt: skip
    assert at_200[3].endswith("42%          2   " + ROW["first_prompt"])
    assert "2026-12-01 10:00" in at_200[3]  # wide: the whole date
    at_40 = _render_sessions([ROW], 40)
    assert at_40[3] == "da3a0740   fix the auth middleware in s…"
    for lines, width in ((at_80, 80), (at_200, 200), (at_40, 40)):
        assert all(len(line) <= width for line in lines)
        body = [line.split("   ") for line in lines[3:]]
        assert all("…" not in cell for row in body for cell in row[:-1])  # only the prompt
