"""Three real Claude Code processes at once (per configured version): `/watch` and
`clauditor watch --plain` show all."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from clauditor.sim.server import FakeUpstream
from tests.compat.clis import Cli
from tests.integration.stack import Stack
from tests.integration.test_claude_code import run_claude
from tests.integration.test_watch import Collector, collectors, watcher  # noqa: F401

pytestmark = pytest.mark.integration

PROMPTS = [
    'one [[fake:tool Bash {"command": "echo one", "description": "one"}]]',
    'two [[fake:tool Bash {"command": "pwd", "description": "two"}]]',
    'three [[fake:tool Bash {"command": "echo three", "description": "three"}]]',
]


def test_three_claude_code_sessions_live_in_watch(
    claude_cli: Cli,
    stack: Stack,
    fake: FakeUpstream,
    tmp_path: Path,
    collectors: list[Collector],  # noqa: F811
) -> None:
    c = watcher(stack, collectors)
    plain = subprocess.Popen(
        [sys.executable, "-m", "clauditor", "watch", "--plain", "--url", stack.api_url],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    results: dict[int, list[dict]] = {}

    def one(i: int) -> None:
        results[i] = run_claude(claude_cli, stack.proxy_url, tmp_path / f"run{i}", PROMPTS[i])

    for i in range(3):
        (tmp_path / f"run{i}").mkdir()
    threads = [threading.Thread(target=one, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted(results) == [0, 1, 2]
    inits = [next(x for x in results[i] if x.get("subtype") == "init") for i in range(3)]
    ids = [init["session_id"] for init in inits]
    models = {init["session_id"]: init["model"].removesuffix("[1m]") for init in inits}
    assert len(set(ids)) == 3

    events = c.wait_for(
        lambda evs: {e["session_id"] for e in evs if e["type"] == "turn_end"} >= set(ids),
        timeout=20,
    )
    for sid in ids:
        mine = [e for e in events if e.get("session_id") == sid]
        # The session's state changes ride along (working, tool, ... your turn).
        kinds = [e["type"] for e in mine if e["type"] != "state_changed"]
        assert kinds[0] == "session_start" and "turn_start" in kinds and kinds[-1] == "turn_end"
        start = mine[0]
        assert start["model"] == models[sid]  # the version's default model
        uses = [e for e in mine if e["type"] == "tool_use"]
        assert [(u["tool"], u["summary"][:4]) for u in uses] in (
            [("Bash", "echo")],
            [("Bash", "pwd")],
        )
        (result,) = [e for e in mine if e["type"] == "tool_result"]
        assert result["outcome"] == "ok"
        assert [e for e in mine if e["type"] == "cache_event"]  # signals ride along
        assert [e for e in mine if e["type"] == "context_status"]
        end = next(e for e in mine if e["type"] == "turn_end")
        assert end["cost_usd"] > 0
        # Where the turn's time went, as the watch view gets it, is the API's turn's.
        (turn,) = stack.session(sid)["turns"]
        assert end["time"] == turn["time"]
        assert sum(end["time"].values()) == pytest.approx(end["duration_ms"], abs=0.01)

    plain.terminate()
    out, _ = plain.communicate(timeout=10)
    for sid in ids:
        lines = [line for line in out.splitlines() if sid[:8] in line]
        assert any("tool_use" in line for line in lines), (sid, out[-2000:])
        assert any("turn_end" in line for line in lines), (sid, out[-2000:])
