"""`clauditor report` numbers: computed from a seeded database, checked against the sums
worked out by hand in trend_seed.py (tokens at list prices, ms added up per part)."""

from __future__ import annotations

from pathlib import Path

import pytest

from clauditor.store.database import connect, open_database
from clauditor.store.trends import nearest_rank, trend_report, window
from tests.history.trend_seed import NOW, OPUS, S1, S2, S3, S4, SONNET, UNKNOWN, seed


@pytest.fixture
def seeded(tmp_path: Path) -> Path:
    return seed(tmp_path / "h.db")


def _report(path: Path, days: int = 3, by: str = "day") -> dict:
    db = connect(path)
    try:
        return trend_report(db, days, by, now=NOW)
    finally:
        db.conn.close()


def test_the_days_have_the_promised_fields_and_the_hand_computed_values(seeded: Path) -> None:
    days = _report(seeded)["days"]
    assert [
        {
            k: d[k]
            for k in ("date", "cost_usd", "cost_by_model", "tokens_by_class", "sessions", "turns")
        }
        for d in days
    ] == [
        {
            "date": "2026-11-28",
            "cost_usd": 0.548,  # 0.244 + 0.304
            "cost_by_model": {OPUS: 0.244, SONNET: 0.304},
            "tokens_by_class": {
                "input": 3000,
                "output": 15_000,
                "cache_write_5m": 20_000,
                "cache_write_1h": 40_000,
                "cache_read": 600_000,
            },
            "sessions": 2,
            "turns": 2,  # s2's task notification is a turn, not a prompt
        },
        {
            "date": "2026-11-29",
            "cost_usd": 0.566,  # 0.162 + 0.404 + the failed stream's 0.0
            "cost_by_model": {OPUS: 0.566},
            "tokens_by_class": {
                "input": 1500,
                "output": 12_500,
                "cache_write_5m": 30_000,  # 10k (r3) + 20k of r4's 30k
                "cache_write_1h": 10_000,
                "cache_read": 400_000,
            },
            "sessions": 2,
            "turns": 2,
        },
        {
            "date": "2026-11-30",
            "cost_usd": None,  # its one request could not be priced: unknown, not 0.0
            "cost_by_model": {UNKNOWN: None},
            "tokens_by_class": {
                "input": 3000,
                "output": 1000,
                "cache_write_5m": 0,
                "cache_write_1h": 0,
                "cache_read": 50_000,
            },
            "sessions": 1,
            "turns": 1,
        },
    ]
    assert [(d["turns_all"], d["requests"], d["unpriced_requests"]) for d in days] == [
        (3, 2, 0),
        (2, 3, 0),
        (1, 1, 1),
    ]


def test_totals_leave_out_what_came_before_the_window(seeded: Path) -> None:
    report = _report(seeded)
    assert (report["since"], report["until"]) == (
        "2026-11-28T00:00:00.000Z",
        "2026-12-01T00:00:00.000Z",
    )
    # s0's $2.00 on 11-27 is not in: 0.548 + 0.566
    assert report["cost_usd"] == 1.114
    assert (report["sessions"], report["turns"], report["turns_all"]) == (4, 5, 6)
    assert (report["requests"], report["unpriced_requests"]) == (6, 1)
    assert report["tokens_by_class"] == {
        "input": 7500,
        "output": 28_500,
        "cache_write_5m": 50_000,
        "cache_write_1h": 50_000,
        "cache_read": 1_050_000,
    }
    # Cache reads are 89 % of the tokens and 14 % of the money; output the reverse.
    assert report["cost_by_class"] == {
        "input": 0.014,
        "output": 0.45,
        "cache_write_5m": 0.25,
        "cache_write_1h": 0.24,
        "cache_read": 0.16,
    }
    # reads / (uncached input + reads + writes) = 1,050,000 / 1,157,500
    assert report["cache_hit_ratio"] == pytest.approx(1_050_000 / 1_157_500, abs=1e-6)


def test_ttft_percentiles_are_nearest_rank_over_streams_that_did_not_fail(seeded: Path) -> None:
    report = _report(seeded)
    # 300, 500, 700, 900, 1200 (the failed stream's 100 and 11-27's 50 left out):
    # p50 = the ceil(2.5) = 3rd, p95 = the ceil(4.75) = 5th
    assert (report["ttft_p50_ms"], report["ttft_p95_ms"], report["ttft_requests"]) == (
        700.0,
        1200.0,
        5,
    )


def test_nearest_rank_by_hand() -> None:
    values = [15.0, 20.0, 35.0, 40.0, 50.0]
    # ranks ceil(p * 5 / 100): 5 -> 1st, 30 -> 2nd, 40 -> 2nd, 50 -> 3rd, 100 -> 5th
    assert [nearest_rank(values, p) for p in (5, 30, 40, 50, 100)] == [15, 20, 20, 35, 50]
    twenty = [float(v) for v in range(20, 0, -1)]  # unsorted on purpose
    assert (nearest_rank(twenty, 50), nearest_rank(twenty, 95)) == (10, 19)  # exactly 10th, 19th
    assert nearest_rank([7.0], 95) == 7
    assert nearest_rank([], 50) is None


def test_time_breakdown_sums_each_part_and_shares_their_total(seeded: Path) -> None:
    assert _report(seeded)["time"] == {
        "waiting_for_model_ms": 41_000,
        "generating_ms": 4000,
        "tools_ms": 35_000,
        "waiting_for_you_ms": 18_000,
        "retries_ms": 1000,
        "subagents_ms": 1000,  # only s3's turn knows it: the others' null is not 0
        "total_ms": 100_000,
        "share": {
            "waiting_for_model": 0.41,
            "generating": 0.04,
            "tools": 0.35,
            "waiting_for_you": 0.18,
            "retries": 0.01,
            "subagents": 0.01,
        },
    }


def test_a_database_without_the_time_columns_has_an_unknown_breakdown(tmp_path: Path) -> None:
    report = _report(seed(tmp_path / "old.db", time_columns=False))
    assert report["time"] == {
        "waiting_for_model_ms": None,
        "generating_ms": None,
        "tools_ms": None,
        "waiting_for_you_ms": None,
        "retries_ms": None,
        "subagents_ms": None,
        "total_ms": None,
        "share": None,
    }
    assert report["cost_usd"] == 1.114  # everything else as with them


def test_top_sessions_and_projects_rank_by_the_windows_cost(seeded: Path) -> None:
    report = _report(seeded)
    assert [
        (s["session_id"], s["project"], s["first_prompt"], s["cost_usd"])
        for s in report["top_sessions"]
    ] == [
        (S1, "api", "fix the auth middleware", 0.406),  # 0.244 + 0.162
        (S3, "web", "make the login page faster", 0.404),
        (S2, "api", "write the release notes", 0.304),
        (S4, "web", "try the new model", None),  # unknown cost: after every known one
    ]
    assert report["top_projects"] == [
        {"project": "api", "cost_usd": 0.71, "requests": 3, "unpriced_requests": 0, "sessions": 2},
        {"project": "web", "cost_usd": 0.404, "requests": 3, "unpriced_requests": 1, "sessions": 2},
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("by", "expected"),
    [
        ("day", [("2026-11-28", 0.548), ("2026-11-29", 0.566), ("2026-11-30", None)]),
        ("model", [(OPUS, 0.81), (SONNET, 0.304), (UNKNOWN, None)]),
        ("project", [("api", 0.71), ("web", 0.404)]),
    ],
)
def test_cost_groups_by_day_model_or_project(seeded: Path, by: str, expected: list) -> None:
    report = _report(seeded, by=by)
    assert report["by"] == by
    assert [(g["key"], g["cost_usd"]) for g in report["groups"]] == expected


def test_one_day_is_today_alone(seeded: Path) -> None:
    report = _report(seeded, days=1)
    assert [d["date"] for d in report["days"]] == ["2026-11-30"]
    assert (report["cost_usd"], report["unpriced_requests"], report["sessions"]) == (None, 1, 1)
    assert report["cost_by_class"] is None  # nothing priced: unknown, not zeros


def test_every_day_of_the_window_is_listed_even_an_empty_one(tmp_path: Path) -> None:
    db = open_database(tmp_path / "empty.db")
    try:
        report = trend_report(db, 7, "day", now=NOW)
    finally:
        db.conn.close()
    assert [d["date"] for d in report["days"]] == [f"2026-11-{n}" for n in range(24, 31)]
    assert {d["cost_usd"] for d in report["days"]} == {0.0}  # nothing spent, nothing unknown
    assert (report["sessions"], report["top_sessions"], report["time"]["share"]) == (0, [], None)


def test_the_window_is_whole_utc_days() -> None:
    start, end = window(3, NOW)  # NOW is 2026-11-30 12:00 UTC
    assert (end - start, NOW - start) == (3 * 86_400, 2.5 * 86_400)


def test_bad_arguments_are_refused(seeded: Path) -> None:
    with pytest.raises(ValueError, match="by must be one of day, model, project"):
        _report(seeded, by="week")
    with pytest.raises(ValueError, match="days must be between 1 and 366"):
        _report(seeded, days=0)
