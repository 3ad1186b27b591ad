"""The captured Claude Code sessions under tests/fixtures/claude-code-<version>/, each with
its truth: `<name>.jsonl` (the request log), beside it `<name>.stdout.jsonl` or
`<name>.<k>.stdout.jsonl` (stream-json of each run), or `<name>.state.json` (an interactive
session's own accounting), else the truth is hand-computed from the responses and the
documented prices (docs/anthropic-api.md, copied below, never clauditor's table)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clauditor.sim.scenarios import SCENARIOS, Scenario
from tests.compat.check import Expect
from tests.compat.truth import (
    Truth,
    TruthError,
    from_project_state,
    from_records,
    from_stream_json_files,
    session_of,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
_STDOUT = re.compile(r"^(?P<name>.+?)(?:\.(?P<k>\d+))?\.stdout\.jsonl$")

# USD per million tokens, from /work/shared/docs/anthropic-api.md (late 2026).
DOC_PRICES = {
    "claude-opus-5-5": {
        "input": 4, "output": 20, "cache_write_5m": 5, "cache_write_1h": 8, "cache_read": 0.20,
    },
    "claude-sonnet-5-5": {  # cache read 0.10 from 2026-10-07
        "input": 2, "output": 10, "cache_write_5m": 2.5, "cache_write_1h": 4, "cache_read": 0.10,
    },
}  # fmt: skip
# Context windows the docs state outright (1M native, no beta), for truths without one.
DOC_WINDOWS = {"claude-opus-5-5": 1_000_000, "claude-sonnet-5-5": 1_000_000}

# What the user typed in the shared captures (read off their request logs); None: /compact.
HELLO = "Say hello in five words."
SHARED_PROMPTS: dict[str, list[str | None]] = {
    "n_plain": [HELLO],
    "n_tool": ["Run echo hi with Bash."],
    "n_toolsearch": ["Load the WebFetch tool."],
    "n_subagent": ["Use a subagent to say hello."],
    "n_subagent_bg": ["Use a subagent to say hello."],
    "n_compact": [HELLO, None, "What did we talk about?"],
    "n_compact_tagged": [HELLO, None, "What did we talk about?"],
    "n_sse_error": [HELLO],
    "n_interactive": [HELLO],
}


def prompt_texts(scenario: Scenario) -> list[str | None]:
    """The prompts a scenario types, None for a /compact."""
    typed = list(scenario.interactive) or [step.prompt for step in scenario.steps]
    return [None if p.startswith("/compact") else p for p in typed]


@dataclass
class Capture:
    name: str
    version: str
    records: list[dict[str, Any]]
    truth: Truth
    expect: Expect

    @property
    def id(self) -> str:
        return f"{self.version}/{self.name}"


def capture_ids() -> list[str]:
    return [
        f"{d.name.removeprefix('claude-code-')}/{p.name.removesuffix('.jsonl')}"
        for d in sorted(FIXTURES.glob("claude-code-*"))
        for p in sorted(d.glob("*.jsonl"))
        if not p.name.endswith(".stdout.jsonl")
    ]


def load(capture_id: str) -> Capture:
    version, name = capture_id.split("/")
    folder = FIXTURES / f"claude-code-{version}"
    records = [json.loads(x) for x in (folder / f"{name}.jsonl").read_text().splitlines() if x]
    runs = sorted(
        (int(m["k"] or 0), p)
        for p in folder.glob(f"{name}*.stdout.jsonl")
        if (m := _STDOUT.match(p.name)) and m["name"] == name
    )
    state = folder / f"{name}.state.json"
    # The shared captures predate the scenario list: their own prompts come first.
    scenario = None if name in SHARED_PROMPTS else SCENARIOS.get(name.removeprefix("n_"))
    prompts = prompt_texts(scenario) if scenario else SHARED_PROMPTS.get(name)
    if prompts is None:
        raise TruthError(f"{capture_id}: no scenario and no SHARED_PROMPTS entry")
    if runs:
        truth = from_stream_json_files(p for _, p in runs)
        if truth.runs != len(prompts):  # print mode: one prompt or /compact per run
            raise TruthError(f"{capture_id}: {truth.runs} runs for {len(prompts)} prompts")
    elif state.exists():
        truth = from_project_state(json.loads(state.read_text()), version)
    else:
        sessions = {session_of(r) for r in records if r.get("method") == "POST"}
        if len(sessions) != 1:
            raise TruthError(f"{capture_id}: sessions {sessions}")
        truth = from_records(records, str(sessions.pop()), DOC_PRICES, version)
    compactions = sum(p is None for p in prompts)
    expect = Expect(
        version=version,
        prompts=len(prompts) - compactions,
        compactions=compactions,
        prompt_texts=prompts,
        context_window=DOC_WINDOWS.get(truth.final_model or ""),  # if the truth has none
    )
    return Capture(name, version, records, truth, expect)
