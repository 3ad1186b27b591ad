"""Load: 32 concurrent scripted sessions x 10 turns with tool calls through real Envoy.

Every turn, request and tool call must be in the API, in the SQLite file and in the
exported spans, with exact counts per session: zero lost, zero mixed between sessions.

Ordering: ext_proc side streams carry no order between them, and a core starved of CPU
(nice 19 on a saturated machine) can open one several hundred ms after later ones. The
tracker holds a request behind the earlier exchanges of its session it knows of, and a
tool_result request whose tool_use ids it has not seen until they show up (0.5 s at
most), so even a tool_result that overtakes the whole exchange before it joins that
exchange's turn instead of starting one (this used to give a session an extra turn in
about one run in 60).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from clauditor.sim.server import FakeUpstream
from tests.helpers import wait_until
from tests.integration.otlp_receiver import Receiver, Span, otlp_receiver
from tests.integration.reliability import PacedSession, integrity, otlp_env, wait_settled
from tests.integration.stack import Stack, start_stack

pytestmark = pytest.mark.integration

SESSIONS = 32
TURNS = 10
TOOLS = (
    ("Bash", {"command": "ls -la"}),
    ("Read", {"file_path": "/srv/app/README.md"}),
    ("Grep", {"pattern": "TODO", "path": "."}),
)
ROOT = "invoke_agent claude-code"


def tools_for(session: int, turn: int) -> list[tuple[str, dict]]:
    """0, 1 or 2 tool calls in one response: per-session totals differ, so a request
    counted under the wrong session shows up as a wrong count."""
    n = (session + turn) % 3
    return [TOOLS[(session + turn + k) % len(TOOLS)] for k in range(n)]


@dataclass
class Sent:
    """What one client did, from its own side of the wire."""

    session_id: str
    turns: int = 0
    request_ids: list[str] = field(default_factory=list)
    tool_use_ids: list[str] = field(default_factory=list)
    tools: Counter[str] = field(default_factory=Counter)
    statuses: list[int] = field(default_factory=list)


async def one_session(base_url: str, index: int) -> Sent:
    async with PacedSession(base_url) as s:
        sent = Sent(s.session_id)
        for t in range(TURNS):
            calls = tools_for(index, t)
            directives = " ".join(f"[[fake:tool {n} {json.dumps(a)}]]" for n, a in calls)
            result = await s.turn(f"load s{index} t{t}: go {directives}".strip())
            sent.turns += 1
            sent.request_ids += result.request_ids
            sent.tool_use_ids += result.tool_use_ids
            sent.tools.update(result.tool_uses)
            sent.statuses += result.statuses
            assert result.requests == (2 if calls else 1)
            # A person reads the answer before typing the next prompt.
            await asyncio.sleep(0.05)
        return sent


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    otlp_env(monkeypatch)
    with otlp_receiver() as r:
        yield r


def _by_session(spans: list[Span]) -> dict[str, list[Span]]:
    out: dict[str, list[Span]] = defaultdict(list)
    for s in spans:
        out[str(s.attributes.get("session.id"))].append(s)
    return out


def _api_checks(stack: Stack, sent: list[Sent]) -> None:
    listed = {s["session_id"]: s for s in stack.get("/api/sessions?limit=1000").json()["sessions"]}
    assert set(listed) == {x.session_id for x in sent}
    for x in sent:
        row = listed[x.session_id]
        assert (row["turns"], row["requests"], row["tool_calls"]) == (
            x.turns,
            len(x.request_ids),
            len(x.tool_use_ids),
        ), _explain(stack, x)
        assert row["tools"] == dict(x.tools)
        assert (row["errors"], row["retries"], row["in_flight"]) == (0, 0, 0)
        detail = stack.session(x.session_id)
        assert [t["outcome"] for t in detail["turns"]] == ["completed"] * TURNS, _explain(stack, x)
        assert [r["request_id"] for r in detail["requests"]] == x.request_ids, _explain(stack, x)
        tool_ids = [u["id"] for r in detail["requests"] for u in r["tool_uses"]]
        assert tool_ids == x.tool_use_ids


def _explain(stack: Stack, sent: Sent) -> str:
    """A session's turns and requests as the core has them, for a failing assertion."""
    detail = stack.session(sent.session_id)
    turns = [
        (t["turn"], t["trigger"], t["outcome"], t["requests"], (t["prompt"] or "")[:16])
        for t in detail["turns"]
    ]
    reqs = [
        (
            r["exchange_id"],
            r["turn"],
            r["started_at"][11:],
            r["stop_reason"],
            sent.request_ids.index(r["request_id"])
            if r["request_id"] in sent.request_ids
            else None,
        )
        for r in detail["requests"]
    ]
    return (
        f"{sent.session_id}: turns {turns}; requests (exchange, turn, parsed, stop, sent#) {reqs}"
    )


def _db_checks(db: Path, sent: list[Sent]) -> None:
    assert integrity(db) == "ok"
    with contextlib.closing(sqlite3.connect(db)) as conn:
        sessions = {
            r[0]: r[1:]
            for r in conn.execute("select session_id, turns, requests, tool_calls from sessions")
        }
        turns = Counter(
            r[0] for r in conn.execute("select session_id from turns where outcome = 'completed'")
        )
        reqs: dict[str, set[str]] = defaultdict(set)
        for sid, rid in conn.execute("select session_id, request_id from requests"):
            reqs[sid].add(rid)
        calls: dict[str, set[str]] = defaultdict(set)
        for sid, tid, outcome in conn.execute(
            "select session_id, tool_use_id, outcome from tool_calls"
        ):
            assert outcome == "ok", (sid, tid)
            calls[sid].add(tid)
    assert set(sessions) == {x.session_id for x in sent}
    for x in sent:
        sid = x.session_id
        assert sessions[sid] == (x.turns, len(x.request_ids), len(x.tool_use_ids)), sid
        assert turns[sid] == x.turns
        assert reqs[sid] == set(x.request_ids)
        assert calls[sid] == set(x.tool_use_ids)


def _span_checks(spans: list[Span], sent: list[Sent]) -> None:
    per = _by_session(spans)
    assert set(per) == {x.session_id for x in sent}
    # Zero mixed: a trace belongs to one session only, and no trace id is shared.
    trace_sessions: dict[str, set[str]] = defaultdict(set)
    for s in spans:
        trace_sessions[s.trace_id].add(str(s.attributes.get("session.id")))
    assert all(len(v) == 1 for v in trace_sessions.values())
    assert len({s.span_id for s in spans}) == len(spans)
    for x in sent:
        mine = per[x.session_id]
        roots = [s for s in mine if s.name == ROOT]
        chats = [s for s in mine if s.name.startswith("chat ")]
        tools = [s for s in mine if s.name.startswith("execute_tool ")]
        assert len(mine) == len(roots) + len(chats) + len(tools)
        assert len(roots) == x.turns == len({s.trace_id for s in mine})
        assert sorted(r.attributes["clauditor.turn.number"] for r in roots) == list(
            range(1, TURNS + 1)
        )
        assert all(r.attributes["clauditor.turn.outcome"] == "completed" for r in roots)
        assert sorted(s.attributes["anthropic.request_id"] for s in chats) == sorted(x.request_ids)
        assert sorted(s.attributes["gen_ai.tool.call.id"] for s in tools) == sorted(x.tool_use_ids)
        root_of = {r.trace_id: r.span_id for r in roots}
        assert all(s.parent_span_id == root_of[s.trace_id] for s in chats + tools)
        assert all(0 < s.start_ns <= s.end_ns for s in mine)


def test_32_sessions_x_10_turns_nothing_lost_nothing_mixed(
    receiver: Receiver, fake: FakeUpstream, tmp_path: Path
) -> None:
    stack = start_stack(fake.url, tmp_path, "--otlp-endpoint", receiver.endpoint)
    try:

        async def drive() -> list[Sent]:
            return list(
                await asyncio.gather(*(one_session(stack.proxy_url, i) for i in range(SESSIONS)))
            )

        started = time.monotonic()
        sent = asyncio.run(asyncio.wait_for(drive(), timeout=60))
        elapsed = time.monotonic() - started
        total_requests = sum(len(x.request_ids) for x in sent)
        assert all(status == 200 for x in sent for status in x.statuses)
        # The upstream saw exactly what the clients sent: nothing duplicated or lost by Envoy.
        assert len(fake.wait_for(total_requests, timeout=10)) == total_requests
        wait_settled(stack)
        _api_checks(stack, sent)

        expected_spans = sum(x.turns + len(x.request_ids) + len(x.tool_use_ids) for x in sent)

        def all_spans() -> list[Span] | None:
            spans = [s for s in receiver.snapshot() if s.attributes.get("session.id")]
            return spans if len(spans) >= expected_spans else None

        spans = wait_until(all_spans, timeout=20)
        stats = stack.get("/api/stats").json()
        telemetry = stats["telemetry"]
        assert telemetry["dropped"] == 0 and telemetry["open"] == 0
        assert stats["wire"]["consumer_errors"] == 0
        assert stats["tracker"]["unattributed_requests"] == 0
        assert stats["tracker"]["listener_errors"] == 0
        assert stats["store"]["write_errors"] == 0
        # Envoy mirrored every exchange: no side stream failed open or overflowed.
        assert stack.envoy_stat("http.clauditor.ext_proc.streams_failed") == 0
        assert stack.envoy_stat("cluster.clauditor_ext_proc.upstream_rq_active_overflow") == 0
        print(
            f"\nload: {SESSIONS} sessions x {TURNS} turns, {total_requests} requests, "
            f"{sum(len(x.tool_use_ids) for x in sent)} tool calls, {len(spans)} spans "
            f"in {elapsed:.1f} s ({total_requests / elapsed:.0f} req/s)"
        )
    finally:
        assert stack.stop() == 0, "\n".join(stack.log[-30:])
    assert len(spans) == expected_spans
    _span_checks(spans, sent)
    _db_checks(stack.db, sent)
