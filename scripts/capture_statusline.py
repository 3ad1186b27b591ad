#!/usr/bin/env python3
"""Capture the JSON a real Claude Code pipes to its `statusLine` command.

    python scripts/capture_statusline.py --claude PATH \
        --out tests/fixtures/claude-code-2.1.332/statusline

Starts the fake Anthropic upstream on 127.0.0.1 and Claude Code's TUI in a private tmux
server, with a throwaway HOME whose `~/.claude/settings.json` sets `statusLine` to a
script that tees its stdin to a file (and prints a marker line). Two prompts: a plain one,
then one the fake answers with another model than requested (`[[fake:model ...]]`). Writes

- `<out>/payloads.jsonl`: every payload Claude Code piped, in order;
- `<out>/requests.jsonl`: the requests it sent meanwhile (the fixture-line format of
  clauditor.sim.records.record_of: headers, body, the reply the fake gave);
- `<out>/screen.txt`: the TUI after the second reply, the marker line in its footer.

Machine-specific paths are replaced by stable placeholders (the throwaway HOME by
`/home/dev`, the project by `/home/dev/project`, as in the other fixtures); the key is
the fake `sk-ant-test-fake` and auth headers are dropped. Nothing but loopback is
contacted.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
from pathlib import Path

from clauditor.sim.claude_cli import PROMPT_MARK, ClaudeHome, Tmux, poll
from clauditor.sim.records import records_of
from clauditor.sim.server import FakeUpstream

PROMPTS = ("Say hello", "Again please [[fake:model claude-sonnet-5-5]]")
HOME, PROJECT = "/home/dev", "/home/dev/project"
MARK = "statusline-capture"


def scrubber(home: ClaudeHome):  # type: ignore[no-untyped-def]
    """Text with the throwaway paths replaced (Claude Code also names the project's
    transcript folder after its path, '/' as '-')."""
    pairs = [
        (str(home.project), PROJECT),
        (str(home.project).replace("/", "-"), PROJECT.replace("/", "-")),
        (str(home.home), HOME),
    ]

    def scrub(text: str) -> str:
        for old, new in pairs:
            text = text.replace(old, new)
        return text

    return scrub


def capture(binary: str, out: Path, timeout: float = 60) -> None:
    with tempfile.TemporaryDirectory(prefix="capture-statusline-") as tmp, FakeUpstream(
    ).running_in_thread() as fake:  # fmt: skip
        home = ClaudeHome.create(Path(tmp))
        inbox = Path(tmp) / "payloads"
        inbox.mkdir()
        tee = Path(tmp) / "tee.sh"
        # One file per run, named by the clock in ns: their order is Claude Code's.
        tee.write_text(f'#!/bin/sh\ncat > "{inbox}/$(date +%s%N).json"\necho {MARK}\n')
        tee.chmod(0o755)
        (home.home / ".claude").mkdir()
        settings = {"statusLine": {"type": "command", "command": str(tee)}}
        (home.home / ".claude" / "settings.json").write_text(json.dumps(settings))
        env = home.env(fake.url) | {"TERM": "xterm-256color"}
        command = "exec env -i " + " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
        command += " " + shlex.quote(binary)
        tmux = Tmux(f"clauditor-statusline-{os.getpid()}")

        def payloads() -> list[dict]:
            found = []
            for path in sorted(inbox.glob("*.json")):
                try:
                    found.append(json.loads(path.read_text()))
                except ValueError:  # being written
                    continue
            return found

        def costs() -> list[float]:
            return [p.get("cost", {}).get("total_cost_usd") or 0 for p in payloads()]

        try:
            tmux("new-session", "-d", "-s", "cc", "-x", "160", "-y", "50", "-c",
                 str(home.project), command)  # fmt: skip
            poll(lambda: PROMPT_MARK in tmux.capture("cc") and MARK in tmux.capture("cc"), timeout)
            for k, prompt in enumerate(PROMPTS, 1):
                tmux("send-keys", "-t", "cc", "-l", prompt)

                def typed(tail: str = prompt[-20:]) -> bool:
                    return tail in tmux.capture("cc")

                def replied(k: int = k) -> bool:
                    # Claude Code runs the command again once the reply is in: a new cost.
                    return len({c for c in costs() if c > 0}) >= k

                poll(typed, timeout)
                tmux("send-keys", "-t", "cc", "Enter")
                poll(replied, timeout)
            screen = tmux.capture("cc")
            tmux("send-keys", "-t", "cc", "-l", "/exit")
            poll(lambda: "/exit" in tmux.capture("cc"), timeout)
            tmux("send-keys", "-t", "cc", "Enter")
            poll(lambda: not tmux.alive("cc"), timeout)
        finally:
            tmux.kill()
        scrub = scrubber(home)
        lines = [scrub(json.dumps(p, ensure_ascii=False)) for p in payloads()]
        records = [scrub(json.dumps(r, ensure_ascii=False)) for r in records_of(fake.exchanges)]
        out.mkdir(parents=True, exist_ok=True)
        (out / "payloads.jsonl").write_text("\n".join(lines) + "\n")
        (out / "requests.jsonl").write_text("\n".join(records) + "\n")
        (out / "screen.txt").write_text(scrub(screen))
        print(f"{len(lines)} payloads, {len(records)} requests -> {out}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--claude", required=True, help="the Claude Code CLI to run")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args()
    capture(args.claude, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
