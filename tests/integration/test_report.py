"""`clauditor report` through a running core (real Envoy, core, CLI): the same report as
from the file, its cost the sum of the session's own request costs."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest

from clauditor.sim.replies import Reply, ToolCall
from clauditor.sim.server import FakeUpstream
from tests.helpers import fixture_posts, headers_of
from tests.integration.stack import Stack, settled_detail

pytestmark = pytest.mark.integration


def _report(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clauditor", "report", *args],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip


def test_report_through_the_core_and_from_the_file(stack: Stack, fake: FakeUpstream) -> None:
    first, second = (copy.deepcopy(r) for r in fixture_posts("b_tool_bash"))
    sid = headers_of(first)["x-claude-code-session-id"]
    tool_id = first["response"]["content"][1]["id"]
    fake.script(
        sid,
        [
            Reply(tool_calls=[ToolCall("Bash", {"command": "ls"}, id=tool_id)]),
            Reply(text="Done."),
        ],
    )
    assert stack.post_record(first).status_code == 200
    assert stack.post_record(second).status_code == 200
    detail = settled_detail(stack, sid, requests=2)
    costs = [r["cost_usd"] for r in detail["requests"]]
    assert len(costs) == 2 and None not in costs

    # Two days, so a run across midnight UTC still holds both requests.
    live = _report("--json", "--days", "2", "--by", "model", "--url", stack.api_url)
    assert live.returncode == 0, live.stderr
    report = json.loads(live.stdout)
    assert (report["sessions"], report["turns"], report["requests"]) == (1, 1, 2)
    assert report["cost_usd"] == pytest.approx(sum(costs), abs=1e-6)
    assert [s["session_id"] for s in report["top_sessions"]] == [sid]
    assert sum(d["sessions"] for d in report["days"]) >= 1
    # The turn's time parts add up to its duration (sessions.timing), so the report's
    # breakdown totals the turn's own duration_ms.
    durations = [t["duration_ms"] for t in detail["turns"]]
    assert report["time"]["total_ms"] == pytest.approx(sum(durations), abs=1)
    assert report["time"]["share"] is not None

    text = _report("--days", "2", "--url", stack.api_url)
    assert text.returncode == 0, text.stderr
    assert text.stdout.startswith("clauditor report: the last 2 days")
    assert sid[:8] in text.stdout

    assert stack.stop() == 0
    from_file = _report("--json", "--days", "2", "--by", "model", "--db", str(stack.db))
    assert from_file.returncode == 0, from_file.stderr
    stored = json.loads(from_file.stdout)
    for key in ("days", "groups", "tokens_by_class", "cost_by_class", "top_sessions", "time"):
        assert stored[key] == report[key], key
