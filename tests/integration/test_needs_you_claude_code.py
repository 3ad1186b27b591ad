"""A real Claude Code 2.1.332 under tmux, through `clauditor up`, driven into a permission
prompt: clauditor reads Claude Code's own session registry and shows the session as
`needs_you`, in the API and in `watch --plain`, with an alert; answering it ends that."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from clauditor.sim.claude_cli import FAKE_KEY, ClaudeHome
from clauditor.sim.server import FakeUpstream
from clauditor.watch.jump import jump
from tests.compat.clis import Cli, configured, usable
from tests.helpers import wait_until
from tests.integration.stack import Stack, start_stack
from tests.integration.test_watch_tmux import TmuxServer

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        shutil.which("tmux") is None and not os.environ.get("CLAUDITOR_REQUIRE_TMUX"),
        reason="tmux is not installed (apt-get install tmux)",
    ),
]

VERSION = "2.1.332"  # the first Claude Code that keeps the registry
PROMPT = 'Run it [[fake:tool Bash {"command": "echo hi", "description": "Print hi"}]]'


def claude_332() -> str:
    """The pinned 2.1.332 CLI (CLAUDE_BINS, as CI sets it): older ones keep no registry."""
    found = [c for c in configured() if c.version == VERSION]
    cli = usable(found[0] if found else Cli(VERSION, None, f"Claude Code {VERSION} is not set up"))
    assert cli.binary is not None
    return cli.binary


def test_a_permission_prompt_is_needs_you_with_an_alert(fake: FakeUpstream, tmp_path: Path) -> None:
    binary = claude_332()
    claude_home = ClaudeHome.create(tmp_path)
    home, project = claude_home.home, claude_home.project
    (home / ".claude").mkdir(parents=True)
    (project / ".git").mkdir(parents=True)  # the project is the git root's name
    # Ask before every Bash command: the permission prompt the proxy never sees.
    (home / ".claude" / "settings.json").write_text(json.dumps({"permissions": {"ask": ["Bash"]}}))
    stack: Stack = start_stack(fake.url, tmp_path, "--claude-dir", str(home / ".claude"))
    tmux = TmuxServer(tmp_path)
    watch = subprocess.Popen(
        [sys.executable, "-m", "clauditor", "watch", "--plain", "--url", stack.api_url],
        stdout=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []

    def pump() -> None:
        assert watch.stdout is not None
        with watch.stdout as out:
            for line in out:
                lines.append(line.rstrip("\n"))

    threading.Thread(target=pump, daemon=True).start()
    try:
        env = claude_home.env(stack.proxy_url)
        command = "env " + " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
        command += f" {shlex.quote(binary)} --permission-mode default"
        tmux("new-session", "-d", "-s", "cc", "-x", "160", "-y", "50", "-c", str(project), command)
        registry = home / ".claude" / "sessions"
        wait_until(lambda: list(registry.glob("*.json")), timeout=30)
        # Claude Code started: the registry knows the session before any request.
        (entry,) = [json.loads(p.read_text()) for p in registry.glob("*.json")]
        sid = entry["sessionId"]

        def session() -> dict:
            r = stack.get(f"/api/sessions/{sid}")
            return r.json()["session"] if r.status_code == 200 else {}

        def settled() -> dict:
            s = session()
            return (
                s if (s.get("state"), s.get("state_source")) == ("your_turn", "claude_code") else {}
            )

        first = wait_until(settled, 10)  # its registry says idle: waiting for a prompt
        assert (first["project"], first["cwd"]) == ("project", str(project))
        assert first["tmux_pane"] == entry["tmux"] and first["state_source"] == "claude_code"

        # The registry can say idle before the TUI takes keys: type once its box is drawn.
        wait_until(lambda: PROMPT_BOX in tmux.capture("cc"), timeout=30)
        tmux("send-keys", "-t", "cc", PROMPT)
        tmux("send-keys", "-t", "cc", "Enter")

        def registry_waiting() -> float | None:
            raw = json.loads(next(registry.glob("*.json")).read_text())
            return raw["statusUpdatedAt"] / 1000 if raw.get("status") == "waiting" else None

        waiting_since = wait_until(registry_waiting, timeout=60)
        blocked = wait_until(lambda: session().get("state") == "needs_you" and session(), 10)
        seen_at = time.time()
        assert seen_at - waiting_since <= 2.0, "needs_you within 2 s of Claude Code saying so"
        assert blocked["waiting_for"] == "permission prompt"
        assert blocked["state_source"] == "claude_code"
        alerts = stack.get("/api/alerts").json()["active"]
        assert [(a["kind"], a["session_id"]) for a in alerts] == [("needs_you", sid)]
        assert alerts[0]["evidence"]["tmux_pane"] == entry["tmux"]
        short = sid[:8]
        wait_until(
            lambda: any(f"{short} state_changed  needs you: permission prompt" in x for x in lines),
            timeout=5,
        )
        wait_until(lambda: any(f"{short} alert" in x and "needs_you" in x for x in lines), 5)
        # The watcher was running before the session started: it names it all the same.
        named = [x for x in lines if short in x and ("session_start" in x or "session_named" in x)]
        assert any("Run it" in x for x in named), named

        # clauditor jump <short id> lands on the pane Claude Code runs in (the attach at the
        # end needs a terminal: it is recorded, not run).
        ran: list[list[str]] = []

        def on_our_server(argv: Sequence[str]) -> int:
            ran.append(list(argv))
            if argv[1] == "attach-session":
                return 0
            tmux(*argv[1:])
            return 0

        assert jump(stack.api_url, short, run=on_our_server, inside_tmux=False) == entry["tmux"]
        assert ran[-1] == ["tmux", "attach-session", "-t", "cc"]
        pane = entry["tmux"].rsplit(".", 1)[1]
        assert tmux("display-message", "-p", "-t", pane, "#{pane_active}").strip() == "1"

        answered_at = time.time()
        tmux("send-keys", "-t", "cc", "Enter")  # 1. Yes
        wait_until(lambda: session().get("state") not in (None, "needs_you"), timeout=30)
        wait_until(lambda: stack.get("/api/alerts").json()["active"] == [], timeout=10)
        done = wait_until(lambda: session().get("state") == "your_turn" and session(), 30)
        assert done["tool_calls"] == 1 and done["tools"] == {"Bash": 1}
        assert (done["turns"], done["claude_code_version"]) == (1, VERSION)
        # The turn's time: the permission prompt, from Claude Code's registry saying
        # `waiting` to its next status after the key press, is the user's part of it.
        (turn,) = wait_until(lambda: stack.session(sid)["turns"] or None, timeout=10)
        time_ = turn["time"]
        asked = (answered_at - waiting_since) * 1000.0
        assert asked - 300.0 <= time_["waiting_for_you_ms"] <= asked + 1500.0, (asked, time_)
        assert sum(time_.values()) == pytest.approx(turn["duration_ms"], abs=0.01)
    finally:
        tmux("kill-server", check=False)
        watch.terminate()
        watch.wait(10)
        assert stack.stop() == 0, "\n".join(stack.log[-30:])


def test_three_sessions_in_tmux_one_blocked_one_streaming_one_finished(
    fake: FakeUpstream, tmp_path: Path
) -> None:
    """The issue's own check: three real Claude Code sessions in tmux; `clauditor watch`
    shows each with its project and name in the right state, the blocked one first with an
    alert; `clauditor jump <short id>` lands in that session's pane."""
    binary = claude_332()
    home = tmp_path / "home"
    (home / ".claude").mkdir(parents=True)
    (home / ".claude" / "settings.json").write_text(json.dumps({"permissions": {"ask": ["Bash"]}}))
    projects = {name: tmp_path / name for name in ("api", "docs", "infra")}
    for path in projects.values():
        (path / ".git").mkdir(parents=True)
    (home / ".claude.json").write_text(
        json.dumps(
            {
                "hasCompletedOnboarding": True,
                "customApiKeyResponses": {"approved": [FAKE_KEY[-20:]]},
                "projects": {str(p): {"hasTrustDialogAccepted": True} for p in projects.values()},
            }
        )
    )
    prompts = {
        "api": PROMPT,  # asks for Bash: blocked on the permission prompt
        "docs": "Write the changelog [[fake:delay 6]]",  # streams for a minute: working
        "infra": "Say hello",  # answered at once: your turn
    }
    stack: Stack = start_stack(fake.url, tmp_path, "--claude-dir", str(home / ".claude"))
    tmux = TmuxServer(tmp_path)
    env = ClaudeHome(home, projects["api"]).env(stack.proxy_url)
    command = "env " + " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    command += f" {shlex.quote(binary)} --permission-mode default"
    registry = home / ".claude" / "sessions"
    try:
        for name, path in projects.items():
            tmux("new-session", "-d", "-s", name, "-x", "160", "-y", "50", "-c", str(path), command)

        def written() -> list[dict]:
            # Claude Code writes its file in place: a read can catch it half written.
            try:
                found = [json.loads(p.read_text()) for p in registry.glob("*.json")]
            except ValueError:
                return []
            return found if len(found) == 3 else []

        entries = wait_until(written, timeout=60)
        by_project = {Path(e["cwd"]).name: e for e in entries}
        # Each TUI ready for input (its prompt box drawn) before a prompt is typed.
        for name in projects:
            wait_until(lambda name=name: PROMPT_BOX in tmux.capture(name), timeout=30)
        for name in ("infra", "api", "docs"):  # the streaming one last: still streaming
            tmux("send-keys", "-t", name, prompts[name])
            # Enter once the TUI shows the text (a key sent with it can join the paste).
            wait_until(lambda name=name: prompts[name][:12] in tmux.capture(name), timeout=10)
            tmux("send-keys", "-t", name, "Enter")

        def states() -> dict[str, str]:
            rows = stack.get("/api/sessions").json()["sessions"]
            return {s["project"]: s["state"] for s in rows if s["project"]}

        want = {"api": "needs_you", "docs": "working", "infra": "your_turn"}
        seen: list[dict[str, str]] = []
        try:
            wait_until(lambda: seen.append(states()) or seen[-1] == want, timeout=60)
        except TimeoutError:
            panes = {n: tmux.capture(n)[-600:] for n in projects}
            raise AssertionError(f"states seen: {seen[-3:]}, panes: {panes}") from None
        # The dashboard itself, in a tmux pane of its own, read back with capture-pane.
        dash = shlex.join([sys.executable, "-m", "clauditor", "watch", "--url", stack.api_url])
        tmux("new-session", "-d", "-s", "watch", "-x", "140", "-y", "30", dash)

        def screen() -> str:
            return tmux.capture("watch")

        blocked_first = wait_until(
            lambda: (s := screen()) and "Needs you" in s and "Working" in s and s, timeout=20
        )
        lines = blocked_first.splitlines()
        order = [i for i, line in enumerate(lines) if line.strip() in GROUPS]
        assert [lines[i].strip() for i in order] == ["Needs you", "Working", "Your turn"]
        assert any(line.startswith("⚠ api") and "waits for you" in line for line in lines)
        for project, group in (("api", "Needs you"), ("docs", "Working"), ("infra", "Your turn")):
            row = lines[lines.index(next(x for x in lines if x.strip() == group)) + 1]
            name = " ".join(prompts[project].split()[:2])  # its name: the first words
            assert f" {project} {name}" in row, (project, row)

        sid = by_project["api"]["sessionId"]
        ran: list[list[str]] = []

        def on_our_server(argv: Sequence[str]) -> int:
            ran.append(list(argv))
            if argv[1] != "attach-session":
                tmux(*argv[1:])
            return 0

        assert (
            jump(stack.api_url, sid[:8], run=on_our_server, inside_tmux=False)
            == (by_project["api"]["tmux"])
        )
        pane = by_project["api"]["tmux"].rsplit(".", 1)[1]
        assert tmux("display-message", "-p", "-t", pane, "#{pane_active}").strip() == "1"
    finally:
        tmux("kill-server", check=False)
        assert stack.stop() == 0, "\n".join(stack.log[-30:])


GROUPS = ("Needs you", "Working", "Your turn", "Idle", "Ended")
PROMPT_BOX = "\u276f"  # the TUI's input prompt mark: it is ready for a prompt
