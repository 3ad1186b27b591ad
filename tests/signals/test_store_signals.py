"""Signals in the store: the row columns, a resumed session, the period totals (SQL)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import sqlite_utils

from clauditor.clock import ManualClock, iso
from clauditor.store.database import connect
from clauditor.store.store import Store
from clauditor.store.totals import period_starts
from tests.signals.scenario import SESSION, Scenario, record, usage

SONNET = "claude-sonnet-4-5-20250929"


def _run(tmp_path: Path) -> tuple[Store, Scenario, list[float]]:
    store = Store(tmp_path / "s.db", flush_interval=0.05)
    store.start()
    sc = Scenario()
    sc.tracker.listeners.append(store)
    costs = []
    r = sc.send(record("one", usage(input=100, write_5m=20_000, output=50)))
    costs.append(r.signals.cost_usd)
    sc.wait(400)
    r = sc.send(record("two", usage(input=60, write_5m=20_600, output=40)))  # miss_ttl
    costs.append(r.signals.cost_usd)
    sc.wait(10)
    r = sc.send(record("three", usage(input=10, output=5), response_model=SONNET))
    costs.append(r.signals.cost_usd)
    sc.send(record("four", usage(), status=529))
    assert store.writer.flush(5)
    return store, sc, costs


def test_rows_carry_the_signals_and_a_resumed_session_keeps_counting(tmp_path: Path) -> None:
    store, sc, costs = _run(tmp_path)
    try:
        db = connect(store.path)
        reqs = list(db.query("select * from requests order by started_at"))
        assert [r["cache_status"] for r in reqs] == ["cold", "miss_ttl", None, None]
        assert reqs[1]["cache_miss_waste_usd"] == pytest.approx(20_000 * (6.25 - 0.5) / 1e6)
        assert reqs[1]["cache_rebuild_cost_usd"] == pytest.approx(20_600 * 6.25 / 1e6)
        assert [r["fallback"] for r in reqs] == [0, 0, 1, 0]
        assert reqs[2]["model_fallback_actual"] == SONNET
        assert reqs[0]["cost_usd"] == pytest.approx(costs[0])
        assert reqs[0]["context_fill"] == pytest.approx(20_100 / 1_000_000)
        (srow,) = db.query("select * from sessions")
        assert srow["estimated_cost_usd"] == pytest.approx(sum(costs))
        assert (srow["fallbacks"], srow["compactions"]) == (1, 0)
        turns = list(db.query("select cost_usd from turns order by turn"))
        assert [t["cost_usd"] for t in turns] == pytest.approx([*costs, 0.0])
        db.conn.close()
        stored = asyncio.run(store.session_detail(SESSION))
        assert stored is not None
        assert stored["session"]["estimated_cost_usd"] == round(sum(costs), 6)
        assert stored["session"]["fallbacks"] == 1
        assert stored["requests"][1]["cache_status"] == "miss_ttl"
        assert stored["turns"][0]["cost_usd"] == pytest.approx(costs[0])

        # A new core resumes the session: its totals continue from the stored ones.
        again = Scenario(clock=ManualClock(sc.clock.now() + 60), loader=store.load_session)
        r = again.send(record("five", usage(input=1_000, output=100)))
        s = again.session()
        assert s.signals.cost_usd == pytest.approx(sum(costs) + r.signals.cost_usd)
        assert s.signals.fallbacks == 1
    finally:
        store.stop()


def test_period_totals(tmp_path: Path) -> None:
    store, sc, costs = _run(tmp_path)
    try:
        now = sc.clock.now()
        out = asyncio.run(store.summary(now))
        assert set(out) == {"today", "week", "month", "quota_top_sessions"}
        assert out["quota_top_sessions"] == {}  # no quota headers in these requests
        today = out["today"]
        assert today["since"] == "2027-01-15T00:00:00.000Z"
        assert (today["sessions"], today["turns"], today["requests"]) == (1, 4, 4)
        assert today["tokens"] == {
            "input": 170,
            "output": 95,
            "cache_read": 0,
            "cache_creation": 40_600,
            "cache_creation_1h": 0,
        }
        assert today["cost_usd"] == round(sum(costs), 6)
        # By class, hand-computed: two requests on Opus 4.8 ($5 / $25 / $6.25), one answered
        # by Sonnet 4.5 ($3 / $15), a 529 with no usage.
        assert today["cost_by_class"] == {
            "input": round(((100 + 60) * 5 + 10 * 3) / 1e6, 6),
            "output": round(((50 + 40) * 25 + 5 * 15) / 1e6, 6),
            "cache_write_5m": round(40_600 * 6.25 / 1e6, 6),
            "cache_write_1h": 0.0,
            "cache_read": 0.0,
        }
        assert today["cache_hit_ratio"] == 0.0
        assert today["cache_statuses"] == {"cold": 1, "miss_ttl": 1}
        assert (today["fallbacks"], today["errors"], today["retries"]) == (1, 1, 0)
        assert today["errors_by_type"] == {"http_529": 1}
        assert today["cost_by_day_usd"] == {"2027-01-15": round(sum(costs), 6)}
        assert out["week"]["since"] == "2027-01-11T00:00:00.000Z"
        assert out["month"]["since"] == "2027-01-01T00:00:00.000Z"
        assert out["week"]["cost_usd"] == today["cost_usd"]
        # Nothing before the period counts; nothing spent is $0, not unknown.
        tomorrow = asyncio.run(store.summary(now + 86_400))["today"]
        assert (tomorrow["requests"], tomorrow["cost_usd"]) == (0, 0.0)
        assert set(tomorrow["cost_by_class"].values()) == {0.0}
        # The weekly count a restarted core seeds from.
        seeded = store.tokens_since(period_starts(now)["week"])
        assert (seeded.input, seeded.output, seeded.cache_creation) == (170, 95, 40_600)
    finally:
        store.stop()


def test_a_stored_session_keeps_its_cost_by_class_and_subagent_runs(tmp_path: Path) -> None:
    from tests.sessions.test_claude_code_2_1_332 import background_run

    run, tool_use_id = background_run()
    session = run.session
    store = Store(tmp_path / "s.db", flush_interval=0.05)
    store.start()
    try:
        # What the tracker's listener saw, written as it would have been.
        for turn in session.turns:
            store.turn_ended(session, turn)
        for r in run.tracker.recent_requests(session.session_id):
            store.request_finished(session, r)
        closed = run.tracker._closed_agents[session.session_id][tool_use_id]
        store.tool_result(session, closed)
        store.session_changed(session)
        assert store.writer.flush(5)
        stored = asyncio.run(store.session_detail(session.session_id))
    finally:
        store.stop()
    assert stored is not None
    live = session.as_api()
    for key in ("estimated_cost_usd", "cost_by_class", "main_cost_usd", "subagent_cost_usd"):
        assert stored["session"][key] == live[key], key
    live_turns = [t.as_api() for t in session.turns]
    assert [t["subagents"] for t in stored["turns"]] == [t["subagents"] for t in live_turns]
    assert [t["cost_by_class"] for t in stored["turns"]] == [t["cost_by_class"] for t in live_turns]
    assert [t["trigger"] for t in stored["turns"]] == ["prompt", "task_notification"]
    # Where each turn's time went reads back as the live turn has it.
    assert [t["time"] for t in stored["turns"]] == [t["time"] for t in live_turns]
    assert stored["turns"][0]["time"]["tools_ms"] == 500.0  # the launch acknowledgement


def test_the_cost_columns_are_the_cost_classes() -> None:
    from clauditor.sessions.signals.prices import COST_CLASSES
    from clauditor.store.schema import CLASS_COLUMNS

    assert tuple(f"cost_{c}_usd" for c in COST_CLASSES) == CLASS_COLUMNS


def test_the_time_columns_are_the_time_parts() -> None:
    from clauditor.sessions.timing import TIME_PARTS
    from clauditor.store.schema import TIME_COLUMNS

    assert TIME_PARTS == TIME_COLUMNS


def test_the_summary_names_the_sessions_that_used_the_quota_windows(tmp_path: Path) -> None:
    from clauditor.store.schema import migrate
    from clauditor.store.totals import quota_top_sessions

    now = 1_800_000_000.0
    db = sqlite_utils.Database(tmp_path / "q.db")
    migrate(db)

    def session(sid: str, hours_ago: float, share: dict[str, float]) -> None:
        db.table("sessions").insert(
            {
                "session_id": sid,
                "status": "active",
                "started_at": iso(now - 86_400),
                "last_activity_at": iso(now - hours_ago * 3600),
                "project": "app",
                "first_prompt": f"prompt {sid}",
                "quota_share_json": json.dumps(share),
            }
        )

    session("s1", 0.1, {"5h": 0.06})
    session("s2", 1, {"5h": 0.07, "7d": 0.01})
    session("s3", 48, {"7d": 0.2})
    session("s4", 6, {"5h": 0.5})  # active 6 h ago: not in this 5 h window
    session("s5", 1, {})
    top = quota_top_sessions(db, now)
    assert {w: [(r["session_id"], r["share"]) for r in rows] for w, rows in top.items()} == {
        "5h": [("s2", 0.07), ("s1", 0.06)],
        "7d": [("s3", 0.2), ("s2", 0.01)],
    }
