"""Run the real Claude Code CLI against a loopback Anthropic (the fake upstream, or Envoy in
front of it), in print mode or interactively under a private tmux server, with a throwaway
HOME that needs no login.

Used by the compatibility suite (tests/integration/test_compat_claude_code.py) and by
`scripts/capture_claude_code.py`. Nothing here talks to anything but 127.0.0.1. What the
fake saw is written as fixture lines by clauditor.sim.records.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

__all__ = [
    "FAKE_KEY",
    "ClaudeHome",
    "InteractiveRun",
    "PrintRun",
    "Tmux",
    "cli_version",
    "run_interactive",
    "run_print",
]

FAKE_KEY = "sk-ant-test-fake"
_VERSION = re.compile(r"\b(\d+\.\d+\.\d+)\b")
T = TypeVar("T")


def poll(predicate: Callable[[], T], timeout: float, interval: float = 0.1) -> T:
    """predicate() once truthy, polled until a deadline; TimeoutError after it."""
    deadline = time.monotonic() + timeout
    last = predicate()
    while not last:
        if time.monotonic() > deadline:
            raise TimeoutError(f"not met within {timeout} s (last value {last!r})")
        time.sleep(interval)
        last = predicate()
    return last


def cli_version(binary: str) -> str:
    """`claude --version` → "2.1.332"."""
    done = subprocess.run(
        [binary, "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    found = _VERSION.search(done.stdout)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"{binary} --version: {done.returncode} {done.stdout!r} {done.stderr!r}")
    return found.group(1)


@dataclass
class ClaudeHome:
    """A throwaway HOME (onboarding done, the fake key approved, the project trusted)."""

    home: Path
    project: Path

    @classmethod
    def create(cls, root: Path) -> ClaudeHome:
        home, project = root / "home", root / "project"
        home.mkdir(parents=True)
        project.mkdir(parents=True)
        (home / ".claude.json").write_text(
            json.dumps(
                {
                    "hasCompletedOnboarding": True,
                    "customApiKeyResponses": {"approved": [FAKE_KEY[-20:]]},
                    "projects": {str(project): {"hasTrustDialogAccepted": True}},
                }
            )
        )
        return cls(home, project)

    def env(self, base_url: str) -> dict[str, str]:
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.home),
            "LANG": "C.UTF-8",
            "ANTHROPIC_BASE_URL": base_url,
            "ANTHROPIC_API_KEY": FAKE_KEY,
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_TELEMETRY": "1",
            "DISABLE_AUTOUPDATER": "1",
            "DISABLE_ERROR_REPORTING": "1",
        }

    def project_state(self) -> dict[str, Any]:
        """What Claude Code keeps in ~/.claude.json for the project: after an interactive
        session exits, `lastSessionId`, `lastCost`, `lastModelUsage` (its own accounting)."""
        try:
            data = json.loads((self.home / ".claude.json").read_text())
        except (OSError, ValueError):
            return {}
        state = (data.get("projects") or {}).get(str(self.project))
        return state if isinstance(state, dict) else {}


@dataclass
class PrintRun:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    wall_s: float

    @property
    def lines(self) -> list[dict[str, Any]]:
        """The stream-json events (`--output-format stream-json --verbose`)."""
        out = []
        for line in self.stdout.splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue
        return out

    @property
    def session_id(self) -> str | None:
        return next(
            (e.get("session_id") for e in self.lines if e.get("subtype") == "init"),
            None,
        )


def run_print(
    binary: str, home: ClaudeHome, base_url: str, args: Iterable[str], *, timeout: float = 120
) -> PrintRun:
    """`claude <args> --output-format stream-json --verbose` in the project directory."""
    argv = [binary, *args, "--output-format", "stream-json", "--verbose"]
    start = time.monotonic()
    done = subprocess.run(
        argv,
        cwd=home.project,
        env=home.env(base_url),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return PrintRun(argv, done.returncode, done.stdout, done.stderr, time.monotonic() - start)


class Tmux:
    """A private tmux server (its own -L socket, no user config)."""

    def __init__(self, name: str) -> None:
        self.socket = name[:90]
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TMUX")}
        self.env.update(LANG="C.UTF-8", LC_ALL="C.UTF-8", TERM="xterm-256color")

    def __call__(self, *args: str, check: bool = True) -> str:
        tmux = shutil.which("tmux")
        if tmux is None:
            raise RuntimeError("tmux is not installed")
        proc = subprocess.run(
            [tmux, "-u", "-L", self.socket, "-f", "/dev/null", *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=10,
            check=False,
        )
        if check and proc.returncode != 0:
            raise RuntimeError(f"tmux {args}: {proc.stderr}")
        return proc.stdout

    def alive(self, target: str) -> bool:
        return bool(self("list-panes", "-t", target, "-F", "#{pane_id}", check=False).strip())

    def capture(self, target: str) -> str:
        return self("capture-pane", "-p", "-J", "-S", "-200", "-t", target, check=False)

    def kill(self) -> None:
        self("kill-server", check=False)


@dataclass
class InteractiveRun:
    screens: list[str] = field(default_factory=list)  # the pane after each reply
    state: dict[str, Any] = field(default_factory=dict)  # ClaudeHome.project_state()
    wall_s: float = 0.0

    @property
    def session_id(self) -> str | None:
        sid = self.state.get("lastSessionId")
        return sid if isinstance(sid, str) else None


PROMPT_MARK = "\u276f"  # HEAVY RIGHT-POINTING ANGLE QUOTATION MARK: the input prompt


def run_interactive(
    binary: str,
    home: ClaudeHome,
    base_url: str,
    prompts: list[str],
    replied: Callable[[str, int], bool],
    *,
    timeout: float = 60,
) -> InteractiveRun:
    """Claude Code's TUI in tmux: wait for its prompt, type each prompt (send-keys), wait
    until `replied(screen, k)` says the k-th reply (1-based) is on screen, then `/exit` and
    wait for the process to end and write its accounting to ~/.claude.json."""
    tmux = Tmux(f"clauditor-cc-{os.getpid()}-{home.home.parent.name}")
    env = home.env(base_url) | {"TERM": "xterm-256color"}
    command = "exec env -i " + " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    command += " " + shlex.quote(binary)
    run = InteractiveRun()
    start = time.monotonic()
    target = "cc"
    try:
        # The pane runs Claude Code itself: when it exits, the pane and the server go too.
        tmux("new-session", "-d", "-s", target, "-x", "160", "-y", "50", "-c", str(home.project),
             command)  # fmt: skip
        poll(lambda: PROMPT_MARK in tmux.capture(target), timeout)
        for k, prompt in enumerate(prompts, 1):
            tmux("send-keys", "-t", target, "-l", prompt)

            def typed(p: str = prompt) -> bool:
                return p[-20:] in tmux.capture(target)

            def reply(k: int = k) -> str | None:
                screen = tmux.capture(target)
                return screen if screen and replied(screen, k) else None

            # The TUI echoes what it took in; Enter only once all of it is in the box.
            poll(typed, timeout)
            tmux("send-keys", "-t", target, "Enter")
            screen = poll(reply, timeout)
            assert screen is not None  # poll returns only a truthy value
            run.screens.append(screen)
        tmux("send-keys", "-t", target, "-l", "/exit")
        poll(lambda: "/exit" in tmux.capture(target), timeout)
        tmux("send-keys", "-t", target, "Enter")
        poll(lambda: not tmux.alive(target), timeout)

        def written() -> dict[str, Any] | None:
            state = home.project_state()
            return state if state.get("lastSessionId") else None

        found = poll(written, timeout)
        assert found is not None
        run.state = found
    finally:
        tmux.kill()
        run.wall_s = time.monotonic() - start
    return run
