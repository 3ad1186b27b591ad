"""`clauditor models`: the catalog at today's rates and the models seen that it lacks."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from rich.console import Console

from clauditor.cli import main
from clauditor.clock import iso
from clauditor.reports.models import models_report, models_view
from clauditor.sessions.signals.prices import packaged_prices
from clauditor.store import history
from clauditor.store.database import open_database

NOW = 1_796_000_000.0  # 2026-11-30


def seeded(tmp_path: Path) -> Path:
    path = tmp_path / "h.db"
    db = open_database(path)
    rows = [
        ("a", "claude-opus-5-5", "claude-opus-5-5", NOW - 60),
        ("b", "claude-opus-6", None, NOW - 30),  # unknown, never answered
        ("c", "claude-opus-6", "claude-opus-6-20270101", NOW - 10),  # unknown both ways
        ("d", "claude-sonnet-5-5", "claude-sonnet-5-5-20260901", NOW - 5),  # dated: known
    ]
    db.table("requests").insert_all(
        {
            "uid": uid,
            "session_id": "s",
            "model_requested": asked,
            "model_responded": answered,
            "started_at": iso(ts),
        }
        for uid, asked, answered, ts in rows
    )
    db.conn.close()
    return path


def test_the_report_lists_the_catalog_and_only_the_unknown_models_seen(tmp_path: Path) -> None:
    db = open_database(seeded(tmp_path))
    report = models_report(packaged_prices(), history.models_seen(db), NOW)
    assert [(r["model"], r["requests"]) for r in report["unknown_seen"]] == [
        ("claude-opus-6-20270101", 1),
        ("claude-opus-6", 2),
    ]
    by_id = {m["model"]: m for m in report["catalog"]}
    opus = by_id["claude-opus-5-5"]
    assert (opus["input"], opus["output"], opus["cache_read"], opus["context_window"]) == (
        4,
        20,
        0.2,
        1_000_000,
    )
    sonnet = by_id["claude-sonnet-5-5"]
    assert (sonnet["cache_read"], sonnet["since"], sonnet["rates_before"]["cache_read"]) == (
        0.1,
        "2026-10-07",
        0.2,
    )


def render(report: dict) -> str:
    console = Console(width=80, record=True, force_terminal=False)
    console.print(models_view(report))
    return console.export_text()


def test_the_view_reads_at_80_columns(tmp_path: Path) -> None:
    db = open_database(seeded(tmp_path))
    text = render(models_report(packaged_prices(), history.models_seen(db), NOW))
    assert all(len(line) <= 80 for line in text.splitlines())
    assert "│ claude-opus-5-5   │     4 │     20 │        5 │        8 │  0.2 │     1M │" in text
    assert "claude-sonnet-5-5: since 2026-10-07: cache read 0.1 (was 0.2)" in text
    assert "Seen, not in the catalog" in text
    assert "│ claude-opus-6          │        2 │" in text


def test_cli_models_from_a_database_file_and_with_no_history(tmp_path: Path) -> None:
    done = CliRunner().invoke(main, ["models", "--db", str(seeded(tmp_path)), "--json"])
    assert done.exit_code == 0, done.output
    report = json.loads(done.output)
    assert [r["model"] for r in report["unknown_seen"]] == [
        "claude-opus-6-20270101",
        "claude-opus-6",
    ]
    # A user's price file adds the model: then it is known.
    prices = tmp_path / "p.json"
    prices.write_text(
        json.dumps(
            {
                "models": {
                    "claude-opus-6": {"input": 5, "output": 25, "cache_write_5m": 6.25,
                                      "cache_write_1h": 10, "cache_read": 0.5,
                                      "context_window": 1000000}
                }
            }
        )
    )  # fmt: skip
    args = ["models", "--db", str(seeded(tmp_path / "x")), "--prices", str(prices), "--json"]
    done = CliRunner().invoke(main, args)
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)["unknown_seen"] == []
    # Nothing running and no database: the catalog alone.
    env = {"XDG_DATA_HOME": str(tmp_path / "empty"), "CLAUDITOR_DB": ""}
    done = CliRunner().invoke(main, ["models", "--url", "http://127.0.0.1:9"], env=env)
    assert done.exit_code == 0, done.output
    assert "claude-opus-5-5" in done.output
