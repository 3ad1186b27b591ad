"""Every route through `httpx.ASGITransport` on a real Core (real tracker, store on a
SQLite file, alert engine), fed recorded Claude Code runs through the real interpreter.

The routes declare response models (api/schemas): each answer must be what its producer
built, not a filtered or rebuilt copy, so the JSON users had stays the JSON they get; and
each error body (written by hand, past the models) must match its documented schema."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from clauditor.api.app import create_app
from clauditor.api.schemas import ErrorOut, StatuslineMissingOut
from clauditor.clock import ManualClock
from clauditor.core import Core, CoreConfig
from clauditor.reports.models import models_report
from clauditor.sessions.client_view import statusline_view
from tests.helpers import RECORDED_SESSIONS, fixture_posts, headers_of
from tests.sessions.replay import Replayer

T0 = 1_796_000_000.0
RUNS = ("b_tool_bash", "f_529_retry", "e_subagent", "e_compact", "j_tool_read_ratelimit_warning")
# Subscription and API-key limits, as Anthropic sends them, on the last run's answers.
QUOTA = {
    "anthropic-ratelimit-unified-status": "allowed_warning",
    "anthropic-ratelimit-unified-reset": str(int(T0) + 3600),
    "anthropic-ratelimit-unified-representative-claim": "five_hour",
    "anthropic-ratelimit-unified-5h-utilization": "0.82",
    "anthropic-ratelimit-unified-5h-reset": str(int(T0) + 3600),
    "anthropic-ratelimit-unified-5h-status": "allowed_warning",
    "anthropic-ratelimit-unified-7d-utilization": "0.31",
    "anthropic-ratelimit-requests-limit": "50",
    "anthropic-ratelimit-requests-remaining": "49",
    "anthropic-ratelimit-requests-reset": "2026-12-01T10:00:00Z",
}
# Claude Code's status-line payload (2.1.332), its numbers set apart from the wire's.
STATUSLINE = {
    "model": {"id": "claude-opus-5-5"},
    "version": "2.1.332",
    "cost": {"total_cost_usd": 9.5, "total_duration_ms": 61000, "total_api_duration_ms": 12000},
    "context_window": {
        "context_window_size": 200000,
        "used_percentage": 12,
        "current_usage": {
            "input_tokens": 3,
            "cache_creation_input_tokens": 500,
            "cache_read_input_tokens": 20000,
        },
    },
    "rate_limits": {"five_hour": {"used_percentage": 50, "resets_at": int(T0) + 3600}},
    "prompt_cache": {"warm": True, "ttl": "5m", "expires_at": int(T0) - 3000, "requests": 4},
}


class Played:
    def __init__(self, core: Core, client: httpx.AsyncClient, sessions: list[str]) -> None:
        self.core, self.client, self.sessions = core, client, sessions

    async def get(self, path: str) -> Any:
        response = await self.client.get(path)
        assert response.status_code == 200, (path, response.text)
        assert response.headers["content-type"] == "application/json"
        return response.json()


def _core(tmp_path: Path, clock: ManualClock, on_alert: str | None = None) -> Core:
    claude_dir = tmp_path / "claude"
    (claude_dir / "sessions").mkdir(parents=True, exist_ok=True)
    config = CoreConfig(db=tmp_path / "r.db", claude_dir=claude_dir, on_alert=on_alert)
    core = Core(config, clock=clock)
    # A live detail flushes the writer first: batches of 0.05 s (the core's are 0.5 s)
    # keep each answer quick, as the unit tests' stores do.
    core.store.writer.interval = 0.05
    core.store.start()
    return core


@pytest.fixture
async def played(tmp_path: Path) -> AsyncIterator[Played]:
    clock = ManualClock(T0)
    core = _core(tmp_path, clock, on_alert="true")
    replay = Replayer(core.tracker, clock)
    sessions = []
    for name in RUNS:
        for post in fixture_posts(name):
            quota = QUOTA if name == RUNS[-1] else None
            replay.exchange(post, duration=1.0, quota=quota)
            clock.advance(0.5)
        sessions.append(headers_of(post)["x-claude-code-session-id"])
    assert core.store.writer.flush(timeout=10.0)
    assert core.alert_command is not None
    await core.alert_command.close()  # the --on-alert runs the alerts started, done
    transport = httpx.ASGITransport(app=create_app(core.api_deps()))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        yield Played(core, client, sessions)
    core.store.stop()
    core.telemetry.shutdown()


async def test_stats_is_the_cores_counters(played: Played) -> None:
    assert played.core.registry is not None
    played.core.registry.poll()  # as the core's tick does
    body = await played.get("/api/stats")
    built = played.core.stats()
    for volatile in ("watch", "priority"):  # asyncio tasks, loop lag: move between the calls
        assert set(body.pop(volatile)) == set(built.pop(volatile))
    assert body == built
    assert body["registry"]["available"] is True and body["registry"]["polls"] == 1
    # `true` ran once per alert: f_529_retry's error streak, then the quota warning.
    kinds = [a["kind"] for a in played.core.alerts.view()["recent"]]
    assert sorted(kinds) == ["error_streak", "quota_warning"]
    assert body["alerts"]["command"] == {"ran": 2, "failed": 0, "timed_out": 0, "dropped": 0}
    assert body["tracker"]["live_sessions"] == len(set(played.sessions))


async def test_summary_is_the_stored_totals_with_the_live_views(played: Played) -> None:
    body = await played.get("/api/summary")
    now = played.core.clock.now()
    stored = await played.core.store.summary(now)
    signals = played.core.tracker.signals
    assert {k: body[k] for k in stored} == stored
    assert body["quota"] == signals.quota_view()
    assert body["weekly"] == signals.weekly_view()
    assert body["compaction_thresholds"] == signals.learned_thresholds()
    # The headers above, read back: an independent check that the quota object is full.
    assert body["quota"]["windows"]["5h"]["utilization"] == 0.82
    assert body["quota"]["limits"]["requests"] == {
        "limit": 50,
        "remaining": 49,
        "reset_at": "2026-12-01T10:00:00.000Z",
    }
    assert body["today"]["errors_by_type"] == {"http_529": 3}  # f_529_retry's three 529s


async def test_report_is_the_stored_report_for_each_grouping(played: Played) -> None:
    now = played.core.clock.now()
    for by in ("day", "model", "project"):
        body = await played.get(f"/api/report?by={by}&days=3")
        assert body == await played.core.store.report(3, by, now)
        assert body["by"] == by and len(body["days"]) == 3


async def test_models_alerts_recall_and_diagnosis_are_their_producers(played: Played) -> None:
    core = played.core
    seen = await core.store.models_seen()
    expected = models_report(core.tracker.signals.prices, seen, core.clock.now())
    body = await played.get("/api/models")
    assert body == expected
    assert any(m["changes"] and "from" in m["changes"][0] for m in body["catalog"])

    alerts = await played.get("/api/alerts")
    assert alerts == core.alerts.view()
    assert [a["kind"] for a in alerts["recent"]].count("error_streak") == 1

    recall = await played.get("/api/recall?q=shell")
    assert recall == {"query": "shell", "sessions": await core.store.recall("shell")}
    assert recall["sessions"][0]["session_id"] == played.sessions[0]  # "Run the shell command"

    sid = played.sessions[0]
    diagnosis = await played.get(f"/api/diagnosis/{sid[:8]}")
    assert diagnosis == await core.store.diagnosis(sid)


async def test_statusline_and_client_view(played: Played) -> None:
    core, sid = played.core, played.sessions[-1]
    session = core.tracker.sessions[sid]
    now = core.clock.now()
    line = await played.get(f"/api/statusline/{sid}")
    assert line == statusline_view(session, core.tracker.recent_requests(sid), 0, now)

    response = await played.client.post(f"/api/sessions/{sid}/client_view", json=STATUSLINE)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["client_view"] == session.client_view
    assert body["client_drift"] == session.client_drift
    # Claude Code's $9.50 against the wire's few cents, and its cache expiry an hour off.
    assert set(body["client_drift"]) >= {"cost_usd", "cache_expires_at"}
    expiry = body["client_drift"]["cache_expires_at"]
    assert expiry["client"] == "2026-11-30T00:03:20.000Z"  # timestamps as ISO, both sides
    assert isinstance(expiry["wire"], str) and isinstance(expiry["diff_pct"], float)
    assert body["client_view"]["cache_expires_at"] == "2026-11-30T00:03:20.000Z"
    assert body["statusline"]["client_drift"] == sorted(session.client_drift or {})
    detail = await played.get(f"/api/sessions/{sid}")
    assert detail["session"]["client_view"] == session.client_view


async def test_an_empty_database_answers_every_route(tmp_path: Path) -> None:
    core = _core(tmp_path, ManualClock(T0))
    transport = httpx.ASGITransport(app=create_app(core.api_deps()))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        played = Played(core, client, [])
        assert (await played.get("/api/sessions")) == {"sessions": []}
        summary = await played.get("/api/summary")
        assert summary["today"]["requests"] == 0 and summary["today"]["cost_usd"] == 0.0
        assert summary["quota"] is None
        report = await played.get("/api/report")
        assert report["cost_usd"] == 0.0 and report["top_sessions"] == []
        assert (await played.get("/api/alerts")) == {"active": [], "recent": [], "fired": 0}
        assert (await played.get("/api/recall?q=x")) == {"query": "x", "sessions": []}
        assert (await played.get("/api/models"))["unknown_seen"] == []
        assert (await played.get("/api/stats"))["store"]["rows_written"] == 0
    core.store.stop()
    core.telemetry.shutdown()


def _error(response: httpx.Response, status: int, model: type[BaseModel]) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    model.model_validate(body)  # extra or missing keys raise
    return body


async def test_error_bodies_match_their_schemas(played: Played) -> None:
    client, sid = played.client, played.sessions[0]
    assert _error(await client.get("/api/sessions/zzzzzzzz"), 404, ErrorOut)["error"] == (
        "not_found"
    )
    assert _error(await client.get("/api/diagnosis/zzzzzzzz"), 404, ErrorOut)
    missing = _error(await client.get("/api/statusline/nope"), 404, StatuslineMissingOut)
    assert missing["needs_you_others"] == 0
    post = f"/api/sessions/{sid}/client_view"
    assert _error(await client.post(post, content=b"{}"), 415, ErrorOut)["error"] == (
        "unsupported_media_type"
    )
    too_big = b'{"x": "' + b"a" * 70_000 + b'"}'
    json_type = {"content-type": "application/json"}
    assert _error(await client.post(post, content=too_big, headers=json_type), 413, ErrorOut)
    assert _error(await client.post(post, content=b"[1]", headers=json_type), 400, ErrorOut)
    # A second live session whose id shares its first 8 characters with the first's.
    twin = f"{sid[:8]}-0000-4000-8000-000000000000"
    post0 = fixture_posts("a_plain_text")[0]
    headers = [
        [k, twin if k.lower() == "x-claude-code-session-id" else v] for k, v in post0["headers"]
    ]
    Replayer(played.core.tracker, played.core.clock).exchange({**post0, "headers": headers})
    ambiguous = _error(await client.get(f"/api/sessions/{sid[:8]}"), 409, ErrorOut)
    assert sorted(ambiguous["candidates"] or []) == sorted([sid, twin])


@pytest.mark.parametrize("name", RECORDED_SESSIONS)
async def test_every_recorded_session_is_answered_live_and_stored(
    tmp_path: Path, name: str
) -> None:
    """Each session object of each recorded run, in each state it passes through (after
    every exchange, idle, ended, read back by a core that did not see it), fits its
    response model: a key the schemas lack would be a 500 here, not for a user."""
    clock = ManualClock(T0)
    core = _core(tmp_path, clock)
    replay = Replayer(core.tracker, clock)
    transport = httpx.ASGITransport(app=create_app(core.api_deps()))
    seen: set[str] = set()
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        played = Played(core, client, [])
        for post in fixture_posts(name):
            replay.exchange(post)
            clock.advance(0.2)
            sid = headers_of(post)["x-claude-code-session-id"]
            seen.add(sid)
            detail = await played.get(f"/api/sessions/{sid}")
            assert detail["session"]["live"] is True
        clock.advance(400)
        core.tracker.tick()  # idle: open turns abandoned
        core.tracker.shutdown()  # ended
        assert core.store.writer.flush(timeout=10.0)
        listed = await played.get("/api/sessions?limit=1000")
        assert {s["session_id"] for s in listed["sessions"]} == seen
        live_details = {sid: await played.get(f"/api/sessions/{sid}") for sid in seen}
    core.store.stop()
    core.telemetry.shutdown()
    # A core that never saw them: the same sessions from the file alone.
    fresh = _core(tmp_path, clock)
    transport = httpx.ASGITransport(app=create_app(fresh.api_deps()))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        played = Played(fresh, client, [])
        for sid, live in live_details.items():
            stored = await played.get(f"/api/sessions/{sid}")
            assert stored["session"]["live"] is False
            for key in ("turns", "requests", "tool_calls"):
                assert len(stored[key]) == len(live[key]), (sid, key)
            await played.get(f"/api/diagnosis/{sid}")
    fresh.store.stop()
    fresh.telemetry.shutdown()
