#!/usr/bin/env python3
"""Capture what a real Claude Code CLI sends, scenario by scenario, as test fixtures.

    python scripts/capture_claude_code.py --claude PATH --out tests/fixtures/claude-code-X.Y.Z --all
    python scripts/capture_claude_code.py --claude PATH --out DIR retry_529 fallback_model

For each scenario (clauditor/sim/scenarios.py, the list the compatibility suite
runs) it starts the fake Anthropic upstream on 127.0.0.1, runs the CLI against it with a
throwaway HOME (print mode, or the TUI under a private tmux server), and writes

- `<out>/<prefix><scenario>.jsonl`: one line per request, in order: method, path, query,
  headers as ordered pairs (auth headers dropped, the key replaced by sk-ant-test-fake),
  body, and the `response` the fake gave (status, kind, model, content, usage, SSE error
  point, request id);
- `<out>/<prefix><scenario>.stdout.jsonl` (one run) or `.1.stdout.jsonl`, `.2...` (several
  runs of one session): Claude Code's own stream-json output, the truth the tests use;
- `<out>/<prefix><scenario>.state.json` for the interactive scenario: what Claude Code wrote
  to ~/.claude.json for the project when it exited (lastSessionId, lastCost, lastModelUsage).

Nothing but loopback is contacted. Long prose from Anthropic (system prompt, tool
descriptions) is kept as sent: it is the CLI's own text, and the fake's replies are canned.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from clauditor.sim.claude_cli import FAKE_KEY, cli_version
from clauditor.sim.records import records_of
from clauditor.sim.scenarios import SCENARIOS, Outcome, run_scenario
from clauditor.sim.server import FakeUpstream

STATE_KEYS = ("lastSessionId", "lastCost", "lastModelUsage", "lastVersionBase")


def capture(binary: str, version: str, name: str, out: Path, prefix: str) -> Outcome:
    scenario = SCENARIOS[name]
    base = out / f"{prefix}{name}"
    with (
        tempfile.TemporaryDirectory(prefix=f"capture-{name}-") as tmp,
        FakeUpstream().running_in_thread() as fake,
    ):
        outcome = run_scenario(binary, version, scenario, fake.url, Path(tmp))
        exchanges = fake.exchanges
    if outcome.failures():
        raise RuntimeError(f"{name}: " + "; ".join(outcome.failures()))
    lines = [json.dumps(r, ensure_ascii=False) for r in records_of(exchanges)]
    texts = {base.with_name(base.name + ".jsonl"): "\n".join(lines) + "\n"}
    if outcome.tui is not None:
        state = {k: outcome.tui.state.get(k) for k in STATE_KEYS}
        texts[base.with_name(base.name + ".state.json")] = json.dumps(state, indent=1) + "\n"
    elif len(outcome.runs) == 1:
        texts[base.with_name(base.name + ".stdout.jsonl")] = outcome.runs[0].stdout
    else:
        for k, run in enumerate(outcome.runs, 1):
            texts[base.with_name(f"{base.name}.{k}.stdout.jsonl")] = run.stdout
    for path, text in texts.items():
        if "x-api-key" in text and FAKE_KEY not in text:
            raise RuntimeError(f"{path}: an API key other than the fake one")
        path.write_text(text)
    return outcome


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--claude", required=True, help="the claude binary to capture")
    parser.add_argument("--out", type=Path, required=True, help="directory for the fixtures")
    parser.add_argument("--prefix", default="n_", help="file name prefix (default: n_)")
    parser.add_argument("--all", action="store_true", help="every scenario")
    parser.add_argument("scenarios", nargs="*", metavar="SCENARIO", help=", ".join(SCENARIOS))
    args = parser.parse_args(argv)
    names = list(SCENARIOS) if args.all else args.scenarios
    unknown = [n for n in names if n not in SCENARIOS]
    if not names or unknown:
        parser.error(f"unknown {unknown}; name scenarios, or --all: " + ", ".join(SCENARIOS))
    version = cli_version(args.claude)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in names:
        start = time.monotonic()
        outcome = capture(args.claude, version, name, args.out, args.prefix)
        print(
            f"{version} {name}: session {outcome.session_id}, "
            f"{len(outcome.runs) or 1} run(s), {time.monotonic() - start:.1f} s",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
