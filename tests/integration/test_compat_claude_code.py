"""The compatibility matrix: every scenario (clauditor/sim/scenarios.py) with the
real Claude Code CLI of every configured version, through `clauditor up` (real Envoy, real
core) against the fake upstream, compared with what Claude Code itself reports.

The oracle is Claude Code's own accounting (stream-json `result`/`system` events, or what an
interactive session writes to ~/.claude.json), the wire as the fake saw it, and the scenario
(how many prompts were typed): never clauditor's own code or price table.

Set CLAUDITOR_COMPAT_REPORT=<file> to append one JSON line per scenario (version, scenario,
mismatches, wall time): the drift report `docs/compatibility.md` describes.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from clauditor.sim.records import records_of
from clauditor.sim.scenarios import SCENARIOS, Outcome, run_scenario
from clauditor.sim.server import FakeUpstream
from tests.compat.captures import DOC_WINDOWS, prompt_texts
from tests.compat.check import Expect, compare
from tests.compat.clis import Cli
from tests.compat.truth import Truth, TruthError, from_project_state, from_stream_json, wire_of
from tests.integration.stack import Stack, settled_detail

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def oracle(outcome: Outcome) -> Truth:
    if outcome.tui is not None:
        return from_project_state(outcome.tui.state, outcome.version)
    truth = from_stream_json([run.lines for run in outcome.runs])
    # One prompt or /compact per print-mode run: Claude Code and the scenario agree.
    typed = outcome.scenario.prompts + outcome.scenario.compactions
    if truth.runs != typed:
        raise TruthError(f"{truth.runs} runs for {typed} prompts and /compact commands")
    return truth


def report(line: dict[str, Any]) -> None:
    path = os.environ.get("CLAUDITOR_COMPAT_REPORT")
    if path:
        with open(path, "a") as fh:
            fh.write(json.dumps(line) + "\n")


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario_matches_claude_codes_own_accounting(
    name: str, claude_cli: Cli, stack: Stack, fake: FakeUpstream, tmp_path: Path
) -> None:
    scenario = SCENARIOS[name]
    if scenario.interactive and shutil.which("tmux") is None:
        if os.environ.get("CLAUDITOR_REQUIRE_TMUX"):
            pytest.fail("CLAUDITOR_REQUIRE_TMUX is set but tmux is not installed")
        pytest.skip("tmux is not installed (apt-get install tmux)")
    assert claude_cli.binary is not None
    outcome = run_scenario(
        claude_cli.binary, claude_cli.version, scenario, stack.proxy_url, tmp_path / "cc"
    )
    assert not outcome.failures(), outcome.failures()
    truth = oracle(outcome)

    wire = wire_of(records_of(fake.exchanges), truth.session_id)
    assert wire.requests, f"the fake saw no request of session {truth.session_id}"
    detail = settled_detail(stack, truth.session_id, len(wire.requests))
    expect = Expect(
        version=claude_cli.version,
        prompts=scenario.prompts,
        compactions=scenario.compactions,
        prompt_texts=prompt_texts(scenario),
        context_window=DOC_WINDOWS.get(truth.final_model or ""),  # if the truth has none
    )
    result = compare(detail, truth, wire, expect)
    wall = sum(r.wall_s for r in outcome.runs) + (outcome.tui.wall_s if outcome.tui else 0)
    report(
        {
            "version": claude_cli.version,
            "scenario": name,
            "source": "cli",
            "mismatches": result.mismatches,
            "claude_wall_s": round(wall, 2),
        }
    )
    assert not result, result.text(f"{name} on Claude Code {claude_cli.version}:")
