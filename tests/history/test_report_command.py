"""`clauditor report` end to end in-process: the CLI on a database file (click's runner)
and `GET /api/report` on a core's app (httpx over ASGI), both on the seeded history."""

from __future__ import annotations

import json
import types
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from clauditor.api.app import create_app
from clauditor.cli import main
from clauditor.clock import ManualClock
from clauditor.core import Core, CoreConfig
from clauditor.store.database import open_database
from tests.history.trend_seed import NOW, OPUS, S1, S2, S3, S4, SONNET, UNKNOWN, seed


@pytest.fixture
def at_now(monkeypatch: pytest.MonkeyPatch) -> None:
    """The file source reads the wall clock: pin it to the seed's 2026-11-30 12:00 UTC."""
    monkeypatch.setattr("clauditor.reports.source.time", types.SimpleNamespace(time=lambda: NOW))


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["report", *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_json_from_the_database_file(tmp_path: Path, at_now: None) -> None:
    code, out, _ = _run("--db", str(seed(tmp_path / "h.db")), "--json")
    assert code == 0
    report = json.loads(out)
    assert {"days", "time", "top_sessions"} <= report.keys()
    assert report["window_days"] == 7 and report["by"] == "day"
    days = report["days"]
    assert [d["date"] for d in days] == [f"2026-11-{n}" for n in range(24, 31)]
    # 11-27's $2.00 (s0, 2.0 USD of Opus output) is in the 7 days now
    assert [d["cost_usd"] for d in days] == [0.0, 0.0, 0.0, 2.0, 0.548, 0.566, None]
    assert days[-1]["cost_by_model"] == {UNKNOWN: None}
    assert days[-3]["cost_by_model"] == {OPUS: 0.244, SONNET: 0.304}
    assert [d["sessions"] for d in days] == [0, 0, 0, 1, 2, 2, 1]
    assert [d["turns"] for d in days] == [0, 0, 0, 1, 2, 2, 1]
    assert report["cost_usd"] == 3.114
    assert [s["session_id"] for s in report["top_sessions"]][:4] == [
        "eeee0000-s0",
        S1,
        S3,
        S2,
    ]
    assert report["top_sessions"][-1]["session_id"] == S4  # the unpriced one, last
    assert report["time"]["waiting_for_model_ms"] == 41_000 + 99_000


def test_by_and_days_reach_the_library(tmp_path: Path, at_now: None) -> None:
    code, out, _ = _run(
        "--db", str(seed(tmp_path / "h.db")), "--json", "--days", "3", "--by", "model"
    )
    assert code == 0
    report = json.loads(out)
    assert (report["window_days"], report["by"]) == (3, "model")
    assert [(g["key"], g["cost_usd"]) for g in report["groups"]] == [
        (OPUS, 0.81),
        (SONNET, 0.304),
        (UNKNOWN, None),
    ]


def test_text_when_piped_is_plain_and_whole(tmp_path: Path, at_now: None) -> None:
    code, out, _ = _run("--db", str(seed(tmp_path / "h.db")), "--days", "3", "--by", "project")
    assert code == 0
    assert "\x1b" not in out  # no colour codes into a pipe
    lines = [line.rstrip() for line in out.splitlines()]
    assert lines[0] == "clauditor report: the last 3 days (2026-11-28 to 2026-11-30 UTC)"
    assert "cost by project" in lines
    assert "api " + "█" * 24 + " $0.71" in lines
    sentence = next(line for line in lines if line.startswith("1 min 40 s in 6 turns:"))
    # 240 columns when piped: the whole sentence on one line
    assert sentence.endswith(
        "41 % waiting for the model, 35 % tools, 18 % you, 4 % generating, 1 % retries, "
        "1 % subagents"
    )


def test_an_empty_database_says_so_and_exits_0(tmp_path: Path, at_now: None) -> None:
    open_database(tmp_path / "empty.db").conn.close()
    code, out, _ = _run("--db", str(tmp_path / "empty.db"))
    assert (code, out) == (0, "No sessions in the last 7 days.\n")


def test_a_missing_database_is_one_line(tmp_path: Path) -> None:
    code, out, err = _run("--db", str(tmp_path / "none.db"))
    assert (code, out, err) == (1, "", f"clauditor: no database at {tmp_path / 'none.db'}\n")


def test_a_bad_grouping_is_refused_by_the_cli(tmp_path: Path) -> None:
    code, _, err = _run("--db", str(tmp_path / "none.db"), "--by", "week")
    assert code == 2 and "'week' is not one of 'day', 'model', 'project'" in err


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """A core's app over its own (seeded) database, its clock at the seed's now."""
    core = Core(CoreConfig(db=seed(tmp_path / "h.db")), clock=ManualClock(NOW))
    transport = httpx.ASGITransport(app=create_app(core.api_deps()))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        yield client
    core.telemetry.shutdown()


async def test_the_api_route_answers_the_same_report(api: httpx.AsyncClient) -> None:
    r = await api.get("/api/report", params={"days": 3, "by": "project"})
    assert r.status_code == 200
    report = r.json()
    assert (report["window_days"], report["by"], report["cost_usd"]) == (3, "project", 1.114)
    assert [d["cost_usd"] for d in report["days"]] == [0.548, 0.566, None]
    assert [(g["key"], g["cost_usd"]) for g in report["groups"]] == [("api", 0.71), ("web", 0.404)]
    assert report["time"]["share"]["waiting_for_model"] == 0.41
    assert [s["session_id"] for s in report["top_sessions"]] == [S1, S3, S2, S4]
    default = (await api.get("/api/report")).json()
    assert (default["window_days"], default["by"]) == (7, "day")


@pytest.mark.parametrize("params", [{"by": "week"}, {"days": 0}, {"days": 367}, {"days": "x"}])
async def test_the_api_route_refuses_bad_parameters(
    api: httpx.AsyncClient, params: dict[str, object]
) -> None:
    assert (await api.get("/api/report", params=params)).status_code == 422
